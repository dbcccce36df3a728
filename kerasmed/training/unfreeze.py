"""Warm up a decoder on a frozen pretrained encoder, then fine-tune the whole network.

Build the model with ``encoder_freeze=True`` (kerasmed's backbone networks, or any model with a
nested layer named ``"encoder"``), compile it, and pass ``UnfreezeEncoder(epoch=N)`` to
``fit``: epochs ``0 .. N-1`` train the decoder only, and at the start of epoch ``N`` the encoder
becomes trainable.

Keras 3 reads which weights are trainable when it builds the training step, so the change
needs a new training step: ``UnfreezeEncoder`` recompiles the model **once**, at epoch ``N``
(never per epoch: recompiling every epoch made memory grow in the seed project), with the same
optimizer object and the loss, metrics and options the model was compiled with. Kept across
the unfreeze: the optimizer's ``iterations`` (so learning-rate schedules continue where they
were), its learning-rate variable (changes by ``ReduceLROnPlateau`` and the like) and every
state slot (e.g. Adam's moments) of the variables that were already training; the newly
trainable encoder variables start with fresh (zero) slots. A ``LossScaleOptimizer`` (mixed
precision) keeps its loss scale.

By default the encoder's BatchNormalization layers stay frozen (inference mode) after the
unfreeze, as Keras' fine-tuning guide advises: with the small batches of medical data, updating
their ImageNet statistics does more harm than good. ``keep_batchnorm_frozen=False`` trains them
too.

Backends: the callback works with TensorFlow (``fit`` and kerasmed's ``train_on_batch`` loop).
JAX's ``fit`` carries the trainable/optimizer state through the epoch loop as fixed arrays, so
it cannot change mid-``fit``; there, train in two ``fit`` calls and call ``unfreeze_encoder``
in between::

    model.fit(data, epochs=N)
    unfreeze_encoder(model)
    model.fit(data, initial_epoch=N, epochs=total)
"""

from __future__ import annotations

import keras

from kerasmed.keras_private import rebuild_optimizer
from kerasmed.models.encoders.features import ENCODER_NAME  # the name the builders give it
from kerasmed.training.tracing import build_training_state

__all__ = ["UnfreezeEncoder", "unfreeze_encoder", "recompile_from_model", "find_encoder",
           "encoder_is_frozen"]

def find_encoder(model, encoder=ENCODER_NAME):
    """The encoder layer of ``model``: ``encoder`` itself if it is a layer, else by name."""
    if isinstance(encoder, keras.layers.Layer):
        return encoder
    try:
        return model.get_layer(encoder)
    except ValueError as err:
        raise ValueError(f"model {model.name!r} has no layer named {encoder!r}: build it with a "
                         f"kerasmed backbone network (Unet, FPN, Linknet, PSPNet) or pass the "
                         f"encoder layer") from err


def encoder_is_frozen(model, encoder=ENCODER_NAME) -> bool:
    """True while the encoder is non-trainable."""
    return not find_encoder(model, encoder).trainable


def _batchnorm_layers(layer):
    stack = [layer]
    while stack:
        current = stack.pop()
        if isinstance(current, keras.layers.BatchNormalization):
            yield current
        stack.extend(getattr(current, "layers", []) or [])


def recompile_from_model(model):
    """Compile ``model`` again from its public state: its own optimizer object and loss objects
    (``model.loss``, so that auxiliary-weight variables stay the ones a callback sets) and the
    metrics and options of ``model.get_compile_config()``.

    ``kerasmed.training.compile.Compilation.recompile`` recompiles a model it compiled with
    the very arguments it kept; this is the fallback for a model compiled by hand.
    """
    kwargs = keras.saving.deserialize_keras_object(model.get_compile_config() or {})
    kwargs["loss"] = model.loss
    kwargs["optimizer"] = model.optimizer
    model.compile(**kwargs)


def unfreeze_encoder(model, encoder=ENCODER_NAME, *, keep_batchnorm_frozen=True,
                     recompile=True):
    """Make the encoder trainable; returns the variables that became trainable.

    If the model is compiled and ``recompile`` is not False, its optimizer is rebuilt in place
    (state kept, see the module docstring) and the model recompiled once with it, so that the
    next ``fit`` / ``train_on_batch`` trains the encoder too: by ``recompile(model)`` when it is
    a function (``Compilation.recompile``, the experiment's compile contract), else by
    ``recompile_from_model``. Nothing happens if the encoder is already trainable.
    """
    layer = find_encoder(model, encoder)
    if layer.trainable:
        return []
    before = {id(v) for v in model.trainable_variables}
    layer.trainable = True
    if keep_batchnorm_frozen:
        for bn in _batchnorm_layers(layer):
            bn.trainable = False
    new = [v for v in model.trainable_variables if id(v) not in before]
    if recompile and getattr(model, "optimizer", None) is not None and model.compiled:
        rebuild_optimizer(model.optimizer, model.trainable_variables)
        (recompile if callable(recompile) else recompile_from_model)(model)
    return new


class UnfreezeEncoder(keras.callbacks.Callback):
    """Unfreeze a frozen encoder at the start of epoch ``epoch`` (counted from 0), once.

    Epochs before ``epoch`` train with the encoder frozen; from ``epoch`` on it trains too. The
    model is recompiled exactly once, at the unfreeze (see the module docstring for what the
    optimizer keeps). Resuming a run (``initial_epoch`` past ``epoch``) with a still-frozen
    encoder unfreezes it at the first epoch; an already trainable encoder is left alone.

    Args:
        epoch: the first epoch (0-based, as ``fit`` counts) that trains the encoder.
        encoder: the encoder layer or its name (kerasmed's backbone networks: ``"encoder"``).
        keep_batchnorm_frozen: leave the encoder's BatchNormalization layers in inference mode.
        verbose: print a line when unfreezing.
        batch: one training batch, ``(x, y)``, or None. The recompile at the unfreeze makes
            new loss and metric objects; given a batch, their state is built from it before
            the new step is traced (``kerasmed.training.tracing``), so that TensorFlow traces
            it once, not twice (twice with a metric named by a string or a model with several
            outputs). ``kerasmed-train`` sets it to the run's first batch.
        recompile: how the model is compiled again at the unfreeze: a function of the model
            (``kerasmed-train`` passes its compile contract's ``Compilation.recompile``), or
            None for ``recompile_from_model`` (the model's own optimizer, loss and compile
            config).
    """

    def __init__(self, epoch, encoder=ENCODER_NAME, keep_batchnorm_frozen=True, verbose=1,
                 batch=None, recompile=None):
        super().__init__()
        if int(epoch) < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)
        self.encoder = encoder
        self.keep_batchnorm_frozen = keep_batchnorm_frozen
        self.verbose = verbose
        self.batch = batch
        self.recompile = recompile
        self.unfrozen_at = None

    def on_train_begin(self, logs=None):
        find_encoder(self.model, self.encoder)  # fail early on a model without an encoder
        if keras.backend.backend() == "jax" and encoder_is_frozen(self.model, self.encoder):
            raise RuntimeError("UnfreezeEncoder cannot change trainable weights inside a JAX "
                               "fit(); call fit() twice with unfreeze_encoder(model) between "
                               "(see kerasmed.training.unfreeze)")

    def on_epoch_begin(self, epoch, logs=None):
        if epoch < self.epoch or not encoder_is_frozen(self.model, self.encoder):
            return
        new = unfreeze_encoder(self.model, self.encoder,
                               keep_batchnorm_frozen=self.keep_batchnorm_frozen,
                               recompile=self.recompile or True)
        if self.batch is not None:
            build_training_state(self.model, self.batch)
        # fit() calls self.train_function directly; compile() reset it.
        self.model.make_train_function()
        self.unfrozen_at = epoch
        if self.verbose:
            count = sum(int(keras.ops.size(v)) for v in new)
            print(f"\nEpoch {epoch + 1}: UnfreezeEncoder: encoder trainable "
                  f"({count:,} more trainable parameters); model recompiled once")
