"""kerasmed-compare: paired per-image statistics of evaluations of the same images."""

import json

import numpy as np
import pandas as pd
import pytest

from kerasmed.cli import compare_main
from kerasmed.evaluation.compare import (mean_confidence_interval, paired_difference)


def _evaluation(folder, dice, hd95, images=None):
    """An eval_* folder as kerasmed-eval writes it, inside a run folder named like the run."""
    folder.mkdir(parents=True)
    images = images or [f"/data/images/{i:03d}.png" for i in range(len(dice))]
    pd.DataFrame({"image": images, "dice": dice, "iou": np.asarray(dice) / 2,
                  "precision": dice, "recall": dice, "hd95": hd95}).to_csv(
        folder / "per_image.csv", index=False)
    return folder


@pytest.fixture
def two_evaluations(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 0.9, 40)
    better = base + 0.05 + rng.normal(0, 0.01, 40)  # a known difference of +0.05
    hd_a = rng.uniform(2, 8, 40)
    hd_b = hd_a + 1.0
    hd_b[0] = np.nan  # HD95 undefined for one image in one evaluation
    a = _evaluation(tmp_path / "runs" / "unet_run" / "eval_1", better, hd_a)
    b = _evaluation(tmp_path / "runs" / "fpn_run" / "eval_1", base, hd_b)
    return a, b, better - base


def test_a_known_difference_is_found_with_its_interval_and_p_value(two_evaluations, tmp_path,
                                                                   capsys):
    a, b, diff = two_evaluations
    out = tmp_path / "cmp"
    assert compare_main([str(a), str(b), "--output", str(out), "--bootstrap", "2000"]) == 0
    (folder,) = out.iterdir()
    table = pd.read_csv(folder / "comparison.csv").set_index("metric")
    dice = table.loc["dice"]
    assert (dice["a"], dice["b"]) == ("unet_run", "fpn_run")
    assert dice["mean_diff"] == pytest.approx(diff.mean())
    assert dice["ci_low"] < diff.mean() < dice["ci_high"]
    assert dice["ci_high"] - dice["ci_low"] < 0.02  # 40 images, sd 0.01: a narrow interval
    assert dice["p_wilcoxon"] < 1e-6 and (dice["wins"], dice["losses"]) == (40, 0)
    hd = table.loc["hd95"]
    # Lower is better for HD95: the first evaluation wins; the undefined pair is left out.
    assert hd["n"] == 39 and hd["left_out"] == 1 and hd["wins"] == 39
    assert hd["mean_diff"] == pytest.approx(-1.0)
    assert len(list(folder.glob("paired_*.png"))) == len(table)
    assert json.loads((folder / "summary.json").read_text())["images"] == 40
    assert "dice unet_run - fpn_run: +0.05" in capsys.readouterr().out


def test_different_image_sets_are_refused(two_evaluations, tmp_path, capsys):
    a, _, _ = two_evaluations
    other = _evaluation(tmp_path / "other" / "eval_2", [0.5] * 40, [3.0] * 40,
                        images=[f"/elsewhere/{i}.png" for i in range(40)])
    assert compare_main([str(a), str(other), "--output", str(tmp_path / "cmp")]) == 2
    err = capsys.readouterr().err
    assert "evaluate different images" in err and "/elsewhere/" in err
    assert not (tmp_path / "cmp").exists()


def test_no_difference_and_undefined_scores():
    same = paired_difference([0.5, 0.7, 0.9], [0.5, 0.7, 0.9])
    assert same["mean_diff"] == 0 and same["p_wilcoxon"] == 1.0 and same["ties"] == 3
    empty = paired_difference([np.nan], [0.5])
    assert empty["n"] == 0 and np.isnan(empty["mean_diff"])


def test_mean_confidence_interval_is_students_t():
    mean, low, high = mean_confidence_interval([0.8, 0.82, 0.85, 0.79, 0.81])
    values = np.array([0.8, 0.82, 0.85, 0.79, 0.81])
    half = 2.776445 * values.std(ddof=1) / np.sqrt(5)  # t(0.975, 4 degrees of freedom)
    assert mean == pytest.approx(values.mean())
    assert (low, high) == (pytest.approx(mean - half, abs=1e-6), pytest.approx(mean + half,
                                                                                abs=1e-6))
    assert np.isnan(mean_confidence_interval([0.8])[1])
