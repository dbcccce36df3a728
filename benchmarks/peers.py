"""The networks a user would otherwise train, for ``train_speed.py``: each peer next to the
kerasmed model of the same architecture at the same filters.

- segmentation_models 1.0.1 (``SM_FRAMEWORK=tf.keras``): Unet with VGG16 and ResNet50
  encoders, FPN with VGG16. Its ResNet50 is qubvel's ``classification_models`` ResNet50, not
  ``keras.applications.ResNet50`` (which kerasmed's backbones use): the same depth and widths,
  a few thousand parameters apart (the table prints both counts).
- keras-unet-collection 0.1.13: ``att_unet_2d``, ``r2_unet_2d`` and ``unet_plus_2d``, configured
  as close to kerasmed's network as kuc's options allow. kuc's ``unet_plus_2d`` as shipped
  never concatenates its skips (``tests/test_kuc_parity.py``); it is run with the
  concatenation restored, which makes it kerasmed's ``unet_plus_plus`` parameter for parameter,
  so that the same network is timed.
- A plain Keras U-Net written the usual way (the Keras examples' and most notebooks' style).
- MultiResUNet written as its authors' Keras code builds it (a ``conv2d_bn`` helper, the
  MultiRes block and ResPath as functions, ``concatenate`` skips).

Both plain-Keras networks are written here from the papers' descriptions, in the layer order
those codes use; their parameter counts equal kerasmed's (the table shows both).

Each entry is ``Pair(label, kerasmed_fn, peer_name, peer_fn)``; ``*_fn(shape, filters)``
returns an uncompiled single-output sigmoid model. A peer that cannot be built (a missing
package, or a TensorFlow-only package under another backend) raises ``PeerUnavailable``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import keras
from keras import layers


class PeerUnavailable(RuntimeError):
    """The peer package is missing or cannot build under this Keras backend."""


@dataclass(frozen=True)
class Pair:
    label: str
    kerasmed: Callable
    peer_name: str
    peer: Callable
    backbone: bool = False  # a pretrained-encoder model: its filters are the encoder's own


def _tf_only(package):
    if keras.backend.backend() != "tensorflow":
        raise PeerUnavailable(f"{package} imports tensorflow.keras: TensorFlow backend only "
                              f"(this run: {keras.backend.backend()})")


def _sm():
    _tf_only("segmentation_models")
    os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
    try:
        import segmentation_models as sm
    except Exception as err:  # ImportError, or its Keras-2 era imports failing
        raise PeerUnavailable(f"segmentation_models: {type(err).__name__}: {err}") from err
    return sm


def _kuc():
    _tf_only("keras-unet-collection")
    try:
        from keras_unet_collection import models
    except Exception as err:
        raise PeerUnavailable(f"keras-unet-collection: {type(err).__name__}: {err}") from err
    return models


def _km(name, **params):
    def build(shape, filters):
        from kerasmed.models import build as km_build
        kw = dict(params)
        if "filters" not in kw and name not in ("backbone_unet", "fpn"):
            kw["filters"] = filters
        return km_build(name, input_shape=shape, classes=1, **kw)
    return build


def _sm_model(family, backbone):
    def build(shape, filters):
        sm = _sm()
        return getattr(sm, family)(backbone, encoder_weights=None, input_shape=shape, classes=1,
                                   activation="sigmoid")
    return build


def _widths(filters, levels):
    return [filters * 2**i for i in range(levels)]


def _kuc_att_unet(shape, filters):
    return _kuc().att_unet_2d(shape, _widths(filters, 5), n_labels=1, stack_num_down=2,
                              stack_num_up=2, activation="ReLU", atten_activation="ReLU",
                              attention="add", output_activation="Sigmoid", batch_norm=True,
                              pool=True, unpool=False, name="kuc_attunet")


def _kuc_r2_unet(shape, filters):
    # Two RCLs a block (stack_num 2), as the paper and kerasmed; kuc's "bilinear" decoder
    # is interpolation + a 3x3 conv-BN-ReLU, kerasmed's "bilinear_conv" (its default).
    return _kuc().r2_unet_2d(shape, _widths(filters, 5), n_labels=1, stack_num_down=2,
                             stack_num_up=2, recur_num=2, activation="ReLU",
                             output_activation="Sigmoid", batch_norm=True, pool=True,
                             unpool="bilinear", name="kuc_r2unet")


def _kuc_unet_plus(shape, filters):
    models = _kuc()
    import keras_unet_collection._model_unet_plus_2d as module

    original = module.UNET_right

    def with_concat(*args, **kwargs):  # kuc 0.1.13 passes concat=False: no skips at all
        kwargs["concat"] = True
        return original(*args, **kwargs)

    module.UNET_right = with_concat
    try:
        return models.unet_plus_2d(shape, _widths(filters, 4), n_labels=1, stack_num_down=2,
                                   stack_num_up=2, activation="ReLU",
                                   output_activation="Sigmoid", batch_norm=False, pool=True,
                                   unpool=True, name="kuc_unetpp")
    finally:
        module.UNET_right = original


# ---------------------------------------------------------------- a plain Keras U-Net

def _double_conv(x, filters):
    for _ in range(2):
        x = layers.Conv2D(filters, 3, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
    return x


def plain_unet(shape, filters, depth=4):
    """U-Net as most Keras code writes it: (conv-BN-ReLU) x 2 per level, max pooling,
    2x2 stride-2 transpose convs, ``concatenate`` skips, a 1x1 sigmoid head."""
    inputs = keras.Input(shape)
    x, skips = inputs, []
    for level in range(depth):
        x = _double_conv(x, filters * 2**level)
        skips.append(x)
        x = layers.MaxPooling2D()(x)
    x = _double_conv(x, filters * 2**depth)
    for level in reversed(range(depth)):
        x = layers.Conv2DTranspose(filters * 2**level, 2, strides=2, padding="same")(x)
        x = layers.concatenate([x, skips[level]])
        x = _double_conv(x, filters * 2**level)
    outputs = layers.Conv2D(1, 1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs, name="plain_unet")


# ------------------------------------------------ MultiResUNet, the authors' code's way

def _conv_bn(x, filters, size, activation="relu"):
    x = layers.Conv2D(filters, (size, size), padding="same", use_bias=False)(x)
    x = layers.BatchNormalization(axis=3, scale=False)(x)
    return x if activation is None else layers.Activation(activation)(x)


def _multires(units, x, alpha=1.67):
    w = alpha * units
    a, b, c = int(w * 0.167), int(w * 0.333), int(w * 0.5)
    shortcut = _conv_bn(x, a + b + c, 1, activation=None)
    c3 = _conv_bn(x, a, 3)
    c5 = _conv_bn(c3, b, 3)
    c7 = _conv_bn(c5, c, 3)
    out = layers.BatchNormalization(axis=3)(layers.concatenate([c3, c5, c7], axis=3))
    out = layers.Activation("relu")(layers.add([shortcut, out]))
    return layers.BatchNormalization(axis=3)(out)


def _respath(filters, length, x):
    for _ in range(length):
        shortcut = _conv_bn(x, filters, 1, activation=None)
        x = _conv_bn(x, filters, 3)
        x = layers.BatchNormalization(axis=3)(layers.Activation("relu")(
            layers.add([shortcut, x])))
    return x


def authors_multiresunet(shape, filters=32):
    """MultiResUNet in the layout of Ibtehaz & Rahman's Keras code: five MultiRes blocks down
    with ResPaths of length 4..1 on the skips, transpose-conv up, a 1x1 conv-BN sigmoid head."""
    inputs = keras.Input(shape)
    x, skips = inputs, []
    for level in range(4):
        x = _multires(filters * 2**level, x)
        skips.append(_respath(filters * 2**level, 4 - level, x))
        x = layers.MaxPooling2D(pool_size=(2, 2))(x)
    x = _multires(filters * 16, x)
    for level in reversed(range(4)):
        x = layers.Conv2DTranspose(filters * 2**level, (2, 2), strides=(2, 2),
                                   padding="same")(x)
        x = _multires(filters * 2**level, layers.concatenate([x, skips[level]], axis=3))
    outputs = _conv_bn(x, 1, 1, activation="sigmoid")
    return keras.Model(inputs, outputs, name="authors_multiresunet")


def pairs() -> list[Pair]:
    """Every kerasmed network of the peers table with the peer a user would otherwise run."""
    return [
        Pair("U-Net", _km("unet", depth=4, batch_norm=True, upsampling="transpose"),
             "plain Keras", lambda shape, f: plain_unet(shape, f)),
        Pair("MultiResUNet", _km("multiresunet"), "authors' code",
             lambda shape, f: authors_multiresunet(shape, f)),
        Pair("Attention U-Net", _km("attention_unet", depth=4), "kuc att_unet_2d",
             _kuc_att_unet),
        # kuc gives every recurrence step its own conv: kerasmed's shared_weights=False.
        Pair("R2U-Net", _km("r2unet", depth=4, shared_weights=False), "kuc r2_unet_2d",
             _kuc_r2_unet),
        Pair("UNet++", _km("unet_plus_plus", depth=3, conv_activation="relu", dropout=0.0,
                           weight_decay=0.0, batch_norm=False, upsampling="bilinear",
                           up_conv=True),
             "kuc unet_plus_2d (skips restored)", _kuc_unet_plus),
        Pair("Unet VGG16", _km("backbone_unet", backbone_name="vgg16", encoder_weights=None),
             "segmentation_models", _sm_model("Unet", "vgg16"), backbone=True),
        Pair("Unet ResNet50", _km("backbone_unet", backbone_name="resnet50",
                                  encoder_weights=None),
             "segmentation_models", _sm_model("Unet", "resnet50"), backbone=True),
        Pair("FPN VGG16", _km("fpn", backbone_name="vgg16", encoder_weights=None),
             "segmentation_models", _sm_model("FPN", "vgg16"), backbone=True),
    ]
