"""Kidney-SegNet (Aatresh, Lal et al., "Kidney-SegNet: Efficient deep learning architecture with
dimension-wise pyramid pooling for nuclei segmentation of histopathology images", 2021; code:
github.com/Aaatresh/kidney-segnet).

A four-level encoder of DiCE units (``kerasmed.models.dice_unit``), a DiCE-based atrous spatial
pyramid pooling (ASPP) at the bottleneck and a three-stage decoder whose skips pass through
attention gates. The head regresses a distance map (ReLU, trained with MSE; instances come from
a watershed on it, ``kerasmed.evaluation.instances.watershed_from_distance``) or predicts a
binary mask (sigmoid).
"""

from __future__ import annotations

import keras
from keras import layers

from kerasmed.models.blocks import SpatialBroadcast, check_input_size, conv_bn_act
from kerasmed.models.dice_unit import dice_unit
from kerasmed.models.registry import register_model

__all__ = ["kidney_segnet", "dice_aspp", "segnet_attention_gate"]

_AUTO = "auto"
HEADS = ("distance", "mask")


def _dice_bn_relu(x, filters, *, name):
    # Every DiCE unit of the encoder and decoder is followed by BatchNorm + ReLU.
    x = dice_unit(x, filters, name=name)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def dice_aspp(x, filters, *, name, branch_filters=None, rates=(4, 6, 8)):
    """DiCE-based ASPP; returns a tensor of ``filters`` channels at ``x``'s resolution.

    Branches: a kernel-1 DiCE unit, kernel-3 DiCE units at each dilation in ``rates``, and image
    pooling (global average, broadcast back: bilinear upsampling of a 1x1 map). They are
    concatenated (4 * ``branch_filters`` + C channels) and projected by a 1x1 conv with bias. As
    in the authors' code the DiCE branches have no BatchNorm or activation after them, and the
    pooled branch has no conv.
    """
    bf = branch_filters or x.shape[-1]
    branches = [dice_unit(x, bf, name=f"{name}_k1", kernel_size=1)]
    for rate in rates:
        branches.append(dice_unit(x, bf, name=f"{name}_rate{rate}", dilation_rate=rate))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_image_pool")(x)
    branches.append(SpatialBroadcast(name=f"{name}_image_broadcast")([pooled, x]))
    y = layers.Concatenate(name=f"{name}_concat")(branches)
    return layers.Conv2D(filters, 1, name=f"{name}_project")(y)


def segnet_attention_gate(x, g, *, name, inter_channels=None):
    """Kidney-SegNet's attention gate; returns ``x`` gated, at ``x``'s resolution.

    ``g`` is the deeper feature map at half ``x``'s resolution. theta = 1x1 conv(x);
    phi = 3x3 stride-2 transpose conv(1x1 conv(g)); relu(theta + phi) -> 1x1 conv to one
    channel -> sigmoid -> 1x1 conv back to C_x channels, which multiplies ``x``. All convs have
    biases and no BatchNorm, as in the authors' ``att_block``.
    """
    inter = inter_channels or x.shape[-1]
    theta = layers.Conv2D(inter, 1, name=f"{name}_theta")(x)
    phi = layers.Conv2D(inter, 1, name=f"{name}_phi")(g)
    phi = layers.Conv2DTranspose(inter, 3, strides=2, padding="same", name=f"{name}_phi_up")(phi)
    f = layers.Add(name=f"{name}_add")([theta, phi])
    f = layers.Activation("relu", name=f"{name}_relu")(f)
    alpha = layers.Conv2D(1, 1, activation="sigmoid", name=f"{name}_psi")(f)
    alpha = layers.Conv2D(x.shape[-1], 1, name=f"{name}_resample")(alpha)
    return layers.Multiply(name=f"{name}_multiply")([x, alpha])


@register_model(
    "kidney_segnet",
    description="Kidney-SegNet (Aatresh, Lal et al. 2021): DiCE units, DiCE-ASPP, attention gates",
    defaults={"aspp_filters": 256},
)
def kidney_segnet(input_shape=(512, 512, 3), classes=1, activation=_AUTO, filters=32,
                  aspp_filters=None, aspp_rates=(4, 6, 8), head="distance",
                  name="kidney_segnet"):
    """Build Kidney-SegNet.

    Encoder (n = ``filters``): 3x3 conv -> n + BN + ReLU, DiCE n -> n; max-pool; DiCE n -> 2n,
    2n -> 2n; max-pool; DiCE 2n -> 4n x2; max-pool; DiCE 4n -> 8n x2 (every DiCE followed by
    BN + ReLU). DiCE-ASPP at the bottleneck (1/8 resolution, 8n channels). Decoder: three
    stages, each an attention gate on the skip driven by the deeper features, concatenation of
    [gated skip, skip] and two DiCE units (BN + ReLU).

    Args:
        input_shape: ``(H, W, C)``; H and W fixed (DiCE units have per-row and per-column
            filters) and divisible by 8.
        classes: output channels (1 for a distance map or a binary mask).
        activation: head activation; ``"auto"`` gives ReLU for ``head="distance"`` and sigmoid
            (softmax for several classes) for ``head="mask"``; ``None`` gives logits.
        filters: n, the first level's width (32 in the paper).
        aspp_filters: channels of each DiCE-ASPP branch; ``None`` gives 8n (256 at n = 32, the
            authors' value).
        aspp_rates: dilations of the three kernel-3 DiCE-ASPP branches.
        head: ``"distance"`` (distance-map regression, train with MSE and post-process with
            ``kerasmed.evaluation.instances.watershed_from_distance``) or ``"mask"`` (binary mask).
        name: the model's name.

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images to ``(batch, H, W, classes)``
        distance maps (non-negative) or mask probabilities, computed in float32.

    Parameters (512x512x3, n = 32, one output channel, either head): 972,356 trainable, equal to
    the parameters the authors' PyTorch model uses (counted layer by layer from their code: the
    "about 0.97M"; their code also defines three transpose convs, 387,296 parameters, that its
    forward pass never uses); 999,172 with BatchNorm moving statistics.
    """
    if head not in HEADS:
        raise ValueError(f"head must be one of {HEADS}, got {head!r}")
    if input_shape[0] is None or input_shape[1] is None:
        raise ValueError("kidney_segnet: DiCE units need a fixed input size; got "
                         f"{tuple(input_shape)}")
    check_input_size(input_shape, 8, name)
    if activation == _AUTO:
        activation = "relu" if head == "distance" else ("sigmoid" if classes == 1 else "softmax")
    n = filters
    inputs = keras.Input(input_shape, name="image")
    x = conv_bn_act(inputs, n, name="enc1_stem", use_bias=True)
    skips = []
    for level, widths in enumerate([(n,), (2 * n, 2 * n), (4 * n, 4 * n), (8 * n, 8 * n)]):
        if level:
            x = layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)
        for i, f in enumerate(widths):
            x = _dice_bn_relu(x, f, name=f"enc{level + 1}_dice{i + 1}")
        skips.append(x)
    x = dice_aspp(x, 8 * n, name="aspp", branch_filters=aspp_filters, rates=aspp_rates)
    for level in (3, 2, 1):
        skip = skips[level - 1]
        f = skip.shape[-1]
        gated = segnet_attention_gate(skip, x, name=f"dec{level}_gate")
        x = layers.Concatenate(name=f"dec{level}_concat")([gated, skip])
        x = _dice_bn_relu(x, f, name=f"dec{level}_dice1")
        x = _dice_bn_relu(x, f, name=f"dec{level}_dice2")
    x = layers.Conv2D(classes, 1, name=f"{head}_head_conv", dtype="float32")(x)
    if activation is not None:
        x = layers.Activation(activation, name=f"{head}_head_{activation}", dtype="float32")(x)
    return keras.Model(inputs, x, name=name)
