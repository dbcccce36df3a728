"""Reading images and masks from disk, with errors that name the file at fault."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

__all__ = ["ImageReadError", "read_image", "read_mask", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


class ImageReadError(OSError):
    """An image file is missing, unreadable or truncated; the message names its path."""


def read_image(path, channels: int | None = None) -> np.ndarray:
    """Read an image as ``(H, W, C)`` in RGB(A) channel order, keeping its dtype (8 or 16 bit).

    ``channels`` converts: 1 gives grayscale, 3 gives RGB (grey is repeated, alpha dropped).
    Raises ``ImageReadError`` naming ``path`` if the file cannot be decoded.
    """
    path = Path(path)
    try:
        # np.fromfile + imdecode, because cv2.imread fails silently on non-ASCII paths.
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as err:
        raise ImageReadError(f"cannot read image {path}: {err.strerror or err}") from err
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None:
        raise ImageReadError(f"cannot decode image {path}: the file is empty, truncated or not "
                             f"an image format OpenCV reads")
    if image.ndim == 2:
        image = image[..., None]
    elif image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    if channels is not None:
        image = _to_channels(image, channels, path)
    return image


def _to_channels(image, channels, path):
    have = image.shape[2]
    if have == channels:
        return image
    if channels == 1:
        rgb = image[..., :3]
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None] if rgb.shape[2] == 3 else rgb
    if channels == 3:
        if have == 1:
            return np.repeat(image, 3, axis=2)
        if have == 4:
            return image[..., :3]
    raise ImageReadError(f"{path}: cannot convert an image with {have} channels to {channels}")


def read_mask(path, threshold: float | None = None) -> np.ndarray:
    """Read a binary segmentation mask as a ``(H, W)`` ``uint8`` array of 0 and 1.

    Multi-channel masks (some CVC-ClinicDB copies store RGB masks) are reduced by their maximum.
    Pixels above ``threshold`` are foreground; the default is half the dtype's range, which also
    cleans JPEG-noisy masks (Kvasir-SEG) and accepts 0/1 and 0/255 masks alike.
    """
    mask = read_image(path)
    mask = mask[..., :3].max(axis=2) if mask.shape[2] > 1 else mask[..., 0]
    if threshold is None:
        top = int(mask.max())
        # 0/1 masks have max 1; 0/255 (or 16-bit) masks are cut at half their dtype's range.
        threshold = 0.5 if top <= 1 else np.iinfo(mask.dtype).max / 2
    return (mask > threshold).astype(np.uint8)
