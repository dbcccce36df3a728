"""Boundary scores (HD95, ASSD, NSD) and Dice against MONAI and DeepMind's surface-distance,
pixel sizes from the command line, the experiment and TIFF tags, and their recording."""

import json
import math
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from _eval_shapes import binary_cases, channel0_model, ellipse, shift
from kerasmed.cli import compare_main, eval_main
from kerasmed.evaluation.scores import PIXEL_SCORES, score_masks
from kerasmed.evaluation.surface import (DEFAULT_TOLERANCE_PIXELS, check_spacing, hd95,
                                         resolve_spacing, surface_scores, tiff_spacing)

CASES = binary_cases()
SPACINGS = [None, (0.5, 1.25)]


def _monai(pred, truth, tolerance, spacing):
    """HD95, ASSD, NSD and Dice of MONAI 1.6 (pixel-centre outlines, no sub-voxel edges)."""
    from monai.metrics import (compute_average_surface_distance, compute_dice,
                               compute_hausdorff_distance, compute_surface_dice)

    p = torch.from_numpy(pred[None, None].astype(np.float32))
    t = torch.from_numpy(truth[None, None].astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns on empty masks
        return {
            "hd95": float(compute_hausdorff_distance(p, t, include_background=True,
                                                     percentile=95, spacing=spacing)),
            "assd": float(compute_average_surface_distance(p, t, include_background=True,
                                                           symmetric=True, spacing=spacing)),
            "nsd": float(compute_surface_dice(p, t, [tolerance], include_background=True,
                                              spacing=spacing)),
            "dice": float(compute_dice(p, t, include_background=True)),
        }


@pytest.mark.parametrize("spacing", SPACINGS, ids=["pixels", "anisotropic"])
@pytest.mark.parametrize("name,pred,truth", CASES, ids=[c[0] for c in CASES])
def test_scores_agree_with_monai(name, pred, truth, spacing):
    tolerance = 2.0 * (1 if spacing is None else max(spacing))
    ours = score_masks(pred, truth, spacing, tolerance)
    theirs = _monai(pred, truth, tolerance, spacing)
    for key, value in theirs.items():
        # MONAI returns float32: agreement to its precision.
        assert ours[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert 0 <= ours["nsd"] <= 1 and ours["hd95"] > 0


def test_hd95_is_the_larger_directed_percentile():
    """The convention (arXiv 2410.02630 compares eleven): not the 95th percentile of both
    directions pooled, nor their mean, but the larger directed one, as MONAI's."""
    from monai.metrics import compute_hausdorff_distance

    pred = CASES[4][1]
    truth = CASES[4][2]
    p = torch.from_numpy(pred[None, None].astype(np.float32))
    t = torch.from_numpy(truth[None, None].astype(np.float32))
    directed = [float(compute_hausdorff_distance(a, b, include_background=True, percentile=95,
                                                 directed=True)) for a, b in ((p, t), (t, p))]
    assert directed[0] != pytest.approx(directed[1])  # the two directions differ here
    assert hd95(pred, truth) == pytest.approx(max(directed), rel=1e-6)


@pytest.mark.parametrize("spacing", SPACINGS, ids=["pixels", "anisotropic"])
def test_scores_near_deepmind_surface_distance(spacing):
    """DeepMind's surface-distance measures between surface elements on the pixel corners,
    weighted by their length, not between pixel centres: the same quantities within a stated
    spread (docs/evaluation.md): HD95 within one pixel side, ASSD within half of one, NSD
    within 0.1."""
    import surface_distance

    side = 1.0 if spacing is None else max(spacing)
    for name, pred, truth in CASES:
        d = surface_distance.compute_surface_distances(truth, pred, spacing or (1.0, 1.0))
        ours = surface_scores(pred, truth, 2 * side, spacing)
        assert ours["hd95"] == pytest.approx(surface_distance.compute_robust_hausdorff(d, 95),
                                             abs=side)
        assert ours["assd"] == pytest.approx(
            np.mean(surface_distance.compute_average_surface_distance(d)), abs=side / 2)
        if name == "dilated":
            # Every outline point lies about 3 pixels off, just past the tolerance of 2: the
            # two ways of measuring decide differently (0 here, 0.25 there), as documented.
            continue
        assert ours["nsd"] == pytest.approx(
            surface_distance.compute_surface_dice_at_tolerance(d, 2 * side), abs=0.1)


def test_empty_masks_differ_from_monai_as_documented():
    empty = np.zeros((32, 32), bool)
    blob = ellipse((32, 32), (12, 14), (5, 7))
    # kerasmed: both empty is a perfect score, one empty an undefined distance and NSD 0.
    assert surface_scores(empty, empty) == {"hd95": 0.0, "assd": 0.0, "nsd": 1.0}
    for pred, truth in ((empty, blob), (blob, empty)):
        ours = surface_scores(pred, truth)
        assert math.isnan(ours["hd95"]) and math.isnan(ours["assd"]) and ours["nsd"] == 0.0
        assert score_masks(pred, truth)["dice"] == 0.0
    # MONAI 1.6: NaN for everything with both empty; with one empty HD95 NaN, ASSD inf, NSD 0.
    both = _monai(empty, empty, 2.0, None)
    assert all(math.isnan(both[k]) for k in ("hd95", "assd", "nsd", "dice"))
    assert score_masks(empty, empty)["dice"] == 1.0  # kerasmed's Keras metrics' rule
    assert math.isnan(_monai(blob, empty, 2.0, None)["dice"])  # MONAI: truth empty, NaN
    one = _monai(empty, blob, 2.0, None)
    assert math.isnan(one["hd95"]) and math.isinf(one["assd"]) and one["nsd"] == 0.0


def test_spacing_scales_distances_and_the_tolerance():
    truth = np.zeros((64, 64), bool)
    truth[10:34, 12:48] = True
    pred = shift(truth, 0, 3)  # three columns to the right: every distance at most 3
    pixels = surface_scores(pred, truth, 2.0)
    assert pixels["hd95"] == pytest.approx(3.0)
    square = surface_scores(pred, truth, 2.0 * 0.4, (0.4, 0.4))
    assert square["hd95"] == pytest.approx(3 * 0.4)
    assert square["assd"] == pytest.approx(pixels["assd"] * 0.4)
    assert square["nsd"] == pytest.approx(pixels["nsd"])
    # A column shift is measured in column widths: rows of a different size do not matter
    # to the worst case.
    assert surface_scores(pred, truth, 1.0, (0.1, 2.0))["hd95"] == pytest.approx(6.0)
    # The default tolerance is two of the largest pixel sides.
    assert (surface_scores(pred, truth, spacing=(0.5, 1.5))["nsd"]
            == surface_scores(pred, truth, DEFAULT_TOLERANCE_PIXELS * 1.5, (0.5, 1.5))["nsd"])


@pytest.mark.parametrize("bad", [0, -1.0, math.nan, math.inf, [1, 2, 3], [], "1", True])
def test_check_spacing_refuses_bad_values(bad):
    with pytest.raises(ValueError, match="spacing"):
        check_spacing(bad)


def _tiff(path, tags, value=0):
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    info = ImageFileDirectory_v2()
    for tag, v in tags.items():
        info[tag] = v
    Image.fromarray(np.full((32, 32), value, np.uint8)).save(path, tiffinfo=info)
    return path


def test_tiff_spacing_reads_stated_units_only(tmp_path):
    # 20000 pixels per centimetre across a row, 10000 down a column: 0.5 by 1 micrometre.
    cm = _tiff(tmp_path / "cm.tif", {282: 20000.0, 283: 10000.0, 296: 3})
    assert tiff_spacing(cm) == pytest.approx((1.0, 0.5))
    inch = _tiff(tmp_path / "inch.tif", {282: 25400.0, 283: 25400.0, 296: 2})
    assert tiff_spacing(inch) == pytest.approx((1.0, 1.0))
    imagej = _tiff(tmp_path / "ij.tif", {282: 4.0, 283: 4.0, 296: 1,
                                          270: "ImageJ=1.53\nunit=micron\n"})
    assert tiff_spacing(imagej) == pytest.approx((0.25, 0.25))
    # No stated unit, no unit at all, or not a TIFF: no pixel size.
    assert tiff_spacing(_tiff(tmp_path / "none.tif", {282: 72.0, 283: 72.0, 296: 1})) is None
    assert tiff_spacing(_tiff(tmp_path / "bare.tif", {})) is None
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "p.png")
    assert tiff_spacing(tmp_path / "p.png") is None


def test_resolve_spacing_uses_tags_only_when_every_image_has_them(tmp_path):
    from kerasmed.data.readers import Sample

    tagged = [Sample(_tiff(tmp_path / f"{i}.tif", {282: 10000.0, 283: 10000.0, 296: 3}))
              for i in range(2)]
    spacings, record = resolve_spacing(tagged)
    assert spacings == [(1.0, 1.0)] * 2 and record["source"] == "tiff"
    assert record["unit"] == "µm"
    bare = Sample(_tiff(tmp_path / "bare.tif", {}))
    spacings, record = resolve_spacing(tagged + [bare])
    assert spacings == [None] * 3 and record["unit"] == "pixel" and "2 of 3" in record["note"]
    spacings, record = resolve_spacing(tagged + [bare], (0.3, 0.3), "--spacing", "mm")
    assert spacings == [(0.3, 0.3)] * 3 and record == {
        "source": "--spacing", "unit": "mm", "spacing": [[0.3, 0.3]]}


def test_schema_checks_data_spacing(tiny_experiment):
    from kerasmed.experiment.schema import ConfigError
    from kerasmed.experiment.validate import validate_config

    tiny_experiment["data"]["spacing"] = [0.5, 0.25]
    assert validate_config(tiny_experiment, "x")["data"]["spacing"] == [0.5, 0.25]
    for bad in ([0.5, -1], [1, 2, 3], "big"):
        tiny_experiment["data"]["spacing"] = bad
        with pytest.raises(ConfigError, match="data.spacing"):
            validate_config(tiny_experiment, "x")


# ------------------------------------------------------------------------- end to end

def _tagged_pairs(root, per_centimetre):
    """Two 48x48 TIFF images whose first channel is the prediction (a disc shifted by three
    columns), with resolution tags; masks: the disc."""
    from PIL.TiffImagePlugin import ImageFileDirectory_v2

    from kerasmed.data.readers import read_folder_pair

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for k in range(2):
        truth = ellipse((48, 48), (20 + k, 22), (9, 11))
        image = np.zeros((48, 48, 3), np.uint8)
        image[..., 0] = shift(truth, 0, 3) * 255
        info = ImageFileDirectory_v2()
        info[282], info[283], info[296] = per_centimetre, per_centimetre, 3
        Image.fromarray(image).save(root / "images" / f"{k}.tif", tiffinfo=info)
        Image.fromarray(truth.astype(np.uint8) * 255).save(root / "masks" / f"{k}.png")
    return read_folder_pair(root)


def test_evaluate_writes_distances_in_tiff_micrometres(tmp_path):
    import pandas as pd

    from kerasmed.evaluation import evaluate

    samples = _tagged_pairs(tmp_path / "data", 5000.0)  # 2 micrometre pixels
    summary = evaluate(channel0_model((48, 48)), samples, tmp_path / "eval",
                       normalization="dtype_range", n_overlays=1)
    table = pd.read_csv(tmp_path / "eval" / "per_image.csv")
    assert list(table.columns) == ["image", *PIXEL_SCORES]
    assert summary["distance_unit"] == "µm" and summary["spacing"]["source"] == "tiff"
    assert summary["nsd_tolerance"] == pytest.approx(2 * DEFAULT_TOLERANCE_PIXELS)
    assert table["hd95"].tolist() == pytest.approx([6.0, 6.0])  # 3 columns of 2 µm
    # The same images in pixels, when a spacing of 1 is given: distances halve.
    pixels = evaluate(channel0_model((48, 48)), samples, tmp_path / "eval2",
                      normalization="dtype_range", n_overlays=1, spacing=1.0,
                      spacing_source="--spacing")
    assert pixels["hd95"]["mean"] == pytest.approx(3.0)
    assert pixels["assd"]["mean"] == pytest.approx(summary["assd"]["mean"] / 2)
    assert pixels["nsd"]["mean"] == pytest.approx(summary["nsd"]["mean"])
    assert "NaN" not in (tmp_path / "eval" / "summary.json").read_text()


@pytest.mark.parametrize("option,value,message", [
    ("--spacing", "0", "argument --spacing: must be in (0"),
    ("--spacing", "0.5,-1", "argument --spacing: must be in (0"),
    ("--spacing", "nan", "argument --spacing: must be a finite number"),
    ("--spacing", "1,2,3", "argument --spacing: expected ROW,COL or one number"),
    ("--spacing", "a,b", "argument --spacing: expected a number"),
    ("--nsd-tolerance", "-1", "argument --nsd-tolerance: must be in [0"),
    ("--nsd-tolerance", "inf", "argument --nsd-tolerance: must be a finite number"),
])
def test_eval_cli_refuses_bad_distance_options(option, value, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        eval_main([str(tmp_path / "m.keras"), "--data", str(tmp_path), option, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]


def test_eval_cli_spacing_and_compare_on_distances(tmp_path, capsys):
    samples = _tagged_pairs(tmp_path / "data", 5000.0)
    assert samples
    model = channel0_model((48, 48))
    model.save(tmp_path / "m.keras")
    base = [str(tmp_path / "m.keras"), "--data", str(tmp_path / "data"), "--normalization",
            "dtype_range", "--overlays", "1"]
    assert eval_main(base + ["--output", str(tmp_path / "a"), "--spacing", "0.5,0.5",
                             "--spacing-unit", "mm"]) == 0
    assert "distances in mm" in capsys.readouterr().out
    (a,) = (tmp_path / "a").iterdir()
    summary = json.loads((a / "summary.json").read_text())
    assert summary["spacing"] == {"source": "--spacing", "unit": "mm",
                                  "spacing": [[0.5, 0.5]]}
    assert summary["hd95"]["mean"] == pytest.approx(1.5)
    # --spacing-unit alone names nothing.
    assert eval_main(base + ["--output", str(tmp_path / "x"), "--spacing-unit", "mm"]) == 2
    assert "--spacing-unit" in capsys.readouterr().err
    # A second evaluation in TIFF micrometres: compare refuses to mix units...
    assert eval_main(base + ["--output", str(tmp_path / "b")]) == 0
    (b,) = (tmp_path / "b").iterdir()
    assert compare_main([str(a), str(b), "--names", "a,b", "--output",
                         str(tmp_path / "cmp")]) == 2
    assert "different units" in capsys.readouterr().err
    # ... and compares like with like, a distance's lower value winning.
    assert eval_main(base + ["--output", str(tmp_path / "c"), "--spacing", "0.25",
                             "--spacing-unit", "mm"]) == 0
    (c,) = (tmp_path / "c").iterdir()
    assert compare_main([str(a), str(c), "--names", "a,c", "--output",
                         str(tmp_path / "cmp"), "--bootstrap", "50"]) == 0
    (out,) = (tmp_path / "cmp").iterdir()
    import pandas as pd

    rows = pd.read_csv(out / "comparison.csv").set_index("metric")
    assert set(PIXEL_SCORES) <= set(rows.index)
    # a's pixels are twice c's: larger distances, so c wins every image on HD95 and ASSD.
    for distance in ("hd95", "assd"):
        assert rows.loc[distance, "mean_diff"] > 0
        assert rows.loc[distance, "losses"] == 2 and rows.loc[distance, "wins"] == 0
    assert rows.loc["dice", "ties"] == 2
