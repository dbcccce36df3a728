"""Checking an experiment against ``SCHEMA``: every key, type, choice and value, then the checks
across keys (the model's parameters, the backbone's normalisation, the task's defaults) and,
before training, of this machine (the dataset folder, the cluster, the memory a batch needs).
Returns the experiment with every default filled in, or raises ``ConfigError`` listing every
problem, each naming the file and the key."""

from __future__ import annotations

import copy
import inspect
import warnings
from pathlib import Path

from kerasmed.data.memory import physical_memory_bytes
from kerasmed.data.readers import READERS
from kerasmed.data.synthetic import SYNTHETIC_DATASETS
from kerasmed.experiment.schema import (CLASSIFICATION_DEFAULTS, REQUIRED, SCHEMA,
                                         USUAL_LEARNING_RATE, ConfigError, is_number,
                                         unknown_key_message)
from kerasmed.models.registry import get_spec
from kerasmed.names import KerasmedWarning, did_you_mean
from kerasmed.training.tf_distribute import TFConfigError, check_cluster

__all__ = ["validate_config", "section_defaults"]


_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               list: "a list", dict: "an object", type(None): "null"}


def _type_ok(value, types):
    if isinstance(value, bool):
        return bool in types
    return isinstance(value, types)


def _check(raw, schema, where, path, problems, out):
    for key in raw:
        if key not in schema:
            problems.append(f"{where}: {path}{key}: "
                            + unknown_key_message("key", key, schema)
                            + f" Valid keys: {', '.join(schema)}")
    for key, spec in schema.items():
        dotted = f"{path}{key}"
        if isinstance(spec, dict):
            sub = raw.get(key, {})
            if not isinstance(sub, dict):
                problems.append(f"{where}: {dotted}: expected an object, got {sub!r}")
                continue
            out[key] = {}
            _check(sub, spec, where, dotted + ".", problems, out[key])
            continue
        if key not in raw:
            if spec.default is REQUIRED:
                problems.append(f"{where}: {dotted}: required key is missing")
            else:
                out[key] = copy.deepcopy(spec.default)
            continue
        value = raw[key]
        if not _type_ok(value, spec.types):
            expected = " or ".join(_TYPE_NAMES[t] for t in spec.types)
            problems.append(f"{where}: {dotted}: expected {expected}, got {value!r}")
            continue
        if spec.choices is not None and value not in spec.choices:
            problems.append(f"{where}: {dotted}: {value!r} is not one of "
                            f"{', '.join(map(repr, spec.choices))}."
                            f"{did_you_mean(value, spec.choices)}")
            continue
        message = spec.check(value) if spec.check else None
        if message:
            problems.append(f"{where}: {dotted}: {message}")
            continue
        out[key] = value


def _check_model_params(config, where, problems):
    try:
        spec = get_spec(config["model"]["name"])
    except (KeyError, TypeError):
        return  # already reported
    allowed = spec.parameters()
    for key in config["model"]["params"]:
        if key == "input_shape":
            problems.append(f"{where}: model.params.input_shape: set data.image_size and "
                            f"data.channels instead; the input shape is taken from them")
        elif key not in allowed:
            problems.append(f"{where}: model.params.{key}: "
                            + unknown_key_message(f"parameter of model {spec.name!r}", key,
                                                   allowed)
                            + f" Valid parameters: {', '.join(allowed)}")


def _check_backbone_normalization(config, where, problems):
    """A pretrained-backbone model scales its inputs itself; the loader must not do it too."""
    normalization = config["data"]["normalization"]
    method = normalization.get("method") if isinstance(normalization, dict) else normalization
    if method != "backbone":
        return
    try:
        spec = get_spec(config["model"]["name"])
    except (KeyError, TypeError):
        return  # already reported
    if "backbone_name" in spec.parameters():
        problems.append(f"{where}: data.normalization: {method!r} would apply the backbone's "
                        f"preprocessing twice: model {spec.name!r} already preprocesses inside "
                        f"the model and expects images in [0, 1]; use \"auto\" (or "
                        f"\"dtype_range\") instead")


def _check_dataset(config, where, problems):
    data = config["data"]
    if data["dataset"] in SYNTHETIC_DATASETS:
        return  # generated into root on first use
    root = Path(data["root"])
    if root.is_file():
        problems.append(f"{where}: data.root: {root.resolve()} is a file; give the dataset's "
                        f"folder")
    elif not root.is_dir():
        problems.append(f"{where}: data.root: dataset folder {root.resolve()} does not exist")
    params = inspect.signature(READERS[data["dataset"]]).parameters
    for key in data["options"]:
        if key == "root" or key not in params:
            problems.append(f"{where}: data.options.{key}: "
                            + unknown_key_message(f"option of the {data['dataset']!r} reader",
                                                   key, [p for p in params if p != "root"]))
    if data["groups"] is not None and not Path(data["groups"]).is_file():
        problems.append(f"{where}: data.groups: file {Path(data['groups']).resolve()} does not "
                        f"exist")


def _apply_task_defaults(raw, config):
    if get_spec(config["model"]["name"]).task != "classification":
        return
    given = raw.get("training", {})
    for key, value in CLASSIFICATION_DEFAULTS.items():
        if key not in given:
            config["training"][key] = copy.deepcopy(value)


def _check_distribution(config, where, problems):
    if config["training"]["distribution"] == "multi_worker":
        try:
            check_cluster()
        except TFConfigError as err:
            problems.append(f"{where}: training.distribution: {err}")


def _check_memory(config, where, problems):
    """One batch of input images (float32) must fit in a quarter of this machine's memory:
    a network's activations are many times that, so a larger input cannot train here."""
    data, batch = config["data"], config["training"]["batch_size"]
    h, w = data["image_size"]
    needed = batch * h * w * data["channels"] * 4
    memory = physical_memory_bytes()
    if memory and needed > memory / 4:
        problems.append(f"{where}: data.image_size: {h}x{w} with {data['channels']} channel(s) "
                        f"and training.batch_size {batch}: one batch of input images alone "
                        f"takes {needed / 2**30:.1f} GiB, more than a quarter of this machine's "
                        f"{memory / 2**30:.0f} GiB, before the network's activations; use a "
                        f"smaller image_size (data.fit \"patches\" or \"tile\" trains on "
                        f"windows of large images)")



def _optimizer_warnings(config, where):
    lr = config["training"]["optimizer"].get("learning_rate")
    low, high = USUAL_LEARNING_RATE
    if is_number(lr) and not low <= lr <= high:
        warnings.warn(f"{where}: training.optimizer.learning_rate {lr} is far outside the usual "
                      f"range [{low:g}, {high:g}]; training may diverge (too high) or not move "
                      f"(too low)", KerasmedWarning, stacklevel=3)



def validate_config(raw: dict, where: str = "<config>", preflight: bool = True) -> dict:
    """Check an experiment dictionary and return it with every default filled in.

    ``preflight`` also checks this machine for training: the dataset folder exists, a
    ``multi_worker`` run has its ``TF_CONFIG``, a batch fits in memory. A trained run's saved
    config is read without them (``preflight=False``), so that a run folder evaluates,
    predicts and exports on any machine, wherever its training data went.

    Raises ``ConfigError`` listing every problem found, each prefixed with ``where`` (the file).
    """
    if not isinstance(raw, dict):
        raise ConfigError([f"{where}: the experiment must be a JSON object"])
    problems: list[str] = []
    config: dict = {}
    _check(raw, SCHEMA, where, "", problems, config)
    if not problems:
        _apply_task_defaults(raw, config)
        _check_model_params(config, where, problems)
        _check_backbone_normalization(config, where, problems)
        if preflight:
            _check_dataset(config, where, problems)
            _check_distribution(config, where, problems)
            _check_memory(config, where, problems)
    if problems:
        raise ConfigError(problems)
    _optimizer_warnings(config, where)
    return config


def section_defaults(section: str) -> dict:
    """The default settings of the experiment section ``section`` (``"training"``, ...), as a
    fresh dictionary: what an experiment that leaves the section out runs with. Raises
    ``ConfigError`` for a section with required keys."""
    problems, out = [], {}
    _check({}, SCHEMA[section], "<defaults>", f"{section}.", problems, out)
    if problems:
        raise ConfigError(problems)
    return out
