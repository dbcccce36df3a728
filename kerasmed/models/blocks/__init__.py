"""Building blocks shared by kerasmed's networks, one module per family of block. Each block lives
here once and is imported (``from kerasmed.models.blocks import conv_bn_act`` keeps working).

Every helper takes a ``name`` prefix and names each layer it creates from it, so that summaries,
checkpoints and Grad-CAM can find layers by readable names.

- ``generic``: conv-BN-activation, the double conv, upsampling, the segmentation head, checks;
- ``unet``: attention gate, recurrent residual, residual, ASPP and CBAM blocks (U-Net family);
- ``decoders``: segmentation_models' Unet / Linknet / FPN / PSPNet decoder blocks;
- ``multires``: MultiResUNet and DRRMSAN blocks.
"""

from kerasmed.models.blocks.generic import (conv_bn_act, conv_block, upsample, segmentation_head,
                                            check_input_size, check_depth, check_choice,
                                            default_activation)  # noqa: F401
from kerasmed.models.blocks.unet import (UPSAMPLING_MODES, decoder_upsample, attention_gate,
                                         gated_skip_concat, recurrent_conv, rrcnn_block,
                                         residual_block, aspp, cbam, ChannelPool,
                                         SpatialBroadcast)  # noqa: F401
from kerasmed.models.blocks.decoders import (unet_decoder_block, linknet_decoder_block,
                                             fpn_block, psp_pyramid_level)  # noqa: F401
from kerasmed.models.blocks.multires import (conv2d_bn, multires_widths, multires_block,
                                             res_path, MinPooling2D, min_pool, multi_branch_gate)  # noqa: F401

__all__ = ["conv_bn_act", "conv_block", "upsample", "segmentation_head", "check_input_size",
           "check_depth", "check_choice",
           "default_activation", "UPSAMPLING_MODES", "decoder_upsample", "attention_gate",
           "gated_skip_concat", "recurrent_conv", "rrcnn_block", "residual_block", "aspp", "cbam",
           "ChannelPool", "SpatialBroadcast", "unet_decoder_block", "linknet_decoder_block",
           "fpn_block", "psp_pyramid_level", "conv2d_bn", "multires_widths", "multires_block",
           "res_path", "MinPooling2D", "min_pool", "multi_branch_gate"]
