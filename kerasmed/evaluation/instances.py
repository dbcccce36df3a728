"""Instance post-processing: a network's output back into objects.

Nuclei and gland networks (Kidney-SegNet, Micro-Net) are judged on objects, not pixels. This
module turns predicted distance maps or probability maps back into instance masks (2-D integer
arrays: 0 background, one positive label per object; the distance-map targets themselves are
made by ``kerasmed.data.targets.distance_map``); ``kerasmed.evaluation.object_scores`` scores
them against ground truth:

- ``watershed_from_distance``: foreground threshold, h-maxima (or threshold) markers and a
  watershed on the distance map (``skimage.morphology.h_maxima``,
  ``skimage.segmentation.watershed``), as in DIST's post-processing;
- ``instances_from_probabilities``: threshold, connected components, small-object removal and
  hole filling (Micro-Net's post-processing).

All functions take NumPy arrays of shape ``(H, W)`` (a trailing axis of size 1 is dropped);
labels need not be consecutive.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.morphology import h_maxima
from skimage.segmentation import relabel_sequential, watershed

__all__ = ["watershed_from_distance", "instances_from_probabilities"]


def _as_map(array, what) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"{what} must be 2-D (H, W), got shape {array.shape}")
    return array


def _remove_small(labels, min_size):
    # skimage renamed remove_small_objects' argument in 0.26; counting areas works everywhere.
    if min_size:
        areas = np.bincount(labels.ravel())
        small = areas < min_size
        small[0] = False
        labels = np.where(small[labels], 0, labels)
    return labels


def watershed_from_distance(distance, foreground_threshold=0.05, h=0.1, marker_threshold=None,
                            min_size=0) -> np.ndarray:
    """Instance mask from a (predicted) distance map by marker-controlled watershed.

    Args:
        distance: ``(H, W)`` distance map (e.g. a ``kidney_segnet`` output, or
            ``distance_map``'s target), larger inside objects.
        foreground_threshold: pixels above it are foreground; the watershed floods only them.
        h: with ``marker_threshold=None``, markers are the h-maxima of the map (regional maxima
            at least ``h`` higher than their surroundings), so a plateau or a shallow bump gives
            one marker, not many. With per-object normalised targets (peaks at 1) 0.1 to 0.3
            works; for raw pixel distances use a few pixels.
        marker_threshold: when given, markers are the connected regions above it instead.
        min_size: objects smaller than this (pixels) are removed.

    Returns:
        An ``int32`` instance mask, labels 1..N in raster order of their first pixel. Foreground
        regions without a marker (too faint for ``h``) stay background.
    """
    d = _as_map(distance, "distance")
    foreground = d > foreground_threshold
    if marker_threshold is not None:
        peaks = d > marker_threshold
    else:
        peaks = h_maxima(d, h).astype(bool)
    # 8-connected, as h_maxima's plateaus: diagonal neighbours belong to one marker.
    markers, _ = ndimage.label(peaks & foreground, structure=np.ones((3, 3), bool))
    labels = _remove_small(watershed(-d, markers, mask=foreground), min_size)
    return relabel_sequential(labels)[0].astype(np.int32)


def instances_from_probabilities(probability, threshold=0.5, min_size=0, fill_holes=True):
    """Instance mask from a foreground probability map: threshold, 8-connected components,
    small-object removal, hole filling; returns ``int32`` labels 1..N."""
    p = _as_map(probability, "probability")
    foreground = p > threshold
    if fill_holes:
        foreground = ndimage.binary_fill_holes(foreground)
    labels, _ = ndimage.label(foreground, structure=np.ones((3, 3), bool))
    labels = _remove_small(labels, min_size)
    return relabel_sequential(labels)[0].astype(np.int32)
