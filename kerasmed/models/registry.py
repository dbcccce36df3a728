"""One registry to build any kerasmed network by name.

Experiment files and notebooks use the same names::

    from kerasmed.models import build
    model = build("unet", input_shape=(128, 128, 3), filters=16, depth=3)

Each entry records the builder, a documented default configuration (the paper's, where there is
one) and a one-line description, in the manner of timm's model registry.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from kerasmed.names import unknown_name_message

__all__ = ["ModelSpec", "register_model", "build", "get_spec", "list_models", "default_config",
           "task_of", "TASKS"]

TASKS = ("segmentation", "classification")


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about one network.

    ``paper`` holds only the keyword arguments where the paper's configuration differs from
    the builder's own defaults; ``defaults`` is the builder's signature defaults with those
    applied, so the documented configuration cannot drift from the code.
    """

    name: str
    builder: Callable[..., Any]
    task: str
    description: str
    paper: dict = field(default_factory=dict)

    def _keyword_parameters(self):
        return [p for p in inspect.signature(self.builder).parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    def parameters(self) -> list[str]:
        """Names of the keyword arguments the builder accepts."""
        return [p.name for p in self._keyword_parameters()]

    def signature_defaults(self) -> dict:
        """The builder's own keyword defaults (``name`` left out)."""
        return {p.name: p.default for p in self._keyword_parameters()
                if p.default is not p.empty and p.name != "name"}

    @property
    def defaults(self) -> dict:
        """The documented default (paper) configuration, as keyword arguments."""
        return {**self.signature_defaults(), **self.paper}


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, *, task: str = "segmentation", description: str = "",
                   defaults=None):
    """Decorator that adds a builder to the registry under ``name``.

    ``defaults`` lists only the keyword arguments where the paper's configuration differs from
    the builder's own defaults (usually none: builders default to their paper). ``build`` does
    not apply them (the builder's own defaults do); ``default_config`` shows the paper's
    configuration. Raises ``ValueError`` for a name registered twice, or a ``defaults`` entry
    that the builder does not take or that repeats its default.
    """

    if task not in TASKS:
        raise ValueError(f"model {name!r}: task must be one of {TASKS}, got {task!r}")

    def decorator(builder):
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered")
        doc = description or (inspect.getdoc(builder) or "").split("\n", 1)[0]
        spec = ModelSpec(name, builder, task, doc, dict(defaults or {}))
        signature = spec.signature_defaults()
        for key, value in spec.paper.items():
            if key not in spec.parameters():
                raise ValueError(f"model {name!r}: paper configuration key {key!r} is not a "
                                 f"parameter of {builder.__name__}")
            if key in signature and signature[key] == value:
                raise ValueError(f"model {name!r}: paper configuration {key}={value!r} repeats "
                                 f"the builder's default; leave it out")
        _REGISTRY[name] = spec
        return builder

    return decorator


def _ensure_loaded():
    # Builders register themselves on import; importing the package imports them all.
    import kerasmed.models  # noqa: F401


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


def task_of(network) -> str:
    """The task of a network: ``"segmentation"`` or ``"classification"``.

    ``network`` is a registered name (the registry's entry decides), or a built model that
    carries no registry name (a bare ``.keras`` file): a classifier's last output is
    ``(batch, classes)``, a segmentation network's a map.
    """
    if isinstance(network, str):
        return get_spec(network).task
    return "classification" if len(network.outputs[-1].shape) == 2 else "segmentation"


def default_config(name: str) -> dict:
    """The documented default (paper) configuration of a network, as keyword arguments: the
    builder's signature defaults with the registry's paper entries applied."""
    return get_spec(name).defaults


def build(name: str, **params):
    """Build the network registered as ``name`` with keyword ``params``; returns a ``keras.Model``."""
    spec = get_spec(name)
    allowed = spec.parameters()
    for key in params:
        if key not in allowed:
            raise TypeError(unknown_name_message(f"parameter of model {name!r}", key, allowed))
    return spec.builder(**params)
