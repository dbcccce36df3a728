"""The experiment layer: from an experiment file to data, model and run, for every command.

- ``schema``: the experiment file's keys, defaults and validation (``load_config``);
- ``pipeline``: ``Experiment``, which gives the samples, the split, the datasets, the built and
  checked model, its compile contract (``kerasmed.training.compile``, re-exported here as
  ``compile_model``) and the inference settings;
- ``runs``: ``train``, ``train_kfold`` and ``resume``, which assemble a run and hand it to the
  training engine;
- ``inference``: a trained run (or a model file) ready for ``kerasmed-eval`` and
  ``kerasmed-predict``.

Layers below (models, losses, metrics, data, evaluation, training) import nothing from here.
"""

from kerasmed.experiment.trained_run import InferenceRun, evaluation_samples, load_for_inference
from kerasmed.experiment.pipeline import Experiment, Split, list_samples
from kerasmed.experiment.runs import resume, train, train_kfold
from kerasmed.experiment.files import load_config
from kerasmed.experiment.overrides import parse_override
from kerasmed.experiment.schema import SCHEMA, ConfigError
from kerasmed.experiment.validate import validate_config
from kerasmed.training.compile import compile_model

__all__ = ["Experiment", "Split", "compile_model", "list_samples", "train", "train_kfold",
           "resume", "InferenceRun", "load_for_inference", "evaluation_samples", "SCHEMA",
           "ConfigError", "load_config", "parse_override", "validate_config"]
