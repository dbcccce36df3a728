"""MultiResUNet (Ibtehaz & Rahman 2020) and DRRMSAN blocks: ``conv2d_bn``, the MultiRes block,
ResPath, min pooling and DRRMSAN's multi-branch attention gate."""

from __future__ import annotations

import keras
from keras import layers, ops

__all__ = ["conv2d_bn", "multires_widths", "multires_block", "res_path", "MinPooling2D",
           "min_pool", "multi_branch_gate"]


def conv2d_bn(x, filters, kernel_size=3, *, name, activation="relu", dtype=None,
              kernel_regularizer=None):
    """MultiResUNet's conv: Conv2D without bias, BatchNormalization(scale=False), activation.

    The norm has no scale because a ReLU (or the following norm) makes it redundant; this is
    the reference implementation's choice and part of its exact parameter count.
    """
    x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=False,
                      kernel_initializer="glorot_uniform", kernel_regularizer=kernel_regularizer,
                      name=f"{name}_conv", dtype=dtype)(x)
    x = layers.BatchNormalization(scale=False, name=f"{name}_bn", dtype=dtype)(x)
    if activation is not None:
        x = layers.Activation(activation, name=f"{name}_{activation}", dtype=dtype)(x)
    return x


def multires_widths(units, alpha=1.67):
    """Filters of a MultiRes block's three chained 3x3 convs: W/6, W/3 and W/2 of W = alpha U."""
    w = alpha * units
    return int(w * 0.167), int(w * 0.333), int(w * 0.5)


def multires_block(x, units, *, name, alpha=1.67):
    """MultiRes block (Ibtehaz & Rahman 2020): three chained 3x3 convs standing in for 3x3,
    5x5 and 7x7 receptive fields, concatenated, plus a 1x1 residual projection.

    Returns a tensor with ``sum(multires_widths(units, alpha))`` channels.
    """
    widths = multires_widths(units, alpha)
    shortcut = conv2d_bn(x, sum(widths), 1, name=f"{name}_shortcut", activation=None)
    a = conv2d_bn(x, widths[0], name=f"{name}_3x3")
    b = conv2d_bn(a, widths[1], name=f"{name}_5x5")
    c = conv2d_bn(b, widths[2], name=f"{name}_7x7")
    out = layers.Concatenate(name=f"{name}_concat")([a, b, c])
    out = layers.BatchNormalization(name=f"{name}_concat_bn")(out)
    out = layers.Add(name=f"{name}_add")([shortcut, out])
    out = layers.Activation("relu", name=f"{name}_relu")(out)
    return layers.BatchNormalization(name=f"{name}_out_bn")(out)


def res_path(x, filters, length, *, name):
    """ResPath (Ibtehaz & Rahman 2020): ``length`` residual 3x3 conv units on a skip
    connection, to narrow the semantic gap between encoder and decoder features."""
    for i in range(length):
        unit = f"{name}_{i + 1}"
        shortcut = conv2d_bn(x, filters, 1, name=f"{unit}_shortcut", activation=None)
        out = conv2d_bn(x, filters, name=f"{unit}_conv3x3")
        out = layers.Add(name=f"{unit}_add")([shortcut, out])
        out = layers.Activation("relu", name=f"{unit}_relu")(out)
        x = layers.BatchNormalization(name=f"{unit}_bn")(out)
    return x




@keras.saving.register_keras_serializable(package="kerasmed")
class MinPooling2D(layers.MaxPooling2D):
    """Min pooling, computed as ``-maxpool(-x)``; takes ``MaxPooling2D``'s arguments.

    DRRMSAN's input pyramid uses it to keep the darkest pixel of each window (the authors'
    code also treated exact zeros as missing; kerasmed uses the plain minimum).
    """

    def call(self, inputs):
        return ops.negative(super().call(ops.negative(inputs)))


def min_pool(x, pool_size, *, name):
    """Min-pool ``x`` with ``pool_size`` windows and strides; returns the pooled tensor."""
    return MinPooling2D(pool_size, name=name)(x)


def multi_branch_gate(skip, gating, inter_channels, *, name, regularizer=None, dropout=0.0):
    """DRRMSAN's attention gate (Pal et al.); returns ``skip`` scaled by a sigmoid map.

    ``skip`` and ``gating`` (the upsampled decoder features, same spatial size) each pass
    through parallel branches of 1, 2 and 3 stacked 3x3 convs (receptive fields 3, 5, 7) with
    ``inter_channels`` filters; the six responses are combined additively (their sum) and
    multiplicatively (the product of the skip's and the gating signal's branch sums); ReLU,
    optional SpatialDropout2D, 1x1 conv and sigmoid give a one-channel map that multiplies
    every channel of ``skip``.

    The authors' gate shrinks and re-grows its maps with a fixed MaxPool(12, stride 2),
    upsampling and ZeroPadding(5), which only line up for some input sizes; this gate keeps
    the skip's resolution throughout, so any input divisible by the network's stride works.
    """
    def branches(x, tag):
        out = []
        for depth in (1, 2, 3):
            h = x
            for j in range(depth):
                h = layers.Conv2D(inter_channels, 3, padding="same", use_bias=False,
                                  kernel_regularizer=regularizer,
                                  name=f"{name}_{tag}_b{depth}_conv{j + 1}")(h)
            out.append(h)
        return out

    xs, gs = branches(skip, "x"), branches(gating, "g")
    additive = layers.Add(name=f"{name}_add")(xs + gs)
    multiplicative = layers.Multiply(name=f"{name}_multiply")(
        [layers.Add(name=f"{name}_x_sum")(xs), layers.Add(name=f"{name}_g_sum")(gs)])
    h = layers.Add(name=f"{name}_combine")([additive, multiplicative])
    h = layers.Activation("relu", name=f"{name}_relu")(h)
    if dropout:
        h = layers.SpatialDropout2D(dropout, name=f"{name}_dropout")(h)
    psi = layers.Conv2D(1, 1, activation="sigmoid", kernel_regularizer=regularizer,
                        name=f"{name}_psi")(h)
    return layers.Multiply(name=f"{name}_gated")([skip, psi])
