"""Generic blocks: conv-BN-activation, the U-Net double conv, upsampling, the float32
segmentation head and the input-size check every network uses."""

from __future__ import annotations

from keras import layers

__all__ = ["conv_bn_act", "conv_block", "upsample", "segmentation_head", "check_input_size",
           "default_activation", "check_choice", "check_depth", "INTERPOLATIONS", "UPSAMPLE_MODES", "POOLINGS"]

# Interpolations of a 2x upsampling (keras.layers.UpSampling2D).
INTERPOLATIONS = ("bilinear", "nearest")
# ``upsample``'s modes, and the ``upsampling`` choices of the networks that upsample with a
# transpose conv or an interpolation (UNet++, U^2-Net, UNet 3+).
UPSAMPLE_MODES = ("transpose",) + INTERPOLATIONS
# Downsampling between encoder levels: max pooling, or a 2x2 stride-2 conv (U^2-Net, UNet 3+).
POOLINGS = ("max", "strided")


def check_choice(value, argument: str, choices):
    """``value`` if it is one of ``choices``, else ``ValueError`` naming ``argument``."""
    if value not in choices:
        raise ValueError(f"{argument} must be one of {choices}, got {value!r}")
    return value


def conv_bn_act(x, filters, kernel_size=3, *, name, strides=1, dilation_rate=1, activation="relu",
                batch_norm=True, padding="same", use_bias=None, kernel_regularizer=None):
    """Conv2D, then BatchNormalization (optional), then an activation (optional).

    The conv has no bias when batch norm follows it: the norm's offset makes it redundant.
    Returns the output tensor.
    """
    if use_bias is None:
        use_bias = not batch_norm
    x = layers.Conv2D(filters, kernel_size, strides=strides, dilation_rate=dilation_rate,
                      padding=padding, use_bias=use_bias, kernel_initializer="he_normal",
                      kernel_regularizer=kernel_regularizer, name=f"{name}_conv")(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    if activation is not None:
        x = layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def conv_block(x, filters, *, name, batch_norm=True, dropout=0.0, activation="relu"):
    """U-Net's double conv: two 3x3 conv-BN-act, with optional dropout between them."""
    x = conv_bn_act(x, filters, name=f"{name}_1", batch_norm=batch_norm, activation=activation)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return conv_bn_act(x, filters, name=f"{name}_2", batch_norm=batch_norm, activation=activation)


def upsample(x, filters, *, name, mode="transpose"):
    """Double the spatial size: a 2x2 stride-2 transpose conv, or bilinear/nearest interpolation.

    Interpolation keeps the channel count (``filters`` is ignored); the decoder's following conv
    mixes channels, as in the Keras U-Nets the papers compared against.
    """
    if mode == "transpose":
        return layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"{name}_upconv")(x)
    check_choice(mode, "upsampling", UPSAMPLE_MODES)
    return layers.UpSampling2D(2, interpolation=mode, name=f"{name}_upsample")(x)


def segmentation_head(x, classes, activation, *, name="head"):
    """1x1 conv to ``classes`` channels and the output activation, computed in float32.

    The head runs in float32 whatever the global precision policy, so that losses and metrics see
    float32 probabilities under mixed precision. ``activation=None`` returns logits.
    """
    x = layers.Conv2D(classes, 1, name=f"{name}_conv", dtype="float32")(x)
    if activation is not None:
        x = layers.Activation(activation, name=f"{name}_{activation}", dtype="float32")(x)
    return x


def check_input_size(input_shape, stride: int, model_name: str):
    """Raise ``ValueError`` unless both spatial sizes are ``None`` or divisible by ``stride``."""
    for size in input_shape[:2]:
        if size is not None and size % stride:
            raise ValueError(
                f"{model_name}: input size {tuple(input_shape[:2])} must be divisible by {stride} "
                f"(the network's total stride)"
            )


def check_depth(input_shape, depth: int, model_name: str, minimum: int = 1):
    """Raise ``ValueError`` unless ``depth`` (the number of 2x downsamplings) is at least
    ``minimum`` and the input's spatial sizes are divisible by ``2**depth``."""
    if depth < minimum:
        raise ValueError(f"{model_name}: depth must be at least {minimum}, got {depth}")
    check_input_size(input_shape, 2**depth, model_name)


def default_activation(classes: int) -> str:
    """Sigmoid for one class, softmax for several."""
    return "sigmoid" if classes == 1 else "softmax"
