"""Cleaning a predicted mask before it is scored or written: keep the largest component, remove
small objects, fill holes.

nnU-Net (Isensee et al., Nature Methods 2021, ``nnunetv2/postprocessing``) tests "keep only the
largest connected component" on the cross-validation folds and keeps it only where the folds'
foreground Dice improves; kerasmed does the same for these three operations
(``kerasmed.experiment.postselect``), and the choice is recorded in the experiment's
``postprocess.mask`` section so that evaluation and prediction apply exactly what was chosen.
Every operation is off by default: a mask is scored as the network predicted it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

import numpy as np
from scipy import ndimage

__all__ = ["MaskCleaning", "mask_cleaning_defaults", "foreground_dice", "select_cleaning",
           "min_size_candidates"]

# 8-connectivity, as kerasmed counts objects everywhere else (skimage.measure.label's default
# for 2-D images with connectivity=2).
_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class MaskCleaning:
    """Operations applied, in this order, to each foreground class of a predicted mask.

    Attributes:
        fill_holes: fill background regions enclosed by foreground.
        min_size: remove connected components smaller than this many pixels (0: none).
        keep_largest: keep only the largest connected component of each class.
    """

    fill_holes: bool = False
    min_size: int = 0
    keep_largest: bool = False

    def __post_init__(self):
        if isinstance(self.min_size, bool) or not isinstance(self.min_size, int) \
                or self.min_size < 0:
            raise ValueError(f"postprocess.mask.min_size must be an integer >= 0, got "
                             f"{self.min_size!r}")

    @property
    def active(self) -> bool:
        """Whether any operation changes a mask."""
        return self.fill_holes or self.min_size > 0 or self.keep_largest

    def record(self) -> dict:
        """The settings as a JSON-ready dict (the ``postprocess.mask`` section)."""
        return asdict(self)

    def _binary(self, foreground: np.ndarray) -> np.ndarray:
        out = foreground
        if self.fill_holes:
            out = ndimage.binary_fill_holes(out)
        if self.min_size > 0 or self.keep_largest:
            labels, n = ndimage.label(out, structure=_EIGHT)
            if n:
                areas = np.bincount(labels.ravel())[1:]
                keep = areas >= self.min_size
                if self.keep_largest:
                    largest = np.zeros_like(keep)
                    largest[int(np.argmax(np.where(keep, areas, -1)))] = keep.any()
                    keep = largest
                out = np.concatenate([[False], keep])[labels]
        return out

    def __call__(self, mask: np.ndarray) -> np.ndarray:
        """The cleaned mask, of ``mask``'s dtype: a binary mask (any non-zero is foreground,
        kept as 1) or a class-index mask (each class > 0 cleaned on its own; pixels a class
        loses become background)."""
        if not self.active:
            return mask
        classes = [v for v in np.unique(mask) if v != 0]
        out = np.zeros_like(mask)
        for value in classes:
            out[self._binary(mask == value)] = value
        return out


def mask_cleaning_defaults() -> dict:
    """``{setting: default}`` of every ``MaskCleaning`` setting (the schema's defaults)."""
    return {f.name: f.default for f in fields(MaskCleaning)}


def foreground_dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice of the foreground: of ``> 0`` for binary masks; for class-index masks the mean over
    the classes > 0 present in either mask. Both empty: 1.0 (``kerasmed.evaluation.scores``'
    convention)."""
    classes = sorted((set(np.unique(pred).tolist()) | set(np.unique(truth).tolist())) - {0})
    if not classes:
        return 1.0
    dices = []
    for value in classes:
        p, t = pred == value, truth == value
        dices.append(2.0 * float(np.logical_and(p, t).sum()) / float(p.sum() + t.sum()))
    return float(np.mean(dices))


def min_size_candidates(truths) -> list[int]:
    """Sizes worth trying for ``min_size``: a quarter and a half of the smallest true object's
    area (pixels, 8-connected) over ``truths``; a smaller object is more likely a false
    detection than a real one. Empty when the truths hold no object."""
    smallest = None
    for truth in truths:
        for value in (v for v in np.unique(truth) if v != 0):
            labels, n = ndimage.label(truth == value, structure=_EIGHT)
            if n:
                area = int(np.bincount(labels.ravel())[1:].min())
                smallest = area if smallest is None else min(smallest, area)
    if smallest is None:
        return []
    return sorted({max(1, smallest // 4), max(1, smallest // 2)} - {0})


def _mean_dice(cleaning, preds, truths):
    return float(np.mean([foreground_dice(cleaning(p), t) for p, t in zip(preds, truths)]))


def select_cleaning(preds, truths, min_sizes=None, tolerance: float = 1e-4):
    """Choose the ``MaskCleaning`` that raises the mean foreground Dice of ``preds`` against
    ``truths`` (lists of masks, e.g. every fold's validation predictions), as nnU-Net chooses
    its post-processing on the cross-validation folds.

    Greedy, one operation at a time, each kept only when the mean Dice rises by more than
    ``tolerance`` over the choice so far: hole filling, then the largest component, then (when
    the largest component was not kept) removing objects under each of ``min_sizes`` (default:
    ``min_size_candidates(truths)``), the best of them.

    Returns ``(cleaning, tried)``: the chosen ``MaskCleaning`` and one dict per setting tried
    (``{"settings", "dice", "kept"}``, the first being no cleaning at all).
    """
    preds, truths = list(preds), list(truths)
    if not preds or len(preds) != len(truths):
        raise ValueError(f"select_cleaning needs as many predictions as truths (at least one), "
                         f"got {len(preds)} and {len(truths)}")
    min_sizes = min_size_candidates(truths) if min_sizes is None else list(min_sizes)
    chosen = MaskCleaning()
    best = _mean_dice(chosen, preds, truths)
    tried = [{"settings": chosen.record(), "dice": best, "kept": True}]

    def attempt(candidates):
        nonlocal chosen, best
        scored = [(c, _mean_dice(c, preds, truths)) for c in candidates]
        top = max(scored, key=lambda item: item[1]) if scored else None
        for candidate, dice in scored:
            kept = top is not None and candidate is top[0] and dice > best + tolerance
            tried.append({"settings": candidate.record(), "dice": dice, "kept": kept})
        if top is not None and top[1] > best + tolerance:
            chosen, best = top

    attempt([replace(chosen, fill_holes=True)])
    attempt([replace(chosen, keep_largest=True)])
    if not chosen.keep_largest:
        attempt([replace(chosen, min_size=int(m)) for m in min_sizes if m > 0])
    return chosen, tried
