"""DeepLabV3+ over pretrained ``keras.applications`` encoders, with the defaults of
segmentation_models_pytorch's ``DeepLabV3Plus`` (Chen et al., "Encoder-Decoder with Atrous
Separable Convolution for Semantic Image Segmentation", ECCV 2018, arXiv:1802.02611).

Output stride: ``keras.applications`` builds its encoders with fixed strides, so
``dilated_encoder`` rebuilds the encoder from its Keras config with the strides of the layers
beyond the requested output stride (16 or 8) set to 1 and their convolutions dilated by
(their nominal stride) / (output stride), as DeepLab's atrous encoders and smp's
``make_dilated`` do, then copies the original weights (every kernel keeps its shape, so
ImageNet weights apply unchanged). 'valid' convolutions and poolings in the dilated part become
'same' and the explicit ``ZeroPadding2D`` in front of them is emptied, so every feature stays
at H / output stride. This works for every encoder of ``kerasmed.models.encoders``.

The front (``image`` in [0, 1] -> ``preprocessing`` -> nested ``encoder``), weights handling
and freezing are those of ``kerasmed.models.encoders``.
"""

from __future__ import annotations

import keras
from keras import layers

from kerasmed.keras_private import inbound_parents
from kerasmed.models.blocks import SpatialBroadcast, conv_bn_act
from kerasmed.models.encoders import (ENCODER_NAME, BackbonePreprocessing, Encoder,
                                      encoder_features, fold_conv_biases, get_backbone_spec)
from kerasmed.models.encoders.features import tap_tensor
from kerasmed.models.encoders.front import check_backbone_input, finish_model, shared_args
from kerasmed.models.encoders.weights import resolve_weights
from kerasmed.models.registry import register_model

__all__ = ["DeepLabV3Plus", "dilated_encoder", "separable_aspp"]

_AUTO = "auto"
_POOLS = ("MaxPooling2D", "AveragePooling2D")
_CONVS = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D")


# ------------------------------------------------------------------ dilated encoder

def _pair(value):
    return tuple(value) if isinstance(value, (list, tuple)) else (value, value)


def _operations(model):
    """A model's layers and ``keras.ops`` operations (ConvNeXt's residual adds), in order."""
    return getattr(model, "operations", None) or model.layers


def _parents(layer, model):
    """The layers of ``model`` whose outputs ``layer`` takes (its call in ``model``'s graph;
    a nested model also has a node of its own inner graph, which is skipped)."""
    members = {id(op) for op in _operations(model)}
    for parents in inbound_parents(layer):
        if parents and all(id(op) in members for op in parents):
            return parents
    return []


def _consumers(model):
    consumers = {}
    for layer in _operations(model):
        for parent in _parents(layer, model):
            consumers.setdefault(parent.name, []).append(layer.name)
    return consumers


def _rewrite(model, config, stride_in, output_stride):
    """Rewrite ``config`` (``model``'s) in place so nothing beyond ``output_stride`` strides;
    returns the nominal stride of the model's output. ``stride_in``: the nominal stride of
    the model's input. Nested models (ConvNeXt's downsampling blocks) are rewritten too."""
    entries = {entry["config"].get("name", entry.get("name")): entry
               for entry in config["layers"]}
    consumers = _consumers(model) if not isinstance(model, keras.Sequential) else {}
    strides = {}
    previous = stride_in
    for layer in _operations(model):
        if isinstance(model, keras.Sequential):
            s_in = previous
        else:
            s_in = max([strides.get(p.name, stride_in) for p in _parents(layer, model)]
                       or [stride_in])
        entry = entries.get(layer.name)
        if entry is None:   # a keras.ops operation: no strides
            s_out = s_in
        elif isinstance(layer, keras.Model):
            s_out = _rewrite(layer, entry["config"], s_in, output_stride)
            if s_in > output_stride:   # it now sees a larger map than it was built for
                _free_spatial_size(entry)
        else:
            step = _pair(getattr(layer, "strides", 1))[0] if entry["class_name"] in (
                _CONVS + _POOLS) else 1
            s_out = s_in * step
            if s_out > output_stride:
                _dilate(entry, layer, s_out // output_stride, entries, consumers, model)
        strides[layer.name] = previous = s_out
    return previous


def _free_spatial_size(entry):
    """Let a nested model's config take any height and width (its input and build shapes)."""
    def free(shape):
        return [shape[0], None, None, *shape[3:]] if shape and len(shape) == 4 else shape

    for inner in entry["config"].get("layers", []):
        if inner["class_name"] == "InputLayer":
            inner["config"]["batch_shape"] = free(inner["config"].get("batch_shape"))
    build = entry.get("build_config") or {}
    if "input_shape" in build:
        build["input_shape"] = free(build["input_shape"])


def _dilate(entry, layer, rate, entries, consumers, model):
    cfg, kind = entry["config"], entry["class_name"]
    if kind not in _CONVS + _POOLS:
        return
    kernel = _pair(cfg.get("kernel_size", cfg.get("pool_size", 1)))
    cfg["strides"] = (1, 1)
    if kind in _CONVS and max(kernel) > 1:
        cfg["dilation_rate"] = (rate, rate)
    if cfg.get("padding") == "valid" and max(kernel) > 1:
        cfg["padding"] = "same"
        for parent in _parents(layer, model):
            if type(parent).__name__ == "ZeroPadding2D":
                if len(consumers.get(parent.name, [])) != 1:
                    raise ValueError(f"cannot dilate {model.name}: {parent.name} pads for "
                                     f"several layers")
                entries[parent.name]["config"]["padding"] = ((0, 0), (0, 0))


def dilated_encoder(backbone_name, input_shape, weights, output_stride=16, low_level_stride=4,
                    name=ENCODER_NAME) -> Encoder:
    """A ``keras.applications`` encoder with output stride ``output_stride`` (8, 16 or 32).

    The backbone is built (with its ImageNet weights when asked, through the offline-safe
    path of ``kerasmed.models.encoders.weights``), rebuilt from its config with the layers beyond
    ``output_stride`` unstrided and dilated (see the module docstring), and its weights
    copied. Returns an ``Encoder`` whose model outputs the tap at ``low_level_stride`` and
    the backbone's last feature (now at ``output_stride``), ``strides`` set to
    ``(low_level_stride, output_stride)``.
    """
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride!r}")
    spec = get_backbone_spec(backbone_name)
    input_shape = tuple(input_shape)
    weights = resolve_weights(spec, weights, input_shape)
    app = spec.constructor()(include_top=False, weights=weights, input_shape=input_shape)
    tap = spec.taps.get(low_level_stride)
    if tap is None:
        raise ValueError(f"backbone {spec.name!r} has no feature at stride {low_level_stride}")
    if isinstance(tap, int):
        tap = app.layers[tap].name
    if output_stride < 32:
        config = app.get_config()
        _rewrite(app, config, 1, output_stride)
        rebuilt = app.__class__.from_config(config)
        rebuilt.set_weights(app.get_weights())
        app = rebuilt
    model = fold_conv_biases(keras.Model(app.inputs, [tap_tensor(app, tap), app.output],
                                         name=name))
    return Encoder(model, spec, (low_level_stride, output_stride), False)


# ------------------------------------------------------------------ decoder

def _separable_bn_relu(x, filters, *, name, dilation_rate=1):
    """Depthwise-separable 3x3 conv (no bias), BatchNormalization, ReLU."""
    x = layers.SeparableConv2D(filters, 3, padding="same", dilation_rate=dilation_rate,
                               use_bias=False, name=f"{name}_sepconv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def separable_aspp(x, filters, rates, *, name="aspp", separable=True, dropout=0.5):
    """DeepLabV3's atrous spatial pyramid pooling (arXiv:1706.05587) as DeepLabV3+ uses it.

    Five branches of ``filters`` channels each: a 1x1 conv-BN-ReLU, three 3x3 atrous
    conv-BN-ReLU at ``rates`` (depthwise-separable when ``separable``, as in DeepLabV3+ and
    smp), and image pooling (global average, 1x1 conv-BN-ReLU, broadcast back);
    concatenated, projected by a 1x1 conv-BN-ReLU to ``filters`` and dropped out.
    Returns the projected tensor.
    """
    branches = [conv_bn_act(x, filters, 1, name=f"{name}_1x1")]
    for rate in rates:
        if separable:
            branches.append(_separable_bn_relu(x, filters, dilation_rate=rate,
                                               name=f"{name}_rate{rate}"))
        else:
            branches.append(conv_bn_act(x, filters, 3, dilation_rate=rate,
                                        name=f"{name}_rate{rate}"))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_image_pool")(x)
    pooled = conv_bn_act(pooled, filters, 1, name=f"{name}_image")
    branches.append(SpatialBroadcast(name=f"{name}_image_broadcast")([pooled, x]))
    x = layers.Concatenate(name=f"{name}_concat")(branches)
    x = conv_bn_act(x, filters, 1, name=f"{name}_project")
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


@register_model(
    "deeplabv3plus",
    description="DeepLabV3+ (Chen et al. 2018) on a pretrained, dilated keras.applications "
                "encoder (segmentation_models_pytorch's DeepLabV3Plus)",
)
@shared_args
def DeepLabV3Plus(backbone_name="resnet50", input_shape=(256, 256, 3), classes=1,
                  activation=_AUTO, weights=None, encoder_weights="imagenet",
                  encoder_freeze=False, encoder_output_stride=16, decoder_channels=256,
                  decoder_atrous_rates=(12, 24, 36), decoder_aspp_separable=True,
                  decoder_aspp_dropout=0.5, upsampling=4, name=None):
    """Build a DeepLabV3+ (Chen et al. 2018, arXiv:1802.02611) with a pretrained encoder.

    Encoder at output stride 16 or 8 (``dilated_encoder``); ASPP on its last feature
    (``separable_aspp``: 1x1, three atrous 3x3 at ``decoder_atrous_rates`` and image pooling,
    ``decoder_channels`` each, projected, dropout) and a separable 3x3 conv-BN-ReLU; bilinear
    upsampling to stride 4; the stride-4 encoder feature reduced to 48 channels (1x1
    conv-BN-ReLU) and concatenated; a separable 3x3 conv-BN-ReLU; a 1x1 conv head and
    bilinear upsampling by ``upsampling``. As segmentation_models_pytorch's
    ``DeepLabV3Plus`` (encoder_output_stride 16, decoder_channels 256, atrous_rates (12, 24,
    36), upsampling 4), on ``keras.applications`` encoders.

    Args:
        {shared}
        encoder_output_stride: 16 (the stride-32 stage dilated by 2) or 8 (stride-16 stage
            by 2, stride-32 stage by 4).
        decoder_channels: width of the ASPP branches and the decoder convs (256).
        decoder_atrous_rates: the three ASPP dilation rates, (12, 24, 36) as smp (the paper
            used (6, 12, 18) at output stride 16, doubled at 8).
        decoder_aspp_separable: depthwise-separable atrous convs in the ASPP.
        decoder_aspp_dropout: dropout after the ASPP projection (0.5).
        upsampling: the head's final bilinear upsampling (4: stride 4 back to the input).
        name: the model's name (default ``deeplabv3plus_<backbone>``).

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images in [0, 1] to
        ``(batch, H, W, classes)``; H and W divisible by ``encoder_output_stride`` (and
        fixed for the 'valid'-padded Inception encoders).
    """
    if encoder_output_stride not in (8, 16):
        raise ValueError(f"encoder_output_stride must be 8 or 16, got {encoder_output_stride!r}")
    if len(tuple(decoder_atrous_rates)) != 3:
        raise ValueError(f"decoder_atrous_rates needs 3 rates, got {decoder_atrous_rates}")
    spec = get_backbone_spec(backbone_name)
    input_shape = check_backbone_input(spec, input_shape, encoder_output_stride,
                                       f"deeplabv3plus ({spec.name} encoder)")
    inputs = keras.Input(input_shape, name="image")
    x = BackbonePreprocessing(spec.preprocessing, name="preprocessing")(inputs)
    encoder = dilated_encoder(spec.name, (*input_shape[:2], 3), encoder_weights,
                              encoder_output_stride)
    features = encoder_features(x, encoder, input_shape)
    x = separable_aspp(features[encoder_output_stride], decoder_channels, decoder_atrous_rates,
                       separable=decoder_aspp_separable, dropout=decoder_aspp_dropout)
    x = _separable_bn_relu(x, decoder_channels, name="decoder_aspp_conv")
    x = layers.UpSampling2D(encoder_output_stride // 4, interpolation="bilinear",
                            name="decoder_upsampling")(x)
    low = conv_bn_act(features[4], 48, 1, name="decoder_low_level")
    x = layers.Concatenate(name="decoder_concat")([x, low])
    x = _separable_bn_relu(x, decoder_channels, name="decoder_fuse")
    return finish_model(inputs, x, encoder, classes=classes, activation=activation,
                        encoder_freeze=encoder_freeze, weights=weights,
                        name=name or f"deeplabv3plus_{spec.name}", kernel_size=1,
                        upsample=upsampling)
