"""The DiCE unit: dimension-wise convolutions with dimension-wise fusion.

From DiCENet (Mehta et al., "DiCENet: Dimension-wise Convolutions for Efficient Networks",
IEEE TPAMI 2020, arXiv:1906.03516), as used by Kidney-SegNet (Aatresh, Lal et al. 2021). The
layout follows the authors' PyTorch ``dice`` module (forked from EdgeNets), layer for layer, so
parameter counts match.

A DiCE unit maps ``(B, H, W, C)`` to ``(B, H, W, C_out)``:

1. three parallel depth-wise convolutions with the same kernel and dilation and no bias:
   channel-wise (an ordinary depthwise conv over the (H, W) plane, one filter per channel),
   height-wise (H is the channel axis: a depthwise conv over the (C, W) plane, one filter per
   row) and width-wise (W is the channel axis: a depthwise conv over the (H, C) plane, one
   filter per column). The height- and width-wise convs are a ``Permute``, a
   ``DepthwiseConv2D`` and the inverse ``Permute``, so H and W must be known when the model is
   built;
2. local fusion: concatenate (3C), BatchNorm + PReLU, channel shuffle with 3 groups (so each
   group of three consecutive channels holds one channel's three dimension-wise responses),
   grouped 1x1 conv 3C -> C with C groups (a learned per-channel weighting of the three),
   BatchNorm + PReLU;
3. global fusion: a grouped 3x3 conv C -> C_out with gcd(C, C_out) groups, BatchNorm + PReLU,
   multiplied by a squeeze-excitation gate computed from the fused tensor (global average pool,
   1x1 conv to C/4, ReLU, 1x1 conv to C_out, sigmoid; no biases).

The grouped convs are ``GroupConv2D`` layers (a depthwise conv and a sum within each group),
not ``Conv2D(groups=...)``, which TensorFlow can only run on CPU by compiling each with XLA.
All layers are ``keras.layers`` / ``keras.ops``, so the unit runs on TensorFlow, JAX and PyTorch.

Parameters of one unit (trainable, as PyTorch counts them; BatchNorm moving statistics add
``2 * (3C + C + C_out)`` non-trainable ones in Keras)::

    k*k*(C + H + W)                         dimension-wise convs
    + 2*3C + 3C                             BN + PReLU on the concatenation
    + 3C + 2C + C                           grouped 1x1 fusion, BN, PReLU
    + 9*(C/g)*C_out + 2*C_out + C_out       grouped 3x3 projection (g = gcd(C, C_out)), BN, PReLU
    + C*(C//4) + (C//4)*C_out               squeeze-excitation gate
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

__all__ = ["dice_unit", "ChannelShuffle", "GroupConv2D", "dice_unit_parameters"]


@keras.saving.register_keras_serializable(package="kerasmed")
class ChannelShuffle(layers.Layer):
    """ShuffleNet's channel shuffle (Zhang et al. 2018, arXiv:1707.01083).

    Viewing the C channels as ``groups`` groups of C / groups, output channel ``j * groups + g``
    is input channel ``g * (C / groups) + j``: the groups are interleaved.
    """

    def __init__(self, groups, **kwargs):
        super().__init__(**kwargs)
        self.groups = int(groups)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.groups:
            raise ValueError(f"{self.name}: channels ({channels}) must be divisible by "
                             f"groups ({self.groups})")

    def call(self, x):
        shape = ops.shape(x)
        channels = x.shape[-1]
        per_group = channels // self.groups
        x = ops.reshape(x, (-1, shape[1], shape[2], self.groups, per_group))
        x = ops.transpose(x, (0, 1, 2, 4, 3))
        return ops.reshape(x, (-1, shape[1], shape[2], channels))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "groups": self.groups}


@keras.saving.register_keras_serializable(package="kerasmed")
class GroupConv2D(layers.Layer):
    """Grouped 2-D convolution (stride 1, no dilation limits), as a depthwise convolution with
    ``filters / groups`` outputs per input channel followed by a sum over each group's inputs.

    Same function and parameter count (``k*k*C*filters/groups``) as
    ``Conv2D(filters, k, groups=groups)``, and the same output channel order (group by group),
    but built from ``ops.depthwise_conv``: TensorFlow has no grouped convolution on CPU, and
    Keras compiles each one with XLA there, which makes a DiCE network take tens of seconds to
    trace. The kernel has shape ``(k, k, C, filters / groups)``; it is He-initialised for the
    grouped fan-in ``k*k*C/groups``.
    """

    def __init__(self, filters, kernel_size, groups, dilation_rate=1, padding="same",
                 use_bias=False, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.groups = int(groups)
        self.dilation_rate = int(dilation_rate)
        self.padding = padding
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None or channels % self.groups or self.filters % self.groups:
            raise ValueError(f"{self.name}: input channels ({channels}) and filters "
                             f"({self.filters}) must be divisible by groups ({self.groups})")
        self.multiplier = self.filters // self.groups
        # VarianceScaling's fan-in for this kernel shape is k*k*C; the conv's is k*k*C/groups.
        init = keras.initializers.VarianceScaling(scale=2.0 * self.groups, mode="fan_in",
                                                  distribution="truncated_normal")
        self.kernel = self.add_weight(
            name="kernel", initializer=init,
            shape=(self.kernel_size, self.kernel_size, channels, self.multiplier))
        self.bias = (self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")
                     if self.use_bias else None)

    def call(self, x):
        y = ops.depthwise_conv(x, self.kernel, strides=1, padding=self.padding,
                               dilation_rate=self.dilation_rate)
        per_group = x.shape[-1] // self.groups
        if per_group > 1:
            # Channel i * m + j of y is input channel i's j-th response; i = g * per_group + r.
            shape = ops.shape(y)
            y = ops.reshape(y, (-1, shape[1], shape[2], self.groups, per_group, self.multiplier))
            y = ops.reshape(ops.sum(y, axis=4), (-1, shape[1], shape[2], self.filters))
        if self.bias is not None:
            y = y + self.bias
        return y

    def compute_output_shape(self, input_shape):
        if self.padding == "same":
            return (*input_shape[:-1], self.filters)
        reach = self.dilation_rate * (self.kernel_size - 1)
        spatial = [None if s is None else s - reach for s in input_shape[1:3]]
        return (input_shape[0], *spatial, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "groups": self.groups,
                "dilation_rate": self.dilation_rate, "padding": self.padding,
                "use_bias": self.use_bias}


def _bn_prelu(x, *, name):
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    # One slope per channel, shared over space: PyTorch's PReLU(num_parameters=C).
    return layers.PReLU(shared_axes=[1, 2], name=f"{name}_prelu")(x)


def dice_unit(x, filters, *, name, kernel_size=3, dilation_rate=1, shuffle=True):
    """A DiCE unit from ``x`` (B, H, W, C) to ``filters`` channels; returns the output tensor.

    Args:
        x: a 4-D channels-last tensor whose H, W and C are known.
        filters: output channels C_out.
        name: prefix of every layer's name.
        kernel_size: kernel of the three dimension-wise convs (the projection is always 3x3).
        dilation_rate: dilation of the three dimension-wise convs (on both axes of each plane).
        shuffle: channel-shuffle the concatenated responses before the local fusion.

    Raises:
        ValueError: when H, W or C is unknown (``None``): the height- and width-wise convs have
            one filter per row and per column.
    """
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    if height is None or width is None or channels is None:
        raise ValueError(f"{name}: a DiCE unit needs a fixed input size, got "
                         f"{tuple(x.shape[1:])}; build the model with a fixed input_shape")
    dw = dict(kernel_size=kernel_size, dilation_rate=dilation_rate, padding="same",
              use_bias=False)
    channel_wise = layers.DepthwiseConv2D(**dw, name=f"{name}_channelwise")(x)
    # Height-wise: (B, H, W, C) -> (B, C, W, H); H is now the channel axis.
    h = layers.Permute((3, 2, 1), name=f"{name}_to_hwise")(x)
    h = layers.DepthwiseConv2D(**dw, name=f"{name}_heightwise")(h)
    h = layers.Permute((3, 2, 1), name=f"{name}_from_hwise")(h)
    # Width-wise: (B, H, W, C) -> (B, H, C, W); W is now the channel axis.
    w = layers.Permute((1, 3, 2), name=f"{name}_to_wwise")(x)
    w = layers.DepthwiseConv2D(**dw, name=f"{name}_widthwise")(w)
    w = layers.Permute((1, 3, 2), name=f"{name}_from_wwise")(w)

    y = layers.Concatenate(name=f"{name}_concat")([channel_wise, h, w])
    y = _bn_prelu(y, name=f"{name}_concat")
    if shuffle:
        y = ChannelShuffle(3, name=f"{name}_shuffle")(y)
    y = GroupConv2D(channels, 1, groups=channels, name=f"{name}_fuse_conv")(y)
    y = _bn_prelu(y, name=f"{name}_fuse")

    gate = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_se_pool")(y)
    gate = layers.Conv2D(max(1, channels // 4), 1, use_bias=False, activation="relu",
                         name=f"{name}_se_reduce")(gate)
    gate = layers.Conv2D(filters, 1, use_bias=False, activation="sigmoid",
                         name=f"{name}_se_expand")(gate)
    proj = GroupConv2D(filters, 3, groups=math.gcd(channels, filters),
                       name=f"{name}_proj_conv")(y)
    proj = _bn_prelu(proj, name=f"{name}_proj")
    return layers.Multiply(name=f"{name}_gate")([proj, gate])


def dice_unit_parameters(channels, filters, height, width, kernel_size=3, trainable_only=True):
    """The parameter count of one DiCE unit, by the formula in this module's docstring."""
    c, f = channels, filters
    count = kernel_size * kernel_size * (c + height + width)
    count += 3 * 3 * c                      # BN (gamma, beta) + PReLU on 3C
    count += 3 * c + 3 * c                  # grouped 1x1 fusion + BN + PReLU on C
    count += 9 * (c // math.gcd(c, f)) * f + 3 * f
    count += c * max(1, c // 4) + max(1, c // 4) * f
    if not trainable_only:
        count += 2 * (3 * c + c + f)        # BatchNorm moving mean and variance
    return count
