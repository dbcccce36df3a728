"""Image and mask reading: formats, bit depths, channel layouts, mask encodings, bad files."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from kerasmed.data.io import (ImageReadError, MaskValueError, image_size, looks_like_image,
                              read_class_mask, read_image, read_label_mask, read_mask)
from kerasmed.data.lookalike import write_image
from kerasmed.data.normalize import normalize_image, parse_normalization

RGB = np.dstack([np.full((6, 7), 200, np.uint8), np.full((6, 7), 100, np.uint8),
                 np.full((6, 7), 10, np.uint8)])


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp", ".jpg"])
def test_rgb_formats_come_back_rgb(tmp_path, suffix):
    path = write_image(tmp_path / f"a{suffix}", RGB)
    image = read_image(path)
    assert image.shape == (6, 7, 3) and image.dtype == np.uint8
    assert np.abs(image[3, 3].astype(int) - [200, 100, 10]).max() <= 3  # JPEG is lossy


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16bit_grey_and_rgb_keep_their_depth(tmp_path, suffix):
    grey = np.full((5, 4), 40000, np.uint16)
    image = read_image(write_image(tmp_path / f"g{suffix}", grey))
    assert image.dtype == np.uint16 and image.shape == (5, 4, 1) and image.max() == 40000
    rgb = np.dstack([grey, grey // 2, grey // 4])
    image = read_image(write_image(tmp_path / f"c{suffix}", rgb))
    assert image.dtype == np.uint16 and image[0, 0].tolist() == [40000, 20000, 10000]


def test_channel_conversions(tmp_path):
    rgba = np.dstack([RGB, np.full((6, 7), 128, np.uint8)])
    path = write_image(tmp_path / "a.png", rgba)
    assert read_image(path).shape == (6, 7, 4)
    assert read_image(path, channels=3)[0, 0].tolist() == [200, 100, 10]
    assert read_image(path, channels=1).shape == (6, 7, 1)
    la = io.BytesIO()
    Image.fromarray(np.dstack([np.full((3, 3), 9, np.uint8)] * 2), "LA").save(la, format="PNG")
    (tmp_path / "la.png").write_bytes(la.getvalue())
    assert read_image(tmp_path / "la.png", channels=1)[0, 0, 0] == 9
    assert read_image(tmp_path / "la.png", channels=3)[0, 0].tolist() == [9, 9, 9]


def test_multipage_tiff(tmp_path):
    pages = [Image.fromarray(np.full((8, 10), v, np.uint16)) for v in (100, 2000, 40000)]
    path = tmp_path / "stack.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    assert read_image(path)[0, 0, 0] == 100  # first page by default
    assert read_image(path, page=2)[0, 0, 0] == 40000
    stacked = read_image(path, page="all")
    assert stacked.shape == (8, 10, 3) and stacked[0, 0].tolist() == [100, 2000, 40000]
    with pytest.raises(ImageReadError, match="stack.tif.*3 page"):
        read_image(path, page=5)
    assert image_size(path) == (8, 10)


def test_float_tiff(tmp_path):
    data = np.linspace(0, 3, 20, dtype=np.float32).reshape(4, 5)
    path = write_image(tmp_path / "f.tif", data)
    image = read_image(path)
    assert image.dtype == np.float32 and np.allclose(image[..., 0], data)


@pytest.mark.parametrize("suffix,cut", [(".jpg", 0.5), (".jpg", 0.97), (".png", 0.6),
                                        (".tif", 0.5), (".bmp", 0.5)])
def test_truncated_files_are_reported_with_their_path(tmp_path, suffix, cut):
    rng = np.random.default_rng(0)
    good = write_image(tmp_path / f"good{suffix}", (rng.random((32, 32, 3)) * 255).astype(np.uint8))
    data = good.read_bytes()
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(data[:int(len(data) * cut)])
    with pytest.raises(ImageReadError, match=f"bad{suffix}"):
        read_image(bad)


def test_empty_missing_and_non_image_files(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    for name in ("empty.png", "text.png", "missing.png"):
        with pytest.raises(ImageReadError, match=name):
            read_image(tmp_path / name)
        assert not looks_like_image(tmp_path / name)
    assert looks_like_image(write_image(tmp_path / "ok.bmp", RGB))


# ---------------------------------------------------------------------------------- masks

def _square(value=255, dtype=np.uint8, size=16):
    m = np.zeros((size, size), dtype)
    m[4:10, 3:11] = value
    return m


@pytest.mark.parametrize("value,dtype,suffix", [(1, np.uint8, ".png"), (255, np.uint8, ".png"),
                                                (65535, np.uint16, ".png"),
                                                (1000, np.uint16, ".tif"),
                                                (255, np.uint8, ".bmp"), (255, np.uint8, ".tif")])
def test_binary_masks_of_any_encoding(tmp_path, value, dtype, suffix):
    path = write_image(tmp_path / f"m{suffix}", _square(value, dtype))
    out = read_mask(path)
    assert out.dtype == np.uint8 and out.sum() == 48 and set(np.unique(out)) == {0, 1}


def test_three_channel_mask_is_reduced(tmp_path):
    m = np.repeat(_square()[..., None], 3, axis=2)
    assert read_mask(write_image(tmp_path / "m.tif", m)).sum() == 48


def test_jpeg_mask_is_thresholded(tmp_path):
    m = np.zeros((64, 64), np.uint8)
    cv2.circle(m, (30, 33), 17, 255, -1)
    path = write_image(tmp_path / "m.jpg", m, (cv2.IMWRITE_JPEG_QUALITY, 30))
    assert len(np.unique(read_image(path))) > 2  # the JPEG noise is real
    out = read_mask(path)
    assert set(np.unique(out)) == {0, 1} and abs(int(out.sum()) - int((m > 0).sum())) < 40


def test_all_background_and_all_foreground_masks(tmp_path):
    assert read_mask(write_image(tmp_path / "zero.png", np.zeros((4, 4), np.uint8))).sum() == 0
    assert read_mask(write_image(tmp_path / "full.png", np.full((4, 4), 255, np.uint8))).sum() \
        == 16


def test_instance_labels_are_an_error_for_a_binary_mask_unless_asked(tmp_path):
    labels = np.zeros((20, 20), np.uint8)
    labels[2:6, 2:6], labels[8:12, 8:12], labels[14:18, 1:5] = 1, 2, 3
    path = write_image(tmp_path / "anno.bmp", labels)
    with pytest.raises(MaskValueError, match=r"anno\.bmp.*instance-label"):
        read_mask(path)
    assert read_mask(path, mask_type="instances").sum() == 48
    assert read_mask(path, threshold=0).sum() == 48
    kept = read_label_mask(path)
    assert kept.dtype == np.uint8 and sorted(np.unique(kept)) == [0, 1, 2, 3]


def test_16bit_instance_labels_are_kept(tmp_path):
    labels = np.zeros((10, 10), np.uint16)
    labels[1:3, 1:3], labels[5:8, 5:8] = 300, 7000
    kept = read_label_mask(write_image(tmp_path / "l.png", labels))
    assert kept.dtype == np.uint16 and sorted(np.unique(kept)) == [0, 300, 7000]


def test_a_multi_level_mask_is_an_error_for_a_binary_mask(tmp_path):
    m = np.zeros((20, 20), np.uint8)
    m[:10], m[15:] = 128, 255
    path = write_image(tmp_path / "three.png", m)
    with pytest.raises(MaskValueError, match=r"three\.png.*intermediate values.*128"):
        read_mask(path)
    photo = write_image(tmp_path / "photo.png", (np.random.default_rng(0).random((20, 20))
                                                  * 255).astype(np.uint8))
    with pytest.raises(MaskValueError, match="photo.png"):
        read_mask(photo)


def test_class_masks(tmp_path):
    m = np.zeros((8, 8), np.uint8)
    m[:4], m[6:] = 128, 255
    path = write_image(tmp_path / "c.png", m)
    out = read_class_mask(path, class_values=[0, 128, 255])
    assert out.dtype == np.uint8 and np.bincount(out.ravel()).tolist() == [16, 32, 16]
    with pytest.raises(MaskValueError, match=r"c\.png.*\[255\].*not among class_values"):
        read_class_mask(path, class_values=[0, 128])
    idx = write_image(tmp_path / "idx.png", (m // 127).astype(np.uint8))  # 0, 1, 2
    assert read_class_mask(idx, num_classes=3).max() == 2
    with pytest.raises(MaskValueError, match=r"idx\.png.*\[2\].*not class indices 0\.\.1"):
        read_class_mask(idx, num_classes=2)
    colour = np.zeros((4, 4, 3), np.uint8)
    colour[:2] = (255, 0, 0)
    colour[3] = (0, 255, 0)
    cpath = write_image(tmp_path / "colour.png", colour)
    out = read_class_mask(cpath, class_values=[[0, 0, 0], [255, 0, 0], [0, 255, 0]])
    assert out[0, 0] == 1 and out[2, 0] == 0 and out[3, 0] == 2
    with pytest.raises(MaskValueError, match="colour-coded"):
        read_label_mask(cpath)


def test_palette_mask_gives_indices(tmp_path):
    m = np.zeros((6, 6), np.uint8)
    m[1:3, 1:3], m[3:5, 3:5] = 1, 2
    pal = Image.fromarray(m, "P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    pal.save(tmp_path / "p.png")
    assert sorted(np.unique(read_class_mask(tmp_path / "p.png", num_classes=3))) == [0, 1, 2]
    assert read_mask(tmp_path / "p.png", mask_type="instances").sum() == 8


# -------------------------------------------------------------------------- normalisation

def test_auto_normalization_spreads_narrow_16bit_data():
    rng = np.random.default_rng(0)
    image = (900 + 500 * rng.random((32, 32, 1))).astype(np.uint16)
    naive = normalize_image(image, "dtype_range")
    assert naive.max() < 0.03  # almost black: the problem
    auto = normalize_image(image, "auto")
    assert auto.dtype == np.float32 and auto.min() == 0.0 and auto.max() == 1.0
    assert 0.3 < auto.mean() < 0.7
    eight = (rng.random((4, 4, 3)) * 255).astype(np.uint8)
    assert np.allclose(normalize_image(eight, "auto"), eight / 255.0)


def test_percentile_mean_std_and_backbone():
    image = np.arange(100, dtype=np.uint8).reshape(10, 10, 1)
    out = normalize_image(image, {"method": "percentile", "low": 10, "high": 90})
    assert out.min() == 0.0 and out.max() == 1.0 and 0.4 < out[5, 5, 0] < 0.6
    rgb = np.full((2, 2, 3), 255, np.uint8)
    out = normalize_image(rgb, {"method": "mean_std", "mean": [0.5, 0.5, 0.5],
                                "std": [0.25, 0.5, 1.0]})
    assert np.allclose(out[0, 0], [2.0, 1.0, 0.5])
    raw = normalize_image(np.full((2, 2, 1), 1100, np.uint16),
                          {"method": "mean_std", "mean": 1000, "std": 50, "raw": True})
    assert np.allclose(raw, 2.0)
    out = normalize_image(rgb, {"method": "backbone", "name": "mobilenet_v2"})
    assert np.allclose(out, 1.0)  # mobilenet_v2 maps 0..255 to -1..1


@pytest.mark.parametrize("spec,match", [("zscore", "unknown normalization 'zscore'"),
                                        ({"method": "percentile", "lo": 1}, "unknown key"),
                                        ({"method": "percentile", "low": 99, "high": 1}, "low"),
                                        ({"method": "mean_std", "mean": [0.5]}, "'std'"),
                                        ({"method": "backbone", "name": "nope"}, "nope")])
def test_bad_normalization_specs_are_named(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_normalization(spec)
