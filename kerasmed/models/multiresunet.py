"""MultiResUNet (Ibtehaz & Rahman, Neural Networks 121, 2020, arXiv:1902.04049)."""

from __future__ import annotations

import keras
from keras import layers

from kerasmed.models.blocks import (check_input_size, conv2d_bn, default_activation,
                                    multires_block, res_path)
from kerasmed.models.registry import register_model

__all__ = ["multiresunet"]

_AUTO = "auto"


def multiresunet_encoder(x, filters=32, alpha=1.67):
    """The MultiResUNet encoder. Returns ``(bottleneck, skips)``; ``skips`` are the ResPath
    outputs at 1/1, 1/2, 1/4 and 1/8 resolution (ResPath lengths 4, 3, 2, 1)."""
    skips = []
    for level in range(4):
        units = filters * 2**level
        x = multires_block(x, units, name=f"enc{level + 1}", alpha=alpha)
        skips.append(res_path(x, units, 4 - level, name=f"respath{level + 1}"))
        x = layers.MaxPooling2D(2, name=f"enc{level + 1}_pool")(x)
    return multires_block(x, filters * 16, name="bottleneck", alpha=alpha), skips


@register_model(
    "multiresunet",
    description="MultiResUNet (Ibtehaz & Rahman 2020)",
)
def multiresunet(input_shape=(256, 256, 3), classes=1, activation=_AUTO, filters=32, alpha=1.67,
                 name="multiresunet"):
    """Build MultiResUNet.

    Encoder of MultiRes blocks with U = 32, 64, 128, 256, 512 (for ``filters=32``), ResPaths on
    the skips, a decoder of 2x2 stride-2 transpose convs and MultiRes blocks, and a 1x1
    conv + BatchNorm head, as in the authors' Keras code.

    Parameter count at 256x256x3 with one sigmoid output: exactly 7,262,750 (24,522 of them
    non-trainable), the reference implementation's figure; 7,262,504 for one input channel.

    Args:
        input_shape: ``(H, W, C)``, H and W divisible by 16.
        classes: output channels.
        activation: ``"auto"`` (sigmoid for one class, softmax for several), another Keras
            activation, or ``None`` for logits.
        filters: U of the first level (doubled down the encoder).
        alpha: MultiRes width factor W = alpha U.
        name: the model's name.

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images to ``(batch, H, W, classes)``.
    """
    check_input_size(input_shape, 16, name)
    if activation == _AUTO:
        activation = default_activation(classes)
    inputs = keras.Input(input_shape, name="image")
    x, skips = multiresunet_encoder(inputs, filters, alpha)
    for level in reversed(range(4)):
        units = filters * 2**level
        x = layers.Conv2DTranspose(units, 2, strides=2, padding="same",
                                   name=f"dec{level + 1}_upconv")(x)
        x = layers.Concatenate(name=f"dec{level + 1}_skip_concat")([x, skips[level]])
        x = multires_block(x, units, name=f"dec{level + 1}", alpha=alpha)
    # The head computes in float32 so that losses see float32 probabilities under mixed
    # precision; its BatchNorm is the reference's (kept for the exact parameter count).
    outputs = conv2d_bn(x, classes, 1, name="head", activation=activation, dtype="float32")
    return keras.Model(inputs, outputs, name=name)
