"""Callbacks that leave a readable record of a run: ``history.csv``, per-epoch plots, checkpoints
and, for classifiers, per-class validation figures."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kerasmed.evaluation.classification import plot_confusion_matrix, predict_labels, report
from kerasmed.runfiles import replace_atomic, write_json_atomic
from kerasmed.training.plots import plot_history

__all__ = ["DatasetEpoch", "HistoryLogger", "RunCheckpoint", "ClassificationMetrics",
           "current_learning_rate"]


def current_learning_rate(optimizer) -> float:
    """The learning rate the optimizer uses now (a schedule is evaluated at the current step).

    Rounded to float32's shortest repr, so 1e-3 is logged as 0.001, not 0.0010000000474974513.
    """
    value = np.float32(keras.ops.convert_to_numpy(optimizer.learning_rate))
    return float(str(value))


class HistoryLogger(keras.callbacks.Callback):
    """Append one row per epoch to ``history.csv`` and redraw the plots in ``plots/``.

    A row holds the epoch (counted from 1), every loss and metric Keras reports (training, then
    validation), the learning rate used and the epoch's wall time in seconds. Both files are
    rewritten atomically at the end of every epoch, so a run in progress can be inspected.
    """

    def __init__(self, run_dir, plots: bool = True, rows=(), guard=None):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.csv_path = self.run_dir / "history.csv"
        self.plots = plots
        self.rows: list[dict] = list(rows)  # earlier epochs, when a run is resumed
        self.guard = guard  # a DivergenceGuard: a diverged epoch is not recorded
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self.guard is not None and self.guard.diverged is not None:
            return
        logs = dict(logs or {})
        logs.pop("learning_rate", None)  # ReduceLROnPlateau's copy; ours is read below
        row = {"epoch": epoch + 1}
        train = sorted((k for k in logs if not k.startswith("val_")), key=_loss_first)
        val = sorted((k for k in logs if k.startswith("val_")), key=_loss_first)
        row.update({k: float(logs[k]) for k in train + val})
        row["learning_rate"] = current_learning_rate(self.model.optimizer)
        row["epoch_time_s"] = round(time.perf_counter() - self._start, 3)
        self.rows.append(row)
        self.write()

    def write(self):
        """Rewrite ``history.csv`` (and the plots) from ``rows``."""
        history = pd.DataFrame(self.rows)
        replace_atomic(self.csv_path, lambda tmp: history.to_csv(tmp, index=False))
        if self.plots and self.rows:
            plot_history(history, self.run_dir / "plots")


def _loss_first(key: str):
    bare = key[4:] if key.startswith("val_") else key
    return (bare != "loss", not bare.endswith("loss"), bare)


class RunCheckpoint(keras.callbacks.Callback):
    """Save ``best.keras`` and ``last.keras`` atomically, and the resume state in ``state.json``.

    Keras' ``ModelCheckpoint`` writes in place, so a run killed while saving leaves a corrupt
    file; here each model is written to a temporary file and moved into place. ``state.json``
    is written after ``last.keras``, so it never claims an epoch the checkpoint lacks: a run
    killed mid-epoch loses at most that epoch. ``epochs_completed`` counts the epochs the
    checkpoints hold. With a ``guard`` (``DivergenceGuard``) a diverged epoch is not saved:
    no checkpoint with non-finite weights is written.
    """

    def __init__(self, run_dir, monitor: str, mode: str = "max", best_value=None,
                 best_epoch=None, epochs_completed: int = 0, guard=None):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.monitor = monitor
        self.mode = mode
        self.best_value = best_value
        self.best_epoch = best_epoch
        self.epochs_completed = int(epochs_completed)
        self.guard = guard

    def _improved(self, value) -> bool:
        if self.best_value is None:
            return True
        return value > self.best_value if self.mode == "max" else value < self.best_value

    def _save(self, name):
        path = self.run_dir / name
        # The temporary name must end in .keras for model.save to accept it.
        replace_atomic(path, lambda tmp: self.model.save(tmp))

    def on_epoch_end(self, epoch, logs=None):
        if self.guard is not None and self.guard.diverged is not None:
            return
        value = (logs or {}).get(self.monitor)
        if value is not None and np.isfinite(value) and self._improved(float(value)):
            self._save("best.keras")
            self.best_value, self.best_epoch = float(value), epoch + 1
        self._save("last.keras")
        state = {"epochs_completed": epoch + 1, "monitor": self.monitor, "mode": self.mode,
                 "best_value": self.best_value, "best_epoch": self.best_epoch}
        write_json_atomic(self.run_dir / "state.json", state)
        self.epochs_completed = epoch + 1


class DatasetEpoch(keras.callbacks.Callback):
    """Tell a dataset which epoch starts, so its shuffling depends on the epoch number only."""

    def __init__(self, dataset):
        super().__init__()
        self.dataset = dataset

    def on_epoch_begin(self, epoch, logs=None):
        self.dataset.set_epoch(epoch)


class ClassificationMetrics(keras.callbacks.Callback):
    """Add per-class validation figures to each epoch's logs; draw the confusion matrix.

    Adds ``val_macro_f1``, ``val_mean_auc``, ``val_balanced_accuracy`` and, for each class,
    ``val_sensitivity_<class>``, ``val_specificity_<class>`` and ``val_auc_<class>`` (so they
    reach ``history.csv`` and the plots), and rewrites ``confusion_matrix.png`` (the latest
    epoch) in ``run_dir``. It predicts the validation set once per epoch with the compiled
    ``predict_on_batch``; place it before the logger in the callback list.
    """

    def __init__(self, dataset, classes, run_dir):
        super().__init__()
        self.dataset = dataset
        self.classes = list(classes)
        self.run_dir = Path(run_dir)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        truth, prob = predict_labels(self.model, self.dataset)
        if not np.isfinite(prob).all():
            # A diverged network: nothing to score (the DivergenceGuard, before this callback,
            # stops the run and says where); scoring would fail on the NaNs instead.
            logs.update({key: float("nan") for key in
                         ("val_macro_f1", "val_mean_auc", "val_balanced_accuracy")})
            return
        table, summary = report(truth, prob, self.classes)
        logs["val_macro_f1"] = summary["macro_f1"]
        logs["val_mean_auc"] = summary["mean_auc"]
        logs["val_balanced_accuracy"] = summary["balanced_accuracy"]
        for row in table.itertuples():
            logs[f"val_sensitivity_{row[1]}"] = row.sensitivity
            logs[f"val_specificity_{row[1]}"] = row.specificity
            logs[f"val_auc_{row[1]}"] = row.auc
        plot_confusion_matrix(summary["confusion_matrix"], self.classes,
                              self.run_dir / "confusion_matrix.png")


class BudgetClock(keras.callbacks.Callback):
    """Prints, after each epoch, how much of a planned time budget (``training.budget_minutes``)
    is used and how much is left, counted from ``started`` (``time.time()``; a k-fold parent
    passes its own start, so every fold counts against one budget)."""

    def __init__(self, budget_minutes: float, started: float | None = None, stream=None):
        super().__init__()
        self.budget_s = 60.0 * float(budget_minutes)
        self.started = time.time() if started is None else float(started)
        self.stream = stream

    def line(self, epoch: int) -> str:
        used = time.time() - self.started
        left = self.budget_s - used
        state = f"{left / 60:.1f} min left" if left >= 0 else f"{-left / 60:.1f} min over"
        return (f"kerasmed: budget after epoch {epoch + 1}: {used / 60:.1f} of "
                f"{self.budget_s / 60:g} min used, {state}")

    def on_epoch_end(self, epoch, logs=None):
        print(self.line(epoch), file=self.stream or sys.stdout, flush=True)
