"""U-Net (Ronneberger, Fischer & Brox, MICCAI 2015, arXiv:1505.04597) and Attention U-Net
(Oktay et al., MIDL 2018, arXiv:1804.03999).

``unet_graph`` builds both and the switchable-parts U-Net of ``kerasmed.models.unet_parts``, so
that every U-Net variant shares one encoder/decoder and the same layer names.
"""

from __future__ import annotations

import keras
from keras import layers

from kerasmed.models.blocks import (aspp as aspp_block, cbam as cbam_block, gated_skip_concat,
                                    check_input_size, conv_block, decoder_upsample,
                                    default_activation, residual_block, segmentation_head)
from kerasmed.models.registry import register_model

__all__ = ["unet", "attention_unet", "unet_graph"]

_AUTO = "auto"


def unet_graph(input_shape, classes, activation, filters, depth, batch_norm, dropout, upsampling,
               name, *, attention=False, gate_reduction=2, residual=False, aspp=False,
               aspp_rates=(6, 12, 18), cbam=False, cbam_reduction=16):
    """Build a U-Net with optional parts; returns a ``keras.Model``.

    With every part off this is the plain U-Net. ``attention`` gates each skip with the upsampled
    decoder features (inter channels = their channels // ``gate_reduction``); ``residual`` makes
    the encoder and bottleneck blocks residual; ``aspp`` follows the bottleneck with ASPP;
    ``cbam`` follows every encoder and decoder block with CBAM.
    """
    check_input_size(input_shape, 2**depth, name)
    if activation == _AUTO:
        activation = default_activation(classes)
    encoder_block = residual_block if residual else conv_block
    inputs = keras.Input(input_shape, name="image")
    x = inputs
    skips = []
    for level in range(depth):
        x = encoder_block(x, filters * 2**level, name=f"enc{level + 1}", batch_norm=batch_norm,
                          dropout=dropout)
        if cbam:
            x = cbam_block(x, name=f"enc{level + 1}_cbam", reduction=cbam_reduction)
        skips.append(x)
        x = layers.MaxPooling2D(2, name=f"enc{level + 1}_pool")(x)
    x = encoder_block(x, filters * 2**depth, name="bottleneck", batch_norm=batch_norm,
                      dropout=dropout)
    if aspp:
        x = aspp_block(x, filters * 2**depth, name="aspp", rates=aspp_rates, batch_norm=batch_norm)
    for level in reversed(range(depth)):
        f = filters * 2**level
        x = decoder_upsample(x, f, name=f"dec{level + 1}", mode=upsampling, batch_norm=batch_norm)
        x = gated_skip_concat(x, skips[level], name=f"dec{level + 1}", attention=attention,
                              gate_reduction=gate_reduction, batch_norm=batch_norm)
        x = conv_block(x, f, name=f"dec{level + 1}", batch_norm=batch_norm, dropout=dropout)
        if cbam:
            x = cbam_block(x, name=f"dec{level + 1}_cbam", reduction=cbam_reduction)
    outputs = segmentation_head(x, classes, activation)
    return keras.Model(inputs, outputs, name=name)


@register_model(
    "unet",
    description="U-Net (Ronneberger et al. 2015)",
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
        upsampling: ``"transpose"`` (2x2 stride-2 transpose conv), ``"bilinear"``/``"nearest"``
            (interpolation), or ``"bilinear_conv"``/``"nearest_conv"`` (interpolation, then a
            3x3 conv-BN-ReLU to the level's filters).
        name: the model's name.

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images to ``(batch, H, W, classes)``.

    Parameters (256x256x3, one class): 31,378,945 with ``batch_norm=False, upsampling="nearest"``
    (or ``"bilinear"``), equal to the reference Keras U-Net DRRMSAN compared against (31,378,945);
    31,049,409 at the defaults.
    """
    return unet_graph(input_shape, classes, activation, filters, depth, batch_norm, dropout,
                      upsampling, name)


@register_model(
    "attention_unet",
    description="Attention U-Net (Oktay et al. 2018): U-Net with attention-gated skips",
)
def attention_unet(input_shape=(256, 256, 3), classes=1, activation=_AUTO, filters=64, depth=4,
                   batch_norm=True, dropout=0.0, upsampling="transpose", gate_reduction=2,
                   name="attention_unet"):
    """Build an Attention U-Net (Oktay et al., "Attention U-Net: Learning Where to Look for the
    Pancreas", MIDL 2018, arXiv:1804.03999).

    A U-Net whose skips pass through an additive attention gate before concatenation: theta =
    1x1 conv(skip), phi = 1x1 conv(upsampled decoder features, the gating signal at the skip's
    resolution), relu(theta + phi) -> 1x1 conv to one channel -> sigmoid -> multiply the skip.

    Args:
        input_shape, classes, activation, filters, depth, batch_norm, dropout, upsampling, name:
            as for ``unet``.
        gate_reduction: the gate's inter channels are the gating channels // ``gate_reduction``.
            With ``upsampling="transpose"`` the gating signal has the skip's channels, so 2 gives
            Oktay's skip // 2; with plain interpolation it has twice the skip's channels, and 4
            gives the same width (as in the reference Keras code).

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images to ``(batch, H, W, classes)``.

    Parameters (256x256x3, one class): 31,902,629 with ``batch_norm=False, upsampling="nearest",
    gate_reduction=4``, equal to the reference Keras Attention U-Net DRRMSAN compared against
    (31,902,629); 31,401,905 at the defaults.
    """
    return unet_graph(input_shape, classes, activation, filters, depth, batch_norm, dropout,
                      upsampling, name, attention=True, gate_reduction=gate_reduction)
