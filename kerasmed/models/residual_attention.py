"""Residual Attention Network (Wang et al., "Residual Attention Network for Image
Classification", CVPR 2017, arXiv:1704.06904), and the small variant a retinal-OCT project used
(github.com/deontaepharr/Retinal-Disease-Diagnosis-With-Residual-Attention-Networks).

Attention modules stack on a pre-activation bottleneck ResNet. Each module has a trunk branch of
residual units and a soft mask branch (bottom-up max-pooling and top-down upsampling with skip
connections between matching resolutions, two 1x1 convs and a sigmoid), combined by attention
residual learning: ``H(x) = (1 + M(x)) * T(x)``.
"""

from __future__ import annotations

import keras
from keras import layers

from kerasmed.models.blocks import check_input_size
from kerasmed.models.registry import register_model

__all__ = ["residual_attention_network", "preact_bottleneck", "attention_module", "RAN_VARIANTS"]

# modules per stage, stage widths (output channels of the units), mask pools per stage.
RAN_VARIANTS = {
    "attention56": {"modules": (1, 1, 1), "widths": (256, 512, 1024, 2048), "pools": (3, 2, 1)},
    "attention92": {"modules": (1, 2, 3), "widths": (256, 512, 1024, 2048), "pools": (3, 2, 1)},
    # The OCT project's network: 3x3 stem of 32 filters, two modules of 64-wide units without
    # bottleneck expansion, a 4-pool mask without skips and nearest upsampling, dense head.
    "oct_small": {"modules": (1, 1), "widths": (64, 64), "pools": (4, 4)},
}


def _bn_relu(x, *, name):
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def _conv(x, filters, kernel, *, name, strides=1):
    return layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                         kernel_initializer="he_normal", name=name)(x)


def preact_bottleneck(x, filters, *, name, strides=1, expansion=4):
    """Pre-activation bottleneck residual unit (He et al. 2016, arXiv:1603.05027).

    BN-ReLU-1x1 (filters / expansion), BN-ReLU-3x3 (stride ``strides``), BN-ReLU-1x1
    (``filters``), added to the input, or to a strided 1x1 projection of the pre-activated
    input when the shape changes. Convs have no bias. Returns the sum (not activated: the next
    unit's BN-ReLU is its pre-activation).
    """
    pre = _bn_relu(x, name=f"{name}_preact")
    shortcut = x
    if x.shape[-1] != filters or strides != 1:
        shortcut = _conv(pre, filters, 1, strides=strides, name=f"{name}_shortcut")
    inner = max(1, filters // expansion)
    h = _conv(pre, inner, 1, name=f"{name}_conv1")
    h = _bn_relu(h, name=f"{name}_2")
    h = _conv(h, inner, 3, strides=strides, name=f"{name}_conv2")
    h = _bn_relu(h, name=f"{name}_3")
    h = _conv(h, filters, 1, name=f"{name}_conv3")
    return layers.Add(name=f"{name}_add")([h, shortcut])


def attention_module(x, filters, *, name, pools, skips=True, upsampling="bilinear",
                     mask_pool_size=3, p=1, t=2, r=1, expansion=4):
    """An attention module; returns its output (same shape as ``x``, ``filters`` channels).

    ``p`` units, then a trunk of ``t`` units and a soft mask branch: ``pools`` times max-pool
    (stride 2) followed by ``r`` units, ``r`` more units at the bottom, then back up: upsample
    x2, add the skip (a unit on the bottom-up features at that resolution, when ``skips``),
    ``r`` units; a last upsampling to the trunk's size, BN-ReLU-1x1 conv, BN-ReLU-1x1 conv and a
    sigmoid. Attention residual learning ``(1 + M) * T``, then ``p`` units.
    """
    def unit(y, n):
        return preact_bottleneck(y, filters, name=n, expansion=expansion)

    for i in range(p):
        x = unit(x, f"{name}_pre{i + 1}")
    trunk = x
    for i in range(t):
        trunk = unit(trunk, f"{name}_trunk{i + 1}")

    m = x
    skip_maps = []
    for level in range(1, pools + 1):
        m = layers.MaxPooling2D(mask_pool_size, strides=2, padding="same",
                                name=f"{name}_mask_pool{level}")(m)
        for j in range(r):
            m = unit(m, f"{name}_mask_down{level}_{j + 1}")
        if skips and level < pools:
            skip_maps.append(unit(m, f"{name}_mask_skip{level}"))
    for j in range(r):
        m = unit(m, f"{name}_mask_bottom{j + 1}")
    for level in range(pools - 1, 0, -1):
        m = layers.UpSampling2D(2, interpolation=upsampling, name=f"{name}_mask_up{level}")(m)
        if skips:
            m = layers.Add(name=f"{name}_mask_merge{level}")([m, skip_maps[level - 1]])
        for j in range(r):
            m = unit(m, f"{name}_mask_up{level}_{j + 1}")
    m = layers.UpSampling2D(2, interpolation=upsampling, name=f"{name}_mask_up0")(m)
    m = _bn_relu(m, name=f"{name}_mask_out1")
    m = _conv(m, filters, 1, name=f"{name}_mask_conv1")
    m = _bn_relu(m, name=f"{name}_mask_out2")
    m = _conv(m, filters, 1, name=f"{name}_mask_conv2")
    m = layers.Activation("sigmoid", name=f"{name}_mask_sigmoid")(m)

    # (1 + M) * T = M * T + T
    attended = layers.Multiply(name=f"{name}_attend")([m, trunk])
    x = layers.Add(name=f"{name}_residual")([attended, trunk])
    for i in range(p):
        x = unit(x, f"{name}_post{i + 1}")
    return x


def _scale(channels, width):
    return max(1, int(round(channels * width)))


@register_model(
    "residual_attention_network",
    task="classification",
    description="Residual Attention Network (Wang et al. 2017): Attention-56/92, small OCT net",
)
def residual_attention_network(input_shape=(224, 224, 3), classes=1000, activation="softmax",
                               variant="attention56", width=1.0, dropout=0.5, name=None):
    """Build a Residual Attention Network classifier.

    ``attention56`` / ``attention92`` (the paper's ImageNet networks): 7x7/2 conv (64) + BN-ReLU,
    3x3/2 max-pool; stage 1: a unit to 256 channels and 1 module (mask: 3 pools); stage 2: a
    stride-2 unit to 512 and 1 (Attention-92: 2) modules (2 pools); stage 3: a stride-2 unit to
    1024 and 1 (3) modules (1 pool); stage 4: three units to 2048 (the first stride 2);
    BN-ReLU, global average pool, Dense(classes). Units are pre-activation bottlenecks
    (width / 4 inside); modules use p = 1, t = 2, r = 1, bilinear upsampling and mask skips.

    ``oct_small`` (the OCT project's network, for 32x32 grayscale images): 3x3 conv (32) + 2x2
    max-pool; a unit to 64 and a module, twice (units of 64 without bottleneck expansion; mask
    of 4 pools with 2x2 max-pooling, nearest upsampling and no skips); four units; BN-ReLU,
    2x2 average pool, flatten, Dense(128, ReLU), dropout, Dense(classes).

    Args:
        input_shape: ``(H, W, C)``; H and W divisible by 32.
        classes: number of classes.
        activation: output activation (softmax; ``None`` gives logits), computed in float32.
        variant: ``"attention56"``, ``"attention92"`` or ``"oct_small"``.
        width: multiplier of every unit's channels (1 is the paper; tests use less).
        dropout: dropout before the last Dense of ``oct_small`` (the paper variants have none).
        name: the model's name; ``None`` gives the variant's name.

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images to ``(batch, classes)`` class
        probabilities in float32.

    Parameters (224x224x3, 1,000 classes; Keras counts include BatchNorm moving statistics):
    Attention-56 31,883,432 (31,810,728 trainable; paper: 31.9M), Attention-92 52,599,976
    (52,466,344 trainable; paper: 51.3M, 2.3 % fewer: kerasmed repeats the module layout of
    the authors' released Attention-56 Caffe model, whose mask ends in tanh where kerasmed, as
    the paper, uses a sigmoid). ``oct_small`` at 32x32x1 with 4 classes: 1,917,508 (1,905,412
    trainable; the OCT project: about 1.9M).
    """
    if variant not in RAN_VARIANTS:
        raise ValueError(f"variant must be one of {sorted(RAN_VARIANTS)}, got {variant!r}")
    check_input_size(input_shape, 32, variant)
    spec = RAN_VARIANTS[variant]

    def ch(c):
        return _scale(c, width)

    inputs = keras.Input(input_shape, name="image")
    if variant == "oct_small":
        x = layers.Conv2D(ch(32), 3, padding="same", name="stem_conv")(inputs)
        x = layers.MaxPooling2D(2, name="stem_pool")(x)
        for stage, (modules, filters, pools) in enumerate(
                zip(spec["modules"], spec["widths"], spec["pools"]), start=1):
            x = preact_bottleneck(x, ch(filters), name=f"stage{stage}_unit", expansion=1)
            for i in range(modules):
                x = attention_module(x, ch(filters), name=f"stage{stage}_attention{i + 1}",
                                     pools=pools, skips=False, upsampling="nearest",
                                     mask_pool_size=2, expansion=1)
        for i in range(4):
            x = preact_bottleneck(x, ch(spec["widths"][-1]), name=f"final_unit{i + 1}",
                                  expansion=1)
        x = _bn_relu(x, name="final")
        x = layers.AveragePooling2D(2, name="avg_pool")(x)
        x = layers.Flatten(name="flatten")(x)
        x = layers.Dense(128, activation="relu", name="fc1")(x)
        x = layers.Dropout(dropout, name="fc1_dropout")(x)
    else:
        x = _conv(inputs, ch(64), 7, strides=2, name="stem_conv")
        x = _bn_relu(x, name="stem")
        x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
        for stage, (modules, filters, pools) in enumerate(
                zip(spec["modules"], spec["widths"], spec["pools"]), start=1):
            x = preact_bottleneck(x, ch(filters), name=f"stage{stage}_unit",
                                  strides=1 if stage == 1 else 2)
            for i in range(modules):
                x = attention_module(x, ch(filters), name=f"stage{stage}_attention{i + 1}",
                                     pools=pools)
        for i in range(3):
            x = preact_bottleneck(x, ch(spec["widths"][3]), name=f"stage4_unit{i + 1}",
                                  strides=2 if i == 0 else 1)
        x = _bn_relu(x, name="final")
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dense(classes, name="predictions", dtype="float32")(x)
    if activation is not None:
        x = layers.Activation(activation, name=f"predictions_{activation}", dtype="float32")(x)
    return keras.Model(inputs, x, name=name or variant)
