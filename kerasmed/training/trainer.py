"""Train an experiment with ``model.fit`` and leave a complete run directory behind.

A run directory holds:
    config.json         the experiment with every default filled in (re-runnable as it is)
    config.source.json  the experiment file exactly as given
    split.json          the image paths of the training and validation sets
    history.csv         one row per epoch: losses, metrics, learning rate, epoch time
    plots/*.png         one plot per quantity, redrawn each epoch
    best.keras          the model at its best epoch (by training.monitor)
    last.keras          the model after the last completed epoch
    summary.json        final and best figures, parameter count, timings, versions, status
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path

import keras

import kerasmed
from kerasmed import losses as km_losses
from kerasmed import metrics as km_metrics
from kerasmed.config import ConfigError
from kerasmed.data.dataset import SegmentationDataset
from kerasmed.data.readers import read_folder_pair
from kerasmed.data.splits import split_by_fraction
from kerasmed.data.synthetic import generate_polyp_dataset
from kerasmed.models.registry import build
from kerasmed.training.callbacks import HistoryLogger
from kerasmed.training.rundir import create_run_dir, write_json_atomic

__all__ = ["train", "list_samples", "history_keys", "read_summary"]


def list_samples(data: dict):
    """The samples of the dataset described by an experiment's ``data`` section."""
    root = Path(data["root"])
    if data["dataset"] == "synthetic_polyps":
        generate_polyp_dataset(root, **data["synthetic"])
        return read_folder_pair(root)
    return read_folder_pair(root, data["images_dir"], data["masks_dir"])


def _make_optimizer(spec: dict):
    params = {k: v for k, v in spec.items() if k != "name"}
    return keras.optimizers.get({"class_name": spec["name"], "config": params})


def _compile(model, training: dict):
    """Compile ``model``: the loss on every output, the metrics on the last one.

    Deep-supervision models (DRRMSAN) return their side outputs first and the evaluated output
    last, so metrics describe the output a user predicts with.
    """
    loss = km_losses.get(training["loss"])
    metrics = [km_metrics.get(m) for m in training["metrics"]]
    names = model.output_names
    if len(names) > 1:
        loss = {n: loss for n in names}
        metrics = {names[-1]: metrics}
    model.compile(optimizer=_make_optimizer(training["optimizer"]), loss=loss, metrics=metrics)
    return model


def history_keys(model, metric_names) -> list[str]:
    """The columns ``fit`` will report for ``model`` compiled by ``_compile``, val_ included."""
    names = model.output_names
    if len(names) > 1:
        keys = ["loss"] + [f"{n}_loss" for n in names] + [f"{names[-1]}_{m}" for m in metric_names]
    else:
        keys = ["loss"] + list(metric_names)
    return keys + [f"val_{k}" for k in keys]


def _versions():
    return {"kerasmed": kerasmed.__version__, "keras": keras.__version__,
            "backend": keras.backend.backend(), "python": platform.python_version()}


def _prepare(config, where):
    """Everything that can fail before training: data listing, split, model, compile."""
    data, training = config["data"], config["training"]
    samples = list_samples(data)
    train_samples, val_samples = split_by_fraction(samples, data["val_fraction"], config["seed"])
    keras.utils.set_random_seed(config["seed"])
    keras.mixed_precision.set_global_policy(training["precision"])
    input_shape = (*data["image_size"], data["channels"])
    try:
        model = build(config["model"]["name"], input_shape=input_shape, **config["model"]["params"])
    except (TypeError, ValueError) as err:
        raise ConfigError([f"{where}: model: {err}"]) from err
    _compile(model, training)
    metric_names = [km_metrics.get(m).name for m in training["metrics"]]
    valid = history_keys(model, metric_names)
    if training["monitor"] not in valid:
        raise ConfigError([f"{where}: training.monitor: {training['monitor']!r} is not a column "
                           f"this run reports; choose one of {', '.join(valid)}"])
    common = dict(batch_size=training["batch_size"], image_size=data["image_size"],
                  channels=data["channels"], normalization=data["normalization"],
                  mask_threshold=data["mask_threshold"], cache=data["cache"],
                  outputs=model.output_names if len(model.output_names) > 1 else None,
                  workers=data["workers"], use_multiprocessing=data["use_multiprocessing"])
    train_ds = SegmentationDataset(train_samples, shuffle=True, seed=config["seed"], **common)
    val_ds = SegmentationDataset(val_samples, shuffle=False, **common)
    split = {"train": [str(s.image) for s in train_samples],
             "val": [str(s.image) for s in val_samples]}
    return model, train_ds, val_ds, split


def _best_row(rows, monitor, mode):
    rows = [r for r in rows if monitor in r]
    if not rows:
        return None
    pick = max if mode == "max" else min
    return pick(rows, key=lambda r: r[monitor])


def train(config: dict, output_root="runs", config_path=None) -> Path:
    """Train the experiment ``config`` (as returned by ``load_config``) with ``model.fit``.

    Everything that can be checked (dataset, model parameters, monitor) is checked before the
    run directory is created, so a bad experiment leaves nothing behind. The global precision
    policy is restored afterwards.

    Returns:
        The new run directory.
    """
    where = str(config_path or "<config>")
    training = config["training"]
    previous_policy = keras.mixed_precision.global_policy()
    try:
        model, train_ds, val_ds, split = _prepare(config, where)
        run_dir = create_run_dir(output_root, config["name"])
        write_json_atomic(run_dir / "config.json", config)
        if config_path is not None:
            shutil.copyfile(config_path, run_dir / "config.source.json")
        write_json_atomic(run_dir / "split.json", split)
        logger = HistoryLogger(run_dir)
        callbacks = [
            logger,
            keras.callbacks.ModelCheckpoint(run_dir / "best.keras", monitor=training["monitor"],
                                            mode=training["monitor_mode"], save_best_only=True),
            keras.callbacks.ModelCheckpoint(run_dir / "last.keras"),
            keras.callbacks.TerminateOnNaN(),
        ]
        summary = {"name": config["name"], "run_dir": str(run_dir), "status": "running",
                   "model": config["model"]["name"], "parameters": int(model.count_params()),
                   "train_samples": len(split["train"]), "val_samples": len(split["val"]),
                   "versions": _versions()}
        write_json_atomic(run_dir / "summary.json", summary)
        if training["verbose"]:
            print(f"kerasmed: run directory {run_dir}", flush=True)
        start = time.perf_counter()
        try:
            model.fit(train_ds, validation_data=val_ds, epochs=training["epochs"],
                      callbacks=callbacks, verbose=training["verbose"])
            summary["status"] = "completed" if not model.stop_training else "stopped"
        except KeyboardInterrupt:
            summary["status"] = "interrupted"
            raise
        finally:
            rows = logger.rows
            best = _best_row(rows, training["monitor"], training["monitor_mode"])
            summary.update({
                "epochs_completed": len(rows),
                "train_seconds": round(time.perf_counter() - start, 2),
                "final": rows[-1] if rows else None,
                "best": None if best is None else {
                    "monitor": training["monitor"], "mode": training["monitor_mode"],
                    "epoch": best["epoch"], "value": best[training["monitor"]], "row": best},
                "checkpoints": {"best": "best.keras", "last": "last.keras"},
            })
            if summary["status"] == "running":
                summary["status"] = "failed"
            write_json_atomic(run_dir / "summary.json", summary)
        return run_dir
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def read_summary(run_dir) -> dict:
    """Load a run's ``summary.json``."""
    return json.loads((Path(run_dir) / "summary.json").read_text())
