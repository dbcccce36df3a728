"""Panoptic quality of an instance mask: PQ = SQ x RQ (Kirillov et al., "Panoptic
Segmentation", CVPR 2019), the score of the MoNuSAC, Lizard and CoNIC nuclei challenges.

A predicted object matches a true one when their IoU exceeds the threshold (0.5: matches are
then unique, as ``kerasmed.evaluation.object_scores.object_detection_counts`` counts them):

- RQ (recognition quality) = TP / (TP + FP / 2 + FN / 2), the object F1 at that threshold;
- SQ (segmentation quality) = the mean IoU of the matched pairs;
- PQ = (sum of the matched pairs' IoU) / (TP + FP / 2 + FN / 2) = SQ x RQ.

``pooled_panoptic_quality`` sums the counts and IoUs of many images first, as the CoNIC
challenge scores a whole test set. The reference implementation is MONAI's
``compute_panoptic_quality`` (``tests/test_eval_panoptic.py``); docs/evaluation.md states where
the empty-mask rules differ.
"""

from __future__ import annotations

from kerasmed.evaluation.choices import PANOPTIC_SCORES
from kerasmed.evaluation.object_scores import iou_matrix, overlaps

__all__ = ["PANOPTIC_SCORES", "panoptic_counts", "panoptic_from_counts", "panoptic_quality",
           "pooled_panoptic_quality"]


def panoptic_counts(true, pred, iou_threshold: float = 0.5) -> dict:
    """``{"tp", "fp", "fn", "matched_iou"}`` of two instance masks: the matches (IoU above
    ``iou_threshold``, at least 0.5 so that each object has at most one partner), the
    unmatched objects of each side and the sum of the matched pairs' IoU."""
    if iou_threshold < 0.5:
        raise ValueError("iou_threshold must be >= 0.5 so that matches are one-to-one")
    inter, true_area, pred_area = overlaps(true, pred)
    iou, _ = iou_matrix(inter, true_area, pred_area)
    matched = iou > iou_threshold
    tp = int(matched.sum())
    return {"tp": tp, "fp": len(pred_area) - tp, "fn": len(true_area) - tp,
            "matched_iou": float(iou[matched].sum())}


def panoptic_from_counts(tp, fp, fn, matched_iou) -> dict:
    """``{"pq", "sq", "rq"}`` from match counts and the matched pairs' IoU sum.

    Both masks empty (no objects at all): 1 for each (nothing to find, nothing found, as
    object F1). Objects but no match: SQ = 0 (the references' ``iou_sum / (tp + eps)``), so
    PQ = RQ = 0.
    """
    denominator = tp + 0.5 * fp + 0.5 * fn
    if denominator == 0:
        return {"pq": 1.0, "sq": 1.0, "rq": 1.0}
    return {"pq": matched_iou / denominator, "sq": matched_iou / tp if tp else 0.0,
            "rq": tp / denominator}


def panoptic_quality(true, pred, iou_threshold: float = 0.5) -> dict:
    """PQ, SQ and RQ of a predicted instance mask against the true one, with the counts they
    come from: ``{"pq", "sq", "rq", "tp", "fp", "fn", "matched_iou"}``."""
    counts = panoptic_counts(true, pred, iou_threshold)
    return {**panoptic_from_counts(**counts), **counts}


def pooled_panoptic_quality(rows) -> dict:
    """PQ, SQ and RQ of many images' objects pooled: ``rows`` are dicts (or a DataFrame's
    records) with ``tp``, ``fp``, ``fn`` and ``matched_iou``. Returns the scores and the sums."""
    rows = list(rows)
    tp, fp, fn = (int(sum(r[k] for r in rows)) for k in ("tp", "fp", "fn"))
    matched_iou = float(sum(r["matched_iou"] for r in rows))
    return {**panoptic_from_counts(tp, fp, fn, matched_iou), "tp": tp, "fp": fp, "fn": fn,
            "matched_iou": matched_iou}
