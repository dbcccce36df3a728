"""Pixel scores of one predicted mask against its ground truth, and their summary over images.

``score_masks`` gives Dice, IoU, precision, recall and the boundary scores of
``kerasmed.evaluation.surface`` (HD95, ASSD, NSD); the empty-mask conventions of the overlap
scores are those of kerasmed's Keras metrics (``kerasmed.metrics``). docs/evaluation.md
defines every score.

The lists of score names live here and nowhere else: ``PIXEL_SCORES`` (the columns of a
binary evaluation), ``COUNT_SCORES`` (those computed from pixel counts, which can be pooled
over images and classes) and ``LOWER_IS_BETTER``.
"""

from __future__ import annotations

import math

import numpy as np

from kerasmed.evaluation.surface import SURFACE_SCORES, hd95, surface_scores

__all__ = ["hd95", "score_masks", "scores_from_counts", "summarise", "PIXEL_SCORES",
           "COUNT_SCORES", "LOWER_IS_BETTER", "base_score", "lower_is_better"]

COUNT_SCORES = ("dice", "iou", "precision", "recall")
PIXEL_SCORES = COUNT_SCORES + SURFACE_SCORES
#: Distances: a smaller value is the better one (kerasmed-compare's wins and losses).
LOWER_IS_BETTER = ("hd95", "assd")


def base_score(column: str) -> str:
    """The score a per_image.csv column holds: ``"hd95"`` for ``hd95``, ``hd95_class_2`` and
    ``hd95_macro`` (``kerasmed.evaluation.multiclass``' columns)."""
    return column.split("_class_")[0].removesuffix("_macro")


def lower_is_better(column: str) -> bool:
    """Whether a smaller value of the score in ``column`` is better (a distance)."""
    return base_score(column) in LOWER_IS_BETTER


def scores_from_counts(tp, fp, fn) -> dict:
    """Dice, IoU, precision and recall from true positive, false positive and false negative
    pixel counts (of one mask, or summed over images or classes).

    Empty-mask conventions (the same as kerasmed's Keras metrics): with nothing predicted and
    nothing to find every score is 1; precision of an empty prediction is 0 when there was
    something to find, and recall of an empty truth is 0 when something was predicted.
    """
    tp, fp, fn = float(tp), float(fp), float(fn)
    p, t = tp + fp, tp + fn
    both_empty = p == 0 and t == 0
    return {
        "dice": 1.0 if both_empty else 2 * tp / (p + t),
        "iou": 1.0 if both_empty else tp / (p + t - tp),
        "precision": (1.0 if t == 0 else 0.0) if p == 0 else tp / p,
        "recall": (1.0 if p == 0 else 0.0) if t == 0 else tp / t,
    }


def score_masks(pred: np.ndarray, truth: np.ndarray, spacing=None,
                tolerance: float | None = None) -> dict:
    """Dice, IoU, precision, recall, HD95, ASSD and NSD of a binary prediction against its
    ground truth (``PIXEL_SCORES``, in that order).

    The overlap scores follow ``scores_from_counts``; the boundary scores
    ``kerasmed.evaluation.surface.surface_scores``, in the units of ``spacing`` (``(row, col)``
    pixel size; ``None``: pixels) with the NSD ``tolerance`` in the same units.
    """
    pred, truth = np.asarray(pred).astype(bool), np.asarray(truth).astype(bool)
    tp = int(np.logical_and(pred, truth).sum())
    scores = scores_from_counts(tp, int(pred.sum()) - tp, int(truth.sum()) - tp)
    scores.update(surface_scores(pred, truth, tolerance, spacing))
    return scores


def summarise(table, columns) -> dict:
    """``{column: {"mean", "std", "n"}}`` over a per-image table, NaN values left out."""
    summary = {}
    for col in columns:
        values = table[col].dropna()
        summary[col] = {"mean": float(values.mean()) if len(values) else math.nan,
                        "std": float(values.std(ddof=0)) if len(values) else math.nan,
                        "n": int(len(values))}
    return summary
