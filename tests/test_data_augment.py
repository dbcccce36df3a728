"""Augmentation: image and mask stay aligned, and each known Augmentor 0.2.12 trap is handled.

Each trap test first shows the trap with Augmentor (or Pillow) itself, then that kerasmed's
pipeline avoids it.
"""

import random
from concurrent.futures import ThreadPoolExecutor

import Augmentor
import cv2
import numpy as np
import pytest
from PIL import Image

from kerasmed.data.augment import (_REQUIRED, OPS, Augmentation, build_augmentation,
                                   validate_augmentation)

# Augmentor's skew builds an np.matrix, which NumPy flags as pending deprecation.
pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")

EXAMPLE_VALUES = {"max_left_rotation": 10, "max_right_rotation": 10, "min_factor": 1.1,
                  "max_factor": 1.3, "percentage_area": 0.7, "grid_width": 4, "grid_height": 4,
                  "magnitude": 4, "max_shear_left": 10, "max_shear_right": 10, "width": 48,
                  "height": 40, "rectangle_area": 0.3}


def full_spec(name, probability=1.0):
    _, params, _, _ = OPS[name]
    spec = {"op": name, "probability": probability}
    spec.update({k: EXAMPLE_VALUES[k] for k, (default, _) in params.items()
                 if default is _REQUIRED})
    return spec


def shape_pair(size=64):
    """A known shape: a bright square-ish blob on a dark image, and its 0/1 mask."""
    mask = np.zeros((size, size), np.uint8)
    cv2.rectangle(mask, (14, 20), (40, 50), 1, -1)
    cv2.circle(mask, (46, 18), 8, 1, -1)
    image = np.repeat((mask * 200 + 30)[..., None], 3, axis=2).astype(np.uint8)
    return image, mask


GEOMETRIC = sorted(n for n, (kind, *_rest) in OPS.items() if kind == "geometric")
INTENSITY = sorted(n for n, (kind, *_rest) in OPS.items() if kind == "intensity")


@pytest.mark.parametrize("name", GEOMETRIC)
def test_every_geometric_op_keeps_the_mask_on_the_shape(name):
    image, mask = shape_pair()
    augment = build_augmentation([full_spec(name)])
    for seed in range(6):
        out, out_mask = augment(image, mask, np.random.default_rng(seed))
        assert out.dtype == np.uint8 and out_mask.dtype == np.uint8
        assert out.shape[:2] == out_mask.shape
        assert set(np.unique(out_mask)) <= {0, 1}
        drawn = out[..., 0] > 115  # where the shape went in the image
        iou = (drawn & (out_mask > 0)).sum() / max((drawn | (out_mask > 0)).sum(), 1)
        assert iou > 0.9, (name, seed, iou)
        if out_mask.sum():
            centre_image = np.argwhere(drawn).mean(axis=0)
            centre_mask = np.argwhere(out_mask).mean(axis=0)
            assert np.abs(centre_image - centre_mask).max() < 1.0


def test_a_chained_pipeline_keeps_alignment_and_changes_something():
    image, mask = shape_pair()
    spec = [full_spec(n, 0.8) for n in ("rotate", "flip_random", "zoom", "random_distortion",
                                        "shear", "skew")]
    augment = build_augmentation(spec)
    changed = 0
    for seed in range(10):
        out, out_mask = augment(image, mask, np.random.default_rng(seed))
        drawn = out[..., 0] > 115
        assert (drawn & (out_mask > 0)).sum() / max((drawn | (out_mask > 0)).sum(), 1) > 0.85
        changed += not np.array_equal(out_mask, mask)
    assert changed >= 8


# ------------------------------------------------------------------------------ the traps

def test_trap_masks_are_interpolated_bicubically_by_augmentor():
    image, mask = shape_pair(128)
    mask255 = mask * 255
    pipeline = Augmentor.DataPipeline([[image, mask255]])
    pipeline.rotate(1, 10, 10)
    pipeline.random_distortion(1, 4, 4, 5)
    pipeline.zoom(1, 1.1, 1.3)
    random.seed(1)
    _, augmentor_mask = pipeline.sample(1)[0]
    assert len(np.unique(augmentor_mask)) > 50  # the trap: a "binary" mask with grey levels
    ours = build_augmentation([full_spec("rotate"), full_spec("random_distortion"),
                               full_spec("zoom")])
    _, out = ours(image, mask255, np.random.default_rng(1))
    assert set(np.unique(out)) == {0, 255}


def test_instance_labels_keep_their_label_set():
    labels = np.zeros((64, 64), np.uint16)
    for k, (x, y) in enumerate([(12, 12), (40, 20), (20, 44), (48, 48)], start=1):
        cv2.circle(labels, (x, y), 7, 300 * k, -1)  # labels above 255 as well
    augment = build_augmentation([full_spec(n) for n in ("rotate", "random_distortion", "zoom",
                                                         "shear")])
    image = (labels > 0).astype(np.uint8)[..., None] * 200
    for seed in range(5):
        _, out = augment(image, labels, np.random.default_rng(seed))
        assert out.dtype == np.uint16 and set(np.unique(out)) <= set(np.unique(labels))


def test_trap_intensity_ops_alter_masks_in_augmentor_but_not_here():
    image, mask = shape_pair()
    image[..., 1] //= 2  # some colour, for random_color
    mask255 = mask * 255
    for name in ("random_brightness", "random_color", "random_contrast", "random_erasing"):
        if name != "random_color":  # colour changes nothing on a grey mask
            pipeline = Augmentor.DataPipeline([[image, mask255]])
            getattr(pipeline, name)(1, *([0.3] if name == "random_erasing" else [0.2, 0.5]))
            random.seed(0)
            np.random.seed(0)
            _, augmentor_mask = pipeline.sample(1)[0]
            assert not np.array_equal(augmentor_mask, mask255), name  # the trap
        augment = build_augmentation([full_spec(name)])
        for seed in range(3):
            out, out_mask = augment(image, mask255, np.random.default_rng(seed))
            assert np.array_equal(out_mask, mask255), name
            assert not np.array_equal(out, image), name


def test_trap_16bit_rotation_is_corrupted_by_pillow_but_not_here():
    constant = np.full((64, 64), 1000, np.uint16)
    corrupted = np.asarray(Image.fromarray(constant).rotate(10, resample=Image.BICUBIC))
    assert corrupted[32, 32] != 1000  # the trap: 1000 comes back as ~150-230
    augment = build_augmentation([full_spec("rotate")])
    out, _ = augment(constant[..., None], None, np.random.default_rng(0))
    assert out.dtype == np.uint16 and np.all(out == 1000)  # rotate crops: no border
    for name in ("random_distortion", "shear", "skew", "zoom", "rotate_without_crop"):
        out, _ = build_augmentation([full_spec(name)])(constant, None, np.random.default_rng(3))
        assert out.dtype == np.uint16 and out.ndim == 2
        assert set(np.unique(out)) <= {0, 1000}, name  # only padding may appear


def test_16bit_shape_stays_aligned_and_in_range():
    mask = shape_pair()[1]
    image = (900 + 400 * mask.astype(np.uint16))[..., None]
    augment = build_augmentation([full_spec(n) for n in ("rotate", "random_distortion")])
    out, out_mask = augment(image, mask, np.random.default_rng(2))
    # In range (bicubic overshoots a little at the sharp edge), not corrupted.
    assert out.dtype == np.uint16 and 700 <= out.min() and out.max() <= 1500
    drawn = out[..., 0] > 1100
    assert (drawn & (out_mask > 0)).sum() / (drawn | (out_mask > 0)).sum() > 0.9


def test_16bit_intensity_ops_work_and_match_the_8bit_ones():
    rng = np.random.default_rng(0)
    rgb8 = (rng.random((16, 16, 3)) * 200 + 20).astype(np.uint8)
    for name in ("random_brightness", "random_contrast", "random_color"):
        augment = build_augmentation([full_spec(name)])
        eight, _ = augment(rgb8, None, np.random.default_rng(5))
        sixteen, _ = augment(rgb8.astype(np.uint16) * 257, None, np.random.default_rng(5))
        assert sixteen.dtype == np.uint16
        assert np.abs(sixteen / 257.0 - eight).max() <= 2.0, name  # same formula, same draw


def test_trap_augmentor_coarsens_probabilities():
    tiny = np.array([[[0], [255]]], np.uint8)

    def augmentor_rate():
        pipeline = Augmentor.DataPipeline([[tiny[..., 0]]])
        pipeline.flip_left_right(0.3)
        random.seed(0)
        return np.mean([out[0][0, 0] == 255 for out in pipeline.sample(4000)])

    assert abs(augmentor_rate() - 0.35) < 0.025  # the trap: p=0.3 fires 35% of the time
    augment = build_augmentation([{"op": "flip_left_right", "probability": 0.3}])
    rng = np.random.default_rng(0)
    ours = np.mean([augment(tiny, None, rng)[0][0, 0, 0] == 255 for _ in range(4000)])
    assert abs(ours - 0.3) < 0.025


def test_trap_resize_antialias_fails_on_new_pillow_but_not_here():
    image, mask = shape_pair()
    pipeline = Augmentor.DataPipeline([[image, mask]])
    pipeline.resize(1, 32, 32, "ANTIALIAS")
    with pytest.raises(AttributeError, match="ANTIALIAS"):
        pipeline.sample(1)
    augment = build_augmentation([{"op": "resize", "probability": 1, "width": 32, "height": 32,
                                   "resample_filter": "ANTIALIAS"}])
    out, out_mask = augment(image, mask, np.random.default_rng(0))
    assert out.shape == (32, 32, 3) and out_mask.shape == (32, 32)
    assert set(np.unique(out_mask)) == {0, 1}


# ------------------------------------------------------------------ randomness and validation

def test_same_seed_same_result_in_any_thread():
    image, mask = shape_pair()
    augment = build_augmentation([full_spec(n, 0.7) for n in ("rotate", "flip_random", "zoom",
                                                              "random_distortion", "skew",
                                                              "random_brightness",
                                                              "random_erasing")])
    expected = [augment(image, mask, np.random.default_rng([7, k])) for k in range(24)]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda k: augment(image, mask, np.random.default_rng([7, k])),
                            reversed(range(24))))[::-1]
    for (a, am), (b, bm) in zip(expected, got):
        assert np.array_equal(a, b) and np.array_equal(am, bm)
    # Augmentor's global random state is not used (nor disturbed).
    random.seed(3)
    before = random.random()
    random.seed(3)
    augment(image, mask, np.random.default_rng(0))
    assert random.random() == before
    assert not all(np.array_equal(expected[0][0], e[0]) for e in expected[1:])


def test_grey_float_and_bool_inputs():
    image, mask = shape_pair()
    augment = build_augmentation([full_spec("rotate"), full_spec("random_brightness")])
    grey, out_mask = augment(image[..., 0], mask.astype(bool), np.random.default_rng(0))
    assert grey.shape == (64, 64) and out_mask.dtype == bool
    f = image.astype(np.float32) / 255
    out, _ = augment(f, None, np.random.default_rng(0))
    assert out.dtype == np.float32 and out.shape == f.shape


@pytest.mark.parametrize("spec,match", [
    ([{"op": "rotat", "probability": 1}], r"augmentation\[0\]: unknown op 'rotat'.*'rotate'"),
    ([{"op": "flip_left_right", "probability": 0.5},
      {"op": "zoom", "probability": 1, "min_factor": 1.1, "max_factr": 1.2}],
     r"augmentation\[1\] \(zoom\): unknown key 'max_factr'.*'max_factor'"),
    ([{"op": "zoom", "probability": 1, "min_factor": 1.1}],
     r"augmentation\[0\] \(zoom\): missing 'max_factor'"),
    ([{"op": "flip_left_right"}], r"flip_left_right\): missing 'probability'"),
    ([{"op": "flip_left_right", "probability": 1.5}], r"probability must be <= 1"),
    ([{"op": "rotate", "probability": 1, "max_left_rotation": 40, "max_right_rotation": 5}],
     r"\(rotate\): max_left_rotation must be <= 25"),
    ([{"op": "zoom", "probability": 1, "min_factor": 1.5, "max_factor": 1.2}],
     r"min_factor must be <= max_factor"),
    ([{"op": "random_distortion", "probability": 1, "grid_width": 4.5, "grid_height": 4,
       "magnitude": 2}], r"grid_width must be an integer"),
    ([{"op": "resize", "probability": 1, "width": 8, "height": 8, "resample_filter": "CUBIC"}],
     r"resample_filter must be one of"),
    ([{"probability": 1}], r"missing 'op'"),
    ({"op": "rotate"}, r"must be a list"),
])
def test_bad_specs_name_the_op_and_key(spec, match):
    with pytest.raises(ValueError, match=match):
        validate_augmentation(spec)


def test_validated_spec_has_defaults_and_empty_spec_gives_none():
    out = validate_augmentation([{"op": "skew", "probability": 0.5}])
    assert out == [{"op": "skew", "probability": 0.5, "magnitude": 1.0}]
    identity = build_augmentation([])
    image, mask = shape_pair()
    assert len(identity) == 0 and identity(image, mask)[0] is image
    assert isinstance(build_augmentation([{"op": "flip_random", "probability": 1}]),
                      Augmentation)
    assert set(INTENSITY) == {"random_brightness", "random_contrast", "random_color",
                              "random_erasing", "greyscale", "gaussian_noise",
                              "gaussian_blur", "gamma"}


def test_nnunet_intensity_operations_touch_the_image_only_and_do_what_they_say():
    """Gaussian noise, blur and gamma (nnU-Net's, not Augmentor's): the mask is untouched, the
    dtype and range kept, the same rng gives the same image, and each has its effect."""
    rng = np.random.default_rng(0)
    image = (rng.random((48, 48)) * 4000 + 100).astype(np.uint16)
    mask = np.zeros((48, 48), np.uint8)
    mask[10:20, 10:20] = 1

    def run(op, seed=1, img=image):
        return build_augmentation([dict(op, probability=1.0)])(img, mask,
                                                               np.random.default_rng(seed))

    for op in ({"op": "gaussian_noise"}, {"op": "gaussian_blur"}, {"op": "gamma"}):
        out, out_mask = run(op)
        assert out.dtype == image.dtype and out.shape == image.shape
        assert np.array_equal(out_mask, mask)
        assert np.array_equal(out, run(op)[0]) and not np.array_equal(out, image)
    blurred, _ = run({"op": "gaussian_blur", "min_sigma": 2.0, "max_sigma": 2.0})
    assert blurred.astype(float).std() < 0.5 * image.astype(float).std()
    dark, _ = run({"op": "gamma", "min_gamma": 2.0, "max_gamma": 2.0})
    assert dark.min() == image.min() and dark.max() == image.max()  # the range is kept
    assert dark.astype(float).mean() < image.astype(float).mean()
    flat = np.full((16, 16), 7, np.uint8)
    assert np.array_equal(run({"op": "gamma"}, img=flat)[0], flat)
    noisy, _ = run({"op": "gaussian_noise", "max_sigma": 0.05}, img=flat.astype(np.float32))
    assert np.array_equal(noisy, flat)  # a constant image has no range to scale noise by
    rgb = (rng.random((16, 16, 3)) * 255).astype(np.uint8)
    assert run({"op": "gaussian_noise", "max_sigma": 0.2}, img=rgb)[0].dtype == np.uint8
    with pytest.raises(ValueError, match="min_sigma must be <= max_sigma"):
        build_augmentation([{"op": "gaussian_blur", "probability": 1, "min_sigma": 3,
                             "max_sigma": 1}])
