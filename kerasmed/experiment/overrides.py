"""``--set KEY=VALUE``: parsing an override, setting a dotted key (numbers index lists) in a raw
experiment, and naming the ``--set`` at fault in a problem the validation finds."""

from __future__ import annotations

import copy
import json

from kerasmed.experiment.schema import SCHEMA, ConfigError, Field

__all__ = ["parse_override", "set_path", "KeyPathError", "apply_overrides", "blame_override"]


def parse_override(text: str):
    """Parse a ``--set`` override ``dotted.key=VALUE`` (VALUE as JSON, else a plain string).

    Returns ``(["dotted", "key"], value)``.
    """
    if "=" not in text:
        raise ConfigError([f"--set {text}: expected KEY=VALUE, for example training.epochs=2"])
    key, value = text.split("=", 1)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return key.strip().split("."), parsed


class KeyPathError(KeyError):
    """A dotted key ``set_path`` cannot set. ``args[0]`` says why, naming the key;
    ``parent`` is the key (a list of parts) whose value is not an object that the next part
    can name (a number, a string, a list and a part that is not an index), or ``None`` when
    the path is wrong in another way (a list index out of range, an item of a missing
    list)."""

    def __init__(self, message, parent=None):
        super().__init__(message)
        self.parent = parent


def set_path(raw: dict, keys, value, fresh=None):
    """Set the value at ``keys`` (``"a.b.0.c"`` or its parts; numbers index lists) in ``raw``.

    A missing object on the way is created: ``fresh(parts)`` (the parts up to it) gives its
    starting value, or ``None`` for an empty object. Raises ``KeyPathError`` naming the part
    that cannot be reached.
    """
    parts = keys.split(".") if isinstance(keys, str) else list(keys)
    node = raw
    for i, part in enumerate(parts):
        where = ".".join(parts[:i + 1])
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise KeyPathError(f"{where}: the list has {len(node)} item(s)",
                                   None if part.isdigit() else parts[:i])
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if part not in node:
                    start = fresh(parts[:i + 1]) if fresh is not None else None
                    if start is None and parts[i + 1].isdigit():
                        raise KeyPathError(f"{where}: not in the experiment, so it has no item "
                                           f"{parts[i + 1]}")
                    node[part] = {} if start is None else start
                node = node[part]
        else:
            problem = "its parent is" if last else "is"
            raise KeyPathError(f"{where}: {problem} not an object or a list", parts[:i])


def _schema_default(parts):
    """The starting value of a missing object at ``parts``: a copy of its setting's default
    when that is an object or a list (``training.optimizer``), else an empty object (a key
    the schema does not know is then named by the validation, with the nearest valid one)."""
    schema = SCHEMA
    for k in parts[:-1]:
        schema = schema.get(k) if isinstance(schema, dict) else None
    spec = schema.get(parts[-1]) if isinstance(schema, dict) else None
    if isinstance(spec, Field) and isinstance(spec.default, (dict, list)):
        return copy.deepcopy(spec.default)
    return {}


def apply_overrides(raw: dict, overrides=(), where: str = "<config>") -> dict:
    """Set each ``KEY=VALUE`` override (``kerasmed-train --set``) in the raw experiment ``raw``
    (numbers in KEY index lists: ``data.augmentation.0.probability``).

    Returns ``raw``, changed in place; raises ``ConfigError`` naming the override at fault.
    """
    for override in overrides:
        keys, value = parse_override(override)
        # A key inside an object-valued setting (training.optimizer.learning_rate) starts
        # from that setting's default, so the rest of the default is kept.
        try:
            set_path(raw, keys, value, fresh=_schema_default)
        except KeyPathError as err:
            problem = err.args[0] if err.parent is None else f"{err.parent[-1]} is not an object"
            raise ConfigError([f"--set {override}: {problem}"]) from None
    return raw



def blame_override(problem: str, where: str, overrides) -> str:
    """A problem with a key that ``--set`` gave (or a key inside it, or the object holding it)
    names the ``--set`` argument, not the experiment file: the last one of that key, whose
    value is the one in force."""
    if not problem.startswith(f"{where}: "):
        return problem
    rest = problem[len(where) + 2:]
    dotted = rest.split(":", 1)[0]
    for override in reversed(list(overrides)):
        key = override.split("=", 1)[0].strip()
        if key == dotted or key.startswith(dotted + ".") or dotted.startswith(key + "."):
            return f"--set {override}: {rest}"
    return problem
