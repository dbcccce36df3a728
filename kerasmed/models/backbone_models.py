"""U-Net, FPN, LinkNet and PSPNet over pretrained ``keras.applications`` encoders, with the API
and defaults of segmentation_models 1.0.1 (Yakubovskiy 2019).

- ``Unet``: Ronneberger, Fischer & Brox, "U-Net", MICCAI 2015, arXiv:1505.04597.
- ``FPN``: Lin et al., "Feature Pyramid Networks for Object Detection", CVPR 2017,
  arXiv:1612.03144, with the semantic-segmentation head of Kirillov et al.'s panoptic FPN as
  segmentation_models builds it.
- ``Linknet``: Chaurasia & Culurciello, "LinkNet", VCIP 2017, arXiv:1707.03718.
- ``PSPNet``: Zhao et al., "Pyramid Scene Parsing Network", CVPR 2017, arXiv:1612.01105.

Every model has the same front (``kerasmed.models.encoders.front``): ``image`` (float in [0, 1],
1 or 3 channels) -> ``preprocessing`` (``BackbonePreprocessing``: grey to RGB and the
backbone's own scaling) -> ``encoder`` (a nested ``keras.Model`` cut from
``keras.applications``; freeze it with ``model.get_layer("encoder").trainable = False`` or
``encoder_freeze=True``, and unfreeze it during training with
``kerasmed.training.unfreeze.UnfreezeEncoder``). Decoder layers carry
segmentation_models' names (``decoder_stage0a_conv``, ``fpn_stage_p5_add``, ``psp_level1`` ...).

Differences from segmentation_models, all deliberate:

- the encoders are ``keras.applications``' (segmentation_models takes VGG, ResNet and
  MobileNet from image-classifiers / keras-applications 1.0.8, and its own 'same'-padded
  Inception). For VGG16/19, MobileNetV2 and InceptionV3 the parameter counts are identical
  (tested); kerasmed resizes the 'valid'-padded Inception features to H/stride instead;
- the preprocessing is inside the model (segmentation_models leaves it to the user);
- ``classes=1`` and ``activation="auto"`` (sigmoid; softmax for several classes) for all four
  (segmentation_models' FPN and PSPNet default to 21 Pascal VOC classes and softmax);
- ``input_shape`` defaults to ``(256, 256, 3)`` (PSPNet: ``(384, 384, 3)`` as there); Unet,
  FPN and Linknet need H and W divisible by 32 (or ``None``, except Inception backbones);
- ``encoder_freeze=True`` freezes the whole encoder, BatchNorm included (Keras' fine-tuning
  advice: BN then runs in inference mode); segmentation_models leaves BN layers trainable;
- the head runs in float32 under mixed precision.
"""

from __future__ import annotations

from keras import layers

from kerasmed.models.blocks import (conv_bn_act, fpn_block, linknet_decoder_block,
                                    psp_pyramid_level, unet_decoder_block)
from kerasmed.models.encoders.front import backbone_front, custom_taps, finish_model, shared_args
from kerasmed.models.registry import register_model

__all__ = ["Unet", "FPN", "Linknet", "PSPNet"]

_AUTO = "auto"
_UPSTREAM = ("segmentation_models 1.0.1 defaults; kerasmed defaults classes=1, "
             "activation='auto', input_shape=(256, 256, 3)")


def _skip_decoder(block, backbone_name, input_shape, encoder_weights, encoder_features,
                  decoder_filters, decoder_block_type, decoder_use_batchnorm):
    """The decoder path of Unet and Linknet, which differ only in ``block``.

    The front (all five strides), segmentation_models' two-conv 512-filter center block when
    the encoder ends in a pooling (VGG), then five ``block(x, skip, filters, stage=...,
    block_type=..., batch_norm=...)`` stages from stride 32 to 1, with the encoder's skip at
    strides 16, 8, 4, 2 (``None`` where the backbone has none). Returns (inputs, x, Encoder).
    """
    if len(decoder_filters) != 5:
        raise ValueError(f"decoder_filters needs 5 entries (strides 32 -> 1), got {decoder_filters}")
    inputs, features, encoder = backbone_front(backbone_name, input_shape, encoder_weights,
                                               (2, 4, 8, 16, 32),
                                               taps=custom_taps(encoder_features))
    x = features[32]
    if encoder.ends_with_pooling:
        x = conv_bn_act(x, 512, 3, name="center_block1", batch_norm=decoder_use_batchnorm)
        x = conv_bn_act(x, 512, 3, name="center_block2", batch_norm=decoder_use_batchnorm)
    for stage, filters in enumerate(decoder_filters):
        skip = features.get(16 // 2**stage) if stage < 4 else None
        x = block(x, skip, filters, stage=stage, block_type=decoder_block_type,
                  batch_norm=decoder_use_batchnorm)
    return inputs, x, encoder


@register_model(
    "backbone_unet",
    description="U-Net (Ronneberger 2015) on a pretrained keras.applications encoder "
                "(segmentation_models' Unet)",
)
@shared_args
def Unet(backbone_name="vgg16", input_shape=(256, 256, 3), classes=1, activation=_AUTO,
         weights=None, encoder_weights="imagenet", encoder_freeze=False,
         encoder_features="default", decoder_block_type="upsampling",
         decoder_filters=(256, 128, 64, 32, 16), decoder_use_batchnorm=True, name=None):
    """Build a U-Net with a pretrained encoder (Ronneberger et al. 2015, arXiv:1505.04597).

    Five decoder stages, each doubling the resolution (32 -> 1) and concatenating the encoder's
    skip at that stride; a two-conv 512-filter center block first when the encoder ends in a
    max-pooling (VGG); a 3x3 conv head. As segmentation_models' ``Unet``.

    Args:
        {shared}
        encoder_features: ``"default"`` (the backbone table) or four layer names/indices
            for strides 16, 8, 4, 2, as in segmentation_models.
        decoder_block_type: ``"upsampling"`` (nearest 2x, two 3x3 conv-BN-ReLU) or
            ``"transpose"`` (4x4 stride-2 transpose conv, one 3x3 conv-BN-ReLU).
        decoder_filters: filters of the five decoder stages.
        decoder_use_batchnorm: BatchNormalization after each decoder conv.
        name: the model's name (default ``unet_<backbone>``).

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images in [0, 1] to
        ``(batch, H, W, classes)``. Parameters (256x256x3, one class, same as
        segmentation_models): vgg16 23,752,273; mobilenetv2 8,047,441; inceptionv3
        29,933,105. resnet50 (keras.applications ResNet50, conv biases folded into its batch
        norms): 32,576,209.
    """
    inputs, x, encoder = _skip_decoder(unet_decoder_block, backbone_name, input_shape,
                                       encoder_weights, encoder_features, decoder_filters,
                                       decoder_block_type, decoder_use_batchnorm)
    return finish_model(inputs, x, encoder, classes=classes, activation=activation,
                        encoder_freeze=encoder_freeze, weights=weights,
                        name=name or f"unet_{encoder.spec.name}")


@register_model(
    "fpn",
    description="FPN (Lin et al. 2017) segmentation network on a pretrained keras.applications "
                "encoder (segmentation_models' FPN)",
    defaults={"segmentation_filters": 128},
)
@shared_args
def FPN(backbone_name="vgg16", input_shape=(256, 256, 3), classes=1, activation=_AUTO,
        weights=None, encoder_weights="imagenet", encoder_freeze=False,
        encoder_features="default", pyramid_block_filters=256, segmentation_filters=None,
        pyramid_use_batchnorm=True, pyramid_aggregation="concat", pyramid_dropout=None,
        name=None):
    """Build a feature-pyramid segmentation network (Lin et al. 2017, arXiv:1612.03144).

    Top-down pyramid P5..P2 (strides 16..2: 2x nearest upsampling + 1x1 lateral convs with
    ``pyramid_block_filters``), two 3x3 conv-BN-ReLU with ``segmentation_filters`` on each
    level, upsampled to stride 2 and summed or concatenated, optional spatial dropout, a 3x3
    conv-BN-ReLU, 2x bilinear upsampling and a 3x3 conv head. As segmentation_models' ``FPN``.
    Without a stride-2 feature (ConvNeXt) P2 is P3 upsampled.

    Args:
        {shared}
        encoder_features: ``"default"`` or four layer names/indices for strides 16, 8, 4, 2.
        pyramid_block_filters: pyramid width (256).
        segmentation_filters: width of the per-level segmentation convs; ``None``:
            ``pyramid_block_filters // 2`` (128), as segmentation_models.
        pyramid_use_batchnorm: BatchNormalization in the segmentation convs.
        pyramid_aggregation: ``"concat"`` (segmentation_models' default) or ``"sum"``.
        pyramid_dropout: SpatialDropout2D rate after aggregation, or ``None``.
        name: the model's name (default ``fpn_<backbone>``).

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images in [0, 1] to
        ``(batch, H, W, classes)``.
    """
    if pyramid_aggregation not in ("sum", "concat"):
        raise ValueError(f"pyramid_aggregation must be 'sum' or 'concat', got {pyramid_aggregation!r}")
    seg_filters = segmentation_filters or pyramid_block_filters // 2
    inputs, features, encoder = backbone_front(backbone_name, input_shape, encoder_weights,
                                               (2, 4, 8, 16, 32),
                                               taps=custom_taps(encoder_features))
    x = features[32]
    pyramid = {}
    for stage, stride in zip((5, 4, 3, 2), (16, 8, 4, 2)):
        x = fpn_block(x, features.get(stride), pyramid_block_filters, stage=stage)
        pyramid[stage] = x
    heads = []
    for stage in (2, 3, 4, 5):
        h = conv_bn_act(pyramid[stage], seg_filters, 3, name=f"segm_stage{stage}a",
                        batch_norm=pyramid_use_batchnorm)
        h = conv_bn_act(h, seg_filters, 3, name=f"segm_stage{stage}b",
                        batch_norm=pyramid_use_batchnorm)
        if stage > 2:
            h = layers.UpSampling2D(2 ** (stage - 2), name=f"upsampling_stage{stage}")(h)
        heads.append(h)
    if pyramid_aggregation == "sum":
        x = layers.Add(name="aggregation_sum")(heads)
    else:
        x = layers.Concatenate(name="aggregation_concat")(heads)
    if pyramid_dropout:
        x = layers.SpatialDropout2D(pyramid_dropout, name="pyramid_dropout")(x)
    x = conv_bn_act(x, seg_filters, 3, name="final_stage", batch_norm=pyramid_use_batchnorm)
    x = layers.UpSampling2D(2, interpolation="bilinear", name="final_upsampling")(x)
    return finish_model(inputs, x, encoder, classes=classes, activation=activation,
                        encoder_freeze=encoder_freeze, weights=weights,
                        name=name or f"fpn_{encoder.spec.name}")


@register_model(
    "linknet",
    description="LinkNet (Chaurasia & Culurciello 2017) on a pretrained keras.applications "
                "encoder (segmentation_models' Linknet)",
)
@shared_args
def Linknet(backbone_name="vgg16", input_shape=(256, 256, 3), classes=1, activation=_AUTO,
            weights=None, encoder_weights="imagenet", encoder_freeze=False,
            encoder_features="default", decoder_block_type="upsampling",
            decoder_filters=(None, None, None, None, 16), decoder_use_batchnorm=True, name=None):
    """Build a LinkNet with a pretrained encoder (Chaurasia & Culurciello 2017,
    arXiv:1707.03718).

    Five decoder stages (strides 32 -> 1); each shrinks to a quarter of its channels with a 1x1
    conv, upsamples 2x, expands with a 1x1 conv to the skip's width and adds the skip (four
    skips, one more than the paper, as segmentation_models); a two-conv 512 center block first
    when the encoder ends in a max-pooling (VGG); a 3x3 conv head. As segmentation_models'
    ``Linknet``.

    Args:
        {shared}
        encoder_features: ``"default"`` or four layer names/indices for strides 16, 8, 4, 2.
        decoder_block_type: ``"upsampling"`` (nearest 2x + 3x3 conv) or ``"transpose"``
            (4x4 stride-2 transpose conv).
        decoder_filters: output filters of the five stages; ``None`` takes the skip's width
            (stages with a skip must match it anyway, since the skip is added).
        decoder_use_batchnorm: BatchNormalization after each decoder conv.
        name: the model's name (default ``linknet_<backbone>``).

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images in [0, 1] to
        ``(batch, H, W, classes)``.
    """
    inputs, x, encoder = _skip_decoder(linknet_decoder_block, backbone_name, input_shape,
                                       encoder_weights, encoder_features, decoder_filters,
                                       decoder_block_type, decoder_use_batchnorm)
    return finish_model(inputs, x, encoder, classes=classes, activation=activation,
                        encoder_freeze=encoder_freeze, weights=weights,
                        name=name or f"linknet_{encoder.spec.name}")


@register_model(
    "pspnet",
    description="PSPNet (Zhao et al. 2017) on a pretrained keras.applications encoder "
                "(segmentation_models' PSPNet)",
)
@shared_args
def PSPNet(backbone_name="vgg16", input_shape=(384, 384, 3), classes=1, activation=_AUTO,
           weights=None, encoder_weights="imagenet", encoder_freeze=False, downsample_factor=8,
           psp_conv_filters=512, psp_pooling_type="avg", psp_use_batchnorm=True,
           psp_dropout=None, name=None):
    """Build a PSPNet with a pretrained encoder (Zhao et al. 2017, arXiv:1612.01105).

    The encoder is cut at stride ``downsample_factor`` (its deeper layers are dropped); a
    pyramid pooling module pools that feature to 1x1, 2x2, 3x3 and 6x6 bins (average or max),
    1x1 conv-BN-ReLU each, upsamples them back (bilinear) and concatenates them with the
    feature; a 1x1 conv-BN-ReLU, optional spatial dropout, a 3x3 conv head and bilinear
    upsampling by ``downsample_factor``. As segmentation_models' ``PSPNet``.

    Args:
        {shared}
        downsample_factor: 4, 8 or 16, the stride at which the encoder is cut. H and W must
            be multiples of ``6 * downsample_factor`` (48 at the default 8: 96, 192, 288,
            384 ...), so that the 6x6 bins tile the feature exactly.
        psp_conv_filters: filters of the pyramid convs (512).
        psp_pooling_type: ``"avg"`` or ``"max"``.
        psp_use_batchnorm: BatchNormalization in the pyramid convs.
        psp_dropout: SpatialDropout2D rate before the head, or ``None``.
        name: the model's name (default ``pspnet_<backbone>``).

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images in [0, 1] to
        ``(batch, H, W, classes)``.
    """
    if downsample_factor not in (4, 8, 16):
        raise ValueError(f"downsample_factor must be 4, 8 or 16, got {downsample_factor!r}")
    size = 6 * downsample_factor
    for side in tuple(input_shape)[:2]:
        if side is None or side % size:
            raise ValueError(f"PSPNet: input size {tuple(input_shape)[:2]} must be fixed and "
                             f"divisible by 6 * downsample_factor = {size}")
    inputs, features, encoder = backbone_front(backbone_name, input_shape, encoder_weights,
                                               (downsample_factor,), stride_check=0)
    if downsample_factor not in features:
        raise ValueError(f"backbone {backbone_name!r} has no feature at stride {downsample_factor}")
    x = features[downsample_factor]
    levels = [psp_pyramid_level(x, level, psp_conv_filters, pooling=psp_pooling_type,
                                batch_norm=psp_use_batchnorm) for level in (1, 2, 3, 6)]
    x = layers.Concatenate(name="psp_concat")([x, *levels])
    x = conv_bn_act(x, psp_conv_filters, 1, name="aggregation", batch_norm=psp_use_batchnorm)
    if psp_dropout:
        x = layers.SpatialDropout2D(psp_dropout, name="spatial_dropout")(x)
    return finish_model(inputs, x, encoder, classes=classes, activation=activation,
                        encoder_freeze=encoder_freeze, weights=weights,
                        name=name or f"pspnet_{encoder.spec.name}", upsample=downsample_factor)
