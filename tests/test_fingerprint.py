"""The dataset fingerprint (kerasmed.data.fingerprint) on tiny images with known answers."""

import json
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from kerasmed.data.fingerprint import (compute_fingerprint, load_fingerprint, save_fingerprint,
                                       summarize)
from kerasmed.data.io import ImageReadError
from kerasmed.data.readers import Sample


def _png(path, array):
    assert cv2.imwrite(str(path), array)
    return path


def _rgb(tmp_path, name, height=64, width=64, seed=0):
    rng = np.random.default_rng(seed)
    return _png(tmp_path / f"{name}.png", rng.integers(0, 256, (height, width, 3), np.uint8))


def _disc_mask(height, width, discs):
    mask = np.zeros((height, width), np.uint8)
    for (cy, cx), radius in discs:
        cv2.circle(mask, (cx, cy), radius, 255, thickness=-1)
    return mask


def _strict_json(fp):
    return json.loads(json.dumps(fp, allow_nan=False))


# ------------------------------------------------------------------------------ objects, fractions

def test_discs_give_their_areas_diameters_minor_axes_and_fractions(tmp_path):
    big, small = 12, 6
    mask_a = _disc_mask(80, 80, [((24, 24), big), ((60, 60), small)])
    mask_b = np.zeros((80, 80), np.uint8)  # an image without foreground
    samples = [Sample(_rgb(tmp_path, "a", 80, 80), _png(tmp_path / "a_mask.png", mask_a)),
               Sample(_rgb(tmp_path, "b", 80, 80, 1), _png(tmp_path / "b_mask.png", mask_b))]
    fp = compute_fingerprint(samples)

    assert fp["kind"] == "segmentation" and fp["mask_mode"] == "binary" and fp["n_images"] == 2
    comp = fp["components"]
    assert comp["n_objects"] == 2
    assert [e["components"] for e in fp["images"]] == [2, 0]
    assert comp["per_image"] == {"min": 0.0, "median": 1.0, "max": 2.0, "mean": 1.0}
    assert comp["area"]["max"] == pytest.approx(math.pi * big ** 2, rel=0.06)
    assert comp["area"]["min"] == pytest.approx(math.pi * small ** 2, rel=0.12)
    assert comp["area"]["max"] == int((mask_a[:48, :48] > 0).sum())  # exact pixel count
    assert comp["equivalent_diameter"]["max"] == pytest.approx(2 * big, rel=0.04)
    assert comp["equivalent_diameter"]["min"] == pytest.approx(2 * small, rel=0.06)
    assert comp["minor_axis_length"]["max"] == pytest.approx(2 * big, rel=0.06)
    assert comp["minor_axis_length"]["min"] == pytest.approx(2 * small, rel=0.1)
    assert "areas" not in comp and "objects" not in comp  # summaries only, no per-object arrays

    fraction = float((mask_a > 0).mean())
    assert fp["images"][0]["foreground_fraction"] == pytest.approx(fraction, abs=1e-12)
    assert fp["images"][1]["foreground_fraction"] == 0.0
    assert fp["foreground_fraction"]["max"] == pytest.approx(fraction)
    assert fp["foreground_fraction"]["mean"] == pytest.approx(fraction / 2)
    assert fp["images"][0]["height"] == 80 and fp["images"][0]["channels"] == 3
    assert fp["images"][0]["dtype"] == "uint8" and fp["images"][0]["mask"].endswith("a_mask.png")


def test_binary_components_are_8_connected_and_instances_keep_their_labels(tmp_path):
    labels = np.zeros((40, 40), np.uint8)
    labels[5:15, 5:15] = 1        # 100 px
    labels[5:15, 15:35] = 2       # 200 px, touching label 1: one binary component
    labels[30, 30] = labels[31, 31] = 3  # two diagonal pixels: one 8-connected object
    image = _rgb(tmp_path, "img", 40, 40)
    mask = _png(tmp_path / "labels.png", labels)

    as_instances = compute_fingerprint([Sample(image, mask, mask_type="instances")])
    assert as_instances["mask_mode"] == "instances"
    assert as_instances["components"]["n_objects"] == 3
    assert as_instances["components"]["area"] == {"min": 2.0, "median": 100.0, "max": 200.0}

    as_binary = compute_fingerprint([Sample(image, mask)], mask_mode="binary",
                                    mask_threshold=0)
    assert as_binary["mask_mode"] == "binary"
    assert as_binary["components"]["n_objects"] == 2  # the squares merge; the diagonal pair is one
    assert as_binary["components"]["area"]["max"] == 300.0
    assert as_binary["components"]["area"]["min"] == 2.0
    assert as_binary["images"][0]["foreground_fraction"] == pytest.approx(302 / 1600)


def test_auto_binary_reads_masks_as_training_does(tmp_path):
    # Labels 0..3 are not a binary mask: the automatic threshold refuses them, as training does.
    labels = np.zeros((20, 20), np.uint8)
    labels[2:5, 2:5], labels[10:12, 10:12], labels[15, 15] = 1, 2, 3
    sample = Sample(_rgb(tmp_path, "img", 20, 20), _png(tmp_path / "labels.png", labels))
    with pytest.raises(ImageReadError, match="labels.png"):
        compute_fingerprint([sample])
    fp = compute_fingerprint([sample], mask_threshold=0)
    assert fp["components"]["n_objects"] == 3


# ------------------------------------------------------------------------------------ intensities

def test_16_bit_grey_percentiles_and_sampling(tmp_path):
    values = (np.arange(100 * 100, dtype=np.int64) * 6).astype(np.uint16).reshape(100, 100)
    path = _png(tmp_path / "grey16.png", values)
    mask = np.zeros((100, 100), np.uint8)
    mask[50:, :] = 1  # the bottom half: values 30000..59994
    sample = Sample(path, _png(tmp_path / "grey16_mask.png", mask))

    fp = compute_fingerprint([sample], max_intensity_samples=100_000)
    assert fp["dtypes"] == ["uint16"] and fp["channels"] == [1]
    stats = fp["intensity"]["per_channel"][0]
    assert fp["intensity"]["n_samples"] == 10_000 and fp["intensity"]["channels"] == 1
    flat = values.astype(np.float64).ravel()
    for key, q in (("percentile_00_5", 0.5), ("median", 50), ("percentile_99_5", 99.5)):
        assert stats[key] == pytest.approx(np.percentile(flat, q))
    assert stats["mean"] == pytest.approx(flat.mean()) and stats["std"] == pytest.approx(flat.std())
    assert stats["max"] == 59994.0 and stats["min"] == 0.0
    fg = fp["intensity_foreground"]["per_channel"][0]
    assert fp["intensity_foreground"]["n_samples"] == 5000
    assert fg["min"] == 30000.0 and fg["median"] == pytest.approx(np.median(flat[5000:]))

    sampled = compute_fingerprint([sample], max_intensity_samples=2000, seed=3)
    assert sampled["intensity"]["n_samples"] == 2000
    assert sampled["intensity_foreground"]["n_samples"] == 2000
    assert sampled["intensity"]["per_channel"][0]["median"] == pytest.approx(30000, rel=0.05)
    assert sampled["intensity_foreground"]["per_channel"][0]["min"] >= 30000
    again = compute_fingerprint([sample], max_intensity_samples=2000, seed=3)
    other = compute_fingerprint([sample], max_intensity_samples=2000, seed=4)
    assert again["intensity"] == sampled["intensity"]
    assert other["intensity"] != sampled["intensity"]


def test_sample_is_pooled_over_images_and_independent_of_workers(tmp_path):
    samples = []
    for k in range(5):
        image = np.full((30, 30 + 10 * k), 40 * k, np.uint8)
        mask = _disc_mask(30, 30 + 10 * k, [((15, 15), 5 + k)])
        samples.append(Sample(_png(tmp_path / f"{k}.png", image),
                              _png(tmp_path / f"{k}_m.png", mask)))
    one = compute_fingerprint(samples, max_intensity_samples=500, workers=1)
    three = compute_fingerprint(samples, max_intensity_samples=500, workers=3)
    assert one == three
    assert one["intensity"]["n_samples"] == 500  # at most this many in total, not per image
    assert one["intensity"]["per_channel"][0]["min"] == 0.0
    assert one["intensity"]["per_channel"][0]["max"] == 160.0  # larger images are represented
    assert one["sizes"]["width"] == {"min": 30.0, "median": 50.0, "max": 70.0}
    assert one["sizes"]["height"]["median"] == 30.0 and one["median_shape"] == [30.0, 50.0]
    assert [e["image"] for e in one["images"]] == [str(s.image) for s in samples]


def test_float_tiff_with_nan_stays_strict_json(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    image = np.linspace(-1.0, 1.0, 32 * 32, dtype=np.float32).reshape(32, 32)
    image[0, 0] = np.nan
    tifffile.imwrite(tmp_path / "f.tif", image)
    mask = np.zeros((32, 32), np.uint8)
    mask[16:, :] = 255
    fp = compute_fingerprint([Sample(tmp_path / "f.tif", _png(tmp_path / "f_m.png", mask))])
    assert fp["dtypes"] == ["float32"]
    stats = fp["intensity"]["per_channel"][0]
    assert stats["n_nonfinite"] == 1
    assert stats["mean"] == pytest.approx(float(np.nanmean(image)), abs=1e-6)
    assert fp["intensity_foreground"]["per_channel"][0]["min"] > 0
    _strict_json(fp)


def test_mixed_grey_and_rgb_are_unified_or_converted_as_asked(tmp_path):
    grey = _png(tmp_path / "grey.png", np.full((10, 10), 200, np.uint8))
    rgb = _png(tmp_path / "rgb.png", np.full((10, 10, 3), (10, 20, 30), np.uint8))  # BGR on disk
    samples = [Sample(grey, label="a"), Sample(rgb, label="b")]
    fp = compute_fingerprint(samples)
    assert fp["channels"] == [1, 3]
    assert fp["intensity"]["channels"] == 3 and fp["intensity"]["converted"] is True
    assert [s["max"] for s in fp["intensity"]["per_channel"]] == [200.0, 200.0, 200.0]
    assert fp["intensity"]["per_channel"][0]["min"] == 30.0  # red, read as RGB
    as_grey = compute_fingerprint(samples, channels=1)
    assert as_grey["intensity"]["channels"] == 1 and as_grey["intensity"]["converted"] is False
    assert as_grey["channels"] == [1, 3]  # stored channels are reported either way


# --------------------------------------------------------------------------------------- spacing

def test_tiff_resolution_tags_give_spacing_in_microns(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    grey = np.zeros((16, 16), np.uint8)
    # 20000 px/cm across (0.5 um), 40000 px/cm down (0.25 um)
    tifffile.imwrite(tmp_path / "cm.tif", grey, resolution=(20000, 40000),
                     resolutionunit="CENTIMETER")
    # 254 dpi across (100 um), 127 dpi down (200 um), written by Pillow
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "inch.tif", dpi=(254, 127))
    # ImageJ: unit-less ResolutionUnit, "unit=um" in the description; 2 px/um -> 0.5 um
    tifffile.imwrite(tmp_path / "ij.tif", grey, imagej=True, resolution=(2.0, 2.0),
                     metadata={"unit": "um"})
    tifffile.imwrite(tmp_path / "none.tif", grey)  # tifffile's default: 1/1 with no unit
    png = _png(tmp_path / "plain.png", grey)

    def spacing(*names):
        samples = [Sample(tmp_path / n, label="x") for n in names]
        return compute_fingerprint(samples)

    fp = spacing("cm.tif", "inch.tif", "ij.tif", "none.tif", png.name)
    got = [e["spacing"] for e in fp["images"]]
    assert got[0] == pytest.approx([0.25, 0.5])
    assert got[1] == pytest.approx([200.0, 100.0])
    assert got[2] == pytest.approx([0.5, 0.5])
    assert got[3] is None and got[4] is None
    assert fp["spacing"] is None  # not every image has one
    both = spacing("cm.tif", "ij.tif")
    assert both["spacing"] == pytest.approx([0.375, 0.5])  # the median of [sy, sx]


# --------------------------------------------------------------------------------------- classes

def test_classification_samples_give_class_counts(tmp_path):
    image = _rgb(tmp_path, "x", 8, 8)
    samples = [Sample(image, label="CNV"), Sample(image, label="NORMAL"),
               Sample(image, label="CNV"), Sample(image, label="CNV"), Sample(image)]
    fp = compute_fingerprint(samples)
    assert fp["kind"] == "classification" and fp["mask_mode"] is None
    assert fp["classes"]["counts"] == {"CNV": 3, "NORMAL": 1}
    assert fp["classes"]["n_classes"] == 2 and fp["classes"]["n_unlabelled"] == 1
    assert fp["classes"]["fraction"]["CNV"] == pytest.approx(0.75)
    assert [e["label"] for e in fp["images"]] == ["CNV", "NORMAL", "CNV", "CNV", None]
    assert fp["components"] is None and fp["foreground_fraction"] is None
    assert fp["intensity_foreground"] is None and fp["intensity"]["n_samples"] == 5 * 64


def test_class_index_masks_give_class_frequencies(tmp_path):
    classes = np.zeros((20, 20), np.uint8)
    classes[:5, :10] = 1    # 50 px of class 1
    classes[:5, 10:] = 2    # 50 px of class 2, touching class 1: its own object
    classes[15:, 15:] = 2   # 25 px more of class 2, a second piece
    stored = np.array([0, 128, 255], np.uint8)[classes]
    image = _rgb(tmp_path, "img", 20, 20)
    other = np.zeros((20, 20), np.uint8)  # background only
    samples = [Sample(image, _png(tmp_path / "c.png", stored)),
               Sample(image, _png(tmp_path / "o.png", other))]
    fp = compute_fingerprint(samples, class_values=[0, 128, 255])
    assert fp["mask_mode"] == "classes"
    cls = fp["classes"]
    assert cls["n_classes"] == 3
    assert cls["pixel_count"] == [800 - 125, 50, 75]
    assert cls["pixel_fraction"] == pytest.approx([675 / 800, 50 / 800, 75 / 800])
    assert cls["images_with_class"] == [2, 1, 1]
    assert fp["components"]["n_objects"] == 3
    assert fp["components"]["area"] == {"min": 25.0, "median": 50.0, "max": 50.0}
    assert fp["images"][0]["foreground_fraction"] == pytest.approx(125 / 400)

    indices = [Sample(image, _png(tmp_path / "i.png", classes))]
    by_index = compute_fingerprint(indices, num_classes=4)
    assert by_index["classes"]["pixel_count"] == [275, 50, 75, 0]  # class 3: absent, counted 0


# ---------------------------------------------------------------------------- files, text, errors

def test_json_round_trip_and_summary(tmp_path):
    mask = _disc_mask(40, 40, [((20, 20), 8)])
    samples = [Sample(_rgb(tmp_path, "a", 40, 40), _png(tmp_path / "a_m.png", mask))]
    fp = compute_fingerprint(samples)
    assert json.loads(json.dumps(fp, allow_nan=False)) == fp
    assert fp["version"] == 1 and isinstance(fp["kerasmed_version"], str)
    assert "computed" not in fp and fp["options"]["seed"] == 0
    path = save_fingerprint(fp, tmp_path / "sub" / "fingerprint.json")
    assert load_fingerprint(path) == fp
    assert not [p for p in path.parent.iterdir() if p.name != "fingerprint.json"]  # no temp left

    lines = summarize(fp)
    assert lines[0] == "segmentation: 1 images, binary masks"
    assert any(line.startswith("objects: 1 in all") for line in lines)
    assert any("equivalent diameter: median 1" in line for line in lines)  # ~16 px
    assert all(isinstance(line, str) and "\n" not in line for line in lines)

    with pytest.raises(ValueError, match="strict JSON"):
        save_fingerprint({**fp, "bad": float("nan")}, tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"version": 1}))
    with pytest.raises(ValueError, match="not a dataset fingerprint"):
        load_fingerprint(tmp_path / "other.json")
    (tmp_path / "future.json").write_text(json.dumps({**fp, "version": 99}))
    with pytest.raises(ValueError, match="version 99"):
        load_fingerprint(tmp_path / "future.json")


def test_bad_inputs_are_refused_with_reasons(tmp_path):
    image = _rgb(tmp_path, "a", 16, 16)
    mask = _png(tmp_path / "a_m.png", np.zeros((16, 16), np.uint8))
    small = _png(tmp_path / "small.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="at least one sample"):
        compute_fingerprint([])
    with pytest.raises(ValueError, match="have no mask"):
        compute_fingerprint([Sample(image, mask), Sample(image, label="x")])
    with pytest.raises(ValueError, match="mask_mode"):
        compute_fingerprint([Sample(image, mask)], mask_mode="distance")
    with pytest.raises(ValueError, match="max_intensity_samples"):
        compute_fingerprint([Sample(image, mask)], max_intensity_samples=0)
    with pytest.raises(ImageReadError, match="small.png"):
        compute_fingerprint([Sample(image, small)])
    with pytest.raises(ImageReadError, match="missing.png"):
        compute_fingerprint([Sample(tmp_path / "missing.png", mask)], workers=2)


def test_specks_do_not_decide_the_area_weighted_object_sizes(tmp_path):
    """A thresholded probability map leaves one-pixel islands beside the real object: by count
    they are most objects, by area almost none."""
    mask = _disc_mask(64, 64, [((32, 32), 10)])
    for k in range(20):
        mask[2 + 3 * (k % 5), 2 + 3 * (k // 5)] = 255  # 20 isolated pixels
    _png(tmp_path / "m.png", mask)
    fp = compute_fingerprint([Sample(_rgb(tmp_path, "i"), tmp_path / "m.png")], workers=1)
    components = fp["components"]
    assert components["n_objects"] == 21
    assert components["minor_axis_length"]["min"] == pytest.approx(0.0, abs=1e-6)
    assert components["minor_axis_length"]["median"] < 1.0  # the count median is a speck
    assert components["minor_axis_by_area"]["p10"] == pytest.approx(20.0, abs=1.0)
    assert components["diameter_by_area"]["median"] == pytest.approx(20.0, abs=1.0)
