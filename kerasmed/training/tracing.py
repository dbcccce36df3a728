"""Create a compiled model's training state before its train step is first traced.

Keras 3 on TensorFlow, without a distribution strategy, creates whatever state is still
missing while it traces the first train step: the optimizer's slot variables, the loss tracker
of each output of a model with several, and the variables of metrics named by a string
("accuracy"). ``tf.function`` then traces the whole step a second time, to lift those
variables out of the graph. Created beforehand, the step is traced once, and the first
``fit`` call takes markedly less time (``benchmarks/first_step.py``; the figures are in
``benchmarks/RESULTS.md``). On JAX and PyTorch,
and under a ``tf.distribute`` strategy, Keras builds the same state before tracing, so these
calls change nothing there. ``UnfreezeEncoder`` builds it again after its recompile.
"""

from __future__ import annotations

from kerasmed.keras_private import symbolic_build

__all__ = ["build_optimizer", "build_training_state"]


def build_optimizer(model):
    """Create the slot variables of ``model``'s optimizer for its trainable variables (a
    compiled model). Returns the model."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return model


def build_training_state(model, batch):
    """Create the training state of a compiled ``model`` that Keras would otherwise create
    inside its first traced step, from one batch of its training data, ``(x, y)`` or
    ``(x, y, sample_weight)``: the optimizer's slots, the loss trackers, the metrics.

    This is the symbolic build Keras itself runs first under a distribution strategy
    (``kerasmed.keras_private.symbolic_build``: shapes only, no step is run, so it costs a
    fraction of the trace it saves), in the model's strategy scope so that under
    tf.distribute the variables are the strategy's. A Keras without it is left to build the
    state in the traced step, as before. Returns the model.
    """
    build_optimizer(model)
    symbolic_build(model, batch)
    return model
