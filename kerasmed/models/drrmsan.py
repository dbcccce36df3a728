"""DRRMSAN: Deep Residual Regularized Multi-Scale Attention Network (Pal et al.; the authors'
"MSAN-1" variant), built on MultiResUNet (Ibtehaz & Rahman 2020)."""

from __future__ import annotations

import keras
from keras import layers, ops

from kerasmed.models.blocks import (check_input_size, conv2d_bn, default_activation, min_pool,
                                    multi_branch_gate, multires_block, res_path)
from kerasmed.models.registry import register_model

__all__ = ["drrmsan", "WeightedFusion"]

_AUTO = "auto"
OUTPUT_NAMES = ("side4", "side3", "side2", "final", "fused")


@keras.saving.register_keras_serializable(package="kerasmed")
class WeightedFusion(layers.Layer):
    """``sum_i alphas[i] * inputs[i]`` over same-shaped inputs: DRRMSAN's fused output.

    With ``learnable_alphas=True`` the alphas are one trainable weight (``self.alpha``,
    initialised to ``alphas``, unconstrained); otherwise they are constants kept in the config.
    """

    def __init__(self, alphas=(0.25, 0.25, 0.25, 0.25), learnable_alphas=False, **kwargs):
        # "learnable" is the name the first release of this layer saved under.
        learnable_alphas = kwargs.pop("learnable", learnable_alphas)
        super().__init__(**kwargs)
        self.alphas = [float(a) for a in alphas]
        self.learnable_alphas = bool(learnable_alphas)

    def build(self, input_shape):
        if len(input_shape) != len(self.alphas):
            raise ValueError(f"WeightedFusion has {len(self.alphas)} alphas for "
                             f"{len(input_shape)} inputs")
        if self.learnable_alphas:
            self.alpha = self.add_weight(shape=(len(self.alphas),), name="alpha",
                                         initializer=keras.initializers.Constant(self.alphas),
                                         trainable=True)

    def call(self, inputs):
        alphas = self.alpha if self.learnable_alphas else ops.convert_to_tensor(self.alphas)
        alphas = ops.cast(alphas, inputs[0].dtype)
        return sum(alphas[i] * x for i, x in enumerate(inputs))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "alphas": self.alphas,
                "learnable_alphas": self.learnable_alphas}


def _pyramid_input(image, features, level, name):
    """DRRMSAN's multi-scale input at encoder ``level`` (2, 3 or 4); returns the concatenation.

    The image is max-, average- and min-pooled down to the level's resolution and each pooled
    image, like the pooled encoder ``features``, goes through a 3x3 conv. The concatenation
    keeps the features' width W (the level's MultiRes input width, as in MultiResUNet) and
    splits it as the authors did: int(5 % W) max, int(5 % W) average, int(40 % W) min (at
    least one channel each), the rest from the features.
    """
    width = features.shape[-1]
    size = 2 ** (level - 1)
    n_max = max(1, int(0.05 * width))
    n_avg = max(1, int(0.05 * width))
    n_min = max(1, int(0.40 * width))
    n_feat = width - n_max - n_avg - n_min
    if n_feat < 1:
        raise ValueError(f"{name}: {width} channels are too few to split (use more filters)")
    branches = [
        (features, n_feat, "features"),
        (layers.AveragePooling2D(size, name=f"{name}_img_avgpool")(image), n_avg, "avg"),
        (layers.MaxPooling2D(size, name=f"{name}_img_maxpool")(image), n_max, "max"),
        (min_pool(image, size, name=f"{name}_img_minpool"), n_min, "min"),
    ]
    # Linear convs, as in the authors' code: the MultiRes block that follows starts with
    # conv-BN-ReLU on the concatenation.
    convs = [layers.Conv2D(n, 3, padding="same", name=f"{name}_{tag}_conv")(x)
             for x, n, tag in branches]
    return layers.Concatenate(name=f"{name}_concat")(convs)


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
)
def drrmsan(input_shape=(256, 256, 3), classes=1, activation=_AUTO, filters=32, alpha=1.67,
            alphas=(0.25, 0.25, 0.25, 0.25), learnable_alphas=False, single_output=False,
            regularized=False, name="drrmsan"):
    """Build DRRMSAN (Pal et al., "DRRMSAN: Deep Residual Regularized Multi-Scale Attention
    Networks for segmentation of medical images"; the authors' MSAN-1 variant).

    MultiResUNet's encoder, ResPaths and decoder (Ibtehaz & Rahman 2020). At encoder levels
    2-4 the input image is max-, average- and min-pooled to the level's resolution and joined
    with the pooled features (``_pyramid_input``). Each decoder stage upsamples with a 2x2
    transpose conv, gates its ResPath skip with the multi-branch attention gate
    (``blocks.multi_branch_gate``) and concatenates. Deep supervision: side outputs from
    decoder levels 4, 3, 2 (bilinear upsampling x8, x4, x2, 3x3 conv, activation), the final
    output (1x1 conv-BN, activation), and their fusion ``sum alphas[i] * o_i``.

    Args:
        input_shape: ``(H, W, C)``, H and W divisible by 16.
        classes: output channels of every head.
        activation: ``"auto"`` (sigmoid for one class, softmax for several), another Keras
            activation, or ``None`` for logits (then the fusion sums logits).
        filters: U of the first level (32 in the paper), doubled down the encoder.
        alpha: MultiRes width factor W = alpha U.
        alphas: fusion weights in output order (side4, side3, side2, final); 0.25 each by
            default. The authors tuned them by Bayesian optimisation (sum just under 1), e.g.
            ``(0.287, 0.026, 0.173, 0.512)``.
        learnable_alphas: make the alphas a trainable weight of the ``fused`` layer
            (initialised to ``alphas``, unconstrained).
        single_output: return a one-output model (only ``fused``), e.g. for inference.
        regularized: the paper's regularised variant: L2(1e-4) on the kernels of the gates
            and heads, SpatialDropout2D(0.5) in the gates and before the side heads.
        name: the model's name.

    Returns:
        A ``keras.Model`` with five outputs, in this order and with these names: ``side4``,
        ``side3``, ``side2``, ``final`` and ``fused`` (the one to evaluate, last), each
        ``(batch, H, W, classes)`` in float32; with ``single_output=True`` only ``fused``.

    Parameters at 256x256x3, one output: 11,068,574 (24,522 non-trainable); the authors'
    MSAN-1 has 21,580,994 (counted by rebuilding their code). The MultiRes blocks, ResPaths
    and transpose convs (7,262,696) and the input pyramid (273,770) are identical to theirs.
    The difference is the gates and heads: the authors' gate runs each input through a 2x2
    conv, a 2x2 conv, six 3x3 convs and two 2x2 convs, all U filters wide, and ends in a 3x3
    conv (about 149 U^2 per gate, 12,979,040 in all), where this one uses twelve bias-free 3x3
    convs U/2 wide and a 1x1 conv (3,525,364); and the authors reduce each side output with a
    3x3 ReLU conv to the next level's width before upsampling (1,061,711; their heads total
    1,065,488 against 6,744 here).
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
            x = _pyramid_input(image, x, level, f"pyramid{level}")
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
    final = conv2d_bn(x, classes, 1, name="final_head", activation=None, dtype="float32",
                      kernel_regularizer=regularizer)
    final = layers.Activation(activation or "linear", name="final", dtype="float32")(final)
    fused = WeightedFusion(alphas, learnable_alphas, name="fused", dtype="float32")(
        sides + [final])
    outputs = fused if single_output else sides + [final, fused]
    return keras.Model(image, outputs, name=name)
