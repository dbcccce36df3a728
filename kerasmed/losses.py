"""Segmentation losses as registered Keras objects, usable by name in experiment files.

Every loss takes ``mode``:

* ``"binary"``: ``y_pred`` holds sigmoid probabilities ``(batch, ..., channels)``; ``y_true`` is
  0/1 of the same shape (the channel axis may be left out of ``y_true``);
* ``"multiclass"``: ``y_pred`` holds softmax probabilities; ``y_true`` is one-hot;
* ``"sparse"``: ``y_pred`` holds softmax probabilities; ``y_true`` is an integer class map of
  shape ``(batch, ..., 1)`` or ``(batch, ...)``;

and ``from_logits`` (``y_pred`` are logits: sigmoid in binary mode, softmax otherwise).

Overlap losses (Dice, Jaccard, Tversky) are computed per image and per class, over the spatial
axes (2-D or 3-D), averaged over the classes, then over the batch by Keras' reduction. A
smoothing term ``smooth`` in numerator and denominator makes an empty prediction of an empty
mask a perfect score (loss ~0) rather than 0/0. Inputs are cast to float32 first, so the losses
accept float16/bfloat16 model outputs under mixed precision. Only ``keras.ops`` is used, so they
run under the TensorFlow, JAX and PyTorch backends.

``get(spec)`` builds a loss from a name, a ``{"name": ..., **kwargs}`` dict or an object;
``available()`` lists kerasmed's own names.
"""

from __future__ import annotations

import inspect
import re

import keras
from keras import ops

from kerasmed.names import unknown_name_message

__all__ = ["DiceLoss", "JaccardLoss", "BCEDiceLoss", "FocalLoss", "TverskyLoss",
           "FocalTverskyLoss", "WeightedCrossentropyLoss", "get", "available", "lookup", "MODES",
           "check_mode", "prepare", "confusion_sums", "tversky_index"]

MODES = ("binary", "multiclass", "sparse")
_EPS = 1e-7


def check_mode(mode):
    """Raise ``ValueError`` unless ``mode`` is one of ``MODES``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")


def prepare(y_true, y_pred, mode: str, from_logits: bool = False):
    """Return ``(y_true, y_pred)`` as float32 probabilities of the same shape ``(batch, ..., C)``.

    Sparse targets become one-hot; binary targets without a channel axis gain one.
    """
    check_mode(mode)
    # float32 whatever the model's compute dtype: sums over a 512x512 image overflow float16
    # and lose most of their digits in bfloat16.
    y_pred = ops.cast(y_pred, "float32")
    if from_logits:
        y_pred = ops.sigmoid(y_pred) if mode == "binary" else ops.softmax(y_pred, axis=-1)
    if mode == "sparse":
        y_true = ops.cast(y_true, "int32")
        if len(y_true.shape) == len(y_pred.shape):
            y_true = ops.squeeze(y_true, axis=-1)
        y_true = ops.one_hot(y_true, y_pred.shape[-1])
    y_true = ops.cast(y_true, "float32")
    if len(y_true.shape) == len(y_pred.shape) - 1:
        y_true = ops.expand_dims(y_true, -1)
    return y_true, y_pred


def confusion_sums(y_true, y_pred):
    """Soft (or, for 0/1 inputs, hard) true positives, false positives and false negatives.

    Returns ``(tp, fp, fn)``, each of shape ``(batch, classes)``: sums over the spatial axes of
    each image, so every image is scored on its own.
    """
    axes = tuple(range(1, len(y_pred.shape) - 1))
    tp = ops.sum(y_true * y_pred, axis=axes)
    fp = ops.sum((1.0 - y_true) * y_pred, axis=axes)
    fn = ops.sum(y_true * (1.0 - y_pred), axis=axes)
    return tp, fp, fn


def tversky_index(y_true, y_pred, alpha, beta, smooth):
    """Smoothed Tversky index ``(TP + s) / (TP + alpha FP + beta FN + s)``, shape ``(batch, C)``.

    alpha = beta = 1 is the Jaccard index; alpha = beta = 1/2 with ``s`` halved is the Dice
    coefficient ``(2 TP + s) / (2 TP + FP + FN + s)`` (Salehi et al. 2017).
    """
    tp, fp, fn = confusion_sums(y_true, y_pred)
    # The extra epsilon only matters for smooth=0 on an empty image, where it turns 0/0 into a
    # perfect score; elsewhere it is far below any sum of pixels.
    smooth = smooth + _EPS
    return (tp + smooth) / (tp + alpha * fp + beta * fn + smooth)


def _soft_dice(y_true, y_pred, smooth):
    return tversky_index(y_true, y_pred, 0.5, 0.5, smooth / 2.0)


class _SegmentationLoss(keras.losses.Loss):
    """Shared options (``mode``, ``from_logits``); subclasses return one value per image."""

    def __init__(self, mode="binary", from_logits=False, name=None,
                 reduction="sum_over_batch_size", dtype=None):
        check_mode(mode)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.mode = mode
        self.from_logits = bool(from_logits)

    def call(self, y_true, y_pred):
        return self.per_image(*prepare(y_true, y_pred, self.mode, self.from_logits))

    def per_image(self, y_true, y_pred):  # pragma: no cover - abstract
        raise NotImplementedError

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "from_logits": self.from_logits}


class _OverlapLoss(_SegmentationLoss):
    """Adds ``smooth``, the additive term of the overlap indices."""

    def __init__(self, mode="binary", from_logits=False, smooth=1.0, **kwargs):
        super().__init__(mode, from_logits, **kwargs)
        self.smooth = float(smooth)

    def get_config(self):
        return {**super().get_config(), "smooth": self.smooth}


@keras.saving.register_keras_serializable(package="kerasmed")
class DiceLoss(_OverlapLoss):
    """Soft Dice loss (Milletari et al. 2016, V-Net), ``1 - (2 TP + s) / (2 TP + FP + FN + s)``.

    The denominator is ``sum(y_true) + sum(y_pred)`` (the linear form most implementations use;
    V-Net squares the terms). Returns one value per image: the mean over classes of 1 - Dice.
    """

    def __init__(self, mode="binary", from_logits=False, smooth=1.0, name="dice_loss", **kwargs):
        super().__init__(mode, from_logits, smooth, name=name, **kwargs)

    def per_image(self, y_true, y_pred):
        return 1.0 - ops.mean(_soft_dice(y_true, y_pred, self.smooth), axis=-1)


@keras.saving.register_keras_serializable(package="kerasmed")
class JaccardLoss(_OverlapLoss):
    """Soft Jaccard (IoU) loss, ``1 - (TP + s) / (TP + FP + FN + s)``.

    Returns one value per image: the mean over classes of 1 - IoU.
    """

    def __init__(self, mode="binary", from_logits=False, smooth=1.0, name="jaccard_loss",
                 **kwargs):
        super().__init__(mode, from_logits, smooth, name=name, **kwargs)

    def per_image(self, y_true, y_pred):
        return 1.0 - ops.mean(tversky_index(y_true, y_pred, 1.0, 1.0, self.smooth), axis=-1)


@keras.saving.register_keras_serializable(package="kerasmed")
class TverskyLoss(_OverlapLoss):
    """Tversky loss (Salehi et al. 2017), ``1 - (TP + s) / (TP + alpha FP + beta FN + s)``.

    ``alpha`` weighs false positives and ``beta`` false negatives; the default ``beta > alpha``
    (0.3 / 0.7, the paper's best) penalises missed foreground more, for small lesions.
    Returns one value per image, the mean over classes.
    """

    def __init__(self, mode="binary", from_logits=False, smooth=1.0, alpha=0.3, beta=0.7,
                 name="tversky_loss", **kwargs):
        super().__init__(mode, from_logits, smooth, name=name, **kwargs)
        self.alpha, self.beta = float(alpha), float(beta)

    def index(self, y_true, y_pred):
        return tversky_index(y_true, y_pred, self.alpha, self.beta, self.smooth)

    def per_image(self, y_true, y_pred):
        return 1.0 - ops.mean(self.index(y_true, y_pred), axis=-1)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "beta": self.beta}


@keras.saving.register_keras_serializable(package="kerasmed")
class FocalTverskyLoss(TverskyLoss):
    """Focal Tversky loss (Abraham & Khan 2019), ``(1 - TI) ** gamma`` per class.

    The paper writes the exponent as ``1/gamma`` with gamma = 4/3; here ``gamma`` is the exponent
    itself, so the default 0.75 is the paper's setting. Returns one value per image, the mean
    over classes.
    """

    def __init__(self, mode="binary", from_logits=False, smooth=1.0, alpha=0.3, beta=0.7,
                 gamma=0.75, name="focal_tversky_loss", **kwargs):
        super().__init__(mode, from_logits, smooth, alpha, beta, name=name, **kwargs)
        self.gamma = float(gamma)

    def per_image(self, y_true, y_pred):
        # x ** 0.75 has an infinite slope at 0 (a perfect image); the floor keeps it finite.
        distance = ops.maximum(1.0 - self.index(y_true, y_pred), _EPS)
        return ops.mean(ops.power(distance, self.gamma), axis=-1)

    def get_config(self):
        return {**super().get_config(), "gamma": self.gamma}


def _pixel_mean(x):
    return ops.mean(x, axis=tuple(range(1, len(x.shape))))


def _crossentropy(y_true, y_pred, mode):
    """Per-pixel cross-entropy of probabilities, shape ``(batch, ...)``.

    Binary: binary cross-entropy averaged over the channels; otherwise categorical.
    """
    p = ops.clip(y_pred, _EPS, 1.0 - _EPS)  # log(0) guard, as Keras' own cross-entropies
    if mode == "binary":
        return ops.mean(-(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p)), axis=-1)
    return -ops.sum(y_true * ops.log(p), axis=-1)


@keras.saving.register_keras_serializable(package="kerasmed")
class BCEDiceLoss(_OverlapLoss):
    """``bce_weight`` * cross-entropy + ``dice_weight`` * soft Dice loss.

    Binary cross-entropy in binary mode, categorical cross-entropy otherwise, averaged over the
    pixels of each image; the Dice term is ``DiceLoss``'s. Returns one value per image.
    """

    def __init__(self, mode="binary", from_logits=False, smooth=1.0, bce_weight=1.0,
                 dice_weight=1.0, name="bce_dice_loss", **kwargs):
        super().__init__(mode, from_logits, smooth, name=name, **kwargs)
        self.bce_weight, self.dice_weight = float(bce_weight), float(dice_weight)

    def per_image(self, y_true, y_pred):
        ce = _pixel_mean(_crossentropy(y_true, y_pred, self.mode))
        dice = 1.0 - ops.mean(_soft_dice(y_true, y_pred, self.smooth), axis=-1)
        return self.bce_weight * ce + self.dice_weight * dice

    def get_config(self):
        return {**super().get_config(), "bce_weight": self.bce_weight,
                "dice_weight": self.dice_weight}


@keras.saving.register_keras_serializable(package="kerasmed")
class FocalLoss(_SegmentationLoss):
    """Focal loss (Lin et al. 2017), ``-alpha_t (1 - p_t) ** gamma log(p_t)``, mean over pixels.

    Binary mode weighs foreground by ``alpha`` and background by ``1 - alpha`` and averages the
    channels; the other modes weigh every class by ``alpha`` and sum over the classes (the
    categorical cross-entropy form). Returns one value per image.
    """

    def __init__(self, mode="binary", from_logits=False, alpha=0.25, gamma=2.0,
                 name="focal_loss", **kwargs):
        super().__init__(mode, from_logits, name=name, **kwargs)
        self.alpha, self.gamma = float(alpha), float(gamma)

    def per_image(self, y_true, y_pred):
        p = ops.clip(y_pred, _EPS, 1.0 - _EPS)
        if self.mode == "binary":
            p_t = y_true * p + (1.0 - y_true) * (1.0 - p)
            alpha_t = y_true * self.alpha + (1.0 - y_true) * (1.0 - self.alpha)
            loss = ops.mean(-alpha_t * ops.power(1.0 - p_t, self.gamma) * ops.log(p_t), axis=-1)
        else:
            loss = -ops.sum(self.alpha * y_true * ops.power(1.0 - p, self.gamma) * ops.log(p),
                            axis=-1)
        return _pixel_mean(loss)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha, "gamma": self.gamma}


@keras.saving.register_keras_serializable(package="kerasmed")
class WeightedCrossentropyLoss(_SegmentationLoss):
    """Class-weighted cross-entropy, ``-sum_c w_c y_c log p_c``, mean over the pixels.

    Micro-Net (Raza et al. 2019) trains with a weighted cross-entropy so that thin gland and
    nucleus boundaries and small objects are not swamped by the background. ``class_weights``
    holds one weight per class (binary mode: ``[background, foreground]``); ``None`` weighs
    every class 1 (plain cross-entropy). Returns one value per image.
    """

    def __init__(self, mode="multiclass", from_logits=False, class_weights=None,
                 name="weighted_crossentropy_loss", **kwargs):
        super().__init__(mode, from_logits, name=name, **kwargs)
        if class_weights is not None:
            class_weights = [float(w) for w in class_weights]
            if not class_weights or min(class_weights) < 0:
                raise ValueError(f"class_weights must be non-negative numbers, one per class; "
                                 f"got {class_weights}")
            if mode == "binary" and len(class_weights) != 2:
                raise ValueError(f"binary mode takes class_weights [background, foreground]; "
                                 f"got {class_weights}")
        self.class_weights = class_weights

    def per_image(self, y_true, y_pred):
        p = ops.clip(y_pred, _EPS, 1.0 - _EPS)
        if self.mode == "binary":
            w0, w1 = self.class_weights or (1.0, 1.0)
            loss = ops.mean(-(w1 * y_true * ops.log(p) + w0 * (1.0 - y_true) * ops.log(1.0 - p)),
                            axis=-1)
        else:
            weights = 1.0 if self.class_weights is None else ops.convert_to_tensor(
                self.class_weights, "float32")
            if self.class_weights is not None and len(self.class_weights) != y_pred.shape[-1]:
                raise ValueError(f"{len(self.class_weights)} class_weights for "
                                 f"{y_pred.shape[-1]} output classes")
            loss = -ops.sum(weights * y_true * ops.log(p), axis=-1)
        return _pixel_mean(loss)

    def get_config(self):
        return {**super().get_config(), "class_weights": self.class_weights}


# ---------------------------------------------------------------------------------------------
# Lookup by name, shared with kerasmed.metrics.


def _snake(name: str) -> str:
    # Keras' own rule (BinaryCrossentropy -> binary_crossentropy, KLDivergence -> kl_divergence).
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _keras_classes(module, base) -> dict:
    """Public classes of ``keras.losses`` / ``keras.metrics``, by class and snake_case name."""
    found = {}
    for obj in vars(module).values():
        if inspect.isclass(obj) and issubclass(obj, base) and obj is not base:
            found[obj.__name__] = found[_snake(obj.__name__)] = obj
    return found


def _init_params(cls) -> list[str]:
    """Keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up the class chain."""
    params = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        sig = inspect.signature(klass.__init__).parameters.values()
        params += [p.name for p in sig if p.name != "self"
                   and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        if not any(p.kind == p.VAR_KEYWORD for p in sig):
            break
    return list(dict.fromkeys(params))


def _construct(kind, name, cls, kwargs):
    params = _init_params(cls)
    for key in kwargs:
        if key not in params:
            raise ValueError(unknown_name_message(f"{kind} {name!r} argument", key, params))
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{kind} {name!r}: {err}") from err


def lookup(kind, spec, own: dict, aliases: dict, module, base, default_name=False):
    """Resolve ``spec`` (name, ``{"name": ..., **kwargs}`` or object) for ``losses``/``metrics``.

    kerasmed's names (``own``) come first, then ``aliases`` and Keras' own classes and names.
    With ``default_name`` the object is named as the user spelled it (metric history columns).
    Raises ``ValueError`` for an unknown name (suggesting the nearest) or an unknown keyword.
    """
    if isinstance(spec, base) or (callable(spec) and not isinstance(spec, (str, dict))):
        return spec
    kwargs = {}
    if isinstance(spec, dict):
        kwargs = {k: v for k, v in spec.items() if k != "name"}
        spec = spec.get("name")
    if not isinstance(spec, str):
        raise ValueError(f'a {kind} is a name or {{"name": ..., ...}}, got {spec!r}')
    if spec in own:
        if default_name:
            kwargs = {"name": spec, **kwargs}
        return _construct(kind, spec, own[spec], kwargs)
    name = aliases.get(spec, spec)
    classes = _keras_classes(module, base)
    if name in classes:
        return _construct(kind, spec, classes[name], kwargs)
    try:  # Keras' function names and short aliases ("mse", "acc")
        found = module.get(name)
    except (ValueError, TypeError):
        found = None
    if found is None:
        choices = set(own) | set(aliases) | {n for n in classes if n.islower()}
        raise ValueError(unknown_name_message(kind, spec, choices))
    if kwargs:
        raise ValueError(f"{kind} {spec!r} takes no arguments; got {sorted(kwargs)}")
    return found


_NAMES = {"dice": DiceLoss, "jaccard": JaccardLoss, "iou": JaccardLoss, "bce_dice": BCEDiceLoss,
          "focal": FocalLoss, "tversky": TverskyLoss, "focal_tversky": FocalTverskyLoss,
          "weighted_crossentropy": WeightedCrossentropyLoss}
_ALIASES = {"bce": "binary_crossentropy", "cce": "categorical_crossentropy",
            "scce": "sparse_categorical_crossentropy"}


def available() -> list[str]:
    """Return the sorted names of kerasmed's own losses (Keras' names are accepted too)."""
    return sorted(_NAMES)


def get(spec):
    """Return a loss from a name, a ``{"name": ..., **kwargs}`` dict or a loss object/function.

    kerasmed's names (``available()``) take priority over Keras' (which has its own ``dice`` and
    ``tversky``); other names go to Keras (``"bce"`` is ``"binary_crossentropy"``). Raises
    ``ValueError`` for an unknown name (with the nearest one) or an unknown keyword argument.
    """
    return lookup("loss", spec, _NAMES, _ALIASES, keras.losses, keras.losses.Loss)
