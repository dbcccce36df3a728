"""kerasmed model builders.

Every builder is a function that returns a named ``keras.Model`` and is registered, so that
``build(name, **params)`` and experiment files reach it by name. ``list_models()`` lists them.
"""

from kerasmed.models.registry import build, default_config, get_spec, list_models, register_model

# Importing a builder module registers its networks.
from kerasmed.models.unet import unet  # noqa: E402

__all__ = ["build", "default_config", "get_spec", "list_models", "register_model", "unet"]
