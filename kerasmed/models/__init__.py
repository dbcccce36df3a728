"""kerasmed model builders.

Every builder is a function that returns a named ``keras.Model`` and is registered, so that
``build(name, **params)`` and experiment files reach it by name. ``list_models()`` lists them.
"""

from kerasmed.models.registry import build, default_config, get_spec, list_models, register_model

# Importing a builder module registers its networks.
from kerasmed.models.unet import attention_unet, unet  # noqa: E402
from kerasmed.models.r2unet import attention_r2unet, r2unet  # noqa: E402
from kerasmed.models.unet_parts import unet_parts  # noqa: E402
from kerasmed.models.multiresunet import multiresunet  # noqa: E402
from kerasmed.models.drrmsan import drrmsan  # noqa: E402
from kerasmed.models.backbone_models import FPN, Linknet, PSPNet, Unet  # noqa: E402
from kerasmed.models.kidney_segnet import kidney_segnet  # noqa: E402
from kerasmed.models.micronet import micronet  # noqa: E402
from kerasmed.models.residual_attention import residual_attention_network  # noqa: E402
from kerasmed.models.unet_plus_plus import unet_plus_plus  # noqa: E402
from kerasmed.models.unet_3plus import unet_3plus  # noqa: E402
from kerasmed.models.u2net import u2net  # noqa: E402
from kerasmed.models.vnet import vnet_2d  # noqa: E402
from kerasmed.models.resunet_a import resunet_a  # noqa: E402
from kerasmed.models.transunet import transunet  # noqa: E402
from kerasmed.models.swin_unet import swin_unet  # noqa: E402
from kerasmed.models.backbone_unetpp import UnetPlusPlus  # noqa: E402
from kerasmed.models.deeplab import DeepLabV3Plus  # noqa: E402
from kerasmed.models.planned_unet import planned_unet  # noqa: E402

__all__ = ["build", "default_config", "get_spec", "list_models", "register_model", "unet",
           "attention_unet", "r2unet", "attention_r2unet", "unet_parts", "multiresunet",
           "drrmsan", "Unet", "FPN", "Linknet", "PSPNet", "kidney_segnet", "micronet",
           "residual_attention_network", "unet_plus_plus", "unet_3plus", "u2net", "vnet_2d",
           "resunet_a", "transunet", "swin_unet", "UnetPlusPlus", "DeepLabV3Plus", "planned_unet"]
