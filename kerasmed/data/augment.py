"""Augmentor pipelines, built from a config list, that keep an image and its mask together.

``build_augmentation(spec)`` turns a list of operation dicts into a callable
``augment(image, mask, rng) -> (image, mask)``::

    [{"op": "rotate", "probability": 0.7, "max_left_rotation": 10, "max_right_rotation": 10},
     {"op": "flip_left_right", "probability": 0.5},
     {"op": "zoom", "probability": 0.5, "min_factor": 1.1, "max_factor": 1.3},
     {"op": "random_distortion", "probability": 0.5, "grid_width": 4, "grid_height": 4,
      "magnitude": 4},
     {"op": "random_brightness", "probability": 0.5, "min_factor": 0.8, "max_factor": 1.2}]

Operation names and their keys are those of ``Augmentor.Pipeline``'s methods (``OPS`` lists
them). The transformations are Augmentor 0.2.12's own ``Operation`` classes; kerasmed wraps them
to avoid the library's traps (docs/data.md has the details and tests/test_augment.py a test for
each):

1. Augmentor resamples every image of a pipeline bicubically, masks included, so a binary mask
   comes back with over a hundred grey levels. kerasmed runs each geometric operation twice
   with the same random draws: on the image as Augmentor does, and on the mask with every
   resampling filter replaced by nearest neighbour. The mask keeps exactly its label set
   (binary, class indices or instance labels) and stays aligned with the image.
2. Its colour operations and random erasing also change the masks passed with the image.
   Intensity operations here run on the image alone.
3. Pillow's bilinear/bicubic rotate and affine transforms corrupt 16-bit (``I;16``) images.
   Images that are not 8-bit grey/RGB are transformed channel by channel as 32-bit float
   (``F``) images, which Pillow resamples correctly, and converted back to their dtype.
4. Augmentor rounds its random draw to one decimal before comparing it with an operation's
   probability, so ``p=0.3`` fires 35% of the time. kerasmed draws ``rng.random() < p`` itself.
5. ``Resize`` with ``ANTIALIAS`` fails on Pillow 10+ (the name was removed); kerasmed maps it
   to ``LANCZOS``, its new name.

Randomness comes only from the ``rng`` argument (a ``numpy.random.Generator``): the draws that
Augmentor makes with Python's ``random`` and NumPy's global state are redirected, per call, to
streams seeded from ``rng``. The same ``rng`` seed gives the same result in any thread or
process, whatever else runs concurrently.
"""

from __future__ import annotations

import math
import random as _pyrandom
import types
import warnings

import cv2
import numpy as np
from Augmentor import Operations as _ops
from PIL import Image

from kerasmed.names import did_you_mean

__all__ = ["OPS", "build_augmentation", "validate_augmentation", "Augmentation"]

# Augmentor's Skew builds an np.matrix, which NumPy flags on every call.
warnings.filterwarnings("ignore", message="the matrix subclass", category=PendingDeprecationWarning)

_REQUIRED = object()


def _number(lo=None, hi=None, lo_open=False, integer=False):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        if integer and value != int(value):
            return "must be an integer"
        if lo is not None and (value < lo or (lo_open and value == lo)):
            return f"must be {'>' if lo_open else '>='} {lo}"
        if hi is not None and value > hi:
            return f"must be <= {hi}"
        return None
    return check


def _choice(*options):
    def check(value):
        return None if value in options else f"must be one of {list(options)}"
    return check


def _bool(value):
    return None if isinstance(value, bool) else "must be true or false"


# op name -> (kind, {key: (default, check)}, factory(params) -> Augmentor Operation, cross-check)
_RESAMPLE = ("NEAREST", "BILINEAR", "BICUBIC", "LANCZOS", "ANTIALIAS", "BOX", "HAMMING")


def _min_max(p, lo_key="min_factor", hi_key="max_factor"):
    return f"{lo_key} must be <= {hi_key}" if p[lo_key] > p[hi_key] else None


OPS: dict = {
    # ----------------------------------------------------------------- geometric: image + mask
    "rotate": ("geometric", {"max_left_rotation": (_REQUIRED, _number(0, 25)),
                             "max_right_rotation": (_REQUIRED, _number(0, 25))},
               lambda p: _ops.RotateRange(1, math.ceil(p["max_left_rotation"]),
                                          math.ceil(p["max_right_rotation"])), None),
    "rotate_without_crop": ("geometric", {"max_left_rotation": (_REQUIRED, _number(0, 180)),
                                          "max_right_rotation": (_REQUIRED, _number(0, 180))},
                            lambda p: _ops.RotateStandard(1, math.ceil(p["max_left_rotation"]),
                                                          math.ceil(p["max_right_rotation"]),
                                                          expand=False), None),
    "rotate90": ("geometric", {}, lambda p: _ops.Rotate(1, 90), None),
    "rotate180": ("geometric", {}, lambda p: _ops.Rotate(1, 180), None),
    "rotate270": ("geometric", {}, lambda p: _ops.Rotate(1, 270), None),
    "rotate_random_90": ("geometric", {}, lambda p: _ops.Rotate(1, -1), None),
    "flip_left_right": ("geometric", {}, lambda p: _ops.Flip(1, "LEFT_RIGHT"), None),
    "flip_top_bottom": ("geometric", {}, lambda p: _ops.Flip(1, "TOP_BOTTOM"), None),
    "flip_random": ("geometric", {}, lambda p: _ops.Flip(1, "RANDOM"), None),
    "zoom": ("geometric", {"min_factor": (_REQUIRED, _number(0, 10, lo_open=True)),
                           "max_factor": (_REQUIRED, _number(0, 10, lo_open=True))},
             lambda p: _ops.Zoom(1, p["min_factor"], p["max_factor"]), _min_max),
    "zoom_random": ("geometric", {"percentage_area": (_REQUIRED, _number(0.1, 1)),
                                  "randomise_percentage_area": (False, _bool)},
                    lambda p: _ops.ZoomRandom(1, p["percentage_area"],
                                              p["randomise_percentage_area"]), None),
    "random_distortion": ("geometric", {"grid_width": (_REQUIRED, _number(1, 64, integer=True)),
                                        "grid_height": (_REQUIRED, _number(1, 64, integer=True)),
                                        "magnitude": (_REQUIRED, _number(0, 100, integer=True))},
                          lambda p: _ops.Distort(1, int(p["grid_width"]), int(p["grid_height"]),
                                                 int(p["magnitude"])), None),
    "skew": ("geometric", {"magnitude": (1.0, _number(0, 1, lo_open=True))},
             lambda p: _ops.Skew(1, "RANDOM", p["magnitude"]), None),
    "skew_tilt": ("geometric", {"magnitude": (1.0, _number(0, 1, lo_open=True))},
                  lambda p: _ops.Skew(1, "TILT", p["magnitude"]), None),
    "skew_left_right": ("geometric", {"magnitude": (1.0, _number(0, 1, lo_open=True))},
                        lambda p: _ops.Skew(1, "TILT_LEFT_RIGHT", p["magnitude"]), None),
    "skew_top_bottom": ("geometric", {"magnitude": (1.0, _number(0, 1, lo_open=True))},
                        lambda p: _ops.Skew(1, "TILT_TOP_BOTTOM", p["magnitude"]), None),
    "skew_corner": ("geometric", {"magnitude": (1.0, _number(0, 1, lo_open=True))},
                    lambda p: _ops.Skew(1, "CORNER", p["magnitude"]), None),
    "shear": ("geometric", {"max_shear_left": (_REQUIRED, _number(0, 25, lo_open=True)),
                            "max_shear_right": (_REQUIRED, _number(0, 25, lo_open=True))},
              lambda p: _ops.Shear(1, p["max_shear_left"], p["max_shear_right"]), None),
    "resize": ("geometric", {"width": (_REQUIRED, _number(1, 1 << 15, integer=True)),
                             "height": (_REQUIRED, _number(1, 1 << 15, integer=True)),
                             "resample_filter": ("BICUBIC", _choice(*_RESAMPLE))},
               lambda p: _ops.Resize(1, int(p["width"]), int(p["height"]),
                                     "LANCZOS" if p["resample_filter"] == "ANTIALIAS"
                                     else p["resample_filter"]), None),
    # ------------------------------------------------------------------ intensity: image only
    "random_brightness": ("intensity", {"min_factor": (_REQUIRED, _number(0)),
                                        "max_factor": (_REQUIRED, _number(0))},
                          lambda p: _ops.RandomBrightness(1, p["min_factor"], p["max_factor"]),
                          _min_max),
    "random_contrast": ("intensity", {"min_factor": (_REQUIRED, _number(0)),
                                      "max_factor": (_REQUIRED, _number(0))},
                        lambda p: _ops.RandomContrast(1, p["min_factor"], p["max_factor"]),
                        _min_max),
    "random_color": ("intensity", {"min_factor": (_REQUIRED, _number(0)),
                                   "max_factor": (_REQUIRED, _number(0))},
                     lambda p: _ops.RandomColor(1, p["min_factor"], p["max_factor"]), _min_max),
    "random_erasing": ("intensity", {"rectangle_area": (_REQUIRED, _number(0.1, 1,
                                                                            lo_open=True))},
                       lambda p: _ops.RandomErasing(1, p["rectangle_area"]), None),
    "greyscale": ("intensity", {}, lambda p: None, None),
    # nnU-Net's intensity transforms (Isensee et al. 2021), which Augmentor lacks: computed on
    # the array in kerasmed (any dtype), not through Pillow.
    "gaussian_noise": ("intensity", {"max_sigma": (0.1, _number(0, 1, lo_open=True))},
                       lambda p: types.SimpleNamespace(**p), None),
    "gaussian_blur": ("intensity", {"min_sigma": (0.5, _number(0, 10, lo_open=True)),
                                    "max_sigma": (1.0, _number(0, 10, lo_open=True))},
                      lambda p: types.SimpleNamespace(**p),
                      lambda p: _min_max(p, "min_sigma", "max_sigma")),
    "gamma": ("intensity", {"min_gamma": (0.7, _number(0, 10, lo_open=True)),
                            "max_gamma": (1.5, _number(0, 10, lo_open=True))},
              lambda p: types.SimpleNamespace(**p),
              lambda p: _min_max(p, "min_gamma", "max_gamma")),
}
# Intensity operations that only kerasmed's array code implements (no Augmentor operation).
_ARRAY_ONLY = ("greyscale", "gaussian_noise", "gaussian_blur", "gamma")


def validate_augmentation(spec) -> list[dict]:
    """Check an augmentation spec and return it with every default filled in.

    Raises:
        ValueError: naming the entry (by index and op), the unknown op or key, a missing key,
            or a value out of range.
    """
    if spec is None:
        return []
    if not isinstance(spec, (list, tuple)):
        raise ValueError(f"augmentation must be a list of operations, got {type(spec).__name__}")
    out = []
    for i, entry in enumerate(spec):
        where = f"augmentation[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: each operation is a dict with an 'op' key, got {entry!r}")
        if "op" not in entry:
            raise ValueError(f"{where}: missing 'op' (one of {sorted(OPS)})")
        name = entry["op"]
        if name not in OPS:
            raise ValueError(f"{where}: unknown op {name!r}.{did_you_mean(name, OPS)} "
                             f"Valid ops: {sorted(OPS)}")
        where = f"{where} ({name})"
        _, params, _, cross = OPS[name]
        valid = ["probability", *params]
        for key in entry:
            if key != "op" and key not in valid:
                raise ValueError(f"{where}: unknown key {key!r}.{did_you_mean(key, valid)} "
                                 f"Valid keys: {valid}")
        if "probability" not in entry:
            raise ValueError(f"{where}: missing 'probability' (0 < p <= 1)")
        problem = _number(0, 1, lo_open=True)(entry["probability"])
        if problem:
            raise ValueError(f"{where}: probability {problem}, got {entry['probability']!r}")
        full = {"op": name, "probability": float(entry["probability"])}
        for key, (default, check) in params.items():
            if key not in entry:
                if default is _REQUIRED:
                    raise ValueError(f"{where}: missing {key!r}")
                full[key] = default
                continue
            problem = check(entry[key])
            if problem:
                raise ValueError(f"{where}: {key} {problem}, got {entry[key]!r}")
            full[key] = entry[key]
        problem = cross(full) if cross else None
        if problem:
            raise ValueError(f"{where}: {problem}")
        out.append(full)
    return out


# ------------------------------------------------------------------------ seeded Augmentor calls

class _NearestImage:
    """Stands in for ``PIL.Image`` inside an Augmentor operation run on a mask: every resampling
    filter becomes nearest neighbour, so no new label values are made."""

    NEAREST = BICUBIC = BILINEAR = LANCZOS = ANTIALIAS = BOX = HAMMING = Image.NEAREST

    def __getattr__(self, name):
        return getattr(Image, name)


class _SeededNumpy:
    """Stands in for ``numpy`` inside an Augmentor operation: ``np.random`` is a seeded stream."""

    def __init__(self, seed):
        self.random = np.random.RandomState(seed)

    def __getattr__(self, name):
        return getattr(np, name)


_BASE_GLOBALS = dict(vars(_ops))
_NEAREST_IMAGE = _NearestImage()


def _run_operation(op, images, seed: int, nearest: bool = False):
    """``op.perform_operation(images)`` with its random draws taken from streams seeded by
    ``seed`` (and, with ``nearest``, nearest-neighbour resampling), thread-safely: the method is
    rebuilt over a private copy of its module globals instead of touching Augmentor itself."""
    fn = type(op).perform_operation
    g = _BASE_GLOBALS.copy()
    g["random"] = _pyrandom.Random(seed)
    g["np"] = _SeededNumpy(seed % (2 ** 32))
    if nearest:
        g["Image"] = _NEAREST_IMAGE
    seeded = types.FunctionType(fn.__code__, g, fn.__name__, fn.__defaults__, fn.__closure__)
    return seeded(op, images)


# --------------------------------------------------------------------------- image conversions

def _is_pil8(image):
    return image.dtype == np.uint8 and image.shape[2] in (1, 3)


def _to_pil(image):
    """An ``(H, W, C)`` array as a list of PIL images: one ``L``/``RGB`` image for 8-bit grey or
    RGB, else one ``F`` (float32) image per channel (safe for 16-bit data)."""
    if _is_pil8(image):
        return [Image.fromarray(image[..., 0] if image.shape[2] == 1 else image)]
    return [Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32))
            for c in range(image.shape[2])]


def _from_pil(pils, like):
    if _is_pil8(like):
        out = np.asarray(pils[0])
        return out[..., None] if out.ndim == 2 else out
    out = np.stack([np.asarray(p, dtype=np.float32) for p in pils], axis=-1)
    if np.issubdtype(like.dtype, np.integer):
        info = np.iinfo(like.dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    return out.astype(like.dtype)


def _mask_to_pil(mask):
    if mask.dtype == np.uint8:
        return Image.fromarray(mask)
    if np.issubdtype(mask.dtype, np.floating):
        return Image.fromarray(mask.astype(np.float32))
    return Image.fromarray(mask.astype(np.int32))  # mode "I": labels of any size


# ---------------------------------------------------------------- intensity ops, array version

def _luminance(x):
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


def _intensity_array(name, op, x, seed):
    """Intensity ``name`` on a float array ``x`` (H, W, C); same formulas as PIL's ImageEnhance,
    for images Pillow cannot enhance (16-bit, float, more than 3 channels)."""
    rs = np.random.RandomState(seed % (2 ** 32))
    colour = x.shape[2] >= 3
    if name in ("random_brightness", "random_contrast", "random_color"):
        factor = rs.uniform(op.min_factor, op.max_factor)
        if name == "random_brightness":
            return x * factor
        if name == "random_contrast":
            mean = float(_luminance(x).mean() if colour else x[..., 0].mean())
            return mean + factor * (x - mean)
        if not colour:
            return x
        grey = _luminance(x)[..., None]
        out = x.copy()
        out[..., :3] = grey + factor * (x[..., :3] - grey)
        return out
    if name == "greyscale":
        if not colour:
            return x
        out = x.copy()
        out[..., :3] = _luminance(x)[..., None]
        return out
    if name in ("gaussian_noise", "gaussian_blur", "gamma"):
        return _nnunet_intensity(name, op, x, rs)
    if name == "random_erasing":
        h, w = x.shape[:2]
        py = _pyrandom.Random(seed)
        ew = py.randint(int(w * 0.1), int(w * op.rectangle_area))
        eh = py.randint(int(h * 0.1), int(h * op.rectangle_area))
        left, top = py.randint(0, w - ew), py.randint(0, h - eh)
        out = x.copy()
        lo, hi = float(x.min()), float(x.max())
        out[top:top + eh, left:left + ew] = rs.uniform(lo, hi, (eh, ew, x.shape[2]))
        return out
    raise AssertionError(name)


def _nnunet_intensity(name, op, x, rs):
    """nnU-Net's noise, blur and gamma on a float array in the image's stored range.

    ``gaussian_noise``: additive noise of standard deviation U(0, ``max_sigma``) times the
    image's value range (nnU-Net draws its variance from U(0, 0.1) on normalised images);
    ``gaussian_blur``: a Gaussian of sigma U(``min_sigma``, ``max_sigma``) pixels, each
    channel; ``gamma``: the image's min..max mapped to 0..1, raised to a gamma drawn from
    U(``min_gamma``, ``max_gamma``) and mapped back (its range kept, as nnU-Net's
    ``retain_stats``)."""
    lo, hi = float(x.min()), float(x.max())
    if name == "gaussian_noise":
        sigma = rs.uniform(0, op.max_sigma) * (hi - lo)
        return x + rs.normal(0.0, sigma, x.shape).astype(np.float32) if sigma > 0 else x
    if name == "gaussian_blur":
        sigma = rs.uniform(op.min_sigma, op.max_sigma)
        out = cv2.GaussianBlur(x, (0, 0), sigmaX=sigma, sigmaY=sigma,
                               borderType=cv2.BORDER_REFLECT)
        return out.reshape(x.shape)
    if hi <= lo:
        return x
    gamma = rs.uniform(op.min_gamma, op.max_gamma)
    return lo + (hi - lo) * ((x - lo) / (hi - lo)) ** gamma


# ----------------------------------------------------------------------------------- pipeline

class Augmentation:
    """A validated augmentation pipeline: ``augment(image, mask=None, rng=None)``.

    ``image`` is ``(H, W)`` or ``(H, W, C)`` of any dtype (8/16-bit, float); ``mask`` is ``None``
    or a 2-D (or ``(H, W, 1)``) integer/bool mask. Returns ``(image, mask)`` with the input
    dtypes and channel layout. Operations run in spec order, each when ``rng.random() <
    probability``; a geometric operation gets the same random draws for image and mask.
    """

    def __init__(self, spec):
        self.spec = validate_augmentation(spec)
        self._steps = [(entry["op"], OPS[entry["op"]][0], entry["probability"],
                        OPS[entry["op"]][2](entry)) for entry in self.spec]

    def __len__(self):
        return len(self._steps)

    def __repr__(self):
        return f"Augmentation({[e['op'] for e in self.spec]})"

    def __call__(self, image, mask=None, rng=None):
        if rng is None:
            rng = np.random.default_rng()
        image = np.asarray(image)
        squeeze_image = image.ndim == 2
        if squeeze_image:
            image = image[..., None]
        mask_in = None if mask is None else np.asarray(mask)
        mask_shape = None
        if mask_in is not None:
            mask_shape = mask_in.shape
            mask_work = mask_in.reshape(mask_in.shape[:2])
            if mask_work.dtype == bool:
                mask_work = mask_work.astype(np.uint8)
        pil_images = pil_mask = None
        array = image
        for name, kind, probability, op in self._steps:
            # Two draws per step whether or not it fires, so one step's outcome does not shift
            # the random numbers of the next.
            fire = rng.random() < probability
            seed = int(rng.integers(0, 2 ** 63 - 1))
            if not fire:
                continue
            if kind == "geometric":
                if pil_images is None:
                    pil_images = _to_pil(array)
                pil_images = _run_operation(op, pil_images, seed)
                if mask_in is not None:
                    if pil_mask is None:
                        pil_mask = _mask_to_pil(mask_work)
                    pil_mask = _run_operation(op, [pil_mask], seed, nearest=True)[0]
                array = None
            elif _is_pil8(image) and name not in _ARRAY_ONLY:
                if pil_images is None:
                    pil_images = _to_pil(array)
                pil_images = _run_operation(op, pil_images, seed)  # the image alone
                array = None
            else:
                if array is None:
                    array = _from_pil(pil_images, image)
                out = _intensity_array(name, op, array.astype(np.float32), seed)
                if np.issubdtype(image.dtype, np.integer):
                    info = np.iinfo(image.dtype)
                    out = np.clip(np.rint(out), info.min, info.max)
                array = out.astype(image.dtype)
                pil_images = None
        if array is None:
            array = _from_pil(pil_images, image)
        if squeeze_image:
            array = array[..., 0]
        if mask_in is None:
            return array, None
        if pil_mask is not None:
            mask_out = np.asarray(pil_mask).astype(mask_in.dtype)
            mask_out = mask_out.reshape(mask_out.shape[:2] + tuple(mask_shape[2:]))
        else:
            mask_out = mask_in
        return array, mask_out


def build_augmentation(spec) -> Augmentation:
    """An ``augment(image, mask, rng) -> (image, mask)`` callable for a spec (see the module
    docstring); an empty spec (or ``None``) gives the identity (``len(augment) == 0``).

    Raises:
        ValueError: naming the entry, op and key of a bad spec.
    """
    return Augmentation(spec)
