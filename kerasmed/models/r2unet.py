"""R2U-Net and Attention R2U-Net (Alom et al., "Recurrent Residual Convolutional Neural Network
based on U-Net (R2U-Net) for Medical Image Segmentation", 2018, arXiv:1802.06955)."""

from __future__ import annotations

import keras
from keras import layers

from kerasmed.models.blocks import (check_input_size, decoder_upsample, gated_skip_concat,
                                    default_activation, rrcnn_block, segmentation_head)
from kerasmed.models.registry import register_model

__all__ = ["r2unet", "attention_r2unet"]

_AUTO = "auto"

def _r2unet_graph(input_shape, classes, activation, filters, depth, t, shared_weights, batch_norm,
                  dropout, upsampling, name, attention=False, gate_reduction=2):
    check_input_size(input_shape, 2**depth, name)
    if activation == _AUTO:
        activation = default_activation(classes)
    block = dict(t=t, shared_weights=shared_weights, batch_norm=batch_norm, dropout=dropout)
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    skips = []
    for level in range(depth):
        x = rrcnn_block(x, filters * 2**level, name=f"enc{level + 1}", **block)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{level + 1}_pool")(x)
    x = rrcnn_block(x, filters * 2**depth, name="bottleneck", **block)
    for level in reversed(range(depth)):
        f = filters * 2**level
        x = decoder_upsample(x, f, name=f"dec{level + 1}", mode=upsampling, batch_norm=batch_norm)
        x = gated_skip_concat(x, skips[level], name=f"dec{level + 1}", attention=attention,
                              gate_reduction=gate_reduction, batch_norm=batch_norm)
        x = rrcnn_block(x, f, name=f"dec{level + 1}", **block)
    outputs = segmentation_head(x, classes, activation)
    return keras.Model(inputs, outputs, name=name)


@register_model("r2unet", description="R2U-Net (Alom et al. 2018): U-Net of recurrent residual "
                "conv blocks")
def r2unet(input_shape=(256, 256, 3), classes=1, activation=_AUTO, filters=64, depth=4, t=2,
           shared_weights=True, batch_norm=True, dropout=0.0, upsampling="bilinear_conv",
           name="r2unet"):
    """Build an R2U-Net (Alom et al. 2018, arXiv:1802.06955).

    Every U-Net double conv is replaced by a recurrent residual block: a 1x1 conv to the level's
    filters, two recurrent conv layers (h = relu(bn(conv(x))), then ``t`` times
    h = relu(bn(conv(x + h)))), and the 1x1 output added back. The decoder upsamples (by default
    interpolation + 3x3 conv, as in the paper's code), concatenates the skip, and applies a block.

    Args:
        input_shape, classes, activation, filters, depth, batch_norm, name: as for ``unet``.
        t: recurrence steps of each RCL (the conv runs ``t + 1`` times).
        shared_weights: one conv per RCL reused at every step (the paper); ``False`` gives every
            step its own conv, as in the Keras code DRRMSAN compared with.
        dropout: dropout rate between the two RCLs of each block.
        upsampling: ``"bilinear_conv"``/``"nearest_conv"`` (interpolation + 3x3 conv-BN-ReLU),
            ``"transpose"``, or plain ``"bilinear"``/``"nearest"``.

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images to ``(batch, H, W, classes)``.

    Parameters (256x256x3, one class): 95,986,049 with ``shared_weights=False, batch_norm=False,
    upsampling="nearest"``, equal to the reference Keras R2U-Net DRRMSAN compared with
    (95,986,049); 39,145,345 at the defaults.
    """
    return _r2unet_graph(input_shape, classes, activation, filters, depth, t, shared_weights,
                         batch_norm, dropout, upsampling, name)


@register_model("attention_r2unet", description="Attention R2U-Net: R2U-Net with additive "
                "attention gates on the skips")
def attention_r2unet(input_shape=(256, 256, 3), classes=1, activation=_AUTO, filters=64, depth=4,
                     t=2, shared_weights=True, batch_norm=True, dropout=0.0,
                     upsampling="bilinear_conv", gate_reduction=2, name="attention_r2unet"):
    """Build an Attention R2U-Net: ``r2unet`` with the Oktay attention gate on every skip
    (Alom et al. 2018, arXiv:1802.06955; Oktay et al. 2018, arXiv:1804.03999).

    Args:
        as for ``r2unet``, and ``gate_reduction`` as for ``attention_unet`` (inter channels =
        gating channels // ``gate_reduction``; the gating signal is the upsampled decoder
        features, which have the skip's channels after ``"*_conv"``/``"transpose"`` upsampling
        and twice as many after plain interpolation).

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images to ``(batch, H, W, classes)``.

    Parameters (256x256x3, one class): 96,509,733 with ``shared_weights=False, batch_norm=False,
    upsampling="nearest", gate_reduction=4``, equal to the reference Keras Attention R2U-Net
    DRRMSAN compared with (96,509,733); 39,497,841 at the defaults.
    """
    return _r2unet_graph(input_shape, classes, activation, filters, depth, t, shared_weights,
                         batch_norm, dropout, upsampling, name, attention=True,
                         gate_reduction=gate_reduction)
