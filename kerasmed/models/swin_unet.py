"""Swin-Unet (Cao et al., "Swin-Unet: Unet-like Pure Transformer for Medical Image
Segmentation", ECCV Workshops 2022, arXiv:2105.05537).

A U-shaped network of Swin Transformer blocks only: 4x4 patch partition and linear embedding,
an encoder of Swin blocks (window attention W-MSA alternating with shifted-window SW-MSA, with
the relative position bias and the shift mask) and patch merging, a bottleneck, a decoder of
patch expanding and Swin blocks joined to the encoder by skip connections (concatenation and a
linear layer), a final 4x patch expanding and a linear (1x1) head.

Built from ``keras.layers`` and the registered layers of ``kerasmed.models.transformer_blocks``,
so the model saves to ``.keras`` and runs on TensorFlow, JAX and PyTorch.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from kerasmed.models.blocks import default_activation, segmentation_head
from kerasmed.models.registry import register_model
from kerasmed.models.transformer_blocks import patch_expanding, patch_merging, swin_block

__all__ = ["swin_unet"]

_AUTO = "auto"
_SKIPS = ("blocks", "embeddings")


def _per_stage(value, stages, what):
    """An int for every stage, or a sequence of ``stages`` ints."""
    if isinstance(value, int):
        return [value] * stages
    value = list(value)
    if len(value) != stages:
        raise ValueError(f"{what} needs {stages} entries (depth + 1 stages), got {value}")
    return value


def _swin_stage(x, blocks, heads, window, rates, *, name, **kw):
    """``blocks`` Swin blocks, every second one shifted by half a window; returns the map."""
    for i in range(blocks):
        x = swin_block(x, heads, name=f"{name}_block{i + 1}", window_size=window,
                       shift_size=0 if i % 2 == 0 else window // 2, drop_path=rates[i], **kw)
    return x


@register_model(
    "swin_unet",
    description="Swin-Unet (Cao et al. 2021): pure-transformer U-Net of shifted-window Swin "
                "blocks, patch merging and patch expanding",
)
def swin_unet(input_shape=(224, 224, 3), classes=1, activation=_AUTO, filters=96, depth=3,
              blocks=2, num_heads=None, head_dim=32, window_size=7, patch_size=4,
              mlp_ratio=4.0, qkv_bias=True, dropout=0.0, attention_dropout=0.0,
              drop_path_rate=0.2, skips="blocks", name="swin_unet"):
    """Build a Swin-Unet (Cao et al. 2021, arXiv:2105.05537).

    The defaults are the paper's Swin-T configuration: embedding dimension C = 96, four
    stages of two blocks (encoder stages at 1/4, 1/8, 1/16 of the input, bottleneck at 1/32),
    heads (3, 6, 12, 24), window 7, MLP ratio 4, a 224x224 input, stochastic depth 0.2.

    Args:
        input_shape: ``(H, W, C)``, static; H and W divisible by ``patch_size * 2**depth``.
        classes: output channels.
        activation: head activation; ``"auto"``: sigmoid for one class, softmax for several;
            ``None``: logits.
        filters: embedding dimension C of the first stage, doubled by each patch merging.
        depth: number of patch mergings (3: four stages, the last one the bottleneck).
        blocks: Swin blocks per stage, an int or ``depth + 1`` ints; each decoder stage has
            as many blocks as the encoder stage at its resolution.
        num_heads: heads per stage (``depth + 1`` ints); ``None``: the stage's channels //
            ``head_dim`` (at least 1), which gives Swin-T's (3, 6, 12, 24).
        head_dim: channels per head when ``num_heads`` is ``None``.
        window_size: attention window (tokens per side); a map no larger than the window is
            one unshifted window, and other maps are padded to a multiple of it.
        patch_size: side of the patch partition (4).
        mlp_ratio, qkv_bias, dropout, attention_dropout: the Swin blocks' MLP width ratio,
            query/key/value bias, and dropout rates.
        drop_path_rate: stochastic depth, rising linearly over the encoder's blocks from 0 to
            this value; a decoder stage reuses the rates of the encoder stage at its resolution
            (as the authors' code does).
        skips: ``"blocks"``: each skip carries the output of an encoder stage's Swin blocks,
            as drawn in the paper's Figure 1; ``"embeddings"``: the tokens entering the stage
            (the patch embedding, then each patch merging's output), as the authors' code does.
            The parameter count is the same.
        name: the model's name.

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images to ``(batch, H, W, classes)``.
        Parameters at the defaults (224x224x3, one class): 27,168,133; the authors' code
        counts 27,168,132 (its 1x1 head has no bias; its relative position indices and
        masks are buffers, as they are constants here).
    """
    if skips not in _SKIPS:
        raise ValueError(f"skips must be one of {_SKIPS}, got {skips!r}")
    height, width = tuple(input_shape)[:2]
    stride = patch_size * 2**depth
    if height is None or width is None or height % stride or width % stride:
        raise ValueError(f"swin_unet: input size {tuple(input_shape)[:2]} must be fixed and "
                         f"divisible by patch_size * 2**depth = {stride}")
    if activation == _AUTO:
        activation = default_activation(classes)
    stages = depth + 1
    blocks = _per_stage(blocks, stages, "blocks")
    dims = [filters * 2**i for i in range(stages)]
    heads = (_per_stage(num_heads, stages, "num_heads") if num_heads is not None
             else [max(1, d // head_dim) for d in dims])
    rates = np.linspace(0.0, drop_path_rate, sum(blocks)).tolist()
    stage_rates = [rates[sum(blocks[:i]):sum(blocks[:i + 1])] for i in range(stages)]
    kw = dict(mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, dropout=dropout,
              attention_dropout=attention_dropout)

    inputs = keras.Input(input_shape, name="image")
    x = layers.Conv2D(filters, patch_size, strides=patch_size, name="patch_embed_conv")(inputs)
    x = layers.LayerNormalization(epsilon=1e-5, name="patch_embed_norm")(x)
    if dropout:
        x = layers.Dropout(dropout, name="patch_embed_drop")(x)
    skip_features = []
    for i in range(stages):
        stage_input = x
        x = _swin_stage(x, blocks[i], heads[i], window_size, stage_rates[i],
                        name=f"encoder{i + 1}" if i < depth else "bottleneck", **kw)
        if i < depth:
            skip_features.append(x if skips == "blocks" else stage_input)
            x = patch_merging(x, name=f"merge{i + 1}")
    x = layers.LayerNormalization(epsilon=1e-5, name="bottleneck_norm")(x)
    for i in reversed(range(depth)):
        x = patch_expanding(x, 2, dims[i], name=f"expand{i + 1}")
        x = layers.Concatenate(name=f"decoder{i + 1}_concat")([x, skip_features[i]])
        x = layers.Dense(dims[i], name=f"decoder{i + 1}_concat_linear")(x)
        x = _swin_stage(x, blocks[i], heads[i], window_size, stage_rates[i],
                        name=f"decoder{i + 1}", **kw)
    x = layers.LayerNormalization(epsilon=1e-5, name="decoder_norm")(x)
    x = patch_expanding(x, patch_size, filters, name="final_expand")
    outputs = segmentation_head(x, classes, activation)
    return keras.Model(inputs, outputs, name=name)
