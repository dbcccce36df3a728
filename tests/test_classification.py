"""Classification: figures against hand counts, and an OCT-like experiment through the CLI."""

import json

import keras
import numpy as np
import pandas as pd
import pytest

from kerasmed.evaluation.classification import plot_confusion_matrix, report
from kerasmed.cli import eval_main, train_main
from kerasmed.data.lookalike import make_oct2017
from kerasmed.models.registry import _REGISTRY, register_model

CLASSES = ["CNV", "DME", "DRUSEN", "NORMAL"]

if "test_tiny_classifier" not in _REGISTRY:
    @register_model("test_tiny_classifier", task="classification")
    def _tiny_classifier(input_shape=(32, 32, 1), classes=4, filters=4, name="tiny"):
        """A minimal CNN classifier for the pipeline tests."""
        inputs = keras.Input(input_shape)
        x = keras.layers.Conv2D(filters, 3, activation="relu", name="conv")(inputs)
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
        outputs = keras.layers.Dense(classes, activation="softmax", dtype="float32",
                                     name="head")(x)
        return keras.Model(inputs, outputs, name=name)


def test_report_matches_hand_counts():
    y = np.array([0, 0, 0, 1, 1, 2])
    prob = np.eye(3)[[0, 0, 1, 1, 0, 2]] * 0.8 + 0.1
    table, summary = report(y, prob, ["a", "b", "c"])
    # class a: tp 2, fn 1, fp 1, tn 2
    a = table.iloc[0]
    assert a["sensitivity"] == pytest.approx(2 / 3) and a["specificity"] == pytest.approx(2 / 3)
    assert a["precision"] == pytest.approx(2 / 3) and a["f1"] == pytest.approx(2 / 3)
    assert table["support"].tolist() == [3, 2, 1]
    assert summary["accuracy"] == pytest.approx(4 / 6)
    assert summary["confusion_matrix"] == [[2, 1, 0], [1, 1, 0], [0, 0, 1]]
    # f1: a 2/3, b 1/2, c 1
    assert summary["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert table.iloc[2]["auc"] == pytest.approx(1.0)


def test_confusion_matrix_plot(tmp_path):
    path = plot_confusion_matrix([[3, 1], [0, 4]], ["x", "y"], tmp_path / "cm.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


@pytest.fixture(scope="module")
def oct_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("oct")
    root = make_oct2017(tmp / "data", per_class=6)
    config = {
        "name": "oct",
        "model": {"name": "test_tiny_classifier", "params": {"filters": 4}},
        "data": {"dataset": "oct2017", "root": str(root), "options": {"subsets": ["train"]},
                 "image_size": [32, 32], "channels": 1, "val_fraction": 0.34,
                 "class_weights": "balanced"},
        "training": {"epochs": 2, "batch_size": 4, "verbose": 0},
    }
    path = tmp / "oct.json"
    path.write_text(json.dumps(config))
    out = tmp / "runs"
    assert train_main([str(path), "--output", str(out)]) == 0
    (run_dir,) = out.iterdir()
    return run_dir, root


def test_classification_run_writes_per_class_history_and_confusion_matrix(oct_run):
    run_dir, _ = oct_run
    history = pd.read_csv(run_dir / "history.csv")
    for column in ["loss", "accuracy", "val_accuracy", "val_macro_f1", "val_mean_auc",
                   "val_sensitivity_CNV", "val_specificity_NORMAL", "val_auc_DME"]:
        assert column in history, column
    assert len(history) == 2
    assert (run_dir / "confusion_matrix.png").exists()
    config = json.loads((run_dir / "config.json").read_text())
    assert config["training"]["loss"] == "sparse_categorical_crossentropy"
    assert config["training"]["monitor"] == "val_accuracy"
    split = json.loads((run_dir / "split.json").read_text())
    assert split["classes"] == CLASSES
    # Patients never on both sides.
    def patients(paths):
        return {p.split("-")[-2] for p in paths}
    assert not patients(split["train"]) & patients(split["val"])


def test_eval_reports_each_class(oct_run, capsys):
    run_dir, root = oct_run
    assert eval_main([str(run_dir), "--data", str(root), "--subsets", "test"]) == 0
    (eval_dir,) = run_dir.glob("eval_*")
    table = pd.read_csv(eval_dir / "per_class.csv")
    assert table["class"].tolist() == CLASSES and table["support"].tolist() == [6] * 4
    assert {"sensitivity", "specificity", "precision", "f1", "auc"} <= set(table.columns)
    predictions = pd.read_csv(eval_dir / "predictions.csv")
    assert len(predictions) == 24
    summary = json.loads((eval_dir / "summary.json").read_text())
    assert summary["accuracy"] == pytest.approx((predictions["true"] ==
                                                 predictions["predicted"]).mean())
    assert (eval_dir / "confusion_matrix.png").exists()
    assert "macro F1" in capsys.readouterr().out
    # Calibration over images: the ECE from the predictions written beside it.
    prob = predictions[[f"p_{c}" for c in CLASSES]].to_numpy()
    right = predictions["true"] == predictions["predicted"]
    confidence = prob.max(axis=1)
    bins = np.minimum((confidence * 15).astype(int), 14)
    ece = sum((bins == b).mean() * abs(right[bins == b].mean() - confidence[bins == b].mean())
              for b in set(bins))
    assert summary["ece"] == pytest.approx(ece, abs=1e-6)
    assert summary["inference"]["fit"] == "resize"
    assert (eval_dir / "reliability.png").exists()
