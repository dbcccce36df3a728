"""DRRMSAN: Deep Residual Regularized Multi-Scale Attention Network (Pal et al.; the authors'
"MSAN-1" variant), built on MultiResUNet (Ibtehaz & Rahman 2020)."""

from __future__ import annotations

import keras
from keras import layers, ops

from kerasmed.models.blocks import (check_input_size, conv2d_bn, default_activation,
                                    multires_block, multires_widths, res_path)
from kerasmed.models.registry import register_model

__all__ = ["drrmsan", "WeightedFusion"]

_AUTO = "auto"
OUTPUT_NAMES = ("side4", "side3", "side2", "final", "fused")


@keras.saving.register_keras_serializable(package="kerasmed")
class WeightedFusion(layers.Layer):
    """``sum_i alpha_i * x_i`` over same-shaped inputs; the alphas fixed or trainable."""

    def __init__(self, alphas=(0.25, 0.25, 0.25, 0.25), learnable=False, **kwargs):
        super().__init__(**kwargs)
        self.alphas = [float(a) for a in alphas]
        self.learnable = bool(learnable)

    def build(self, input_shape):
        if len(input_shape) != len(self.alphas):
            raise ValueError(f"WeightedFusion has {len(self.alphas)} alphas for "
                             f"{len(input_shape)} inputs")
        if self.learnable:
            self.alpha = self.add_weight(shape=(len(self.alphas),), name="alpha",
                                         initializer=keras.initializers.Constant(self.alphas),
                                         trainable=True)

    def call(self, inputs):
        alphas = self.alpha if self.learnable else ops.convert_to_tensor(self.alphas)
        alphas = ops.cast(alphas, inputs[0].dtype)
        return sum(alphas[i] * x for i, x in enumerate(inputs))

    def get_config(self):
        return {**super().get_config(), "alphas": self.alphas, "learnable": self.learnable}


def _min_pool(x, size, name):
    # Min pooling is max pooling of the negated image.
    neg = layers.Rescaling(-1.0, name=f"{name}_negate")(x)
    pooled = layers.MaxPooling2D(size, name=f"{name}_maxpool")(neg)
    return layers.Rescaling(-1.0, name=f"{name}_restore")(pooled)


def _pyramid_input(image, features, level, width, name, regularizer):
    """Concatenate the image max-, average- and min-pooled to this level with the pooled
    encoder features, each through a 3x3 conv: 5 %, 5 %, 40 % and the rest of ``width``."""
    size = 2 ** (level - 1)
    n_max = max(1, round(0.05 * width))
    n_avg = max(1, round(0.05 * width))
    n_min = max(1, round(0.40 * width))
    n_feat = width - n_max - n_avg - n_min
    branches = [
        (layers.MaxPooling2D(size, name=f"{name}_img_maxpool")(image), n_max, "max"),
        (layers.AveragePooling2D(size, name=f"{name}_img_avgpool")(image), n_avg, "avg"),
        (_min_pool(image, size, f"{name}_img_min"), n_min, "min"),
        (features, n_feat, "features"),
    ]
    convs = [layers.Conv2D(n, 3, padding="same", activation="relu", name=f"{name}_{tag}_conv",
                           kernel_regularizer=regularizer)(x) for x, n, tag in branches]
    return layers.Concatenate(name=f"{name}_concat")(convs)


def multi_branch_gate(skip, gating, inter_channels, *, name, regularizer=None, dropout=0.0):
    """DRRMSAN's attention gate: skip and gating signal (same size) each through parallel
    branches of 1, 2 and 3 stacked 3x3 convs (receptive fields 3, 5, 7); the branch responses
    are combined additively (sum of all six) and multiplicatively (product of the two sums);
    ReLU, 1x1 conv, sigmoid gives the map that scales ``skip``. Returns the gated skip.

    Unlike the authors' code (a fixed MaxPool(12, 2) and ZeroPadding(5), which fit one input
    size), the gate works on the upsampled decoder features at the skip's size, so any input
    divisible by 16 works.
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


def _side_head(x, classes, activation, factor, name, regularizer, dropout):
    if dropout:
        x = layers.SpatialDropout2D(dropout, name=f"{name}_dropout")(x)
    x = layers.UpSampling2D(factor, interpolation="bilinear", name=f"{name}_upsample")(x)
    x = layers.Conv2D(classes, 3, padding="same", kernel_regularizer=regularizer,
                      name=f"{name}_conv", dtype="float32")(x)
    return layers.Activation(activation or "linear", name=name, dtype="float32")(x)


@register_model(
    "drrmsan",
    description="DRRMSAN (Pal et al.): MultiResUNet with a multi-scale input pyramid, "
                "multi-branch attention gates and deep supervision",
    defaults={"input_shape": (256, 256, 3), "alphas": (0.25, 0.25, 0.25, 0.25),
              "learnable_alphas": False, "regularized": False, "filters": 32},
)
def drrmsan(input_shape=(256, 256, 3), classes=1, activation=_AUTO, filters=32, alpha=1.67,
            alphas=(0.25, 0.25, 0.25, 0.25), learnable_alphas=False, single_output=False,
            regularized=False, name="drrmsan"):
    """Build DRRMSAN.

    MultiResUNet's encoder, ResPaths and decoder; at encoder levels 2-4 the input image is
    max-, average- and min-pooled to that level's resolution and joined with the pooled
    features (``_pyramid_input``); every decoder stage gates its ResPath skip with the
    multi-branch attention gate. Deep supervision: side outputs from decoder levels 4, 3, 2
    (upsampled x8, x4, x2, 3x3 conv), the final output, and their fusion
    ``sum alpha_i o_i`` (``alphas``, 0.25 each by default; trainable with
    ``learnable_alphas``; the authors tuned them by Bayesian optimisation, e.g.
    (0.287, 0.026, 0.173, 0.512)). ``regularized=True`` adds L2(1e-4) kernel regularisation
    and SpatialDropout2D(0.5) in the gates and heads, the paper's regularised variant.

    Parameter count at 256x256x3, one output: 11,635,659 (measured). The authors' MSAN-1 has
    21,580,994: its gate convolves the deeper, wider gating signal (before upsampling, with a
    fixed pooling and padding that fit 256x256 inputs only) at full width, while this gate
    works on the upsampled decoder features at the skip's size with ``units // 2`` channels
    per branch conv; the pyramid, blocks, ResPaths and heads follow the description.

    Returns:
        A ``keras.Model`` with five outputs named ``side4``, ``side3``, ``side2``, ``final``
        and ``fused`` (the evaluated one, last), each ``(batch, H, W, classes)``; or, with
        ``single_output=True``, a model returning only ``fused``.
    """
    check_input_size(input_shape, 16, name)
    if activation == _AUTO:
        activation = default_activation(classes)
    regularizer = keras.regularizers.L2(1e-4) if regularized else None
    dropout = 0.5 if regularized else 0.0
    image = keras.Input(input_shape, name="image")
    x, skips = image, []
    for level in range(1, 5):
        units = filters * 2 ** (level - 1)
        if level > 1:
            x = _pyramid_input(image, x, level, sum(multires_widths(units, alpha)),
                               f"pyramid{level}", regularizer)
        x = multires_block(x, units, name=f"enc{level}", alpha=alpha)
        skips.append(res_path(x, units, 5 - level, name=f"respath{level}"))
        x = layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)
    x = multires_block(x, filters * 16, name="bottleneck", alpha=alpha)
    sides = []
    for level in range(4, 0, -1):
        units = filters * 2 ** (level - 1)
        up = layers.Conv2DTranspose(units, 2, strides=2, padding="same",
                                    name=f"dec{level}_upconv")(x)
        gated = multi_branch_gate(skips[level - 1], up, max(1, units // 2),
                                  name=f"dec{level}_gate", regularizer=regularizer,
                                  dropout=dropout)
        x = layers.Concatenate(name=f"dec{level}_skip_concat")([up, gated])
        x = multires_block(x, units, name=f"dec{level}", alpha=alpha)
        if level > 1:
            sides.append(_side_head(x, classes, activation, 2 ** (level - 1), f"side{level}",
                                    regularizer, dropout))
    final = conv2d_bn(x, classes, 1, name="final_head", activation=None, dtype="float32")
    final = layers.Activation(activation or "linear", name="final", dtype="float32")(final)
    fused = WeightedFusion(alphas, learnable_alphas, name="fused", dtype="float32")(
        sides + [final])
    outputs = fused if single_output else sides + [final, fused]
    return keras.Model(image, outputs, name=name)
