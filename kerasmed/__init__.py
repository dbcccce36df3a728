"""kerasmed: medical-image segmentation and classification networks for Keras 3.

Sub-packages (docs/architecture.md describes the layers):
    kerasmed.models      model builders and the registry (``kerasmed.models.build``)
    kerasmed.losses      segmentation losses, registered Keras objects
    kerasmed.metrics     segmentation metrics, registered Keras objects
    kerasmed.data        image I/O, dataset readers, PyDataset loaders, the synthetic dataset
    kerasmed.evaluation  inference as in training, pixel and object scores, classification report
    kerasmed.training    the training engines and their callbacks
    kerasmed.experiment  experiment files: schema, validation and the pipeline every command uses
    kerasmed.planning    the self-configuring planner (fingerprint rules, budget, probe)
    kerasmed.api         the commands as Python functions, also at the top level:
                         kerasmed.train, evaluate, predict, compare, explain, export, plan, tune
"""

__version__ = "0.1.0"

from kerasmed import registration as _registration  # noqa: E402

# keras.saving.load_model finds kerasmed's objects once kerasmed is imported (see
# kerasmed/registration.py: without importing Keras here, so that commands start at once).
_registration.install()

# The public Python API (kerasmed/api.py: one function per command, docs/api.md), imported on
# first use so that ``import kerasmed`` stays quick.
_API = ("train", "resume", "evaluate", "compare", "predict", "iter_predictions", "explain",
        "export", "plan", "tune", "load_run", "Run", "Evaluation", "Comparison", "Prediction",
        "Heatmap", "Tuning")
_ERRORS = {"ConfigError": "kerasmed.experiment.schema", "PlanError": "kerasmed.planning.rules",
           "RunDiverged": "kerasmed.training.trainer", "ImageReadError": "kerasmed.data.io"}

__all__ = ["load_model", *_API, *_ERRORS]


def __getattr__(name):
    import importlib

    if name in _API:
        return getattr(importlib.import_module("kerasmed.api"), name)
    if name in _ERRORS:
        return getattr(importlib.import_module(_ERRORS[name]), name)
    raise AttributeError(f"module 'kerasmed' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


def load_model(path, **kwargs):
    """Load a kerasmed ``.keras`` checkpoint; returns the ``keras.Model``.

    ``keras.saving.load_model`` itself works after ``import kerasmed`` (which registers
    kerasmed's losses, metrics and layers); this also says which class is missing when a file
    needs objects from elsewhere. ``kwargs`` go to ``keras.saving.load_model``.
    """
    import re

    import keras  # registers kerasmed's objects, if Keras was not imported yet

    try:
        return keras.saving.load_model(path, **kwargs)
    except TypeError as err:
        found = re.search(r"Could not locate (\w+) '([^']+)'", str(err))
        if found is None:
            raise
        raise TypeError(f"{path}: needs the {found.group(1)} {found.group(2)!r}, which is neither "
                        f"Keras' nor kerasmed's; import the package that defines it (or pass "
                        f"custom_objects=...) before loading") from err
