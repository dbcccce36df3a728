"""The compile contract: what compiling a network for an experiment means, decided once.

``Compilation`` takes an experiment's ``training`` section (the compile section: optimizer,
``lr_schedule``, loss, metrics, ``auxiliary_weight``, ``jit_compile``, ``callbacks``) and the
built model, and owns every decision that follows from them:

- the optimizer and its learning-rate schedule (``decay_steps`` default: the whole run);
- the losses: the loss on every output; auxiliary heads (Micro-Net's ``aux*``) scaled by one
  shared weight variable, constant or scheduled (``auxiliary_weight: "inverse_epoch"``); the
  constant per-output ``loss_weights`` (deep supervision), an output not named weighing 1;
- the metrics, on the last output (the one a user predicts with);
- the XLA setting (``kerasmed.training.xla``);
- the callbacks the compile implies (``AuxiliaryLossWeight`` for a scheduled auxiliary weight,
  ``UnfreezeEncoder`` recompiling through this contract, ``ClassificationMetrics`` for a
  classifier) and the history columns the run will report (``history_columns``; the experiment
  checks ``training.monitor`` against them before anything is trained);
- the arguments it compiled with, kept, so that a recompile (encoder unfreezing) reuses the
  same loss and metric objects without reading Keras' private state.

The task (segmentation or classification) is the registered network's (``task_of``).
``compile_model(model, training, steps_per_epoch)`` is the one-call form.
"""

from __future__ import annotations

import inspect
import weakref

import keras

from kerasmed import losses as km_losses
from kerasmed import metrics as km_metrics
from kerasmed.models.registry import task_of
from kerasmed.training.aux_weight import (AuxiliaryLossWeight, auxiliary_losses,
                                          has_auxiliary_outputs)
from kerasmed.training.callbacks import ClassificationMetrics
from kerasmed.training.tracing import build_optimizer
from kerasmed.training.unfreeze import UnfreezeEncoder
from kerasmed.training.xla import resolve_jit_compile

__all__ = ["Compilation", "compile_model", "make_optimizer", "resolve_metric",
           "CLASSIFICATION_COLUMNS"]

# The columns ClassificationMetrics adds to a classifier's history (per class columns aside).
CLASSIFICATION_COLUMNS = ("val_macro_f1", "val_mean_auc", "val_balanced_accuracy")

# The contract that compiled each model, so that the trainer recompiles with the same one.
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def make_optimizer(training: dict, steps_per_epoch: int):
    """The optimizer of a ``training`` section, with its ``lr_schedule`` (if any) as the
    learning rate."""
    spec = dict(training["optimizer"])
    name = spec.pop("name")
    schedule = training["lr_schedule"]
    if schedule is not None:
        params = {k: v for k, v in schedule.items() if k != "name"}
        schedule_class = getattr(keras.optimizers.schedules, schedule["name"])
        accepted = inspect.signature(schedule_class).parameters
        if "initial_learning_rate" in accepted:  # PiecewiseConstantDecay takes its values
            params.setdefault("initial_learning_rate", spec.get("learning_rate", 1e-3))
        if "decay_steps" in accepted:
            # Default: decay over the whole run.
            params.setdefault("decay_steps", steps_per_epoch * training["epochs"])
        spec["learning_rate"] = schedule_class(**params)
    return keras.optimizers.get({"class_name": name, "config": spec})


def resolve_metric(spec):
    """A metric for ``compile`` from an experiment's metric entry.

    Keras' own names stay strings: compile resolves "accuracy" to the form that fits the loss
    (sparse categorical for integer labels), which a metric object could not.
    """
    if isinstance(spec, str) and spec not in km_metrics.available():
        return spec
    return km_metrics.get(spec)


class Compilation:
    """The compile contract of one model under one ``training`` section (see the module
    docstring).

    Args:
        training: the experiment's validated ``training`` section.
        model: the built network (its ``output_names`` are read; the main output last).
        task: ``"segmentation"`` or ``"classification"`` (``for_experiment`` reads it from
            the registered network).
        steps_per_epoch: training steps per epoch (the schedule's default ``decay_steps``).
    """

    def __init__(self, training: dict, model, task: str = "segmentation",
                 steps_per_epoch: int = 1):
        self.training = training
        self.output_names = list(model.output_names)
        self.task = task
        self.steps_per_epoch = int(steps_per_epoch)
        self.arguments = None  # what ``compile`` passed to ``model.compile``

    @classmethod
    def for_experiment(cls, config: dict, model, steps_per_epoch: int = 1) -> Compilation:
        """The contract of ``model`` under the experiment ``config`` (its ``training`` section,
        the task of its ``model.name``)."""
        return cls(config["training"], model, task_of(config["model"]["name"]), steps_per_epoch)

    @staticmethod
    def of(model) -> Compilation | None:
        """The contract that compiled ``model`` (``None`` for one compiled otherwise, such as
        a checkpoint loaded to resume)."""
        return _COMPILED.get(model)

    # --------------------------------------------------------------------------- decisions

    @property
    def auxiliary(self) -> bool:
        """Auxiliary heads (``aux*``) before the main output: their losses are weighted."""
        return has_auxiliary_outputs(self.output_names)

    @property
    def scheduled_auxiliary_weight(self) -> bool:
        """The auxiliary weight changes every epoch (``AuxiliaryLossWeight``)."""
        return self.auxiliary and self.training["auxiliary_weight"] == "inverse_epoch"

    def optimizer(self):
        return make_optimizer(self.training, self.steps_per_epoch)

    def loss(self):
        """The loss on every output; auxiliary heads scaled by one shared weight."""
        loss = km_losses.get(self.training["loss"])
        if self.auxiliary:
            weight = self.training["auxiliary_weight"]
            # A scheduled weight starts at the schedule's first value, 1.
            return auxiliary_losses(self.output_names, loss,
                                    1.0 if self.scheduled_auxiliary_weight else weight)
        if len(self.output_names) > 1:
            return {n: loss for n in self.output_names}
        return loss

    def loss_weights(self) -> dict | None:
        """``training.loss_weights`` for every output (an output not named weighs 1), or None.
        Raises ``ValueError`` for a name that is not an output, or a model of one output."""
        weights = self.training.get("loss_weights")
        if weights is None:
            return None
        unknown = sorted(set(weights) - set(self.output_names))
        if len(self.output_names) < 2 or unknown:
            raise ValueError(f"loss_weights name outputs of a network with several; "
                             f"{', '.join(unknown) or 'this one has one'} is not one of "
                             f"{', '.join(self.output_names)}")
        return {n: float(weights.get(n, 1.0)) for n in self.output_names}

    def metrics(self):
        """The metrics, on the last output of a model with several."""
        metrics = [resolve_metric(m) for m in self.training["metrics"]]
        if len(self.output_names) > 1:
            return {self.output_names[-1]: metrics}
        return metrics

    def metric_names(self) -> list[str]:
        """The metrics' names as the history spells them."""
        return [km_metrics.get(m).name for m in self.training["metrics"]]

    def history_columns(self, classes=None) -> list[str]:
        """The columns the run reports (``val_`` ones included): the loss of every output, the
        metrics of the last; a classifier (``classes`` given) adds ``ClassificationMetrics``'
        figures."""
        names, metric_names = self.output_names, self.metric_names()
        if len(names) > 1:
            keys = (["loss"] + [f"{n}_loss" for n in names]
                    + [f"{names[-1]}_{m}" for m in metric_names])
        else:
            keys = ["loss"] + metric_names
        keys += [f"val_{k}" for k in keys]
        if classes is not None:
            keys += list(CLASSIFICATION_COLUMNS)
            keys += [f"val_{m}_{c}" for c in classes for m in ("sensitivity", "specificity",
                                                                 "auc")]
        return keys

    # ----------------------------------------------------------------------------- compiling

    def compile(self, model):
        """Compile ``model`` and build its optimizer (now, not inside the first traced step,
        which would then be traced twice). Returns the model."""
        self.arguments = dict(loss=self.loss(), loss_weights=self.loss_weights(),
                              metrics=self.metrics(),
                              jit_compile=resolve_jit_compile(self.training["jit_compile"]))
        model.compile(optimizer=self.optimizer(), **self.arguments)
        build_optimizer(model)
        _COMPILED[model] = self
        return model

    def recompile(self, model):
        """Compile ``model`` again with its own optimizer object (state kept) and the loss and
        metric objects it was compiled with: this contract's kept arguments, or, for a model
        this contract did not compile (a resumed checkpoint), the model's own loss objects
        (``model.loss``) with this contract's metrics and options."""
        arguments = self.arguments
        if arguments is None or _COMPILED.get(model) is not self:
            arguments = dict(loss=model.loss, loss_weights=self.loss_weights(),
                             metrics=self.metrics(),
                             jit_compile=resolve_jit_compile(self.training["jit_compile"]))
        model.compile(optimizer=model.optimizer, **arguments)

    # ----------------------------------------------------------------------------- callbacks

    def callbacks(self) -> list:
        """The callbacks the compile implies: the auxiliary weight's schedule, and the encoder
        unfreezing (``training.callbacks.unfreeze_encoder``) that recompiles through this
        contract."""
        callbacks = []
        if self.scheduled_auxiliary_weight:
            callbacks.append(AuxiliaryLossWeight())
        unfreeze = self.training["callbacks"]["unfreeze_encoder"]
        if unfreeze is not None:
            callbacks.append(UnfreezeEncoder(**unfreeze, recompile=self.recompile))
        return callbacks

    def reporting_callbacks(self, val_data, run_dir) -> list:
        """The callbacks that add the history columns beyond Keras' own: a classifier's
        per-class validation figures (place them before the history logger)."""
        if self.task != "classification":
            return []
        return [ClassificationMetrics(val_data, val_data.classes, run_dir)]


def compile_model(model, training: dict, steps_per_epoch: int, task: str = "segmentation"):
    """Compile ``model`` from a ``training`` section (``Compilation``). Returns the model."""
    return Compilation(training, model, task, steps_per_epoch).compile(model)
