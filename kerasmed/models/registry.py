"""One registry to build any kerasmed network by name.

Experiment files and notebooks use the same names::

    from kerasmed.models import build
    model = build("unet", input_shape=(128, 128, 3), filters=16, depth=3)

Each entry records the builder, a documented default configuration (the paper's, where there is
one) and a one-line description, in the manner of timm's model registry.
"""

from __future__ import annotations

import difflib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["ModelSpec", "register_model", "build", "get_spec", "list_models", "default_config"]


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one network."""

    name: str
    builder: Callable[..., Any]
    task: str
    description: str
    defaults: dict = field(default_factory=dict)

    def parameters(self) -> list[str]:
        """Names of the keyword arguments the builder accepts."""
        return [
            p.name
            for p in inspect.signature(self.builder).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, *, task: str = "segmentation", description: str = "", defaults=None):
    """Decorator that adds a builder to the registry under ``name``.

    ``defaults`` documents the configuration the paper used; ``build`` does not apply it (the
    builder's own keyword defaults do), so a user can see both with ``default_config``.
    """

    def decorator(builder):
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered")
        doc = description or (inspect.getdoc(builder) or "").split("\n", 1)[0]
        _REGISTRY[name] = ModelSpec(name, builder, task, doc, dict(defaults or {}))
        return builder

    return decorator


def _ensure_loaded():
    # Builders register themselves on import; importing the package imports them all.
    import kerasmed.models  # noqa: F401


def unknown_name_message(kind: str, name: str, choices) -> str:
    """Message for an unknown name that suggests the nearest valid one."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}.{hint} Valid names: {', '.join(sorted(choices))}"


def get_spec(name: str) -> ModelSpec:
    """Return the registry entry for ``name``; raises ``KeyError`` naming the nearest valid name."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise KeyError(unknown_name_message("model", name, _REGISTRY))
    return _REGISTRY[name]


def list_models(task: str | None = None) -> list[str]:
    """Sorted names of the registered networks, optionally only those of one ``task``."""
    _ensure_loaded()
    return sorted(n for n, s in _REGISTRY.items() if task is None or s.task == task)


def default_config(name: str) -> dict:
    """The documented default (paper) configuration of a network, as keyword arguments."""
    return dict(get_spec(name).defaults)


def build(name: str, **params):
    """Build the network registered as ``name`` with keyword ``params``; returns a ``keras.Model``."""
    spec = get_spec(name)
    allowed = spec.parameters()
    for key in params:
        if key not in allowed:
            raise TypeError(unknown_name_message(f"parameter of model {name!r}", key, allowed))
    return spec.builder(**params)
