import json

import cv2
import keras
import numpy as np
import pandas as pd
import pytest

from _eval_shapes import channel0_model
from kerasmed.cli import eval_main, predict_main
from kerasmed.evaluation import hd95, predict_image, score_masks, sliding_window
from kerasmed.evaluation.segmentation import LABEL_HEIGHT


def _square(top, left, size=10, shape=(40, 40)):
    m = np.zeros(shape, np.uint8)
    m[top:top + size, left:left + size] = 1
    return m


def test_hd95_of_shifted_squares():
    assert hd95(_square(5, 5), _square(5, 5)) == 0.0
    assert hd95(_square(5, 5), _square(5, 8)) == pytest.approx(3.0)
    assert hd95(np.zeros((9, 9)), np.zeros((9, 9))) == 0.0
    assert np.isnan(hd95(_square(1, 1), np.zeros((40, 40))))


def test_scores_against_hand_counts():
    pred, truth = _square(0, 0), _square(0, 5)  # 10x10 squares overlapping on 10x5
    s = score_masks(pred, truth)
    assert s["dice"] == pytest.approx(2 * 50 / 200)
    assert s["iou"] == pytest.approx(50 / 150)
    assert s["precision"] == pytest.approx(0.5) and s["recall"] == pytest.approx(0.5)
    empty = np.zeros((40, 40), np.uint8)
    assert score_masks(empty, empty) == {"dice": 1.0, "iou": 1.0, "precision": 1.0,
                                         "recall": 1.0, "hd95": 0.0, "assd": 0.0, "nsd": 1.0}
    miss = score_masks(empty, truth)
    assert miss["dice"] == 0.0 and miss["recall"] == 0.0 and miss["precision"] == 0.0


def _pointwise_model(size=(16, 16)):
    """A model whose output at a pixel depends only on that pixel: tiling must be exact."""
    inputs = keras.Input((*size, 3))
    out = keras.layers.Conv2D(1, 1, kernel_initializer=keras.initializers.Constant(1 / 3),
                              bias_initializer="zeros")(inputs)
    return keras.Model(inputs, out)


@pytest.mark.parametrize("shape", [(37, 53), (16, 16), (9, 40)])
def test_sliding_window_covers_any_size_exactly(shape):
    model = _pointwise_model()
    image = np.random.default_rng(0).random((*shape, 3)).astype(np.float32)
    out = sliding_window(model, image, overlap=0.5)
    assert out.shape == (*shape, 1)
    np.testing.assert_allclose(out[..., 0], image.mean(axis=-1), atol=1e-5)
    tta = sliding_window(model, image, overlap=0.25, tta=True)
    np.testing.assert_allclose(tta, out, atol=1e-5)


def test_predict_image_returns_the_input_size():
    model = _pointwise_model()
    image = (np.random.default_rng(1).random((50, 70, 3)) * 255).astype(np.uint8)
    for mode in ("resize", "tile"):
        assert predict_image(model, image, mode).shape == (50, 70, 1)


def test_eval_cli_writes_scores_summary_and_overlays(finished_run, capsys):
    run_dir = finished_run[0]
    assert eval_main([str(run_dir), "--overlays", "2"]) == 0
    (eval_dir,) = run_dir.glob("eval_*")
    table = pd.read_csv(eval_dir / "per_image.csv")
    assert len(table) == 4 and list(table.columns) == ["image", "dice", "iou", "precision",
                                                       "recall", "hd95", "assd", "nsd"]
    summary = json.loads((eval_dir / "summary.json").read_text())
    assert summary["dice"]["mean"] == pytest.approx(table["dice"].mean())
    assert summary["dice"]["std"] == pytest.approx(table["dice"].std(ddof=0))
    overlays = sorted(p.name for p in (eval_dir / "overlays").iterdir())
    assert len(overlays) == 4 and sum(n.startswith("best") for n in overlays) == 2
    panel = cv2.imread(str(next((eval_dir / "overlays").iterdir())))
    # image, truth, prediction at the image's own size, each named in a strip above it
    assert panel.shape == (LABEL_HEIGHT + 48, 3 * 64, 3)
    assert all(panel[:LABEL_HEIGHT, i * 64:(i + 1) * 64].max() > 200 for i in range(3))
    assert "dice" in capsys.readouterr().out
    # A second evaluation gets its own folder; TTA runs too.
    assert eval_main([str(run_dir), "--tta", "--overlays", "1"]) == 0
    assert len(list(run_dir.glob("eval_*"))) == 2


def test_predict_cli_masks_have_the_input_size(finished_run, tmp_path, capsys):
    run_dir = finished_run[0]
    big = (np.random.default_rng(2).random((70, 90, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "big.png"), big)
    out = tmp_path / "pred"
    assert predict_main([str(run_dir), str(tmp_path / "big.png"), "--output", str(out),
                         "--mode", "tile", "--probabilities"]) == 0
    mask = cv2.imread(str(out / "big.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (70, 90) and set(np.unique(mask)) <= {0, 255}
    prob = cv2.imread(str(out / "big_prob.png"), cv2.IMREAD_UNCHANGED)
    assert prob.dtype == np.uint16 and prob.shape == (70, 90)
    # Never overwrites earlier outputs.
    assert predict_main([str(run_dir / "best.keras"), str(tmp_path / "big.png"), "--output",
                         str(out)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err


# ------------------------------------------------------------------------ object-level scores

def _nuclei_with_known_predictions(tmp_path):
    """Two 32x32 images whose first channel is the distance map of the instance labels the
    'model' should find: image 0 exactly its truth (two touching squares, one apart), image 1
    the truth with one of its three nuclei missing."""
    from kerasmed.data.lookalike import write_image
    from kerasmed.data.readers import read_folder_pair
    from kerasmed.data.targets import distance_map

    truth = np.zeros((32, 32), np.uint16)
    truth[4:12, 4:12], truth[4:12, 12:20], truth[20:28, 6:14] = 1, 2, 3
    shown = [truth, np.where(truth == 3, 0, truth)]
    for k, predicted in enumerate(shown):
        image = np.zeros((32, 32, 3), np.uint8)
        image[..., 0] = np.round(distance_map(predicted) * 255)
        write_image(tmp_path / "images" / f"{k}.png", image)
        write_image(tmp_path / "masks" / f"{k}.png", truth)
    return read_folder_pair(tmp_path, mask_type="instances")


def test_evaluate_scores_objects_from_a_distance_map(tmp_path):
    from kerasmed.evaluation import Postprocess, evaluate

    samples = _nuclei_with_known_predictions(tmp_path)
    summary = evaluate(channel0_model((32, 32)), samples, tmp_path / "eval",
                       normalization="dtype_range", n_overlays=1,
                       postprocess=Postprocess("distance", h=0.1))
    table = pd.read_csv(tmp_path / "eval" / "per_image.csv")
    # Image 0: the watershed splits the touching squares: every object found exactly.
    assert table.loc[0, ["aji", "object_f1", "object_dice", "dice"]].tolist() == [1, 1, 1, 1]
    assert table.loc[0, ["tp", "fp", "fn"]].tolist() == [3, 0, 0]
    # Image 1: nucleus 3 (64 px) missed: F1 = 2*2 / (2*2 + 1), AJI = 128 / 192.
    assert table.loc[1, "object_f1"] == pytest.approx(0.8)
    assert table.loc[1, "aji"] == pytest.approx(128 / 192)
    assert summary["aji"]["mean"] == pytest.approx((1 + 128 / 192) / 2)
    assert summary["object_f1_pooled"] == {"value": pytest.approx(10 / 11), "tp": 5, "fp": 0,
                                           "fn": 1}
    assert summary["postprocess"]["source"] == "distance"
    # Without object scoring the same masks are read as binary foreground.
    pixels = evaluate(channel0_model((32, 32)), samples, tmp_path / "eval2",
                      normalization="dtype_range", n_overlays=1, threshold=0.01)
    assert "aji" not in pixels and pixels["dice"]["mean"] == pytest.approx(
        (1 + 2 * 128 / (128 + 192)) / 2)


def test_postprocess_of_probabilities_and_softmax():
    from kerasmed.evaluation import Postprocess

    prob = np.zeros((20, 20, 1), np.float32)
    prob[2:8, 2:8], prob[12:18, 12:18], prob[0, 19] = 0.9, 0.8, 0.9
    labels = Postprocess("probability", min_size=2).instances(prob)
    assert labels.max() == 2 and labels[0, 19] == 0
    softmax = np.concatenate([1 - prob, prob], axis=-1)  # channel 0 is background
    assert np.array_equal(Postprocess("probability", min_size=2).instances(softmax), labels)
    with pytest.raises(ValueError, match="distance' or 'probability"):
        Postprocess("watershed")


def test_eval_cli_scores_objects_with_thresholds_from_the_command_line(tmp_path, capsys):
    _nuclei_with_known_predictions(tmp_path / "data")
    model = channel0_model((32, 32))
    model.save(tmp_path / "m.keras")
    args = [str(tmp_path / "m.keras"), "--data", str(tmp_path / "data"), "--normalization",
            "dtype_range", "--overlays", "1", "--output", str(tmp_path / "out")]
    # Instance-label masks in a folder: pixel scores of label > 0 unless asked for objects.
    assert eval_main(args) == 2
    assert "mask_type='instances'" in capsys.readouterr().err
    assert not list((tmp_path / "out").iterdir())  # the failed evaluation left nothing
    args += ["--mask-type", "instances"]
    assert eval_main(args + ["--instances", "off"]) == 0
    assert "aji" not in capsys.readouterr().out
    assert eval_main(args + ["--instances", "distance", "--min-size", "70"]) == 0
    out = capsys.readouterr().out
    assert "aji" in out and "pooled object F1" in out
    (latest,) = [d for d in (tmp_path / "out").iterdir()
                 if "postprocess" in json.loads((d / "summary.json").read_text())]
    summary = json.loads((latest / "summary.json").read_text())
    # min_size 70 removes every 64-pixel nucleus: nothing is found.
    assert summary["postprocess"]["min_size"] == 70 and summary["object_f1_pooled"]["tp"] == 0
    assert len(list((latest / "overlays").iterdir())) == 2
