"""Object-level scores of an instance mask against the true one.

- ``aggregated_jaccard_index`` (AJI, Kumar et al., IEEE TMI 2017);
- ``object_f1`` (a predicted object detects a true one when their IoU exceeds 0.5) and the
  detection counts it comes from (``object_detection_counts``, ``f1_from_counts``);
- ``object_dice`` (the GlaS challenge's object-level Dice, Sirinukunwattana et al., Medical
  Image Analysis 2017);
- ``object_metrics``: all of them at once, with the panoptic quality of
  ``kerasmed.evaluation.panoptic``.

The masks come from ``kerasmed.evaluation.instances`` (or a dataset's labels). All functions
take NumPy arrays of shape ``(H, W)`` (a trailing axis of size 1 is dropped); labels need not
be consecutive.
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import relabel_sequential

from kerasmed.data.targets import as_labels

__all__ = ["overlaps", "iou_matrix", "aggregated_jaccard_index", "object_f1", "f1_from_counts",
           "object_detection_counts", "object_dice", "object_metrics"]


def overlaps(true, pred):
    """Intersections (n_true, n_pred) and the objects' areas, with labels made consecutive."""
    t = as_labels(true, "true instance mask")
    p = as_labels(pred, "predicted instance mask")
    if t.shape != p.shape:
        raise ValueError(f"instance masks differ in shape: {t.shape} vs {p.shape}")
    t = relabel_sequential(t)[0]
    p = relabel_sequential(p)[0]
    n_true, n_pred = int(t.max()), int(p.max())
    counts = np.bincount((t * (n_pred + 1) + p).ravel(), minlength=(n_true + 1) * (n_pred + 1))
    counts = counts.reshape(n_true + 1, n_pred + 1)
    inter = counts[1:, 1:].astype(np.float64)
    true_area = counts[1:, :].sum(axis=1).astype(np.float64)
    pred_area = counts[:, 1:].sum(axis=0).astype(np.float64)
    return inter, true_area, pred_area


def iou_matrix(inter, true_area, pred_area):
    """``(iou, union)``, both ``(n_true, n_pred)``, from ``overlaps``' figures (IoU 0 where
    the union is empty)."""
    union = true_area[:, None] + pred_area[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0), union


def aggregated_jaccard_index(true, pred) -> float:
    """Aggregated Jaccard index (Kumar et al. 2017).

    Each true object G is paired with the predicted object S of highest IoU among those it
    overlaps; AJI = sum |G and S| / (sum |G or S| + the areas of predicted objects paired with
    no true object). A true object overlapping no prediction adds its area to the denominator
    (HoVer-Net's reading of the original code). 1.0 when both masks are empty.
    """
    inter, true_area, pred_area = overlaps(true, pred)
    if not len(true_area) and not len(pred_area):
        return 1.0
    iou, union = iou_matrix(inter, true_area, pred_area)
    overlap, total = 0.0, 0.0
    used = np.zeros(len(pred_area), bool)
    for i in range(len(true_area)):
        if not len(pred_area) or inter[i].max() == 0:
            total += true_area[i]
            continue
        j = int(np.argmax(iou[i]))
        overlap += inter[i, j]
        total += union[i, j]
        used[j] = True
    total += pred_area[~used].sum()
    return float(overlap / total) if total else 1.0


def object_detection_counts(true, pred, iou_threshold=0.5):
    """``(tp, fp, fn)``: a predicted object detects a true one when their IoU exceeds
    ``iou_threshold`` (>= 0.5, so that each object has at most one partner)."""
    if iou_threshold < 0.5:
        raise ValueError("iou_threshold must be >= 0.5 so that matches are one-to-one")
    inter, true_area, pred_area = overlaps(true, pred)
    iou, _ = iou_matrix(inter, true_area, pred_area)
    tp = int((iou > iou_threshold).sum())
    return tp, len(pred_area) - tp, len(true_area) - tp


def f1_from_counts(tp, fp, fn) -> float:
    """F1 = 2 TP / (2 TP + FP + FN); 1.0 when there is nothing to find and nothing found.
    Summing the counts of several images first gives the pooled F1 the GlaS challenge reports."""
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator else 1.0


def object_f1(true, pred, iou_threshold=0.5) -> float:
    """Object-level F1 = 2 TP / (2 TP + FP + FN) with IoU > ``iou_threshold`` matches;
    1.0 when both masks are empty."""
    return f1_from_counts(*object_detection_counts(true, pred, iou_threshold))


def object_dice(true, pred) -> float:
    """Object-level Dice of the GlaS challenge (Sirinukunwattana et al. 2017).

    0.5 * [sum_i (|G_i| / sum |G|) Dice(G_i, S*(G_i)) + sum_j (|S_j| / sum |S|) Dice(G*(S_j), S_j)]
    where S*(G_i) is the predicted object overlapping G_i most (by area; Dice 0 when none does)
    and G*(S_j) likewise. 1.0 when both masks are empty, 0.0 when only one is.
    """
    inter, true_area, pred_area = overlaps(true, pred)
    if not len(true_area) and not len(pred_area):
        return 1.0
    if not len(true_area) or not len(pred_area):
        return 0.0
    dice = 2 * inter / (true_area[:, None] + pred_area[None, :])
    best_pred = np.argmax(inter, axis=1)
    best_true = np.argmax(inter, axis=0)
    rows = np.arange(len(true_area))
    cols = np.arange(len(pred_area))
    g = np.where(inter[rows, best_pred] > 0, dice[rows, best_pred], 0.0)
    s = np.where(inter[best_true, cols] > 0, dice[best_true, cols], 0.0)
    return float(0.5 * ((true_area * g).sum() / true_area.sum()
                        + (pred_area * s).sum() / pred_area.sum()))


def object_metrics(true, pred, iou_threshold=0.5) -> dict:
    """AJI, object F1 (with precision and recall), object Dice, panoptic quality (PQ, SQ, RQ,
    ``kerasmed.evaluation.panoptic``) and the counts they come from (TP, FP, FN and the matched
    pairs' IoU sum, which pooled scores add up over images), as a dict."""
    # Imported here: the panoptic module builds on this one's overlap counts.
    from kerasmed.evaluation.panoptic import panoptic_quality

    panoptic = panoptic_quality(true, pred, iou_threshold)
    tp, fp, fn = panoptic["tp"], panoptic["fp"], panoptic["fn"]
    return {
        "aji": aggregated_jaccard_index(true, pred),
        "object_f1": f1_from_counts(tp, fp, fn),
        "object_precision": tp / (tp + fp) if tp + fp else 1.0,
        "object_recall": tp / (tp + fn) if tp + fn else 1.0,
        "object_dice": object_dice(true, pred),
        **panoptic,
    }
