"""Whether kerasmed compiles the train step with XLA: the rule behind ``jit_compile: "auto"``.

The rule is a table per backend and device kind, chosen from measurements
(``benchmarks/train_speed.py --sections compile``); the figures, with their dates and
machines, are in ``benchmarks/RESULTS.md``:

- TensorFlow on a CPU: no XLA. On the development machine XLA made the step slower for most
  networks of the peers table, faster for none beyond the noise, and it adds tens of seconds
  of compilation to every run.
- TensorFlow on a GPU: XLA, Keras' own choice there (not a kerasmed measurement).
- JAX: always jit. ``jit_compile=False`` under JAX runs every op eagerly, several times
  slower.
- PyTorch: eager. ``jit_compile=True`` means ``torch.compile``, which made the step slower
  after minutes of compilation (torch._dynamo hit its recompile limit on Keras' functional
  ``call``).

An explicit ``true`` / ``false`` in an experiment is used as given.
"""

from __future__ import annotations

import keras

__all__ = ["JIT_RULE", "device_kind", "resolve_jit_compile"]

#: ``(backend, device kind) -> jit_compile`` for ``jit_compile: "auto"``.
JIT_RULE = {
    ("tensorflow", "cpu"): False,
    ("tensorflow", "gpu"): True,
    ("jax", "cpu"): True,
    ("jax", "gpu"): True,
    ("torch", "cpu"): False,
    ("torch", "gpu"): False,
}


def device_kind(backend: str | None = None) -> str:
    """``"gpu"`` when the backend sees an accelerator (GPU or TPU), else ``"cpu"``."""
    backend = backend or keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf
        found = tf.config.list_physical_devices("GPU") or tf.config.list_physical_devices("TPU")
    elif backend == "jax":
        import jax
        found = jax.default_backend() != "cpu"
    elif backend == "torch":
        import torch
        found = torch.cuda.is_available()
    else:
        found = False
    return "gpu" if found else "cpu"


def resolve_jit_compile(setting, backend: str | None = None, device: str | None = None) -> bool:
    """The ``jit_compile`` value to compile with: ``setting`` itself when it is a bool, the
    ``JIT_RULE`` entry for the backend and device kind when it is ``"auto"``."""
    if isinstance(setting, bool):
        return setting
    if setting != "auto":
        raise ValueError(f'jit_compile must be "auto", true or false, got {setting!r}')
    backend = backend or keras.backend.backend()
    device = device or device_kind(backend)
    return JIT_RULE.get((backend, device), False)
