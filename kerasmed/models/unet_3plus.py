"""UNet 3+ (Huang et al., ICASSP 2020, arXiv:2004.08790): full-scale skip connections, full-scale
deep supervision and a classification-guided module."""

from __future__ import annotations

import keras
from keras import layers, ops

from kerasmed.models.blocks import check_choice, check_depth, conv_bn_act, default_activation
from kerasmed.models.blocks.generic import POOLINGS, UPSAMPLE_MODES
from kerasmed.models.registry import register_model
from kerasmed.models.side_outputs import output_activation, side_logits

__all__ = ["unet_3plus", "ClassificationGate"]

_AUTO = "auto"


@keras.saving.register_keras_serializable(package="kerasmed")
class ClassificationGate(layers.Layer):
    """UNet 3+'s classification-guided module, applied: ``[segmentation, classification]`` ->
    the segmentation map times 1 where the image-level classifier's argmax is class 1
    ("organ present"), times 0 where it is class 0.

    ``classification`` is ``(batch, 2)``; the argmax is not differentiable, so the
    classifier learns only from its own loss and the segmentation heads only where it says
    "present".
    """

    def call(self, inputs):
        segmentation, classification = inputs
        present = ops.cast(ops.argmax(classification, axis=-1), segmentation.dtype)
        return segmentation * ops.reshape(present, (-1, 1, 1, 1))

    def compute_output_shape(self, input_shape):
        return input_shape[0]


def _encoder_block(x, filters, *, name, convs, batch_norm, use_bias):
    for i in range(convs):
        x = conv_bn_act(x, filters, name=f"{name}_{i + 1}", batch_norm=batch_norm,
                        use_bias=use_bias)
    return x


def _scale_piece(x, scale, filters, *, name, batch_norm, use_bias, pooling, upsampling):
    """One input of a full-scale decoder stage: ``x`` brought to the stage's resolution
    (``scale`` > 0: down by 2**scale with max pooling, or a strided conv with
    ``pooling="strided"``; ``scale`` < 0: up by 2**-scale with bilinear interpolation, or a
    3x3 transpose conv-BN-ReLU with ``upsampling="transpose"``), then a 3x3 conv-BN-ReLU to
    ``filters``. Returns the piece."""
    if scale > 0:
        factor = 2**scale
        if pooling == "max":
            x = layers.MaxPooling2D(factor, name=f"{name}_pool")(x)
        else:
            x = conv_bn_act(x, filters, factor, strides=factor, padding="valid",
                            name=f"{name}_down", batch_norm=batch_norm, use_bias=use_bias)
    elif scale < 0:
        up = 2**-scale
        if upsampling == "transpose":
            x = layers.Conv2DTranspose(filters, 3, strides=up, padding="same",
                                       name=f"{name}_upconv")(x)
            if batch_norm:
                x = layers.BatchNormalization(name=f"{name}_upconv_bn")(x)
            x = layers.Activation("relu", name=f"{name}_upconv_relu")(x)
        else:
            x = layers.UpSampling2D(up, interpolation=upsampling, name=f"{name}_upsample")(x)
    return conv_bn_act(x, filters, name=name, batch_norm=batch_norm, use_bias=use_bias)


@register_model(
    "unet_3plus",
    description="UNet 3+ (Huang et al. 2020): full-scale skip connections, full-scale deep "
                "supervision, optional classification-guided module",
)
def unet_3plus(input_shape=(320, 320, 3), classes=1, activation=_AUTO, filters=64, depth=4,
               skip_filters=None, aggregate_filters=None, deep_supervision=True, cgm=False,
               cgm_dropout=0.5, batch_norm=True, conv_bias=True, convs=2, fusion_convs=1,
               pooling="max", upsampling="bilinear", name="unet_3plus"):
    """Build UNet 3+ (Huang et al., "UNet 3+: A Full-Scale Connected UNet for Medical Image
    Segmentation", ICASSP 2020, arXiv:2004.08790).

    Encoder: levels 0..``depth`` of two 3x3 conv-BN-ReLU (``filters`` doubled per level,
    64..1024 in the paper), max-pooling between. Decoder stage i (``depth``-1 down to 0)
    takes every scale: the encoder maps of levels 0..i (max-pooled by 2^(i-k) to level i)
    and the decoder maps of the deeper stages, the bottleneck included (bilinear upsampling
    by 2^(k-i)); each goes through a 3x3 conv-BN-ReLU to ``skip_filters`` (64), the
    ``depth``+1 pieces are concatenated (320 channels) and fused by a 3x3 conv-BN-ReLU to
    ``aggregate_filters`` (320). Full-scale deep supervision: a 3x3 conv on every decoder
    stage and the bottleneck, bilinearly upsampled to the input size. The
    classification-guided module (CGM) predicts from the bottleneck (dropout, 1x1 conv to
    two classes, global max pooling, sigmoid) whether the image contains the organ; its
    argmax multiplies every segmentation output (``ClassificationGate``).

    Args:
        input_shape: ``(H, W, C)``; H and W divisible by ``2**depth`` (or ``None``).
        classes: output channels of every segmentation head.
        activation: head activation; ``"auto"`` gives sigmoid for one class and softmax for
            several; ``None`` gives logits (the CGM then gates logits).
        filters: filters of encoder level 0, doubled at each level down.
        depth: number of poolings (4 in the paper: five scales).
        skip_filters: channels of each full-scale piece; ``None``: ``filters`` (64).
        aggregate_filters: channels of each decoder stage; ``None``: ``skip_filters *
            (depth + 1)`` (320).
        deep_supervision: return the side outputs too (the paper trains all of them).
        cgm: add the classification-guided module and its ``classification`` output.
        cgm_dropout: dropout rate at the CGM's input.
        batch_norm: BatchNormalization after every conv.
        conv_bias: convs keep their bias before BN (the authors' PyTorch code);
            ``False`` drops it where BN follows (keras-unet-collection).
        convs: convs per encoder level.
        fusion_convs: convs fusing each decoder stage's concatenation.
        pooling: ``"max"``, or ``"strided"`` (a k x k stride-k conv-BN-ReLU per piece, as
            keras-unet-collection's ``pool=False``).
        upsampling: ``"bilinear"``/``"nearest"``, or ``"transpose"`` (3x3 transpose convs,
            as keras-unet-collection's ``unpool=False``, the side heads' included).
        name: the model's name.

    Returns:
        A ``keras.Model``. With ``deep_supervision=True`` its outputs are, in this order,
        ``side{depth}`` (the bottleneck's head) .. ``side1`` and ``final`` (the head on
        decoder stage 0, the one to evaluate), each ``(batch, H, W, classes)``; without,
        only ``final``. With ``cgm=True`` a ``classification`` output ``(batch, 2)``
        (sigmoid probabilities of "absent" and "present") comes first. All heads compute in
        float32.

    Parameters at 320x320x3, one class (trainable; the authors' PyTorch models, counted
    with torch): 26,971,777 without deep supervision (``UNet_3Plus``: 26,971,777, the
    paper's 26.97M), 26,989,637 with it (``UNet_3Plus_DeepSup``: 26,989,637) and 26,991,687
    with the CGM (``UNet_3Plus_DeepSup_CGM``: 26,991,687).
    """
    check_choice(pooling, "pooling", POOLINGS)
    check_choice(upsampling, "upsampling", UPSAMPLE_MODES)
    check_depth(input_shape, depth, name)
    if activation == _AUTO:
        activation = default_activation(classes)
    skip_filters = skip_filters or filters
    aggregate_filters = aggregate_filters or skip_filters * (depth + 1)
    use_bias = True if conv_bias else None  # None: no bias where BN follows
    inputs = keras.Input(input_shape, name="image")

    encoder = []
    x = inputs
    for level in range(depth + 1):
        if level:
            if pooling == "max":
                x = layers.MaxPooling2D(2, name=f"enc{level}_pool")(x)
            else:
                x = conv_bn_act(x, filters * 2**level, 2, strides=2, padding="valid",
                                name=f"enc{level}_down", batch_norm=batch_norm,
                                use_bias=use_bias)
        x = _encoder_block(x, filters * 2**level, name=f"enc{level}", convs=convs,
                           batch_norm=batch_norm, use_bias=use_bias)
        encoder.append(x)

    decoder = {depth: encoder[depth]}  # the bottleneck counts as the deepest decoder stage
    piece_args = dict(batch_norm=batch_norm, use_bias=use_bias, pooling=pooling,
                      upsampling=upsampling)
    for stage in range(depth - 1, -1, -1):
        pieces = []
        for k in range(depth + 1):
            source = encoder[k] if k <= stage else decoder[k]
            kind = "enc" if k <= stage else "dec"
            pieces.append(_scale_piece(source, stage - k, skip_filters,
                                       name=f"dec{stage}_from_{kind}{k}", **piece_args))
        x = layers.Concatenate(name=f"dec{stage}_concat")(pieces)
        for i in range(fusion_convs):
            x = conv_bn_act(x, aggregate_filters, name=f"dec{stage}_fusion{i + 1}",
                            batch_norm=batch_norm, use_bias=use_bias)
        decoder[stage] = x

    gate = None
    outputs = []
    if cgm:
        c = layers.Dropout(cgm_dropout, name="cgm_dropout")(encoder[depth])
        c = layers.Conv2D(2, 1, name="cgm_conv", dtype="float32")(c)
        c = layers.GlobalMaxPooling2D(name="cgm_pool", dtype="float32")(c)
        gate = layers.Activation("sigmoid", name="classification", dtype="float32")(c)
        outputs.append(gate)

    def head(stage, out_name):
        logits = side_logits(decoder[stage], classes, name=out_name, factor=2**stage,
                             upsampling=upsampling)
        if gate is None:
            return output_activation(logits, activation, name=out_name)
        probabilities = output_activation(logits, activation, name=f"{out_name}_ungated")
        return ClassificationGate(name=out_name, dtype="float32")([probabilities, gate])

    if deep_supervision:
        outputs += [head(stage, f"side{stage}") for stage in range(depth, 0, -1)]
    outputs.append(head(0, "final"))
    return keras.Model(inputs, outputs[0] if len(outputs) == 1 else outputs, name=name)
