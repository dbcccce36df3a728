"""Feature extraction: a ``keras.applications`` backbone cut at its taps (``build_encoder``,
an ``Encoder``) and its features at H/stride (``encoder_features``).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from kerasmed.models.encoders.bias_folding import fold_conv_biases
from kerasmed.models.encoders.table import BackboneSpec, get_backbone_spec
from kerasmed.models.encoders.weights import resolve_weights

__all__ = ["Encoder", "build_encoder", "encoder_features", "tap_tensor", "ENCODER_NAME"]

ENCODER_NAME = "encoder"


@dataclass
class Encoder:
    """A ``keras.applications`` encoder cut to the tapped features.

    ``model`` maps ``(B, H, W, 3)`` backbone-scaled images to one tensor per entry of
    ``strides`` (in that order; stride 32 is the backbone's output). ``ends_with_pooling`` is
    True when the backbone's last layer is a max-pooling (VGG).
    """

    model: keras.Model
    spec: BackboneSpec
    strides: tuple
    ends_with_pooling: bool


def tap_tensor(app, tap):
    """The tensor of ``app`` that ``tap`` names (a table entry: name, index or
    ``"input_of:NAME"``)."""
    if isinstance(tap, int):
        return app.layers[tap].output
    if tap.startswith("input_of:"):
        return app.get_layer(tap[len("input_of:"):]).input
    return app.get_layer(tap).output


def build_encoder(backbone_name, input_shape=(None, None, 3), weights="imagenet",
                  strides=(2, 4, 8, 16, 32), taps=None, name=ENCODER_NAME) -> Encoder:
    """Build a ``keras.applications`` backbone and cut it at its taps; returns an ``Encoder``.

    Args:
        backbone_name: a name of ``list_backbones()``.
        input_shape: the backbone's input ``(H, W, 3)`` (H, W may be ``None`` for aligned
            backbones).
        weights: ``"imagenet"`` (Keras' cache and download, with ``WeightsUnavailableError``
            when offline), ``None`` (random) or the path of a weights file for the backbone
            without its top (the ``.h5`` Keras downloads, or a ``.weights.h5`` saved from it).
        strides: the features wanted; strides without a tap (ConvNeXt's 2) are left out of
            ``Encoder.strides``. Only the layers up to the deepest one requested are kept.
        taps: optional ``{stride: tap}`` overriding the table (segmentation_models'
            ``encoder_features``).
        name: the encoder model's name (kerasmed's freezing helpers look for ``"encoder"``).

    Convolution biases that a BatchNormalization cancels (keras.applications' ResNet v1) are
    folded into its moving mean after the weights are loaded (``bias_folding``): the same
    function, fewer parameters, a faster step.
    """
    spec = get_backbone_spec(backbone_name)
    input_shape = tuple(input_shape)
    if input_shape[-1] != 3:
        raise ValueError(f"the {spec.name} encoder takes 3 channels, got input_shape {input_shape}")
    weights = resolve_weights(spec, weights, input_shape)
    app = spec.constructor()(include_top=False, weights=weights, input_shape=input_shape)
    table = {**spec.taps, **(taps or {})}
    found, outputs = [], []
    for stride in strides:
        tap = "output" if stride == 32 else table.get(stride)
        if tap is None:
            continue
        found.append(stride)
        outputs.append(app.output if tap == "output" else tap_tensor(app, tap))
    model = fold_conv_biases(keras.Model(app.inputs, outputs, name=name))
    ends_with_pooling = isinstance(app.layers[-1], (layers.MaxPooling2D, layers.AveragePooling2D))
    return Encoder(model, spec, tuple(found), ends_with_pooling)


def encoder_features(x, encoder: Encoder, input_shape) -> dict:
    """Run ``encoder`` on ``x``; returns ``{stride: feature}`` with each feature at H/stride.

    For the 'valid'-padded Inception backbones every feature is resized (bilinear, no
    parameters) to exactly ``(H // stride, W // stride)``, which needs a fixed input size.
    """
    outputs = encoder.model(x)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    features = dict(zip(encoder.strides, outputs))
    if encoder.spec.aligned:
        return features
    height, width = input_shape[:2]
    if height is None or width is None:
        raise ValueError(f"backbone {encoder.spec.name!r} pads 'valid', so its features are "
                         f"resized to H/stride: it needs a fixed input size, got {input_shape}")
    for stride, feature in features.items():
        size = (height // stride, width // stride)
        if tuple(feature.shape[1:3]) != size:
            features[stride] = layers.Resizing(*size, interpolation="bilinear",
                                               name=f"{ENCODER_NAME}_stride{stride}_resize")(feature)
    return features
