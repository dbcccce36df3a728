"""Intensity normalisation of images to ``float32`` model inputs.

A normalisation is named by a string or given as a dict with ``"method"`` and its parameters:

``"auto"`` (default)   8-bit images: ``dtype_range``; anything else (16-bit, float):
                       ``percentile`` with its defaults. Works for 16-bit microscopy whose values
                       fill only a narrow part of 0..65535, where ``dtype_range`` gives an almost
                       black image.
``"dtype_range"``      divide by the dtype's maximum (255, 65535); floats unchanged.
``"minmax"``           stretch each image's own min..max to 0..1.
``"percentile"``       ``{"low": 1.0, "high": 99.8, "clip": true}``: map each image's low and
                       high percentiles (over all channels) to 0 and 1, clipping outside.
``"mean_std"``         ``{"mean": [...], "std": [...], "raw": false}``: ``(x - mean) / std`` per
                       channel, with x scaled to 0..1 by the dtype range first unless ``raw``.
``"backbone"``         ``{"name": "resnet50"}``: ``keras.applications.<name>.preprocess_input``
                       on 0..255 values (8-bit as stored; other dtypes percentile-stretched to
                       0..255 first), for pretrained encoders.
"""

from __future__ import annotations

import numpy as np

__all__ = ["NORMALIZATIONS", "normalize_image", "parse_normalization", "make_normalizer",
           "Normalizer"]

NORMALIZATIONS = ("auto", "dtype_range", "minmax", "percentile", "mean_std", "backbone")

_PARAMS = {
    "auto": {},
    "dtype_range": {},
    "minmax": {},
    "percentile": {"low": 1.0, "high": 99.8, "clip": True},
    "mean_std": {"mean": None, "std": None, "raw": False},
    "backbone": {"name": None},
}


def parse_normalization(spec) -> dict:
    """Validate a normalisation spec (string or dict) and return it as a full dict.

    Raises ``ValueError`` naming the unknown method or key, or the bad value.
    """
    if isinstance(spec, str):
        spec = {"method": spec}
    if not isinstance(spec, dict) or "method" not in spec:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS} or a dict with a "
                         f"'method' key, got {spec!r}")
    method = spec["method"]
    if method not in _PARAMS:
        raise ValueError(f"unknown normalization {method!r}; choose one of {NORMALIZATIONS}")
    params = dict(_PARAMS[method])
    unknown = [k for k in spec if k != "method" and k not in params]
    if unknown:
        raise ValueError(f"normalization {method!r}: unknown key(s) {unknown}; valid keys: "
                         f"{sorted(params) or 'none'}")
    params.update({k: v for k, v in spec.items() if k != "method"})
    if method == "percentile":
        low, high = params["low"], params["high"]
        if not (isinstance(low, (int, float)) and isinstance(high, (int, float))
                and 0 <= low < high <= 100):
            raise ValueError(f"normalization 'percentile': need 0 <= low < high <= 100, got "
                             f"low={low!r}, high={high!r}")
    if method == "mean_std":
        for key in ("mean", "std"):
            if params[key] is None:
                raise ValueError(f"normalization 'mean_std': {key!r} is required")
            values = np.atleast_1d(np.asarray(params[key], dtype=np.float64))
            if values.ndim != 1:
                raise ValueError(f"normalization 'mean_std': {key!r} must be a number or a list")
        if np.any(np.atleast_1d(np.asarray(params["std"], dtype=np.float64)) <= 0):
            raise ValueError("normalization 'mean_std': 'std' must be positive")
    if method == "backbone":
        import keras

        name = params["name"]
        module = getattr(keras.applications, str(name), None) if name else None
        if module is None or not hasattr(module, "preprocess_input"):
            raise ValueError(f"normalization 'backbone': 'name' must be a keras.applications "
                             f"module with preprocess_input (resnet50, efficientnet, "
                             f"mobilenet_v2, densenet, ...), got {name!r}")
    return {"method": method, **params}


def _dtype_max(image):
    return float(np.iinfo(image.dtype).max) if np.issubdtype(image.dtype, np.integer) else 1.0


def _percentiles(image, low, high):
    if image.dtype in (np.uint8, np.uint16):
        # A histogram is much faster than sorting for 8/16-bit images.
        counts = np.bincount(image.ravel())
        cdf = np.cumsum(counts) / image.size
        lo = float(np.searchsorted(cdf, low / 100.0))
        hi = float(np.searchsorted(cdf, high / 100.0))
        return lo, hi
    lo, hi = np.percentile(image, [low, high])
    return float(lo), float(hi)


def _stretch(image, lo, hi, clip):
    out = image.astype(np.float32)
    if hi <= lo:
        return np.zeros_like(out)
    out = (out - lo) / (hi - lo)
    return np.clip(out, 0.0, 1.0) if clip else out


def normalize_image(image: np.ndarray, method="dtype_range", **params) -> np.ndarray:
    """Normalise ``image`` to ``float32`` by ``method`` (a name, or a dict spec; see the module).

    ``dtype_range`` divides by the dtype's maximum (255 for 8-bit, 65535 for 16-bit);
    ``minmax`` stretches each image's own range to [0, 1].
    """
    spec = parse_normalization(method if isinstance(method, dict) else {"method": method,
                                                                        **params})
    return _apply(image, spec)


def _apply(image, spec):
    method = spec["method"]
    if method == "auto":
        if image.dtype == np.uint8:
            method = "dtype_range"
        else:
            spec, method = {**_PARAMS["percentile"], "method": "percentile"}, "percentile"
    if method == "dtype_range":
        if np.issubdtype(image.dtype, np.integer):
            return image.astype(np.float32) / np.float32(_dtype_max(image))
        return image.astype(np.float32)
    if method == "minmax":
        return _stretch(image, float(image.min()), float(image.max()), clip=False)
    if method == "percentile":
        lo, hi = _percentiles(image, spec["low"], spec["high"])
        return _stretch(image, lo, hi, spec["clip"])
    if method == "mean_std":
        x = image.astype(np.float32)
        if not spec["raw"]:
            x /= np.float32(_dtype_max(image))
        mean = np.asarray(spec["mean"], np.float32)
        std = np.asarray(spec["std"], np.float32)
        return (x - mean) / std
    if method == "backbone":
        import keras

        if image.dtype == np.uint8:
            x = image.astype(np.float32)
        else:
            lo, hi = _percentiles(image, *(_PARAMS["percentile"][k] for k in ("low", "high")))
            x = _stretch(image, lo, hi, clip=True) * 255.0
        module = getattr(keras.applications, spec["name"])
        return np.asarray(module.preprocess_input(x), dtype=np.float32)
    raise AssertionError(method)


class Normalizer:
    """A picklable callable ``image -> float32 array`` for a validated normalisation spec."""

    def __init__(self, spec="auto"):
        self.spec = parse_normalization(spec)

    def __call__(self, image):
        return _apply(image, self.spec)

    def __repr__(self):
        return f"Normalizer({self.spec!r})"


def make_normalizer(spec="auto") -> Normalizer:
    """A picklable callable ``image -> float32 array`` for a normalisation spec."""
    return Normalizer(spec)
