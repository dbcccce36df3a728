"""Scores of class-index (or one-hot) masks: every pixel score per class, and their averages.

Each class ``c`` is scored as the binary mask ``== c`` against the truth's (``score_masks``:
Dice, IoU, precision, recall, HD95, ASSD, NSD). Over a set of images the per-class scores are
summarised four ways, after segmentation_models_pytorch's ``metrics.functional`` reductions and
scikit-learn's ``average=`` options:

- ``micro``: the pixel counts (TP, FP, FN) of every image and every class summed, then scored
  once (count scores only: distances cannot be pooled);
- ``macro``: each class scored on its counts summed over the images (distances: the class's
  mean over images), then the plain mean over the classes;
- ``weighted``: as macro, each class weighted by its support (its true pixels);
- ``per_image``: each image's mean over the classes (its ``<score>_macro`` column), then the
  mean over the images (smp's ``macro-imagewise``).

The background class (0) is left out unless asked for (``include_background``), as MONAI's
metrics do by default. A class absent from both the truth and the prediction has nothing to
score: its scores are NaN there (left out of every mean, ``null`` in summary.json), as in
nnU-Net's evaluation and MONAI's. docs/evaluation.md gives every rule; the averages are
checked against scikit-learn in ``tests/test_eval_multiclass.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kerasmed.evaluation.scores import COUNT_SCORES, PIXEL_SCORES, score_masks, scores_from_counts

__all__ = ["AVERAGES", "ClassMasks", "class_name", "as_class_index", "included_classes", "score_classes",
           "class_columns", "summarise_classes"]

AVERAGES = ("micro", "macro", "weighted", "per_image")


def class_name(index: int) -> str:
    """The name of class ``index`` in columns and summaries: ``class_<index>``."""
    return f"class_{int(index)}"


def as_class_index(mask, n_classes: int | None = None) -> np.ndarray:
    """An ``(H, W)`` class-index map from a class-index map (``(H, W)`` or ``(H, W, 1)``) or a
    one-hot / probability stack ``(H, W, K)`` (its argmax). Raises ``ValueError`` for an index
    outside ``0..n_classes-1``."""
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] > 1:
        if n_classes is not None and mask.shape[-1] != n_classes:
            raise ValueError(f"a one-hot mask of {mask.shape[-1]} channels for {n_classes} "
                             f"classes")
        mask = np.argmax(mask, axis=-1)
    elif mask.ndim == 3:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(f"a class mask must be (H, W) or (H, W, K), got shape {mask.shape}")
    if n_classes is not None and mask.size and (mask.min() < 0 or mask.max() >= n_classes):
        raise ValueError(f"class indices must be in 0..{n_classes - 1}, found "
                         f"{int(mask.min())}..{int(mask.max())}")
    return mask.astype(np.int64)


def included_classes(n_classes: int, include_background: bool = False) -> list[int]:
    """The classes scored and averaged: ``0..K-1``, or ``1..K-1`` without the background."""
    if n_classes < 2:
        raise ValueError(f"class masks need at least 2 classes, got {n_classes}")
    return list(range(0 if include_background else 1, n_classes))


def score_classes(pred, truth, n_classes: int, include_background: bool = False, spacing=None,
                  tolerance: float | None = None) -> dict:
    """Every pixel score of each included class of one image.

    Returns ``{class index: {score: value, ..., "tp", "fp", "fn"}}``: the scores of
    ``score_masks`` (NaN each when the class is in neither mask) and the class's pixel counts.
    """
    pred = as_class_index(pred, n_classes)
    truth = as_class_index(truth, n_classes)
    if pred.shape != truth.shape:
        raise ValueError(f"masks differ in shape: {pred.shape} vs {truth.shape}")
    out = {}
    for c in included_classes(n_classes, include_background):
        p, t = pred == c, truth == c
        tp = int((p & t).sum())
        counts = {"tp": tp, "fp": int(p.sum()) - tp, "fn": int(t.sum()) - tp}
        if not p.any() and not t.any():
            out[c] = {**dict.fromkeys(PIXEL_SCORES, math.nan), **counts}
        else:
            out[c] = {**score_masks(p, t, spacing, tolerance), **counts}
    return out


def _nanmean(values, weights=None) -> float:
    values = np.asarray(values, np.float64)
    weights = np.ones_like(values) if weights is None else np.asarray(weights, np.float64)
    keep = np.isfinite(values) & (weights > 0)
    if not keep.any():
        return math.nan
    return float(np.average(values[keep], weights=weights[keep]))


def class_columns(per_class: dict) -> dict:
    """One image's per_image.csv columns from ``score_classes``: ``<score>_class_<c>`` for
    every score and class, and ``<score>_macro``, the mean over the classes scored there."""
    row = {}
    for score in PIXEL_SCORES:
        for c, scores in per_class.items():
            row[f"{score}_{class_name(c)}"] = scores[score]
        row[f"{score}_macro"] = _nanmean([s[score] for s in per_class.values()])
    return row


def summarise_classes(images: list[dict]):
    """Per-class scores and their averages over images.

    ``images``: one ``score_classes`` result per image (the same classes in each).

    Returns ``(summary, table)``: ``summary`` has ``per_class`` (per class: ``support``, the
    pixel counts, each count score on the counts pooled over the images, and ``image_mean``:
    each score's ``{"mean", "std", "n"}`` over the images where it is defined) and ``averages``
    (``micro``, ``macro``, ``weighted``, ``per_image``: each ``{score: value}``, NaN where a
    reduction does not apply); ``table`` is the per_class.csv DataFrame, one row per class.
    """
    import pandas as pd

    if not images:
        raise ValueError("no images to summarise")
    classes = list(images[0])
    counts = {c: {k: int(sum(im[c][k] for im in images)) for k in ("tp", "fp", "fn")}
              for c in classes}
    per_class, rows = {}, []
    for c in classes:
        tp, fp, fn = counts[c]["tp"], counts[c]["fp"], counts[c]["fn"]
        pooled = (dict.fromkeys(COUNT_SCORES, math.nan) if tp + fp + fn == 0
                  else scores_from_counts(tp, fp, fn))
        image_mean = {}
        for score in PIXEL_SCORES:
            values = np.array([im[c][score] for im in images], np.float64)
            values = values[np.isfinite(values)]
            image_mean[score] = {"mean": float(values.mean()) if len(values) else math.nan,
                                 "std": float(values.std()) if len(values) else math.nan,
                                 "n": int(len(values))}
        per_class[class_name(c)] = {"index": c, "support": tp + fn, "predicted": tp + fp,
                                    **counts[c], **pooled, "image_mean": image_mean}
        rows.append({"class": class_name(c), "index": c, "support": tp + fn,
                     "predicted": tp + fp, **counts[c], **pooled,
                     **{f"{s}_image_mean": image_mean[s]["mean"] for s in PIXEL_SCORES},
                     **{f"{s}_images": image_mean[s]["n"] for s in PIXEL_SCORES}})
    support = [per_class[class_name(c)]["support"] for c in classes]

    def by_class(score):
        # Count scores from the pooled counts; distances have no counts: their image means.
        if score in COUNT_SCORES:
            return [per_class[class_name(c)][score] for c in classes]
        return [per_class[class_name(c)]["image_mean"][score]["mean"] for c in classes]

    total = {k: sum(counts[c][k] for c in classes) for k in ("tp", "fp", "fn")}
    micro = (dict.fromkeys(COUNT_SCORES, math.nan) if not any(total.values())
             else scores_from_counts(total["tp"], total["fp"], total["fn"]))
    averages = {
        "micro": {s: micro[s] if s in COUNT_SCORES else math.nan for s in PIXEL_SCORES},
        "macro": {s: _nanmean(by_class(s)) for s in PIXEL_SCORES},
        "weighted": {s: _nanmean(by_class(s), support) for s in PIXEL_SCORES},
        "per_image": {s: _nanmean([_nanmean([im[c][s] for c in classes]) for im in images])
                      for s in PIXEL_SCORES},
    }
    return {"per_class": per_class, "averages": averages}, pd.DataFrame(rows)


@dataclass(frozen=True)
class ClassMasks:
    """How an evaluation reads and scores class-index masks.

    Attributes:
        n_classes: K (``data.num_classes``, or the length of ``class_values``).
        class_values: the stored grey level or RGB triple of each class (``data.class_values``;
            ``None``: the stored values are the indices).
        include_background: score and average class 0 too.
    """

    n_classes: int
    class_values: tuple | list | None = None
    include_background: bool = False

    def __post_init__(self):
        included_classes(self.n_classes, self.include_background)  # refuses K < 2

    def read(self, path) -> np.ndarray:
        """The ground truth at ``path`` as class indices (``kerasmed.data.io.read_class_mask``)."""
        from kerasmed.data.io import read_class_mask

        return read_class_mask(path, self.n_classes, self.class_values)

    def classes(self) -> list[int]:
        """The class indices scored."""
        return included_classes(self.n_classes, self.include_background)

    def record(self) -> dict:
        """For summary.json: the class count, the classes scored and the background rule."""
        return {"count": self.n_classes, "scored": [class_name(c) for c in self.classes()],
                "background": "included" if self.include_background else "excluded"}
