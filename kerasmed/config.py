"""Experiment files under their earlier import path: the schema lives in
``kerasmed.experiment.schema`` and is re-exported here."""

from kerasmed.experiment.schema import (DATASETS, PRECISIONS, SCHEMA, ConfigError, Field,
                                        apply_overrides, load_config, parse_override,
                                        read_experiment, validate_config)

__all__ = ["ConfigError", "Field", "SCHEMA", "DATASETS", "PRECISIONS", "load_config",
           "read_experiment", "validate_config", "parse_override", "apply_overrides"]
