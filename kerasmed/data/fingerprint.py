"""A dataset's fingerprint: what its images and masks look like, measured once, saved as JSON.

The idea is nnU-Net's (Isensee et al., "nnU-Net: a self-configuring method for deep
learning-based biomedical image segmentation", Nature Methods 18, 203-211, 2021): before any
design decision, read every training case once and record its shape, spacing and intensities
(nnU-Net samples foreground intensities and keeps their mean, std and 0.5 / 50 / 99.5
percentiles, which set its normalisation). kerasmed's version is for 2-D images and adds what
matters for its networks and post-processing: how much of each image is foreground, how many
objects a mask holds and how large they are (areas, equivalent diameters, minor axes: the sizes
that window sizes, ``min_size`` and watershed settings depend on), and class balance.

Masks are read with the readers training uses (``read_mask``, ``read_label_mask``,
``read_class_mask``), with the same threshold, instance and class options, so a fingerprint
describes exactly the targets a network would see. ``compute_fingerprint`` returns a plain dict
that is strict JSON (no NaN or infinity: missing values are ``None``); ``save_fingerprint`` and
``load_fingerprint`` write and read it; ``summarize`` gives it as lines for a person.
"""

from __future__ import annotations

import json
import re
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from kerasmed.data.io import (ImageReadError, _to_channels, read_class_mask, read_image,
                              read_label_mask, read_mask)
from kerasmed.runfiles import strict_json

__all__ = ["compute_fingerprint", "save_fingerprint", "load_fingerprint", "summarize",
           "FINGERPRINT_VERSION", "FINGERPRINT_MASK_MODES"]

FINGERPRINT_VERSION = 1
FINGERPRINT_MASK_MODES = ("auto", "binary", "instances", "classes")

# Microns in one TIFF ResolutionUnit (2: inch, 3: centimetre) and in one ImageJ "unit=".
_UM_PER_TIFF_UNIT = {2: 25_400.0, 3: 10_000.0}
_UM_PER_IMAGEJ_UNIT = {"micron": 1.0, "microns": 1.0, "um": 1.0, "\u00b5m": 1.0, "\u03bcm": 1.0,
                       "nm": 1e-3, "nanometer": 1e-3, "mm": 1e3, "millimeter": 1e3,
                       "cm": 1e4, "centimeter": 1e4}
_TIFF_SUFFIXES = (".tif", ".tiff")


# ------------------------------------------------------------------------------------ spacing


def _spacing_from_tags(x_res, y_res, unit, description) -> list[float] | None:
    """``[sy, sx]`` in microns per pixel from TIFF resolution tags (pixels per unit), or None."""
    try:
        x_res, y_res = float(x_res), float(y_res)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not (np.isfinite(x_res) and np.isfinite(y_res)) or x_res <= 0 or y_res <= 0:
        return None
    um = _UM_PER_TIFF_UNIT.get(int(unit) if unit is not None else 2)  # TIFF default: inch
    if um is None and description:
        # ImageJ stores ResolutionUnit "none" and names the unit in its ImageDescription.
        text = description.decode("latin-1") if isinstance(description, bytes) else description
        if "ImageJ=" in text:
            found = re.search(r"^unit=(.+)$", text, re.MULTILINE)
            if found:
                unit_name = found.group(1).strip().lower().replace("\\u00b5", "\u00b5")
                um = _UM_PER_IMAGEJ_UNIT.get(unit_name)
    if um is None:
        return None
    return [um / y_res, um / x_res]


def _tiff_spacing(path: Path) -> list[float] | None:
    """``[sy, sx]`` microns per pixel from a TIFF's resolution tags; ``None`` if not a TIFF or
    the tags are absent, zero or unit-less (ResolutionUnit 1 without an ImageJ unit)."""
    if path.suffix.lower() not in _TIFF_SUFFIXES:
        return None
    try:
        from PIL import Image

        with Image.open(path) as im:
            tags = getattr(im, "tag_v2", None)
            if tags is not None:
                if 282 not in tags or 283 not in tags:
                    return None
                return _spacing_from_tags(tags[282], tags[283], tags.get(296),
                                          tags.get(270))
    except Exception:  # noqa: BLE001 - Pillow cannot parse some TIFFs; try tifffile below
        pass
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page_tags = tif.pages[0].tags
            if "XResolution" not in page_tags or "YResolution" not in page_tags:
                return None

            def ratio(name):
                value = page_tags[name].value
                return value[0] / value[1] if isinstance(value, tuple) else value

            unit = page_tags["ResolutionUnit"].value if "ResolutionUnit" in page_tags else None
            description = (page_tags["ImageDescription"].value
                           if "ImageDescription" in page_tags else None)
            return _spacing_from_tags(ratio("XResolution"), ratio("YResolution"),
                                      int(unit) if unit is not None else None, description)
    except Exception:  # noqa: BLE001 - no tifffile, or it cannot read the file either
        return None


# ---------------------------------------------------------------------------- one image's facts


def _bottom_k(keys: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` smallest ``keys`` (all of them when there are no more than ``k``)."""
    if keys.size <= k:
        return np.arange(keys.size)
    return np.sort(np.argpartition(keys, k - 1)[:k])


def _objects(mask: np.ndarray, mode: str) -> np.ndarray:
    """A label image of the mask's objects (0: background)."""
    from skimage.measure import label

    if mode == "binary":
        return label(mask > 0, connectivity=2)
    if mode == "instances":
        return np.where(mask > 0, mask, 0).astype(np.int64, copy=False)
    # classes: the connected pieces of each class > 0, numbered one after another
    objects = np.zeros(mask.shape, np.int64)
    offset = 0
    for value in np.unique(mask):
        if value <= 0:
            continue
        pieces, count = label(mask == value, connectivity=2, return_num=True)
        objects[pieces > 0] = pieces[pieces > 0] + offset
        offset += count
    return objects


def _measure(index, sample, mode, options) -> dict:
    """Everything the fingerprint needs from one sample: its image and mask, read once."""
    from skimage.measure import regionprops_table

    path = Path(sample.image)
    stored = read_image(path)
    height, width, stored_channels = stored.shape
    image = stored if options["channels"] is None else _to_channels(stored, options["channels"],
                                                                     path)
    values = image.reshape(-1, image.shape[2])
    limit = options["max_intensity_samples"]
    # Bottom-k sampling: every pixel gets a random key from a stream that depends only on the
    # seed and the sample's index; the pixels with the smallest keys over the whole dataset are
    # a uniform sample without replacement, whatever the order in which images finish.
    keys = np.random.default_rng([options["seed"], index]).random(height * width)
    chosen = _bottom_k(keys, limit)
    result = {
        "entry": {"image": str(sample.image),
                  "mask": None if sample.mask is None else str(sample.mask),
                  "height": int(height), "width": int(width), "channels": int(stored_channels),
                  "dtype": str(stored.dtype), "spacing": _tiff_spacing(path),
                  "foreground_fraction": None, "components": None, "label": sample.label},
        "all": (keys[chosen], values[chosen].astype(np.float64)),
        "foreground": None, "objects": None, "class_pixels": None,
    }
    if sample.mask is None:
        return result
    shape = (height, width)
    if mode == "binary":
        mask = read_mask(sample.mask, options["mask_threshold"], sample.mask_type, shape=shape)
    elif mode == "instances":
        mask = read_label_mask(sample.mask, shape=shape)
    else:
        mask = read_class_mask(sample.mask, options["num_classes"], options["class_values"])
    if mask.shape != shape:
        raise ImageReadError(f"mask {sample.mask} is {mask.shape[1]}x{mask.shape[0]} but its "
                             f"image {sample.image} is {width}x{height}")
    foreground = np.flatnonzero(mask.ravel() > 0)
    fg_chosen = foreground[_bottom_k(keys[foreground], limit)]
    result["foreground"] = (keys[fg_chosen], values[fg_chosen].astype(np.float64))
    props = regionprops_table(_objects(mask, mode),
                              properties=("area", "equivalent_diameter_area",
                                          "axis_minor_length"))
    result["objects"] = {name: np.asarray(column, np.float64) for name, column in props.items()}
    result["entry"]["foreground_fraction"] = float(foreground.size / mask.size)
    result["entry"]["components"] = len(props["area"])
    if mode == "classes":
        result["class_pixels"] = np.bincount(mask.ravel().astype(np.int64))
    return result


# ------------------------------------------------------------------------------------- pooling


class _Pool:
    """The ``size`` pixels with the smallest keys seen so far (rows of any channel count)."""

    def __init__(self, size: int):
        self.size = size
        self._parts: list[tuple[np.ndarray, np.ndarray]] = []  # (keys, values (k, C)) blocks
        self._held = 0

    def add(self, keys: np.ndarray, values: np.ndarray) -> None:
        if not keys.size:
            return
        self._parts.append((keys, values))
        self._held += keys.size
        if self._held > 4 * self.size:  # compact now and then, not on every image
            self._compact()

    def _compact(self) -> None:
        if not self._parts:
            return
        sizes = [k.size for k, _ in self._parts]
        starts = np.concatenate([[0], np.cumsum(sizes)])
        keep = _bottom_k(np.concatenate([k for k, _ in self._parts]), self.size)  # sorted
        bounds = np.searchsorted(keep, starts)
        parts = []
        for i, (part_keys, part_values) in enumerate(self._parts):
            rows = keep[bounds[i]:bounds[i + 1]] - starts[i]
            if rows.size:
                parts.append((part_keys[rows], part_values[rows]))
        self._parts = parts
        self._held = sum(k.size for k, _ in parts)

    @property
    def count(self) -> int:
        self._compact()
        return self._held

    def pixels(self) -> tuple[np.ndarray, bool]:
        """The pooled pixels as ``(n, C)`` and whether channel counts had to be unified: images
        with other counts are converted as ``read_image(channels=...)`` converts them (to RGB
        if any image has 3 or more channels, else to grey)."""
        self._compact()
        counts = {v.shape[1] for _, v in self._parts}
        if len(counts) <= 1:
            return np.concatenate([v for _, v in self._parts]), False
        target = 3 if max(counts) >= 3 else 1
        blocks = [_to_channels(v.astype(np.float32)[:, None, :], target, "pooled pixels")[:, 0, :]
                  for _, v in self._parts]
        return np.concatenate(blocks).astype(np.float64), True


def _stats(values: np.ndarray) -> dict:
    """Mean, std, min, max, 0.5 / 50 / 99.5 percentiles of the finite ``values``."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return {"mean": None, "std": None, "min": None, "max": None, "percentile_00_5": None,
                "median": None, "percentile_99_5": None, "n_nonfinite": int(values.size)}
    low, mid, high = np.percentile(finite, [0.5, 50.0, 99.5])
    return {"mean": float(finite.mean()), "std": float(finite.std()),
            "min": float(finite.min()), "max": float(finite.max()),
            "percentile_00_5": float(low), "median": float(mid), "percentile_99_5": float(high),
            "n_nonfinite": int(values.size - finite.size)}


def _intensity(pool: _Pool) -> dict | None:
    if not pool.count:
        return None
    pixels, converted = pool.pixels()
    return {"n_samples": int(pixels.shape[0]), "channels": int(pixels.shape[1]),
            "converted": converted,
            "per_channel": [_stats(pixels[:, c]) for c in range(pixels.shape[1])]}


def _summary(values, mean: bool = False) -> dict:
    """``{"min", "median", "max"}`` (and ``"mean"``) of ``values``; ``None`` entries if empty."""
    values = np.asarray(values, np.float64)
    keys = ("min", "median", "max") + (("mean",) if mean else ())
    if not values.size:
        return dict.fromkeys(keys)
    out = {"min": float(values.min()), "median": float(np.median(values)),
           "max": float(values.max())}
    if mean:
        out["mean"] = float(values.mean())
    return out


def _by_area(values, areas) -> dict:
    """``{"p10", "median"}`` of ``values`` over objects weighted by their ``areas``: the value
    below which the objects holding 10 % (50 %) of the foreground pixels lie. Unlike a count
    percentile, a mask's many specks (one-pixel islands of a thresholded map) do not decide
    it. ``None`` entries when there are no objects."""
    values, areas = np.asarray(values, np.float64), np.asarray(areas, np.float64)
    if not values.size or areas.sum() <= 0:
        return {"p10": None, "median": None}
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(areas[order]) / areas.sum()

    def pick(q):
        return float(values[order][min(int(np.searchsorted(cumulative, q)), values.size - 1)])

    return {"p10": pick(0.1), "median": pick(0.5)}


def _ordered(function, count: int, workers: int):
    """``function(0) ... function(count - 1)`` in order, ``workers`` threads reading ahead (at
    most twice as many results held, so memory stays bounded whatever the dataset's size)."""
    if workers <= 1:
        for i in range(count):
            yield function(i)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        following = 0
        try:
            while following < count or pending:
                while following < count and len(pending) < 2 * workers:
                    pending.append(pool.submit(function, following))
                    following += 1
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


# --------------------------------------------------------------------------------- public API


def _mask_modes(samples, mask_mode, num_classes, class_values) -> list[str | None]:
    if mask_mode not in FINGERPRINT_MASK_MODES:
        raise ValueError(f"mask_mode must be one of {FINGERPRINT_MASK_MODES}, not {mask_mode!r}")
    if mask_mode != "auto":
        return [None if s.mask is None else mask_mode for s in samples]
    if num_classes is not None or class_values is not None:
        return [None if s.mask is None else "classes" for s in samples]
    return [None if s.mask is None else
            "instances" if s.mask_type == "instances" else "binary" for s in samples]


def compute_fingerprint(samples, *, mask_mode: str = "auto", channels: int | None = None,
                        num_classes: int | None = None, class_values=None,
                        mask_threshold: float | None = None,
                        max_intensity_samples: int = 100_000, seed: int = 0,
                        workers: int = 2) -> dict:
    """Measure a dataset once, in the manner of nnU-Net's dataset fingerprint (Isensee et al.,
    Nature Methods 2021), and return the measurements as a strict-JSON dict.

    Every image and mask is decoded once (TIFF resolution tags are read from the header), in
    ``workers`` threads; the result does not depend on ``workers``.

    Args:
        samples: ``Sample``s: all with masks (segmentation) or all without (classification,
            ``Sample.label`` counted).
        mask_mode: how masks are read, as ``SegmentationDataset`` reads them. ``"auto"``:
            ``"classes"`` when ``num_classes`` or ``class_values`` is given, else per sample
            ``"instances"`` when ``Sample.mask_type == "instances"`` and ``"binary"`` otherwise.
            Objects are the 8-connected components of binary masks, the labels of instance
            masks, and the 8-connected pieces of each class > 0 of class masks.
        channels: convert images to 1 or 3 channels before measuring intensities, as training's
            ``data.channels`` does (the stored channel count is reported either way).
        num_classes, class_values, mask_threshold: as for ``read_class_mask`` / ``read_mask``.
        max_intensity_samples: at most this many pixels (all channels of each) are pooled over
            the dataset for the intensity statistics, and as many over foreground pixels: a
            uniform sample without replacement (smallest random keys), deterministic in ``seed``.
        seed: the sample's seed (a non-negative int).
        workers: threads reading images (1: read in this thread).

    Returns:
        A dict with (``None`` where a value does not apply or is unknown):

        - ``"version"`` (1), ``"kerasmed_version"``, ``"kind"`` (``"segmentation"`` /
          ``"classification"``), ``"n_images"``, ``"mask_mode"`` (``"binary"``,
          ``"instances"``, ``"classes"``, ``"mixed"`` or ``None``), ``"options"`` (the
          arguments that shaped the result);
        - ``"images"``: one dict an image: ``image``, ``mask``, ``height``, ``width``,
          ``channels`` (stored), ``dtype`` (stored), ``spacing`` (``[sy, sx]`` microns per
          pixel from TIFF resolution tags), ``foreground_fraction``, ``components``, ``label``;
        - ``"sizes"``: ``{"height": {min, median, max}, "width": {...}}``; ``"median_shape"``
          ``[h, w]``; ``"channels"`` and ``"dtypes"``: the stored ones, sorted; ``"spacing"``:
          the median ``[sy, sx]`` if every image has one;
        - ``"intensity"`` and ``"intensity_foreground"``: ``{"n_samples", "channels",
          "converted" (channel counts differed and were unified), "per_channel": [{"mean",
          "std", "min", "max", "percentile_00_5", "median", "percentile_99_5",
          "n_nonfinite"}]}`` over the sampled pixels;
        - ``"foreground_fraction"``: ``{min, median, max, mean}`` over images;
        - ``"components"``: ``{"per_image": {min, median, max, mean}, "n_objects",
          "area", "equivalent_diameter", "minor_axis_length"}`` (each ``{min, median, max}``
          over all objects, in pixels; ``skimage.measure.regionprops``), and
          ``"minor_axis_by_area"``, ``"diameter_by_area"``: ``{p10, median}`` weighted by the
          objects' areas (specks do not decide them);
        - ``"classes"``: class masks: ``{"n_classes", "pixel_count", "pixel_fraction",
          "images_with_class"}`` (lists indexed by class); classification: ``{"n_classes",
          "counts", "fraction"}`` (by label) and ``"n_unlabelled"``.

    Raises:
        ValueError: no samples, masks on some samples only, or a bad option.
        ImageReadError / MaskValueError: a file cannot be read or its mask values do not fit
            the mask mode (the message names the file).
    """
    from kerasmed import __version__

    samples = list(samples)
    if not samples:
        raise ValueError("compute_fingerprint needs at least one sample")
    without = [str(s.image) for s in samples if s.mask is None]
    if without and len(without) != len(samples):
        raise ValueError(f"{len(without)} of {len(samples)} samples have no mask (e.g. "
                         f"{without[0]}): a dataset is either segmentation (every sample has a "
                         f"mask) or classification (none has)")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be None, 1 or 3, not {channels!r}")
    if isinstance(max_intensity_samples, bool) or not isinstance(max_intensity_samples, int) \
            or max_intensity_samples < 1:
        raise ValueError(f"max_intensity_samples must be a positive int, not "
                         f"{max_intensity_samples!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, not {seed!r}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int, not {workers!r}")
    kind = "classification" if without else "segmentation"
    modes = _mask_modes(samples, mask_mode, num_classes, class_values)
    options = {"channels": channels, "num_classes": num_classes,
               "class_values": strict_json(class_values), "mask_threshold": mask_threshold,
               "max_intensity_samples": max_intensity_samples, "seed": int(seed)}

    every, foreground = _Pool(max_intensity_samples), _Pool(max_intensity_samples)
    entries, objects, class_pixels = [], [], []
    measured = _ordered(lambda i: _measure(i, samples[i], modes[i], options), len(samples),
                        workers)
    for result in measured:
        entries.append(result["entry"])
        every.add(*result["all"])
        if result["foreground"] is not None:
            foreground.add(*result["foreground"])
        if result["objects"] is not None:
            objects.append(result["objects"])
        if result["class_pixels"] is not None:
            class_pixels.append(result["class_pixels"])

    heights = [e["height"] for e in entries]
    widths = [e["width"] for e in entries]
    spacings = [e["spacing"] for e in entries]
    used_modes = sorted({m for m in modes if m is not None})
    fingerprint = {
        "version": FINGERPRINT_VERSION,
        "kerasmed_version": __version__,
        "kind": kind,
        "n_images": len(entries),
        "mask_mode": (used_modes[0] if len(used_modes) == 1 else "mixed") if used_modes
        else None,
        "options": options,
        "images": entries,
        "sizes": {"height": _summary(heights), "width": _summary(widths)},
        "median_shape": [float(np.median(heights)), float(np.median(widths))],
        "channels": sorted({e["channels"] for e in entries}),
        "dtypes": sorted({e["dtype"] for e in entries}),
        "spacing": ([float(v) for v in np.median(np.asarray(spacings), axis=0)]
                    if all(s is not None for s in spacings) else None),
        "intensity": _intensity(every),
        "intensity_foreground": _intensity(foreground) if kind == "segmentation" else None,
        "foreground_fraction": None,
        "components": None,
        "classes": None,
    }
    if kind == "segmentation":
        fingerprint["foreground_fraction"] = _summary(
            [e["foreground_fraction"] for e in entries], mean=True)
        column = {name: np.concatenate([o[name] for o in objects]) if objects else np.empty(0)
                  for name in ("area", "equivalent_diameter_area", "axis_minor_length")}
        fingerprint["components"] = {
            "per_image": _summary([e["components"] for e in entries], mean=True),
            "n_objects": int(column["area"].size),
            "area": _summary(column["area"]),
            "equivalent_diameter": _summary(column["equivalent_diameter_area"]),
            "minor_axis_length": _summary(column["axis_minor_length"]),
            "minor_axis_by_area": _by_area(column["axis_minor_length"], column["area"]),
            "diameter_by_area": _by_area(column["equivalent_diameter_area"], column["area"]),
        }
        if class_pixels:
            n_classes = max(num_classes or 0, len(class_values) if class_values is not None
                            else 0, max(c.size for c in class_pixels))
            table = np.zeros((len(class_pixels), n_classes), np.int64)
            for row, counts in zip(table, class_pixels, strict=True):
                row[:counts.size] = counts
            total = table.sum()
            fingerprint["classes"] = {
                "n_classes": int(n_classes),
                "pixel_count": [int(v) for v in table.sum(axis=0)],
                "pixel_fraction": [float(v) / total if total else None
                                   for v in table.sum(axis=0)],
                "images_with_class": [int(v) for v in (table > 0).sum(axis=0)],
            }
    else:
        counts = Counter(str(s.label) for s in samples if s.label is not None)
        labelled = sum(counts.values())
        names = sorted(counts)
        fingerprint["classes"] = {
            "n_classes": len(names),
            "counts": {name: int(counts[name]) for name in names},
            "fraction": {name: counts[name] / labelled for name in names},
            "n_unlabelled": len(samples) - labelled,
        }
    return strict_json(fingerprint)


def save_fingerprint(fingerprint: dict, path) -> Path:
    """Write ``fingerprint`` as strict JSON at ``path`` (atomically: a reader never sees half a
    file; folders made as needed). Returns the path written.

    Raises:
        ValueError: the dict holds NaN or infinity, or is not JSON-serialisable.
    """
    from kerasmed.runfiles import write_json_atomic

    try:
        json.dumps(fingerprint, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"the fingerprint is not strict JSON: {err}") from err
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, fingerprint)
    return path


def load_fingerprint(path) -> dict:
    """Read a fingerprint written by ``save_fingerprint``; returns the dict.

    Raises:
        ValueError: the file is not JSON, or not a fingerprint of a version this code reads
            (the message names the path).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"fingerprint {path} is not JSON: {err}") from err
    if not isinstance(data, dict) or "kind" not in data or "images" not in data:
        raise ValueError(f"{path} is not a dataset fingerprint (no 'kind' and 'images')")
    if data.get("version") != FINGERPRINT_VERSION:
        raise ValueError(f"fingerprint {path} has version {data.get('version')!r}; this kerasmed "
                         f"reads version {FINGERPRINT_VERSION}")
    return data


def _g(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def _range(summary: dict, unit: str = "") -> str:
    return (f"median {_g(summary['median'])}{unit} (min {_g(summary['min'])}, "
            f"max {_g(summary['max'])})")


def _intensity_lines(title: str, intensity) -> list[str]:
    if not intensity:
        return [f"{title}: no pixels"]
    unified = ", channels unified" if intensity["converted"] else ""
    lines = [f"{title} ({intensity['n_samples']} pixels sampled{unified}):"]
    for c, s in enumerate(intensity["per_channel"]):
        lines.append(f"  channel {c}: mean {_g(s['mean'])}, std {_g(s['std'])}, "
                     f"0.5-50-99.5% {_g(s['percentile_00_5'])} / {_g(s['median'])} / "
                     f"{_g(s['percentile_99_5'])}")
    return lines


def summarize(fingerprint: dict) -> list[str]:
    """The fingerprint as lines for a person (no trailing newlines); returns the lines."""
    fp = fingerprint
    mode = f", {fp['mask_mode']} masks" if fp.get("mask_mode") else ""
    lines = [f"{fp['kind']}: {fp['n_images']} images{mode}"]
    h, w = fp["median_shape"]
    lines.append(f"size: median {_g(h)} x {_g(w)} (height {_g(fp['sizes']['height']['min'])}-"
                 f"{_g(fp['sizes']['height']['max'])}, width {_g(fp['sizes']['width']['min'])}-"
                 f"{_g(fp['sizes']['width']['max'])})")
    lines.append(f"channels stored: {', '.join(map(str, fp['channels']))}; dtypes: "
                 f"{', '.join(fp['dtypes'])}")
    spacing = fp.get("spacing")
    lines.append(f"spacing: {_g(spacing[0])} x {_g(spacing[1])} um/pixel (median)" if spacing
                 else "spacing: not recorded in every image")
    lines += _intensity_lines("intensity", fp.get("intensity"))
    if fp["kind"] == "segmentation":
        lines += _intensity_lines("foreground intensity", fp.get("intensity_foreground"))
        ff = fp["foreground_fraction"]
        lines.append(f"foreground fraction: {_range(ff)}, mean {_g(ff['mean'])}")
        comp = fp["components"]
        lines.append(f"objects: {comp['n_objects']} in all, per image "
                     f"{_range(comp['per_image'])}")
        if comp["n_objects"]:
            lines.append(f"  area: {_range(comp['area'], ' px')}")
            lines.append(f"  equivalent diameter: {_range(comp['equivalent_diameter'], ' px')}")
            lines.append(f"  minor axis length: {_range(comp['minor_axis_length'], ' px')}")
    classes = fp.get("classes")
    if classes and "pixel_fraction" in classes:
        parts = [f"{k}: {_g(100 * f if f is not None else None, 3)}%"
                 for k, f in enumerate(classes["pixel_fraction"])]
        lines.append(f"class pixels: {', '.join(parts)}")
    elif classes:
        parts = [f"{name} {n}" for name, n in classes["counts"].items()]
        unlabelled = (f"; {classes['n_unlabelled']} unlabelled" if classes["n_unlabelled"]
                      else "")
        lines.append(f"classes ({classes['n_classes']}): {', '.join(parts)}{unlabelled}")
    return lines
