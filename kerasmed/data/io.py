"""Reading images and masks from disk, with errors that name the file at fault.

Images keep their stored dtype (8 or 16 bit, or float for float TIFFs) and come back as
``(H, W, C)`` arrays in RGB(A) channel order. Masks come back as 2-D integer arrays in one of three
encodings:

``read_mask``        binary 0/1 (``uint8``), from 0/1, 0/255, 16-bit, JPEG-noisy or multi-channel
                     masks; a mask whose values do not look binary is an error, not a guess.
``read_label_mask``  integer labels kept as stored (instance labels such as GlaS annotations).
``read_class_mask``  class indices ``0..K-1`` for multi-class segmentation, optionally mapped from
                     stored grey levels or RGB colours.

Instance masks may also be Aperio ImageScope XML outlines (MoNuSeg's ``Annotations/*.xml``): one
polygon per nucleus, drawn into labels 1..N at the image's size (``read_outline_mask``).
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

__all__ = ["image_paths", "ImageReadError", "MaskValueError", "read_image", "read_mask", "read_label_mask",
           "read_class_mask", "read_outline_mask", "binarize_mask", "image_size",
           "looks_like_image", "looks_like_mask", "IMAGE_EXTENSIONS", "OUTLINE_EXTENSIONS",
           "ON_ERROR"]

# What an unreadable image does (data.on_error, kerasmed-predict --on-error): "raise" stops
# with an ImageReadError, "skip" leaves it out and lists it.
ON_ERROR = ("raise", "skip")

OUTLINE_EXTENSIONS = (".xml",)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8", b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+",
               b"BM")


class ImageReadError(OSError):
    """An image file is missing, unreadable or truncated; the message names its path."""


class MaskValueError(ImageReadError, ValueError):
    """A mask holds values that do not fit the requested encoding; the message names its path."""


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise ImageReadError(f"cannot read image {path}: {err.strerror or err}") from err


def looks_like_image(path) -> bool:
    """Whether ``path`` exists and starts with the signature of a PNG, JPEG, TIFF or BMP file.

    A cheap check (16 bytes read) used before training to catch missing, empty and non-image
    files; truncation is only detected by decoding.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return False
    return any(head.startswith(sig) for sig in _SIGNATURES)


def looks_like_mask(path) -> bool:
    """``looks_like_image``, or an XML outline file (MoNuSeg) that exists and starts with '<'."""
    if Path(path).suffix.lower() not in OUTLINE_EXTENSIONS:
        return looks_like_image(path)
    try:
        with open(path, "rb") as handle:
            return handle.read(64).lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")
    except OSError:
        return False


def read_outline_mask(path, shape) -> np.ndarray:
    """Instance labels ``(H, W)`` (``int32``) from an Aperio ImageScope XML file of outlines.

    Every ``Region`` of the file (MoNuSeg: one per nucleus) is a polygon of ``Vertex`` X, Y
    pixel coordinates; region k (in file order) is filled with label k, a later region drawn
    over an earlier one where they overlap. Regions with fewer than three vertices are skipped.
    ``shape`` is the ``(height, width)`` of the image the outlines belong to.

    Raises:
        ImageReadError: the file is missing or is not well-formed XML (names the path).
        MaskValueError: a vertex lacks a numeric X or Y.
    """
    import xml.etree.ElementTree as ElementTree

    path = Path(path)
    try:
        tree = ElementTree.fromstring(_read_bytes(path))
    except ElementTree.ParseError as err:
        raise ImageReadError(f"outline file {path} is not well-formed XML: {err}") from err
    labels = np.zeros(tuple(int(v) for v in shape[:2]), np.int32)
    label = 0
    for region in tree.iter("Region"):
        try:
            points = [(float(v.attrib["X"]), float(v.attrib["Y"])) for v in region.iter("Vertex")]
        except (KeyError, ValueError) as err:
            raise MaskValueError(f"outline file {path}: region {region.attrib.get('Id', '?')} "
                                 f"has a vertex without numeric X and Y") from err
        if len(points) < 3:
            continue
        label += 1
        polygon = np.round(np.asarray(points)).astype(np.int32)
        cv2.fillPoly(labels, [polygon], label)
    return labels


def _jpeg_truncated(data: bytes) -> bool:
    # A complete JPEG has its end-of-image marker after the start of its last scan. Some OpenCV
    # builds decode a truncated JPEG silently (grey bottom rows), so this is checked explicitly.
    if not data.startswith(b"\xff\xd8"):
        return False
    return data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda")


def _decode(path: Path, data: bytes, page):
    if not data:
        raise ImageReadError(f"cannot decode image {path}: the file is empty")
    if _jpeg_truncated(data):
        raise ImageReadError(f"cannot decode image {path}: the JPEG file is truncated (no "
                             f"end-of-image marker)")
    buf = np.frombuffer(data, np.uint8)
    is_tiff = data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
    if is_tiff and (page == "all" or (isinstance(page, int) and page > 0)):
        ok, pages = cv2.imdecodemulti(buf, cv2.IMREAD_UNCHANGED)
        if not ok or not pages:
            raise ImageReadError(f"cannot decode image {path}: not a readable TIFF")
        if page == "all":
            if len({p.shape for p in pages}) != 1 or any(p.ndim != 2 for p in pages):
                shapes = sorted({p.shape for p in pages})
                raise ImageReadError(f"{path}: page='all' stacks single-channel pages of one "
                                     f"shape as channels; this file has pages of shapes {shapes}")
            return np.stack(pages, axis=-1)  # page order, no colour conversion
        if page >= len(pages):
            raise ImageReadError(f"{path}: page {page} requested but the file has {len(pages)} "
                                 f"page(s)")
        return pages[page]
    if page not in (0, None, "all"):
        raise ImageReadError(f"{path}: page={page!r} is only meaningful for TIFF files")
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(f"cannot decode image {path}: the file is truncated, corrupt or not "
                             f"an image format OpenCV reads")
    return image


def read_image(path, channels: int | None = None, page=0) -> np.ndarray:
    """Read an image as ``(H, W, C)`` in RGB(A) channel order, keeping its dtype (8 or 16 bit).

    PNG, JPEG, TIFF (8/16-bit, float, single- or multi-page) and BMP; grey, grey+alpha, RGB and
    RGBA. EXIF orientation is ignored, as it is for masks, so the two stay aligned.

    Args:
        channels: convert to 1 (grey, luminance) or 3 (RGB: grey repeated, alpha dropped).
        page: which page of a multi-page TIFF (default the first); ``"all"`` stacks the pages of
            a single-channel stack as channels.

    Raises:
        ImageReadError: naming ``path``, if the file is missing, empty, truncated or unreadable.
    """
    path = Path(path)
    image = _decode(path, _read_bytes(path), page)
    if image.ndim == 2:
        image = image[..., None]
    elif image.shape[2] == 3 and page != "all":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.shape[2] == 4 and page != "all":
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    if channels is not None:
        image = _to_channels(image, channels, path)
    return image


def _to_channels(image, channels, path):
    have = image.shape[2]
    if have == channels:
        return image
    if channels == 1:
        if have >= 3:
            return cv2.cvtColor(np.ascontiguousarray(image[..., :3]), cv2.COLOR_RGB2GRAY)[..., None]
        return image[..., :1]  # grey + alpha
    if channels == 3:
        if have in (1, 2):
            return np.repeat(image[..., :1], 3, axis=2)
        if have == 4:
            return image[..., :3]
    raise ImageReadError(f"{path}: cannot convert an image with {have} channels to {channels}")


def image_size(path) -> tuple[int, int]:
    """``(height, width)`` of an image, read from its header where Pillow can, else decoded."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            return int(h), int(w)
    except Exception:  # noqa: BLE001 - Pillow cannot parse some TIFFs that OpenCV reads
        img = read_image(path)
        return int(img.shape[0]), int(img.shape[1])


# --------------------------------------------------------------------------------------- masks


def _read_mask_array(path: Path) -> np.ndarray:
    """Stored mask values; palette images (PNG/BMP 'P' mode) give their palette indices."""
    data = _read_bytes(path)
    if (data[:8] == _SIGNATURES[0] and len(data) > 25 and data[25] == 3) or data[:2] == b"BM":
        # A palette PNG (colour type 3) or a BMP that may carry a colour palette: the stored
        # indices are the labels; OpenCV would return the palette colours instead.
        from PIL import Image

        try:
            with Image.open(io.BytesIO(data)) as im:
                if im.mode == "P":
                    return np.array(im)[..., None]
        except Exception:  # noqa: BLE001 - fall back to OpenCV, which names the path on failure
            pass
    mask = _decode(path, data, 0)
    if mask.ndim == 2:
        mask = mask[..., None]
    elif mask.shape[2] >= 3:
        mask = mask[..., [2, 1, 0] + list(range(3, mask.shape[2]))]  # BGR(A) -> RGB(A)
    return mask


def _values_summary(mask, limit=8):
    values, counts = np.unique(mask, return_counts=True)
    order = np.argsort(-counts)[:limit]
    parts = [f"{values[i]}: {100 * counts[i] / mask.size:.1f}%" for i in sorted(order)]
    more = f" and {len(values) - limit} more values" if len(values) > limit else ""
    return "{" + ", ".join(parts) + "}" + more


def binarize_mask(mask: np.ndarray, threshold: float | None = None, path=None) -> np.ndarray:
    """Turn a 2-D mask array into 0/1 ``uint8``.

    With ``threshold`` given, foreground is ``mask > threshold``. Otherwise (``None``, automatic):

    - a mask with one value, or 0 and one other value (0/1, 0/255, 0/1000...) -> ``mask > 0``;
    - anything else must look like a binary mask with noise (JPEG, anti-aliased edges): cut at
      half the dtype's range. It is an error (``MaskValueError``) if every value is below that
      cut (instance labels 0..k, class indices) or if intermediate values are common (a
      three-level class mask, an image saved as a mask).
    """
    where = f"mask {path}" if path is not None else "mask"
    if mask.dtype == bool:
        return mask.astype(np.uint8)
    if threshold is not None:
        return (mask > threshold).astype(np.uint8)
    if np.issubdtype(mask.dtype, np.floating):
        lo, top = float(mask.min()), float(mask.max())
        if lo >= 0 and top <= 1:
            return (mask > 0.5).astype(np.uint8)
        values = np.unique(mask)
        if len(values) <= 2 and values[0] == 0 or len(values) == 1:
            return (mask > 0).astype(np.uint8)
        raise MaskValueError(f"{where}: float values {_values_summary(mask)} are neither in "
                             f"[0, 1] nor two-valued; give data.mask_threshold")
    if mask.dtype.kind == "i" and mask.min() < 0:
        raise MaskValueError(f"{where}: negative values {_values_summary(mask)}")
    flat = mask.ravel()
    if mask.dtype.itemsize <= 2:
        all_counts = np.bincount(flat)
        values = np.flatnonzero(all_counts)
        counts = all_counts[values]
    else:
        values, counts = np.unique(flat, return_counts=True)
    if len(values) == 1 or (len(values) == 2 and values[0] == 0):
        return (mask > 0).astype(np.uint8)
    top = int(values[-1])
    if mask.dtype.itemsize <= 2:
        dtype_max = int(np.iinfo(mask.dtype).max)
    else:
        dtype_max = 255 if top <= 255 else 65535 if top <= 65535 else top
    cut = dtype_max / 2
    if top <= cut:
        raise MaskValueError(
            f"{where}: values {_values_summary(mask)} are all at or below the binary cut "
            f"{cut:g}; this looks like an instance-label or class-index mask. Give "
            f"mask_threshold=0 for a binary mask of label > 0 (or mask_type='instances' to the "
            f"reader), mask_mode='instances' to keep the labels, or mask_mode='classes'")
    band = counts[(values > dtype_max * 0.2) & (values < dtype_max * 0.8)]
    n = flat.size
    if band.size and (band.max() > max(0.005 * n, 50) or band.sum() > 0.2 * n):
        raise MaskValueError(
            f"{where}: many pixels have intermediate values ({_values_summary(mask)}); it "
            f"is not a binary mask. Use mask_mode='classes' with class_values for a "
            f"multi-level mask, or give mask_threshold to binarise it anyway")
    return (mask > cut).astype(np.uint8)


def read_mask(path, threshold: float | None = None, mask_type: str | None = None,
              shape=None) -> np.ndarray:
    """Read a binary segmentation mask as a ``(H, W)`` ``uint8`` array of 0 and 1.

    Multi-channel masks (some CVC-ClinicDB copies store RGB masks) are reduced by their maximum
    over the colour channels. ``threshold=None`` binarises automatically (see ``binarize_mask``):
    0/1 and 0/255 masks alike, JPEG-noisy masks (Kvasir-SEG) cut at half range. With
    ``mask_type="instances"`` (instance labels, as in GlaS) foreground is every label > 0.

    Raises:
        ImageReadError: the file cannot be read.
        MaskValueError: the values do not look like a binary mask (names the path and values).
    """
    path = Path(path)
    if path.suffix.lower() in OUTLINE_EXTENSIONS:  # outlines of instances: foreground is > 0
        return (read_label_mask(path, shape) > 0).astype(np.uint8)
    mask = _read_mask_array(path)
    mask = mask[..., :3].max(axis=2) if mask.shape[2] > 1 else mask[..., 0]
    if mask_type in ("instances", "labels") and threshold is None:
        return (mask > 0).astype(np.uint8)
    return binarize_mask(mask, threshold, path)


def _single_channel(mask, path):
    if mask.shape[2] == 1:
        return mask[..., 0]
    colour = mask[..., :3] if mask.shape[2] >= 3 else mask[..., :1]
    if colour.shape[2] == 3 and not (np.array_equal(colour[..., 0], colour[..., 1]) and
                                     np.array_equal(colour[..., 0], colour[..., 2])):
        raise MaskValueError(f"mask {path}: a colour-coded mask (its channels differ); give "
                             f"class_values as RGB triples to map colours to classes")
    return colour[..., 0]


def read_label_mask(path, shape=None) -> np.ndarray:
    """Read an integer label mask (instance labels 0 = background, 1..k) as ``(H, W)``, as stored.

    Grey masks stored with three identical channels are accepted; palette images give their
    indices. Raises ``MaskValueError`` for colour-coded or non-integer masks. An XML outline
    file (MoNuSeg) is drawn at ``shape``, the image's ``(height, width)``.
    """
    path = Path(path)
    if path.suffix.lower() in OUTLINE_EXTENSIONS:
        if shape is None:
            raise ValueError(f"outline file {path}: the image's shape is needed to draw it")
        return read_outline_mask(path, shape)
    mask = _single_channel(_read_mask_array(path), path)
    if np.issubdtype(mask.dtype, np.floating):
        if not np.all(mask == np.round(mask)) or mask.min() < 0:
            raise MaskValueError(f"mask {path}: label masks need non-negative integer values; "
                                 f"found {_values_summary(mask)}")
        mask = mask.astype(np.int32)
    return mask


def read_class_mask(path, num_classes: int | None = None, class_values=None) -> np.ndarray:
    """Read a multi-class mask as class indices ``0..K-1`` (``uint8``, or ``int32`` if K > 255).

    Args:
        num_classes: K. Stored values ``>= K`` are an error.
        class_values: the stored value of each class, in class order: grey levels
            (``[0, 128, 255]``) or RGB triples (``[[0, 0, 0], [255, 0, 0]]``). Any other stored
            value is an error that lists it. Without it the stored values are the indices.
    """
    path = Path(path)
    raw = _read_mask_array(path)
    if class_values is not None and len(class_values) and np.ndim(class_values[0]) == 1:
        if raw.shape[2] < 3:
            raise MaskValueError(f"mask {path}: class_values are RGB triples but the mask has "
                                 f"{raw.shape[2]} channel(s)")
        rgb = raw[..., :3].astype(np.int64)
        codes = (rgb[..., 0] << 32) | (rgb[..., 1] << 16) | rgb[..., 2]
        keys = [(int(r) << 32) | (int(g) << 16) | int(b) for r, g, b in class_values]
        return _map_values(codes, keys, path, shown=[list(map(int, v)) for v in class_values],
                           describe=lambda c: [c >> 32, (c >> 16) & 0xFFFF, c & 0xFFFF])
    mask = _single_channel(raw, path)
    if class_values is not None:
        keys = [int(v) for v in class_values]
        return _map_values(mask, keys, path, shown=keys)
    k = num_classes
    top = int(mask.max())
    if k is not None and top >= k:
        bad = np.unique(mask[mask >= k])
        raise MaskValueError(f"mask {path}: values {bad[:10].tolist()} are not class indices "
                             f"0..{k - 1} (value counts {_values_summary(mask)}); give "
                             f"class_values to map stored values to classes")
    return mask.astype(np.uint8 if top < 256 else np.int32)


def _map_values(mask, keys, path, shown, describe=lambda c: c):
    keys_arr = np.asarray(keys, dtype=np.int64)
    order = np.argsort(keys_arr)
    sorted_keys = keys_arr[order]
    pos = np.clip(np.searchsorted(sorted_keys, mask), 0, len(keys) - 1)
    found = sorted_keys[pos] == mask
    if not found.all():
        bad = np.unique(mask[~found])
        raise MaskValueError(f"mask {path}: values {[describe(int(b)) for b in bad[:10]]} are "
                             f"not among class_values {shown}")
    out = order[pos]
    return out.astype(np.uint8 if len(keys) <= 256 else np.int32)


def image_paths(items):
    """The image files named by ``items`` (a path, or a list of paths): a folder gives its
    images (by extension, sorted), a file itself. Returns a list of ``Path``.

    Raises ``ValueError`` naming the folder for a folder without images, and for no images at
    all, so that a command never succeeds on nothing.
    """
    if isinstance(items, (str, Path)):
        items = [items]
    paths = []
    for item in map(Path, items):
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise ValueError(f"{item}: a folder with no images "
                                 f"({', '.join(IMAGE_EXTENSIONS)})")
            paths += found
        else:
            paths.append(item)
    if not paths:
        raise ValueError("no images given")
    return paths
