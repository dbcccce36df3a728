"""Class-index and one-hot evaluations: per-class scores against MONAI, their micro, macro,
weighted and per-image averages against scikit-learn, and kerasmed-eval on a class run."""

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score, jaccard_score, precision_recall_fscore_support

from _eval_shapes import ellipse, objects, shift
from kerasmed.evaluation.multiclass import (ClassMasks, as_class_index, class_columns,
                                            score_classes, summarise_classes)
from kerasmed.evaluation.scores import PIXEL_SCORES

K = 4


def _scene(seed, shape=(64, 64)):
    """Class-index truth (objects of several sizes, each of class 1..3) and a prediction that
    shifts it, confuses one object's class, erodes another and adds a spurious blob."""
    labels = objects(seed, shape, count=6, sizes=(3, 12))
    truth = np.where(labels > 0, (labels - 1) % (K - 1) + 1, 0)
    pred = shift(truth, 1, 2)
    pred[labels == 2] = 3 if truth[labels == 2][0] != 3 else 1  # wrong class
    pred[shift(labels == 4, 1, 2) & ~ellipse(shape, np.argwhere(labels == 4).mean(0), (2, 2))]\
        = 0  # an object predicted as a small core only
    pred[ellipse(shape, (3, 3), (2, 2))] = 2  # spurious
    return pred.astype(np.int64), truth.astype(np.int64)


SCENES = [_scene(s) for s in (11, 12, 13)]


@pytest.mark.parametrize("include_background", [False, True])
def test_averages_agree_with_scikit_learn(include_background):
    images = [score_classes(p, t, K, include_background) for p, t in SCENES]
    summary, table = summarise_classes(images)
    labels = list(range(0 if include_background else 1, K))
    assert list(table["index"]) == labels
    y_true = np.concatenate([t.ravel() for _, t in SCENES])
    y_pred = np.concatenate([p.ravel() for p, _ in SCENES])
    for average in ("micro", "macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=average, zero_division=np.nan)
        ours = summary["averages"][average]
        assert ours["precision"] == pytest.approx(precision), average
        assert ours["recall"] == pytest.approx(recall), average
        assert ours["dice"] == pytest.approx(f1), average  # pixel Dice is F1
        assert ours["iou"] == pytest.approx(jaccard_score(y_true, y_pred, labels=labels,
                                                          average=average)), average
    # Per class, pooled over the images.
    _, _, f1s, support = precision_recall_fscore_support(y_true, y_pred, labels=labels,
                                                         zero_division=np.nan)
    assert table["dice"].to_numpy() == pytest.approx(f1s)
    assert table["support"].tolist() == support.tolist()
    # The per-image mean: each image's macro average, then their mean.
    per_image = np.mean([f1_score(t.ravel(), p.ravel(), labels=labels, average="macro",
                                  zero_division=np.nan) for p, t in SCENES])
    assert summary["averages"]["per_image"]["dice"] == pytest.approx(per_image)
    # Distances have no counts to pool: no micro average.
    assert math.isnan(summary["averages"]["micro"]["hd95"])
    assert np.isfinite(summary["averages"]["macro"]["hd95"])


def test_per_class_distances_agree_with_monai():
    from monai.metrics import (compute_average_surface_distance, compute_hausdorff_distance,
                               compute_surface_dice)

    pred, truth = SCENES[0]
    spacing = (0.5, 0.75)
    ours = score_classes(pred, truth, K, True, spacing, tolerance=1.5)

    def one_hot(mask):
        return torch.from_numpy(np.eye(K, dtype=np.float32)[mask].transpose(2, 0, 1)[None])

    p, t = one_hot(pred), one_hot(truth)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = {
            "hd95": compute_hausdorff_distance(p, t, True, percentile=95, spacing=spacing),
            "assd": compute_average_surface_distance(p, t, True, symmetric=True,
                                                     spacing=spacing),
            "nsd": compute_surface_dice(p, t, [1.5] * K, True, spacing=spacing),
        }
    for score, values in theirs.items():
        for c in range(K):
            assert ours[c][score] == pytest.approx(float(values[0, c]), rel=1e-5), (score, c)


def test_empty_classes_and_the_documented_differences():
    truth = np.zeros((32, 32), np.int64)
    truth[4:14, 4:14] = 1
    truth[18:28, 18:28] = 2
    pred = np.where(truth == 2, 0, truth)  # class 2 predicted nowhere; class 3 in neither
    ours = score_classes(pred, truth, K)
    # A class in neither mask has nothing to score: NaN (as MONAI's and nnU-Net's), so it
    # stays out of the image's macro average.
    assert all(math.isnan(ours[3][s]) for s in PIXEL_SCORES)
    row = class_columns(ours)
    assert row["dice_macro"] == pytest.approx((1.0 + 0.0) / 2)
    # A class never predicted: kerasmed's precision is 0 (a miss), scikit-learn's undefined.
    assert ours[2]["precision"] == 0.0 and math.isnan(ours[2]["hd95"]) and ours[2]["nsd"] == 0
    theirs = precision_recall_fscore_support(truth.ravel(), pred.ravel(), labels=[2],
                                             zero_division=np.nan)[0]
    assert math.isnan(theirs[0])
    summary, _ = summarise_classes([ours])
    assert summary["averages"]["macro"]["precision"] == pytest.approx(0.5)
    assert summary["per_class"]["class_3"]["dice"] != summary["per_class"]["class_3"]["dice"]


def test_one_hot_and_index_masks_score_alike():
    pred, truth = SCENES[1]
    one_hot = np.eye(K, dtype=np.float32)[pred]
    assert np.array_equal(as_class_index(one_hot, K), pred)
    a = score_classes(one_hot, truth, K)
    b = score_classes(pred, truth[..., None], K)
    assert pd.DataFrame(a).equals(pd.DataFrame(b))
    with pytest.raises(ValueError, match="class indices"):
        as_class_index(np.full((4, 4), K), K)
    with pytest.raises(ValueError, match="at least 2"):
        ClassMasks(1)


# ------------------------------------------------------------------------- end to end

def _class_run(tmp_path):
    """A run directory of a 4-class experiment (class masks stored as grey levels) whose
    'network' returns its input's channels: images hold the one-hot prediction in channels
    1..3 and nothing in channel 0, so the argmax is the predicted class."""
    import keras

    from kerasmed.data.lookalike import write_image

    data = tmp_path / "data"
    values = [0, 60, 120, 180]
    for k, (pred, truth) in enumerate(SCENES):
        image = np.zeros((*pred.shape, 3), np.uint8)
        for c in range(1, K):
            image[..., c - 1] = (pred == c) * 255
        write_image(data / "images" / f"{k}.png", image)
        write_image(data / "masks" / f"{k}.png", np.take(values, truth).astype(np.uint8))
    # Output 0 is a constant 0.5 (the bias), output c the input's channel c - 1 (0 or 1).
    kernel = np.zeros((1, 1, 3, K), np.float32)
    for c in range(1, K):
        kernel[0, 0, c - 1, c] = 1.0
    inputs = keras.Input((64, 64, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(
        K, 1, kernel_initializer=keras.initializers.Constant(kernel),
        bias_initializer=keras.initializers.Constant([0.5] + [0.0] * (K - 1)))(inputs))
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "best.keras")
    config = {"name": "classes", "model": {"name": "unet", "params": {"classes": K}},
              "data": {"dataset": "folder", "root": str(data), "image_size": [64, 64],
                       "normalization": "dtype_range", "mask_mode": "classes",
                       "num_classes": K, "class_values": values, "spacing": [0.5, 0.5]},
              "training": {"loss": "categorical_crossentropy"}}
    (run / "config.json").write_text(json.dumps(config))
    return run, data


def test_eval_cli_on_a_class_run(tmp_path, capsys):
    from kerasmed.cli import compare_main, eval_main

    run, data = _class_run(tmp_path)
    args = [str(run), "--data", str(data), "--overlays", "1"]
    assert eval_main(args) == 0, capsys.readouterr().err
    assert "macro Dice" in capsys.readouterr().out
    (out,) = run.glob("eval_*")
    table = pd.read_csv(out / "per_image.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["distance_unit"] == "unit of the spacing"
    assert summary["spacing"]["source"] == "data.spacing"
    assert summary["classes"]["scored"] == ["class_1", "class_2", "class_3"]
    assert "dice_class_0" not in table.columns and "hd95_class_3" in table.columns
    # The rows are the scenes' scores, at half-unit pixels.
    expected = [score_classes(p, t, K, spacing=(0.5, 0.5), tolerance=1.0) for p, t in SCENES]
    assert table["hd95_class_2"].tolist() == pytest.approx([e[2]["hd95"] for e in expected])
    assert table["dice_macro"].tolist() == pytest.approx(
        [class_columns(e)["dice_macro"] for e in expected])
    reference, _ = summarise_classes(expected)
    for average in ("micro", "macro", "weighted", "per_image"):
        assert summary["averages"][average]["dice"] == pytest.approx(
            reference["averages"][average]["dice"])
    per_class = pd.read_csv(out / "per_class.csv")
    assert per_class["class"].tolist() == ["class_1", "class_2", "class_3"]
    # With the background, and another pixel size from the command line.
    assert eval_main(args + ["--include-background", "--spacing", "1"]) == 0
    (second,) = set(run.glob("eval_*")) - {out}
    assert "dice_class_0" in pd.read_csv(second / "per_image.csv").columns
    summary2 = json.loads((second / "summary.json").read_text())
    assert summary2["classes"]["background"] == "included"
    assert summary2["spacing"]["source"] == "--spacing"
    capsys.readouterr()
    # kerasmed-compare takes the per-class columns, a distance's lower value winning.
    assert eval_main(args + ["--spacing", "0.25"]) == 0
    (third,) = set(run.glob("eval_*")) - {out, second}
    assert compare_main([str(out), str(third), "--names", "a,b", "--bootstrap", "20",
                         "--output", str(tmp_path / "cmp")]) == 0
    (cmp,) = (tmp_path / "cmp").iterdir()
    rows = pd.read_csv(cmp / "comparison.csv").set_index("metric")
    assert {"dice_class_1", "hd95_class_2", "hd95_macro"} <= set(rows.index)
    assert rows.loc["hd95_macro", "losses"] == 3  # a's pixels are twice b's


def test_eval_cli_background_options_need_class_masks(tmp_path, capsys):
    from kerasmed.cli import eval_main

    run, data = _class_run(tmp_path)
    bare = [str(run / "best.keras"), "--data", str(data)]  # no experiment: no class masks
    assert eval_main(bare + ["--exclude-background"]) == 2  # one line, no usage
    assert "--exclude-background is for class-index masks" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        eval_main(bare + ["--include-background", "--exclude-background"])
    assert stop.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert not list(run.glob("eval_*"))
