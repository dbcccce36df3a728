"""``import kerasmed`` registers every Keras object a kerasmed checkpoint can name, so that
``keras.saving.load_model`` works after it, without making ``import kerasmed`` import Keras.

Importing Keras means importing its backend (TensorFlow: seconds), which every
``kerasmed-* --help`` would then pay. So registration follows Keras instead of pulling it in:
if Keras is already imported, ``install`` registers at once; otherwise it leaves a finder on
``sys.meta_path`` that registers as soon as Keras has been imported. When Keras is first
imported from inside a kerasmed module (``import kerasmed.models``), registering there would
import modules that are half-initialised; it waits until no kerasmed module is being
imported any more, which the finder sees because it also watches kerasmed's own modules.
Keras-based packages that import Keras eagerly (keras_hub, segmentation_models) get the same
``load_model`` behaviour at the cost of a slow import.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys

__all__ = ["REGISTERING_MODULES", "install", "registered"]

#: The modules whose import registers kerasmed's losses, metrics, layers and loss wrappers.
REGISTERING_MODULES = ("kerasmed.losses", "kerasmed.metrics", "kerasmed.models",
                       "kerasmed.training.aux_weight")

_state = {"registered": False, "pending": False}


def registered() -> bool:
    """Whether kerasmed's Keras objects are registered in this process."""
    return _state["registered"]


def _importing_kerasmed(current: str | None = None) -> bool:
    """Whether a kerasmed module other than ``current`` is being imported right now."""
    for name, module in list(sys.modules.items()):
        if name == current or not (name == "kerasmed" or name.startswith("kerasmed.")):
            continue
        if getattr(getattr(module, "__spec__", None), "_initializing", False):
            return True
    return False


def _register(current: str | None = None) -> None:
    if _state["registered"] or _importing_kerasmed(current):
        return
    _state["registered"] = True
    _state["pending"] = False
    _uninstall()
    for name in REGISTERING_MODULES:
        importlib.import_module(name)


class _Loader(importlib.abc.Loader):
    """A module's own loader, then registration if it is due."""

    def __init__(self, loader, name):
        self._loader = loader
        self._name = name

    def __getattr__(self, attribute):  # get_source, get_resource_reader, ... as before
        return getattr(self._loader, attribute)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        if self._name == "keras":
            _state["pending"] = True
        if _state["pending"]:
            _register(current=self._name)


class _Finder(importlib.abc.MetaPathFinder):
    """Watches the import of Keras and of kerasmed's modules (the rest of ``sys.meta_path``
    finds them)."""

    def find_spec(self, name, path=None, target=None):
        if name != "keras" and not name.startswith("kerasmed."):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader, name)
        return spec


_finder = _Finder()


def _uninstall() -> None:
    if _finder in sys.meta_path:
        sys.meta_path.remove(_finder)


def install() -> None:
    """Register kerasmed's Keras objects now if Keras is imported, else as soon as it is."""
    if _state["registered"]:
        return
    if "keras" in sys.modules:
        _state["pending"] = True
        # Called from kerasmed/__init__.py, the one kerasmed module being imported now.
        _register(current="kerasmed")
    elif _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
