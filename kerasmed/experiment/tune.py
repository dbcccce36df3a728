"""Bayesian optimisation of an experiment: ``kerasmed-tune``.

The experiment file's ``tune`` section names any key by its dotted path (list items by index:
``data.augmentation.0.probability``) with a search space, and optionally a group of weights
that must sum to a total (DRRMSAN's output weights, which its authors searched by Bayesian
optimisation)::

    "tune": {
      "trials": 20, "sampler": "tpe", "pruner": "median",
      "params": {
        "training.optimizer.learning_rate": {"low": 1e-5, "high": 1e-2, "log": true},
        "model.params.filters": {"choices": [16, 32, 64]},
        "training.loss.alpha": {"low": 0.3, "high": 0.7}
      },
      "weights": {"key": "model.params.alphas", "size": 4, "total": 1.0, "min": 0.05}
    }

Optuna (Akiba et al., KDD 2019) samples each trial (TPE, Bergstra et al. 2011, or a Gaussian
process), prunes trials whose monitored per-epoch value falls below the median of earlier
trials at the same epoch, and keeps the study in SQLite inside the tuning folder (or a shared
database URL, so several machines run trials of one study). Every trial is a normal run
directory under ``<tuning folder>/trials``; the folder also holds ``trials.csv``, the best
experiment ready to rerun (``best_experiment.json``) and plots of the optimisation history and
the parameter importances. A bad search space fails before the first trial.
"""

from __future__ import annotations

import collections
import copy
import json
import math
import os
import socket
import time
import warnings
from pathlib import Path

import keras
import numpy as np

from kerasmed.experiment.pipeline import Experiment
from kerasmed.experiment.files import read_experiment
from kerasmed.experiment.overrides import set_path
from kerasmed.experiment.schema import ConfigError
from kerasmed.experiment.validate import validate_config
from kerasmed.runfiles import create_run_dir, write_json_atomic

__all__ = ["SAMPLERS", "PRUNERS", "HEARTBEAT_SECONDS", "RETRIES", "check_search_space",
           "sample_experiment", "tune", "set_path", "worker_seed"]

SAMPLERS = ("tpe", "gp")
PRUNERS = ("median", None)
_SPACE_KEYS = {"low", "high", "log", "step", "choices"}
_TUNE_KEYS = {"trials", "sampler", "pruner", "storage", "study_name", "params", "weights",
              "heartbeat_seconds"}
# Optuna's heartbeat (RDBStorage): a running trial records that it is alive every this many
# seconds; one silent for twice as long (Optuna's grace period) is failed and run again.
HEARTBEAT_SECONDS = 60
# How many times a trial whose worker died is run again (RetryFailedTrialCallback).
RETRIES = 2
_WEIGHT_KEYS = {"key", "size", "total", "min"}


def _with_defaults(raw):
    """The raw experiment with the section defaults a dotted key may reach into filled in
    (``training.optimizer`` from the schema), so that ``set_path`` keeps the rest."""
    from kerasmed.experiment.schema import SCHEMA

    out = copy.deepcopy(raw)
    training = out.setdefault("training", {})
    for key in ("optimizer", "loss"):
        default = SCHEMA["training"][key].default
        if key not in training:
            training[key] = copy.deepcopy(default)
        elif isinstance(training[key], str) and key == "loss":
            training[key] = {"name": training[key]}
    return out


def _is_int(space) -> bool:
    """Whether a ``low``/``high`` space samples integers: its bounds (and ``step``, if given)
    are integers and it is not logarithmic."""
    numbers = [space["low"], space["high"]] + ([space["step"]] if "step" in space else [])
    return all(isinstance(v, int) for v in numbers) and not space.get("log")


def _space_problems(name, space):
    if not isinstance(space, dict) or not space:
        return [f"tune.params.{name}: expected an object with low/high or choices"]
    unknown = set(space) - _SPACE_KEYS
    if unknown:
        return [f"tune.params.{name}: unknown key(s) {sorted(unknown)}; use low, high, log, "
                f"step or choices"]
    if "choices" in space:
        if set(space) - {"choices"}:
            return [f"tune.params.{name}: choices cannot be combined with low/high"]
        if not isinstance(space["choices"], list) or not space["choices"]:
            return [f"tune.params.{name}: choices must be a non-empty list"]
        return []
    low, high = space.get("low"), space.get("high")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in (low, high)):
        return [f"tune.params.{name}: low and high must be finite numbers, got {low!r} and "
                f"{high!r}"]
    if not low < high:
        return [f"tune.params.{name}: empty range: low {low} must be below high {high}"]
    if not isinstance(space.get("log", False), bool):
        return [f"tune.params.{name}: log must be true or false, got {space['log']!r}"]
    if space.get("log") and low <= 0:
        return [f"tune.params.{name}: a log range needs low > 0, got {low}"]
    if "step" in space:
        step = space["step"]
        if space.get("log"):
            return [f"tune.params.{name}: step cannot be combined with log (Optuna samples a "
                    f"log range continuously)"]
        if isinstance(step, bool) or not isinstance(step, (int, float)) or \
                not math.isfinite(step) or step <= 0:
            return [f"tune.params.{name}: step must be a number > 0, got {step!r}"]
        if step > high - low:
            return [f"tune.params.{name}: step {step} is larger than the range {low}..{high}"]
    return []


def _weights_problems(spec):
    if not isinstance(spec, dict) or set(spec) - _WEIGHT_KEYS or "key" not in spec:
        return ["tune.weights: expected {\"key\": dotted key, \"size\": n, \"total\": t, "
                "\"min\": m}"]
    size, total, low = spec.get("size"), spec.get("total", 1.0), spec.get("min", 0.0)
    if not isinstance(size, int) or size < 2:
        return [f"tune.weights: size must be an integer >= 2, got {size!r}"]
    if not total > 0 or low < 0:
        return [f"tune.weights: total must be > 0 and min >= 0, got {total} and {low}"]
    if size * low > total:
        return [f"tune.weights: the constraint cannot hold: {size} weights of at least {low} "
                f"sum to {size * low} > total {total}"]
    return []


def _tune_spec(raw, where):
    spec = raw.get("tune")
    if not isinstance(spec, dict):
        raise ConfigError([f"{where}: tune: the experiment has no tune section (an object "
                           f"with params and/or weights)"])
    return spec


def _extremes(space):
    """The values a space's check tries: every choice, or both bounds (a stepped range's upper
    end is the last step inside it, as Optuna samples it)."""
    if "choices" in space:
        return list(space["choices"])
    low, high = space["low"], space["high"]
    if "step" in space:
        high = low + math.floor((high - low) / space["step"] + 1e-9) * space["step"]
    return [low, high] if not _is_int(space) else [int(low), int(high)]


def check_search_space(raw: dict, where: str = "<config>") -> list[str]:
    """Every problem of the ``tune`` section, found before the first trial: unknown or
    malformed spaces, empty ranges, weight constraints that cannot hold, and keys that are not
    in the experiment (each extreme of each space is set and the experiment validated).
    Returns the problems (empty when the search space is sound)."""
    spec = _tune_spec(raw, where)
    problems = []
    unknown = set(spec) - _TUNE_KEYS
    if unknown:
        problems.append(f"{where}: tune: unknown key(s) {sorted(unknown)}")
    trials = spec.get("trials", 20)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        problems.append(f"{where}: tune.trials: expected a whole number >= 1, got {trials!r}")
    beat = spec.get("heartbeat_seconds", HEARTBEAT_SECONDS)
    if isinstance(beat, bool) or not isinstance(beat, int) or beat < 1:  # Optuna's rule
        problems.append(f"{where}: tune.heartbeat_seconds: expected a whole number >= 1, got "
                        f"{beat!r}")
    if spec.get("sampler", "tpe") not in SAMPLERS:
        problems.append(f"{where}: tune.sampler: {spec['sampler']!r} is not one of {SAMPLERS}")
    if spec.get("pruner", "median") not in PRUNERS:
        problems.append(f"{where}: tune.pruner: {spec['pruner']!r} is not \"median\" or null")
    params = spec.get("params", {})
    if not isinstance(params, dict) or (not params and "weights" not in spec):
        problems.append(f"{where}: tune: give params (dotted key: space) and/or weights")
        params = {}
    for name, space in params.items():
        found = _space_problems(name, space)
        problems += [f"{where}: {p}" for p in found]
        if found:
            continue
        for value in _extremes(space):
            problems += _try(raw, where, {name: value}, f"tune.params.{name} = {value!r}")
    if "weights" in spec:
        found = _weights_problems(spec["weights"])
        problems += [f"{where}: {p}" for p in found]
        if not found:
            w = spec["weights"]
            equal = [w.get("total", 1.0) / w["size"]] * w["size"]
            problems += _try(raw, where, {w["key"]: equal}, f"tune.weights ({w['key']})")
    return list(dict.fromkeys(problems))


def _try(raw, where, values, what):
    trial = _with_defaults(raw)
    trial.pop("tune", None)
    try:
        for key, value in values.items():
            set_path(trial, key, value)
    except KeyError as err:
        return [f"{where}: {what}: no such key in the experiment ({err.args[0]})"]
    try:
        config = validate_config(trial, where)
    except ConfigError as err:
        return [f"{where}: {what}: {p.split(': ', 1)[-1]}" for p in err.problems]
    if any(key.startswith(("model.", "data.image_size", "data.channels")) for key in values):
        return _network_problems(config, where, what)
    return []


def _network_problems(config, where, what):
    """The network's own check of its parameters (``filters`` > 0, ...), which only building
    it runs; a classifier is built with two classes. Returns the problems."""
    from kerasmed.models import build, get_spec

    params = dict(config["model"]["params"])
    if get_spec(config["model"]["name"]).task == "classification":
        params.setdefault("classes", 2)
    shape = (*config["data"]["image_size"], config["data"]["channels"])
    try:
        build(config["model"]["name"], input_shape=shape, **params)
    except (TypeError, ValueError) as err:
        return [f"{where}: {what}: model: {err}"]
    finally:
        keras.backend.clear_session()
    return []


def sample_experiment(raw: dict, trial) -> dict:
    """The raw experiment with the trial's values set (the ``tune`` section removed)."""
    spec = raw["tune"]
    out = _with_defaults(raw)
    out.pop("tune", None)
    for name, space in spec.get("params", {}).items():
        if "choices" in space:
            value = trial.suggest_categorical(name, space["choices"])
        elif _is_int(space):
            value = trial.suggest_int(name, space["low"], space["high"],
                                      step=space.get("step", 1))
        else:
            value = trial.suggest_float(name, space["low"], space["high"],
                                        log=bool(space.get("log")), step=space.get("step"))
        set_path(out, name, value)
    if "weights" in spec:
        w = spec["weights"]
        size, total, low = w["size"], w.get("total", 1.0), w.get("min", 0.0)
        raw_values = [trial.suggest_float(f"{w['key']}[{i}]", 0.0, 1.0) for i in range(size)]
        norm = sum(raw_values) or float(size)
        shares = [v / norm if sum(raw_values) else 1.0 / size for v in raw_values]
        weights = [low + (total - size * low) * s for s in shares]
        trial.set_user_attr("weights", weights)
        set_path(out, w["key"], weights)
    return out


class _Pruning(keras.callbacks.Callback):
    """Report the monitored value to Optuna after each epoch; stop a trial it prunes."""

    def __init__(self, trial, monitor):
        super().__init__()
        self.trial, self.monitor, self.pruned = trial, monitor, False

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or not math.isfinite(float(value)):
            return
        self.trial.report(float(value), epoch)
        if self.trial.should_prune():
            self.pruned = True
            self.model.stop_training = True


def _sampler(name, seed):
    import optuna

    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def worker_seed(seed: int, first_trial: int) -> int:
    """The sampler seed of a worker whose first trial in the study is ``first_trial``: derived
    from the experiment's ``seed`` and that number, which the database gives each worker (and
    each resume) once, so that no two propose the same sequence while a study run by one
    worker stays reproducible. Returns a 32-bit seed."""
    return int(np.random.SeedSequence([seed, first_trial]).generate_state(1)[0])


def _stale_callback_argument():
    """RDBStorage's argument for the callback of trials failed by the heartbeat: renamed
    ``heartbeat_stale_trial_callback`` in Optuna 4.9 (``failed_trial_callback`` before)."""
    import inspect

    import optuna

    parameters = inspect.signature(optuna.storages.RDBStorage).parameters
    return "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in parameters \
        else "failed_trial_callback"


def _storage(url, heartbeat, where):
    """Optuna's ``RDBStorage`` for ``url`` with its heartbeat, which fails a trial whose worker
    went silent and hands it to ``_retry``. Several workers opening a new database at once
    each create its tables; the loser of that race (``table ... already exists``, a duplicate
    key in PostgreSQL's catalogue) opens it again. Raises ``ConfigError`` naming a URL that
    cannot be opened."""
    import optuna
    import sqlalchemy.exc

    # SQLite locks the whole file: wait for another worker's write instead of failing.
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else \
        {"pool_pre_ping": True}
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine,
                                                  heartbeat_interval=heartbeat,
                                                  **{_stale_callback_argument(): _retry})
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError,
                sqlalchemy.exc.OperationalError) as err:
            if attempt == 4 or "exist" not in str(err) and "duplicate" not in str(err):
                raise ConfigError([f"{where}: storage {url}: cannot open it "
                                   f"({type(err).__name__}: {str(err).splitlines()[0]})"]) \
                    from err
            time.sleep(0.2 * (attempt + 1))
        except (sqlalchemy.exc.ArgumentError, ImportError, ValueError) as err:
            raise ConfigError([f"{where}: storage {url}: not a database URL Optuna can use "
                               f"({err})"]) from err


def _retry(study, trial):
    """A trial whose worker stopped sending heartbeats, failed by Optuna: run it again
    (``RetryFailedTrialCallback``, at most ``RETRIES`` times), and say so in its run folder's
    ``summary.json`` where this worker can reach it."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryFailedTrialCallback(max_retry=RETRIES)(study, trial)
    retried = [t.number for t in study.get_trials(deepcopy=False)
               if optuna.storages.RetryFailedTrialCallback.retry_history(t)[-1:] ==
               [trial.number]]
    run_dir = trial.user_attrs.get("run_dir")
    if run_dir and (Path(run_dir) / "summary.json").exists():
        summary = json.loads((Path(run_dir) / "summary.json").read_text())
        summary.update(status="failed", error=(
            f"the worker running trial {trial.number} stopped sending Optuna heartbeats "
            f"(killed or lost)"),
            retried_as=retried[0] if retried else None)
        write_json_atomic(Path(run_dir) / "summary.json", summary)


def _fail_silent(study, grace):
    """Fail and retry the running trials that never recorded a heartbeat and started more than
    ``grace`` seconds ago: Optuna's staleness check skips them, yet they are dead (left by a
    kerasmed-tune without heartbeats, or killed before its first). Such a trial lacks the
    ``worker`` attribute that ``tune``'s objective records once its heartbeat runs."""
    import datetime

    import optuna

    now = datetime.datetime.now()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if "worker" not in t.user_attrs and t.datetime_start is not None and \
                (now - t.datetime_start).total_seconds() > grace:
            try:
                study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            except (ValueError, RuntimeError):
                continue  # another worker got there first
            _retry(study, study.get_trials(deepcopy=False)[t.number])


class _Surplus(Exception):
    """This trial started after the study had its trials (workers racing for the last)."""


# Trials that take a place in the study: the finished ones that count and those under way.
_COUNTED = ("COMPLETE", "PRUNED")
_UNDER_WAY = ("RUNNING", "WAITING")


def tune(source, trials=None, output_root="tuning", resume_dir=None, storage=None,
         study_name=None):
    """Run (or continue) the Bayesian optimisation of an experiment; returns its folder.

    ``source`` is the experiment file (``None`` with ``resume_dir``: the folder's copy).
    ``trials`` is the study's total (default ``tune.trials``, else 20): complete and pruned
    trials count, however many workers share the study; a resumed study runs what is missing.
    ``storage`` (or ``tune.storage``) is a database URL shared by several workers; the default
    is ``<folder>/study.db``. Each worker samples with its own seed (``worker_seed``). A trial
    whose worker dies is failed by Optuna's heartbeat and run again by another worker, so a
    worker with nothing left to start waits for the trials under way before it ends. Raises
    ``ConfigError`` for a bad search space or storage before any trial runs.
    """
    import optuna

    if resume_dir is not None:
        folder = Path(resume_dir)
        source = folder / "experiment.json"
        if not source.exists():
            raise ConfigError([f"{folder}: not a kerasmed-tune folder (no experiment.json)"])
    raw = read_experiment(source)
    where = str(source)
    problems = check_search_space(raw, where)
    if problems:
        raise ConfigError(problems)
    spec = raw["tune"]
    base = validate_config({k: v for k, v in raw.items() if k != "tune"}, where)
    name = base["name"] or Path(source).stem
    total = int(trials or spec.get("trials", 20))
    heartbeat = spec.get("heartbeat_seconds", HEARTBEAT_SECONDS)
    url = storage or spec.get("storage")
    if url is not None:
        rdb = _storage(url, heartbeat, where)  # a bad URL leaves no folder behind
    if resume_dir is None:
        folder = create_run_dir(output_root, f"{name}_tune")
        write_json_atomic(folder / "experiment.json", raw)
    # Absolute, so that trials.csv names every run folder the same way, whoever ran it.
    folder = folder.resolve()
    if url is None:
        rdb = _storage(f"sqlite:///{folder / 'study.db'}", heartbeat, where)
    direction = "maximize" if base["training"]["monitor_mode"] == "max" else "minimize"
    pruner = optuna.pruners.MedianPruner(n_warmup_steps=1) if spec.get(
        "pruner", "median") == "median" else optuna.pruners.NopPruner()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler_name = spec.get("sampler", "tpe")
    study = optuna.create_study(study_name=study_name or spec.get("study_name") or name,
                                storage=rdb, direction=direction, load_if_exists=True,
                                sampler=_sampler(sampler_name, base["seed"]), pruner=pruner)
    monitor = base["training"]["monitor"]
    from kerasmed.experiment.runs import train
    from kerasmed.training.trainer import RunDiverged, read_summary

    worker = {"id": f"{socket.gethostname()}:{os.getpid()}", "seed": None}

    def objective(trial):
        if worker["seed"] is None:  # this worker's first trial: its number is its identity
            worker["seed"] = worker_seed(base["seed"], trial.number)
            study.sampler = _sampler(sampler_name, worker["seed"])
        trial.set_user_attr("worker", worker["id"])
        trial.set_user_attr("sampler_seed", worker["seed"])
        trials = study.get_trials(deepcopy=False)
        if sum(t.number < trial.number and t.state.name in _COUNTED + _UNDER_WAY
               for t in trials) >= total:
            trial.set_user_attr("note", f"surplus: the study had its {total} trials")
            raise _Surplus()
        trial_raw = sample_experiment(raw, trial)
        trial_raw["name"] = f"{name}_trial{trial.number}"
        config = validate_config(trial_raw, where)
        run_dir = folder / "trials" / trial_raw["name"]
        # Recorded before training, so that a worker that finds this trial dead finds its run.
        trial.set_user_attr("run_dir", str(run_dir))
        retry_of = optuna.storages.RetryFailedTrialCallback.retried_trial_number(
            trials[trial.number])
        pruning = _Pruning(trial, monitor)
        keras.backend.clear_session()
        start = time.perf_counter()
        try:
            train(Experiment(config, where), run_dir=run_dir, extra_callbacks=[pruning])
        except RunDiverged:
            raise optuna.TrialPruned("the trial diverged")
        finally:
            if (run_dir / "summary.json").exists():
                summary = read_summary(run_dir)
                summary["tune"] = {"trial": trial.number, "retry_of": retry_of}
                write_json_atomic(run_dir / "summary.json", summary)
        trial.set_user_attr("seconds", round(time.perf_counter() - start, 2))
        best = read_summary(run_dir)["best"]
        if pruning.pruned:
            raise optuna.TrialPruned()
        if best is None:
            raise optuna.TrialPruned("no finite monitored value")
        return float(best["value"])

    try:
        while True:
            # Fails the trials of dead workers (and retries them) before counting.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            _fail_silent(study, 2 * heartbeat)
            states = collections.Counter(t.state.name for t in study.get_trials(deepcopy=False))
            counted = sum(states[s] for s in _COUNTED)
            if states["WAITING"] or counted + states["RUNNING"] < total:
                study.optimize(objective, n_trials=1, catch=(_Surplus,))
            elif states["RUNNING"]:
                time.sleep(heartbeat)  # another worker's trial may yet fail and need a retry
            else:
                break
    finally:
        _write_results(study, raw, folder)
    return folder


def _write_results(study, raw, folder):
    import optuna
    import pandas as pd

    retry_of = optuna.storages.RetryFailedTrialCallback.retried_trial_number
    retried_as = {retry_of(t): t.number for t in study.trials if retry_of(t) is not None}
    rows = []
    for t in study.trials:
        rows.append({"number": t.number, "state": t.state.name.lower(), "value": t.value,
                     **{f"param:{k}": v for k, v in t.params.items()},
                     **({"weights": json.dumps(t.user_attrs["weights"])}
                        if "weights" in t.user_attrs else {}),
                     "seconds": t.user_attrs.get("seconds", (
                         (t.datetime_complete - t.datetime_start).total_seconds()
                         if t.datetime_complete and t.datetime_start else None)),
                     "run_dir": t.user_attrs.get("run_dir"),
                     "worker": t.user_attrs.get("worker"),
                     "retry_of": retry_of(t), "retried_as": retried_as.get(t.number),
                     "note": t.user_attrs.get("note")})
    columns = ["retry_of", "retried_as"]
    pd.DataFrame(rows).astype({c: "Int64" for c in columns}).to_csv(folder / "trials.csv",
                                                                    index=False)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        return
    best = study.best_trial
    best_raw = sample_experiment(raw, optuna.trial.FixedTrial(best.params))
    best_raw["name"] = f"{raw.get('name') or 'experiment'}_best"
    best_raw["description"] = (f"{raw.get('description', '')} Tuned by kerasmed-tune: trial "
                               f"{best.number}, {study.direction.name.lower()}d value "
                               f"{best.value:.6g}.").strip()
    write_json_atomic(folder / "best_experiment.json", best_raw)
    write_json_atomic(folder / "best.json", {"trial": best.number, "value": best.value,
                                             "params": best.params,
                                             "run_dir": best.user_attrs.get("run_dir")})
    _plots(study, folder, len(complete))


def _plots(study, folder, n_complete):
    import warnings

    # Optuna draws through pyplot: its default backend (Agg without a display, a notebook's
    # own) is kept, and each figure is closed once saved.
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    from kerasmed.runfiles import replace_atomic

    plots = [("optimization_history.png", ovm.plot_optimization_history)]
    if n_complete >= 2 and len(study.best_trial.params) >= 1:
        plots.append(("param_importances.png", ovm.plot_param_importances))
    for filename, plot in plots:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
            try:
                ax = plot(study)
            except (ValueError, RuntimeError):
                continue  # importances need parameters that vary across complete trials
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(7, 4.5)
        fig.tight_layout()
        replace_atomic(folder / filename, lambda tmp: fig.savefig(tmp, format="png"))
        plt.close(fig)
