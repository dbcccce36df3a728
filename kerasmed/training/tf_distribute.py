"""TensorFlow-only distribution: ``tf.distribute`` strategies. The one module importing them.

``MirroredStrategy`` runs synchronous data parallelism over the GPUs of one machine;
``MultiWorkerMirroredStrategy`` over several machines, each described by the ``TF_CONFIG``
environment variable (see ``parse_tf_config``). The batch size in the experiment is the global
batch, split evenly over the replicas.
"""

from __future__ import annotations

import json
import os

__all__ = ["mirrored_strategy", "multi_worker_strategy", "parse_tf_config", "TFConfigError"]


class TFConfigError(ValueError):
    """``TF_CONFIG`` is missing or malformed; the message says which part."""


def parse_tf_config(text: str | None = None) -> dict:
    """Parse and validate a multi-worker ``TF_CONFIG`` (default: the environment variable).

    It must be a JSON object with ``cluster`` (``{"worker": ["host:port", ...]}``, optionally
    ``chief``) and ``task`` (``{"type": "worker" or "chief", "index": i}``) naming one of the
    cluster's entries. Returns the parsed dict; raises ``TFConfigError`` naming the fault.
    """
    text = os.environ.get("TF_CONFIG") if text is None else text
    if not text:
        raise TFConfigError("TF_CONFIG is not set: multi-worker training needs it on every "
                            "worker, e.g. {\"cluster\": {\"worker\": [\"host1:12345\", "
                            "\"host2:12345\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise TFConfigError(f"TF_CONFIG is not valid JSON: {err.msg} at column {err.colno}") \
            from err
    if not isinstance(config, dict):
        raise TFConfigError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not cluster.get("worker") and not cluster.get("chief"):
        raise TFConfigError("TF_CONFIG.cluster must list the workers: {\"worker\": "
                            "[\"host:port\", ...]}")
    for role, addresses in cluster.items():
        if role not in ("worker", "chief", "evaluator", "ps"):
            raise TFConfigError(f"TF_CONFIG.cluster: unknown role {role!r}")
        if not isinstance(addresses, list) or not all(
                isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses):
            raise TFConfigError(f"TF_CONFIG.cluster.{role}: expected a list of \"host:port\" "
                                f"strings, got {addresses!r}")
    if role_count := len(cluster.get("ps", [])):
        raise TFConfigError(f"TF_CONFIG.cluster.ps: {role_count} parameter servers given; "
                            f"MultiWorkerMirroredStrategy is synchronous and uses none")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise TFConfigError(f"TF_CONFIG.task.type must be one of the cluster's roles "
                            f"({', '.join(cluster)}), got {task!r}")
    index = task.get("index")
    if not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise TFConfigError(f"TF_CONFIG.task.index must be 0..{len(cluster[task['type']]) - 1}"
                            f" for {task['type']!r}, got {index!r}")
    return config


def mirrored_strategy(devices=None):
    """A ``tf.distribute.MirroredStrategy`` over ``devices`` (default: every GPU, else the CPU)."""
    import tensorflow as tf
    return tf.distribute.MirroredStrategy(devices=devices)


def multi_worker_strategy():
    """A ``tf.distribute.MultiWorkerMirroredStrategy`` configured from ``TF_CONFIG``."""
    parse_tf_config()
    import tensorflow as tf
    return tf.distribute.MultiWorkerMirroredStrategy()
