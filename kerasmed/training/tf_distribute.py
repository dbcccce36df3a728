"""TensorFlow-only distribution: ``tf.distribute`` strategies. The one module importing them.

``MirroredStrategy`` runs synchronous data parallelism over the GPUs of one machine;
``MultiWorkerMirroredStrategy`` over several machines, each described by the ``TF_CONFIG``
environment variable (see ``parse_tf_config``) or, when it is absent, by the Slurm job step the
process runs in (``tf.distribute.cluster_resolver.SlurmClusterResolver``). The batch size in the
experiment is the global batch, split evenly over the replicas.

TensorFlow configures collective operations once, before it runs its first operation, so the
multi-worker strategy is made at program start (``multi_worker_strategy``, which
``kerasmed-train`` calls first) and kept for the life of the process.
"""

from __future__ import annotations

import json
import os
import re
import shutil

__all__ = ["mirrored_strategy", "multi_worker_strategy", "parse_tf_config", "TFConfigError",
           "check_cluster", "slurm_resolver", "SLURM_VARIABLES", "worker_role", "lost_workers"]

# What a Slurm job step must define for SlurmClusterResolver (srun sets all four).
SLURM_VARIABLES = ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST",
                   "SLURM_STEP_TASKS_PER_NODE")
# The multi-worker strategy of this process, made once (see the module's docstring).
_STRATEGY = None


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


def check_cluster() -> str:
    """Check that this process can find its multi-worker cluster; returns where it comes from,
    ``"TF_CONFIG"`` or ``"slurm"``. ``TF_CONFIG`` wins when set; without it, a Slurm job step
    (``SLURM_PROCID`` set) must define every variable of ``SLURM_VARIABLES``. Raises
    ``TFConfigError`` naming what is missing or malformed."""
    if os.environ.get("TF_CONFIG") or "SLURM_PROCID" not in os.environ:
        parse_tf_config()
        return "TF_CONFIG"
    missing = [name for name in SLURM_VARIABLES if not os.environ.get(name)]
    if missing:
        raise TFConfigError(f"TF_CONFIG is not set and the Slurm step lacks "
                            f"{', '.join(missing)} (run the workers with srun)")
    for name in ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS"):
        if not os.environ[name].isdigit():
            raise TFConfigError(f"{name}: expected a whole number, got {os.environ[name]!r}")
    return "slurm"


def slurm_resolver():
    """A ``SlurmClusterResolver`` for this Slurm job step: one worker per task, ports from
    8888 up on each node.

    TensorFlow's resolver pairs every task with GPUs (from ``CUDA_VISIBLE_DEVICES`` or
    ``nvidia-smi``) and fails where there are none; on a node without ``nvidia-smi`` and
    without ``CUDA_VISIBLE_DEVICES`` each task is given a notional GPU and no device is
    hidden, so CPU-only steps run too.
    """
    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.SlurmClusterResolver
    if "CUDA_VISIBLE_DEVICES" in os.environ or shutil.which("nvidia-smi"):
        return resolver()
    tasks = int(os.environ["SLURM_STEP_NUM_TASKS"])
    return resolver(gpus_per_node=tasks, gpus_per_task=1, auto_set_gpu=False)


def multi_worker_strategy():
    """The process's ``tf.distribute.MultiWorkerMirroredStrategy``, its cluster from
    ``TF_CONFIG`` or Slurm (``check_cluster``); made on the first call, the same one after.

    Raises ``TFConfigError`` for a missing or malformed cluster, and ``ValueError`` saying so
    when TensorFlow has already run operations (too late to configure collectives).
    """
    global _STRATEGY
    if _STRATEGY is not None:
        return _STRATEGY
    source = check_cluster()
    import tensorflow as tf

    class Strategy(tf.distribute.MultiWorkerMirroredStrategy):
        """``reduce`` as Keras 3 calls it on this strategy (keras-team/keras#20585): one
        tensor at a time (Keras reduces the whole first ``(x, y)`` batch at once, which the
        strategy refuses for a structure), and a scalar over the replicas (Keras asks for
        ``axis=0`` of every epoch's scalar metrics)."""

        def reduce(self, reduce_op, value, axis):
            def one(v):
                scalar = self.experimental_local_results(v)[0].shape.rank == 0
                return super(Strategy, self).reduce(reduce_op, v, None if scalar else axis)
            return tf.nest.map_structure(one, value)

    resolver = slurm_resolver() if source == "slurm" else None
    try:
        _STRATEGY = Strategy(cluster_resolver=resolver)
    except RuntimeError as err:
        raise ValueError(f"multi-worker training must set up TensorFlow's collectives "
                           f"before anything else runs; start it with kerasmed-train, or "
                           f"call kerasmed.training.tf_distribute.multi_worker_strategy() "
                           f"first in your program ({err})") from err
    return _STRATEGY


def worker_role() -> tuple[bool, int, int]:
    """``(is_chief, task_index, workers)`` of this process: ``(True, 0, 1)`` unless it made a
    multi-worker strategy; then the chief is the ``chief`` task, else worker 0 (TensorFlow's
    rule, ``should_checkpoint``)."""
    if _STRATEGY is None:
        return True, 0, 1
    strategy = _STRATEGY
    resolver = strategy.cluster_resolver
    workers = sum(len(tasks) for tasks in resolver.cluster_spec().as_dict().values())
    return bool(strategy.extended.should_checkpoint), int(resolver.task_id or 0), workers


def lost_workers(err: BaseException) -> list[str] | None:
    """The tasks whose loss stopped this multi-worker run (``["worker 1"]``, or ``[]`` when
    TensorFlow does not name them) if ``err`` is the error TensorFlow raises on the surviving
    workers (its health check aborts their collectives), else ``None``."""
    if _STRATEGY is None:
        return None
    import tensorflow as tf

    if not isinstance(err, tf.errors.UnavailableError):
        return None
    # "Error reported from <a task>: The following tasks are unhealthy ...: <the lost ones>"
    text = str(err).split("unhealthy", 1)[-1]
    found = re.findall(r"/job:(\w+)(?:/replica:\d+)?/task:(\d+)", text)
    # The message can go on to name the task that reported it (gRPC's "additional error
    # information from remote target ..."), which may be this process: a survivor is not lost.
    resolver = _STRATEGY.cluster_resolver
    itself = (resolver.task_type, str(resolver.task_id or 0))
    return sorted({f"{job} {task}" for job, task in found if (job, task) != itself})
