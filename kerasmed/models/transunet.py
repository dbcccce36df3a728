"""TransUNet (Chen et al., "TransUNet: Transformers Make Strong Encoders for Medical Image
Segmentation", arXiv:2102.04306, 2021).

A CNN encoder down to 1/16 of the input, a Vision Transformer on the feature map's patches
(linear patch embedding, learned position embeddings, pre-norm multi-head self-attention
blocks), and a cascaded upsampler (CUP): the tokens reshaped to a map, a 3x3 conv, then four
2x bilinear-upsampling stages of two 3x3 conv-BN-ReLU, joined to the CNN's features at 1/8,
1/4 and 1/2 by skip connections, and a 3x3 conv head.

The paper's R50-ViT-B/16 is ``transunet()`` at its defaults: the ResNet-50 encoder of
``keras.applications`` (through ``kerasmed.models.encoders``, so ``encoder_weights`` takes
``"imagenet"`` or a file, offline-safe), 12 transformer layers, hidden size 768, MLP 3072,
12 heads, patch size 1 on the 1/16 map. ``encoder="cnn"`` gives a small plain CNN encoder and
``encoder=None`` the paper's ViT-only variant (16x16 patches of the image, no skips).
"""

from __future__ import annotations

import keras
from keras import layers

from kerasmed.models.blocks import check_input_size, conv_bn_act
from kerasmed.models.encoders.front import backbone_front, finish_model
from kerasmed.models.registry import register_model
from kerasmed.models.transformer_blocks import PositionEmbedding, vit_block

__all__ = ["transunet"]

_AUTO = "auto"
_SKIP_STRIDES = (8, 4, 2)


def _cnn_encoder(inputs, filters):
    """Four levels of a strided 3x3 conv-BN-ReLU and a 3x3 conv-BN-ReLU (filters, 2f, 4f,
    8f); returns ``{stride: feature}`` for strides 2, 4, 8, 16."""
    x, features = inputs, {}
    for level, stride in enumerate((2, 4, 8, 16)):
        f = filters * 2**level
        x = conv_bn_act(x, f, 3, strides=2, name=f"cnn{level + 1}_down")
        x = conv_bn_act(x, f, 3, name=f"cnn{level + 1}_conv")
        features[stride] = x
    return features


def _vision_transformer(x, patch_size, hidden_size, num_layers, num_heads, mlp_dim, dropout,
                        attention_dropout):
    """Patch embedding, position embeddings, ``num_layers`` ViT blocks and the final norm;
    returns the tokens reshaped to their ``(h, w, hidden_size)`` grid."""
    x = layers.Conv2D(hidden_size, patch_size, strides=patch_size,
                      name="transformer_patch_embed")(x)
    grid = x.shape[1:3]
    if None in grid:
        raise ValueError("transunet needs a fixed input size (its position embeddings have one "
                         "entry per patch)")
    x = layers.Reshape((grid[0] * grid[1], hidden_size), name="transformer_tokens")(x)
    x = PositionEmbedding(name="transformer_position_embedding")(x)
    if dropout:
        x = layers.Dropout(dropout, name="transformer_embed_drop")(x)
    for i in range(num_layers):
        x = vit_block(x, num_heads, mlp_dim, name=f"transformer_layer{i + 1}", dropout=dropout,
                      attention_dropout=attention_dropout)
    x = layers.LayerNormalization(epsilon=1e-6, name="transformer_encoder_norm")(x)
    return layers.Reshape((grid[0], grid[1], hidden_size), name="transformer_grid")(x)


@register_model(
    "transunet",
    description="TransUNet (Chen et al. 2021): CNN encoder, ViT on the 1/16 feature map's "
                "patches and a cascaded upsampler with skips",
    defaults={"encoder_weights": "imagenet"},
)
def transunet(input_shape=(224, 224, 3), classes=1, activation=_AUTO, encoder="resnet50",
              encoder_weights=None, encoder_freeze=False, filters=64, hidden_size=768,
              num_layers=12, num_heads=12, mlp_dim=3072, patch_size=None, dropout=0.1,
              attention_dropout=0.0, decoder_filters=(256, 128, 64, 16), decoder_conv_filters=512,
              n_skip=3, name="transunet"):
    """Build a TransUNet (Chen et al. 2021, arXiv:2102.04306).

    Args:
        input_shape: ``(H, W, C)``, fixed, H and W divisible by 16 (and by the encoder's
            own constraints); images are floats in [0, 1].
        classes: output channels.
        activation: head activation; ``"auto"``: sigmoid for one class, softmax for several;
            ``None``: logits.
        encoder: ``"resnet50"`` (the paper's R50, here ``keras.applications.ResNet50`` cut
            after its stride-16 stage) or any other ``kerasmed.models.encoders`` encoder
            (features at strides 2, 4, 8 and 16, C = 1 or 3, its input scaling inside the
            model); ``"cnn"``: a small CNN of four strided levels with ``filters`` * (1, 2,
            4, 8) channels; ``None``: no CNN, the ViT takes 16x16 patches of the image and
            the decoder has no skips (the paper's ViT-only baseline).
        encoder_weights: for a ``keras.applications`` encoder: ``None`` (random, the
            default: nothing is downloaded), ``"imagenet"`` (Keras' cache, or a download; an
            offline machine gets ``WeightsUnavailableError`` naming the file) or a file path.
            The paper pretrained R50 and ViT on ImageNet; there are no ViT weights here.
        encoder_freeze: make a ``keras.applications`` encoder non-trainable.
        filters: width of the ``"cnn"`` encoder's first level (ignored otherwise).
        hidden_size, num_layers, num_heads, mlp_dim: the transformer (ViT-B: 768, 12, 12,
            3072).
        patch_size: side of the patches embedded from the encoder's 1/16 map; ``None``: 1
            with a CNN encoder, 16 without (the token grid is always 1/16 of the input).
        dropout, attention_dropout: the transformer's dropout rates (0.1 and 0.0, as the
            reference).
        decoder_filters: the cascaded upsampler's four stages (256, 128, 64, 16).
        decoder_conv_filters: the 3x3 conv-BN-ReLU that first maps the transformer's grid
            to a feature map (512).
        n_skip: how many skips the decoder takes (3: strides 8, 4, 2; 0 to 3).
        name: the model's name.

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images to ``(batch, H, W, classes)``.
        Parameters at the defaults (R50-ViT-B/16, 224x224x3, one class): 101,957,841; the
        authors' code counts 105,275,921, because its R50 has 9 units in the third stage
        where ``keras.applications.ResNet50`` has 6 (see docs/models.md).
    """
    if len(decoder_filters) != 4:
        raise ValueError(f"decoder_filters needs 4 entries (1/16 -> 1), got {decoder_filters}")
    if not 0 <= n_skip <= 3:
        raise ValueError(f"n_skip must be 0 to 3, got {n_skip}")
    if patch_size is None:
        patch_size = 16 if encoder is None else 1
    token_stride = patch_size * (1 if encoder is None else 16)
    if token_stride != 16:
        raise ValueError(f"the token grid must be 1/16 of the input (the upsampler has four 2x "
                         f"stages): patch_size {patch_size} with encoder {encoder!r} gives "
                         f"1/{token_stride}")
    input_shape = tuple(input_shape)
    check_input_size(input_shape, 16, "transunet")
    backbone = None
    if encoder in (None, "cnn"):
        inputs = keras.Input(input_shape, name="image")
        features = _cnn_encoder(inputs, filters) if encoder == "cnn" else {16: inputs}
    else:
        inputs, features, backbone = backbone_front(encoder, input_shape, encoder_weights,
                                                    (2, 4, 8, 16), stride_check=16)
        if 16 not in features:
            raise ValueError(f"encoder {encoder!r} has no stride-16 feature")
    x = _vision_transformer(features[16], patch_size, hidden_size, num_layers, num_heads,
                            mlp_dim, dropout, attention_dropout)
    x = conv_bn_act(x, decoder_conv_filters, 3, name="decoder_conv_more")
    for stage, f in enumerate(decoder_filters):
        x = layers.UpSampling2D(2, interpolation="bilinear",
                                name=f"decoder_stage{stage + 1}_upsampling")(x)
        skip = features.get(_SKIP_STRIDES[stage]) if stage < n_skip else None
        if skip is not None:
            x = layers.Concatenate(name=f"decoder_stage{stage + 1}_concat")([x, skip])
        x = conv_bn_act(x, f, 3, name=f"decoder_stage{stage + 1}a")
        x = conv_bn_act(x, f, 3, name=f"decoder_stage{stage + 1}b")
    return finish_model(inputs, x, backbone, classes=classes, activation=activation,
                        encoder_freeze=encoder_freeze and backbone is not None, weights=None,
                        name=name)
