"""ImageNet weights of the encoders: Keras' cache, a bounded download, and a
``WeightsUnavailableError`` naming the file and the folder to put it in on a machine without
internet.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile

import keras

from kerasmed.models.encoders.table import BackboneSpec

__all__ = ["WeightsUnavailableError", "keras_cache_dir", "imagenet_weights_file",
           "resolve_weights", "DOWNLOAD_TIMEOUT_ENV"]

DOWNLOAD_TIMEOUT_ENV = "KERASMED_DOWNLOAD_TIMEOUT"


class WeightsUnavailableError(OSError):
    """ImageNet weights are neither in the Keras cache nor downloadable (no internet)."""


def keras_cache_dir() -> str:
    """The folder where ``keras.utils.get_file`` keeps ``cache_subdir="models"`` files.

    Keras' own rule: its home (``$KERAS_HOME`` as it was when Keras was imported, else
    ``~/.keras``), or ``/tmp/.keras`` when that is not writable; then ``models/``.
    """
    try:  # the folder Keras itself resolved at import time
        from keras.src.backend.config import keras_home
        base = keras_home()
    except ImportError:  # pragma: no cover - other Keras layouts
        base = os.environ.get("KERAS_HOME") or os.path.join("~", ".keras")
    base = os.path.expanduser(base)
    if not os.access(base, os.W_OK):
        base = os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")
    return os.path.join(base, "models")


def imagenet_weights_file(spec: BackboneSpec, input_shape=None) -> str:
    """The ImageNet weights file name Keras asks for, for this encoder and input shape."""
    if "{rows}" not in spec.weights_file:
        return spec.weights_file
    rows, cols = (tuple(input_shape[:2]) if input_shape is not None else (None, None))
    rows = rows if rows == cols and rows in (96, 128, 160, 192, 224) else 224
    return spec.weights_file.format(rows=rows)


def _file_matches(path, file_hash):
    if file_hash is None:
        return True
    algorithm = hashlib.sha256() if len(file_hash) == 64 else hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            algorithm.update(chunk)
    return algorithm.hexdigest() == file_hash


def _ensure_imagenet_weights(spec: BackboneSpec, input_shape):
    """Make sure Keras will find the ImageNet file in its cache, or fail fast saying which.

    A valid cached file is used as is. Otherwise the file is fetched with Keras' own
    ``keras.utils.get_file`` (same name, URL, hash and folder as ``keras.applications``) under
    a socket timeout of ``$KERASMED_DOWNLOAD_TIMEOUT`` seconds (default 20), so that a machine
    without internet fails in seconds instead of hanging; any failure raises
    ``WeightsUnavailableError`` naming the file and the folder to put it in.
    """
    fname = imagenet_weights_file(spec, input_shape)
    url = spec.weights_url.replace(spec.weights_file, fname)
    folder = keras_cache_dir()
    path = os.path.join(folder, fname)
    if os.path.exists(path) and _file_matches(path, spec.weights_hash):
        return path
    timeout = float(os.environ.get(DOWNLOAD_TIMEOUT_ENV, 20))
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        return keras.utils.get_file(fname, url, cache_subdir="models", file_hash=spec.weights_hash)
    except Exception as err:  # noqa: BLE001 - any failure to fetch means the same to the user
        raise WeightsUnavailableError(
            f"encoder_weights='imagenet' for backbone {spec.name!r} needs the file {fname!r}, "
            f"which is not in the Keras cache ({folder}) and could not be downloaded from "
            f"{url} ({type(err).__name__}: {err}). On a machine without internet, download that "
            f"URL elsewhere and copy the file to {path} (Keras looks in $KERAS_HOME/models, "
            f"default ~/.keras/models/), or pass encoder_weights='/path/to/{fname}', or "
            f"encoder_weights=None for a randomly initialised encoder."
        ) from err
    finally:
        socket.setdefaulttimeout(previous)


def resolve_weights(spec, weights, input_shape):
    """What ``keras.applications`` takes as ``weights`` for ``encoder_weights``: ``None``,
    ``"imagenet"`` (once the file is in the Keras cache) or an existing file path."""
    if weights is None:
        return None
    if isinstance(weights, str) and weights == "imagenet":
        _ensure_imagenet_weights(spec, input_shape)
        return "imagenet"
    if isinstance(weights, (str, os.PathLike)):
        path = os.fspath(weights)
        if not os.path.exists(path):
            raise FileNotFoundError(f"encoder_weights: no such file {path!r} (expected 'imagenet', "
                                    f"None, or the path to a weights file of {spec.application} "
                                    f"without its top, e.g. {imagenet_weights_file(spec)})")
        return path
    raise ValueError(f"encoder_weights must be 'imagenet', None or a file path, got {weights!r}")
