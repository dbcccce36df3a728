"""Deep-supervision heads shared by UNet++, UNet 3+ and U^2-Net.

Each head computes in float32 whatever the global precision policy, like
``blocks.segmentation_head``, so that losses and metrics see float32 outputs under mixed
precision.
"""

from __future__ import annotations

from keras import layers

__all__ = ["side_logits", "output_activation"]


def side_logits(x, classes, *, name, kernel_size=3, factor=1, upsampling="bilinear",
                transpose_kernel=3):
    """A side output's logits: a ``kernel_size`` conv to ``classes`` channels (layer
    ``{name}_conv``), then, for ``factor > 1``, upsampling by ``factor`` to the input's
    resolution (``{name}_upsample``: bilinear or nearest interpolation, or a
    ``transpose_kernel`` transpose conv with stride ``factor`` for ``"transpose"``).

    Returns float32 logits.
    """
    x = layers.Conv2D(classes, kernel_size, padding="same", name=f"{name}_conv",
                      dtype="float32")(x)
    if factor == 1:
        return x
    if upsampling == "transpose":
        return layers.Conv2DTranspose(classes, transpose_kernel, strides=factor, padding="same",
                                      name=f"{name}_upsample", dtype="float32")(x)
    return layers.UpSampling2D(factor, interpolation=upsampling, name=f"{name}_upsample",
                               dtype="float32")(x)


def output_activation(x, activation, *, name):
    """The output activation in float32, as a layer called ``name`` (linear for ``None``, so
    that the output keeps its name when the model returns logits)."""
    return layers.Activation(activation or "linear", name=name, dtype="float32")(x)
