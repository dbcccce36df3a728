"""What every ``kerasmed-*`` command shares: exit codes, one-line OS errors, quiet third-party
logs, the options of the inference commands, image arguments and PNG writing. Nothing here
imports Keras at module level, so ``--help`` answers at once."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import shutil
import sys

EXIT_CODES = {"done": 0, "failed": 1, "bad input": 2, "diverged": 3, "interrupted": 130,
              "terminated": 143}


def interrupted(prog: str, interrupt: BaseException, outcome: str) -> int:
    """Print ``prog: interrupted (SIGINT|SIGTERM); <outcome>`` (what was kept or removed) on
    stderr; returns the exit code of the stop: 130 for Ctrl-C, 143 for SIGTERM (as a shell
    reports them)."""
    from kerasmed.signals import signal_name

    name = signal_name(interrupt)
    print(f"{prog}: interrupted ({name}); {outcome}", file=sys.stderr)
    return EXIT_CODES["terminated" if name == "SIGTERM" else "interrupted"]



def os_error(err: OSError) -> str:
    """One line for an expected OS error: the path and the cause, no traceback."""
    cause = err.strerror or str(err)
    hints = {errno.ENOSPC: "free some space or choose another --output",
             errno.EROFS: "choose a writable --output", errno.EACCES: "check its permissions",
             errno.EEXIST: "it exists and is not a folder", errno.ENOTDIR: "a part of the path "
             "is a file, not a folder"}
    hint = hints.get(err.errno)
    # kerasmed's own OSErrors (ImageReadError, WeightsUnavailableError) carry their path in
    # the message and no filename.
    where = f"{err.filename}: " if err.filename is not None else ""
    return where + cause + (f" ({hint})" if hint else "")


# What every command reports as bad input in one line, without a traceback: kerasmed's own
# errors (ConfigError, DatasetLayoutError, ImageReadError, ...) subclass one of these.
BAD_INPUT = (ValueError, OSError)


def bad_input(prog: str, problem, suffix: str = "") -> int:
    """Print ``prog: error: <problem><suffix>`` on stderr; ``problem`` is an exception (an
    OSError through :func:`os_error`) or a message. Returns the exit code for bad input."""
    message = os_error(problem) if isinstance(problem, OSError) else str(problem)
    print(f"{prog}: error: {message}{suffix}", file=sys.stderr)
    return EXIT_CODES["bad input"]



def quiet(verbose: bool):
    """Silence third-party warnings and logs (TensorFlow, OpenCV, matplotlib...) unless
    ``--verbose``; kerasmed's own warnings always show. Every command calls this first after
    parsing, so it also makes SIGTERM stop the command as Ctrl-C does
    (``kerasmed.signals.stop_on_sigterm``)."""
    from kerasmed.signals import stop_on_sigterm

    stop_on_sigterm()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    import warnings

    from kerasmed.names import KerasmedWarning

    default_format = warnings.formatwarning

    def one_line(message, category, filename, lineno, line=None):
        if issubclass(category, KerasmedWarning):  # ours: the message says it all
            return f"kerasmed: warning: {message}\n"
        return default_format(message, category, filename, lineno, line)
    warnings.formatwarning = one_line
    if verbose:
        return

    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", category=KerasmedWarning)
    if "keras" not in sys.modules:
        _import_keras_silently()
    import cv2
    if hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(0)  # silent
    import logging
    for name in ("tensorflow", "absl", "matplotlib", "PIL", "jax"):
        logging.getLogger(name).setLevel(logging.ERROR)



def _import_keras_silently():
    """Import Keras (and its backend) with the process's stderr closed: TensorFlow's C++ start-up
    lines (oneDNN, CUDA drivers, CPU features) are written there before any log level applies."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)



def bounded(kind=float, low=None, high=None, low_open=False, high_open=False):
    """An argparse ``type`` that reads a ``kind`` (``int`` or ``float``) and refuses NaN,
    infinities and values outside ``[low, high]`` (``low_open`` / ``high_open``: that end
    excluded), so that a bad option ends with argparse's one-line error (exit 2) naming it."""
    import math

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        too_low = low is not None and (value < low or (low_open and value == low))
        too_high = high is not None and (value > high or (high_open and value == high))
        if too_low or too_high:
            left = "(" if low_open else "["
            right = ")" if high_open else "]"
            raise argparse.ArgumentTypeError(
                f"must be in {left}{'-inf' if low is None else low}, "
                f"{'inf' if high is None else high}{right}, got {text}")
        return value
    return parse


def add_verbose(parser):
    parser.add_argument("--verbose", action="store_true",
                        help="also show third-party warnings and logs (TensorFlow, OpenCV, "
                             "matplotlib)")



def add_checkpoint(parser):
    """``--checkpoint best|last``: which checkpoint of a run directory a command loads."""
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="which checkpoint of a run directory to use (default: best)")


def inference_parser(prog, description):
    from kerasmed.evaluation.choices import INFERENCE_MODES

    parser = argparse.ArgumentParser(prog=prog, description=description)
    add_checkpoint(parser)
    parser.add_argument("--mode", choices=INFERENCE_MODES, default=None,
                        help="resize each image to the model's input, letterbox it (pad), or "
                             "slide overlapping model-sized tiles at native size (default: as "
                             "the run was trained: pad for data.fit pad, tile for crops and "
                             "tiles, resize otherwise)")
    parser.add_argument("--tta", action="store_true",
                        help="test-time augmentation: average over flips and rotations")
    parser.add_argument("--threshold", type=bounded(float, 0, 1), default=0.5,
                        help="probability above which a pixel is foreground (default 0.5)")
    parser.add_argument("--normalization", default=None,
                        help="override the run's data.normalization (dtype_range or minmax)")
    parser.add_argument("--ensemble", action="append", default=[], metavar="RUN_DIR",
                        help="average the target run's network with this run's (repeatable; "
                             "a k-fold parent folder as the target is an ensemble of its folds)")
    add_verbose(parser)
    return parser



@contextlib.contextmanager
def staged_output(out, prefix: str):
    """Write a command's files all or nothing: the block writes into the staging folder this
    yields (inside ``out``, created if needed), and only when it ends without an error are the
    files moved into ``out``, refusing to overwrite any. The staging folder is always removed
    (after a SIGKILL, by the next command staging into ``out``: ``runfiles.owned_tempdir``),
    and so is ``out`` when this created it and it stays empty."""
    from pathlib import Path

    from kerasmed.runfiles import owned_tempdir

    out = Path(out)
    created = not out.exists()
    staging = None
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = owned_tempdir(prefix, out)
        yield staging
        names = sorted(p.name for p in staging.iterdir())
        clashes = [str(out / n) for n in names if (out / n).exists()]
        if clashes:
            raise FileExistsError(f"refusing to overwrite {', '.join(clashes[:5])}"
                                  + (" ..." if len(clashes) > 5 else ""))
        for name in names:
            os.replace(staging / name, out / name)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def write_png(path, array):
    import cv2

    if not cv2.imwrite(str(path), array):
        raise OSError(errno.EIO, "OpenCV could not write the file", str(path))
