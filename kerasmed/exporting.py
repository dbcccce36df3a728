"""Shipping a trained network: export to a TensorFlow SavedModel or ONNX, checked.

``export_model`` uses Keras' own export path (``model.export``: a SavedModel with a ``serve``
endpoint, or ONNX through tf2onnx on the TensorFlow backend), then reloads the exported
model (``tf.saved_model.load``, or an ``onnxruntime`` session) and compares its predictions on
a few images with the Keras model's: the largest absolute difference must stay within
``tolerance`` (1e-4 for float32 models, 1e-2 under mixed precision, whose float16/bfloat16
activations differ between runtimes by more). A network that cannot be exported is reported
with the layers the error names (or, when it names none, the model's non-Keras layers).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from kerasmed.runfiles import follow_umask, remove_path

__all__ = ["FORMATS", "ExportError", "check_format", "export_model", "exported_predict",
           "tolerance_for"]

FORMATS = {"savedmodel": "tf_saved_model", "onnx": "onnx"}


def check_format(fmt: str) -> str:
    """``fmt`` if it is one of ``FORMATS``; else ``ValueError`` listing them."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, got {fmt!r}")
    return fmt


class ExportError(RuntimeError):
    """The model could not be exported, or its export predicts differently."""


def tolerance_for(model) -> float:
    """The largest absolute difference accepted between the Keras model and its export."""
    mixed = any(getattr(getattr(layer, "dtype_policy", None), "compute_dtype", "float32")
                in ("float16", "bfloat16") for layer in model.layers)
    return 1e-2 if mixed else 1e-4


def _outputs(values):
    if isinstance(values, dict):
        values = list(values.values())
    if not isinstance(values, (list, tuple)):
        values = [values]
    return [np.asarray(keras.ops.convert_to_numpy(v), np.float32) for v in values]


def exported_predict(path, fmt: str, x: np.ndarray) -> list:
    """Predictions of an exported model on ``x``: a list of arrays, one per output."""
    if fmt == "savedmodel":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))  # kept alive: serve uses its variables
        return _outputs(loaded.serve(x))
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return _outputs(session.run(None, {session.get_inputs()[0].name: x}))


def _blocking_layers(model, err) -> list[str]:
    text = str(err)
    named = [layer.name for layer in model.layers if layer.name in text]
    if named:
        return named
    custom = [f"{layer.name} ({type(layer).__name__})" for layer in model.layers
              if not type(layer).__module__.startswith("keras.")]
    return custom


def export_model(model, path, fmt: str, x: np.ndarray, tolerance=None) -> dict:
    """Export ``model`` to ``path`` in ``fmt`` (``savedmodel`` or ``onnx``) and check it on the
    prepared inputs ``x`` (``(n, H, W, C)``).

    Returns ``{"format", "path", "max_abs_diff", "tolerance", "images"}``. Raises
    ``ExportError`` naming the blocking layers when the export fails, or the difference when
    the exported model predicts differently.
    """
    check_format(fmt)
    path = Path(path)
    x = np.ascontiguousarray(x, np.float32)
    # Before the export: Keras' ONNX path needs a model that has been called once.
    expected = _outputs(model(x, training=False))
    try:
        model.export(str(path), format=FORMATS[fmt], verbose=False)
        if path.is_dir():  # SavedModel: TensorFlow makes its folders 0755 whatever the umask
            follow_umask(path)
        # A converter may write a model its runtime cannot run (an unsupported op): loading
        # it is part of the export.
        got = exported_predict(path, fmt, x)
    except OSError:  # a file-system fault (read-only, full disk): the path and the cause
        remove_path(path)
        raise
    except Exception as err:  # noqa: BLE001  (any converter error: report the layers)
        remove_path(path)
        suspects = _blocking_layers(model, err)
        raise ExportError(f"model {model.name!r} cannot be exported to {fmt}"
                          + (f"; the layer(s) in the way: {', '.join(suspects)}"
                             if suspects else "")
                          + f" ({type(err).__name__}: {str(err).splitlines()[0][:300]})"
                          ) from err
    tolerance = tolerance_for(model) if tolerance is None else float(tolerance)
    if len(got) != len(expected):
        raise ExportError(f"{path}: the export has {len(got)} output(s), the model "
                          f"{len(expected)}")
    diff = max(float(np.max(np.abs(a - b))) for a, b in zip(expected, got))
    if not diff <= tolerance:
        remove_path(path)
        raise ExportError(f"{path}: the exported model's predictions differ from the Keras "
                          f"model's by up to {diff:.3g} (tolerance {tolerance:g}); nothing was "
                          f"kept")
    return {"format": fmt, "path": str(path), "max_abs_diff": diff, "tolerance": tolerance,
            "images": int(len(x))}
