"""Calibration (ECE, reliability diagrams) and uncertainty (TTA, Monte Carlo dropout)."""

import json

import keras
import numpy as np
import pandas as pd
import pytest

from kerasmed.cli import eval_main
from kerasmed.evaluation.calibration import (Calibration, mc_dropout, predictive_entropy,
                                             sample_variance)


def test_expected_calibration_error_by_hand(tmp_path):
    cal = Calibration(bins=10)
    # Bin [0.9, 1.0): 10 predictions at 0.95, 8 right; bin [0.6, 0.7): 10 at 0.65, 6 right.
    cal.add([0.95] * 10 + [0.65] * 10, [True] * 8 + [False] * 2 + [True] * 6 + [False] * 4)
    assert cal.ece() == pytest.approx(0.5 * abs(0.8 - 0.95) + 0.5 * abs(0.6 - 0.65))
    perfect = Calibration()
    perfect.add([1.0] * 5, [True] * 5)
    assert perfect.ece() == pytest.approx(0.0)
    # Sigmoid maps: confidence of the predicted class, right where it matches the truth.
    sig = Calibration(bins=10)
    sig.add_probabilities(np.array([[0.93], [0.25]]), np.array([1, 1]))
    assert sig.table()[9]["accuracy"] == 1.0 and sig.table()[9]["count"] == 1
    assert sig.table()[7]["accuracy"] == 0.0  # 0.25 predicts background, confidence 0.75
    assert cal.plot(tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_entropy_and_variance_of_samples():
    same = np.full((4, 3, 3, 1), 0.5)
    np.testing.assert_allclose(predictive_entropy(same), np.log(2))
    np.testing.assert_allclose(sample_variance(same), 0)
    split = np.concatenate([np.zeros((2, 3, 3, 1)), np.ones((2, 3, 3, 1))])
    np.testing.assert_allclose(sample_variance(split), 0.25)
    sure = np.stack([np.eye(3)[[0, 0, 0]].reshape(1, 3, 3)] * 2)  # softmax, certain
    assert predictive_entropy(sure).max() < 1e-5


def _dropout_model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    return keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid",
                                                   name="head")(x))


def test_mc_dropout_samples_dropout_only_and_restores_the_model():
    model = _dropout_model()
    x = np.random.default_rng(0).random((1, 8, 8, 3), dtype=np.float32)
    fixed = keras.ops.convert_to_numpy(model(x, training=False))
    moving = keras.ops.convert_to_numpy(model.get_layer("bn").moving_mean).copy()
    with mc_dropout(model) as layers:
        assert [layer.name for layer in layers] == ["drop"]
        a, b = (keras.ops.convert_to_numpy(model(x, training=False)) for _ in range(2))
    assert not np.allclose(a, b)  # a new dropout mask each pass
    # Batch normalisation stayed in inference mode and the model is as before afterwards.
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("bn").moving_mean),
                                  moving)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x, training=False)), fixed)
    inputs = keras.Input((8, 8, 3))
    plain = keras.Model(inputs, keras.layers.Conv2D(1, 1, name="head")(inputs), name="plain")
    with pytest.raises(ValueError, match="'plain' has no dropout layers"):
        with mc_dropout(plain):
            pass


def test_eval_reports_calibration_and_tta_uncertainty(finished_run):
    run_dir = finished_run[0]
    assert eval_main([str(run_dir), "--uncertainty", "tta", "--overlays", "1",
                      "--output", str(run_dir / "unc")]) == 0
    (eval_dir,) = (run_dir / "unc").iterdir()
    table = pd.read_csv(eval_dir / "per_image.csv")
    assert {"uncertainty", "variance"} <= set(table.columns)
    assert ((table["uncertainty"] >= 0) & (table["uncertainty"] <= np.log(2) + 1e-9)).all()
    summary = json.loads((eval_dir / "summary.json").read_text())
    assert summary["uncertainty_sampling"]["method"] == "tta"
    assert summary["uncertainty"]["mean"] == pytest.approx(table["uncertainty"].mean())
    assert 0 <= summary["ece"] <= 1 and (eval_dir / "reliability.png").exists()
    counts = sum(b["count"] for b in summary["calibration"])
    assert counts == 4 * 48 * 64  # every pixel of the 4 validation images, at their size
    overlays = sorted(p.name for p in (eval_dir / "overlays").iterdir())
    assert sum(n.endswith("_entropy.png") for n in overlays) == 2
    assert sum(n.endswith("_variance.png") for n in overlays) == 2


def test_mc_dropout_on_a_network_without_dropout_says_so(finished_run, capsys):
    run_dir = finished_run[0]
    out = run_dir / "mc"
    assert eval_main([str(run_dir), "--uncertainty", "mc_dropout", "--output", str(out)]) == 2
    assert "has no dropout layers" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
