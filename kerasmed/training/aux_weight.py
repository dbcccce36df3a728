"""Auxiliary-loss weights that change during training without recompiling.

Micro-Net (Raza et al. 2019) trains with ``main loss + (sum of auxiliary losses) / epoch``.
Keras 3's ``compile(loss_weights=...)`` bakes constant weights into the compiled loss, so the
weight lives instead in a ``keras.Variable`` read by a loss wrapper, ``ScaledLoss``, and the
``AuxiliaryLossWeight`` callback assigns it at the start of every epoch::

    from kerasmed.training.aux_weight import AuxiliaryLossWeight, auxiliary_losses

    model = build("micronet", variant=252)
    model.compile("adam", loss=auxiliary_losses(model, "categorical_crossentropy"))
    model.fit(data, epochs=25, callbacks=[AuxiliaryLossWeight()])   # aux weight 1, 1/2, 1/3...

On TensorFlow (and PyTorch) the compiled step reads the variable each time it runs. JAX traces
the step into a pure function in which a variable that is not model state is a constant, so on
JAX ``set_auxiliary_weight`` (which the callback calls) also re-creates the train and test
functions: one re-trace per change, i.e. once per epoch.
"""

from __future__ import annotations

import keras
from keras import ops

from kerasmed import losses as km_losses

__all__ = ["ScaledLoss", "auxiliary_losses", "auxiliary_weight_variables", "set_auxiliary_weight",
           "inverse_epoch", "AuxiliaryLossWeight", "has_auxiliary_outputs"]


def has_auxiliary_outputs(model_or_names) -> bool:
    """Micro-Net-style auxiliary heads (``aux*``) before the main output, weighted by a
    schedule; deep supervision without that naming (DRRMSAN) weighs every output 1.
    ``model_or_names``: a model or its output names."""
    names = list(getattr(model_or_names, "output_names", model_or_names))
    return len(names) > 1 and all(n.startswith("aux") for n in names[:-1])


def _get_loss(spec):
    """A loss object or function from a name, a config, a Loss or a function.

    Names and ``{"name": ..., **kwargs}`` dicts go through ``kerasmed.losses.get`` (kerasmed's
    losses first, then Keras'); a serialized Keras config (with ``class_name``) is deserialized.
    """
    if isinstance(spec, keras.losses.Loss) or (callable(spec) and not isinstance(spec, str)):
        return spec
    if isinstance(spec, dict) and "class_name" in spec:
        return keras.losses.deserialize(spec)
    return km_losses.get(spec)


def _loss_name(loss) -> str:
    return getattr(loss, "name", None) or getattr(loss, "__name__", None) or "loss"


@keras.saving.register_keras_serializable(package="kerasmed")
class ScaledLoss(keras.losses.Loss):
    """``weight * loss(y_true, y_pred)``, where ``weight`` is a non-trainable ``keras.Variable``.

    Args:
        loss: the base loss: a name (kerasmed's or Keras'), a ``keras.losses.Loss`` or a
            function ``(y_true, y_pred) -> per-sample losses``. A ``Loss`` object's own
            reduction is bypassed (its ``call`` gives per-sample values); this wrapper reduces.
        weight: the initial weight (a float), or a ``keras.Variable`` to share with other
            ``ScaledLoss`` objects (``auxiliary_losses`` shares one among all auxiliary outputs).
        name, reduction, dtype: as for ``keras.losses.Loss``.

    ``set_weight(value)`` (or ``weight.assign(value)``) changes the weight of an already
    compiled model; see the module docstring for JAX. The configuration saves the weight's
    current value.
    """

    def __init__(self, loss="binary_crossentropy", weight=1.0, name=None,
                 reduction="sum_over_batch_size", dtype=None):
        self.base_loss = _get_loss(loss)
        super().__init__(name=name or f"scaled_{_loss_name(self.base_loss)}",
                         reduction=reduction, dtype=dtype)
        if isinstance(weight, keras.Variable):
            self.weight = weight
        else:
            self.weight = keras.Variable(float(weight), trainable=False, dtype="float32",
                                         name="aux_loss_weight")

    def call(self, y_true, y_pred):
        base = self.base_loss
        values = base.call(y_true, y_pred) if isinstance(base, keras.losses.Loss) else base(
            y_true, y_pred)
        values = ops.convert_to_tensor(values)
        return values * ops.cast(self.weight, values.dtype)

    def set_weight(self, value):
        """Assign the weight (without re-tracing; see ``set_auxiliary_weight`` for JAX)."""
        self.weight.assign(float(value))

    def get_config(self):
        return {**super().get_config(),
                "loss": keras.losses.serialize(self.base_loss),
                "weight": float(ops.convert_to_numpy(self.weight))}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss"] = _get_loss(config["loss"])
        return cls(**config)


def auxiliary_losses(model_or_names, loss, weight=1.0):
    """A ``compile(loss=...)`` dict: ``loss`` on the last (main) output, and ``loss`` scaled by
    one shared weight variable on every other (auxiliary) output.

    ``model_or_names`` is a model (its ``output_names`` are used) or the output names, the main
    output last (kerasmed's multi-output models put it last).
    """
    names = list(getattr(model_or_names, "output_names", model_or_names))
    if len(names) < 2:
        raise ValueError(f"auxiliary_losses needs at least two outputs, got {names}")
    base = _get_loss(loss)
    shared = keras.Variable(float(weight), trainable=False, dtype="float32",
                            name="aux_loss_weight")
    losses = {n: ScaledLoss(base, weight=shared, name=f"{n}_scaled") for n in names[:-1]}
    losses[names[-1]] = base
    return losses


def auxiliary_weight_variables(model) -> list:
    """The distinct weight variables of the ``ScaledLoss`` objects in ``model``'s compiled loss."""
    found, seen = [], set()

    def visit(obj):
        if isinstance(obj, ScaledLoss):
            if id(obj.weight) not in seen:
                seen.add(id(obj.weight))
                found.append(obj.weight)
        elif isinstance(obj, dict):
            for value in obj.values():
                visit(value)
        elif isinstance(obj, (list, tuple)):
            for value in obj:
                visit(value)

    visit(getattr(model, "loss", None))
    return found


def set_auxiliary_weight(model, value, variables=None):
    """Assign ``value`` to the auxiliary weight variables of ``model``'s compiled loss.

    On JAX the compiled train and test functions are re-created so that the next step sees the
    new value (they hold the old one as a constant). Returns the variables assigned.
    """
    variables = auxiliary_weight_variables(model) if variables is None else list(variables)
    for variable in variables:
        variable.assign(float(value))
    if keras.backend.backend() == "jax" and getattr(model, "compiled", False):
        model.make_train_function(force=True)
        model.make_test_function(force=True)
    return variables


def inverse_epoch(epoch: int) -> float:
    """The paper's auxiliary weight: 1 / epoch, epochs counted from 1."""
    return 1.0 / max(1, int(epoch))


class AuxiliaryLossWeight(keras.callbacks.Callback):
    """Set the auxiliary-loss weight to ``schedule(epoch)`` at the start of every epoch.

    Args:
        schedule: a function of the epoch counted from 1 (default ``inverse_epoch``: 1, 1/2,
            1/3, ... as in Micro-Net).
        variables: the weight variables (or ``ScaledLoss`` objects) to set; ``None`` finds every
            ``ScaledLoss`` in the model's compiled loss when training begins.

    ``values`` records ``(epoch, weight)`` for every epoch started.
    """

    def __init__(self, schedule=inverse_epoch, variables=None):
        super().__init__()
        self.schedule = schedule
        self._given = variables
        self.variables = []
        self.values: list[tuple[int, float]] = []

    def on_train_begin(self, logs=None):
        if self._given is None:
            self.variables = auxiliary_weight_variables(self.model)
        else:
            self.variables = [v.weight if isinstance(v, ScaledLoss) else v for v in self._given]
        if not self.variables:
            raise ValueError("AuxiliaryLossWeight: the model's loss has no ScaledLoss; compile "
                             "it with kerasmed.training.aux_weight.auxiliary_losses(...)")

    def on_epoch_begin(self, epoch, logs=None):
        value = float(self.schedule(epoch + 1))
        set_auxiliary_weight(self.model, value, self.variables)
        self.values.append((epoch + 1, value))
