"""ResUNet-a (Diakogiannis, Waldner, Caccetta & Wu, ISPRS J. Photogramm. 2020, arXiv:1904.00592):
a U-Net of residual blocks with parallel atrous branches, PSP pooling in the middle and before
the head, and optional multitask (conditioned) heads."""

from __future__ import annotations

import keras
from keras import layers, ops

from kerasmed.models.blocks import conv_bn_act, default_activation
from kerasmed.models.registry import register_model
from kerasmed.models.side_outputs import output_activation

__all__ = ["resunet_a", "GridMaxPooling"]

_AUTO = "auto"

# Atrous rates of the residual blocks of the d6 network by level (0 = full resolution), as in
# the authors' ResUNet_d6 (MXNet); deeper levels of other depths get a single rate-1 branch.
D6_ENCODER_DILATIONS = ((1, 3, 15, 31), (1, 3, 15, 31), (1, 3, 15), (1, 3, 5), (1,), (1,))
D6_DECODER_DILATIONS = ((1, 3, 15, 31), (1, 3, 15, 31), (1, 3, 15, 31), (1, 3, 15), (1, 3, 5))


def _default_rates(table, levels):
    return tuple(table[level] if level < len(table) else (1,) for level in levels)


@keras.saving.register_keras_serializable(package="kerasmed")
class GridMaxPooling(layers.Layer):
    """Split the map into ``bins`` x ``bins`` cells, max-pool each and broadcast the maximum
    back over its cell: one level of ResUNet-a's PSP pooling (``bins`` = 1, 2, 4, 8).

    Cells are ceil(H / bins) x ceil(W / bins) pixels (the last ones smaller when H or W is
    not divisible), and never under one pixel, so any static size works.
    """

    def __init__(self, bins, **kwargs):
        super().__init__(**kwargs)
        self.bins = int(bins)

    def call(self, x):
        height, width = x.shape[1], x.shape[2]
        ph, pw = -(-height // self.bins), -(-width // self.bins)
        if ph == height and pw == width:
            return ops.max(x, axis=(1, 2), keepdims=True) * ops.ones_like(x)
        pooled = ops.max_pool(x, (ph, pw), strides=(ph, pw), padding="same")
        pooled = ops.repeat(ops.repeat(pooled, ph, axis=1), pw, axis=2)
        return pooled[:, :height, :width, :]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "bins": self.bins}


def _conv_bn(x, filters, kernel_size, *, name, strides=1):
    """Conv2DNormed of the authors' code: a conv without bias, then BatchNormalization."""
    return conv_bn_act(x, filters, kernel_size, strides=strides, name=name, activation=None)


def resblock_a(x, filters, dilations, *, name):
    """ResBlock-a: ``x`` plus, for every rate d in ``dilations``, a pre-activation residual
    branch BN-ReLU-conv3x3(d)-BN-ReLU-conv3x3(d) (the first conv without bias). Returns a
    tensor with ``filters`` channels (the input must have as many)."""
    out = [x]
    for d in dilations:
        h = layers.BatchNormalization(name=f"{name}_d{d}_bn1")(x)
        h = layers.Activation("relu", name=f"{name}_d{d}_relu1")(h)
        h = layers.Conv2D(filters, 3, padding="same", dilation_rate=d, use_bias=False,
                          kernel_initializer="he_normal", name=f"{name}_d{d}_conv1")(h)
        h = layers.BatchNormalization(name=f"{name}_d{d}_bn2")(h)
        h = layers.Activation("relu", name=f"{name}_d{d}_relu2")(h)
        out.append(layers.Conv2D(filters, 3, padding="same", dilation_rate=d,
                                 kernel_initializer="he_normal", name=f"{name}_d{d}_conv2")(h))
    return layers.Add(name=f"{name}_add")(out)


def psp_pooling(x, filters, *, name, levels=4):
    """PSP pooling of ResUNet-a: ``x`` concatenated with, for each of ``levels`` grids (1x1,
    2x2, 4x4, 8x8 cells), the cell-wise maximum through a 1x1 conv-BN to ``filters //
    levels``; a 1x1 conv-BN to ``filters`` fuses them. Returns it (no activation)."""
    branches = [x]
    for level in range(levels):
        h = GridMaxPooling(2**level, name=f"{name}_grid{2**level}")(x)
        branches.append(_conv_bn(h, max(1, filters // levels), 1, name=f"{name}_grid{2**level}"))
    h = layers.Concatenate(name=f"{name}_concat")(branches)
    return _conv_bn(h, filters, 1, name=f"{name}_fuse")


def _combine(low, high, filters, *, name):
    """The authors' combine layer: ``low`` upsampled 2x (nearest), a 1x1 conv-BN to
    ``filters // 2``, ReLU, concatenated with ``high``, then a 1x1 conv-BN to ``filters``."""
    up = layers.UpSampling2D(2, name=f"{name}_upsample")(low)
    up = _conv_bn(up, max(1, filters // 2), 1, name=f"{name}_up")
    up = layers.Activation("relu", name=f"{name}_up_relu")(up)
    h = layers.Concatenate(name=f"{name}_concat")([up, high])
    return _conv_bn(h, filters, 1, name=f"{name}_merge")


def _head(x, filters, classes, convs, *, name):
    """``convs`` 3x3 conv-BN-ReLU, then a 1x1 conv to ``classes`` (float32 logits)."""
    for i in range(convs):
        x = conv_bn_act(x, filters, 3, name=f"{name}_{i + 1}")
    return layers.Conv2D(classes, 1, name=f"{name}_logits", dtype="float32")(x)


@register_model(
    "resunet_a",
    description="ResUNet-a d6 (Diakogiannis et al. 2020): atrous residual blocks, PSP pooling, "
                "optional multitask heads",
)
def resunet_a(input_shape=(256, 256, 3), classes=1, activation=_AUTO, filters=32, depth=6,
              encoder_dilations=None, decoder_dilations=None,
              multitask=False, name="resunet_a"):
    """Build ResUNet-a (Diakogiannis et al., "ResUNet-a: a deep learning framework for
    semantic segmentation of remotely sensed data", ISPRS Journal of Photogrammetry and
    Remote Sensing 162, 2020, arXiv:1904.00592), by default its d6 network.

    A 1x1 conv-BN-ReLU to ``filters`` (32); ``depth`` levels of ResBlock-a (each level's
    atrous branches summed with its input), 3x3 stride-2 convs doubling the channels in
    between (32..1024); PSP pooling and ReLU in the middle. The decoder combines each level
    (nearest upsampling, 1x1 conv-BN-ReLU to half the level's channels, concatenation with
    the encoder level, 1x1 conv-BN) and applies a ResBlock-a; the first layer's output is
    concatenated with the last level's and PSP-pooled before the head. The plain head is
    the paper's segmentation head on the PSP output: two 3x3 conv-BN-ReLU and a 1x1 conv.
    ``multitask=True`` adds the conditioned multitask heads of ResUNet-a d6 cmtsk: the
    distance transform (from the concatenation), the boundaries (from the PSP output and
    the distance), the segmentation (from the PSP output, boundaries and distance) and the
    image's colour reconstruction (HSV in the paper).

    Args:
        input_shape: ``(H, W, C)`` with static H and W divisible by ``2**(depth - 1)``.
        classes: output channels of the segmentation, distance and boundary heads.
        activation: activation of the segmentation and distance heads; ``"auto"`` gives
            sigmoid for one class and softmax for several; ``None`` gives logits.
            Boundaries and colour always get a sigmoid.
        filters: channels of the first level, doubled at each level down.
        depth: number of levels (6 for d6).
        encoder_dilations: atrous rates of each encoder level's ResBlock-a, one tuple per
            level from the top; ``None``: the authors' d6 rates by level (1, 3, 15, 31 at
            levels 0-1; 1, 3, 15 at 2; 1, 3, 5 at 3; a single rate-1 branch below).
        decoder_dilations: rates of the decoder levels, deepest first (``depth - 1``
            tuples); ``None``: the authors' d6 rates by level (1, 3, 5 at level 4; 1, 3, 15
            at 3; 1, 3, 15, 31 at 2-0).
        multitask: return the multitask outputs.
        name: the model's name.

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images to ``(batch, H, W, classes)``
        (output ``final``); with ``multitask=True`` four outputs, in this order:
        ``distance`` ``(batch, H, W, classes)``, ``boundary`` (same), ``color``
        ``(batch, H, W, 3)`` and ``final`` (the segmentation, the one to evaluate). Heads
        compute in float32.

    Parameters at 256x256x3, one class (measured): 38,159,489 with the plain head,
    38,197,383 with the multitask heads (all weights, BN statistics included).
    """
    if encoder_dilations is None:
        encoder_dilations = _default_rates(D6_ENCODER_DILATIONS, range(depth))
    if decoder_dilations is None:
        decoder_dilations = _default_rates(D6_DECODER_DILATIONS, range(depth - 2, -1, -1))
    if len(encoder_dilations) != depth or len(decoder_dilations) != depth - 1:
        raise ValueError(f"{name}: give {depth} encoder and {depth - 1} decoder dilation "
                         f"tuples, got {len(encoder_dilations)} and {len(decoder_dilations)}")
    for size in input_shape[:2]:
        if size is None or size % 2 ** (depth - 1):
            raise ValueError(f"{name}: input size {tuple(input_shape[:2])} must be static and "
                             f"divisible by {2 ** (depth - 1)} (the network's total stride)")
    if activation == _AUTO:
        activation = default_activation(classes)
    inputs = keras.Input(input_shape, name="image")
    first = _conv_bn(inputs, filters, 1, name="stem")
    first = layers.Activation("relu", name="stem_relu")(first)
    x, skips = first, []
    for level in range(depth):
        if level:
            x = _conv_bn(x, filters * 2**level, 3, strides=2, name=f"enc{level}_down")
        x = resblock_a(x, filters * 2**level, encoder_dilations[level], name=f"enc{level}")
        skips.append(x)
    x = psp_pooling(x, filters * 2 ** (depth - 1), name="middle_psp")
    x = layers.Activation("relu", name="middle_relu")(x)
    for i, level in enumerate(range(depth - 2, -1, -1)):
        f = filters * 2**level
        x = _combine(x, skips[level], f, name=f"dec{level}_combine")
        x = resblock_a(x, f, decoder_dilations[i], name=f"dec{level}")
    joined = layers.Concatenate(name="out_concat")([first, x])
    x = psp_pooling(joined, filters, name="out_psp")
    x = layers.Activation("relu", name="out_psp_relu")(x)
    if not multitask:
        return keras.Model(inputs, output_activation(_head(x, filters, classes, 2, name="head"),
                                                     activation, name="final"), name=name)
    distance = output_activation(_head(joined, filters, classes, 2, name="distance_head"),
                                 activation, name="distance")
    boundary = layers.Concatenate(name="boundary_concat")([x, distance])
    boundary = output_activation(_head(boundary, filters, classes, 1, name="boundary_head"),
                                 "sigmoid", name="boundary")
    color = layers.Conv2D(3, 1, name="color_logits", dtype="float32")(joined)
    color = output_activation(color, "sigmoid", name="color")
    segmentation = layers.Concatenate(name="head_concat")([x, boundary, distance])
    segmentation = output_activation(_head(segmentation, filters, classes, 2, name="head"),
                                     activation, name="final")
    return keras.Model(inputs, [distance, boundary, color, segmentation], name=name)
