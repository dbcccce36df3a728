"""Training runs from experiments: ``train``, ``train_kfold`` and ``resume``.

Each assembles its run through ``Experiment`` (samples, split, checked model, datasets,
compilation), checking everything that can be checked before the run directory is claimed, and
hands the run to the training engine (``kerasmed.training.trainer.run_training``).
"""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import time
import zipfile
from pathlib import Path

import keras
import pandas as pd

from kerasmed.data.splits import make_split
from kerasmed.evaluation.compare import mean_confidence_interval
from kerasmed.experiment.pipeline import Experiment
from kerasmed.experiment.postselect import select_postprocessing
from kerasmed.experiment.schema import ConfigError
from kerasmed.runfiles import (create_run_dir, owned_tempdir, remove_stray_temporaries,
                               write_json_atomic)
from kerasmed.training.callbacks import BudgetClock
from kerasmed.training.distribution import distribution_scope, worker_role
from kerasmed.training.trainer import read_summary, run_training

__all__ = ["train", "train_kfold", "resume"]


def _distribution(training, where):
    try:
        return distribution_scope(training["distribution"], training["devices"])
    except ValueError as err:
        raise ConfigError([f"{where}: training.distribution: {err}"]) from err


def _worker_scratch(name) -> Path:
    """Where a multi-worker run's non-chief worker writes its copy of the run files: a new
    temporary folder, removed when the process ends (or by the next worker on this machine,
    when it was killed: ``runfiles.owned_tempdir``). Every worker runs the same callbacks
    (saving a model reads replicated variables, a collective step all take together), but only
    the chief's files are the run. Returns the folder for ``name``'s files, created."""
    scratch = owned_tempdir("kerasmed-worker-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    (scratch / Path(name).name).mkdir()
    return scratch / Path(name).name


def _with_policy(function):
    """Run ``function``; restore the global precision policy and distribution afterwards."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        previous = keras.mixed_precision.global_policy()
        previous_distribution = keras.distribution.distribution()
        try:
            return function(*args, **kwargs)
        finally:
            keras.mixed_precision.set_global_policy(previous)
            keras.distribution.set_distribution(previous_distribution)
    return wrapper


def _experiment(config, config_path):
    if isinstance(config, Experiment):
        return config
    return Experiment(config, where=str(config_path or "<config>"), source=config_path)


@_with_policy
def train(config, output_root="runs", config_path=None, *, run_dir=None, fold=None,
          extra_callbacks=(), budget_started=None) -> Path:
    """Train the experiment ``config`` (as returned by ``load_config``, or an ``Experiment``).

    Everything that can be checked (dataset, split, model parameters, monitor, targets) is
    checked before the run directory is created, so a bad experiment leaves nothing behind. The
    run directory is a new ``output_root/<name>_<timestamp>``, or ``run_dir`` (which must not
    exist yet); a non-chief worker of a multi-worker run writes its copy into a temporary folder
    instead (``_worker_scratch``). ``fold=(k, i)`` validates on fold ``i`` of a group-aware
    ``k``-fold split.
    ``extra_callbacks`` join the run's own (kerasmed-tune's pruning). With
    ``training.budget_minutes`` each epoch ends with the budget left, counted from
    ``budget_started`` (``time.time()``; default: now).

    Returns:
        The run directory.
    """
    experiment = _experiment(config, config_path)
    config, training = experiment.config, experiment.training
    keras.utils.set_random_seed(config["seed"])
    keras.mixed_precision.set_global_policy(training["precision"])
    scope, replicas = _distribution(training, experiment.where)
    split = experiment.split(fold=fold)
    classes = experiment.class_names(split.train)
    if classes is not None:
        split.record["classes"] = classes
    with scope:
        model = experiment.build_model(classes)
        train_ds, val_ds = experiment.datasets(model, split, classes)
        experiment.compile(model, len(train_ds))
    skipped = _skipped(split, train_ds, val_ds)
    if run_dir is None:
        run_dir = create_run_dir(output_root, config["name"]) if worker_role()[0] \
            else _worker_scratch(config["name"])
    else:
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True)  # never an existing folder
    write_json_atomic(run_dir / "config.json", config)
    if experiment.source is not None:
        shutil.copyfile(experiment.source, run_dir / "config.source.json")
    write_json_atomic(run_dir / "split.json", split.record)
    if training["budget_minutes"] is not None and training["verbose"]:
        extra_callbacks = [*extra_callbacks, BudgetClock(training["budget_minutes"],
                                                         budget_started)]
    return run_training(config, run_dir, model, train_ds, val_ds, replicas=replicas,
                        skipped=skipped, extra_callbacks=extra_callbacks)


def _skipped(split, *datasets):
    """The samples the loaders left out (``data.on_error: skip``), as ``{"image", "reason"}``;
    they are taken out of the split's record too, so ``split.json`` lists what was used."""
    skipped = [{"image": str(sample.image), "reason": reason}
               for dataset in datasets for sample, reason in dataset.skipped]
    left_out = {s["image"] for s in skipped}
    for part in ("train", "val", "test"):
        if part in split.record:
            split.record[part] = [p for p in split.record[part] if p not in left_out]
    return skipped


def train_kfold(config, k: int | None = None, output_root="runs", config_path=None) -> Path:
    """Cross-validate: train every fold of a group-aware ``k``-fold split in turn (``k``:
    default the experiment's ``training.folds``).

    Each fold is a complete run in ``<run>/fold_<i>``; ``folds.csv`` lists each fold's best
    epoch and validation figures there, then their mean and standard deviation, as the
    MultiResUNet and DRRMSAN papers report, and the mean's 95 % confidence interval across
    folds (Student's t; ``ci95_low`` / ``ci95_high``). The session is cleared between folds
    so that the models of earlier folds do not stay in memory. With ``postprocess.select``
    the mask cleaning is then chosen on the folds' validation predictions
    (``kerasmed.experiment.postselect``) and written to ``postprocess.json``; the parent's
    ``summary.json`` records it.

    Returns:
        The parent run directory.
    """
    experiment = _experiment(config, config_path)
    config = experiment.config
    k = k if k is not None else config["training"]["folds"]
    if k is None or k < 2:
        raise ConfigError([f"{experiment.where}: training.folds: k-fold training needs at "
                           f"least 2 folds, got {k}"])
    make_split(experiment.samples(), "kfold", seed=config["seed"], k=k, fold=0)
    parent = create_run_dir(output_root, f"{config['name']}_{k}fold") if worker_role()[0] \
        else _worker_scratch(f"{config['name']}_{k}fold")
    started = time.time()
    monitor = config["training"]["monitor"]
    rows = []
    for i in range(k):
        keras.backend.clear_session()
        fold_dir = train(experiment, output_root, run_dir=parent / f"fold_{i + 1}", fold=(k, i),
                         budget_started=started)
        best = read_summary(fold_dir)["best"]
        row = {"fold": str(i + 1), "best_epoch": best["epoch"] if best else None}
        if best:
            row.update({key: value for key, value in best["row"].items()
                        if key.startswith("val_")})
        rows.append(row)
    table = pd.DataFrame(rows)
    figures = table.drop(columns=["fold"])
    intervals = {c: mean_confidence_interval(figures[c]) for c in figures.columns}
    stats = pd.DataFrame([{"fold": "mean", **figures.mean().to_dict()},
                          {"fold": "std", **figures.std(ddof=1).to_dict()},
                          {"fold": "ci95_low", **{c: v[1] for c, v in intervals.items()}},
                          {"fold": "ci95_high", **{c: v[2] for c, v in intervals.items()}}])
    pd.concat([table, stats]).to_csv(parent / "folds.csv", index=False)
    selected = None
    if config["postprocess"]["select"] and experiment.task == "segmentation" \
            and config["data"]["mask_mode"] in ("binary", "classes"):
        keras.backend.clear_session()
        selected = select_postprocessing(parent)
        selected = {key: selected[key] for key in ("mask", "dice_without", "dice_with")}
    write_json_atomic(parent / "summary.json", {
        "name": config["name"], "folds": k, "monitor": monitor,
        "mean": stats.iloc[0].drop("fold").to_dict(), "std": stats.iloc[1].drop("fold").to_dict(),
        "ci95": {c: [v[1], v[2]] for c, v in intervals.items()},
        "fold_dirs": [f"fold_{i + 1}" for i in range(k)], "postprocess": selected})
    return parent


@_with_policy
def resume(run_dir) -> Path:
    """Continue the run in ``run_dir`` from its last checkpoint.

    The model, its optimizer state (step count, moments, learning rate) and the learning-rate
    schedule's position come from ``last.keras``; the epoch count, the best value so far and the
    history rows come from ``state.json`` and ``history.csv``; the split from ``split.json``.
    Training continues up to ``training.epochs`` of the run's ``config.json``, appending to
    ``history.csv``. Returns ``run_dir``. In a multi-worker run every worker resumes from
    ``run_dir`` (on storage they share, as Keras' ``BackupAndRestore`` backup folder), and
    only the chief writes to it.
    """
    run_dir = Path(run_dir)
    for name in ("config.json", "split.json", "state.json", "last.keras"):
        if not (run_dir / name).exists():
            raise ConfigError([f"{run_dir}: cannot resume, {name} is missing (the run has no "
                               f"completed epoch, or this is not a kerasmed run directory)"])
    experiment = Experiment.from_run(run_dir, preflight=True)
    config, training = experiment.config, experiment.training
    chief = worker_role()[0]
    if chief:
        remove_stray_temporaries(run_dir)  # a kill during a save leaves its temporary file
    try:
        state = json.loads((run_dir / "state.json").read_text())
        done = int(state["epochs_completed"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ConfigError([f"{run_dir / 'state.json'}: damaged ({err}); the run cannot be "
                           f"resumed"]) from err
    history = run_dir / "history.csv"
    rows = pd.read_csv(history).to_dict("records")[:done] if history.exists() else []
    if len(rows) < done:
        raise ConfigError([f"{history}: holds {len(rows)} epoch(s) but state.json and "
                           f"last.keras record {done}; resuming would lose epochs from the "
                           f"history and the plots (restore the file, or start a new run)"])
    keras.utils.set_random_seed(config["seed"] + done)
    keras.mixed_precision.set_global_policy(training["precision"])
    scope, replicas = _distribution(training, experiment.where)
    with scope:
        try:
            model = keras.saving.load_model(run_dir / "last.keras")
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise ConfigError([f"{run_dir / 'last.keras'}: the checkpoint cannot be read "
                               f"({type(err).__name__}: {err}); it may be truncated"]) from err
    split = experiment.run_split()
    train_ds, val_ds = experiment.datasets(model, split, split.record.get("classes"))
    if done >= training["epochs"]:
        print(f"kerasmed: {run_dir} already completed {done} of {training['epochs']} epochs")
        return run_dir
    out = run_dir if chief else _worker_scratch(run_dir)
    return run_training(config, out, model, train_ds, val_ds, initial_epoch=done, rows=rows,
                        state=state, replicas=replicas)
