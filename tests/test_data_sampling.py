"""fit="patches": random training patches, a share of each batch forced onto foreground
(nnU-Net's oversample_foreground_percent); validation on the tile grid."""

import warnings

import cv2
import numpy as np
import pytest

from kerasmed.data import lookalike
from kerasmed.data.dataset import ClassificationDataset, SegmentationDataset
from kerasmed.data.readers import read_folder_pair
from kerasmed.data.spatial import (FIT_MODES, crop_pair, foreground_patch_origin,
                                   random_patch_origin, tile_origins)
from kerasmed.evaluation.inference import inference_mode
from kerasmed.names import KerasmedWarning

PATCH = (32, 32)
SIDE = 6  # the object: one SIDE x SIDE square per image


def _write(root, images, masks):
    for k, (image, mask) in enumerate(zip(images, masks)):
        lookalike.write_image(root / "images" / f"{k:02d}.png", image)
        lookalike.write_image(root / "masks" / f"{k:02d}.png", mask)
    return read_folder_pair(root)


def _squares(n, shape, seed=0, value=255, empty=()):
    """n noisy RGB images of ``shape`` and masks with one SIDE x SIDE square of ``value``
    (none for the indices in ``empty``); returns (images, masks)."""
    rng = np.random.default_rng(seed)
    images, masks = [], []
    for k in range(n):
        images.append(rng.integers(1, 256, shape + (3,), dtype=np.uint8))
        mask = np.zeros(shape, np.uint8)
        if k not in empty:
            y = int(rng.integers(0, shape[0] - SIDE + 1))
            x = int(rng.integers(0, shape[1] - SIDE + 1))
            mask[y:y + SIDE, x:x + SIDE] = value if np.isscalar(value) else value[k % len(value)]
        masks.append(mask)
    return images, masks


def random_rate(masks, size=PATCH):
    """The chance that a uniform random patch of a uniformly drawn image holds foreground:
    for each image, the share of all patch placements whose window has a foreground pixel."""
    rates = []
    for mask in masks:
        fg = (mask > 0).astype(np.int64)
        integral = np.pad(fg.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        h, w = size
        sums = (integral[h:, w:] - integral[:-h, w:] - integral[h:, :-w] + integral[:-h, :-w])
        rates.append(float((sums > 0).mean()))
    return float(np.mean(rates))


@pytest.fixture(scope="module")
def squares(tmp_path_factory):
    images, masks = _squares(8, (128, 128))
    return _write(tmp_path_factory.mktemp("squares"), images, masks), masks


def make(samples, share=1 / 3, batch=6, **kw):
    kw.setdefault("shuffle", True)
    kw.setdefault("seed", 0)
    return SegmentationDataset(samples, batch, PATCH, fit="patches", foreground_share=share,
                               **kw)


def batches(ds, order=None):
    order = range(len(ds)) if order is None else order
    got = {i: ds[i] for i in order}
    return [got[i] for i in range(len(ds))]


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1])
                                    for x, y in zip(a, b))


def has_foreground(y):
    """Per patch of a batch of targets: does it hold foreground?"""
    return (y.reshape(len(y), -1) > 0).any(axis=1)


# ------------------------------------------------------------------------------- the helper

def test_foreground_patch_origin_holds_the_pixel_anywhere_in_the_patch():
    mask = np.zeros((100, 80), np.uint8)
    mask[40, 30] = 1
    rng = np.random.default_rng(0)
    origins = [foreground_patch_origin(mask, mask.shape, PATCH, rng) for _ in range(400)]
    for y, x in origins:
        assert 0 <= y <= 100 - 32 and 0 <= x <= 80 - 32  # inside the image
        assert y <= 40 < y + 32 and x <= 30 < x + 32     # the pixel inside the patch
    ys, xs = {o[0] for o in origins}, {o[1] for o in origins}
    assert len(ys) > 20 and len(xs) > 20  # a random place in the patch, not its centre
    assert min(ys) == 9 and max(ys) == 40  # every placement holding the pixel is reachable
    # Near the edge the patch stays inside the image.
    mask[:] = 0
    mask[99, 0] = 7  # any non-zero value is foreground (a class index, an instance label)
    for _ in range(50):
        assert foreground_patch_origin(mask, mask.shape, PATCH, rng) == (68, 0)
    # The flat index gives the same draws as the mask.
    mask[10, 70] = 1
    a = foreground_patch_origin(mask, mask.shape, PATCH, np.random.default_rng(5))
    b = foreground_patch_origin(np.flatnonzero(mask), mask.shape, PATCH,
                                np.random.default_rng(5))
    assert a == b
    # No foreground: None. An image smaller than the patch: centred (padded), as random_crop.
    assert foreground_patch_origin(np.zeros((50, 50)), (50, 50), PATCH, rng) is None
    small = np.zeros((20, 50), np.uint8)
    small[3, 45] = 1
    y, x = foreground_patch_origin(small, small.shape, PATCH, rng)
    assert y == -6 and 45 - 31 <= x <= 18
    assert random_patch_origin((20, 24), PATCH, rng) == (-6, -4)
    with pytest.raises(ValueError, match="foreground mask"):
        foreground_patch_origin(small, (21, 50), PATCH, rng)


def test_patches_is_a_fit_mode_predicted_by_sliding_window():
    assert "patches" in FIT_MODES and inference_mode("patches") == "tile"


# ------------------------------------------------------------------ foreground oversampling

def test_a_third_of_each_batch_is_forced_onto_foreground(squares):
    samples, masks = squares
    ds = make(samples, 1 / 3, patches_per_epoch=600, cache=True)
    assert ds.foreground_per_batch == 2 and len(ds) == 100
    expected = random_rate(masks)
    assert 0.05 < expected < 0.2  # a tiny object in a large image: random patches rarely hit it
    free = []
    for x, y in batches(ds):
        assert x.shape == (6, 32, 32, 3) and y.shape == (6, 32, 32, 1)
        found = has_foreground(y)
        assert found[4:].all()  # the last two of every batch
        free += list(found[:4])
    # The other four are uniform: their rate is the random one (400 draws, sd ~0.018).
    assert abs(np.mean(free) - expected) < 0.07
    # So exactly 2 of a batch hold foreground whenever its random patches miss, most batches.
    counts = [int(has_foreground(ds[i][1]).sum()) for i in range(len(ds))]
    assert min(counts) == 2 and np.mean(np.array(counts) == 2) > 0.35


def test_share_zero_is_random_and_share_one_is_all_foreground(squares):
    samples, masks = squares
    expected = random_rate(masks)
    zero = make(samples, 0, patches_per_epoch=600, cache=True)
    assert zero.foreground_per_batch == 0
    rate = np.mean([has_foreground(y).mean() for _, y in batches(zero)])
    assert abs(rate - expected) < 0.06  # 600 draws, sd ~0.014
    one = make(samples, 1, patches_per_epoch=120, cache=True)
    assert all(has_foreground(y).all() for _, y in batches(one))


def test_images_without_foreground_give_their_forced_turn_to_others(tmp_path):
    images, masks = _squares(6, (96, 96), seed=2, empty=(0, 1, 2, 3))
    samples = _write(tmp_path, images, masks)
    for verify in (True, False):  # known from the scan, or found when first needed
        ds = make(samples, 1, patches_per_epoch=60, verify=verify)
        with warnings.catch_warnings():
            warnings.simplefilter("error", KerasmedWarning)
            assert all(has_foreground(y).all() for _, y in batches(ds))


def test_class_index_and_instance_masks(tmp_path):
    images, masks = _squares(6, (96, 96), seed=3, value=(128, 255))
    samples = _write(tmp_path / "c", images, masks)
    ds = make(samples, 0.5, patches_per_epoch=60, mask_mode="classes",
              class_values=[0, 128, 255])
    classes = set()
    for _, y in batches(ds):
        assert y.dtype == np.int32 and has_foreground(y)[3:].all()
        classes |= set(np.unique(y[3:]).tolist())
    assert classes == {0, 1, 2}  # either class counts as foreground
    labels = [np.where(m > 0, k % 3 + 1, 0).astype(np.uint8) for k, m in enumerate(masks)]
    samples = _write(tmp_path / "i", images, labels)
    dist = make(samples, 0.5, patches_per_epoch=60, mask_mode="distance")
    assert all(has_foreground(y)[3:].all() for _, y in batches(dist))


# ---------------------------------------------------------------------- epochs, determinism

def test_epoch_length_and_default(squares, tmp_path):
    samples, _ = squares
    assert len(make(samples, patches_per_epoch=100)) == 100 // 6
    assert len(make(samples, patches_per_epoch=100, shuffle=False, training=True)) == 17
    # Default: len(samples) * round(median pixels / patch pixels) = 8 * (128*128 / 32*32).
    ds = make(samples)
    assert ds.patches_per_epoch == 8 * 16 and len(ds) == 128 // 6
    images, masks = _squares(2, (40, 40), seed=4)
    small = make(_write(tmp_path, images, masks))  # 2 * round(1600 / 1024) = 4: one batch
    assert small.patches_per_epoch == 6 and len(small) == 1


def test_same_batches_whatever_the_order_workers_or_cache(squares):
    samples, _ = squares
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    spec = [{"op": "flip_left_right", "probability": 0.5}]
    reference = make(samples, patches_per_epoch=36, augment=spec, workers=1)
    first = batches(reference)
    backwards = make(samples, patches_per_epoch=36, augment=spec, cache=True)
    assert same(first, batches(backwards, order=range(len(backwards) - 1, -1, -1)))
    threads = make(samples, patches_per_epoch=36, augment=spec, workers=2)
    adapter = PyDatasetAdapter(threads, shuffle=False)
    adapter.on_epoch_begin()
    assert same(first, [(np.asarray(x), np.asarray(y)) for x, y in adapter.get_numpy_iterator()])
    adapter.on_epoch_end()
    # Epochs differ, repeat with set_epoch, and the seed matters.
    reference.on_epoch_end()
    second = batches(reference)
    assert not any(np.array_equal(a[0], b[0]) for a, b in zip(first, second))
    resumed = make(samples, patches_per_epoch=36, augment=spec)
    resumed.set_epoch(1)
    assert same(second, batches(resumed))
    assert not same(first, batches(make(samples, patches_per_epoch=36, augment=spec, seed=1)))


def test_patches_are_cut_at_native_scale(squares):
    samples, _ = squares
    ds = make(samples, 1, patches_per_epoch=6, normalization="dtype_range")
    x, y = ds[0]
    full = [cv2.imread(str(s.image))[..., ::-1] for s in samples]
    for patch in x:  # each patch is a window of one of the images, unscaled
        pixels = np.round(patch * 255).astype(np.uint8)
        assert any(_find_window(image, pixels) for image in full)


def _find_window(image, patch):
    hits = np.argwhere((image[:-31, :-31] == patch[0, 0]).all(-1))
    return any(np.array_equal(image[a:a + 32, b:b + 32], patch) for a, b in hits)


# ----------------------------------------------------------------- validation, small, empty

def test_validation_is_the_tile_grid(squares):
    samples, _ = squares
    val = SegmentationDataset(samples[:3], 4, PATCH, fit="patches", tile_overlap=8,
                              patches_per_epoch=100)  # training only: ignored
    tile = SegmentationDataset(samples[:3], 4, PATCH, fit="tile", tile_overlap=8)
    assert val.tiles == tile.tiles and len(val.tiles) == 3 * len(tile_origins(128, 128, PATCH, 8))
    assert same(batches(val), batches(tile))
    val.on_epoch_end()
    assert same(batches(val), batches(tile))  # deterministic: the same every epoch
    with pytest.raises(ValueError, match="drawn anew every epoch"):
        make(samples, patches_per_epoch=12).tiles


def test_an_image_smaller_than_the_patch_is_padded(tmp_path):
    mask = np.zeros((20, 24), np.uint8)
    mask[8:12, 10:14] = 255
    samples = _write(tmp_path, [np.full((20, 24, 3), 200, np.uint8)] * 2, [mask] * 2)
    ds = make(samples, 0.5, batch=2, patches_per_epoch=4, normalization="dtype_range")
    for x, y in batches(ds):
        assert x.shape == (2, 32, 32, 3)
        assert x[:, :6].max() == 0 and x[:, 26:].max() == 0 and x[:, :, :4].max() == 0
        assert np.allclose(x[:, 6:26, 4:28], 200 / 255)
        expected, _ = crop_pair(mask, None, -6, -4, PATCH)
        assert np.array_equal(y[..., 0], np.stack([expected > 0] * 2))


def test_all_background_warns_and_still_yields_batches(tmp_path):
    images, masks = _squares(4, (64, 64), seed=5, empty=range(4))
    samples = _write(tmp_path, images, masks)
    with pytest.warns(KerasmedWarning, match="no mask .* has foreground"):
        ds = make(samples, 1 / 3, patches_per_epoch=12)
    for x, y in batches(ds):
        assert x.shape == (6, 32, 32, 3) and not y.any()
    lazy = make(samples, 1 / 3, patches_per_epoch=12, verify=False)  # no scan: found on reading
    with pytest.warns(KerasmedWarning, match="every patch is placed at random") as record:
        got = batches(lazy)
    assert len(got) == 2 and len([w for w in record if w.category is KerasmedWarning]) == 1
    with warnings.catch_warnings():  # once
        warnings.simplefilter("error", KerasmedWarning)
        batches(lazy)
    with warnings.catch_warnings():  # share 0 asks for no foreground: nothing to warn about
        warnings.simplefilter("error", KerasmedWarning)
        make(samples, 0, patches_per_epoch=12)


def test_bad_arguments(squares, tmp_path):
    samples, _ = squares
    for share in (-0.1, 1.5, "a", None, True):
        with pytest.raises(ValueError, match="foreground_share"):
            make(samples, share)
    with pytest.raises(ValueError, match="patches_per_epoch=5 is less than one batch of 6"):
        make(samples, patches_per_epoch=5)
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="patches_per_epoch must be a positive integer"):
            make(samples, patches_per_epoch=bad)
    with pytest.raises(ValueError, match="patches_per_epoch applies to fit='patches' only"):
        SegmentationDataset(samples, 6, PATCH, fit="tile", patches_per_epoch=60)
    assert len(make(samples, patches_per_epoch=5, shuffle=False)) == 22  # validation: tiles
    lookalike.make_oct2017(tmp_path, per_class=1, splits=("train",))
    from kerasmed.data.readers import read_dataset

    with pytest.raises(ValueError, match="fit must be one of"):
        ClassificationDataset(read_dataset("oct2017", tmp_path), 2, PATCH, fit="patches")
    assert "patches" not in ClassificationDataset._fit_modes


# ------------------------------------------------------------------------ passes per epoch

def test_several_passes_per_epoch_show_every_image_that_often_each_augmented_anew(squares):
    """``passes_per_epoch``: one epoch of the whole-image fits goes over the images k times in
    one shuffled order, each repeat its own item (its own flip); validation is unchanged."""
    samples, _ = squares
    flip = [{"op": "flip_left_right", "probability": 0.5}]
    one = SegmentationDataset(samples, 2, PATCH, shuffle=True, seed=3, augment=flip)
    three = SegmentationDataset(samples, 2, PATCH, shuffle=True, seed=3, augment=flip,
                                passes_per_epoch=3)
    assert len(one) == 4 and len(three) == 12
    assert sorted(three._items[i][0] for i in three._order) == sorted(list(range(8)) * 3)
    # The repeats of an image are separate draws: some image is flipped in one and not another.
    images = np.concatenate([three[b][0] for b in range(len(three))])
    by_sample = {}
    for position, item in enumerate(three._order):
        by_sample.setdefault(three._items[item][0], []).append(images[position])
    assert any(not np.array_equal(views[0], views[1]) or not np.array_equal(views[1], views[2])
               for views in by_sample.values())
    validation = SegmentationDataset(samples, 2, PATCH, shuffle=False, passes_per_epoch=3)
    assert len(validation) == 4
    with pytest.raises(ValueError, match="passes_per_epoch applies to the whole-image fits"):
        make(samples, passes_per_epoch=2)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="passes_per_epoch must be a positive integer"):
            SegmentationDataset(samples, 2, PATCH, shuffle=True, passes_per_epoch=bad)
