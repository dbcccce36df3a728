"""Train an experiment and leave a complete run directory behind.

A run directory holds:
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

import functools
import inspect
import json
import math
import platform
import shutil
import time
from pathlib import Path

import keras
import pandas as pd

import kerasmed
from kerasmed import losses as km_losses
from kerasmed import metrics as km_metrics
from kerasmed.config import ConfigError, validate_config
from kerasmed.data.dataset import ClassificationDataset, SegmentationDataset
from kerasmed.data.readers import DatasetLayoutError, read_dataset
from kerasmed.data.splits import make_split, split_from_record
from kerasmed.data.synthetic import generate_polyp_dataset
from kerasmed.classification import ClassificationMetrics
from kerasmed.models.registry import build, get_spec
from kerasmed.training.aux_weight import AuxiliaryLossWeight, auxiliary_losses
from kerasmed.training.callbacks import DatasetEpoch, HistoryLogger, RunCheckpoint
from kerasmed.training.distribution import distribution_scope
from kerasmed.training.loop import train_on_batch_loop
from kerasmed.training.unfreeze import UnfreezeEncoder
from kerasmed.runfiles import create_run_dir, write_json_atomic

__all__ = ["train", "train_kfold", "resume", "list_samples", "history_keys", "read_summary"]


def list_samples(data: dict):
    """The samples of the dataset described by an experiment's ``data`` section."""
    root = Path(data["root"])
    if data["dataset"] == "synthetic_polyps":
        generate_polyp_dataset(root, **data["synthetic"])
        return read_dataset("folder", root, groups=data["groups"])
    return read_dataset(data["dataset"], root, groups=data["groups"], **data["options"])


def _make_optimizer(training: dict, steps_per_epoch: int):
    spec = dict(training["optimizer"])
    name = spec.pop("name")
    schedule = training["lr_schedule"]
    if schedule is not None:
        params = {k: v for k, v in schedule.items() if k != "name"}
        params.setdefault("initial_learning_rate", spec.get("learning_rate", 1e-3))
        schedule_class = getattr(keras.optimizers.schedules, schedule["name"])
        if "decay_steps" in inspect.signature(schedule_class).parameters:
            # Default: decay over the whole run.
            params.setdefault("decay_steps", steps_per_epoch * training["epochs"])
        spec["learning_rate"] = schedule_class(**params)
    return keras.optimizers.get({"class_name": name, "config": spec})


def _metric(spec):
    # Keras' own names stay strings: compile resolves "accuracy" to the form that fits the
    # loss (sparse categorical for integer labels), which a metric object could not.
    if isinstance(spec, str) and spec not in km_metrics.available():
        return spec
    return km_metrics.get(spec)


def _has_auxiliary_outputs(model) -> bool:
    """Micro-Net-style auxiliary heads (``aux*``) before the main output, weighted by a
    schedule; deep supervision without that naming (DRRMSAN) weighs every output 1."""
    return len(model.output_names) > 1 and all(n.startswith("aux")
                                               for n in model.output_names[:-1])


def _compile(model, training: dict, steps_per_epoch: int):
    """Compile ``model``: the loss on every output, the metrics on the last one.

    Deep-supervision models (DRRMSAN) return their side outputs first and the evaluated output
    last, so metrics describe the output a user predicts with.
    """
    loss = km_losses.get(training["loss"])
    metrics = [_metric(m) for m in training["metrics"]]
    names = model.output_names
    if _has_auxiliary_outputs(model):
        weight = training["auxiliary_weight"]
        loss = auxiliary_losses(model, loss, 1.0 if weight == "inverse_epoch" else weight)
        metrics = {names[-1]: metrics}
    elif len(names) > 1:
        loss = {n: loss for n in names}
        metrics = {names[-1]: metrics}
    model.compile(optimizer=_make_optimizer(training, steps_per_epoch), loss=loss,
                  metrics=metrics, jit_compile=training["jit_compile"])
    return model


def history_keys(model, metric_names, classes=None) -> list[str]:
    """The columns a run reports for ``model`` compiled by ``_compile``, ``val_`` included.

    A classifier (``classes`` given) also reports ``ClassificationMetrics``' columns.
    """
    names = model.output_names
    if len(names) > 1:
        keys = ["loss"] + [f"{n}_loss" for n in names] + [f"{names[-1]}_{m}" for m in metric_names]
    else:
        keys = ["loss"] + list(metric_names)
    keys += [f"val_{k}" for k in keys]
    if classes is not None:
        keys += ["val_macro_f1", "val_mean_auc", "val_balanced_accuracy"]
        keys += [f"val_{m}_{c}" for c in classes for m in ("sensitivity", "specificity", "auc")]
    return keys


def _versions():
    return {"kerasmed": kerasmed.__version__, "keras": keras.__version__,
            "backend": keras.backend.backend(), "python": platform.python_version()}


def _split(config, where, split=None, fold=None):
    """The training and validation samples and the split record (new, or as recorded).

    ``fold=(k, i)`` holds out fold ``i`` of a group-aware ``k``-fold split; otherwise
    ``data.val_fraction`` of the groups are held out.
    """
    data = config["data"]
    try:
        samples = list_samples(data)
        if split is not None:
            parts = split_from_record(samples, split, parts=("train", "val"))
        elif fold is not None:
            parts, split = make_split(samples, "kfold", seed=config["seed"], k=fold[0],
                                      fold=fold[1])
        else:
            parts, split = make_split(samples, "fraction", seed=config["seed"],
                                      val_fraction=data["val_fraction"])
    except (ValueError, DatasetLayoutError) as err:
        raise ConfigError([f"{where}: data: {err}"]) from err
    return parts["train"], parts["val"], split


def _class_names(config, samples):
    """Classification: the class names, from ``data.classes`` or the labels found."""
    return config["data"]["classes"] or sorted({s.label for s in samples})


def _check_target_channels(config, model, where):
    """The targets the loader makes must have as many channels as the model predicts."""
    data = config["data"]
    mode, one_hot = data["mask_mode"], data["one_hot"]
    out = model.outputs[-1].shape[-1]
    hint = ""
    if mode == "classes" and not one_hot:
        expected = None  # sparse indices fit any number of output channels
    elif mode == "classes":
        # None when neither is given: the loader reports that itself.
        expected = data["num_classes"] or (len(data["class_values"])
                                           if data["class_values"] else None)
    elif mode == "binary":
        expected = 2 if one_hot else 1
        hint = ("" if one_hot else " (or data.one_hot: true for a two-class softmax head)")
    else:
        expected = 1
    if expected is not None and out != expected:
        raise ConfigError([f"{where}: data: mask_mode {mode!r} gives {expected}-channel targets "
                           f"but model {config['model']['name']!r} predicts {out} channel(s); "
                           f"set model.params.classes={expected}{hint}"])


def _target_size(model, image_size):
    """The (last) output's ``[height, width]`` where it differs from the input's (valid-padded
    networks predict a centre window), else ``None``."""
    size = tuple(model.outputs[-1].shape[1:3])
    if len(size) != 2 or None in size or list(size) == list(image_size):
        return None
    return size


def _datasets(config, model, where, train_samples, val_samples, classes=None):
    """The training and validation ``PyDataset`` of the experiment's task."""
    data, training = config["data"], config["training"]
    common = dict(batch_size=training["batch_size"], image_size=data["image_size"],
                  channels=data["channels"], normalization=data["normalization"],
                  cache=data["cache"], fit=data["fit"], on_error=data["on_error"],
                  workers=data["workers"], use_multiprocessing=data["use_multiprocessing"])
    try:
        if classes is not None:
            make = functools.partial(ClassificationDataset, classes=classes, **common)
        else:
            make = functools.partial(
                SegmentationDataset, mask_threshold=data["mask_threshold"],
                mask_mode=data["mask_mode"], num_classes=data["num_classes"],
                class_values=data["class_values"], one_hot=data["one_hot"],
                distance_normalize=data["distance_normalize"],
                target_size=_target_size(model, data["image_size"]),
                outputs=model.output_names if len(model.output_names) > 1 else None, **common)
        train_ds = make(train_samples, shuffle=True, seed=config["seed"],
                        augment=data["augmentation"])
        val_ds = make(val_samples, shuffle=False)
    except ValueError as err:
        raise ConfigError([f"{where}: data: {err}"]) from err
    return train_ds, val_ds


def _build(config, where, classes=None):
    data = config["data"]
    params = dict(config["model"]["params"])
    if classes is not None:
        params.setdefault("classes", len(classes))  # a classifier has one output per class
    input_shape = (*data["image_size"], data["channels"])
    try:
        return build(config["model"]["name"], input_shape=input_shape, **params)
    except (TypeError, ValueError) as err:
        raise ConfigError([f"{where}: model: {err}"]) from err


def _task(config) -> str:
    return get_spec(config["model"]["name"]).task


def _check_monitor(config, model, where, classes=None):
    training = config["training"]
    metric_names = [km_metrics.get(m).name for m in training["metrics"]]
    valid = history_keys(model, metric_names, classes)
    if training["monitor"] not in valid:
        raise ConfigError([f"{where}: training.monitor: {training['monitor']!r} is not a column "
                           f"this run reports; choose one of {', '.join(valid)}"])


def _extra_callbacks(run_dir, training, model):
    spec = training["callbacks"]
    callbacks = [keras.callbacks.TerminateOnNaN()]
    if _has_auxiliary_outputs(model) and training["auxiliary_weight"] == "inverse_epoch":
        callbacks.append(AuxiliaryLossWeight())
    if spec["early_stopping"] is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=training["monitor"], mode=training["monitor_mode"],
            **spec["early_stopping"]))
    if spec["reduce_lr_on_plateau"] is not None:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor=training["monitor"], mode=training["monitor_mode"],
            **spec["reduce_lr_on_plateau"]))
    if spec["unfreeze_encoder"] is not None:
        callbacks.append(UnfreezeEncoder(**spec["unfreeze_encoder"]))
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


def _run(config, run_dir, model, train_ds, val_ds, initial_epoch=0, rows=(), state=None,
         replicas=1):
    """Fit (or loop) from ``initial_epoch`` and keep ``summary.json`` up to date."""
    training = config["training"]
    state = state or {}
    logger = HistoryLogger(run_dir, rows=rows)
    checkpoint = RunCheckpoint(run_dir, training["monitor"], training["monitor_mode"],
                               state.get("best_value"), state.get("best_epoch"))
    callbacks = [DatasetEpoch(train_ds), logger, checkpoint]
    callbacks += _extra_callbacks(run_dir, training, model)
    class_weight = None
    if isinstance(train_ds, ClassificationDataset):
        # Before the logger, so that its figures reach history.csv.
        callbacks.insert(1, ClassificationMetrics(val_ds, train_ds.classes, run_dir))
        class_weight = _class_weight(config["data"]["class_weights"], train_ds)
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {
        "name": config["name"], "run_dir": str(run_dir), "model": config["model"]["name"],
        "parameters": int(model.count_params()), "train_samples": len(train_ds.samples),
        "val_samples": len(val_ds.samples), "versions": _versions(), "train_seconds": 0.0,
        "distribution": {"kind": training["distribution"], "replicas": replicas}}
    summary["status"] = "running"
    write_json_atomic(summary_path, summary)
    if training["verbose"]:
        print(f"kerasmed: run directory {run_dir}"
              + (f" (resuming after epoch {initial_epoch})" if initial_epoch else ""), flush=True)
    start = time.perf_counter()
    try:
        if training["loop"] == "fit":
            # shuffle=False: the dataset shuffles itself from (seed, epoch), which both engines
            # and a resumed run reproduce; fit's own shuffling would reorder its batches.
            model.fit(train_ds, validation_data=val_ds, epochs=training["epochs"],
                      initial_epoch=initial_epoch, callbacks=callbacks, shuffle=False,
                      class_weight=class_weight, verbose=training["verbose"])
        else:
            train_on_batch_loop(model, train_ds, val_ds, training["epochs"], callbacks,
                                initial_epoch=initial_epoch, verbose=training["verbose"],
                                class_weight=class_weight)
        summary["status"] = "stopped" if model.stop_training else "completed"
    except KeyboardInterrupt:
        summary["status"] = "interrupted"
        raise
    finally:
        rows = logger.rows
        best = _best_row(rows, training["monitor"], training["monitor_mode"])
        summary.update({
            "epochs_completed": len(rows),
            "train_seconds": round(summary["train_seconds"] + time.perf_counter() - start, 2),
            "final": rows[-1] if rows else None,
            "best": None if best is None else {
                "monitor": training["monitor"], "mode": training["monitor_mode"],
                "epoch": best["epoch"], "value": best[training["monitor"]], "row": best},
            "checkpoints": {"best": "best.keras", "last": "last.keras"},
        })
        if summary["status"] == "running":
            summary["status"] = "failed"
        write_json_atomic(summary_path, summary)
    return run_dir


def _distribution(training, where):
    try:
        return distribution_scope(training["distribution"], training["devices"])
    except ValueError as err:
        raise ConfigError([f"{where}: training.distribution: {err}"]) from err


def _with_policy(function):
    """Run ``function``; restore the global precision policy and distribution afterwards."""
    def wrapper(*args, **kwargs):
        previous = keras.mixed_precision.global_policy()
        previous_distribution = keras.distribution.distribution()
        try:
            return function(*args, **kwargs)
        finally:
            keras.mixed_precision.set_global_policy(previous)
            keras.distribution.set_distribution(previous_distribution)
    wrapper.__doc__, wrapper.__name__ = function.__doc__, function.__name__
    return wrapper


@_with_policy
def train(config: dict, output_root="runs", config_path=None, *, run_dir=None,
          fold=None) -> Path:
    """Train the experiment ``config`` (as returned by ``load_config``).

    Everything that can be checked (dataset, split, model parameters, monitor) is checked before
    the run directory is created, so a bad experiment leaves nothing behind. The run directory
    is a new ``output_root/<name>_<timestamp>``, or ``run_dir`` (which must not exist yet).
    ``fold=(k, i)`` validates on fold ``i`` of a group-aware ``k``-fold split.

    Returns:
        The run directory.
    """
    where = str(config_path or "<config>")
    training = config["training"]
    keras.utils.set_random_seed(config["seed"])
    keras.mixed_precision.set_global_policy(training["precision"])
    scope, replicas = _distribution(training, where)
    train_samples, val_samples, split = _split(config, where, fold=fold)
    classes = _class_names(config, train_samples) if _task(config) == "classification" else None
    if classes is not None:
        split["classes"] = classes
    with scope:
        model = _build(config, where, classes)
        _check_monitor(config, model, where, classes)
        if classes is None:
            _check_target_channels(config, model, where)
        train_ds, val_ds = _datasets(config, model, where, train_samples, val_samples, classes)
        _compile(model, training, len(train_ds))
    if run_dir is None:
        run_dir = create_run_dir(output_root, config["name"])
    else:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True)  # never an existing folder
    write_json_atomic(run_dir / "config.json", config)
    if config_path is not None:
        shutil.copyfile(config_path, run_dir / "config.source.json")
    write_json_atomic(run_dir / "split.json", split)
    return _run(config, run_dir, model, train_ds, val_ds, replicas=replicas)


def train_kfold(config: dict, k: int, output_root="runs", config_path=None) -> Path:
    """Cross-validate: train every fold of a group-aware ``k``-fold split in turn.

    Each fold is a complete run in ``<run>/fold_<i>``; ``folds.csv`` lists each fold's best
    epoch and validation figures there, then their mean and standard deviation, as the
    MultiResUNet and DRRMSAN papers report. The session is cleared between folds so that the
    models of earlier folds do not stay in memory.

    Returns:
        The parent run directory.
    """
    make_split(list_samples(config["data"]), "kfold", seed=config["seed"], k=k, fold=0)
    parent = create_run_dir(output_root, f"{config['name']}_{k}fold")
    monitor = config["training"]["monitor"]
    rows = []
    for i in range(k):
        keras.backend.clear_session()
        fold_dir = train(config, output_root, config_path, run_dir=parent / f"fold_{i + 1}",
                         fold=(k, i))
        best = read_summary(fold_dir)["best"]
        row = {"fold": str(i + 1), "best_epoch": best["epoch"] if best else None}
        if best:
            row.update({key: value for key, value in best["row"].items()
                        if key.startswith("val_")})
        rows.append(row)
    table = pd.DataFrame(rows)
    figures = table.drop(columns=["fold"])
    stats = pd.DataFrame([{"fold": "mean", **figures.mean().to_dict()},
                          {"fold": "std", **figures.std(ddof=1).to_dict()}])
    pd.concat([table, stats]).to_csv(parent / "folds.csv", index=False)
    write_json_atomic(parent / "summary.json", {
        "name": config["name"], "folds": k, "monitor": monitor,
        "mean": stats.iloc[0].drop("fold").to_dict(), "std": stats.iloc[1].drop("fold").to_dict(),
        "fold_dirs": [f"fold_{i + 1}" for i in range(k)]})
    return parent


@_with_policy
def resume(run_dir) -> Path:
    """Continue the run in ``run_dir`` from its last checkpoint.

    The model, its optimizer state (step count, moments, learning rate) and the learning-rate
    schedule's position come from ``last.keras``; the epoch count, the best value so far and the
    history rows come from ``state.json`` and ``history.csv``; the split from ``split.json``.
    Training continues up to ``training.epochs`` of the run's ``config.json``, appending to
    ``history.csv``. Returns ``run_dir``.
    """
    run_dir = Path(run_dir)
    where = str(run_dir / "config.json")
    for name in ("config.json", "split.json", "state.json", "last.keras"):
        if not (run_dir / name).exists():
            raise ConfigError([f"{run_dir}: cannot resume, {name} is missing (the run has no "
                               f"completed epoch, or this is not a kerasmed run directory)"])
    config = validate_config(json.loads((run_dir / "config.json").read_text()), where)
    state = json.loads((run_dir / "state.json").read_text())
    done = int(state["epochs_completed"])
    training = config["training"]
    keras.utils.set_random_seed(config["seed"] + done)
    keras.mixed_precision.set_global_policy(training["precision"])
    scope, replicas = _distribution(training, where)
    with scope:
        model = keras.saving.load_model(run_dir / "last.keras")
    split = json.loads((run_dir / "split.json").read_text())
    train_samples, val_samples, _ = _split(config, where, split=split)
    train_ds, val_ds = _datasets(config, model, where, train_samples, val_samples,
                                 split.get("classes"))
    rows = pd.read_csv(run_dir / "history.csv").to_dict("records")[:done] \
        if (run_dir / "history.csv").exists() else []
    if done >= training["epochs"]:
        print(f"kerasmed: {run_dir} already completed {done} of {training['epochs']} epochs")
        return run_dir
    return _run(config, run_dir, model, train_ds, val_ds, initial_epoch=done, rows=rows,
                state=state, replicas=replicas)


def read_summary(run_dir) -> dict:
    """Load a run's ``summary.json``."""
    return json.loads((Path(run_dir) / "summary.json").read_text())
