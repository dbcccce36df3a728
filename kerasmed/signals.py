"""Batch schedulers' stop signal (SIGTERM) handled as Ctrl-C is.

Slurm, Kubernetes and PBS stop a job with SIGTERM, then SIGKILL a while later. Python's
default for SIGTERM ends the process at once, leaving a run's summary saying ``running``;
``stop_on_sigterm`` turns it into ``Terminated``, a ``KeyboardInterrupt``, so that every path
that stops cleanly on Ctrl-C (the training engines, the inference commands) does the same on
SIGTERM. This module sits at the bottom of kerasmed's layers: it imports nothing of kerasmed.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["Terminated", "stop_on_sigterm", "signal_name"]


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM; handled where ``KeyboardInterrupt`` is."""

    signal_name = "SIGTERM"


def _raise_terminated(signum, frame):
    raise Terminated()


def stop_on_sigterm() -> None:
    """Make SIGTERM raise ``Terminated`` in the main thread (a no-op in another thread, where
    Python cannot install signal handlers)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


def signal_name(interrupt: BaseException) -> str:
    """``"SIGTERM"`` for ``Terminated``, else ``"SIGINT"`` (Ctrl-C)."""
    return getattr(interrupt, "signal_name", "SIGINT")
