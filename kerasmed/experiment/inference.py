"""A trained run (or a bare ``.keras`` model) made ready for evaluation and prediction.

``load_for_inference`` gives the model, the ``Experiment`` it was trained with and the
``InferenceSettings`` that show it images exactly as its training did: the run's own
``data.fit``, ``image_size``, channels and normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kerasmed.data.readers import read_dataset
from kerasmed.data.synthetic import SYNTHETIC_DATASETS
from kerasmed.evaluation.inference import InferenceSettings, model_input_shape
from kerasmed.experiment.pipeline import Experiment, postprocess_for
from kerasmed.experiment.schema import SCHEMA, ConfigError
from kerasmed.training.guard import non_finite_weights

__all__ = ["InferenceRun", "load_for_inference", "evaluation_samples"]


@dataclass
class InferenceRun:
    """A model ready for inference: ``experiment`` is ``None`` for a bare model file."""

    model: object
    settings: InferenceSettings
    experiment: Experiment | None
    checkpoint: Path

    @property
    def is_classifier(self) -> bool:
        return len(self.model.outputs[-1].shape) == 2  # (batch, classes)

    def postprocess(self, samples, instances=None, **overrides):
        """Object scoring for these samples (see ``Experiment.postprocess``); a bare model
        takes the ``postprocess`` section's defaults."""
        if self.experiment is not None:
            return self.experiment.postprocess(samples, instances, **overrides)
        settings = {key: field.default for key, field in SCHEMA["postprocess"].items()}
        settings.update((k, v) for k, v in overrides.items() if v is not None)
        return postprocess_for(settings, samples, instances)


def load_for_inference(target, checkpoint="best", mode=None, normalization=None) -> InferenceRun:
    """Load a run directory's ``<checkpoint>.keras`` (or a ``.keras`` file) for inference.

    ``mode`` and ``normalization`` override the run's (``None`` keeps them). Raises
    ``ConfigError`` when ``target`` is neither a run directory with that checkpoint nor a
    model file.
    """
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
    return InferenceRun(model, settings, experiment, path)


def evaluation_samples(experiment: Experiment | None, data=None, dataset=None, options=None,
                       folder_options=None):
    """The samples to evaluate: the folder ``data`` read with ``dataset`` (default: the run's
    reader, or ``folder``) and ``options`` (with the run's own options for the run's reader,
    and ``folder_options`` for the ``folder`` reader), or else the run's validation split."""
    if data is None:
        if experiment is None:
            raise ValueError("a bare model file needs a data folder to evaluate on")
        return experiment.run_split().val
    run_data = experiment.data if experiment is not None else {}
    run_kind = run_data.get("dataset")
    kind = dataset or (run_kind if run_kind not in (None, *SYNTHETIC_DATASETS) else "folder")
    merged = dict(run_data.get("options", {})) if kind == run_kind else {}
    if kind == "folder":
        merged.update(folder_options or {})
    merged.update(options or {})
    return read_dataset(kind, data, **merged)
