"""Micro-Net (Raza et al., "Micro-Net: A unified model for segmentation of various objects in
microscopy images", Medical Image Analysis 52, 2019, arXiv:1804.08145).

A valid-padded encoder-decoder with tanh activations whose encoder blocks also see the input
image resized to their own scale (multi-resolution input), three auxiliary heads and a main
head. Micro-Net-252 follows the TIAToolbox PyTorch implementation (from the authors' group)
layer for layer; Micro-Net-508 adds one encoder stage and one decoder stage (see ``micronet``).

The model takes ONE image input and makes the lower-resolution copies itself with
``keras.layers.Resizing`` (bicubic), so that data pipelines, augmentation and ``predict`` see an
ordinary single-input segmentation model.

Training recipe of the paper: main loss + (sum of auxiliary losses) / epoch, which
``kerasmed.training.aux_weight`` provides without recompiling (``auxiliary_losses`` and the
``AuxiliaryLossWeight`` callback).
"""

from __future__ import annotations

import keras
from keras import layers

from kerasmed.models.registry import register_model

__all__ = ["micronet", "micronet_parameters", "VARIANTS"]

_AUTO = "auto"

# Encoder branch widths (B1-B4; each block concatenates two branches, so outputs are twice
# these), the bottleneck width and the decoder widths, at width = 1.
_ENCODER = (64, 128, 256, 512)
_BOTTLENECK = 2048
VARIANTS = {
    # B6-B9 decode from B5 with skips B4..B1.
    252: {"decoder": (1024, 512, 256, 128)},
    # B5 has an extra (conv, conv, pool) stage; B6 upsamples it; B7-B10 decode with skips B4..B1.
    508: {"decoder": (1024, 512, 256, 128)},
}
_AUX = (64, 128, 256)   # channels of the three upsampled feature maps feeding the heads


def _scale(channels, width):
    return max(1, int(round(channels * width)))


def _conv(x, filters, kernel, *, name, batch_norm=False):
    """Valid conv with bias, tanh, then BatchNorm (the order of the reference code)."""
    x = layers.Conv2D(filters, kernel, padding="valid", name=f"{name}_conv")(x)
    x = layers.Activation("tanh", name=f"{name}_tanh")(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return x


def _encoder_block(x, image, filters, size, *, name, batch_norm):
    """Group 1: conv-conv-pool on the main path; the image resized to ``size`` through two
    convs; concatenated (main first)."""
    a = _conv(x, filters, 3, name=f"{name}_1", batch_norm=batch_norm)
    a = _conv(a, filters, 3, name=f"{name}_2")
    a = layers.MaxPooling2D(2, name=f"{name}_pool")(a)
    b = layers.Resizing(size, size, interpolation="bicubic", name=f"{name}_resize")(image)
    b = _conv(b, filters, 3, name=f"{name}_image1", batch_norm=batch_norm)
    b = _conv(b, filters, 3, name=f"{name}_image2")
    return layers.Concatenate(name=f"{name}_concat")([a, b])


def _decoder_block(x, skip, filters, *, name):
    """Group 3: 2x2/2 transpose conv, conv, conv, 5x5 transpose conv; the skip through its own
    5x5 transpose conv; concatenated; 1x1 conv (tanh)."""
    a = layers.Conv2DTranspose(filters, 2, strides=2, name=f"{name}_up")(x)
    a = _conv(a, filters, 3, name=f"{name}_1")
    a = _conv(a, filters, 3, name=f"{name}_2")
    a = layers.Conv2DTranspose(filters, 5, name=f"{name}_up5")(a)
    b = layers.Conv2DTranspose(filters, 5, name=f"{name}_skip_up5")(skip)
    y = layers.Concatenate(name=f"{name}_concat")([a, b])
    return _conv(y, filters, 1, name=f"{name}_fuse")


def _feature_map(x, filters, stride, *, name):
    """Group 4: transpose conv (kernel = stride) to the output scale, then a valid 3x3 conv."""
    x = layers.Conv2DTranspose(filters, stride, strides=stride, name=f"{name}_up")(x)
    return _conv(x, filters, 3, name=name)


def _head(x, classes, activation, dropout, *, name):
    x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    x = layers.Conv2D(classes, 3, padding="valid", name=f"{name}_conv", dtype="float32")(x)
    if activation is None:
        return layers.Identity(name=name, dtype="float32")(x)
    return layers.Activation(activation, name=name, dtype="float32")(x)


def _resize_sizes(size, stages=4):
    """The sizes the image is resized to for B1..B4: each block's output size + 4."""
    sizes = []
    for _ in range(stages):
        size = (size - 4) // 2
        sizes.append(size + 4)
    return sizes


@register_model(
    "micronet",
    description="Micro-Net-508 / -252 (Raza et al. 2019): multi-resolution input, auxiliary heads",
    defaults={"input_shape": (508, 508, 3), "variant": 508},
)
def micronet(input_shape=None, variant=None, classes=2, activation=_AUTO, width=1.0,
             dropout=0.5, batch_norm=True, name=None):
    """Build Micro-Net-508 or Micro-Net-252.

    Valid 3x3 convs with tanh; BatchNorm after the first conv of each pair in the encoder
    blocks B1-B4 (main and resized-image branches). Sizes for Micro-Net-508 (width 1):
    B1 252x252x128, B2 124x124x256, B3 60x60x512, B4 28x28x1024 (each: conv, conv, 2x2 max-pool
    on the main path, concatenated with two convs on the image resized bicubically to 256, 128,
    64, 32), B5 8x8x2048 (conv, conv, pool, conv, conv, all 2048 wide), B6 16x16x2048 (a 2x2
    stride-2 transpose conv + tanh), decoder B7-B10 (skips B4-B1) to 256x256x128. Three
    auxiliary heads (from B10, B9, B8: transpose conv to 512x512 with 64/128/256 channels,
    valid conv to 510, dropout, valid conv) and the main head (their three 510x510 maps
    concatenated, 448 channels, dropout, valid conv) give 508x508 outputs. Micro-Net-252 has no
    second B5 stage and no B6 upsampling: B5 (conv, conv) at 8x8x2048 feeds B6-B9 (skips
    B4-B1), the image is resized to 128, 64, 32, 16, and the outputs are 252x252.

    The paper's figures fix B6's output size (16x16x2048) but not its layers; kerasmed uses one
    transpose conv, the fewest parameters that give that size. B5's pooled 12x12 features are
    not a skip.

    Args:
        input_shape: ``(H, W, C)`` with H = W = the variant's size (valid convolutions fix the
            geometry: a Micro-Net accepts exactly one input size). ``None`` gives
            ``(variant, variant, 3)``.
        variant: 508 or 252; ``None`` takes it from ``input_shape`` (508 when both are None).
        classes: output channels of every head (2 in the paper: background and gland).
        activation: head activation; ``"auto"`` gives softmax (sigmoid for one class); ``None``
            gives logits.
        width: multiplier of every layer's channels (1 is the paper; tests use 1/16).
        dropout: dropout rate before each head's conv.
        batch_norm: BatchNorm after the first conv of each encoder pair.
        name: the model's name; ``None`` gives ``"micronet508"`` / ``"micronet252"``.

    Returns:
        A ``keras.Model`` with one input ``(batch, S, S, C)`` and four outputs of shape
        ``(batch, S, S, classes)``, in float32: ``aux1`` (from the highest-resolution decoder
        block), ``aux2``, ``aux3`` and, LAST, ``main``. Predict with the last output.

    Parameters (classes = 2, 3 input channels, width 1): Micro-Net-252 has 184,404,104
    (184,400,264 trainable: the same layers, hence the same count, as TIAToolbox's PyTorch
    MicroNet); Micro-Net-508 has 276,684,936 (276,681,096 trainable). Both are "of the order of
    10^8": train them with mixed precision. ``micronet_parameters`` gives the count for any
    width without building the model.
    """
    if input_shape is None:
        variant = 508 if variant is None else variant
        input_shape = (variant, variant, 3)
    if variant is None:
        variant = input_shape[0]
    if variant not in VARIANTS:
        raise ValueError(f"micronet: variant must be 508 or 252, got {variant!r}")
    if tuple(input_shape[:2]) != (variant, variant):
        raise ValueError(f"micronet: Micro-Net-{variant} takes {variant}x{variant} inputs "
                         f"(valid convolutions fix its geometry), got {tuple(input_shape[:2])}")
    if activation == _AUTO:
        activation = "sigmoid" if classes == 1 else "softmax"
    name = name or f"micronet{variant}"

    def ch(c):
        return _scale(c, width)

    image = keras.Input(input_shape, name="image")
    x = image
    skips = []
    for i, (filters, size) in enumerate(zip(_ENCODER, _resize_sizes(variant))):
        x = _encoder_block(x, image, ch(filters), size, name=f"b{i + 1}", batch_norm=batch_norm)
        skips.append(x)
    block = 5
    if variant == 508:
        x = _conv(x, ch(_BOTTLENECK), 3, name="b5_1")
        x = _conv(x, ch(_BOTTLENECK), 3, name="b5_2")
        x = layers.MaxPooling2D(2, name="b5_pool")(x)
        x = _conv(x, ch(_BOTTLENECK), 3, name="b5_3")
        x = _conv(x, ch(_BOTTLENECK), 3, name="b5_4")
        x = layers.Conv2DTranspose(ch(_BOTTLENECK), 2, strides=2, name="b6_up")(x)
        x = layers.Activation("tanh", name="b6_tanh")(x)
        block = 6
    else:
        x = _conv(x, ch(_BOTTLENECK), 3, name="b5_1")
        x = _conv(x, ch(_BOTTLENECK), 3, name="b5_2")
    decoded = []
    for filters, skip in zip(VARIANTS[variant]["decoder"], reversed(skips)):
        block += 1
        x = _decoder_block(x, skip, ch(filters), name=f"b{block}")
        decoded.append(x)
    # Heads from the three highest-resolution decoder blocks, highest first.
    maps = [_feature_map(source, ch(filters), stride, name=f"fm{i + 1}")
            for i, (source, filters, stride) in
            enumerate(zip(decoded[::-1][:3], _AUX, (2, 4, 8)))]
    outputs = [_head(m, classes, activation, dropout, name=f"aux{i + 1}")
               for i, m in enumerate(maps)]
    merged = layers.Concatenate(name="main_concat")(maps)
    outputs.append(_head(merged, classes, activation, dropout, name="main"))
    return keras.Model(image, outputs, name=name)


def micronet_parameters(variant=508, classes=2, width=1.0, channels=3, batch_norm=True,
                        trainable_only=False):
    """Micro-Net's parameter count, computed layer by layer without building it."""
    def ch(c):
        return _scale(c, width)

    def conv(cin, cout, k):
        return k * k * cin * cout + cout

    def bn(c):
        return (2 if trainable_only else 4) * c if batch_norm else 0

    total, cin = 0, channels
    for filters in _ENCODER:
        f = ch(filters)
        total += conv(cin, f, 3) + bn(f) + conv(f, f, 3)
        total += conv(channels, f, 3) + bn(f) + conv(f, f, 3)
        cin = 2 * f
    b = ch(_BOTTLENECK)
    total += conv(cin, b, 3) + conv(b, b, 3)
    if variant == 508:
        total += 2 * conv(b, b, 3) + conv(b, b, 2)
    cin = b
    skip_channels = [2 * ch(f) for f in _ENCODER][::-1]
    outs = []
    for filters, skip in zip(VARIANTS[variant]["decoder"], skip_channels):
        f = ch(filters)
        total += conv(cin, f, 2) + 2 * conv(f, f, 3) + conv(f, f, 5) + conv(skip, f, 5)
        total += conv(2 * f, f, 1)
        outs.append(f)
        cin = f
    for source, filters, stride in zip(outs[::-1][:3], _AUX, (2, 4, 8)):
        f = ch(filters)
        total += conv(source, f, stride) + conv(f, f, 3) + conv(f, classes, 3)
    total += conv(sum(ch(f) for f in _AUX), classes, 3)
    return total
