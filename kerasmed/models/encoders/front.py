"""What the backbone networks share around their decoders: the front (``image`` in [0, 1] ->
``preprocessing`` -> nested ``encoder``, ``backbone_front``), the input check, the head and
the model (``finish_model``: head conv, activation in float32, encoder freezing, weights), and
the arguments' documentation (``shared_args``).
"""

from __future__ import annotations

import keras
from keras import layers

from kerasmed.models.blocks import check_input_size, default_activation
from kerasmed.models.encoders.features import build_encoder, encoder_features
from kerasmed.models.encoders.preprocessing import BackbonePreprocessing
from kerasmed.models.encoders.table import get_backbone_spec

__all__ = ["backbone_front", "check_backbone_input", "custom_taps", "finish_model",
           "shared_args"]

_AUTO = "auto"


def check_backbone_input(spec, input_shape, stride, what=None):
    """Raise ``ValueError`` unless ``input_shape`` suits the encoder ``spec``: (H, W, 1) or
    (H, W, 3), H and W divisible by ``stride`` (no check when falsy) and at least the
    encoder's ``min_size``. ``what`` names the model in the stride message. Returns the shape
    as a tuple."""
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise ValueError(f"input_shape must be (H, W, 1) or (H, W, 3), got {input_shape}: the "
                         f"{spec.name} encoder takes RGB, and grey images are repeated to RGB")
    if stride:
        check_input_size(input_shape, stride, what or f"{spec.name} encoder")
    for size in input_shape[:2]:
        if size is not None and size < spec.min_size:
            raise ValueError(f"the {spec.name} encoder needs inputs of at least "
                             f"{spec.min_size}x{spec.min_size}, got {input_shape[:2]}")
    return input_shape


def backbone_front(backbone_name, input_shape, encoder_weights, strides, *, taps=None,
                   stride_check=32):
    """Input, preprocessing and encoder; returns (inputs, {stride: feature}, Encoder)."""
    spec = get_backbone_spec(backbone_name)
    input_shape = check_backbone_input(spec, input_shape, stride_check)
    inputs = keras.Input(input_shape, name="image")
    x = BackbonePreprocessing(spec.preprocessing, name="preprocessing")(inputs)
    encoder = build_encoder(spec.name, (*input_shape[:2], 3), encoder_weights, strides, taps=taps)
    return inputs, encoder_features(x, encoder, input_shape), encoder


def custom_taps(encoder_features_arg):
    """segmentation_models' ``encoder_features`` (x16, x8, x4, x2 order) as {stride: tap}."""
    if encoder_features_arg == "default":
        return None
    taps = list(encoder_features_arg)
    return dict(zip((16, 8, 4, 2), taps))


def finish_model(inputs, x, encoder, *, classes, activation, encoder_freeze, weights, name,
                 kernel_size=3, upsample=None):
    """The head (conv to ``classes``, optional upsampling, activation; float32), the model."""
    if activation == _AUTO:
        activation = default_activation(classes)
    x = layers.Conv2D(classes, kernel_size, padding="same", name="head_conv", dtype="float32")(x)
    if upsample:
        x = layers.UpSampling2D(upsample, interpolation="bilinear", name="head_upsampling",
                                dtype="float32")(x)
    if activation is not None:
        x = layers.Activation(activation, name=f"head_{activation}", dtype="float32")(x)
    model = keras.Model(inputs, x, name=name)
    if encoder_freeze:
        encoder.model.trainable = False
    if weights is not None:
        model.load_weights(weights)
    return model


_SHARED_DOC = """        backbone_name: an encoder of ``kerasmed.models.encoders.list_backbones()`` (vgg16,
            resnet50, resnet50v2, densenet121, mobilenetv2, mobilenetv3large, inceptionv3,
            efficientnetb0 ... b7, efficientnetv2b0 ... l, convnext_tiny ... xlarge ...).
        input_shape: ``(H, W, C)`` with C = 1 or 3; images are floats in [0, 1].
        classes: output channels.
        activation: head activation; ``"auto"``: sigmoid for one class, softmax for several;
            ``None``: logits.
        weights: optional path of weights for the whole model (``model.load_weights``).
        encoder_weights: ``"imagenet"`` (Keras' cache ~/.keras/models or $KERAS_HOME/models,
            downloaded if absent; without internet ``WeightsUnavailableError`` names the file
            to put there), ``None`` (random) or the path of a weights file for the encoder.
        encoder_freeze: make the encoder (BatchNorm included) non-trainable.
"""


def shared_args(builder):
    """Put the arguments all four builders share into ``builder``'s docstring."""
    builder.__doc__ = builder.__doc__.replace("        {shared}\n", _SHARED_DOC)
    return builder
