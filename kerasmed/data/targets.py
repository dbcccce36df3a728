"""Training targets made from instance masks: the per-object distance map Kidney-SegNet regresses.

Instance masks are 2-D integer arrays: 0 background, one positive label per object (labels need
not be consecutive). ``distance_map`` is the DIST target of Naylor et al., "Segmentation of
Nuclei in Histopathology Images by Deep Regression of the Distance Map", IEEE TMI 2019. The
post-processing that turns predictions back into objects is
``kerasmed.evaluation.instances``; the object scores are ``kerasmed.evaluation.object_scores``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["as_labels", "distance_map"]


def as_labels(array, what="instance mask") -> np.ndarray:
    """``array`` as an int64 ``(H, W)`` label image (a trailing axis of 1 dropped); raises
    ``ValueError`` naming ``what`` for another shape, non-integer or negative labels."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"{what} must be 2-D (H, W), got shape {array.shape}")
    if array.dtype.kind == "f":
        if not np.all(np.equal(np.mod(array, 1), 0)):
            raise ValueError(f"{what} must hold integer labels")
        array = array.astype(np.int64)
    if array.dtype.kind == "b":
        array = array.astype(np.int64)
    if array.size and array.min() < 0:
        raise ValueError(f"{what} labels must be >= 0")
    return array.astype(np.int64, copy=False)



def distance_map(instances, normalize=True) -> np.ndarray:
    """Distance-map target of an instance mask; returns float32 ``(H, W)``.

    Each pixel of an object holds its Euclidean distance to the nearest pixel outside that
    object (another object counts as outside, so touching objects keep separate peaks; the
    image border counts as outside too). With ``normalize`` each object's distances are divided
    by its own maximum, so every object peaks at 1 whatever its size; background is 0.
    """
    labels = as_labels(instances)
    out = np.zeros(labels.shape, dtype=np.float64)
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        inside = labels[box] == label
        dist = ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
        if normalize:
            dist = dist / dist[inside].max()
        out[box][inside] = dist[inside]
    return out.astype(np.float32)
