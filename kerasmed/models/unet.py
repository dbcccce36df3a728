"""U-Net (Ronneberger, Fischer & Brox, MICCAI 2015, arXiv:1505.04597)."""

from __future__ import annotations

import keras
from keras import layers

from kerasmed.models.blocks import (check_input_size, conv_block, default_activation,
                                    segmentation_head, upsample)
from kerasmed.models.registry import register_model

__all__ = ["unet"]

_AUTO = "auto"


@register_model(
    "unet",
    description="U-Net (Ronneberger et al. 2015)",
    defaults={"input_shape": (256, 256, 3), "filters": 64, "depth": 4, "batch_norm": True,
              "dropout": 0.0, "upsampling": "transpose"},
)
def unet(input_shape=(256, 256, 3), classes=1, activation=_AUTO, filters=64, depth=4,
         batch_norm=True, dropout=0.0, upsampling="transpose", name="unet"):
    """Build a U-Net.

    Args:
        input_shape: ``(H, W, C)``; H and W divisible by ``2**depth`` (or ``None``).
        classes: output channels.
        activation: head activation; ``"auto"`` gives sigmoid for one class and softmax for
            several; ``None`` gives logits.
        filters: filters of the first level, doubled at each level down.
        depth: number of 2x2 max-poolings.
        batch_norm: BatchNormalization after every 3x3 conv.
        dropout: dropout rate between the two convs of each block (0 disables it).
        upsampling: ``"transpose"`` (2x2 stride-2 transpose conv) or ``"bilinear"``/``"nearest"``.
        name: the model's name.

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images to ``(batch, H, W, classes)``.
    """
    check_input_size(input_shape, 2**depth, name)
    if activation == _AUTO:
        activation = default_activation(classes)
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    skips = []
    for level in range(depth):
        x = conv_block(x, filters * 2**level, name=f"enc{level + 1}", batch_norm=batch_norm,
                       dropout=dropout)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{level + 1}_pool")(x)
    x = conv_block(x, filters * 2**depth, name="bottleneck", batch_norm=batch_norm, dropout=dropout)
    for level in reversed(range(depth)):
        f = filters * 2**level
        x = upsample(x, f, name=f"dec{level + 1}", mode=upsampling)
        x = layers.Concatenate(name=f"dec{level + 1}_concat")([x, skips[level]])
        x = conv_block(x, f, name=f"dec{level + 1}", batch_norm=batch_norm, dropout=dropout)
    outputs = segmentation_head(x, classes, activation)
    return keras.Model(inputs, outputs, name=name)
