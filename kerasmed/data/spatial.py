"""Bringing images and masks to the model's input size: resize, letterbox, crop, tile, patch.

Images are resized with area interpolation when shrinking and bilinear when enlarging; masks
with centre-aligned nearest neighbour (``INTER_NEAREST_EXACT``), so they keep their label set and
stay aligned with the image.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["FIT_MODES", "resize_image", "resize_mask", "letterbox", "letterbox_window",
           "fit_pair", "crop_pair", "crop_or_pad", "tile_origins", "random_patch_origin",
           "foreground_patch_origin"]

FIT_MODES = ("resize", "pad", "center_crop", "random_crop", "tile", "patches")

_NEAREST = getattr(cv2, "INTER_NEAREST_EXACT", cv2.INTER_NEAREST)


def resize_image(image: np.ndarray, size) -> np.ndarray:
    """Resize ``(H, W[, C])`` to ``size = (height, width)``, keeping the channel axis."""
    h, w = int(size[0]), int(size[1])
    if image.shape[:2] == (h, w):
        return image
    shrink = h <= image.shape[0] and w <= image.shape[1]
    src = image
    if image.dtype not in (np.uint8, np.uint16, np.int16, np.float32, np.float64):
        src = image.astype(np.float32)
    out = cv2.resize(src, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    if image.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out.astype(image.dtype, copy=False)


def resize_mask(mask: np.ndarray, size) -> np.ndarray:
    """Resize a 2-D mask (any integer dtype) with centre-aligned nearest neighbour."""
    h, w = int(size[0]), int(size[1])
    if mask.shape[:2] == (h, w):
        return mask
    if mask.dtype in (np.uint8, np.uint16, np.int16, np.int32, np.float32):
        return cv2.resize(mask, (w, h), interpolation=_NEAREST)
    work = mask.astype(np.uint8 if mask.dtype == bool else np.int32)
    return cv2.resize(work, (w, h), interpolation=_NEAREST).astype(mask.dtype)


def letterbox_window(shape, size):
    """Where a ``shape = (H, W)`` image lands when letterboxed into ``size``.

    Returns ``(scale, top, left, height, width)``: the image, scaled by ``scale`` to
    ``height x width``, occupies ``[top:top + height, left:left + width]``.
    """
    h, w = int(size[0]), int(size[1])
    scale = min(h / shape[0], w / shape[1])
    nh = max(1, min(h, int(round(shape[0] * scale))))
    nw = max(1, min(w, int(round(shape[1] * scale))))
    return scale, (h - nh) // 2, (w - nw) // 2, nh, nw


def letterbox(image: np.ndarray, size, value=0, is_mask: bool = False):
    """Scale ``image`` to fit inside ``size`` keeping its aspect ratio, then pad (centred).

    Returns:
        ``(out, (scale, top, left))``: ``letterbox_window`` gives the window to undo it with.
    """
    h, w = int(size[0]), int(size[1])
    scale, top, left, nh, nw = letterbox_window(image.shape[:2], size)
    small = resize_mask(image, (nh, nw)) if is_mask else resize_image(image, (nh, nw))
    out = np.full((h, w) + image.shape[2:], value, dtype=image.dtype)
    out[top:top + nh, left:left + nw] = small
    return out, (scale, top, left)


def crop_pair(image, mask, y: int, x: int, size, value=0):
    """Crop ``size`` at ``(y, x)``; parts outside the image are filled with ``value`` (mask 0)."""
    h, w = int(size[0]), int(size[1])

    def crop(a, fill):
        out = np.full((h, w) + a.shape[2:], fill, dtype=a.dtype)
        y0, x0 = max(y, 0), max(x, 0)
        y1, x1 = min(y + h, a.shape[0]), min(x + w, a.shape[1])
        if y1 > y0 and x1 > x0:
            out[y0 - y:y1 - y, x0 - x:x1 - x] = a[y0:y1, x0:x1]
        return out

    return crop(image, value), (None if mask is None else crop(mask, 0))


def crop_or_pad(array: np.ndarray, size) -> np.ndarray:
    """The centre ``size`` window of ``(H, W, ...)``, zero-padded where it is larger.

    Valid-padded networks predict only the centre of their input; their targets are this
    window of the input-sized target.
    """
    h, w = int(size[0]), int(size[1])
    y, x = (array.shape[0] - h) // 2, (array.shape[1] - w) // 2
    return crop_pair(array, None, y, x, size, 0)[0]


def tile_origins(height: int, width: int, size, overlap: int = 0) -> list[tuple[int, int]]:
    """Top-left corners of ``size`` tiles covering a ``height x width`` image.

    Tiles step by ``size - overlap``; the last row/column is moved back to end at the image's
    edge (so tiles never run over it when the image is at least one tile large). An image
    smaller than a tile gives one tile at (0, 0), padded when cropped.
    """
    th, tw = int(size[0]), int(size[1])
    if not 0 <= overlap < min(th, tw):
        raise ValueError(f"tile overlap must be in 0..{min(th, tw) - 1}, got {overlap}")

    def starts(n, t):
        if n <= t:
            return [0]
        out = list(range(0, n - t, t - overlap))
        return out + [n - t]

    return [(y, x) for y in starts(height, th) for x in starts(width, tw)]


def _axis_start(n: int, t: int, rng, low: int = 0, high: int | None = None) -> int:
    """A window start along one axis of length ``n`` for a window of ``t``: uniform in
    ``[low, high]`` clipped to the starts that keep the window inside (``0 .. n - t``); centred
    (padded on both sides) when the axis is shorter than the window."""
    if n <= t:
        return (n - t) // 2
    lo, hi = max(low, 0), min(n - t if high is None else high, n - t)
    return int(rng.integers(lo, hi + 1))


def random_patch_origin(shape, size, rng) -> tuple[int, int]:
    """Top-left ``(y, x)`` of a ``size`` patch placed uniformly at random in a ``shape`` image
    (``fit="random_crop"`` and the random training patches of ``fit="patches"``).

    Every placement inside the image is equally likely; along an axis shorter than the patch
    the patch is centred (``crop_pair`` pads it). One draw an axis either way, so the draws
    that follow do not depend on the image's size.
    """
    (h, w), (th, tw) = (int(shape[0]), int(shape[1])), (int(size[0]), int(size[1]))
    y = int(rng.integers(0, max(h - th, 0) + 1))
    x = int(rng.integers(0, max(w - tw, 0) + 1))
    return (y if h >= th else (h - th) // 2), (x if w >= tw else (w - tw) // 2)


def foreground_patch_origin(foreground, shape, size, rng):
    """Top-left ``(y, x)`` of a ``size`` patch that contains a random foreground pixel.

    The foreground sampling of nnU-Net (Isensee et al. 2021, Nature Methods 18:203-211:
    ``oversample_foreground_percent`` in ``nnUNetTrainer``) and MONAI's
    ``RandCropByPosNegLabeld``: one foreground pixel is drawn uniformly, then the patch is
    placed uniformly among the placements that contain that pixel and stay inside the image
    (so the pixel lies anywhere in the patch, not always at its centre). Along an axis shorter
    than the patch, the patch is centred as in ``random_patch_origin`` (it then covers the
    whole axis, pixel included).

    Args:
        foreground: a ``shape`` mask (any non-zero value is foreground: binary masks, class
            indices, instance labels), or the flat indices of its foreground pixels
            (``np.flatnonzero(mask)``, a cheap thing to cache per image).
        shape: ``(height, width)`` of the image.
        size: ``(height, width)`` of the patch.
        rng: a ``numpy.random.Generator``.

    Returns:
        ``(y, x)`` for ``crop_pair``, or ``None`` when there is no foreground pixel.
    """
    h, w = int(shape[0]), int(shape[1])
    th, tw = int(size[0]), int(size[1])
    index = np.asarray(foreground)
    if index.ndim >= 2:
        if index.shape[:2] != (h, w):
            raise ValueError(f"foreground mask is {index.shape[:2]}, expected {(h, w)}")
        index = np.flatnonzero(index)
    if index.size == 0:
        return None
    py, px = divmod(int(index[int(rng.integers(0, index.size))]), w)
    return (_axis_start(h, th, rng, py - th + 1, py), _axis_start(w, tw, rng, px - tw + 1, px))


def fit_pair(image, mask, size, mode: str = "resize", rng=None, pad_value=0, origin=None):
    """Bring ``image`` (and ``mask``, may be ``None``) to ``size`` by ``mode``.

    ``resize`` stretches; ``pad`` keeps the aspect ratio and pads (letterbox); ``center_crop``
    and ``random_crop`` cut a ``size`` window (padding images smaller than it), the random one
    placed by ``rng``; ``tile`` cuts the window at ``origin``; ``patches`` cuts it at
    ``origin`` when given (``foreground_patch_origin``, a grid tile), else like
    ``random_crop``.
    """
    if mode == "resize":
        return resize_image(image, size), (None if mask is None else resize_mask(mask, size))
    if mode == "pad":
        out, _ = letterbox(image, size, pad_value)
        return out, (None if mask is None else letterbox(mask, size, 0, is_mask=True)[0])
    h, w = int(size[0]), int(size[1])
    random = mode in ("random_crop", "patches")
    if mode == "tile" or (mode == "patches" and origin is not None):
        y, x = origin
    elif mode == "center_crop" or (random and rng is None):
        y, x = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    elif random:
        y, x = random_patch_origin(image.shape, size, rng)
    else:
        raise ValueError(f"unknown fit mode {mode!r}; choose one of {FIT_MODES}")
    return crop_pair(image, mask, y, x, size, pad_value)
