"""U-Net with switchable parts: residual encoder, ASPP bottleneck, CBAM and attention-gated skips.

From the polyp-segmentation project whose PyTorch "U-Net + [residual, ASPP, CBAM, Up-Attention]
parts" were ablated one at a time. Registered as ``unet_parts``: each part is a flag, so an
ablation is a config change.
"""

from __future__ import annotations

from kerasmed.models.registry import register_model
from kerasmed.models.unet import unet_graph

__all__ = ["unet_parts"]

_AUTO = "auto"


@register_model(
    "unet_parts",
    description="U-Net with switchable residual encoder, ASPP, CBAM and attention-gated skips",
)
def unet_parts(input_shape=(256, 256, 3), classes=1, activation=_AUTO, filters=64, depth=4,
               batch_norm=True, dropout=0.0, upsampling="transpose", residual=True, aspp=True,
               cbam=True, attention=True, gate_reduction=2, aspp_rates=(6, 12, 18),
               cbam_reduction=16, name="unet_parts"):
    """Build a U-Net whose extra parts can each be switched on or off.

    Parts (all on by default, as in the polyp project's full model):

    - ``residual``: encoder and bottleneck blocks are two 3x3 conv-BN(-ReLU) with an identity or
      1x1-projection shortcut (He et al. 2016).
    - ``aspp``: atrous spatial pyramid pooling after the bottleneck (DeepLabv3, Chen et al. 2017,
      arXiv:1706.05587): 1x1 conv, 3x3 convs at ``aspp_rates``, image pooling, each with a
      quarter of the bottleneck's filters; concatenated and projected back by a 1x1 conv.
    - ``cbam``: CBAM after every encoder and decoder block (Woo et al. 2018, arXiv:1807.06521):
      channel attention with a shared MLP (reduction ``cbam_reduction``) over average- and
      max-pooled features, then spatial attention from a 7x7 conv over channel mean and max.
    - ``attention``: Oktay's additive attention gate on each skip (arXiv:1804.03999), inter
      channels = gating channels // ``gate_reduction``.

    With every part off the model is ``unet`` with the same arguments, layer for layer and with
    the same layer names, so weights transfer between them. The project's PyTorch code placed
    the parts less regularly (ASPP before the bottleneck convs, shortcuts from pooled inputs,
    CBAM on three encoder levels); this builder follows the cleaner description above.

    Args:
        input_shape, classes, activation, filters, depth, batch_norm, dropout, upsampling, name:
            as for ``unet``.
        residual, aspp, cbam, attention: switch the parts.
        gate_reduction, aspp_rates, cbam_reduction: the parts' settings.

    Returns:
        A ``keras.Model`` mapping ``(batch, H, W, C)`` images to ``(batch, H, W, classes)``.

    Parameters (256x256x3, one class): 41,118,329 with every part on (the defaults); no
    reference count exists (the project's PyTorch model is arranged differently). Every part
    off: 31,049,409, the same as ``unet()``.
    """
    return unet_graph(input_shape, classes, activation, filters, depth, batch_norm, dropout,
                      upsampling, name, attention=attention, gate_reduction=gate_reduction,
                      residual=residual, aspp=aspp, aspp_rates=tuple(aspp_rates), cbam=cbam,
                      cbam_reduction=cbam_reduction)
