"""Predicting whole images exactly as the network saw images in training.

kerasmed's loader brings each image to the model's input size in its stored dtype
(``kerasmed.data.spatial.fit_pair``: area interpolation when shrinking, bilinear when
enlarging; letterboxing for ``pad``; crops at native scale for ``center_crop``, ``random_crop``
and ``tile``) and normalises it afterwards. ``predict_image`` repeats those steps with the
run's ``InferenceSettings`` and maps the prediction back onto the image:

- ``resize``: the image is resized as in training, the prediction resized back (bilinear);
- ``pad``: the image is letterboxed as in training, the prediction cut out of the letterbox and
  resized back (bilinear);
- ``tile``: overlapping model-sized tiles at native scale (``sliding_window``), each normalised
  on its own as training normalised each crop, blended with a tent window.

Test-time augmentation averages the prediction over flips (and 90-degree rotations for square
inputs).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import keras
import numpy as np

from kerasmed.data.normalize import make_normalizer
from kerasmed.data.spatial import FIT_MODES, letterbox, letterbox_window, resize_image
from kerasmed.evaluation.choices import INFERENCE_MODES, UNCERTAINTY_METHODS

__all__ = ["InferenceSettings", "INFERENCE_MODES", "inference_mode", "model_input_shape",
           "predict_image", "predict_samples", "sliding_window", "to_mask", "predict_batch",
           "eager_predict", "model_view", "TILE_BATCH"]

_NATIVE_SCALE = ("center_crop", "random_crop", "tile", "patches")
#: Tiles a ``sliding_window`` call predicts at once: fewer were slower on a large image
#: (``benchmarks/train_speed.py --sections predict``; the figures are in
#: ``benchmarks/RESULTS.md``), and 16 model-sized tiles are small next to the activations of
#: one training batch.
TILE_BATCH = 16
_INTERPOLATION = ("image: area when shrinking, bilinear when enlarging (as the loader); "
                  "prediction back to the image: bilinear")


def inference_mode(fit: str) -> str:
    """The inference mode that shows a network images the way ``data.fit`` showed them."""
    if fit not in FIT_MODES:
        raise ValueError(f"unknown fit mode {fit!r}; choose one of {FIT_MODES}")
    return "tile" if fit in _NATIVE_SCALE else fit


@dataclass(frozen=True)
class InferenceSettings:
    """How images reach a network at inference: a run's own ``data`` settings.

    Attributes:
        fit: the run's ``data.fit``.
        image_size: ``(height, width)`` the network was trained at (its input size).
        channels: 1 or 3, as the images were read in training.
        normalization: the run's ``data.normalization``.
        mask_threshold: the run's ``data.mask_threshold`` (for reading ground truth).
        mode: ``resize``, ``pad`` or ``tile``; ``None`` derives it from ``fit``.
        pad_value: the value letterboxes and crops are padded with (the loader's).
    """

    fit: str = "resize"
    image_size: tuple = (256, 256)
    channels: int = 3
    normalization: object = "auto"
    mask_threshold: float | None = None
    mode: str | None = None
    pad_value: float = 0

    def __post_init__(self):
        object.__setattr__(self, "image_size", tuple(int(s) for s in self.image_size))
        mode = inference_mode(self.fit) if self.mode is None else self.mode
        if mode not in INFERENCE_MODES:
            raise ValueError(f"inference mode must be one of {INFERENCE_MODES}, got {mode!r}")
        object.__setattr__(self, "mode", mode)

    def record(self) -> dict:
        """The settings as JSON-ready values, for an evaluation's ``summary.json``."""
        out = asdict(self)
        out["image_size"] = list(self.image_size)
        out["interpolation"] = _INTERPOLATION
        return out


def model_input_shape(model):
    """``(height, width, channels)`` of a model's (first) image input."""
    shape = model.inputs[0].shape
    return tuple(shape[1:4])


def _evaluated(model, out):
    """The evaluated output (the last one of deep-supervision models) as float32 NumPy."""
    if isinstance(out, (list, tuple)):
        out = out[-1]  # deep supervision: the last output is the one evaluated
    elif isinstance(out, dict):
        out = out[model.output_names[-1]]
    return np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float32)


def predict_batch(model, batch):
    """The evaluated output (the last one of deep-supervision models) as float32 NumPy."""
    return _evaluated(model, model.predict_on_batch(batch))


def eager_predict(model, batch):
    """The evaluated output of an eager call ``model(batch, training=False)`` (no compiled
    predict function: Monte Carlo dropout changes the layers between calls)."""
    return _evaluated(model, model(batch, training=False))


def _transforms(h, w):
    # Quarter turns of a non-square image would change its shape; half turns do not.
    return [(flip, k) for flip in (False, True) for k in (range(4) if h == w else (0, 2))]


def _augmented_predictions(predict, x, axes):
    """``predict`` of every flip and rotation of ``x`` (``axes``: its rows and columns), each
    turned back onto ``x``: the test-time augmentations, in one order."""
    rows, cols = axes
    outs = []
    for flip, k in _transforms(x.shape[rows], x.shape[cols]):
        y = np.rot90(predict(np.ascontiguousarray(
            np.rot90(np.flip(x, cols) if flip else x, k, axes=axes))), -k, axes=axes)
        outs.append(np.flip(y, cols) if flip else y)
    return outs


def _tta_predict(model, batch, tta: bool, predict=None):
    predict = predict or predict_batch
    if not tta:
        return predict(model, batch)
    return np.mean(_augmented_predictions(lambda x: predict(model, x), batch, (1, 2)), axis=0)


def _weights(h, w):
    # A tent window: tiles count most at their centre, so seams between tiles vanish.
    wy = 1.0 - np.abs(np.linspace(-1, 1, h)) * 0.9
    wx = 1.0 - np.abs(np.linspace(-1, 1, w)) * 0.9
    return np.outer(wy, wx).astype(np.float32)[..., None]


def _as_channels(x):
    return x[..., None] if x.ndim == 2 else x


def sliding_window(model, image: np.ndarray, overlap: float = 0.5, tta: bool = False,
                   batch_size: int = TILE_BATCH, normalize=None, pad_value=None,
                   predict=None) -> np.ndarray:
    """Predict an ``(H, W, C)`` image of any size with overlapping model-sized tiles.

    ``normalize`` (a callable) is applied to each tile on its own, as the loader normalises
    each training crop; without it ``image`` must be normalised already. An image smaller than
    a tile is padded with ``pad_value`` (the loader's crop padding), or reflected when it is
    ``None``. Tiles step by ``tile * (1 - overlap)``; their predictions are blended with a tent
    window. ``predict(model, batch)`` replaces the compiled ``predict_batch``. Returns
    ``(H, W, classes)``.
    """
    th, tw = model_input_shape(model)[:2]
    h, w = image.shape[:2]
    pad = ((0, max(0, th - h)), (0, max(0, tw - w)), (0, 0))
    if pad_value is not None:
        padded = np.pad(image, pad, mode="constant", constant_values=pad_value)
    else:
        padded = np.pad(image, pad, mode="reflect" if min(h, w) > 1 else "edge")
    H, W = padded.shape[:2]
    sy, sx = max(1, int(th * (1 - overlap))), max(1, int(tw * (1 - overlap)))
    ys = list(range(0, H - th + 1, sy)) + ([H - th] if (H - th) % sy else [])
    xs = list(range(0, W - tw + 1, sx)) + ([W - tw] if (W - tw) % sx else [])
    corners = [(y, x) for y in ys for x in xs]
    weight = _weights(th, tw)
    acc, norm = None, np.zeros((H, W, 1), np.float32)
    for i in range(0, len(corners), batch_size):
        chunk = corners[i:i + batch_size]
        tiles = [padded[y:y + th, x:x + tw] for y, x in chunk]
        if normalize is not None:
            tiles = [_as_channels(normalize(t)) for t in tiles]
        preds = _tta_predict(model, np.stack(tiles).astype(np.float32), tta, predict)
        if acc is None:
            acc = np.zeros((H, W, preds.shape[-1]), np.float32)
        for (y, x), p in zip(chunk, preds):
            acc[y:y + th, x:x + tw] += p * weight
            norm[y:y + th, x:x + tw] += weight
    return (acc / norm)[:h, :w]


def _back_to(prob, h, w):
    if prob.shape[:2] != (h, w):
        prob = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
    return _as_channels(prob)


def predict_image(model, image: np.ndarray, mode: str = "resize", normalization="auto",
                  overlap: float = 0.5, tta: bool = False, pad_value=0,
                  predict=None) -> np.ndarray:
    """Probability map ``(H, W, classes)`` of a raw ``(H, W, C)`` image (its stored dtype).

    ``mode`` is ``resize``, ``pad`` or ``tile`` (see the module docstring): the image reaches
    the model's input size exactly as kerasmed's loader brought training images there, and is
    normalised after that, as in training. ``InferenceSettings.mode`` gives a run's mode.
    ``predict(model, batch)`` replaces the compiled ``predict_batch`` (``eager_predict``).
    """
    if mode not in INFERENCE_MODES:
        raise ValueError(f"mode must be one of {INFERENCE_MODES}, got {mode!r}")
    h, w = image.shape[:2]
    normalize = make_normalizer(normalization)
    if mode == "tile":
        return sliding_window(model, image, overlap=overlap, tta=tta, normalize=normalize,
                              pad_value=pad_value, predict=predict)
    size = model_input_shape(model)[:2]
    if mode == "resize":
        x = resize_image(image, size)
    else:
        x, _ = letterbox(image, size, pad_value)
    x = _as_channels(normalize(x)).astype(np.float32)
    prob = _tta_predict(model, x[None], tta, predict)[0]
    if mode == "pad":  # un-letterbox: the window the image occupies
        _, top, left, nh, nw = letterbox_window((h, w), size)
        prob = prob[top:top + nh, left:left + nw]
    return _back_to(prob, h, w)


def predict_samples(model, image: np.ndarray, method: str, samples: int = 8,
                    mode: str = "resize", normalization="auto", overlap: float = 0.5,
                    pad_value=0) -> np.ndarray:
    """Several predictions of one image for its uncertainty; returns ``(S, H, W, classes)``.

    ``method="tta"``: one per flip and rotation of the image (8, or 4 for non-square images;
    ``samples`` is ignored); ``"mc_dropout"``: ``samples`` passes with the network's dropout
    active (``kerasmed.evaluation.calibration.mc_dropout``).
    """
    from kerasmed.evaluation.calibration import mc_dropout

    if method not in UNCERTAINTY_METHODS:
        raise ValueError(f"uncertainty method must be "
                         f"{' or '.join(repr(m) for m in UNCERTAINTY_METHODS)}, got {method!r}")
    if method == "tta":
        return np.stack(_augmented_predictions(
            lambda x: predict_image(model, x, mode, normalization, overlap, pad_value=pad_value),
            image, (0, 1)))
    with mc_dropout(model):
        return np.stack([predict_image(model, image, mode, normalization, overlap,
                                       pad_value=pad_value, predict=eager_predict)
                         for _ in range(int(samples))])


def model_view(image: np.ndarray, size, mode: str = "resize", normalization="auto",
               pad_value=0):
    """One image as the network sees it at its input ``size``, and the way back.

    ``resize`` and ``pad`` as ``predict_image`` does; ``tile`` takes the image's centre window
    at native scale (padded with ``pad_value`` where the image is smaller), as ``center_crop``
    training did. Returns ``(x, back)``: ``x`` float32 ``(h, w, C)``; ``back(map)`` places a
    ``(h, w)`` map over the image's own ``(H, W)`` (zero outside a centre window).
    """
    from kerasmed.data.spatial import crop_pair

    h, w = image.shape[:2]
    size = (int(size[0]), int(size[1]))
    normalize = make_normalizer(normalization)
    if mode == "resize":
        x = resize_image(image, size)

        def back(m):
            return cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)
    elif mode == "pad":
        x, _ = letterbox(image, size, pad_value)
        _, top, left, nh, nw = letterbox_window((h, w), size)

        def back(m):
            return cv2.resize(np.ascontiguousarray(m[top:top + nh, left:left + nw]), (w, h),
                              interpolation=cv2.INTER_LINEAR)
    elif mode == "tile":
        y0, x0 = (h - size[0]) // 2, (w - size[1]) // 2
        x, _ = crop_pair(image, None, y0, x0, size, pad_value)

        def back(m):
            out = np.zeros((h, w), np.float32)
            ys, xs = max(0, y0), max(0, x0)
            out[ys:min(h, y0 + size[0]), xs:min(w, x0 + size[1])] = \
                m[ys - y0:min(h, y0 + size[0]) - y0, xs - x0:min(w, x0 + size[1]) - x0]
            return out
    else:
        raise ValueError(f"mode must be one of {INFERENCE_MODES}, got {mode!r}")
    return _as_channels(normalize(x)).astype(np.float32), back


def to_mask(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binary ``(H, W)`` mask from one channel (threshold) or class index map (argmax)."""
    if prob.shape[-1] == 1:
        return (prob[..., 0] > threshold).astype(np.uint8)
    return np.argmax(prob, axis=-1).astype(np.uint8)
