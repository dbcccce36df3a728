"""Run training into a run directory that is already claimed and written.

The experiment layer (``kerasmed.experiment``) turns an experiment file into a checked, compiled
model, its datasets and a new run directory; ``run_training`` then trains and keeps the run's
record. A run directory holds:
    config.json         the experiment with every default filled in (re-runnable as it is)
    config.source.json  the experiment file exactly as given
    split.json          the image paths of the training and validation sets
    history.csv         one row per epoch: losses, metrics, learning rate, epoch time
    plots/*.png         one plot per quantity, redrawn each epoch
    best.keras          the model at its best epoch (by training.monitor)
    last.keras          the model after the last completed epoch (optimizer state included)
    state.json          epochs completed and the best value so far, for --resume
    summary.json        final and best figures, parameter count, timings, versions, status
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from pathlib import Path

import keras

import kerasmed
from kerasmed.runfiles import write_json_atomic
from kerasmed.signals import signal_name
from kerasmed.training.callbacks import DatasetEpoch, HistoryLogger, RunCheckpoint
from kerasmed.training.compile import Compilation
from kerasmed.training.guard import DivergenceGuard
from kerasmed.training.tracing import build_training_state
from kerasmed.training.loop import train_on_batch_loop
from kerasmed.training.unfreeze import UnfreezeEncoder

__all__ = ["LOOPS", "STATUSES", "run_training", "read_summary", "versions", "RunDiverged"]

LOOPS = ("fit", "train_on_batch")
# Why a run ended, as summary.json records it ("running" while it trains).
STATUSES = ("completed", "stopped", "diverged", "interrupted", "failed")


class RunDiverged(RuntimeError):
    """Training stopped at a non-finite loss or non-finite weights (``summary.json`` says where)."""


def versions() -> dict:
    """The versions a run records: kerasmed, Keras, the backend and Python."""
    return {"kerasmed": kerasmed.__version__, "keras": keras.__version__,
            "backend": keras.backend.backend(), "python": platform.python_version()}


def _training_callbacks(run_dir, training):
    """The callbacks of ``training.callbacks`` that are not the compile's."""
    spec = training["callbacks"]
    callbacks = []
    if spec["early_stopping"] is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=training["monitor"], mode=training["monitor_mode"],
            **spec["early_stopping"]))
    if spec["reduce_lr_on_plateau"] is not None:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=training["monitor"], mode=training["monitor_mode"],
            **spec["reduce_lr_on_plateau"]))
    if spec["tensorboard"]:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard")))
    return callbacks


def _class_weight(spec, train_ds):
    """``fit``'s ``class_weight`` from ``data.class_weights``: null, "balanced" or a dict."""
    if spec is None:
        return None
    if spec == "balanced":
        return train_ds.class_weights()
    return {train_ds.class_index[name]: float(w) for name, w in spec.items()}


def _best_row(rows, monitor, mode):
    rows = [r for r in rows if monitor in r and math.isfinite(r[monitor])]
    if not rows:
        return None
    pick = max if mode == "max" else min
    return pick(rows, key=lambda r: r[monitor])


def _divergence_record(guard, training):
    record = dict(guard.diverged)
    optimizer = training["optimizer"]
    lr = optimizer.get("learning_rate")
    what = "the loss became non-finite" if record["batch"] else "weights became non-finite"
    record["hint"] = (f"{what} at epoch {record['epoch']}"
                      + (f", batch {record['batch']}" if record["batch"] else "")
                      + f"; try a lower training.optimizer.learning_rate (now {lr})"
                      + (", a gradient clip (training.optimizer.clipnorm)"
                         if "clipnorm" not in optimizer else "")
                      + " or float32 precision")
    return record


def _verbosity(verbose):
    # A progress bar redrawn in a redirected log is a stream of control characters.
    if verbose == 1 and not sys.stdout.isatty():
        return 2
    return verbose


def run_training(config, run_dir, model, train_ds, val_ds, initial_epoch=0, rows=(), state=None,
                 replicas=1, skipped=(), extra_callbacks=()):
    """Fit (or loop) ``model`` from ``initial_epoch`` and keep ``summary.json`` up to date.

    ``config`` is the validated experiment (its ``training`` section and ``data.class_weights``
    are read); ``model`` is compiled; ``run_dir`` exists; ``skipped`` lists the samples the
    loaders left out (``data.on_error: skip``) as ``{"image", "reason"}`` dicts;
    ``extra_callbacks`` run after the run's own.

    ``summary.json`` records why the run ended (``status``: ``completed``, ``stopped`` by early
    stopping, ``diverged`` with where and a hint, ``interrupted``, or ``failed`` with the
    error). ``history.csv``, ``state.json`` and the summary always agree on the epochs
    completed: those the checkpoints hold.

    Returns ``run_dir``; raises ``RunDiverged`` after recording a diverged run.
    """
    run_dir = Path(run_dir)
    training = config["training"]
    state = state or {}
    guard = DivergenceGuard()
    logger = HistoryLogger(run_dir, rows=rows, guard=guard)
    checkpoint = RunCheckpoint(run_dir, training["monitor"], training["monitor_mode"],
                               state.get("best_value"), state.get("best_epoch"),
                               epochs_completed=initial_epoch, guard=guard)
    # The contract that compiled the model (a resumed checkpoint's: the experiment's).
    compilation = Compilation.of(model) or Compilation.for_experiment(config, model)
    # The reporting callbacks before the logger, so that their figures reach history.csv.
    callbacks = [DatasetEpoch(train_ds), guard,
                 *compilation.reporting_callbacks(val_ds, run_dir), logger, checkpoint]
    callbacks += (compilation.callbacks() + _training_callbacks(run_dir, training)
                  + list(extra_callbacks))
    class_weight = None
    if compilation.task == "classification":
        class_weight = _class_weight(config["data"]["class_weights"], train_ds)
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {
        "name": config["name"], "run_dir": str(run_dir), "model": config["model"]["name"],
        "parameters": int(model.count_params()), "train_samples": len(train_ds.samples),
        "val_samples": len(val_ds.samples), "versions": versions(), "train_seconds": 0.0,
        "distribution": {"kind": training["distribution"], "replicas": replicas},
        "skipped": list(skipped)}
    summary["status"] = "running"
    summary.pop("error", None)
    write_json_atomic(summary_path, summary)
    verbose = _verbosity(training["verbose"])
    if verbose:
        print(f"kerasmed: run directory {run_dir}"
              + (f" (resuming after epoch {initial_epoch})" if initial_epoch else ""), flush=True)
    start = time.perf_counter()
    try:
        first = train_ds[0]
        build_training_state(model, first)
        for callback in callbacks:
            if isinstance(callback, UnfreezeEncoder):  # its recompile builds from it too
                callback.batch = first
        if training["loop"] == "fit":
            # shuffle=False: the dataset shuffles itself from (seed, epoch), which both engines
            # and a resumed run reproduce; fit's own shuffling would reorder its batches.
            model.fit(train_ds, validation_data=val_ds, epochs=training["epochs"],
                      initial_epoch=initial_epoch, callbacks=callbacks, shuffle=False,
                      class_weight=class_weight, verbose=verbose)
        else:
            train_on_batch_loop(model, train_ds, val_ds, training["epochs"], callbacks,
                                initial_epoch=initial_epoch, verbose=verbose,
                                class_weight=class_weight)
        if guard.diverged is not None:
            summary["status"] = "diverged"
            summary["diverged"] = _divergence_record(guard, training)
        else:
            summary["status"] = "stopped" if model.stop_training else "completed"
    except KeyboardInterrupt as interrupt:
        summary["status"] = "interrupted"
        summary["signal"] = signal_name(interrupt)
        raise
    except BaseException as err:
        summary["error"] = f"{type(err).__name__}: {err}"
        raise
    finally:
        # The checkpoints are the record: an epoch interrupted after its history row but
        # before its checkpoint is not counted anywhere.
        done = checkpoint.epochs_completed
        if len(logger.rows) > done:
            del logger.rows[done:]
            _best_effort(logger.write)
        rows = logger.rows
        best = _best_row(rows, training["monitor"], training["monitor_mode"])
        summary.update({
            "epochs_completed": done,
            "train_seconds": round(summary["train_seconds"] + time.perf_counter() - start, 2),
            "final": rows[-1] if rows else None,
            "best": None if best is None else {
                "monitor": training["monitor"], "mode": training["monitor_mode"],
                "epoch": best["epoch"], "value": best[training["monitor"]], "row": best},
            "checkpoints": {"best": "best.keras" if (run_dir / "best.keras").exists() else None,
                            "last": "last.keras" if (run_dir / "last.keras").exists() else None,
                            "load": "import kerasmed first: its losses, metrics and layers are "
                                    "registered Keras objects"},
        })
        if summary["status"] == "running":
            summary["status"] = "failed"
        if sys.exc_info()[0] is None:
            write_json_atomic(summary_path, summary)
        else:
            _best_effort(lambda: write_json_atomic(summary_path, summary))
    if summary["status"] == "diverged":
        raise RunDiverged(summary["diverged"]["hint"])
    return run_dir


def _best_effort(write):
    """Write a record while a run ends; a full or read-only disk must not hide the first
    error, which the caller reports."""
    try:
        write()
    except OSError:
        pass


def read_summary(run_dir) -> dict:
    """Load a run's ``summary.json``."""
    return json.loads((Path(run_dir) / "summary.json").read_text())
