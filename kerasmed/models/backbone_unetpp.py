"""UNet++ over pretrained ``keras.applications`` encoders, with the defaults of
segmentation_models_pytorch's ``UnetPlusPlus`` (Zhou et al., "UNet++: A Nested U-Net
Architecture for Medical Image Segmentation", DLMIA 2018, arXiv:1807.10165).

The front (``image`` in [0, 1] -> ``preprocessing`` -> nested ``encoder``), the encoder table,
weights handling and freezing are those of ``kerasmed.models.encoders``, shared with the
backbone Unet/FPN/Linknet/PSPNet family; only the decoder is new: UNet++'s nested, densely
connected skip pathways.
"""

from __future__ import annotations

from keras import layers

from kerasmed.models.blocks import conv_bn_act
from kerasmed.models.encoders.front import backbone_front, custom_taps, finish_model, shared_args
from kerasmed.models.registry import register_model

__all__ = ["UnetPlusPlus"]

_AUTO = "auto"
_LEVEL_STRIDES = (2, 4, 8, 16, 32)   # encoder level i has stride 2 ** (i + 1)


def _node(x, skips, filters, *, name, batch_norm, interpolation):
    """One UNet++ node: 2x upsampling of the deeper node, concatenation with ``skips``, two
    3x3 conv-BN-ReLU. Returns the node's output."""
    x = layers.UpSampling2D(2, interpolation=interpolation, name=f"{name}_upsampling")(x)
    if skips:
        x = layers.Concatenate(name=f"{name}_concat")([x, *skips])
    x = conv_bn_act(x, filters, 3, name=f"{name}a", batch_norm=batch_norm)
    return conv_bn_act(x, filters, 3, name=f"{name}b", batch_norm=batch_norm)


def unetpp_decoder(features, decoder_filters, *, batch_norm=True, interpolation="nearest"):
    """UNet++'s nested decoder on encoder features ``{stride: tensor}`` (strides 2 ... 32).

    In the paper's notation X(i, 0) is the encoder feature of level i (stride 2^(i+1), i = 0
    ... 4) and, for j >= 1, X(i, j) = H([X(i, 0), ..., X(i, j-1), Up(X(i+1, j-1))]) with H two
    3x3 conv-BN-ReLU. The nodes X(i, 4 - i) form the decoder's main path, with
    ``decoder_filters[3 - i]`` channels; the other nodes keep the width of X(i, 0), as
    segmentation_models_pytorch's decoder does. A level without an encoder feature (ConvNeXt
    has no stride-2 feature) has only its main-path node, fed by the upsampled deeper one. A
    last node upsamples X(0, 4) to full resolution with ``decoder_filters[4]`` channels and
    no skip. Layers are named ``decoder_x{i}_{j}...``. Returns that last node.
    """
    if len(decoder_filters) != 5:
        raise ValueError(f"decoder_filters needs 5 entries (strides 32 -> 1), got {decoder_filters}")
    grid = {(i, 0): features.get(stride) for i, stride in enumerate(_LEVEL_STRIDES)}
    kw = dict(batch_norm=batch_norm, interpolation=interpolation)
    for j in range(1, 5):
        for i in range(5 - j):
            main = i + j == 4
            if grid[(i, 0)] is None and not main:
                continue
            skips = [grid[(i, k)] for k in range(j) if grid.get((i, k)) is not None]
            filters = decoder_filters[3 - i] if main else grid[(i, 0)].shape[-1]
            grid[(i, j)] = _node(grid[(i + 1, j - 1)], skips, filters, name=f"decoder_x{i}_{j}",
                                 **kw)
    return _node(grid[(0, 4)], [], decoder_filters[4], name="decoder_final", **kw)


@register_model(
    "backbone_unet_plus_plus",
    description="UNet++ (Zhou et al. 2018) on a pretrained keras.applications encoder "
                "(segmentation_models_pytorch's UnetPlusPlus)",
)
@shared_args
def UnetPlusPlus(backbone_name="resnet50", input_shape=(256, 256, 3), classes=1,
                 activation=_AUTO, weights=None, encoder_weights="imagenet",
                 encoder_freeze=False, encoder_features="default",
                 decoder_filters=(256, 128, 64, 32, 16), decoder_use_batchnorm=True,
                 decoder_interpolation="nearest", name=None):
    """Build a UNet++ with a pretrained encoder (Zhou et al. 2018, arXiv:1807.10165).

    The encoder's features at strides 2, 4, 8, 16 and 32 feed UNet++'s nested dense skip
    pathways (see ``unetpp_decoder``); a two-conv center block of the encoder's width comes
    first when the encoder ends in a max-pooling (VGG); a 3x3 conv head. As
    segmentation_models_pytorch's ``UnetPlusPlus`` (decoder_channels (256, 128, 64, 32, 16),
    batch norm, nearest upsampling, kernel-3 head), on ``keras.applications`` encoders.

    Args:
        {shared}
        encoder_features: ``"default"`` (the backbone table) or four layer names/indices for
            strides 16, 8, 4, 2.
        decoder_filters: filters of the five main-path stages (strides 16 -> 1).
        decoder_use_batchnorm: BatchNormalization after each decoder conv.
        decoder_interpolation: ``"nearest"`` (smp's default) or ``"bilinear"``.
        name: the model's name (default ``unet_plus_plus_<backbone>``).

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images in [0, 1] to
        ``(batch, H, W, classes)``; H and W divisible by 32.
    """
    inputs, features, encoder = backbone_front(backbone_name, input_shape, encoder_weights,
                                               (2, 4, 8, 16, 32),
                                               taps=custom_taps(encoder_features))
    if encoder.ends_with_pooling:
        x = features[32]
        x = conv_bn_act(x, x.shape[-1], 3, name="center_block1", batch_norm=decoder_use_batchnorm)
        features[32] = conv_bn_act(x, x.shape[-1], 3, name="center_block2",
                                   batch_norm=decoder_use_batchnorm)
    x = unetpp_decoder(features, decoder_filters, batch_norm=decoder_use_batchnorm,
                       interpolation=decoder_interpolation)
    return finish_model(inputs, x, encoder, classes=classes, activation=activation,
                        encoder_freeze=encoder_freeze, weights=weights,
                        name=name or f"unet_plus_plus_{encoder.spec.name}")
