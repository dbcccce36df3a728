"""A trained run (or a bare ``.keras`` model) made ready for evaluation and prediction.

``load_for_inference`` gives the model, the ``Experiment`` it was trained with and the
``InferenceSettings`` that show it images exactly as its training did: the run's own
``data.fit``, ``image_size``, channels and normalisation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from kerasmed.data.readers import read_dataset
from kerasmed.data.synthetic import SYNTHETIC_DATASETS
from kerasmed.evaluation.cleaning import MaskCleaning
from kerasmed.evaluation.inference import InferenceSettings, model_input_shape
from kerasmed.experiment.pipeline import Experiment, postprocess_for
from kerasmed.experiment.schema import ConfigError
from kerasmed.models.registry import task_of
from kerasmed.training.guard import non_finite_weights

__all__ = ["InferenceRun", "load_for_inference", "evaluation_samples", "fold_dirs",
           "is_kfold_parent"]


@dataclass
class InferenceRun:
    """A model ready for inference: ``experiment`` is ``None`` for a bare model file."""

    model: object
    settings: InferenceSettings
    experiment: Experiment | None
    checkpoint: Path
    members: tuple = ()
    cleaning: MaskCleaning = MaskCleaning()

    @property
    def is_ensemble(self) -> bool:
        """Whether ``model`` averages several runs' networks (a k-fold parent, or runs
        given together)."""
        return len(self.members) > 1

    @property
    def is_classifier(self) -> bool:
        """The run's registered network is a classifier (a bare model file: by its output)."""
        task = self.experiment.task if self.experiment is not None else task_of(self.model)
        return task == "classification"

    def postprocess(self, samples, instances=None, **overrides):
        """Object scoring for these samples (see ``Experiment.postprocess``); a bare model
        takes ``Postprocess``'s defaults."""
        if self.experiment is not None:
            return self.experiment.postprocess(samples, instances, **overrides)
        return postprocess_for({k: v for k, v in overrides.items() if v is not None}, samples,
                               instances)


def is_kfold_parent(path) -> bool:
    """Whether ``path`` is the parent folder of a k-fold run (``kerasmed-train --folds``)."""
    path = Path(path)
    return path.is_dir() and (path / "folds.csv").exists() \
        and not (path / "config.json").exists()


def fold_dirs(parent) -> list[Path]:
    """The fold run directories of a k-fold parent, in fold order (from its ``summary.json``,
    else the ``fold_<i>`` folders there)."""
    parent = Path(parent)
    summary = parent / "summary.json"
    names = None
    if summary.exists():
        try:
            names = json.loads(summary.read_text()).get("fold_dirs")
        except json.JSONDecodeError as err:
            raise ConfigError([f"{summary}: not valid JSON ({err.msg}, line {err.lineno})"]) \
                from err
    if not names:
        names = sorted((p.name for p in parent.glob("fold_*") if p.is_dir()),
                       key=lambda n: int(n.split("_")[-1]) if n.split("_")[-1].isdigit() else 0)
    dirs = [parent / n for n in names]
    missing = [str(d) for d in dirs if not (d / "config.json").exists()]
    if not dirs or missing:
        raise ConfigError([f"{parent}: k-fold parent without its fold runs"
                           + (f" (missing: {', '.join(missing)})" if missing else "")])
    return dirs


POSTPROCESS_FILE = "postprocess.json"


def selected_cleaning(parent) -> MaskCleaning | None:
    """The mask cleaning chosen on a k-fold parent's folds (its ``postprocess.json``, written
    by ``kerasmed.experiment.postselect``), or ``None`` when none was chosen."""
    path = Path(parent) / POSTPROCESS_FILE
    if not path.exists():
        return None
    try:
        return MaskCleaning(**json.loads(path.read_text())["mask"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ConfigError([f"{path}: not a kerasmed post-processing choice ({err})"]) from err


def load_for_inference(target, checkpoint="best", mode=None, normalization=None) -> InferenceRun:
    """Load a run directory's ``<checkpoint>.keras`` (or a ``.keras`` file) for inference.

    ``target`` may also be a k-fold parent folder (every fold's checkpoint) or a list of run
    directories: their networks are averaged as one model (``kerasmed.evaluation.ensemble``),
    shown images as the first member's run was; every member must have been trained with the
    same input size, channels, fit and normalisation. ``mode`` and ``normalization`` override
    the run's (``None`` keeps them). Raises ``ConfigError`` when ``target`` is neither a run
    directory with that checkpoint nor a model file.
    """
    if isinstance(target, (list, tuple)) and len(target) == 1:
        target = target[0]
    if isinstance(target, (list, tuple)):
        return _load_ensemble(list(target), checkpoint, mode, normalization)
    if is_kfold_parent(target):
        run = _load_ensemble(fold_dirs(target), checkpoint, mode, normalization)
        selected = selected_cleaning(target)
        return run if selected is None else replace(run, cleaning=selected)
    import keras

    import kerasmed.losses  # noqa: F401  (registers the objects a checkpoint refers to)
    import kerasmed.metrics  # noqa: F401
    import kerasmed.models  # noqa: F401

    target = Path(target)
    experiment = None
    if target.is_dir():
        path = target / f"{checkpoint}.keras"
        if not (target / "config.json").exists():
            raise ConfigError([f"{target}: not a kerasmed run directory (no config.json)"])
        if not path.exists():
            other = "last" if checkpoint == "best" else "best"
            hint = (f"; use --checkpoint {other} ({other}.keras is there)"
                    if (target / f"{other}.keras").exists() else
                    "; the run has no completed epoch (see its summary.json)")
            raise ConfigError([f"{target}: the run has no {path.name}{hint}"])
        experiment = Experiment.from_run(target)
    elif target.suffix == ".keras" and target.exists():
        path = target
    else:
        raise ConfigError([f"{target}: expected a run directory or a .keras model file"])
    model = keras.saving.load_model(path, compile=False)
    bad = non_finite_weights(model)
    if bad:
        raise ConfigError([f"{path}: the model has non-finite weights in {len(bad)} "
                           f"variable(s) (e.g. {bad[0]}): its training diverged; retrain it, "
                           f"for example with a lower learning rate"])
    if experiment is not None:
        settings = experiment.inference_settings(mode, normalization)
    else:
        height, width, channels = model_input_shape(model)
        settings = InferenceSettings(image_size=(height, width), channels=int(channels),
                                     normalization=normalization or "auto", mode=mode)
    cleaning = experiment.mask_cleaning() if experiment is not None else MaskCleaning()
    return InferenceRun(model, settings, experiment, path, (path,), cleaning)


def _load_ensemble(targets, checkpoint, mode, normalization) -> InferenceRun:
    from kerasmed.evaluation.ensemble import ensemble_model

    runs = [load_for_inference(t, checkpoint, mode, normalization) for t in targets]
    first = runs[0]
    for run, target in zip(runs[1:], targets[1:]):
        if run.settings != first.settings:
            raise ConfigError([f"{target}: shows its network images differently from "
                               f"{targets[0]} ({run.settings.record()} against "
                               f"{first.settings.record()}); an ensemble needs one way"])
    try:
        model = ensemble_model([r.model for r in runs])
    except ValueError as err:
        raise ConfigError([f"{', '.join(map(str, targets))}: {err}"]) from err
    return InferenceRun(model, first.settings, first.experiment, first.checkpoint,
                        tuple(r.checkpoint for r in runs), first.cleaning)


def evaluation_samples(experiment: Experiment | None, data=None, dataset=None, options=None,
                       folder_options=None, ensemble=False):
    """The samples to evaluate: the folder ``data`` read with ``dataset`` (default: the run's
    reader, or ``folder``) and ``options`` (with the run's own options for the run's reader,
    and ``folder_options`` for the ``folder`` reader), or else the run's validation split
    (which an ``ensemble`` does not have: its members trained on each other's)."""
    if data is None:
        if experiment is None:
            raise ValueError("a bare model file needs a data folder to evaluate on")
        if ensemble:
            raise ValueError("an ensemble's members trained on each other's validation images; "
                             "give held-out images with --data")
        root = Path(experiment.data["root"])
        if experiment.data["dataset"] not in SYNTHETIC_DATASETS and not root.is_dir():
            raise ConfigError([f"{experiment.where}: data.root: the run's dataset folder "
                               f"{root.resolve()} is not here (moved, or another machine); give "
                               f"the images to evaluate with --data"])
        return experiment.run_split().val
    run_data = experiment.data if experiment is not None else {}
    run_kind = run_data.get("dataset")
    kind = dataset or (run_kind if run_kind not in (None, *SYNTHETIC_DATASETS) else "folder")
    merged = dict(run_data.get("options", {})) if kind == run_kind else {}
    if kind == "folder":
        merged.update(folder_options or {})
    merged.update(options or {})
    return read_dataset(kind, data, **merged)
