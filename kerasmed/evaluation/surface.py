"""Boundary scores of a binary mask against its ground truth, in pixels or physical units.

Every score here compares the two masks' outlines: an outline pixel is a mask pixel with a
4-connected neighbour outside the mask (the mask minus its erosion by a cross; pixels on the
image border count as outline). The distance of an outline pixel to the other outline is the
Euclidean distance between pixel centres, scaled by the pixel size ``spacing`` (row, column)
when it is known. These are the conventions of MONAI's ``compute_hausdorff_distance``,
``compute_average_surface_distance`` and ``compute_surface_dice`` without sub-voxel edges
(``monai.metrics.utils.get_mask_edges``: ``binary_erosion(seg) ^ seg``), which
``tests/test_eval_surface.py`` checks them against; docs/evaluation.md states where the
empty-mask rules differ.

- ``hd95``: the larger of the two directed 95th percentiles of outline-to-outline distances
  (Huttenlocher et al., IEEE TPAMI 1993, at the 95th percentile as in the Medical
  Segmentation Decathlon);
- ``assd``: the average symmetric surface distance, the mean of both directions' distances
  pooled (Heimann et al., IEEE TMI 2009);
- ``nsd``: the normalized surface Dice at a tolerance, the share of both outlines lying within
  the tolerance of the other (Nikolov et al., arXiv:1809.04430, 2018; DeepMind's
  ``surface-distance``, MONAI's ``compute_surface_dice``).

The pixel size comes from ``data.spacing``, from ``kerasmed-eval --spacing`` or from TIFF
resolution tags (``tiff_spacing``); ``resolve_spacing`` picks it and says where it came from.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from scipy import ndimage

from kerasmed.evaluation.choices import DEFAULT_TOLERANCE_PIXELS

__all__ = ["SURFACE_SCORES", "DEFAULT_TOLERANCE_PIXELS", "PIXEL_UNIT", "UNNAMED_UNIT",
           "TIFF_UNIT", "outline",
           "surface_distances", "hd95", "assd", "nsd", "surface_scores", "check_spacing",
           "tiff_spacing", "resolve_spacing", "default_tolerance"]

SURFACE_SCORES = ("hd95", "assd", "nsd")
PIXEL_UNIT = "pixel"
#: The unit of a spacing given without naming it (``--spacing`` without ``--spacing-unit``,
#: ``data.spacing``): one name, so that two such evaluations compare.
UNNAMED_UNIT = "unit of the spacing"
#: Spacings read from TIFF resolution tags are converted to micrometres.
TIFF_UNIT = "µm"
_MICROMETRES_PER = {2: 25_400.0, 3: 10_000.0}  # ResolutionUnit: 2 inch, 3 centimetre
_IMAGEJ_UNITS = {"micron": 1.0, "um": 1.0, "µm": 1.0, "\\u00b5m": 1.0, "nm": 1e-3,
                 "mm": 1e3, "cm": 1e4}
_CROSS = ndimage.generate_binary_structure(2, 1)


def outline(mask: np.ndarray) -> np.ndarray:
    """The outline of a binary mask: its pixels with a 4-connected neighbour outside it (or on
    the image border). Returns a boolean array of the mask's shape."""
    mask = np.asarray(mask, dtype=bool)
    # Erosion by a cross, not a 3x3 square: MONAI's get_mask_edges does the same, and the
    # thinner outline is what a contour tracer draws.
    return mask & ~ndimage.binary_erosion(mask, structure=_CROSS, border_value=0)


def surface_distances(pred: np.ndarray, truth: np.ndarray, spacing=None):
    """Distances from each outline pixel of one mask to the nearest outline pixel of the other.

    Returns ``(pred_to_truth, truth_to_pred)``: 1-D float arrays in the units of ``spacing``
    (row, column pixel size; ``None``: pixels), or ``None`` when either mask is empty.
    """
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    if pred.shape != truth.shape:
        raise ValueError(f"masks differ in shape: {pred.shape} vs {truth.shape}")
    if not pred.any() or not truth.any():
        return None
    sampling = None if spacing is None else check_spacing(spacing)
    bp, bt = outline(pred), outline(truth)
    to_truth = ndimage.distance_transform_edt(~bt, sampling=sampling)[bp]
    to_pred = ndimage.distance_transform_edt(~bp, sampling=sampling)[bt]
    return to_truth, to_pred


def _from_distances(distances, tolerance) -> dict:
    """HD95, ASSD and NSD of ``surface_distances``' pair (``None``: a mask is empty, and the
    emptiness flags say which)."""
    to_truth, to_pred = distances
    return {
        "hd95": float(max(np.percentile(to_truth, 95), np.percentile(to_pred, 95))),
        "assd": float((to_truth.sum() + to_pred.sum()) / (len(to_truth) + len(to_pred))),
        "nsd": float(((to_truth <= tolerance).sum() + (to_pred <= tolerance).sum())
                     / (len(to_truth) + len(to_pred))),
    }


def surface_scores(pred: np.ndarray, truth: np.ndarray, tolerance: float | None = None,
                   spacing=None) -> dict:
    """``{"hd95", "assd", "nsd"}`` of a binary prediction against its ground truth, computing
    the outline distances once.

    ``tolerance`` (NSD) is in the units of ``spacing``; ``None``: ``default_tolerance(spacing)``.
    Empty masks: both empty, HD95 = ASSD = 0 and NSD = 1 (nothing to miss, as Dice's 1);
    exactly one empty, HD95 = ASSD = NaN (undefined: means over images skip it and count it)
    and NSD = 0 (no outline agrees).
    """
    pred, truth = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    tolerance = default_tolerance(spacing) if tolerance is None else float(tolerance)
    distances = surface_distances(pred, truth, spacing)
    if distances is not None:
        return _from_distances(distances, tolerance)
    if not pred.any() and not truth.any():
        return {"hd95": 0.0, "assd": 0.0, "nsd": 1.0}
    return {"hd95": math.nan, "assd": math.nan, "nsd": 0.0}


def hd95(pred: np.ndarray, truth: np.ndarray, spacing=None) -> float:
    """95th-percentile symmetric Hausdorff distance between two binary masks' outlines, in
    pixels or the units of ``spacing``: the larger of the two directed 95th percentiles.

    Returns 0.0 when both masks are empty and ``nan`` when exactly one is (the distance is
    undefined; means over a dataset then skip that image, and the count of such images is
    reported beside them).
    """
    return surface_scores(pred, truth, 0.0, spacing)["hd95"]


def assd(pred: np.ndarray, truth: np.ndarray, spacing=None) -> float:
    """Average symmetric surface distance: the mean over both outlines' pixels of the distance
    to the other outline, in pixels or the units of ``spacing``. Returns 0.0 when both masks
    are empty, ``nan`` when exactly one is."""
    return surface_scores(pred, truth, 0.0, spacing)["assd"]


def nsd(pred: np.ndarray, truth: np.ndarray, tolerance: float | None = None,
        spacing=None) -> float:
    """Normalized surface Dice: the outline pixels of both masks within ``tolerance`` of the
    other outline, over all outline pixels (Nikolov et al. 2018). Returns 1.0 when both masks
    are empty, 0.0 when exactly one is."""
    return surface_scores(pred, truth, tolerance, spacing)["nsd"]


def default_tolerance(spacing=None) -> float:
    """The NSD tolerance when none is given: ``DEFAULT_TOLERANCE_PIXELS`` pixels, times the
    largest side of the pixel when its size is known (a tolerance that covers two pixels along
    both axes)."""
    if spacing is None:
        return DEFAULT_TOLERANCE_PIXELS
    return DEFAULT_TOLERANCE_PIXELS * max(check_spacing(spacing))


def check_spacing(value) -> tuple[float, float]:
    """``(row, column)`` pixel size from one number (square pixels) or two; raises
    ``ValueError`` unless each is a finite positive number."""
    values = [value] if np.ndim(value) == 0 else list(value)
    if len(values) not in (1, 2):
        raise ValueError(f"spacing needs 1 or 2 values (row, column), got {len(values)}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ValueError(f"spacing values must be numbers, got {v!r}")
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"spacing values must be finite and positive, got {v}")
        out.append(float(v))
    return (out[0], out[-1])


def tiff_spacing(path) -> tuple[float, float] | None:
    """``(row, column)`` pixel size in micrometres from a TIFF's resolution tags, or ``None``.

    Read only when the unit is stated: ResolutionUnit inch or centimetre (TIFF 6.0, tags 282,
    283 and 296), or ImageJ's ``unit=`` in the ImageDescription with ResolutionUnit none. A
    missing ResolutionUnit is not taken as the specification's default inch: many writers store
    a meaningless 72 dpi that way. Non-TIFF files and unreadable tags give ``None``.
    """
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    from PIL import Image

    try:
        with Image.open(path) as image:
            tags = dict(image.tag_v2)
    except (OSError, ValueError, AttributeError):
        return None
    x, y, unit = tags.get(282), tags.get(283), tags.get(296)
    try:
        x, y = float(x), float(y)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not (math.isfinite(x) and math.isfinite(y) and x > 0 and y > 0):
        return None
    factor = _MICROMETRES_PER.get(unit)
    if factor is None and unit == 1:
        found = re.search(r"^unit=(\S+)$", str(tags.get(270, "")), re.MULTILINE)
        factor = _IMAGEJ_UNITS.get(found.group(1)) if found else None
    if factor is None:
        return None
    # XResolution counts pixels per unit along a row (columns), YResolution down a column.
    return (factor / y, factor / x)


def resolve_spacing(samples, given=None, source: str | None = None, unit: str | None = None):
    """The pixel size of each sample, and a record of where it came from.

    ``given`` (``data.spacing`` or ``--spacing``; named by ``source``, in ``unit``) applies to
    every image. Without it every image's (or, failing that, its mask's) TIFF resolution tags
    give its own size in micrometres, but only when every image has them: mixing pixels and
    micrometres in one mean would be meaningless. Otherwise distances are in pixels.

    Returns ``(spacings, record)``: a list (one ``(row, col)`` or ``None`` per sample) and a
    dict for summary.json: ``source`` (``source``, ``"tiff"`` or ``"none"``), ``unit``,
    ``spacing`` (the distinct spacings) and, when some images but not all had tags, a ``note``.
    """
    samples = list(samples)
    if given is not None:
        spacing = check_spacing(given)
        return [spacing] * len(samples), {"source": source or "given",
                                          "unit": unit or UNNAMED_UNIT,
                                          "spacing": [list(spacing)]}
    found = []
    for sample in samples:
        spacing = tiff_spacing(sample.image)
        if spacing is None and getattr(sample, "mask", None) is not None:
            spacing = tiff_spacing(sample.mask)
        found.append(spacing)
    tagged = sum(s is not None for s in found)
    if samples and tagged == len(samples):
        distinct = sorted({tuple(round(v, 9) for v in s) for s in found})
        return found, {"source": "tiff", "unit": TIFF_UNIT, "spacing": [list(s) for s in distinct]}
    record = {"source": "none", "unit": PIXEL_UNIT, "spacing": None}
    if tagged:
        record["note"] = (f"TIFF resolution tags on {tagged} of {len(samples)} images only: "
                          f"distances in pixels (give --spacing to use physical units)")
    return [None] * len(samples), record
