"""The experiment file's schema: every key of its sections, with its type, default, allowed
values and the check of its value (``SCHEMA``, ``Field``), and ``ConfigError``.

An experiment is a JSON object with the sections ``model``, ``data`` and ``training`` (and the
optional ``postprocess`` and ``tune``; the README's experiment-file reference mirrors
``SCHEMA``). Checking an experiment against it is ``experiment.validate``; ``--set`` is
``experiment.overrides``; reading a file is ``experiment.files``.

The schema states no choice of its own: dataset names come from the readers
(``kerasmed.data.readers.READERS``) and the generated datasets, fit modes from
``kerasmed.data.spatial``, mask modes from ``kerasmed.data.dataset``, networks, losses and
metrics from their registries, distributions and loops from the training engines, and the
postprocess defaults from ``kerasmed.evaluation.objects.Postprocess``.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from typing import Any, Callable

import keras

from kerasmed import losses as km_losses
from kerasmed import metrics as km_metrics
from kerasmed.data.augment import validate_augmentation
from kerasmed.data.dataset import TRAINING_MASK_MODES
from kerasmed.data.io import ON_ERROR
from kerasmed.data.normalize import parse_normalization
from kerasmed.data.readers import READERS
from kerasmed.data.spatial import FIT_MODES
from kerasmed.data.synthetic import SYNTHETIC_DATASETS
from kerasmed.evaluation.cleaning import mask_cleaning_defaults
from kerasmed.evaluation.objects import (DISTANCE_FOREGROUND, PROBABILITY_FOREGROUND,
                                         postprocess_defaults)
from kerasmed.evaluation.surface import check_spacing
from kerasmed.models.registry import get_spec
from kerasmed.names import unknown_name_message
from kerasmed.training.distribution import DISTRIBUTIONS
from kerasmed.training.trainer import LOOPS
from kerasmed.training.unfreeze import UnfreezeEncoder

__all__ = ["ConfigError", "Field", "SCHEMA", "DATASETS", "PRECISIONS",
           "CLASSIFICATION_DEFAULTS", "REQUIRED", "OPTIMIZER_RANGES", "USUAL_LEARNING_RATE",
           "unknown_key_message"]

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
DATASETS = tuple(SYNTHETIC_DATASETS) + tuple(READERS)
# Classification experiments that leave these out get classification defaults, not the
# segmentation ones of SCHEMA.
CLASSIFICATION_DEFAULTS = {"loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"],
                           "monitor": "val_accuracy", "monitor_mode": "max"}
REQUIRED = object()


class ConfigError(ValueError):
    """An experiment file is invalid. ``problems`` lists each message ("FILE: key: what")."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("invalid experiment:\n  " + "\n  ".join(self.problems))


@dataclass(frozen=True)
class Field:
    """One key of an experiment file: its JSON type(s), default, allowed values and a check.

    ``check(value)`` returns an error message, or ``None`` when the value is fine.
    """

    types: tuple
    default: Any = REQUIRED
    choices: tuple | None = None
    check: Callable[[Any], str | None] | None = None
    doc: str = ""


def _positive(value):
    return None if value > 0 else f"must be positive, got {value}"


def _fraction(value):
    return None if 0.0 < value < 1.0 else f"must be between 0 and 1 (exclusive), got {value}"


def _image_size(value):
    if len(value) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                  for v in value):
        return f"must be [height, width] with two positive integers, got {value!r}"
    return None


def _raises(function, errors=(ValueError, TypeError)):
    """A check that calls ``function(value)`` and returns its error message, if any."""
    def check(value):
        try:
            function(value)
        except KeyError as err:  # the registry's unknown-name error
            return err.args[0]
        except errors as err:
            return str(err)
        return None
    return check


_normalization = _raises(parse_normalization)
_augmentation = _raises(validate_augmentation)
_model_name = _raises(get_spec)
_loss = _raises(km_losses.get)


def _loss_weights(value):
    if value is None:
        return None
    bad = [f"{k}: {v!r}" for k, v in value.items()
           if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
           or v < 0]
    if bad:
        return f"weights must be finite numbers >= 0, got {', '.join(bad)}"
    if not value or not any(value.values()):
        return "at least one output needs a weight above 0"
    return None


def _metrics(value):
    check = _raises(km_metrics.get)
    messages = [m for m in (check(v) for v in value) if m]
    return "; ".join(messages) or None


def _optimizer(value):
    name = value.get("name")
    if not isinstance(name, str):
        return "needs a 'name' (for example \"adam\")"
    classes = {c.__name__.lower(): c for c in vars(keras.optimizers).values()
               if inspect.isclass(c) and issubclass(c, keras.optimizers.Optimizer)
               and c is not keras.optimizers.Optimizer and c.__name__ != "LossScaleOptimizer"}
    if name.lower() not in classes:
        return unknown_name_message("optimizer", name, classes)
    params = inspect.signature(classes[name.lower()]).parameters
    for key in value:
        if key != "name" and key not in params:
            return unknown_key_message(f"optimizer {name!r} argument", key, params)
    return _optimizer_ranges(value)


# Hyperparameters that make training impossible outside their range: (low, high, what).
OPTIMIZER_RANGES = {
    "learning_rate": (0, None, "> 0"), "momentum": (0, 1, "in [0, 1)"),
    "beta_1": (0, 1, "in [0, 1)"), "beta_2": (0, 1, "in [0, 1)"), "rho": (0, 1, "in [0, 1)"),
    "epsilon": (0, None, "> 0"), "weight_decay": (0, None, ">= 0"),
    "clipnorm": (0, None, "> 0"), "clipvalue": (0, None, "> 0"),
}
# Values that train, but rarely well: warned about, not refused.
USUAL_LEARNING_RATE = (1e-7, 1.0)


def is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _optimizer_ranges(value):
    for key, (low, high, what) in OPTIMIZER_RANGES.items():
        v = value.get(key)
        if v is None or not is_number(v):
            continue
        if not math.isfinite(v):
            return f"{key} must be a finite number, got {v}"
        open_low = what != ">= 0" and key not in ("momentum", "beta_1", "beta_2", "rho")
        if (v < low or (open_low and v == low)) or (high is not None and v >= high):
            return f"{key} must be {what}, got {v}"
    return None


def _lr_schedule(value):
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        return "expected null or {\"name\": a keras.optimizers.schedules class, ...arguments}"
    names = [n for n, c in vars(keras.optimizers.schedules).items()
             if inspect.isclass(c) and n != "LearningRateSchedule"]
    if value["name"] not in names:
        return unknown_name_message("learning-rate schedule", value["name"], names)
    params = inspect.signature(getattr(keras.optimizers.schedules, value["name"])).parameters
    for key in value:
        if key != "name" and key not in params:
            return unknown_key_message(f"{value['name']} argument", key, params)
    return None


def _callback_args(callback_class, reserved=("monitor", "mode")):
    def check(value):
        if value is None:
            return None
        params = inspect.signature(callback_class).parameters
        for key in value:
            if key in reserved:
                return f"{key!r} is taken from training.{key.replace('mode', 'monitor_mode')}"
            if key not in params:
                return unknown_key_message(f"{callback_class.__name__} argument", key, params)
        return None
    return check


def unknown_key_message(kind, key, valid):
    return unknown_name_message(kind, key, valid, list_choices=False, cutoff=0.6)


_INT, _FLOAT, _STR, _BOOL = (int,), (int, float), (str,), (bool,)
_POSTPROCESS = postprocess_defaults()
_CLEANING = mask_cleaning_defaults()


def _share(value):
    return None if 0.0 <= value <= 1.0 else f"must be between 0 and 1, got {value}"

SCHEMA: dict = {
    "name": Field(_STR, None, doc="run name; default: the experiment file's stem"),
    "description": Field(_STR, "", doc="free text, copied to the run directory"),
    "seed": Field(_INT, 0, doc="seeds Python, NumPy and the backend, and the data split"),
    "model": {
        "name": Field(_STR, check=_model_name, doc="a name from kerasmed.models.list_models()"),
        "params": Field((dict,), {}, doc="keyword arguments of the builder; input_shape is "
                                         "filled in from data.image_size and data.channels"),
    },
    "data": {
        "dataset": Field(_STR, choices=DATASETS,
                         doc="synthetic_polyps (generated into root) or a reader of "
                             "kerasmed.data.readers.READERS for root's layout"),
        "root": Field(_STR, doc="dataset folder; relative paths start at the working directory"),
        "options": Field((dict,), {}, doc="the reader's keyword arguments, e.g. "
                                          "{\"images\": \"imgs\"} for folder"),
        "groups": Field((str, type(None)), None,
                        doc="CSV (image stem, group) that sets each sample's group for splits"),
        "synthetic": {
            "n_images": Field(_INT, 200, check=_positive),
            "height": Field(_INT, 288, check=_positive),
            "width": Field(_INT, 384, check=_positive),
            "seed": Field(_INT, 0),
        },
        "image_size": Field((list,), [256, 256], check=_image_size, doc="[height, width] fed to "
                                                                        "the model"),
        "channels": Field(_INT, 3, choices=(1, 3)),
        "fit": Field(_STR, "resize", choices=FIT_MODES,
                     doc="how images reach image_size: resize, pad (aspect kept), center_crop, "
                         "random_crop, tile"),
        "normalization": Field((str, dict), "auto", check=_normalization,
                               doc="auto, dtype_range, minmax, percentile, mean_std, backbone, "
                                   "or {\"method\": ..., parameters}"),
        "mask_threshold": Field(_FLOAT + (type(None),), None,
                                doc="foreground is mask > threshold; null: automatic"),
        "mask_mode": Field(_STR, "binary", choices=TRAINING_MASK_MODES,
                           doc="binary masks, class-index masks for several classes, or "
                               "distance maps computed from instance masks (Kidney-SegNet)"),
        "distance_normalize": Field(_BOOL, True,
                                    doc="distance maps: each object's distances divided by its "
                                        "maximum (peaks at 1), else raw pixels"),
        "num_classes": Field((int, type(None)), None, doc="classes of a class-index mask"),
        "class_values": Field((list, type(None)), None,
                              doc="stored grey level or [r, g, b] of each class"),
        "spacing": Field((list, int, float, type(None)), None,
                         check=lambda v: None if v is None else _raises(check_spacing)(v),
                         doc="pixel size [row, col] (or one number): kerasmed-eval's distances "
                             "in its unit; null: TIFF resolution tags, else pixels"),
        "one_hot": Field(_BOOL, False, doc="class masks as one-hot (for multiclass losses); "
                                           "binary masks as two channels [background, "
                                           "foreground] (softmax heads, e.g. Micro-Net)"),
        "classes": Field((list, type(None)), None,
                         doc="classification: class names in output order (default: sorted "
                             "labels found)"),
        "class_weights": Field((str, dict, type(None)), None,
                               check=lambda v: None if v is None or isinstance(v, dict)
                               or v == "balanced" else "must be null, \"balanced\" or "
                                                       "{class: weight}",
                               doc="classification: loss weight per class; \"balanced\" "
                                   "weights by inverse frequency"),
        "augmentation": Field((list,), [], check=_augmentation,
                              doc="operations applied to training batches (see docs/data.md)"),
        "patches_per_epoch": Field((int, type(None)), None,
                                   check=lambda v: None if v is None or v > 0
                                   else f"must be positive, got {v}",
                                   doc="fit \"patches\": random patches per training epoch; "
                                       "null: by the images' size (kerasmed.data.dataset)"),
        "passes_per_epoch": Field(_INT, 1,
                                  check=lambda v: None if v > 0 else f"must be positive, got {v}",
                                  doc="training: passes over the images (tiles) one epoch "
                                      "makes, for every fit but \"patches\" (the planner "
                                      "groups them so that validation stays a small share)"),
        "foreground_share": Field(_FLOAT, 1 / 3, check=_share,
                                  doc="fit \"patches\": share of each batch's patches placed "
                                      "on foreground (nnU-Net: 1/3)"),
        "val_fraction": Field(_FLOAT, 0.2, check=_fraction),
        "cache": Field(_BOOL, False, doc="keep decoded, resized samples in memory"),
        "on_error": Field(_STR, "raise", choices=ON_ERROR,
                          doc="an unreadable image: fail, or skip it and list it"),
        "workers": Field(_INT, 1, check=_positive),
        "use_multiprocessing": Field(_BOOL, False),
    },
    "training": {
        "epochs": Field(_INT, 50, check=_positive),
        "folds": Field((int, type(None)), None,
                       check=lambda v: None if v is None or v >= 2
                       else f"must be null or at least 2, got {v}",
                       doc="k-fold cross-validation run by kerasmed-train (--folds overrides); "
                           "null: one run on a data.val_fraction split"),
        "budget_minutes": Field(_FLOAT + (type(None),), None,
                                check=lambda v: None if v is None or v > 0
                                else f"must be positive, got {v}",
                                doc="the time the plan allows (kerasmed-plan): training shows "
                                    "what is left of it; null: no budget"),
        "batch_size": Field(_INT, 8, check=_positive),
        "optimizer": Field((dict,), {"name": "adam", "learning_rate": 1e-3}, check=_optimizer,
                           doc="{\"name\": ..., and the optimizer's keyword arguments}"),
        "loss": Field((str, dict), "bce_dice", check=_loss),
        "loss_weights": Field((dict, type(None)), None, check=_loss_weights,
                              doc="{output name: weight} for networks with several outputs "
                                  "(deep supervision); null: every output weighs 1"),
        "metrics": Field((list,), ["dice", "iou"], check=_metrics),
        "precision": Field(_STR, "float32", choices=PRECISIONS),
        "monitor": Field(_STR, "val_dice", doc="history column that picks the best checkpoint"),
        "monitor_mode": Field(_STR, "max", choices=("min", "max")),
        "verbose": Field(_INT, 1, choices=(0, 1, 2), doc="0 silent, 1 progress bar, 2 a line "
                                                         "per epoch"),
        "auxiliary_weight": Field((str, int, float), "inverse_epoch",
                                  check=lambda v: None if v == "inverse_epoch" or (
                                      not isinstance(v, str) and v >= 0)
                                  else "must be \"inverse_epoch\" or a number >= 0",
                                  doc="loss weight of auxiliary outputs (named aux*, e.g. "
                                      "Micro-Net): 1/epoch as in the paper, or fixed"),
        "loop": Field(_STR, "fit", choices=LOOPS,
                      doc="model.fit, or kerasmed's train_on_batch loop (same logs and outputs)"),
        "distribution": Field((str, type(None)), None,
                              choices=DISTRIBUTIONS,
                              doc="null (one device), mirrored / multi_worker (tf.distribute, "
                                  "TensorFlow) or data_parallel (keras.distribution, JAX)"),
        "devices": Field((list, type(None)), None,
                         doc="devices for mirrored / data_parallel, e.g. [\"/gpu:0\", "
                             "\"/gpu:1\"]; null: all"),
        "jit_compile": Field((str, bool), "auto", check=lambda v: None if v in ("auto", True, False)
                             else "must be \"auto\", true or false",
                             doc="XLA compilation of the train step; auto: by backend and device "
                                 "(kerasmed.training.xla.JIT_RULE, chosen by measurement)"),
        "lr_schedule": Field((dict, type(None)), None, check=_lr_schedule,
                             doc="a keras.optimizers.schedules class by name with its arguments; "
                                 "decay_steps defaults to the whole run"),
        "callbacks": {
            "early_stopping": Field((dict, type(None)), None,
                                    check=_callback_args(keras.callbacks.EarlyStopping),
                                    doc="EarlyStopping arguments, e.g. {\"patience\": 10}"),
            "reduce_lr_on_plateau": Field((dict, type(None)), None,
                                          check=_callback_args(
                                              keras.callbacks.ReduceLROnPlateau),
                                          doc="ReduceLROnPlateau arguments"),
            "tensorboard": Field(_BOOL, False, doc="TensorBoard logs in <run>/tensorboard"),
            "unfreeze_encoder": Field((dict, type(None)), None,
                                      check=_callback_args(UnfreezeEncoder, reserved=()),
                                      doc="{\"epoch\": N}: train a frozen pretrained encoder "
                                          "from epoch N (0-based) on, recompiling once"),
        },
    },
    "tune": Field((dict, type(None)), None,
                  doc="kerasmed-tune's search space: {\"params\": {dotted key: {low, high, "
                      "log} or {choices}}, \"weights\": {key, size, total, min}, trials, "
                      "sampler, pruner, storage}; checked by kerasmed-tune"),
    "postprocess": {
        "instances": Field((str, bool), "auto", check=lambda v: None if v in ("auto", True, False)
                           else "must be \"auto\", true or false",
                           doc="kerasmed-eval: score objects (AJI, object F1, object Dice); auto: "
                               "for distance-map runs and instance-label datasets (GlaS)"),
        "foreground_threshold": Field(_FLOAT + (type(None),), _POSTPROCESS["foreground_threshold"],
                                      doc=f"foreground above it; null: {DISTANCE_FOREGROUND} for "
                                          f"distance maps, {PROBABILITY_FOREGROUND} for "
                                          f"probabilities"),
        "h": Field(_FLOAT, _POSTPROCESS["h"], check=_positive,
                   doc="distance maps: h-maxima depth of the watershed markers"),
        "marker_threshold": Field(_FLOAT + (type(None),), _POSTPROCESS["marker_threshold"],
                                  doc="distance maps: markers above it instead of h-maxima"),
        "min_size": Field(_INT, _POSTPROCESS["min_size"],
                          check=lambda v: None if v >= 0 else "must be >= 0",
                          doc="objects smaller than this many pixels are removed"),
        "fill_holes": Field(_BOOL, _POSTPROCESS["fill_holes"],
                            doc="probabilities: fill holes in objects"),
        "iou_threshold": Field(_FLOAT, _POSTPROCESS["iou_threshold"],
                               check=lambda v: None if 0.5 <= v < 1
                               else f"must be in [0.5, 1), got {v}",
                               doc="object F1: a detection needs IoU above it"),
        "select": Field(_BOOL, False,
                        doc="k-fold runs: choose postprocess.mask on the folds' validation "
                            "predictions after training (kept only where the Dice improves)"),
        "mask": {
            "fill_holes": Field(_BOOL, _CLEANING["fill_holes"],
                                doc="predicted masks: fill holes inside each class"),
            "min_size": Field(_INT, _CLEANING["min_size"],
                              check=lambda v: None if v >= 0 else "must be >= 0",
                              doc="predicted masks: remove components under this many pixels"),
            "keep_largest": Field(_BOOL, _CLEANING["keep_largest"],
                                  doc="predicted masks: keep only the largest component of "
                                      "each class"),
        },
    },
}
