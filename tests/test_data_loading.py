import cv2
import numpy as np
import pytest

from kerasmed.data.dataset import SegmentationDataset, normalize_image
from kerasmed.data.io import ImageReadError, read_image, read_mask
from kerasmed.data.readers import DatasetLayoutError, Sample, read_folder_pair
from kerasmed.data.splits import split_by_fraction
from kerasmed.data.synthetic import generate_polyp_dataset


def test_truncated_image_is_reported_with_its_path(tmp_path):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.full((20, 20, 3), 80, np.uint8))
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:30])
    with pytest.raises(ImageReadError, match="bad.png"):
        read_image(bad)
    with pytest.raises(ImageReadError, match="missing.png"):
        read_image(tmp_path / "missing.png")


def test_read_image_returns_rgb_and_converts_channels(tmp_path):
    bgr = np.zeros((4, 5, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    rgb = read_image(tmp_path / "red.png")
    assert rgb.shape == (4, 5, 3) and rgb[0, 0].tolist() == [200, 0, 0]
    assert read_image(tmp_path / "red.png", channels=1).shape == (4, 5, 1)
    cv2.imwrite(str(tmp_path / "grey16.png"), np.full((4, 5), 40000, np.uint16))
    grey = read_image(tmp_path / "grey16.png", channels=3)
    assert grey.dtype == np.uint16 and grey.shape == (4, 5, 3)


@pytest.mark.parametrize("values", [(0, 1), (0, 255)])
def test_read_mask_binarises(tmp_path, values):
    m = np.zeros((8, 8), np.uint8)
    m[2:5, 2:5] = values[1]
    cv2.imwrite(str(tmp_path / "m.png"), m)
    out = read_mask(tmp_path / "m.png")
    assert out.dtype == np.uint8 and out.sum() == 9 and set(np.unique(out)) == {0, 1}


def test_read_mask_cleans_jpeg_noise(tmp_path):
    m = np.zeros((64, 64), np.uint8)
    cv2.circle(m, (30, 33), 17, 255, -1)
    cv2.imwrite(str(tmp_path / "m.jpg"), m, [cv2.IMWRITE_JPEG_QUALITY, 60])
    noisy = cv2.imread(str(tmp_path / "m.jpg"), cv2.IMREAD_GRAYSCALE)
    assert len(np.unique(noisy)) > 2  # the trap is real
    out = read_mask(tmp_path / "m.jpg")
    assert abs(int(out.sum()) - int((m > 0).sum())) < 40
    assert set(np.unique(out)) == {0, 1}


def test_unpaired_files_are_listed_by_path(tmp_path):
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    img = np.zeros((4, 4, 3), np.uint8)
    for name in ("a", "b"):
        cv2.imwrite(str(tmp_path / "images" / f"{name}.jpg"), img)
    for name in ("a", "c"):
        cv2.imwrite(str(tmp_path / "masks" / f"{name}.png"), img[..., 0])
    with pytest.raises(DatasetLayoutError) as err:
        read_folder_pair(tmp_path)
    assert "b.jpg (no mask)" in str(err.value) and "c.png (no image)" in str(err.value)
    (tmp_path / "images" / "b.jpg").unlink()
    (tmp_path / "masks" / "c.png").unlink()
    samples = read_folder_pair(tmp_path)
    assert [(s.image.name, s.mask.name) for s in samples] == [("a.jpg", "a.png")]


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DatasetLayoutError, match="masks folder"):
        (tmp_path / "images").mkdir()
        read_folder_pair(tmp_path)


def test_split_keeps_groups_together_and_is_deterministic():
    samples = [Sample(f"{g}_{i}.png", None, group=f"seq{g}") for g in range(10) for i in range(5)]
    train, val = split_by_fraction(samples, 0.3, seed=4)
    assert not {s.group for s in train} & {s.group for s in val}
    assert len(train) + len(val) == 50 and 10 <= len(val) <= 20
    assert split_by_fraction(samples, 0.3, seed=4) == (train, val)
    assert split_by_fraction(samples, 0.3, seed=5) != (train, val)


def test_normalization():
    img16 = np.array([[[1000], [3000]]], np.uint16)
    assert np.allclose(normalize_image(img16), img16 / 65535)
    assert normalize_image(img16, "minmax").ravel().tolist() == [0.0, 1.0]


@pytest.fixture
def samples(tmp_path):
    return read_folder_pair(generate_polyp_dataset(tmp_path / "d", n_images=10, height=40,
                                                   width=48))


def test_dataset_batches_have_a_fixed_shape(samples):
    ds = SegmentationDataset(samples, batch_size=4, image_size=(32, 24), shuffle=True, seed=1)
    assert len(ds) == 2  # the incomplete batch is dropped when training
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (4, 32, 24, 3) and x.dtype == np.float32
        assert y.shape == (4, 32, 24, 1) and set(np.unique(y)) <= {0.0, 1.0}
        assert 0.0 <= x.min() and x.max() <= 1.0
    val = SegmentationDataset(samples, batch_size=4, image_size=(32, 24))
    assert len(val) == 3 and val[2][0].shape[0] == 2  # validation keeps every sample


def test_dataset_shuffles_each_epoch_reproducibly(samples):
    def epochs(seed):
        ds = SegmentationDataset(samples, batch_size=5, image_size=(16, 16), shuffle=True,
                                 seed=seed)
        orders = []
        for _ in range(3):
            orders.append(ds._order.tolist())
            ds.on_epoch_end()
        return orders

    a = epochs(1)
    assert a == epochs(1)
    assert a[0] != a[1] != a[2]
    assert a != epochs(2)


def test_dataset_targets_for_several_outputs(samples):
    ds = SegmentationDataset(samples, batch_size=2, image_size=(16, 16), outputs=["side", "out"])
    x, y = ds[0]
    assert set(y) == {"side", "out"} and np.array_equal(y["side"], y["out"])
