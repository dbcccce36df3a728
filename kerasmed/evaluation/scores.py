"""Pixel scores of one predicted mask against its ground truth, and their summary over images.

``score_masks`` gives Dice, IoU, precision, recall and the 95th-percentile Hausdorff distance;
the empty-mask conventions are those of kerasmed's Keras metrics (``kerasmed.metrics``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

__all__ = ["hd95", "score_masks", "summarise", "PIXEL_SCORES"]

PIXEL_SCORES = ("dice", "iou", "precision", "recall", "hd95")


def _boundary(mask):
    return mask & ~ndimage.binary_erosion(mask, structure=np.ones((3, 3)), border_value=0)


def hd95(pred: np.ndarray, truth: np.ndarray) -> float:
    """95th-percentile symmetric Hausdorff distance (pixels) between two binary masks' outlines.

    Returns 0.0 when both masks are empty and ``nan`` when exactly one is (the distance is
    undefined; means over a dataset then skip that image, and the count of such images is
    reported beside them).
    """
    pred, truth = pred.astype(bool), truth.astype(bool)
    if not pred.any() and not truth.any():
        return 0.0
    if not pred.any() or not truth.any():
        return float("nan")
    bp, bt = _boundary(pred), _boundary(truth)
    to_truth = ndimage.distance_transform_edt(~bt)[bp]
    to_pred = ndimage.distance_transform_edt(~bp)[bt]
    return float(max(np.percentile(to_truth, 95), np.percentile(to_pred, 95)))


def score_masks(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Dice, IoU, precision, recall and HD95 of a binary prediction against its ground truth.

    Empty-mask conventions (the same as kerasmed's Keras metrics): an empty prediction of an
    empty truth scores 1 for every overlap score; precision of an empty prediction is 1 when the
    truth is empty too and 0 otherwise, and recall of an empty truth likewise.
    """
    pred, truth = pred.astype(bool), truth.astype(bool)
    tp = float(np.logical_and(pred, truth).sum())
    p, t = float(pred.sum()), float(truth.sum())
    both_empty = p == 0 and t == 0
    return {
        "dice": 1.0 if both_empty else 2 * tp / (p + t),
        "iou": 1.0 if both_empty else tp / (p + t - tp),
        "precision": (1.0 if t == 0 else 0.0) if p == 0 else tp / p,
        "recall": (1.0 if p == 0 else 0.0) if t == 0 else tp / t,
        "hd95": hd95(pred, truth),
    }


def summarise(table, columns) -> dict:
    """``{column: {"mean", "std", "n"}}`` over a per-image table, NaN values left out."""
    summary = {}
    for col in columns:
        values = table[col].dropna()
        summary[col] = {"mean": float(values.mean()) if len(values) else math.nan,
                        "std": float(values.std(ddof=0)) if len(values) else math.nan,
                        "n": int(len(values))}
    return summary
