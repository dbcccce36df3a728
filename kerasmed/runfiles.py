"""Run and evaluation folders, and the files in them.

One new folder per run (or evaluation), never an earlier one's; every file replaced in one
step, so that a reader never sees it half-written. Training, evaluation and the experiment layer
all write through these; the module imports nothing of kerasmed.
"""

from __future__ import annotations

import datetime
import errno
import json
import math
import os
import re
import shutil
import tempfile
from glob import escape as glob_escape
from pathlib import Path

__all__ = ["create_run_dir", "write_json_atomic", "replace_atomic", "strict_json",
           "remove_stray_temporaries", "follow_umask", "remove_path", "owned_tempdir"]


def create_run_dir(output_root, name: str) -> Path:
    """Create and return a new, empty directory ``output_root/<name>_<YYYYmmdd-HHMMSS>[_N]``.

    ``mkdir`` without ``exist_ok`` makes the claim atomic: two runs started in the same second,
    even from two processes, get different folders, and an existing folder is never reused.
    """
    root = Path(output_root)
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "exists and is a file, not a folder", str(root))
    root.mkdir(parents=True, exist_ok=True)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "run"
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 10_000):
        candidate = root / (f"{safe}_{stamp}" + (f"_{n}" if n > 1 else ""))
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"could not create a new run directory in {root}")


def strict_json(value):
    """``value`` made strict JSON: NumPy scalars and arrays as Python numbers and lists, paths
    as strings, NaN and infinities as ``None`` (``null``), which every JSON reader accepts
    (JavaScript's ``JSON.parse`` and ``jq`` refuse a bare ``NaN``)."""
    if isinstance(value, dict):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # NumPy, no import
        return strict_json(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json_atomic(path, data) -> None:
    """Write ``data`` as strict JSON (``strict_json``) so that a reader never sees a
    half-written file."""
    text = json.dumps(strict_json(data), indent=2, allow_nan=False) + "\n"
    replace_atomic(path, lambda tmp: Path(tmp).write_text(text))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def remove_path(path) -> None:
    """Remove the file or folder tree at ``path``, if there is one (what a command cleans up
    when it stops before its output is complete)."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def follow_umask(folder) -> None:
    """Give ``folder``, and every folder and file below it, the permissions the user's umask
    gives new ones. Writers that set their own modes (TensorFlow's SavedModel makes its
    folders ``0755`` whatever the umask) would otherwise keep a group that shares a server
    from reading or tidying them."""
    mask = _umask()
    folder = Path(folder)
    os.chmod(folder, 0o777 & ~mask)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)


def replace_atomic(path, write) -> None:
    """Call ``write(tmp_path)`` then move the temporary file onto ``path`` in one step.

    The file gets the permissions the user's umask gives new files (``mkstemp`` alone would
    leave it readable by its owner only), so colleagues can read a run on a shared server.
    On an error (a full disk) the earlier file at ``path`` is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_stray_temporaries(folder) -> list[Path]:
    """Remove the temporary files ``replace_atomic`` leaves when its process is killed
    mid-write (``.<stem>.<random><suffix>``, e.g. ``.last.k2j3h.keras``) from ``folder``;
    returns the paths removed."""
    folder = Path(folder)
    removed = []
    for path in folder.glob(".*.*"):
        parts = path.name[1:].split(".")
        # ".<stem>.<random><suffix>": a stem, then mkstemp's random part and the suffix.
        if path.is_file() and len(parts) >= 2 and (folder / f"{parts[0]}.{parts[-1]}").exists():
            path.unlink()
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # another user's process, or a platform that cannot say: keep it
    return True


def owned_tempdir(prefix: str, dir=None) -> Path:
    """A new temporary folder named ``<prefix><pid>-<random>`` in ``dir`` (default: the
    system's), after removing the folders of that prefix whose process no longer runs: a
    SIGKILLed process cannot clean up after itself, so the next one does. Returns its path."""
    parent = Path(dir or tempfile.gettempdir())
    for old in parent.glob(f"{glob_escape(prefix)}*-*"):
        pid = old.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and old.is_dir() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))
