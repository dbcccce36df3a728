"""Experiment files: reading one (``read_experiment``: UTF-8 JSON holding an object, problems
named with the file, line and column) and loading one (``load_config``: read, ``--set``
overrides applied, validated, the name defaulting to the file's stem)."""

from __future__ import annotations

import json
from pathlib import Path

from kerasmed.experiment.overrides import apply_overrides, blame_override
from kerasmed.experiment.schema import ConfigError
from kerasmed.experiment.validate import validate_config

__all__ = ["read_experiment", "load_config"]


def read_experiment(path) -> dict:
    """The raw experiment dictionary of the JSON file ``path``; ``ConfigError`` names the file
    (and the line and column of invalid JSON, text that is not UTF-8, or JSON that is not an
    object)."""
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError([f"{where}: cannot read the experiment file ({err.strerror})"]) from err
    except UnicodeDecodeError as err:
        raise ConfigError([f"{where}: not UTF-8 text (byte {err.start}: {err.reason}); save the "
                           f"experiment file as UTF-8"]) from err
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError([f"{where}: line {err.lineno}, column {err.colno}: invalid JSON: "
                           f"{err.msg}"]) from err
    if not isinstance(raw, dict):
        raise ConfigError([f"{where}: the experiment must be a JSON object, got a JSON "
                           f"{type(raw).__name__}"])
    return raw


def load_config(path, overrides=()) -> dict:
    """Read, override and validate an experiment file.

    ``overrides`` are ``KEY=VALUE`` strings (as from ``kerasmed-train --set``). Returns the full
    configuration with defaults; raises ``ConfigError`` naming the file and each bad key.
    """
    path = Path(path)
    where = str(path)
    raw = apply_overrides(read_experiment(path), overrides, where)
    try:
        config = validate_config(raw, where)
    except ConfigError as err:
        raise ConfigError([blame_override(p, where, overrides) for p in err.problems]) from None
    if config["name"] is None:
        config["name"] = path.stem
    return config
