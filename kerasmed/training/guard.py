"""Stop a diverging run before it leaves a poisoned checkpoint.

``DivergenceGuard`` replaces Keras' ``TerminateOnNaN``: a non-finite training loss (after any
batch) or non-finite weights (after any epoch) stop training and are recorded, with the epoch,
the batch and the last finite loss, so that the run ends ``diverged`` rather than looking
successful. The history logger and the checkpoint callback consult it and write nothing of a
diverged epoch: no checkpoint with non-finite weights is ever written or kept as best.
"""

from __future__ import annotations

import math

import keras
import numpy as np

__all__ = ["DivergenceGuard", "non_finite_weights"]


def non_finite_weights(model) -> list[str]:
    """Paths of the model's variables that hold NaN or infinity."""
    return [v.path for v in model.weights
            if not np.isfinite(keras.ops.convert_to_numpy(v)).all()]


class DivergenceGuard(keras.callbacks.Callback):
    """Stop training at a non-finite loss or non-finite weights, and say where.

    ``diverged`` is ``None`` while training is sound, then a dict: ``epoch`` and ``batch``
    (counted from 1; ``batch`` is ``None`` when the weights were found non-finite at the end
    of an epoch), ``loss`` (the value seen), ``last_finite_loss`` and, for weights, up to five
    ``weights`` paths.
    """

    def __init__(self):
        super().__init__()
        self.diverged = None
        self.last_finite_loss = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if math.isfinite(loss):
            self.last_finite_loss = loss
            return
        if self.diverged is None:
            self.diverged = {"epoch": self._epoch + 1, "batch": batch + 1, "loss": str(loss),
                             "last_finite_loss": self.last_finite_loss}
        self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.diverged is not None:
            return
        bad = non_finite_weights(self.model)
        if bad:
            self.diverged = {"epoch": epoch + 1, "batch": None, "loss": None,
                             "last_finite_loss": self.last_finite_loss, "weights": bad[:5]}
            self.model.stop_training = True
