"""Decoder blocks of segmentation_models' Unet, Linknet, FPN and PSPNet (kerasmed.models.
backbone_models), with its layer names, so parameter counts match it layer for layer."""

from __future__ import annotations

from keras import layers

from kerasmed.models.blocks.generic import conv_bn_act

__all__ = ["unet_decoder_block", "linknet_decoder_block", "fpn_block", "psp_pyramid_level"]


def _transpose_bn_relu(x, filters, name, batch_norm):
    """4x4 stride-2 transpose conv, BatchNormalization (optional), ReLU: segmentation_models'
    transpose upsampling, layers ``{name}_transpose`` (no bias when BN follows), ``{name}_bn``,
    ``{name}_relu``. Returns the output, at twice the input's resolution."""
    x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=not batch_norm,
                               name=f"{name}_transpose")(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def unet_decoder_block(x, skip, filters, *, stage, block_type="upsampling", batch_norm=True):
    """One U-Net decoder stage (Ronneberger et al. 2015) as segmentation_models builds it.

    ``"upsampling"``: 2x nearest upsampling, concatenate ``skip`` (if any), two 3x3 conv-BN-ReLU.
    ``"transpose"``: 4x4 stride-2 transpose conv-BN-ReLU, concatenate, one 3x3 conv-BN-ReLU.
    Returns the stage's output, at twice the input's resolution with ``filters`` channels.
    """
    name = f"decoder_stage{stage}"
    if block_type == "upsampling":
        x = layers.UpSampling2D(2, name=f"{name}_upsampling")(x)
        if skip is not None:
            x = layers.Concatenate(name=f"{name}_concat")([x, skip])
        x = conv_bn_act(x, filters, 3, name=f"{name}a", batch_norm=batch_norm)
        return conv_bn_act(x, filters, 3, name=f"{name}b", batch_norm=batch_norm)
    if block_type == "transpose":
        x = _transpose_bn_relu(x, filters, f"{name}a", batch_norm)
        if skip is not None:
            x = layers.Concatenate(name=f"{name}_concat")([x, skip])
        return conv_bn_act(x, filters, 3, name=f"{name}b", batch_norm=batch_norm)
    raise ValueError(f"decoder_block_type must be 'upsampling' or 'transpose', got {block_type!r}")


def linknet_decoder_block(x, skip, filters, *, stage, block_type="upsampling", batch_norm=True):
    """One LinkNet decoder stage (Chaurasia & Culurciello 2017, arXiv:1707.03718).

    1x1 conv-BN-ReLU to C/4, 2x upsampling (nearest, or a 4x4 stride-2 transpose conv-BN-ReLU),
    3x3 conv-BN-ReLU to C/4 (upsampling only), 1x1 conv-BN-ReLU to the skip's channels (or
    ``filters`` without a skip), then ``+ skip``. Returns the stage's output.
    """
    name = f"decoder_stage{stage}"
    mid = x.shape[-1] // 4
    out = skip.shape[-1] if skip is not None else (filters or mid)
    x = conv_bn_act(x, mid, 1, name=f"{name}a", batch_norm=batch_norm)
    if block_type == "upsampling":
        x = layers.UpSampling2D(2, name=f"{name}_upsampling")(x)
        x = conv_bn_act(x, mid, 3, name=f"{name}b", batch_norm=batch_norm)
    elif block_type == "transpose":
        x = _transpose_bn_relu(x, mid, f"{name}b", batch_norm)
    else:
        raise ValueError(f"decoder_block_type must be 'upsampling' or 'transpose', "
                         f"got {block_type!r}")
    x = conv_bn_act(x, out, 1, name=f"{name}c", batch_norm=batch_norm)
    if skip is not None:
        x = layers.Add(name=f"{name}_add")([x, skip])
    return x


def fpn_block(x, skip, pyramid_filters, *, stage):
    """One top-down step of a feature pyramid (Lin et al. 2017, arXiv:1612.03144).

    ``x`` (1x1 conv to ``pyramid_filters`` if it has another width) is upsampled 2x (nearest)
    and added to the 1x1-projected lateral ``skip``; without a skip the upsampled map is
    returned. Returns the pyramid level P``stage``.
    """
    name = f"fpn_stage_p{stage}"
    if x.shape[-1] != pyramid_filters:
        x = layers.Conv2D(pyramid_filters, 1, kernel_initializer="he_uniform",
                          name=f"{name}_pre_conv")(x)
    x = layers.UpSampling2D(2, name=f"{name}_upsampling")(x)
    if skip is None:
        return x
    skip = layers.Conv2D(pyramid_filters, 1, kernel_initializer="he_uniform",
                         name=f"{name}_conv")(skip)
    return layers.Add(name=f"{name}_add")([x, skip])


def psp_pyramid_level(x, level, filters, *, pooling="avg", batch_norm=True):
    """One bin of the pyramid pooling module (Zhao et al. 2017, arXiv:1612.01105).

    Pools ``x`` (static size S) to ``level`` x ``level`` bins (pool size and stride S //
    ``level``), 1x1 conv-BN-ReLU to ``filters``, bilinear upsampling back to S. Returns it.
    """
    if pooling not in ("avg", "max"):
        raise ValueError(f"psp_pooling_type must be 'avg' or 'max', got {pooling!r}")
    size = (x.shape[1] // level, x.shape[2] // level)
    pool = layers.MaxPooling2D if pooling == "max" else layers.AveragePooling2D
    h = pool(size, strides=size, padding="same", name=f"psp_level{level}_pooling")(x)
    h = conv_bn_act(h, filters, 1, name=f"psp_level{level}", batch_norm=batch_norm)
    return layers.UpSampling2D(size, interpolation="bilinear",
                               name=f"psp_level{level}_upsampling")(h)
