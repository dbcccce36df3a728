"""Data-parallel training from the experiment's ``training.distribution``, on any backend.

``null`` trains on one device. ``"mirrored"`` and ``"multi_worker"`` use TensorFlow's
strategies (``kerasmed.training.tf_distribute``, the only module that imports
``tf.distribute``); ``"data_parallel"`` uses Keras' own ``keras.distribution.DataParallel``,
which is how the JAX backend spreads a batch over its devices.
"""

from __future__ import annotations

import contextlib

import keras

__all__ = ["DISTRIBUTIONS", "distribution_scope", "start_distribution", "worker_role",
           "lost_workers"]

DISTRIBUTIONS = (None, "mirrored", "multi_worker", "data_parallel")


def _needs_tensorflow(kind):
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ValueError(f"training.distribution {kind!r} needs the TensorFlow backend "
                         f"(KERAS_BACKEND={backend}); use \"data_parallel\" with JAX")


def start_distribution(kind):
    """Prepare ``kind`` at program start, before TensorFlow runs anything: a
    ``"multi_worker"`` process joins its cluster now (TensorFlow configures collectives only
    then; ``tf_distribute``). Nothing for the other kinds. Returns nothing; raises
    ``ValueError`` (a ``TFConfigError`` among them) as ``distribution_scope`` does."""
    if kind == "multi_worker":
        _needs_tensorflow(kind)
        from kerasmed.training import tf_distribute
        tf_distribute.multi_worker_strategy()


def worker_role() -> tuple[bool, int, int]:
    """``(is_chief, task_index, workers)`` of this process: ``(True, 0, 1)`` except in a
    multi-worker run, whose chief alone writes the run directory."""
    from kerasmed.training import tf_distribute
    return tf_distribute.worker_role()


def lost_workers(err: BaseException) -> list[str] | None:
    """The workers whose loss stopped a multi-worker run, if ``err`` says so (else ``None``;
    ``tf_distribute.lost_workers``)."""
    from kerasmed.training import tf_distribute
    return tf_distribute.lost_workers(err)


def distribution_scope(kind, devices=None):
    """``(context, replicas)``: build and compile the model under ``context`` for ``kind``.

    Raises ``ValueError`` if the backend cannot run ``kind`` (``tf.distribute`` needs the
    TensorFlow backend; ``data_parallel`` needs JAX, whose backend Keras distributes).
    """
    backend = keras.backend.backend()
    if kind is None:
        return contextlib.nullcontext(), 1
    if kind in ("mirrored", "multi_worker"):
        _needs_tensorflow(kind)
        from kerasmed.training import tf_distribute
        strategy = (tf_distribute.mirrored_strategy(devices) if kind == "mirrored"
                    else tf_distribute.multi_worker_strategy())
        return strategy.scope(), strategy.num_replicas_in_sync
    if kind == "data_parallel":
        if backend != "jax":
            raise ValueError("training.distribution \"data_parallel\" (keras.distribution) runs "
                             f"on the JAX backend, not {backend!r}; use \"mirrored\" with "
                             "TensorFlow")
        devices = devices or keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        return contextlib.nullcontext(), len(devices)
    raise ValueError(f"unknown training.distribution {kind!r}; choose one of {DISTRIBUTIONS}")
