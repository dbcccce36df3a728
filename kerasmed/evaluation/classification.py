"""Figures for image classification (retinal OCT): per-class and overall, and their plots.

Screening papers report each class's sensitivity and specificity (one class against the rest),
macro-averaged F1 and the area under each class's ROC curve; ``report`` computes them all from
the true class indices and the predicted probabilities, with scikit-learn. The per-epoch
validation figures of a training run come from the same ``report``
(``kerasmed.training.callbacks.ClassificationMetrics``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # no pyplot: a notebook's backend is left as it is
from sklearn import metrics as skm

from kerasmed.runfiles import replace_atomic, write_json_atomic  # noqa: E402

__all__ = ["report", "plot_confusion_matrix", "predict_labels", "evaluate_classifier"]


def report(y_true, prob, classes) -> tuple[pd.DataFrame, dict]:
    """Per-class and overall figures of a classifier.

    Args:
        y_true: true class indices, shape ``(n,)``.
        prob: predicted probabilities, shape ``(n, K)``.
        classes: the K class names.

    Returns:
        ``(table, summary)``: ``table`` has one row per class (support, sensitivity, specificity,
        precision, F1, ROC AUC one-vs-rest; AUC is NaN for a class absent from ``y_true``);
        ``summary`` has accuracy, macro F1, mean AUC (over the defined ones), balanced accuracy
        and the confusion matrix (rows: true class, columns: predicted).
    """
    y_true = np.asarray(y_true).astype(int).ravel()
    prob = np.asarray(prob, dtype=np.float64)
    k = len(classes)
    y_pred = prob.argmax(axis=1)
    cm = skm.confusion_matrix(y_true, y_pred, labels=list(range(k)))
    rows = []
    for i, name in enumerate(classes):
        tp = cm[i, i]
        fn = cm[i].sum() - tp
        fp = cm[:, i].sum() - tp
        tn = cm.sum() - tp - fn - fp
        present = (y_true == i).any() and (y_true != i).any()
        rows.append({
            "class": name, "support": int(cm[i].sum()),
            "sensitivity": tp / (tp + fn) if tp + fn else np.nan,
            "specificity": tn / (tn + fp) if tn + fp else np.nan,
            "precision": tp / (tp + fp) if tp + fp else np.nan,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else np.nan,
            "auc": skm.roc_auc_score(y_true == i, prob[:, i]) if present else np.nan,
        })
    table = pd.DataFrame(rows)
    summary = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(np.nanmean(table["sensitivity"])),
        "macro_f1": float(skm.f1_score(y_true, y_pred, labels=list(range(k)), average="macro",
                                       zero_division=0)),
        "mean_auc": float(np.nanmean(table["auc"])) if table["auc"].notna().any() else np.nan,
        "confusion_matrix": cm.tolist(),
    }
    return table, summary


def plot_confusion_matrix(cm, classes, path) -> Path:
    """Draw a confusion matrix (counts, and row-normalised shading) to a PNG at ``path``."""
    cm = np.asarray(cm)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = 1.2 + 0.9 * len(classes)
    fig = Figure(figsize=(size + 1, size), dpi=100)
    ax = fig.subplots()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    path = Path(path)
    replace_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    return path


def predict_labels(model, dataset):
    """True indices and predicted probabilities over a ``ClassificationDataset``, in order."""
    truth, prob = [], []
    for i in range(len(dataset)):
        x, y = dataset[i]
        out = model.predict_on_batch(x)
        prob.append(np.asarray(out, dtype=np.float32))
        y = np.asarray(y)
        truth.append(y.argmax(axis=-1) if y.ndim == 2 else y.ravel())
    return np.concatenate(truth), np.concatenate(prob)


def evaluate_classifier(model, dataset, out_dir, inference=None) -> dict:
    """Score a classifier on a ``ClassificationDataset`` and write the results to ``out_dir``.

    Writes ``per_class.csv`` (the table of ``report``), ``predictions.csv`` (image, true and
    predicted class, each class's probability), ``confusion_matrix.png``, the images'
    reliability diagram ``reliability.png`` and ``summary.json`` (with the expected calibration
    error ``ece`` and, when given, ``inference``: the settings the images were read with).
    Returns the summary.
    """
    from kerasmed.evaluation.calibration import Calibration

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    truth, prob = predict_labels(model, dataset)
    table, summary = report(truth, prob, dataset.classes)
    table.to_csv(out_dir / "per_class.csv", index=False)
    predictions = pd.DataFrame({"image": [str(s.image) for s in dataset.samples],
                                "true": [dataset.classes[i] for i in truth],
                                "predicted": [dataset.classes[i] for i in prob.argmax(axis=1)]})
    for i, name in enumerate(dataset.classes):
        predictions[f"p_{name}"] = prob[:, i]
    predictions.to_csv(out_dir / "predictions.csv", index=False)
    plot_confusion_matrix(summary["confusion_matrix"], dataset.classes,
                          out_dir / "confusion_matrix.png")
    calibration = Calibration()
    calibration.add_probabilities(prob, truth)
    calibration.plot(out_dir / "reliability.png", "images")
    summary = {"images": int(len(truth)), "classes": list(dataset.classes), **summary,
               "per_class": table.to_dict("records"), "ece": calibration.ece(),
               "calibration": calibration.record()["bins"]}
    if inference is not None:
        summary["inference"] = inference
    write_json_atomic(out_dir / "summary.json", summary)
    return summary
