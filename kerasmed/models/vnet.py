"""V-Net (Milletari, Navab & Ahmadi, 3DV 2016, arXiv:1606.04797), in 2D: residual stages of
5x5 convs with PReLU, strided-conv downsampling and transpose-conv upsampling."""

from __future__ import annotations

import keras
from keras import layers, ops

from kerasmed.models.blocks import check_depth, default_activation, segmentation_head
from kerasmed.models.registry import register_model

__all__ = ["vnet_2d", "RepeatChannels"]

_AUTO = "auto"


@keras.saving.register_keras_serializable(package="kerasmed")
class RepeatChannels(layers.Layer):
    """Tile the input's channels to ``channels`` (repeat them, cut at ``channels``).

    V-Net adds its one-channel input to each of the first stage's 16 feature maps; for a
    C-channel image the input's channels are repeated instead, so that every feature map
    gets one of them (no parameters).
    """

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = int(channels)

    def call(self, x):
        repeats = -(-self.channels // x.shape[-1])
        return ops.tile(x, (1, 1, 1, repeats))[..., : self.channels]

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.channels)

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


def _prelu(x, name):
    # One slope per channel, as in the paper's Caffe PReLU.
    return layers.PReLU(shared_axes=[1, 2], name=name)(x)


def _conv(x, filters, kernel_size, *, name, batch_norm, strides=1, transpose=False):
    conv = layers.Conv2DTranspose if transpose else layers.Conv2D
    x = conv(filters, kernel_size, strides=strides, padding="same", use_bias=not batch_norm,
             kernel_initializer="he_normal", name=f"{name}_conv")(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return _prelu(x, f"{name}_prelu")


def _residual_stage(x, residual, filters, convs, kernel_size, *, name, batch_norm):
    """``convs`` k x k conv(-BN)-PReLU layers on ``x``, plus ``residual``, then PReLU."""
    for i in range(convs):
        x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=not batch_norm,
                          kernel_initializer="he_normal", name=f"{name}_conv{i + 1}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn{i + 1}")(x)
        if i < convs - 1:
            x = _prelu(x, f"{name}_prelu{i + 1}")
    x = layers.Add(name=f"{name}_add")([x, residual])
    return _prelu(x, f"{name}_prelu")


@register_model(
    "vnet_2d",
    description="V-Net (Milletari et al. 2016) in 2D: residual 5x5 conv stages, strided-conv "
                "down, transpose-conv up, PReLU",
    defaults={"input_shape": (256, 256, 1), "classes": 2},
)
def vnet_2d(input_shape=(256, 256, 3), classes=1, activation=_AUTO, filters=16, depth=4,
            max_convs=3, kernel_size=5, batch_norm=False, name="vnet_2d"):
    """Build V-Net (Milletari et al., "V-Net: Fully Convolutional Neural Networks for
    Volumetric Medical Image Segmentation", 3DV 2016, arXiv:1606.04797) with 2D layers.

    Encoder stage s (0..``depth``) has ``min(s + 1, max_convs)`` 5x5 conv-PReLU layers
    (1, 2, 3, 3, 3) at ``filters * 2**s`` channels (16..256) and adds its input to their
    output (residual learning); stage 0's input is the image, its channels repeated to 16
    (``RepeatChannels``), the others' the output of a 2x2 stride-2 conv-PReLU that doubles
    the channels. Decoder stage s (``depth``-1..0) upsamples with a 2x2 stride-2 transpose
    conv-PReLU to ``filters * 2**s`` channels, concatenates the encoder stage's output
    (``filters * 2**(s+1)`` channels: 256, 128, 64, 32), applies as many convs as encoder
    stage s (3, 3, 2, 1) and adds the concatenation.
    A 1x1 conv and the activation give the output (a two-class softmax in the paper).

    Args:
        input_shape: ``(H, W, C)``; H and W divisible by ``2**depth`` (or ``None``). The
            paper's volumes have one channel.
        classes: output channels (2 in the paper, softmax).
        activation: head activation; ``"auto"`` gives sigmoid for one class and softmax for
            several; ``None`` gives logits.
        filters: channels of the first stage, doubled at each stage down.
        depth: number of downsamplings (4 in the paper: five resolutions).
        max_convs: the most convs in a stage (stages have 1, 2, 3, 3, ... convs).
        kernel_size: the stages' conv kernel (5 in the paper).
        batch_norm: BatchNormalization after every conv (not in the paper).
        name: the model's name.

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images to ``(batch, H, W, classes)``;
        the head computes in float32.

    Parameters (measured): 13,275,346 at 256x256x1 with two classes (the paper's
    configuration in 2D), 13,276,113 at 256x256x3 with one class. The paper gives no
    parameter count (its network is 3D: 5x5x5 kernels, about five times as many weights).
    """
    check_depth(input_shape, depth, name)
    if activation == _AUTO:
        activation = default_activation(classes)
    convs = [min(s + 1, max_convs) for s in range(depth + 1)]
    inputs = keras.Input(input_shape, name="image")
    residual = RepeatChannels(filters, name="stage0_input_repeat")(inputs)
    x = _residual_stage(inputs, residual, filters, convs[0], kernel_size, name="stage0",
                        batch_norm=batch_norm)
    skips = [x]
    for s in range(1, depth + 1):
        down = _conv(x, filters * 2**s, 2, strides=2, name=f"stage{s}_down",
                     batch_norm=batch_norm)
        x = _residual_stage(down, down, filters * 2**s, convs[s], kernel_size,
                            name=f"stage{s}", batch_norm=batch_norm)
        skips.append(x)
    for s in range(depth - 1, -1, -1):
        up = _conv(x, filters * 2**s, 2, strides=2, transpose=True, name=f"up{s}_transpose",
                   batch_norm=batch_norm)
        joined = layers.Concatenate(name=f"up{s}_concat")([up, skips[s]])
        x = _residual_stage(joined, joined, filters * 2 ** (s + 1), convs[s],
                            kernel_size, name=f"up{s}", batch_norm=batch_norm)
    outputs = segmentation_head(x, classes, activation)
    return keras.Model(inputs, outputs, name=name)
