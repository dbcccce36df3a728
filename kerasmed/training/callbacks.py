"""Callbacks that leave a readable record of a run: ``history.csv`` and per-epoch plots."""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from kerasmed.training.plots import plot_history
from kerasmed.training.rundir import replace_atomic

__all__ = ["HistoryLogger", "current_learning_rate"]


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

    def __init__(self, run_dir, plots: bool = True):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.csv_path = self.run_dir / "history.csv"
        self.plots = plots
        self.rows: list[dict] = []
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        logs.pop("learning_rate", None)  # ReduceLROnPlateau's copy; ours is read below
        row = {"epoch": epoch + 1}
        train = sorted((k for k in logs if not k.startswith("val_")), key=_loss_first)
        val = sorted((k for k in logs if k.startswith("val_")), key=_loss_first)
        row.update({k: float(logs[k]) for k in train + val})
        row["learning_rate"] = current_learning_rate(self.model.optimizer)
        row["epoch_time_s"] = round(time.perf_counter() - self._start, 3)
        self.rows.append(row)
        history = pd.DataFrame(self.rows)
        replace_atomic(self.csv_path, lambda tmp: history.to_csv(tmp, index=False))
        if self.plots:
            plot_history(history, self.run_dir / "plots")


def _loss_first(key: str):
    bare = key[4:] if key.startswith("val_") else key
    return (bare != "loss", not bare.endswith("loss"), bare)
