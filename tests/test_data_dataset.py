"""SegmentationDataset / ClassificationDataset: fitting, masks, augmentation, workers, errors."""

import numpy as np
import pytest

from kerasmed.data import lookalike
from kerasmed.data.dataset import ClassificationDataset, SegmentationDataset
from kerasmed.data.io import ImageReadError
from kerasmed.data.readers import Sample, read_dataset, read_folder_pair
from kerasmed.data.synthetic import generate_polyp_dataset

pytestmark = pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")

SPEC = [{"op": "rotate", "probability": 0.7, "max_left_rotation": 10, "max_right_rotation": 10},
        {"op": "flip_left_right", "probability": 0.5},
        {"op": "zoom", "probability": 0.5, "min_factor": 1.1, "max_factor": 1.3},
        {"op": "random_distortion", "probability": 0.5, "grid_width": 4, "grid_height": 4,
         "magnitude": 3},
        {"op": "random_brightness", "probability": 0.5, "min_factor": 0.8, "max_factor": 1.2}]


@pytest.fixture(scope="module")
def polyps(tmp_path_factory):
    root = generate_polyp_dataset(tmp_path_factory.mktemp("d") / "p", n_images=12, height=40,
                                  width=56)
    return read_folder_pair(root)


def batches(ds):
    return [ds[i] for i in range(len(ds))]


def same(a, b):
    return all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b))


def through_keras(ds, epochs=2):
    """Batches as model.fit receives them (Keras's PyDataset adapter: threads or processes)."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(ds, shuffle=False)
    out = []
    for _ in range(epochs):
        adapter.on_epoch_begin()
        out.append([(np.asarray(x), np.asarray(y)) for x, y in adapter.get_numpy_iterator()])
        adapter.on_epoch_end()
    return out


def reference(make, epochs=2):
    ds = make(workers=1)
    out = []
    for _ in range(epochs):
        out.append(batches(ds))
        ds.on_epoch_end()
    return out


# ----------------------------------------------------------------------- augmentation, seeds

def test_augmentation_only_when_training_and_masks_stay_binary(polyps):
    plain = SegmentationDataset(polyps, 4, (32, 32), shuffle=True, seed=0)
    aug = SegmentationDataset(polyps, 4, (32, 32), shuffle=True, seed=0, augment=SPEC)
    assert np.array_equal(plain._order, aug._order)
    assert not same(batches(plain), batches(aug))
    for x, y in batches(aug):
        assert x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
        assert set(np.unique(y)) <= {0.0, 1.0}
    val = SegmentationDataset(polyps, 4, (32, 32), augment=SPEC)  # shuffle=False: no augment
    assert same(batches(val), batches(SegmentationDataset(polyps, 4, (32, 32))))


def test_augmented_epochs_differ_and_repeat_with_the_seed(polyps):
    def run(seed):
        return reference(lambda **kw: SegmentationDataset(polyps, 4, (32, 32), shuffle=True,
                                                          seed=seed, augment=SPEC, **kw))
    a = run(1)
    assert same(a[0], run(1)[0]) and same(a[1], run(1)[1])
    assert not same(a[0], a[1])
    assert not same(a[0], run(2)[0])


@pytest.mark.parametrize("workers,processes", [(2, False), (2, True)])
def test_same_batches_with_several_workers(polyps, workers, processes):
    def make(**kw):
        return SegmentationDataset(polyps, 3, (32, 32), shuffle=True, seed=5, augment=SPEC,
                                   fit="random_crop", **kw)
    expected = reference(make)
    got = through_keras(make(workers=workers, use_multiprocessing=processes))
    for e, g in zip(expected, got):
        assert len(e) == len(g) == 4 and same(e, g)


def test_set_epoch_resumes_the_sequence(polyps):
    ds = SegmentationDataset(polyps, 4, (32, 32), shuffle=True, seed=3, augment=SPEC)
    ds.on_epoch_end()
    ds.on_epoch_end()
    third = batches(ds)
    fresh = SegmentationDataset(polyps, 4, (32, 32), shuffle=True, seed=3, augment=SPEC)
    fresh.set_epoch(2)
    assert fresh.epoch == 2 and same(third, batches(fresh))


def test_cache_gives_the_same_batches(polyps):
    def make(cache, fit, **kw):
        return SegmentationDataset(polyps, 4, (24, 24), shuffle=True, seed=0, augment=SPEC,
                                   cache=cache, fit=fit, **kw)
    for fit in ("resize", "random_crop"):
        cached = make(True, fit)
        first = batches(cached)
        assert len(cached._cache) == 12
        assert same(first, batches(make(False, fit))) and same(first, batches(cached))
        scanned = make(True, fit, on_error="skip")  # the scan fills the cache
        assert len(scanned._cache) == 12 and same(first, batches(scanned))


# ------------------------------------------------------------------------------ fitting

def test_fit_modes(polyps):
    size = (24, 32)
    for fit in ("resize", "pad", "center_crop", "random_crop"):
        x, y = SegmentationDataset(polyps, 2, size, fit=fit, shuffle=True)[0]
        assert x.shape == (2, 24, 32, 3) and y.shape == (2, 24, 32, 1), fit
    # pad keeps the aspect ratio: a 40x56 frame in 32x32 has 4+ padded rows top and bottom
    x, y = SegmentationDataset(polyps, 1, (32, 32), fit="pad")[0]
    assert x[0, :4].max() == 0 and x[0, -4:].max() == 0 and x[0, 10:20].max() > 0
    # random crops move with the epoch, reproducibly
    ds = SegmentationDataset(polyps, 12, (16, 16), fit="random_crop", shuffle=True, seed=0)
    first = ds[0]
    ds.on_epoch_end()
    assert not np.array_equal(first[0], ds[0][0])
    val = SegmentationDataset(polyps, 12, (16, 16), fit="random_crop")
    assert np.array_equal(val[0][0], val[0][0])


def test_tiles_cover_large_images(polyps):
    ds = SegmentationDataset(polyps[:2], 4, (16, 16), fit="tile")
    # 40x56 -> rows at 0, 16, 24 and columns at 0, 16, 32, 40: 12 tiles per image
    assert len(ds.tiles) == 24 and len(ds) == 6
    assert ds.tiles[0] == (polyps[0], (0, 0)) and ds.tiles[11] == (polyps[0], (24, 40))
    x, y = ds[5]
    assert x.shape == (4, 16, 16, 3)
    overlapped = SegmentationDataset(polyps[:1], 4, (16, 16), fit="tile", tile_overlap=8)
    assert len(overlapped.tiles) > 12


# ------------------------------------------------------------------------ mask encodings

def test_instances_and_binary_targets_from_glas(tmp_path):
    lookalike.make_glas(tmp_path, counts=(("train", 4),))
    samples = read_dataset("glas", tmp_path)
    binary = SegmentationDataset(samples, 2, (16, 24))
    x, y = binary[0]
    assert y.dtype == np.float32 and set(np.unique(y)) == {0.0, 1.0}
    inst = SegmentationDataset(samples, 2, (16, 24), mask_mode="instances", shuffle=True,
                               augment=SPEC)
    x, y = inst[0]
    assert y.dtype == np.int32 and y.max() >= 2 and set(np.unique(y)) <= {0, 1, 2, 3}


def test_two_class_one_hot_targets_for_softmax_heads(tmp_path):
    """GlaS instance labels become Micro-Net's [background, gland] one-hot target."""
    lookalike.make_glas(tmp_path, counts=(("train", 2),))
    samples = read_dataset("glas", tmp_path)
    binary = SegmentationDataset(samples, 2, (16, 24))
    onehot = SegmentationDataset(samples, 2, (16, 24), one_hot=True)
    (_, y1), (_, y2) = binary[0], onehot[0]
    assert y2.shape == (2, 16, 24, 2) and y2.dtype == np.float32
    assert np.array_equal(y2[..., 1:], y1) and np.array_equal(y2[..., 0], 1 - y1[..., 0])
    with pytest.raises(ValueError, match="one_hot applies to binary and class masks"):
        SegmentationDataset(samples, 2, (16, 24), mask_mode="distance", one_hot=True)


def _instance_folder(root, labels):
    for k, mask in enumerate(labels):
        lookalike.write_image(root / "masks" / f"{k}.png", mask.astype(np.uint8))
        lookalike.write_image(root / "images" / f"{k}.png",
                              np.full(mask.shape + (3,), 50, np.uint8))
    return read_folder_pair(root)


def test_distance_targets_from_instance_masks(tmp_path):
    """Two touching squares: each object's distance map peaks at 1 inside it, 0 outside and at
    the boundary between them; raw distances count pixels to the nearest other pixel."""
    labels = np.zeros((12, 16), np.uint8)
    labels[2:9, 1:8] = 1     # 7x7: centre 4 pixels from outside
    labels[2:9, 8:15] = 2    # touches object 1 along a column
    samples = _instance_folder(tmp_path, [labels, labels])
    ds = SegmentationDataset(samples, 2, (12, 16), mask_mode="distance")
    _, y = ds[0]
    assert y.shape == (2, 12, 16, 1) and y.dtype == np.float32
    d = y[0, ..., 0]
    assert d[5, 4] == pytest.approx(1.0) and d[5, 11] == pytest.approx(1.0)
    assert np.all(d[labels == 0] == 0) and np.all(d[labels > 0] > 0)
    assert d[5, 7] == pytest.approx(0.25) and d[5, 8] == pytest.approx(0.25)  # edge pixels
    raw = SegmentationDataset(samples, 2, (12, 16), mask_mode="distance",
                              distance_normalize=False)
    assert raw[0][1][0, 5, 4, 0] == pytest.approx(4.0)
    # Augmented training batches: the map is recomputed from the moved labels.
    aug = SegmentationDataset(samples, 2, (12, 16), mask_mode="distance", shuffle=True,
                              augment=[{"op": "flip_left_right", "probability": 1.0}])
    flipped = aug[0][1][0, ..., 0]
    assert np.allclose(flipped, d[:, ::-1])


def test_targets_cropped_or_padded_to_the_output_size(tmp_path):
    labels = np.zeros((12, 16), np.uint8)
    labels[3:9, 4:12] = 1
    samples = _instance_folder(tmp_path, [labels])
    full = SegmentationDataset(samples, 1, (12, 16), mask_mode="distance")
    crop = SegmentationDataset(samples, 1, (12, 16), mask_mode="distance", target_size=(8, 10))
    x, y = crop[0]
    assert x.shape == (1, 12, 16, 3) and y.shape == (1, 8, 10, 1)
    # The window of the full-size map: objects cut by it keep their true depth.
    assert np.array_equal(y[0], full[0][1][0, 2:10, 3:13])
    pad = SegmentationDataset(samples, 1, (12, 16), target_size=(14, 20))
    y = pad[0][1][0, ..., 0]
    assert y.shape == (14, 20) and y[1:13, 2:18].sum() == (labels > 0).sum() and y[0].sum() == 0
    with pytest.raises(ValueError, match="target_size"):
        SegmentationDataset(samples, 1, (12, 16), target_size=(8,))


def test_class_targets_sparse_and_one_hot(tmp_path):
    for k in range(3):
        m = np.zeros((12, 12), np.uint8)
        m[:4], m[8:] = 128, 255
        lookalike.write_image(tmp_path / "masks" / f"{k}.png", m)
        lookalike.write_image(tmp_path / "images" / f"{k}.png", np.full((12, 12, 3), 9, np.uint8))
    samples = read_folder_pair(tmp_path)
    sparse = SegmentationDataset(samples, 3, (12, 12), mask_mode="classes",
                                 class_values=[0, 128, 255])
    _, y = sparse[0]
    assert y.shape == (3, 12, 12, 1) and y.dtype == np.int32 and y[0, 0, 0, 0] == 1
    onehot = SegmentationDataset(samples, 3, (12, 12), mask_mode="classes",
                                 class_values=[0, 128, 255], one_hot=True)
    _, y = onehot[0]
    assert y.shape == (3, 12, 12, 3) and np.allclose(y.sum(-1), 1) and y[0, 10, 0, 2] == 1
    # Every mask is decoded when the dataset is made: the unknown grey level is found then.
    with pytest.raises(ImageReadError, match=r"masks/0\.png.*\[128\]"):
        SegmentationDataset(samples, 3, (12, 12), mask_mode="classes", class_values=[0, 255])


def test_16bit_microscopy_end_to_end(tmp_path):
    lookalike.make_microscopy16(tmp_path)
    samples = read_dataset("folder", tmp_path, mask_type="instances")
    ds = SegmentationDataset(samples, 2, (32, 32), channels=1, shuffle=True, augment=SPEC)
    x, y = ds[0]
    assert x.shape == (2, 32, 32, 1) and x.min() >= 0 and x.max() == 1.0 and x.std() > 0.1
    assert set(np.unique(y)) == {0.0, 1.0}


# ------------------------------------------------------------------------------ bad input

def test_unreadable_file_raise_or_skip_and_report(tmp_path):
    root = generate_polyp_dataset(tmp_path / "p", n_images=6, height=24, width=24)
    bad = root / "images" / "0002.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated
    samples = read_folder_pair(root)
    with pytest.raises(ImageReadError, match="(?s)1 of 6 sample.*0002.png"):
        SegmentationDataset(samples, 2, (16, 16))  # decoded when made, before any batch
    with pytest.warns(UserWarning, match=r"(?s)skipped 1 of 6.*0002\.png"):
        skipping = SegmentationDataset(samples, 2, (16, 16), on_error="skip")
    assert len(skipping.samples) == 5 and len(skipping) == 3
    assert skipping.skipped[0][0].image == bad and "0002.png" in skipping.skipped[0][1]


def test_missing_and_empty_files_found_when_the_dataset_is_made(tmp_path):
    root = generate_polyp_dataset(tmp_path / "p", n_images=4, height=24, width=24)
    samples = read_folder_pair(root)
    (root / "masks" / "0001.png").write_bytes(b"")
    (root / "images" / "0003.png").unlink()
    with pytest.raises(ImageReadError) as err:
        SegmentationDataset(samples, 2, (16, 16))
    assert "masks/0001.png" in str(err.value) and "images/0003.png" in str(err.value)


def test_unexpected_mask_values_skip_or_fail(tmp_path):
    root = generate_polyp_dataset(tmp_path / "p", n_images=4, height=24, width=24)
    lookalike.write_image(root / "masks" / "0000.png", np.full((24, 24), 3, np.uint8) *
                          (np.arange(24) % 3)[None, :].astype(np.uint8))
    samples = read_folder_pair(root)
    with pytest.raises(ImageReadError, match=r"0000\.png.*instance-label or class-index"):
        SegmentationDataset(samples, 1, (16, 16))
    with pytest.warns(UserWarning, match="0000.png"):
        ds = SegmentationDataset(samples, 1, (16, 16), on_error="skip")
    assert len(ds) == 3


def test_mismatched_sizes_and_argument_errors(tmp_path, polyps):
    lookalike.write_image(tmp_path / "images" / "a.png", np.zeros((8, 8, 3), np.uint8))
    lookalike.write_image(tmp_path / "masks" / "a.png", np.zeros((8, 9), np.uint8))
    with pytest.raises(ImageReadError, match=r"9x8 but its image .*a\.png is 8x8"):
        SegmentationDataset(read_folder_pair(tmp_path), 1, (8, 8))
    with pytest.raises(ValueError, match="fit must be one of"):
        SegmentationDataset(polyps, 1, (8, 8), fit="crop")
    with pytest.raises(ValueError, match="mask_mode"):
        SegmentationDataset(polyps, 1, (8, 8), mask_mode="multi")
    with pytest.raises(ValueError, match=r"augmentation\[0\]: unknown op"):
        SegmentationDataset(polyps, 1, (8, 8), augment=[{"op": "spin", "probability": 1}])
    with pytest.raises(ValueError, match="no mask"):
        SegmentationDataset([Sample("x.png")], 1, (8, 8))
    with pytest.raises(ValueError, match="fewer than one batch"):
        SegmentationDataset(polyps, 20, (8, 8), shuffle=True)


# ------------------------------------------------------------------------- classification

def test_classification_dataset_on_oct(tmp_path):
    lookalike.make_oct2017(tmp_path, per_class=3, splits=("train",))
    samples = read_dataset("oct2017", tmp_path)
    ds = ClassificationDataset(samples, 4, (24, 24), channels=1, shuffle=True, seed=0,
                               augment=[{"op": "flip_left_right", "probability": 0.5}])
    assert ds.classes == ["CNV", "DME", "DRUSEN", "NORMAL"] and len(ds) == 3
    x, y = ds[0]
    assert x.shape == (4, 24, 24, 1) and y.dtype == np.int32 and set(y) <= {0, 1, 2, 3}
    labels = sorted(int(v) for i in range(len(ds)) for v in ds[i][1])
    assert labels == sorted([0, 1, 2, 3] * 3)
    onehot = ClassificationDataset(samples, 4, (24, 24), one_hot=True)
    assert onehot[0][1].shape == (4, 4) and onehot[0][0].shape == (4, 24, 24, 3)
    assert ds.class_weights() == {0: 1.0, 1: 1.0, 2: 1.0, 3: 1.0}
    with pytest.raises(ValueError, match=r"labels \['NORMAL'\] are not among"):
        ClassificationDataset(samples, 4, (24, 24), classes=["CNV", "DME", "DRUSEN"])
