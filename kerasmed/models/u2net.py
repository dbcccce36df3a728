"""U^2-Net (Qin, Zhang, Huang, Dehghan, Zaiane & Jagersand, Pattern Recognition 2020,
arXiv:2005.09007): a U-Net of residual U-blocks (RSU), each itself a small U-Net."""

from __future__ import annotations

import keras
from keras import layers

from kerasmed.models.blocks import check_choice, check_depth, conv_bn_act, default_activation
from kerasmed.models.blocks.generic import POOLINGS, UPSAMPLE_MODES
from kerasmed.models.registry import register_model
from kerasmed.models.side_outputs import output_activation, side_logits

__all__ = ["u2net", "U2NET_VARIANTS"]

_AUTO = "auto"

# (mid, out) channels of the eleven stages En_1..En_6, De_5..De_1 (the paper's Table 1).
U2NET_VARIANTS = {
    "full": ((32, 64), (32, 128), (64, 256), (128, 512), (256, 512), (256, 512),
             (256, 512), (128, 256), (64, 128), (32, 64), (16, 64)),
    "small": ((16, 64),) * 11,  # U^2-Net-P (U2NETP in the authors' code)
}


def _conv(x, filters, *, name, dilation=1, batch_norm, use_bias):
    """REBNCONV: 3x3 conv (dilated by ``dilation``), BN, ReLU."""
    return conv_bn_act(x, filters, dilation_rate=dilation, name=name, batch_norm=batch_norm,
                       use_bias=use_bias)


def _down(x, filters, *, name, pooling, batch_norm, use_bias):
    if pooling == "max":
        return layers.MaxPooling2D(2, name=f"{name}_pool")(x)
    return conv_bn_act(x, filters, 2, strides=2, padding="valid", name=f"{name}_down",
                       batch_norm=batch_norm, use_bias=use_bias)


def _up(x, filters, *, name, upsampling, batch_norm):
    if upsampling == "transpose":
        x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same", name=f"{name}_upconv")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_upconv_bn")(x)
        return layers.Activation("relu", name=f"{name}_upconv_relu")(x)
    return layers.UpSampling2D(2, interpolation=upsampling, name=f"{name}_upsample")(x)


def rsu(x, height, mid, out, *, name, pooling="max", upsampling="bilinear", batch_norm=True,
        use_bias=True):
    """Residual U-block RSU-L (``height`` = L): an input conv to ``out`` channels, a U-Net
    of height L with ``mid`` channels (L-1 convs down with L-2 poolings, a dilated conv at
    the bottom, L-2 convs up) whose last conv returns to ``out``, and the input conv's
    output added back. Returns ``(batch, H, W, out)``; H and W divisible by 2**(L-2)."""
    conv = dict(batch_norm=batch_norm, use_bias=use_bias)
    hx_in = _conv(x, out, name=f"{name}_in", **conv)
    skips = [_conv(hx_in, mid, name=f"{name}_enc1", **conv)]
    for i in range(2, height):
        h = _down(skips[-1], mid, name=f"{name}_enc{i}", pooling=pooling, **conv)
        skips.append(_conv(h, mid, name=f"{name}_enc{i}", **conv))
    h = _conv(skips[-1], mid, dilation=2, name=f"{name}_bottom", **conv)
    for i in range(height - 1, 0, -1):
        h = layers.Concatenate(name=f"{name}_dec{i}_concat")([h, skips[i - 1]])
        h = _conv(h, out if i == 1 else mid, name=f"{name}_dec{i}", **conv)
        if i > 1:
            h = _up(h, mid, name=f"{name}_dec{i}", upsampling=upsampling, batch_norm=batch_norm)
    return layers.Add(name=f"{name}_residual")([h, hx_in])


def rsu4f(x, mid, out, *, name, batch_norm=True, use_bias=True):
    """RSU-4F: RSU-4 with dilations 1, 2, 4 and 8 in place of pooling and upsampling, so
    that the resolution never changes. Returns ``(batch, H, W, out)``."""
    conv = dict(batch_norm=batch_norm, use_bias=use_bias)
    hx_in = _conv(x, out, name=f"{name}_in", **conv)
    skips = [_conv(hx_in, mid, name=f"{name}_enc1", **conv)]
    for i, dilation in ((2, 2), (3, 4)):
        skips.append(_conv(skips[-1], mid, dilation=dilation, name=f"{name}_enc{i}", **conv))
    h = _conv(skips[-1], mid, dilation=8, name=f"{name}_bottom", **conv)
    for i, dilation in ((3, 4), (2, 2), (1, 1)):
        h = layers.Concatenate(name=f"{name}_dec{i}_concat")([h, skips[i - 1]])
        h = _conv(h, out if i == 1 else mid, dilation=dilation, name=f"{name}_dec{i}", **conv)
    return layers.Add(name=f"{name}_residual")([h, hx_in])


def _stages(variant, filters, depth):
    """(height, mid, out) of each stage, En_1..En_{depth+1} then De_depth..De_1; height 0
    marks RSU-4F. Encoder stage i (0-based) above the two RSU-4F stages is an RSU of height
    depth + 2 - i, so that every RSU's innermost level is at 1/2**depth of the input (RSU-7,
    6, 5, 4 for the paper's depth 5)."""
    n = depth + 1
    if isinstance(variant, str):
        if variant not in U2NET_VARIANTS:
            raise ValueError(f"variant must be one of {sorted(U2NET_VARIANTS)} or "
                             f"{2 * n - 1} (mid, out) pairs, got {variant!r}")
        table = U2NET_VARIANTS[variant]
        # Fewer stages than the paper's: keep its top stages and its RSU-4F stages.
        widths = list(table[: n - 2]) + list(table[4:7]) + list(table[11 - (n - 2):])
    else:
        widths = list(variant)
    widths = [tuple(int(c) for c in pair) for pair in widths]
    if len(widths) != 2 * n - 1 or any(len(pair) != 2 for pair in widths):
        raise ValueError(f"variant must name a configuration or give {2 * n - 1} (mid, out) "
                         f"pairs, for En_1..En_{n} and De_{n - 1}..De_1")
    heights = [depth + 2 - i for i in range(n - 2)] + [0, 0, 0]
    heights += heights[: n - 2][::-1]
    return [(h, max(1, mid * filters // 64), max(1, out * filters // 64))
            for h, (mid, out) in zip(heights, widths)]


@register_model(
    "u2net",
    description="U^2-Net (Qin et al. 2020): nested U-structure of residual U-blocks, six side "
                "outputs fused; full and small (U^2-Net-P) variants",
)
def u2net(input_shape=(320, 320, 3), classes=1, activation=_AUTO, variant="full", filters=64,
          depth=5, deep_supervision=True, batch_norm=True, conv_bias=True, pooling="max",
          upsampling="bilinear", name="u2net"):
    """Build U^2-Net (Qin et al., "U^2-Net: Going Deeper with Nested U-Structure for Salient
    Object Detection", Pattern Recognition 106, 2020, arXiv:2005.09007).

    Six encoder stages (RSU-7, RSU-6, RSU-5, RSU-4, RSU-4F, RSU-4F) with 2x2 max pooling
    between them and five decoder stages (RSU-4F, RSU-4, RSU-5, RSU-6, RSU-7), each taking
    the upsampled stage below concatenated with the encoder stage of its resolution. Every
    conv is a 3x3 conv-BN-ReLU (REBNCONV). Side outputs: a 3x3 conv on each decoder stage
    and on the last encoder stage, bilinearly upsampled to the input size; the fused output
    is a 1x1 conv over the six side logits. Every output gets the activation.

    Args:
        input_shape: ``(H, W, C)``; H and W divisible by ``2**depth`` (or ``None``).
        classes: output channels of every head.
        activation: head activation; ``"auto"`` gives sigmoid for one class and softmax for
            several; ``None`` gives logits.
        variant: ``"full"`` (U^2-Net) or ``"small"`` (U^2-Net-P: 64 output and 16 inner
            channels in every stage), or ``2 * depth + 1`` ``(mid, out)`` channel pairs for
            En_1..En_6 and De_5..De_1 (11 at depth 5).
        filters: width scale: every stage's channels are multiplied by ``filters / 64``
            (64 is the paper's network; e.g. 16 gives a quarter of the width).
        depth: downsamplings of the outer U (5 in the paper: six stages). A smaller depth
            keeps the paper's top stages and its two RSU-4F stages, with RSU heights
            lowered so that each reaches 1/2**depth of the input (depth 2: RSU-4, RSU-4F,
            RSU-4F); at least 2.
        deep_supervision: return the six side outputs as well as the fused one (the paper
            trains all seven with BCE).
        batch_norm: BatchNormalization after every conv.
        conv_bias: convs keep their bias before BN (the authors' code); ``False`` drops it
            where BN follows (keras-unet-collection).
        pooling: ``"max"``, or ``"strided"`` (2x2 stride-2 conv-BN-ReLU, as
            keras-unet-collection's ``pool=False``), between and inside the stages.
        upsampling: ``"bilinear"``/``"nearest"``, or ``"transpose"`` (3x3 stride-2 transpose
            conv-BN-ReLU inside and between the stages, transpose-conv side heads, as
            keras-unet-collection's ``unpool=False``).
        name: the model's name.

    Returns:
        A ``keras.Model``. With ``deep_supervision=True`` its outputs are, in this order,
        ``side1`` .. ``side6`` (the heads on De_1 .. De_5 and En_6, all at the input size;
        ``side{depth+1}`` is the last at other depths)
        and ``fused`` (the one to evaluate), each ``(batch, H, W, classes)``; without, only
        ``fused``. All heads compute in float32.

    Parameters at 320x320x3, one class (trainable): 44,009,869 for ``"full"`` and 1,131,181
    for ``"small"``, equal to the authors' PyTorch ``U2NET`` and ``U2NETP`` counted with
    torch (the paper gives 176.3 MB and 4.7 MB, about 44.0M and 1.13M parameters).
    """
    check_choice(pooling, "pooling", POOLINGS)
    check_choice(upsampling, "upsampling", UPSAMPLE_MODES)
    check_depth(input_shape, depth, name, minimum=2)
    if activation == _AUTO:
        activation = default_activation(classes)
    stages = _stages(variant, filters, depth)
    block = dict(batch_norm=batch_norm, use_bias=True if conv_bias else None)
    n = depth + 1

    def stage(x, index, tag):
        height, mid, out = stages[index]
        if height:
            return rsu(x, height, mid, out, name=tag, pooling=pooling, upsampling=upsampling,
                       **block)
        return rsu4f(x, mid, out, name=tag, **block)

    inputs = keras.Input(input_shape, name="image")
    encoder = []
    x = inputs
    for i in range(n):
        if i:
            x = _down(x, stages[i][2], name=f"stage{i}_to_en{i + 1}", pooling=pooling, **block)
        x = stage(x, i, f"en{i + 1}")
        encoder.append(x)
    decoder = {n: encoder[-1]}  # the last side output comes from the last encoder stage
    for level in range(n - 1, 0, -1):
        index = 2 * n - 1 - level  # De_{n-1} .. De_1 follow the encoder stages
        x = _up(x, stages[index][2], name=f"de{level + 1}_to_de{level}",
                upsampling=upsampling, batch_norm=batch_norm)
        x = layers.Concatenate(name=f"de{level}_concat")([x, encoder[level - 1]])
        x = stage(x, index, f"de{level}")
        decoder[level] = x

    side_logit_maps = [side_logits(decoder[level], classes, name=f"side{level}",
                                   factor=2 ** (level - 1), upsampling=upsampling)
                       for level in range(1, n + 1)]
    fused = layers.Concatenate(name="fuse_concat", dtype="float32")(side_logit_maps)
    fused = layers.Conv2D(classes, 1, name="fused_conv", dtype="float32")(fused)
    fused = output_activation(fused, activation, name="fused")
    if not deep_supervision:
        return keras.Model(inputs, fused, name=name)
    sides = [output_activation(s, activation, name=f"side{level}")
             for level, s in zip(range(1, n + 1), side_logit_maps)]
    return keras.Model(inputs, sides + [fused], name=name)
