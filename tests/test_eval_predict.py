import json

import cv2
import keras
import numpy as np
import pandas as pd
import pytest

from kerasmed.cli import eval_main, predict_main
from kerasmed.evaluation import hd95, predict_image, score_masks, sliding_window


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
                                         "recall": 1.0, "hd95": 0.0}
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
                                                       "recall", "hd95"]
    summary = json.loads((eval_dir / "summary.json").read_text())
    assert summary["dice"]["mean"] == pytest.approx(table["dice"].mean())
    assert summary["dice"]["std"] == pytest.approx(table["dice"].std(ddof=0))
    overlays = sorted(p.name for p in (eval_dir / "overlays").iterdir())
    assert len(overlays) == 4 and sum(n.startswith("best") for n in overlays) == 2
    panel = cv2.imread(str(next((eval_dir / "overlays").iterdir())))
    assert panel.shape == (48, 3 * 64, 3)  # image, truth, prediction at the image's own size
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
