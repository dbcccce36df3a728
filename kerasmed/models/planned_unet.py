"""A U-Net an automatic planner can size: nnU-Net's 2D ``PlainConvUNet`` (Isensee et al.,
"nnU-Net: a self-configuring method for deep learning-based biomedical image segmentation",
Nature Methods 18, 2021), a plain U-Net (Ronneberger, Fischer & Brox, MICCAI 2015,
arXiv:1505.04597) described entirely by its stage widths.

Besides the builder, two pure functions let a planner weigh configurations without building
them: ``planned_unet_parameters`` (the exact parameter count, ``count_params()``) and
``planned_unet_activation_units`` (the feature-map values one image produces, the analogue of
nnU-Net's VRAM estimate).
"""

from __future__ import annotations

import numbers

import keras
from keras import layers

from kerasmed.models.blocks import check_choice, check_input_size, default_activation
from kerasmed.models.registry import register_model
from kerasmed.models.side_outputs import output_activation, side_logits

__all__ = ["NORMS", "UPSAMPLING", "planned_unet", "planned_unet_parameters",
           "planned_unet_activation_units", "default_side_levels", "deep_supervision_weights"]

NORMS = ("instance", "group", "batch", "none")
"""The ``norm`` choices: ``GroupNormalization`` with one group per channel (instance norm,
nnU-Net's default), ``GroupNormalization`` with up to 8 groups, ``BatchNormalization``, none."""

UPSAMPLING = ("transpose", "bilinear")
"""The ``upsampling`` choices: a 2x2 stride-2 transpose conv (nnU-Net), or bilinear
interpolation followed by a 1x1 conv to the stage's width."""

_AUTO = "auto"
_EPSILON = 1e-5  # PyTorch's InstanceNorm2d / BatchNorm2d default, which nnU-Net keeps
_MAX_GROUPS = 8


# --------------------------------------------------------------------------------- validation

def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_widths(widths) -> tuple:
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__len__"):
        raise ValueError(f"widths must be a sequence of positive integers, got {widths!r}")
    if len(widths) < 2:
        raise ValueError(f"widths must have at least 2 stages (one pooling), got {tuple(widths)!r}")
    if not all(_is_int(w) and w > 0 for w in widths):
        raise ValueError(f"widths must be positive integers, got {tuple(widths)!r}")
    return tuple(int(w) for w in widths)


def _check_positive_int(value, argument, minimum=1):
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{argument} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def default_side_levels(n_stages: int) -> tuple:
    """nnU-Net's deep-supervision levels for a network of ``n_stages`` encoder stages: every
    decoder stage below the top one (level 0, the ``final`` output) except the lowest
    (level ``n_stages - 2``), to which nnU-Net gives loss weight 0. Level ``i`` is the decoder
    stage at 1/2**i of the input resolution. Returns them deepest first (the output order)."""
    return tuple(range(n_stages - 3, 0, -1))


def deep_supervision_weights(output_names) -> dict:
    """nnU-Net's loss weights for a planned U-Net's outputs: ``final`` (level 0) and each
    side output ``side{i}`` (level i, 1/2**i of the input resolution) weigh 1/2**i, normalised
    to sum to 1, so that coarser heads guide without dominating (Isensee et al. 2021,
    ``nnUNetTrainer._build_loss``; nnU-Net's lowest level, weight 0, is not an output here).
    Returns ``{output name: weight}``; raises ``ValueError`` for a name that is neither."""
    levels = {}
    for name in output_names:
        digits = name[len("side"):] if name.startswith("side") else None
        if name == "final":
            levels[name] = 0
        elif digits and digits.isdigit():
            levels[name] = int(digits)
        else:
            raise ValueError(f"{name!r} is not an output of planned_unet (final, side<i>)")
    raw = {name: 0.5 ** level for name, level in levels.items()}
    total = sum(raw.values())
    return {name: weight / total for name, weight in raw.items()}


def _side_levels(n_stages, deep_supervision, deep_supervision_scales) -> tuple:
    if deep_supervision_scales is None:
        levels = default_side_levels(n_stages) if deep_supervision else ()
    else:
        valid = range(1, n_stages - 1)
        if isinstance(deep_supervision_scales, (str, bytes)) \
                or not hasattr(deep_supervision_scales, "__iter__") \
                or not all(_is_int(s) and s in valid for s in deep_supervision_scales):
            raise ValueError(f"deep_supervision_scales must be decoder levels in "
                             f"{tuple(valid)} (level i: 1/2**i of the input resolution), got "
                             f"{deep_supervision_scales!r}")
        deep_supervision_scales = tuple(int(s) for s in deep_supervision_scales)
        if len(set(deep_supervision_scales)) != len(deep_supervision_scales):
            raise ValueError(f"deep_supervision_scales repeats a level: "
                             f"{deep_supervision_scales!r}")
        if deep_supervision_scales and not deep_supervision:
            raise ValueError("deep_supervision_scales needs deep_supervision=True")
        levels = tuple(sorted(deep_supervision_scales, reverse=True))
    if deep_supervision and not levels:
        raise ValueError(f"deep_supervision: {n_stages} widths leave no side output (nnU-Net "
                         f"supervises the decoder stages between the top and the lowest, levels "
                         f"1..len(widths)-3); give at least 4 widths, or name the levels in "
                         f"deep_supervision_scales (1..{n_stages - 2})")
    return levels


def _group_count(channels: int) -> int:
    """Groups of ``norm="group"``: the largest divisor of ``channels`` not above 8."""
    return max(g for g in range(1, min(_MAX_GROUPS, channels) + 1) if channels % g == 0)


# ------------------------------------------------------------------------- analytical counts

def _norm_parameters(norm, channels):
    # GroupNormalization: gamma and beta. BatchNormalization: gamma, beta and its two moving
    # statistics, which count_params() counts too.
    return {"instance": 2, "group": 2, "batch": 4, "none": 0}[norm] * channels


def _conv3_parameters(c_in, c_out, norm):
    bias = c_out if norm == "none" else 0
    return 9 * c_in * c_out + bias + _norm_parameters(norm, c_out)


def planned_unet_parameters(widths, in_channels, classes, convs_per_stage=2, norm="instance",
                            deep_supervision=False, *, deep_supervision_scales=None,
                            upsampling="transpose") -> int:
    """The parameter count of ``planned_unet`` with these arguments, computed from the widths
    alone (no model is built), so that a planner can fit a network to a budget quickly.

    Equals ``model.count_params()``: every weight, BatchNormalization's moving mean and
    variance included (two per channel). Per conv: 9*in*out weights, a bias only with
    ``norm="none"``, and 2 (group/instance) or 4 (batch) norm parameters per output channel;
    per decoder stage an upsampling of 4*in*out + out (transpose) or in*out + out (bilinear
    and 1x1 conv); per head (``final`` and each side output) widths*classes + classes.
    Raises ``ValueError`` for the arguments ``planned_unet`` rejects.
    """
    widths = _check_widths(widths)
    in_channels = _check_positive_int(in_channels, "in_channels")
    classes = _check_positive_int(classes, "classes")
    convs_per_stage = _check_positive_int(convs_per_stage, "convs_per_stage")
    check_choice(norm, "norm", NORMS)
    check_choice(upsampling, "upsampling", UPSAMPLING)
    sides = _side_levels(len(widths), deep_supervision, deep_supervision_scales)

    total = 0
    previous = in_channels
    for width in widths:  # encoder: the first conv of stages 1.. is the strided one
        total += _conv3_parameters(previous, width, norm)
        total += (convs_per_stage - 1) * _conv3_parameters(width, width, norm)
        previous = width
    up_kernel = 4 if upsampling == "transpose" else 1
    for level in range(len(widths) - 2, -1, -1):  # decoder
        width, below = widths[level], widths[level + 1]
        total += up_kernel * below * width + width
        total += _conv3_parameters(2 * width, width, norm)  # after the skip concatenation
        total += (convs_per_stage - 1) * _conv3_parameters(width, width, norm)
    for level in (*sides, 0):  # 1x1 heads
        total += widths[level] * classes + classes
    return total


def planned_unet_activation_units(input_hw, widths, convs_per_stage=2) -> int:
    """An estimate of the activation memory of one image: the number of values, summed over
    every conv of the encoder and decoder (each 3x3 conv and each decoder upsampling conv), of
    that conv's output, H*W*C at its stage's resolution. Heads, norms, activations and the
    skip concatenations are left out.

    This is the analogue of nnU-Net's ``compute_conv_feature_map_size``, which its planner
    compares with a reference to judge whether a configuration fits the GPU: multiply by the
    batch size and the bytes per value, and by a factor for what training keeps besides (norm
    and activation outputs, gradients), for a memory figure. ``input_hw`` is ``(H, W)``, each
    divisible by ``2**(len(widths) - 1)``. Returns an int.
    """
    widths = _check_widths(widths)
    convs_per_stage = _check_positive_int(convs_per_stage, "convs_per_stage")
    height, width = (int(s) for s in input_hw)
    check_input_size((height, width), 2 ** (len(widths) - 1), "planned_unet_activation_units")
    pixels = [(height >> level) * (width >> level) for level in range(len(widths))]
    total = sum(convs_per_stage * pixels[level] * w for level, w in enumerate(widths))
    total += sum((convs_per_stage + 1) * pixels[level] * widths[level]  # upsampling + convs
                 for level in range(len(widths) - 1))
    return total


# ------------------------------------------------------------------------------------ blocks

def _norm_layer(norm, channels, name):
    if norm == "instance":  # one group per channel; the same as groups=-1
        return layers.GroupNormalization(groups=channels, epsilon=_EPSILON, name=name)
    if norm == "group":
        return layers.GroupNormalization(groups=_group_count(channels), epsilon=_EPSILON,
                                         name=name)
    return layers.BatchNormalization(epsilon=_EPSILON, name=name)


def _conv_norm_act(x, filters, *, prefix, index, strides, norm, negative_slope, dropout):
    """nnU-Net's ConvDropoutNormReLU: 3x3 conv, dropout, norm, LeakyReLU; layers
    ``{prefix}_conv{index}``, ``_dropout{index}``, ``_norm{index}``, ``_act{index}``."""
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=norm == "none",
                      kernel_initializer="he_normal", name=f"{prefix}_conv{index}")(x)
    if dropout:
        x = layers.Dropout(dropout, name=f"{prefix}_dropout{index}")(x)
    if norm != "none":
        x = _norm_layer(norm, filters, f"{prefix}_norm{index}")(x)
    return layers.LeakyReLU(negative_slope=negative_slope, name=f"{prefix}_act{index}")(x)


def _stage(x, filters, *, prefix, convs, first_strides, **conv_args):
    for j in range(convs):
        x = _conv_norm_act(x, filters, prefix=prefix, index=j + 1,
                           strides=first_strides if j == 0 else 1, **conv_args)
    return x


# ----------------------------------------------------------------------------------- builder

@register_model(
    "planned_unet",
    description="Planner-sized plain U-Net (nnU-Net's 2D PlainConvUNet, Isensee et al. 2021): "
                "per-stage widths, strided-conv downsampling, instance norm, LeakyReLU",
)
def planned_unet(input_shape=(256, 256, 1), classes=1, activation=_AUTO,
                 widths=(32, 64, 128, 256, 512), convs_per_stage=2, norm="instance",
                 negative_slope=0.01, dropout=0.0, deep_supervision=False,
                 deep_supervision_scales=None, upsampling="transpose", name="planned_unet"):
    """Build nnU-Net's 2D U-Net (``PlainConvUNet`` of Isensee et al., "nnU-Net: a
    self-configuring method for deep learning-based biomedical image segmentation", Nature
    Methods 2021), the plain U-Net of Ronneberger et al. (MICCAI 2015, arXiv:1505.04597) in the
    form nnU-Net's planner sizes: everything follows from ``widths``.

    Encoder stage i has ``widths[i]`` features and ``convs_per_stage`` convs. Each conv is a
    3x3 Conv2D (no bias when a norm follows: the norm's offset makes it redundant), dropout
    (if any), the norm and LeakyReLU(``negative_slope``). Stages 1.. downsample by 2 with their
    first conv, a 3x3 conv with stride 2 ("same" padding: Keras pads the bottom and right,
    where nnU-Net's PyTorch conv pads 1 on every side), as nnU-Net does instead of pooling.
    The decoder mirrors the encoder: at each level a 2x2 stride-2 transpose conv (or bilinear
    upsampling and a 1x1 conv) to the level's width, concatenation with the encoder stage's
    output, and ``convs_per_stage`` convs. A 1x1 conv head maps the top decoder stage to
    ``classes``.

    Layers are named ``enc{i}_conv{j}``, ``enc{i}_norm{j}``, ``enc{i}_act{j}`` (i: the stage,
    0..len(widths)-1; j: 1..convs_per_stage), ``dec{i}_up`` (the upsampling conv; bilinear
    upsampling also has ``dec{i}_upsample``), ``dec{i}_concat``, ``dec{i}_conv{j}`` ... (i: the
    level, len(widths)-2 down to 0), ``final_conv`` / ``final`` and ``side{i}_conv``,
    ``side{i}_upsample``, ``side{i}``.

    Args:
        input_shape: ``(H, W, C)``; H and W divisible by ``2**(len(widths) - 1)`` (or ``None``).
        classes: output channels.
        activation: head activation; ``"auto"`` gives sigmoid for one class and softmax for
            several; ``None`` gives logits.
        widths: features of each encoder stage, at least 2 (len(widths) - 1 downsamplings).
        convs_per_stage: convs in every encoder and decoder stage (the strided one included).
        norm: one of ``NORMS``: ``"instance"`` (``GroupNormalization`` with one group per
            channel, nnU-Net's default), ``"group"`` (``GroupNormalization``, groups the largest
            divisor of the channels up to 8), ``"batch"`` or ``"none"``.
        negative_slope: LeakyReLU's slope for negative inputs (nnU-Net: 0.01; 0 gives ReLU).
        dropout: dropout rate after every conv, before its norm (nnU-Net: 0).
        deep_supervision: also return side outputs from decoder stages below the top.
        deep_supervision_scales: the decoder levels that give side outputs, each in
            1..len(widths)-2 (level i: 1/2**i of the input resolution); ``None``: nnU-Net's,
            every level but the top and the lowest (the lowest has loss weight 0 in nnU-Net),
            1..len(widths)-3. Needs ``deep_supervision``.
        upsampling: ``"transpose"`` (2x2 stride-2 transpose conv, nnU-Net) or ``"bilinear"``
            (bilinear interpolation, then a 1x1 conv to the level's width).
        name: the model's name.

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images to ``(batch, H, W, classes)``,
        the output named ``final``. With deep supervision its outputs are the side outputs
        first, deepest first (``side{k}`` .. ``side1`` with the default levels), then
        ``final`` (the one to evaluate), each a 1x1 conv head on its decoder stage bilinearly
        upsampled to ``(batch, H, W, classes)``, so that every output takes the same
        full-size target. All heads compute in float32 (under mixed precision too).

    Parameters (measured, ``count_params()``, equal to ``planned_unet_parameters``) at the
    defaults, 256x256x1, one class: 7,762,465; 7,762,659 with deep supervision (sides 2 and
    1), 7,768,353 with ``norm="batch"`` (its moving statistics included), 7,240,225 with
    ``upsampling="bilinear"``. Activation units (``planned_unet_activation_units``) at
    256x256: 19,922,944.

    Raises:
        ValueError: naming the argument, for widths that are not at least two positive
            integers, ``convs_per_stage`` < 1, an unknown ``norm`` or ``upsampling``, a
            negative ``negative_slope``, ``dropout`` outside [0, 1), ``classes`` < 1, bad
            ``deep_supervision_scales``, or an input size not divisible by the total stride.
    """
    widths = _check_widths(widths)
    classes = _check_positive_int(classes, "classes")
    convs_per_stage = _check_positive_int(convs_per_stage, "convs_per_stage")
    check_choice(norm, "norm", NORMS)
    check_choice(upsampling, "upsampling", UPSAMPLING)
    if not isinstance(negative_slope, numbers.Real) or isinstance(negative_slope, bool) \
            or negative_slope < 0:
        raise ValueError(f"negative_slope must be a number >= 0, got {negative_slope!r}")
    if not isinstance(dropout, numbers.Real) or isinstance(dropout, bool) \
            or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
    sides = _side_levels(len(widths), deep_supervision, deep_supervision_scales)
    check_input_size(input_shape, 2 ** (len(widths) - 1), name)
    if activation == _AUTO:
        activation = default_activation(classes)
    conv_args = dict(convs=convs_per_stage, norm=norm, negative_slope=float(negative_slope),
                     dropout=float(dropout))

    inputs = keras.Input(input_shape, name="image")
    x = inputs
    skips = []
    for stage, width in enumerate(widths):
        x = _stage(x, width, prefix=f"enc{stage}", first_strides=2 if stage else 1, **conv_args)
        skips.append(x)

    decoder = {}
    for level in range(len(widths) - 2, -1, -1):
        width = widths[level]
        if upsampling == "transpose":
            x = layers.Conv2DTranspose(width, 2, strides=2, kernel_initializer="he_normal",
                                       name=f"dec{level}_up")(x)
        else:
            x = layers.UpSampling2D(2, interpolation="bilinear", name=f"dec{level}_upsample")(x)
            x = layers.Conv2D(width, 1, kernel_initializer="he_normal", name=f"dec{level}_up")(x)
        x = layers.Concatenate(name=f"dec{level}_concat")([x, skips[level]])
        x = _stage(x, width, prefix=f"dec{level}", first_strides=1, **conv_args)
        decoder[level] = x

    def head(level, out_name):
        logits = side_logits(decoder[level], classes, name=out_name, kernel_size=1,
                             factor=2**level, upsampling="bilinear")
        return output_activation(logits, activation, name=out_name)

    outputs = [head(level, f"side{level}") for level in sides] + [head(0, "final")]
    return keras.Model(inputs, outputs if sides else outputs[0], name=name)
