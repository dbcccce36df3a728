"""Segmentation metrics as registered Keras objects, usable by name in experiment files.

Convention: each metric binarises the prediction (``y_pred > threshold`` in binary mode, the
argmax class in multiclass/sparse mode), scores every image on its own from its hard TP, FP and
FN counts (per class, then the mean over the classes) and reports the mean over all images seen
since the last reset. That is the per-image mean papers report, not a score of all pixels of
the epoch pooled together (which lets large objects dominate). The state is the sum of the
per-image scores and the number of images (weighted by ``sample_weight`` when given).

Empty masks (also the conventions of ``kerasmed.evaluation.score_masks``): an image whose ground
truth and prediction are both empty scores 1 for Dice and IoU, and 0 if only one of them is
empty. Precision of an empty prediction is 1 when the truth is empty too and 0 otherwise;
recall of an empty truth is 1 when the prediction is empty too and 0 otherwise. In multiclass
mode the same holds per class, so a class absent from both truth and prediction scores 1;
``ignore_background=True`` leaves class 0 out of the mean.

``mode`` and ``from_logits`` are as in ``kerasmed.losses``. ``get(spec)`` builds a metric from a
name, a ``{"name": ..., **kwargs}`` dict or an object; ``available()`` lists kerasmed's names.
"""

from __future__ import annotations

import keras
from keras import ops

from kerasmed.losses import check_mode, confusion_sums, lookup, prepare

__all__ = ["Dice", "IoU", "Precision", "Recall", "get", "available"]


class _PerImageMetric(keras.metrics.Metric):
    """Mean over images of a per-image score computed from hard TP, FP and FN counts."""

    def __init__(self, threshold=0.5, mode="binary", from_logits=False, ignore_background=False,
                 name=None, dtype=None):
        check_mode(mode)
        super().__init__(name=name, dtype=dtype)
        self.threshold = float(threshold)
        self.mode = mode
        self.from_logits = bool(from_logits)
        self.ignore_background = bool(ignore_background)
        # float32 state whatever the dtype policy: a float16 sum stops growing past 2048 images.
        self.total = self.add_variable(shape=(), initializer="zeros", name="total",
                                       dtype="float32")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count",
                                       dtype="float32")

    def _binarise(self, y_pred):
        if self.mode == "binary":
            return ops.cast(y_pred > self.threshold, "float32")
        return ops.one_hot(ops.argmax(y_pred, axis=-1), y_pred.shape[-1])

    def scores(self, y_true, y_pred):
        """Return the per-image scores, shape ``(batch,)``, without touching the state."""
        y_true, y_pred = prepare(y_true, y_pred, self.mode, self.from_logits)
        tp, fp, fn = confusion_sums(y_true, self._binarise(y_pred))
        if self.ignore_background and self.mode != "binary":
            tp, fp, fn = tp[:, 1:], fp[:, 1:], fn[:, 1:]
        return ops.mean(self.score(tp, fp, fn), axis=-1)

    def update_state(self, y_true, y_pred, sample_weight=None):
        scores = self.scores(y_true, y_pred)
        if sample_weight is None:
            weights = ops.ones_like(scores)
        else:
            weights = ops.cast(sample_weight, "float32")
            if len(weights.shape) > 1:  # per-pixel weights: an image counts by its mean weight
                weights = ops.mean(weights, axis=tuple(range(1, len(weights.shape))))
            weights = ops.broadcast_to(weights, ops.shape(scores))
        self.total.assign_add(ops.sum(scores * weights))
        self.count.assign_add(ops.sum(weights))

    def score(self, tp, fp, fn):  # pragma: no cover - abstract
        raise NotImplementedError

    def result(self):
        """Return the mean per-image score since the last reset (0 before any image)."""
        return ops.divide_no_nan(self.total, self.count)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold, "mode": self.mode,
                "from_logits": self.from_logits, "ignore_background": self.ignore_background}


def _ratio(numerator, denominator, empty):
    """``numerator / denominator``, and ``empty`` where the denominator is 0."""
    # Divide by a safe denominator so that no NaN appears even in the unused branch of `where`.
    safe = ops.where(denominator > 0, denominator, 1.0)
    return ops.where(denominator > 0, numerator / safe, empty)


def _as_float(condition):
    return ops.cast(condition, "float32")


@keras.saving.register_keras_serializable(package="kerasmed")
class Dice(_PerImageMetric):
    """Mean per-image Dice coefficient (F1), ``2 TP / (2 TP + FP + FN)``; 1 when both empty."""

    def __init__(self, threshold=0.5, mode="binary", name="dice", **kwargs):
        super().__init__(threshold, mode, name=name, **kwargs)

    def score(self, tp, fp, fn):
        return _ratio(2.0 * tp, 2.0 * tp + fp + fn, 1.0)


@keras.saving.register_keras_serializable(package="kerasmed")
class IoU(_PerImageMetric):
    """Mean per-image intersection over union (Jaccard), ``TP / (TP + FP + FN)``; 1 when both
    empty."""

    def __init__(self, threshold=0.5, mode="binary", name="iou", **kwargs):
        super().__init__(threshold, mode, name=name, **kwargs)

    def score(self, tp, fp, fn):
        return _ratio(tp, tp + fp + fn, 1.0)


@keras.saving.register_keras_serializable(package="kerasmed")
class Precision(_PerImageMetric):
    """Mean per-image precision, ``TP / (TP + FP)``; an empty prediction scores 1 if the truth
    is empty too, else 0."""

    def __init__(self, threshold=0.5, mode="binary", name="precision", **kwargs):
        super().__init__(threshold, mode, name=name, **kwargs)

    def score(self, tp, fp, fn):
        return _ratio(tp, tp + fp, _as_float(fn == 0))


@keras.saving.register_keras_serializable(package="kerasmed")
class Recall(_PerImageMetric):
    """Mean per-image recall (sensitivity), ``TP / (TP + FN)``; an empty truth scores 1 if the
    prediction is empty too, else 0."""

    def __init__(self, threshold=0.5, mode="binary", name="recall", **kwargs):
        super().__init__(threshold, mode, name=name, **kwargs)

    def score(self, tp, fp, fn):
        return _ratio(tp, tp + fn, _as_float(fp == 0))


_NAMES = {"dice": Dice, "f1": Dice, "iou": IoU, "jaccard": IoU, "precision": Precision,
          "recall": Recall, "sensitivity": Recall}


def available() -> list[str]:
    """Return the sorted names of kerasmed's own metrics (Keras' names are accepted too)."""
    return sorted(_NAMES)


def get(spec):
    """Return a metric from a name, a ``{"name": ..., **kwargs}`` dict or a metric object.

    kerasmed's names (``available()``) take priority over Keras' (whose ``precision`` and
    ``recall`` pool all pixels of the epoch); the metric is named as spelled, so the history
    columns are ``dice`` / ``val_dice`` and so on. Other names go to Keras. Raises ``ValueError``
    for an unknown name (with the nearest one) or an unknown keyword argument.
    """
    return lookup("metric", spec, _NAMES, {}, keras.metrics, keras.metrics.Metric,
                  default_name=True)
