"""Transformer building blocks for kerasmed's TransUNet and Swin-Unet, as registered layers.

Every layer here is a ``keras.layers.Layer`` registered with ``package="kerasmed"`` and a
``get_config``, and computes with ``keras.ops`` only, so a model built from them saves to
``.keras``, reloads with ``keras.saving.load_model`` and runs on TensorFlow, JAX and PyTorch.
Window partition, shifts and masks follow the Swin Transformer (Liu et al. 2021,
arXiv:2103.14030); the NumPy helpers ``relative_position_index`` and ``shifted_window_mask``
build the constants a layer needs from its configuration (they are not weights).

Functional helpers (``vit_block``, ``swin_block``, ``patch_merging``, ``patch_expanding``) name
every layer they create from a ``name`` prefix.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers, ops

__all__ = ["window_partition", "window_reverse", "relative_position_index", "shifted_window_mask",
           "window_layout", "WindowAttention", "DropPath", "PositionEmbedding", "SpaceToDepth",
           "DepthToSpace", "vit_block", "swin_block", "patch_merging", "patch_expanding",
           "dense_init"]

MASK_VALUE = -100.0   # the Swin reference's additive mask value (not -inf: no NaN on full masks)


def dense_init():
    """Truncated-normal (std 0.02) kernels, as the ViT and Swin references initialise Linear."""
    return keras.initializers.TruncatedNormal(stddev=0.02)


# ------------------------------------------------------------------ windows (keras.ops)

def window_partition(x, window):
    """``(B, H, W, C)`` -> ``(B * nW, window * window, C)``, windows in row-major order.

    H and W must be static multiples of ``window``.
    """
    height, width, channels = x.shape[1], x.shape[2], x.shape[3]
    x = ops.reshape(x, (-1, height // window, window, width // window, window, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, window * window, channels))


def window_reverse(windows, window, height, width):
    """Inverse of ``window_partition``: ``(B * nW, window * window, C)`` -> ``(B, H, W, C)``."""
    channels = windows.shape[-1]
    x = ops.reshape(windows, (-1, height // window, width // window, window, window, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, height, width, channels))


# ------------------------------------------------------------------ constants (NumPy)

def _np_partition(grid, window):
    """(H, W) NumPy grid -> (nW, window * window), the same order as ``window_partition``."""
    h, w = grid.shape
    return (grid.reshape(h // window, window, w // window, window)
            .transpose(0, 2, 1, 3).reshape(-1, window * window))


def relative_position_index(window):
    """``(N, N)`` indices into the ``((2 window - 1)^2, heads)`` bias table, N = window^2."""
    coords = np.stack(np.meshgrid(np.arange(window), np.arange(window), indexing="ij"))
    flat = coords.reshape(2, -1)
    rel = (flat[:, :, None] - flat[:, None, :]).transpose(1, 2, 0) + (window - 1)
    return (rel[..., 0] * (2 * window - 1) + rel[..., 1]).astype("int32")


def window_layout(height, width, window, shift):
    """The window and shift a Swin block uses at this resolution, and the padded size.

    As in the Swin reference, a feature map no larger than the window is one window without
    shift. Otherwise the map is zero-padded on the bottom and right to a multiple of the window
    (the padded tokens are masked out as keys). Returns ``(window, shift, padded_h, padded_w)``.
    """
    if min(height, width) <= window:
        window, shift = min(height, width), 0
    if not 0 <= shift < window:
        raise ValueError(f"shift_size must be in [0, window_size), got {shift} for {window}")
    return (window, shift, math.ceil(height / window) * window,
            math.ceil(width / window) * window)


def shifted_window_mask(height, width, window, shift):
    """Additive attention mask ``(nW, N, N)`` of (S)W-MSA, or ``None`` when nothing is masked.

    With a shift, the cyclically shifted map mixes regions that are not neighbours in the
    image; tokens of different regions (the reference's nine labels) must not attend to each
    other (``MASK_VALUE``). Tokens added by padding to a multiple of the window are masked as
    keys. ``window`` and ``shift`` are the values after ``window_layout``.
    """
    window, shift, hp, wp = window_layout(height, width, window, shift)
    mask = np.zeros((hp * wp // window**2, window**2, window**2), "float32")
    used = False
    if shift:
        labels = np.zeros((hp, wp), "float32")
        count = 0
        bands = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
        for hs in bands:
            for ws in bands:
                labels[hs, ws] = count
                count += 1
        windows = _np_partition(labels, window)
        mask += np.where(windows[:, None, :] != windows[:, :, None], MASK_VALUE, 0.0)
        used = True
    if (hp, wp) != (height, width):
        padded = np.zeros((hp, wp), bool)
        padded[height:, :] = True
        padded[:, width:] = True
        padded = np.roll(padded, (-shift, -shift), axis=(0, 1))
        keys = _np_partition(padded, window)
        mask += np.where(keys[:, None, :], MASK_VALUE, 0.0).astype("float32")
        used = True
    return mask if used else None


# ------------------------------------------------------------------ layers

@keras.saving.register_keras_serializable(package="kerasmed")
class WindowAttention(layers.Layer):
    """(Shifted) window multi-head self-attention of the Swin Transformer.

    Takes ``(B, H, W, C)`` with static H, W; cyclically shifts the map by ``-shift_size``
    (SW-MSA; 0 gives W-MSA), pads it to a multiple of the window, splits it into windows,
    attends within each window with a learned relative position bias (a
    ``((2 w - 1)^2, num_heads)`` table) and the shift/padding mask, projects, and undoes the
    partition, padding and shift. Returns ``(B, H, W, C)``. Weights: ``qkv`` (Dense 3C, bias
    ``qkv_bias``), ``proj`` (Dense C) and ``relative_position_bias_table``, as the reference.
    """

    def __init__(self, num_heads, window_size=7, shift_size=0, qkv_bias=True,
                 attention_dropout=0.0, proj_dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = int(num_heads)
        self.window_size = int(window_size)
        self.shift_size = int(shift_size)
        self.qkv_bias = bool(qkv_bias)
        self.attention_dropout = float(attention_dropout)
        self.proj_dropout = float(proj_dropout)

    def build(self, input_shape):
        height, width, channels = input_shape[1], input_shape[2], input_shape[3]
        if height is None or width is None:
            raise ValueError("WindowAttention needs a static height and width (the window "
                             f"layout and mask depend on them), got {input_shape}")
        if channels % self.num_heads:
            raise ValueError(f"{channels} channels do not split into {self.num_heads} heads")
        self._window, self._shift, self._hp, self._wp = window_layout(
            height, width, self.window_size, self.shift_size)
        n = self._window**2
        self.qkv = layers.Dense(3 * channels, use_bias=self.qkv_bias,
                                kernel_initializer=dense_init(), name="qkv",
                                dtype=self.dtype_policy)
        self.qkv.build((None, n, channels))
        self.proj = layers.Dense(channels, kernel_initializer=dense_init(), name="proj",
                                 dtype=self.dtype_policy)
        self.proj.build((None, n, channels))
        self.relative_position_bias_table = self.add_weight(
            name="relative_position_bias_table",
            shape=((2 * self._window - 1) ** 2, self.num_heads),
            initializer=dense_init(), trainable=True)
        self._index = relative_position_index(self._window).reshape(-1)
        self._mask = shifted_window_mask(height, width, self.window_size, self.shift_size)
        self.attn_drop = layers.Dropout(self.attention_dropout, name="attn_drop")
        self.proj_drop = layers.Dropout(self.proj_dropout, name="proj_drop")
        super().build(input_shape)

    def call(self, x, training=None):
        height, width, channels = x.shape[1], x.shape[2], x.shape[3]
        w, s = self._window, self._shift
        if (self._hp, self._wp) != (height, width):
            x = ops.pad(x, ((0, 0), (0, self._hp - height), (0, self._wp - width), (0, 0)))
        if s:
            x = ops.roll(x, shift=(-s, -s), axis=(1, 2))
        windows = window_partition(x, w)                                   # (B*nW, N, C)
        n, heads, head_dim = w * w, self.num_heads, channels // self.num_heads
        qkv = ops.reshape(self.qkv(windows), (-1, n, 3, heads, head_dim))
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))                          # (3, B*nW, h, N, d)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ops.matmul(q * (head_dim ** -0.5), ops.transpose(k, (0, 1, 3, 2)))
        bias = ops.take(self.relative_position_bias_table, self._index, axis=0)
        bias = ops.transpose(ops.reshape(bias, (n, n, heads)), (2, 0, 1))
        attn = attn + ops.cast(bias, self.compute_dtype)[None]
        if self._mask is not None:
            n_windows = self._mask.shape[0]
            attn = ops.reshape(attn, (-1, n_windows, heads, n, n))
            attn = attn + ops.convert_to_tensor(self._mask[None, :, None], self.compute_dtype)
            attn = ops.reshape(attn, (-1, heads, n, n))
        attn = ops.softmax(attn, axis=-1)
        attn = self.attn_drop(attn, training=training)
        out = ops.reshape(ops.transpose(ops.matmul(attn, v), (0, 2, 1, 3)), (-1, n, channels))
        out = self.proj_drop(self.proj(out), training=training)
        x = window_reverse(out, w, self._hp, self._wp)
        if s:
            x = ops.roll(x, shift=(s, s), axis=(1, 2))
        if (self._hp, self._wp) != (height, width):
            x = x[:, :height, :width, :]
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads,
                "window_size": self.window_size, "shift_size": self.shift_size,
                "qkv_bias": self.qkv_bias, "attention_dropout": self.attention_dropout,
                "proj_dropout": self.proj_dropout}


@keras.saving.register_keras_serializable(package="kerasmed")
class DropPath(layers.Layer):
    """Stochastic depth (Huang et al. 2016): during training, zero a whole sample's residual
    branch with probability ``rate`` and scale the kept ones by ``1 / (1 - rate)``; identity
    at inference. No weights."""

    def __init__(self, rate=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=None):
        if not training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        shape = (ops.shape(x)[0],) + (1,) * (len(x.shape) - 1)
        noise = keras.random.uniform(shape, 0.0, 1.0, seed=self.seed_generator,
                                     dtype=self.compute_dtype)
        return x / keep * ops.floor(keep + noise)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


@keras.saving.register_keras_serializable(package="kerasmed")
class PositionEmbedding(layers.Layer):
    """Learned position embeddings added to ``(B, N, D)`` tokens: a ``(1, N, D)`` weight
    (ViT, Dosovitskiy et al. 2021), initialised as truncated normal (std 0.02). Returns
    ``tokens + embedding``; needs a static N."""

    def build(self, input_shape):
        if input_shape[1] is None:
            raise ValueError(f"PositionEmbedding needs a static token count, got {input_shape}")
        self.embedding = self.add_weight(name="embedding", shape=(1, *input_shape[1:]),
                                         initializer=dense_init(), trainable=True)
        super().build(input_shape)

    def call(self, x):
        return x + ops.cast(self.embedding, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)


@keras.saving.register_keras_serializable(package="kerasmed")
class SpaceToDepth(layers.Layer):
    """``(B, H, W, C)`` -> ``(B, H / b, W / b, b * b * C)``: each b x b patch stacked on the
    channels, ordered column offset first then row offset (for b = 2 the Swin reference's
    ``cat([x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]])``). No weights."""

    def __init__(self, block_size=2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, x):
        b = self.block_size
        height, width, channels = x.shape[1], x.shape[2], x.shape[3]
        x = ops.reshape(x, (-1, height // b, b, width // b, b, channels))
        x = ops.transpose(x, (0, 1, 3, 4, 2, 5))
        return ops.reshape(x, (-1, height // b, width // b, b * b * channels))

    def compute_output_shape(self, input_shape):
        b = self.block_size
        h, w, c = input_shape[1:]
        return (input_shape[0], h // b, w // b, b * b * c)

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


@keras.saving.register_keras_serializable(package="kerasmed")
class DepthToSpace(layers.Layer):
    """``(B, H, W, b * b * C)`` -> ``(B, b H, b W, C)``, channels read as ``(p1, p2, c)``
    (einops ``b h w (p1 p2 c) -> b (h p1) (w p2) c``, the Swin-Unet patch expanding). No
    weights."""

    def __init__(self, block_size=2, **kwargs):
        super().__init__(**kwargs)
        self.block_size = int(block_size)

    def call(self, x):
        b = self.block_size
        height, width, channels = x.shape[1], x.shape[2], x.shape[3]
        c = channels // (b * b)
        x = ops.reshape(x, (-1, height, width, b, b, c))
        x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
        return ops.reshape(x, (-1, height * b, width * b, c))

    def compute_output_shape(self, input_shape):
        b = self.block_size
        h, w, c = input_shape[1:]
        return (input_shape[0], h * b, w * b, c // (b * b))

    def get_config(self):
        return {**super().get_config(), "block_size": self.block_size}


# ------------------------------------------------------------------ functional blocks

def _mlp(x, hidden, *, name, dropout=0.0):
    """Dense(hidden) - GELU - dropout - Dense(channels) - dropout; returns the output."""
    channels = x.shape[-1]
    h = layers.Dense(hidden, kernel_initializer=dense_init(), name=f"{name}_fc1")(x)
    h = layers.Activation("gelu", name=f"{name}_gelu")(h)
    if dropout:
        h = layers.Dropout(dropout, name=f"{name}_drop1")(h)
    h = layers.Dense(channels, kernel_initializer=dense_init(), name=f"{name}_fc2")(h)
    if dropout:
        h = layers.Dropout(dropout, name=f"{name}_drop2")(h)
    return h


def vit_block(x, num_heads, mlp_dim, *, name, dropout=0.1, attention_dropout=0.0,
              epsilon=1e-6):
    """One pre-norm ViT encoder block (Dosovitskiy et al. 2021) on ``(B, N, D)`` tokens:
    ``x + MSA(LN(x))``, then ``x + MLP(LN(x))`` (GELU, ``mlp_dim`` hidden units, dropout).

    The attention is ``keras.layers.MultiHeadAttention`` with D / heads key dims. Returns the
    block's output tokens.
    """
    dim = x.shape[-1]
    if dim % num_heads:
        raise ValueError(f"hidden size {dim} does not split into {num_heads} heads")
    h = layers.LayerNormalization(epsilon=epsilon, name=f"{name}_attention_norm")(x)
    h = layers.MultiHeadAttention(num_heads, dim // num_heads, dropout=attention_dropout,
                                  kernel_initializer=dense_init(), name=f"{name}_attention")(h, h)
    if dropout:
        h = layers.Dropout(dropout, name=f"{name}_attention_drop")(h)
    x = layers.Add(name=f"{name}_attention_add")([x, h])
    h = layers.LayerNormalization(epsilon=epsilon, name=f"{name}_ffn_norm")(x)
    h = _mlp(h, mlp_dim, name=f"{name}_mlp", dropout=dropout)
    return layers.Add(name=f"{name}_ffn_add")([x, h])


def swin_block(x, num_heads, *, name, window_size=7, shift_size=0, mlp_ratio=4.0,
               qkv_bias=True, dropout=0.0, attention_dropout=0.0, drop_path=0.0):
    """One Swin Transformer block (Liu et al. 2021) on a ``(B, H, W, C)`` map:
    ``x + DropPath(W-MSA(LN(x)))`` (SW-MSA when ``shift_size`` > 0), then
    ``x + DropPath(MLP(LN(x)))`` with ``mlp_ratio * C`` hidden units. Returns the new map."""
    channels = x.shape[-1]
    h = layers.LayerNormalization(epsilon=1e-5, name=f"{name}_norm1")(x)
    h = WindowAttention(num_heads, window_size, shift_size, qkv_bias=qkv_bias,
                        attention_dropout=attention_dropout, proj_dropout=dropout,
                        name=f"{name}_attention")(h)
    if drop_path:
        h = DropPath(drop_path, name=f"{name}_drop_path1")(h)
    x = layers.Add(name=f"{name}_attention_add")([x, h])
    h = layers.LayerNormalization(epsilon=1e-5, name=f"{name}_norm2")(x)
    h = _mlp(h, int(channels * mlp_ratio), name=f"{name}_mlp", dropout=dropout)
    if drop_path:
        h = DropPath(drop_path, name=f"{name}_drop_path2")(h)
    return layers.Add(name=f"{name}_mlp_add")([x, h])


def patch_merging(x, *, name):
    """Swin patch merging: 2x2 neighbours stacked (4C), LayerNorm, Dense(2C, no bias).
    Returns ``(B, H / 2, W / 2, 2C)``."""
    channels = x.shape[-1]
    x = SpaceToDepth(2, name=f"{name}_space_to_depth")(x)
    x = layers.LayerNormalization(epsilon=1e-5, name=f"{name}_norm")(x)
    return layers.Dense(2 * channels, use_bias=False, kernel_initializer=dense_init(),
                        name=f"{name}_reduction")(x)


def patch_expanding(x, scale, out_channels, *, name):
    """Swin-Unet patch expanding: Dense to ``scale^2 * out_channels`` channels (no bias), depth
    to space by ``scale``, LayerNorm. The decoder's expanding doubles the resolution and halves
    the channels; the final one expands by the patch size and keeps them. Returns the map."""
    x = layers.Dense(scale * scale * out_channels, use_bias=False, kernel_initializer=dense_init(),
                     name=f"{name}_expand")(x)
    x = DepthToSpace(scale, name=f"{name}_depth_to_space")(x)
    return layers.LayerNormalization(epsilon=1e-5, name=f"{name}_norm")(x)
