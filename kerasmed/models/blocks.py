"""Building blocks shared by kerasmed's networks. Each block lives here once and is imported.

Every helper takes a ``name`` prefix and names each layer it creates from it, so that summaries,
checkpoints and Grad-CAM can find layers by readable names.
"""

from __future__ import annotations

from keras import layers

__all__ = ["conv_bn_act", "conv_block", "upsample", "segmentation_head"]


def conv_bn_act(x, filters, kernel_size=3, *, name, strides=1, dilation_rate=1, activation="relu",
                batch_norm=True, padding="same", use_bias=None, kernel_regularizer=None):
    """Conv2D, then BatchNormalization (optional), then an activation (optional).

    The conv has no bias when batch norm follows it: the norm's offset makes it redundant.
    Returns the output tensor.
    """
    if use_bias is None:
        use_bias = not batch_norm
    x = layers.Conv2D(filters, kernel_size, strides=strides, dilation_rate=dilation_rate,
                      padding=padding, use_bias=use_bias, kernel_initializer="he_normal",
                      kernel_regularizer=kernel_regularizer, name=f"{name}_conv")(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    if activation is not None:
        x = layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def conv_block(x, filters, *, name, batch_norm=True, dropout=0.0, activation="relu"):
    """U-Net's double conv: two 3x3 conv-BN-act, with optional dropout between them."""
    x = conv_bn_act(x, filters, name=f"{name}_1", batch_norm=batch_norm, activation=activation)
    if dropout:
        x = layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return conv_bn_act(x, filters, name=f"{name}_2", batch_norm=batch_norm, activation=activation)


def upsample(x, filters, *, name, mode="transpose"):
    """Double the spatial size: a 2x2 stride-2 transpose conv, or bilinear/nearest interpolation.

    Interpolation keeps the channel count (``filters`` is ignored); the decoder's following conv
    mixes channels, as in the Keras U-Nets the papers compared against.
    """
    if mode == "transpose":
        return layers.Conv2DTranspose(filters, 2, strides=2, padding="same", name=f"{name}_upconv")(x)
    if mode in ("bilinear", "nearest"):
        return layers.UpSampling2D(2, interpolation=mode, name=f"{name}_upsample")(x)
    raise ValueError(f"upsampling must be 'transpose', 'bilinear' or 'nearest', got {mode!r}")


def segmentation_head(x, classes, activation, *, name="head"):
    """1x1 conv to ``classes`` channels and the output activation, computed in float32.

    The head runs in float32 whatever the global precision policy, so that losses and metrics see
    float32 probabilities under mixed precision. ``activation=None`` returns logits.
    """
    x = layers.Conv2D(classes, 1, name=f"{name}_conv", dtype="float32")(x)
    if activation is not None:
        x = layers.Activation(activation, name=f"{name}_{activation}", dtype="float32")(x)
    return x


def check_input_size(input_shape, stride: int, model_name: str):
    """Raise ``ValueError`` unless both spatial sizes are ``None`` or divisible by ``stride``."""
    for size in input_shape[:2]:
        if size is not None and size % stride:
            raise ValueError(
                f"{model_name}: input size {tuple(input_shape[:2])} must be divisible by {stride} "
                f"(the network's total stride)"
            )


def default_activation(classes: int) -> str:
    """Sigmoid for one class, softmax for several."""
    return "sigmoid" if classes == 1 else "softmax"


# --- U-Net family blocks ---
# Attention gate, decoder upsampling with a conv, recurrent residual (R2U-Net), residual, ASPP and
# CBAM blocks, used by attention_unet, r2unet / attention_r2unet and unet_parts.

import keras  # noqa: E402
from keras import ops  # noqa: E402

__all__ += ["decoder_upsample", "attention_gate", "gated_skip_concat", "recurrent_conv",
            "rrcnn_block", "residual_block",
            "aspp", "cbam", "ChannelPool", "SpatialBroadcast"]

UPSAMPLING_MODES = ("transpose", "bilinear", "nearest", "bilinear_conv", "nearest_conv")


def decoder_upsample(x, filters, *, name, mode="transpose", batch_norm=True):
    """Double the spatial size for a decoder level; returns the upsampled tensor.

    Besides ``upsample``'s modes, ``"bilinear_conv"`` / ``"nearest_conv"`` interpolate and then
    apply a 3x3 conv-BN-ReLU to ``filters`` channels: the "up-conv" of the R2U-Net and Attention
    U-Net papers' code, which halves the channels before the skip is concatenated.
    """
    if mode not in UPSAMPLING_MODES:
        raise ValueError(f"upsampling must be one of {UPSAMPLING_MODES}, got {mode!r}")
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


# --- backbone decoder blocks ---
# Decoder blocks of segmentation_models' Unet, Linknet, FPN and PSPNet (kerasmed.models.
# backbone_models), with its layer names, so parameter counts match it layer for layer.

__all__ += ["unet_decoder_block", "linknet_decoder_block", "fpn_block", "psp_pyramid_level"]


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


# --- MultiResUNet / DRRMSAN blocks ---
__all__ += ["conv2d_bn", "multires_block", "res_path", "multires_widths"]


def conv2d_bn(x, filters, kernel_size=3, *, name, activation="relu", dtype=None,
              kernel_regularizer=None):
    """MultiResUNet's conv: Conv2D without bias, BatchNormalization(scale=False), activation.

    The norm has no scale because a ReLU (or the following norm) makes it redundant; this is
    the reference implementation's choice and part of its exact parameter count.
    """
    x = layers.Conv2D(filters, kernel_size, padding="same", use_bias=False,
                      kernel_initializer="glorot_uniform", kernel_regularizer=kernel_regularizer,
                      name=f"{name}_conv", dtype=dtype)(x)
    x = layers.BatchNormalization(scale=False, name=f"{name}_bn", dtype=dtype)(x)
    if activation is not None:
        x = layers.Activation(activation, name=f"{name}_{activation}", dtype=dtype)(x)
    return x


def multires_widths(units, alpha=1.67):
    """Filters of a MultiRes block's three chained 3x3 convs: W/6, W/3 and W/2 of W = alpha U."""
    w = alpha * units
    return int(w * 0.167), int(w * 0.333), int(w * 0.5)


def multires_block(x, units, *, name, alpha=1.67):
    """MultiRes block (Ibtehaz & Rahman 2020): three chained 3x3 convs standing in for 3x3,
    5x5 and 7x7 receptive fields, concatenated, plus a 1x1 residual projection.

    Returns a tensor with ``sum(multires_widths(units, alpha))`` channels.
    """
    widths = multires_widths(units, alpha)
    shortcut = conv2d_bn(x, sum(widths), 1, name=f"{name}_shortcut", activation=None)
    a = conv2d_bn(x, widths[0], name=f"{name}_3x3")
    b = conv2d_bn(a, widths[1], name=f"{name}_5x5")
    c = conv2d_bn(b, widths[2], name=f"{name}_7x7")
    out = layers.Concatenate(name=f"{name}_concat")([a, b, c])
    out = layers.BatchNormalization(name=f"{name}_concat_bn")(out)
    out = layers.Add(name=f"{name}_add")([shortcut, out])
    out = layers.Activation("relu", name=f"{name}_relu")(out)
    return layers.BatchNormalization(name=f"{name}_out_bn")(out)


def res_path(x, filters, length, *, name):
    """ResPath (Ibtehaz & Rahman 2020): ``length`` residual 3x3 conv units on a skip
    connection, to narrow the semantic gap between encoder and decoder features."""
    for i in range(length):
        unit = f"{name}_{i + 1}"
        shortcut = conv2d_bn(x, filters, 1, name=f"{unit}_shortcut", activation=None)
        out = conv2d_bn(x, filters, name=f"{unit}_conv3x3")
        out = layers.Add(name=f"{unit}_add")([shortcut, out])
        out = layers.Activation("relu", name=f"{unit}_relu")(out)
        x = layers.BatchNormalization(name=f"{unit}_bn")(out)
    return x


__all__ += ["MinPooling2D", "min_pool", "multi_branch_gate"]


@keras.saving.register_keras_serializable(package="kerasmed")
class MinPooling2D(layers.MaxPooling2D):
    """Min pooling, computed as ``-maxpool(-x)``; takes ``MaxPooling2D``'s arguments.

    DRRMSAN's input pyramid uses it to keep the darkest pixel of each window (the authors'
    code also treated exact zeros as missing; kerasmed uses the plain minimum).
    """

    def call(self, inputs):
        return ops.negative(super().call(ops.negative(inputs)))


def min_pool(x, pool_size, *, name):
    """Min-pool ``x`` with ``pool_size`` windows and strides; returns the pooled tensor."""
    return MinPooling2D(pool_size, name=name)(x)


def multi_branch_gate(skip, gating, inter_channels, *, name, regularizer=None, dropout=0.0):
    """DRRMSAN's attention gate (Pal et al.); returns ``skip`` scaled by a sigmoid map.

    ``skip`` and ``gating`` (the upsampled decoder features, same spatial size) each pass
    through parallel branches of 1, 2 and 3 stacked 3x3 convs (receptive fields 3, 5, 7) with
    ``inter_channels`` filters; the six responses are combined additively (their sum) and
    multiplicatively (the product of the skip's and the gating signal's branch sums); ReLU,
    optional SpatialDropout2D, 1x1 conv and sigmoid give a one-channel map that multiplies
    every channel of ``skip``.

    The authors' gate shrinks and re-grows its maps with a fixed MaxPool(12, stride 2),
    upsampling and ZeroPadding(5), which only line up for some input sizes; this gate keeps
    the skip's resolution throughout, so any input divisible by the network's stride works.
    """
    def branches(x, tag):
        out = []
        for depth in (1, 2, 3):
            h = x
            for j in range(depth):
                h = layers.Conv2D(inter_channels, 3, padding="same", use_bias=False,
                                  kernel_regularizer=regularizer,
                                  name=f"{name}_{tag}_b{depth}_conv{j + 1}")(h)
            out.append(h)
        return out

    xs, gs = branches(skip, "x"), branches(gating, "g")
    additive = layers.Add(name=f"{name}_add")(xs + gs)
    multiplicative = layers.Multiply(name=f"{name}_multiply")(
        [layers.Add(name=f"{name}_x_sum")(xs), layers.Add(name=f"{name}_g_sum")(gs)])
    h = layers.Add(name=f"{name}_combine")([additive, multiplicative])
    h = layers.Activation("relu", name=f"{name}_relu")(h)
    if dropout:
        h = layers.SpatialDropout2D(dropout, name=f"{name}_dropout")(h)
    psi = layers.Conv2D(1, 1, activation="sigmoid", kernel_regularizer=regularizer,
                        name=f"{name}_psi")(h)
    return layers.Multiply(name=f"{name}_gated")([skip, psi])
