"""Run a snippet under the JAX (or PyTorch) backend in a subprocess, started early so it overlaps
other tests.

A test module starts its snippet from a module-scoped autouse fixture (``start``) and checks the
result in its last test (``finish``). XLA's CPU backend optimisation is turned off in the
subprocess: these checks are about correctness on JAX, and unoptimised compiles of the many
small initialiser and training functions are several times faster.
"""

import os
import subprocess
import sys
import textwrap


def start(code: str, backend: str = "jax") -> subprocess.Popen:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "XLA_FLAGS": "--xla_backend_optimization_level=0"}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    """Wait for the snippet; fail with its stderr unless it exited 0. Returns its stdout."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"backend subprocess timed out after {timeout} s:\n{err[-3000:]}")
    assert proc.returncode == 0, err[-3000:]
    return out


def stop(proc: subprocess.Popen):
    """Kill the snippet if it is still running (the module's tests were deselected)."""
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def module_fixture(code: str, backend: str = "jax"):
    """A module-scoped autouse fixture that starts ``code`` when the module's first test runs,
    so that it works beside the module's other tests, and kills it if it is still running at
    the end. Assign it in the test module: ``jax_run = _jax_backend.module_fixture(JAX_CODE)``;
    the module's last test checks it with ``finish(jax_run)``."""
    import pytest

    @pytest.fixture(scope="module", autouse=True)
    def jax_run():
        proc = start(code, backend)
        yield proc
        stop(proc)
    return jax_run
