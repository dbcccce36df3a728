"""U-Net family blocks: decoder upsampling with a conv, the additive attention gate (Oktay
2018), recurrent residual blocks (R2U-Net, Alom 2018), residual blocks, ASPP and CBAM, used by
``unet``, ``attention_unet``, ``r2unet`` / ``attention_r2unet`` and ``unet_parts``."""

from __future__ import annotations

import keras
from keras import layers, ops

from kerasmed.models.blocks.generic import (INTERPOLATIONS, UPSAMPLE_MODES, check_choice,
                                            conv_bn_act, upsample)

__all__ = ["UPSAMPLING_MODES", "decoder_upsample", "attention_gate", "gated_skip_concat",
           "recurrent_conv", "rrcnn_block", "residual_block", "aspp", "cbam", "ChannelPool",
           "SpatialBroadcast"]

# ``upsample``'s modes, and each interpolation followed by a conv (``decoder_upsample``).
UPSAMPLING_MODES = UPSAMPLE_MODES + tuple(f"{mode}_conv" for mode in INTERPOLATIONS)


def decoder_upsample(x, filters, *, name, mode="transpose", batch_norm=True):
    """Double the spatial size for a decoder level; returns the upsampled tensor.

    Besides ``upsample``'s modes, ``"bilinear_conv"`` / ``"nearest_conv"`` interpolate and then
    apply a 3x3 conv-BN-ReLU to ``filters`` channels: the "up-conv" of the R2U-Net and Attention
    U-Net papers' code, which halves the channels before the skip is concatenated.
    """
    check_choice(mode, "upsampling", UPSAMPLING_MODES)
    if mode.endswith("_conv"):
        x = upsample(x, filters, name=name, mode=mode[: -len("_conv")])
        return conv_bn_act(x, filters, name=f"{name}_up", batch_norm=batch_norm)
    return upsample(x, filters, name=name, mode=mode)


def attention_gate(skip, gating, inter_channels, *, name, batch_norm=True):
    """Additive attention gate (Oktay et al. 2018, arXiv:1804.03999); returns the gated skip.

    ``gating`` must already be at the skip's resolution. theta = 1x1 conv(skip), phi = 1x1
    conv(gating); relu(theta + phi) -> 1x1 conv to one channel -> sigmoid; the map multiplies
    every channel of the skip.
    """
    theta = conv_bn_act(skip, inter_channels, 1, name=f"{name}_theta", activation=None,
                        batch_norm=batch_norm)
    phi = conv_bn_act(gating, inter_channels, 1, name=f"{name}_phi", activation=None,
                      batch_norm=batch_norm)
    f = layers.Add(name=f"{name}_add")([theta, phi])
    f = layers.Activation("relu", name=f"{name}_relu")(f)
    alpha = conv_bn_act(f, 1, 1, name=f"{name}_psi", activation="sigmoid", batch_norm=batch_norm)
    return layers.Multiply(name=f"{name}_multiply")([skip, alpha])


def gated_skip_concat(x, skip, *, name, attention=False, gate_reduction=2, batch_norm=True):
    """Join upsampled decoder features ``x`` with their encoder ``skip``, first gating the
    skip with ``attention_gate`` (``x`` as the gating signal) when ``attention`` is set.

    Returns ``concat([x, skip])`` (layers named ``<name>_gate_*`` and ``<name>_concat``).
    """
    if attention:
        skip = attention_gate(skip, x, max(1, x.shape[-1] // gate_reduction),
                              name=f"{name}_gate", batch_norm=batch_norm)
    return layers.Concatenate(name=f"{name}_concat")([x, skip])


def recurrent_conv(x, filters, *, name, t=2, shared_weights=True, batch_norm=True):
    """Recurrent conv layer (RCL) of R2U-Net (Alom et al. 2018, arXiv:1802.06955).

    h = relu(bn(conv(x))), then ``t`` times h = relu(bn(conv(x + h))); ``x`` must have ``filters``
    channels. ``shared_weights=True`` reuses one conv at every step (the paper's recurrence);
    ``False`` gives each step its own conv (the Keras code DRRMSAN compared with). Each step
    keeps its own BatchNormalization, since x and x + h have different statistics.
    Returns the last step's output.
    """
    # Glorot, not He: each step feeds x + h forward, so He's variance-preserving scale makes the
    # activations grow by orders of magnitude over a network of RCLs before BN statistics exist.
    def new_conv(suffix):
        return layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm,
                             kernel_initializer="glorot_uniform", name=f"{name}_conv{suffix}")

    shared = new_conv("") if shared_weights else None
    h = x
    for step in range(t + 1):
        inputs = x if step == 0 else layers.Add(name=f"{name}_add{step}")([x, h])
        h = (shared or new_conv(step))(inputs)
        if batch_norm:
            h = layers.BatchNormalization(name=f"{name}_bn{step}")(h)
        h = layers.Activation("relu", name=f"{name}_relu{step}")(h)
    return h


def rrcnn_block(x, filters, *, name, t=2, shared_weights=True, batch_norm=True, dropout=0.0):
    """Recurrent residual conv block (RRCNN) of R2U-Net; returns the block's output.

    A 1x1 conv to ``filters`` channels, two RCLs, and the 1x1 output added back (the residual).
    """
    x0 = layers.Conv2D(filters, 1, name=f"{name}_1x1")(x)
    h = recurrent_conv(x0, filters, name=f"{name}_rcl1", t=t, shared_weights=shared_weights,
                       batch_norm=batch_norm)
    if dropout:
        h = layers.Dropout(dropout, name=f"{name}_dropout")(h)
    h = recurrent_conv(h, filters, name=f"{name}_rcl2", t=t, shared_weights=shared_weights,
                       batch_norm=batch_norm)
    return layers.Add(name=f"{name}_residual")([x0, h])


def residual_block(x, filters, *, name, batch_norm=True, dropout=0.0):
    """Two 3x3 convs with a ResNet shortcut (He et al. 2016); returns relu(convs(x) + shortcut).

    The shortcut is the identity when the channels match, otherwise a 1x1 conv(-BN) projection.
    """
    shortcut = x
    if x.shape[-1] != filters:
        shortcut = conv_bn_act(x, filters, 1, name=f"{name}_shortcut", activation=None,
                               batch_norm=batch_norm)
    h = conv_bn_act(x, filters, name=f"{name}_1", batch_norm=batch_norm)
    if dropout:
        h = layers.Dropout(dropout, name=f"{name}_dropout")(h)
    h = conv_bn_act(h, filters, name=f"{name}_2", batch_norm=batch_norm, activation=None)
    h = layers.Add(name=f"{name}_add")([h, shortcut])
    return layers.Activation("relu", name=f"{name}_relu")(h)


def aspp(x, filters, *, name, rates=(6, 12, 18), branch_filters=None, batch_norm=True):
    """Atrous spatial pyramid pooling (DeepLabv3, Chen et al. 2017, arXiv:1706.05587).

    Parallel 1x1 conv, 3x3 convs at each dilation in ``rates`` and image pooling (global average,
    1x1 conv, broadcast back), concatenated and projected by a 1x1 conv to ``filters``.
    ``branch_filters`` defaults to ``filters // 4`` so the concatenation stays near ``filters``
    wide. Returns the projected tensor.
    """
    bf = branch_filters or max(1, filters // 4)
    branches = [conv_bn_act(x, bf, 1, name=f"{name}_1x1", batch_norm=batch_norm)]
    for rate in rates:
        branches.append(conv_bn_act(x, bf, 3, dilation_rate=rate, name=f"{name}_rate{rate}",
                                    batch_norm=batch_norm))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_image_pool")(x)
    pooled = conv_bn_act(pooled, bf, 1, name=f"{name}_image", batch_norm=batch_norm)
    branches.append(SpatialBroadcast(name=f"{name}_image_broadcast")([pooled, x]))
    x = layers.Concatenate(name=f"{name}_concat")(branches)
    return conv_bn_act(x, filters, 1, name=f"{name}_project", batch_norm=batch_norm)


def cbam(x, *, name, reduction=16, kernel_size=7):
    """Convolutional block attention module (Woo et al. 2018, arXiv:1807.06521).

    Channel attention (a shared two-layer MLP over the average- and max-pooled features, summed,
    sigmoid) then spatial attention (a ``kernel_size`` conv over the channel-wise mean and max,
    sigmoid). Returns ``x`` reweighted by both.
    """
    channels = x.shape[-1]
    hidden = layers.Dense(max(1, channels // reduction), activation="relu", name=f"{name}_mlp1")
    out = layers.Dense(channels, name=f"{name}_mlp2")
    avg = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_avg_pool")(x)
    mx = layers.GlobalMaxPooling2D(keepdims=True, name=f"{name}_max_pool")(x)
    weights = layers.Add(name=f"{name}_channel_add")([out(hidden(avg)), out(hidden(mx))])
    weights = layers.Activation("sigmoid", name=f"{name}_channel_sigmoid")(weights)
    x = layers.Multiply(name=f"{name}_channel_gate")([x, weights])
    s = ChannelPool(name=f"{name}_channel_pool")(x)
    s = layers.Conv2D(1, kernel_size, padding="same", use_bias=False, activation="sigmoid",
                      name=f"{name}_spatial_conv")(s)
    return layers.Multiply(name=f"{name}_spatial_gate")([x, s])


@keras.saving.register_keras_serializable(package="kerasmed")
class ChannelPool(layers.Layer):
    """Channel-wise mean and max, concatenated: ``(B, H, W, C) -> (B, H, W, 2)`` (CBAM)."""

    def call(self, x):
        return ops.concatenate([ops.mean(x, axis=-1, keepdims=True),
                                ops.max(x, axis=-1, keepdims=True)], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2)


@keras.saving.register_keras_serializable(package="kerasmed")
class SpatialBroadcast(layers.Layer):
    """Broadcast ``(B, 1, 1, C)`` over the spatial size of a reference ``(B, H, W, _)`` tensor.

    Upsampling a 1x1 map to any size is a broadcast; doing it this way keeps ASPP's image pooling
    working when H and W are unknown (``None``) when the model is built.
    """

    def call(self, inputs):
        pooled, reference = inputs
        return pooled * ops.ones_like(reference[..., :1])

    def compute_output_shape(self, input_shape):
        pooled, reference = input_shape
        return (*reference[:-1], pooled[-1])
