"""Pretrained encoders from ``keras.applications`` for kerasmed's backbone networks, apart from
the networks (``kerasmed.models.backbone_models``, ``backbone_unetpp``, ``deeplab``,
``transunet``), as segmentation_models_pytorch keeps its encoders apart from its decoders.

- ``table``: ``BACKBONES``, one ``BackboneSpec`` per encoder (taps, input scaling, ImageNet
  weights file, alignment);
- ``preprocessing``: ``BackbonePreprocessing``, the input scaling inside the model;
- ``weights``: the ImageNet weights through Keras' cache, failing fast offline with
  ``WeightsUnavailableError``;
- ``features``: ``build_encoder`` (the backbone cut at its taps, an ``Encoder``) and
  ``encoder_features`` (features at H/stride);
- ``bias_folding``: every encoder is built without the conv biases that its batch norms cancel
  (only ResNet v1 has them): they are folded into the moving means;
- ``front``: what the backbone networks share around their decoders (input, preprocessing,
  encoder; head and model; the arguments' documentation).

Input convention (every backbone network): the model takes float images in [0, 1] (kerasmed's
loader default, ``data.normalization: "auto"``) with 1 or 3 channels, and maps them inside the
model to what the backbone expects. A 1-channel (grey) image is repeated to 3 channels first,
so the ImageNet weights apply unchanged. Do not also use the loader's ``"backbone"``
normalisation.
"""

from kerasmed.models.encoders.bias_folding import fold_conv_biases, foldable_convolutions
from kerasmed.models.encoders.features import (ENCODER_NAME, Encoder, build_encoder,
                                               encoder_features)
from kerasmed.models.encoders.preprocessing import PREPROCESSING_MODES, BackbonePreprocessing
from kerasmed.models.encoders.table import (BACKBONES, BackboneSpec, get_backbone_spec,
                                            list_backbones)
from kerasmed.models.encoders.weights import (WeightsUnavailableError, imagenet_weights_file,
                                              keras_cache_dir)

__all__ = ["BackboneSpec", "BACKBONES", "Encoder", "BackbonePreprocessing",
           "WeightsUnavailableError", "get_backbone_spec", "list_backbones", "build_encoder",
           "encoder_features", "imagenet_weights_file", "keras_cache_dir", "ENCODER_NAME",
           "PREPROCESSING_MODES", "fold_conv_biases", "foldable_convolutions"]
