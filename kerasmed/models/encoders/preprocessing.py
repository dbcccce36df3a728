"""The input scaling of a ``keras.applications`` backbone, inside the model:
``BackbonePreprocessing`` maps [0, 1] images (1 or 3 channels) to what the ImageNet weights
were trained with.
"""

from __future__ import annotations

import keras
from keras import layers, ops

__all__ = ["BackbonePreprocessing", "PREPROCESSING_MODES"]

PREPROCESSING_MODES = ("caffe", "tf", "torch", "raw255")

_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)


@keras.saving.register_keras_serializable(package="kerasmed")
class BackbonePreprocessing(layers.Layer):
    """Map [0, 1] float images to the input scaling of a ``keras.applications`` backbone.

    ``mode`` is what ``keras.applications.<module>.preprocess_input`` does to 0..255 images:
    ``"caffe"`` (VGG, ResNet: RGB to BGR, minus the ImageNet mean), ``"tf"`` (ResNetV2,
    MobileNetV2, Inception: -1..1), ``"torch"`` (DenseNet: ImageNet mean/std), ``"raw255"``
    (EfficientNet, EfficientNetV2, MobileNetV3, ConvNeXt, which rescale inside the model:
    0..255). One channel is repeated to three first. No weights. Returns ``(B, H, W, 3)``.
    """

    def __init__(self, mode, **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESSING_MODES:
            raise ValueError(f"mode must be one of {PREPROCESSING_MODES}, got {mode!r}")
        self.mode = mode

    def call(self, x):
        if x.shape[-1] == 1:
            x = ops.concatenate([x, x, x], axis=-1)
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) * 255.0 - ops.convert_to_tensor(_CAFFE_MEAN_BGR, x.dtype)
        if self.mode == "tf":
            return x * 2.0 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, x.dtype)
            return (x - mean) / ops.convert_to_tensor(_TORCH_STD, x.dtype)
        return x * 255.0

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 3)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
