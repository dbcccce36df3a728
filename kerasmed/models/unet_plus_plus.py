"""UNet++ (Zhou, Rahman Siddiquee, Tajbakhsh & Liang, DLMIA 2018, arXiv:1807.10165): a U-Net
whose encoder and decoder are joined by nested, densely connected skip pathways."""

from __future__ import annotations

import keras
from keras import layers

from kerasmed.models.blocks import check_choice, check_depth, conv_bn_act, default_activation
from kerasmed.models.blocks.generic import UPSAMPLE_MODES as UPSAMPLING_MODES
from kerasmed.models.registry import register_model
from kerasmed.models.side_outputs import output_activation

__all__ = ["unet_plus_plus"]

_AUTO = "auto"


def _node(x, filters, *, name, convs, batch_norm, dropout, conv_activation, regularizer):
    """H(.) of the paper: ``convs`` 3x3 convs (-BN) with ``conv_activation``, each followed by
    dropout when ``dropout`` is set (the authors' ``standard_unit``). Returns the node."""
    for i in range(convs):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm,
                          kernel_initializer="he_normal", kernel_regularizer=regularizer,
                          name=f"{name}_conv{i + 1}")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"{name}_bn{i + 1}")(x)
        x = layers.Activation(conv_activation, name=f"{name}_{conv_activation}{i + 1}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"{name}_dropout{i + 1}")(x)
    return x


def _up(x, filters, *, name, mode, kernel, up_conv, batch_norm, conv_activation):
    """U(.) of the paper: 2x upsampling of the node below. ``"transpose"``: a ``kernel`` x
    ``kernel`` stride-2 transpose conv to ``filters`` (linear, as in the authors' code);
    ``"bilinear"``/``"nearest"``: interpolation. ``up_conv`` adds a 3x3 conv(-BN)-activation
    to ``filters`` after it (keras-unet-collection's decoder). Returns the upsampled tensor."""
    if mode == "transpose":
        x = layers.Conv2DTranspose(filters, kernel, strides=2, padding="same",
                                   name=f"{name}_upconv")(x)
    else:
        x = layers.UpSampling2D(2, interpolation=mode, name=f"{name}_upsample")(x)
    if up_conv:
        x = conv_bn_act(x, filters, name=f"{name}_up", batch_norm=batch_norm,
                        activation=conv_activation)
    return x


@register_model(
    "unet_plus_plus",
    description="UNet++ (Zhou et al. 2018): nested dense skip pathways, optional deep "
                "supervision",
)
def unet_plus_plus(input_shape=(256, 256, 3), classes=1, activation=_AUTO, filters=32, depth=4,
                   deep_supervision=False, batch_norm=False, dropout=0.5, conv_activation="elu",
                   weight_decay=1e-4, upsampling="transpose", upsampling_kernel=2, up_conv=False,
                   convs=2, name="unet_plus_plus"):
    """Build UNet++ (Zhou et al., "UNet++: A Nested U-Net Architecture for Medical Image
    Segmentation", DLMIA 2018, arXiv:1807.10165).

    Node X(i, j) (level i, j-th node along the skip pathway) is X(i, 0) = H(pool(X(i-1, 0)))
    on the encoder and X(i, j) = H(concat(X(i, 0), ..., X(i, j-1), U(X(i+1, j-1)))) for j > 0:
    each level's skip pathway is a dense block of nodes. H is two 3x3 convs, U a 2x
    upsampling. The defaults are the authors' configuration: filters 32, 64, 128, 256, 512,
    ELU, dropout 0.5 after every conv, L2 1e-4 on the kernels, 2x2 transpose-conv
    upsampling, no batch norm.

    Args:
        input_shape: ``(H, W, C)``; H and W divisible by ``2**depth`` (or ``None``).
        classes: output channels of every head.
        activation: head activation; ``"auto"`` gives sigmoid for one class and softmax for
            several; ``None`` gives logits.
        filters: filters of level 0, doubled at each level down.
        depth: number of poolings (the pruned UNet++ L1..L4 of the paper for 1..4).
        deep_supervision: also return the heads on X(0, 1) .. X(0, depth-1) (the paper's
            deep supervision, trained with a loss on every output).
        batch_norm: BatchNormalization after every conv (not in the paper).
        dropout: dropout rate after every conv of a node (0 disables it).
        conv_activation: the nodes' activation (``"elu"`` in the authors' code, ``"relu"``
            in keras-unet-collection's).
        weight_decay: L2 factor on every conv kernel, heads included (0 disables it).
        upsampling: ``"transpose"``, ``"bilinear"`` or ``"nearest"``.
        upsampling_kernel: kernel of the transpose conv (2 in the paper's code, 3 in
            keras-unet-collection's).
        up_conv: a 3x3 conv after every upsampling, before the concatenation (as
            keras-unet-collection builds its decoder).
        convs: convs per node.
        name: the model's name.

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images to ``(batch, H, W, classes)``
        (output ``final``, the head on X(0, depth)); with ``deep_supervision=True`` it
        returns ``depth`` outputs, the side outputs first: ``side1`` .. ``side{depth-1}``
        (heads on X(0, 1) .. X(0, depth-1)) and ``final`` last (the one to evaluate). All
        heads are 1x1 convs computed in float32.

    Parameters at 96x96x1, one class, the defaults: 9,041,601, equal to the authors'
    ``Nest_Net`` (9,041,601; the paper's Table 1 gives 9.04M).
    """
    check_choice(upsampling, "upsampling", UPSAMPLING_MODES)
    check_depth(input_shape, depth, name)
    if activation == _AUTO:
        activation = default_activation(classes)
    regularizer = keras.regularizers.L2(weight_decay) if weight_decay else None
    node_args = dict(convs=convs, batch_norm=batch_norm, dropout=dropout,
                     conv_activation=conv_activation, regularizer=regularizer)
    inputs = keras.Input(input_shape, name="image")
    grid = {}  # (i, j) -> X(i, j)
    x = inputs
    for i in range(depth + 1):
        if i:
            x = layers.MaxPooling2D(2, name=f"x{i}0_pool")(grid[i - 1, 0])
        grid[i, 0] = _node(x, filters * 2**i, name=f"x{i}0", **node_args)
        # Every node that the new encoder node completes: X(i-j, j) for j = 1..i.
        for j in range(1, i + 1):
            level = i - j
            f = filters * 2**level
            up = _up(grid[level + 1, j - 1], f, name=f"x{level}{j}", mode=upsampling,
                     kernel=upsampling_kernel, up_conv=up_conv, batch_norm=batch_norm,
                     conv_activation=conv_activation)
            x = layers.Concatenate(name=f"x{level}{j}_concat")(
                [grid[level, k] for k in range(j)] + [up])
            grid[level, j] = _node(x, f, name=f"x{level}{j}", **node_args)

    def head(j, out_name):
        logits = layers.Conv2D(classes, 1, kernel_initializer="he_normal",
                               kernel_regularizer=regularizer, name=f"{out_name}_conv",
                               dtype="float32")(grid[0, j])
        return output_activation(logits, activation, name=out_name)

    final = head(depth, "final")
    if not deep_supervision:
        return keras.Model(inputs, final, name=name)
    sides = [head(j, f"side{j}") for j in range(1, depth)]
    return keras.Model(inputs, sides + [final], name=name)
