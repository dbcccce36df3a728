"""Remove the convolution biases that a following BatchNormalization cancels.

``keras.applications``' ResNet v1 (ResNet50/101/152, He et al. 2016) gives every convolution a
bias, although each one feeds a BatchNormalization: BN subtracts the batch mean in training
and the moving mean in inference, so a per-channel bias before it changes nothing but the
moving mean it is compared with. The biases still cost a gradient, an optimizer update and,
on TensorFlow's CPU kernels, a separate bias-add pass per convolution: a kerasmed Unet-ResNet50
with them trained at 1.23x segmentation_models' step time (whose ResNet has none), without
them at 1.03-1.06x on the same 2-core CPU (``benchmarks/RESULTS.md``).

``fold_conv_biases(model)`` rebuilds a functional model from its config with ``use_bias=False``
on every such convolution and copies the weights, moving each bias into its BN's moving mean
(``moving_mean - bias``). The result is the same function: exactly in training (the batch
mean absorbs the bias) and, up to float rounding, in inference.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["fold_conv_biases", "foldable_convolutions"]

_CONVS = ("Conv2D", "DepthwiseConv2D")


def _history(value):
    """The names of the layers whose outputs appear in a serialized call argument."""
    if isinstance(value, dict):
        history = value.get("config", {}).get("keras_history") if (
            value.get("class_name") == "__keras_tensor__") else None
        if history is not None:
            return [history[0]]
        return [name for item in value.values() for name in _history(item)]
    if isinstance(value, (list, tuple)):
        return [name for item in value for name in _history(item)]
    return []


def _consumers(config):
    """``{layer name: [names of the layers called on its output, once per call]}``."""
    consumers = {}
    for entry in config["layers"]:
        for node in entry.get("inbound_nodes", []):
            for parent in _history(node):
                consumers.setdefault(parent, []).append(entry["name"])
    return consumers


def _output_names(output_layers):
    """Layer names in a config's ``output_layers``: ``[name, node, index]`` for one output,
    a list of those for several."""
    if output_layers and isinstance(output_layers[0], str):
        return {output_layers[0]}
    return {item[0] for item in output_layers}


def _batchnorm_on_channels(entry):
    axis = entry["config"].get("axis", -1)
    axis = axis[0] if isinstance(axis, (list, tuple)) and len(axis) == 1 else axis
    return entry["class_name"] == "BatchNormalization" and axis in (-1, 3)


def foldable_convolutions(model) -> dict:
    """``{conv name: BN name}`` for the convolutions of ``model`` whose bias can be folded.

    A convolution qualifies when it has a bias, its output is not one of the model's outputs,
    and its one consumer is a channels-last BatchNormalization called once.
    """
    config = model.get_config()
    entries = {entry["name"]: entry for entry in config["layers"]}
    outputs = _output_names(config["output_layers"])
    consumers = _consumers(config)
    folds = {}
    for name, entry in entries.items():
        users = consumers.get(name, [])
        if (entry["class_name"] in _CONVS and entry["config"].get("use_bias")
                and name not in outputs and len(users) == 1
                and _batchnorm_on_channels(entries[users[0]])
                and len(entries[users[0]].get("inbound_nodes", [])) == 1):
            folds[name] = users[0]
    return folds


def fold_conv_biases(model: keras.Model) -> keras.Model:
    """``model`` rebuilt without the conv biases a BatchNormalization cancels.

    Returns ``model`` itself when there is none (VGG, DenseNet, EfficientNet, ...), otherwise a
    new functional model of the same name, inputs, outputs and layer names, with the weights
    of ``model`` and each folded bias subtracted from its BN's moving mean.
    """
    folds = foldable_convolutions(model)
    if not folds:
        return model
    config = model.get_config()
    for entry in config["layers"]:
        if entry["name"] in folds:
            entry["config"]["use_bias"] = False
    rebuilt = keras.Model.from_config(config)
    bias_of_bn = {}
    for layer in rebuilt.layers:
        original = model.get_layer(layer.name)
        if layer.name in folds:
            layer.kernel.assign(original.kernel)
            bias_of_bn[folds[layer.name]] = original.bias
        else:
            layer.set_weights(original.get_weights())
    for bn_name, bias in bias_of_bn.items():
        bn = rebuilt.get_layer(bn_name)
        bn.moving_mean.assign(bn.moving_mean - ops.cast(bias, bn.moving_mean.dtype))
    return rebuilt
