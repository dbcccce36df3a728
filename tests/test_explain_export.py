"""kerasmed-explain (Grad-CAM, Seg-Grad-CAM) and kerasmed-export (SavedModel, ONNX)."""

import json

import cv2
import keras
import numpy as np
import pytest

from kerasmed.cli import explain_main, export_main
from kerasmed.data.lookalike import write_image
from kerasmed.evaluation.explain import default_layer, grad_cam


def _bright_square():
    x = np.zeros((16, 16, 1), np.float32)
    x[4:8, 10:14] = 1.0
    inside = np.zeros((16, 16), bool)
    inside[4:8, 10:14] = True
    return x, inside


def _features(inputs):
    # Channel 0 answers bright pixels, channel 1 dark ones (both after a ReLU).
    kernel = np.array([1.0, -1.0], np.float32).reshape(1, 1, 1, 2)
    return keras.layers.Conv2D(2, 1, activation="relu", name="features",
                               kernel_initializer=keras.initializers.Constant(kernel),
                               bias_initializer=keras.initializers.Constant([0.0, 1.0]))(inputs)


def _classifier():
    inputs = keras.Input((16, 16, 1))
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(_features(inputs))
    weights = np.array([[0.0, 1.0], [1.0, 0.0]], np.float32)  # class 1: bright, class 0: dark
    out = keras.layers.Dense(2, name="logits", kernel_initializer=keras.initializers.Constant(
        weights), bias_initializer="zeros")(pooled)
    return keras.Model(inputs, out, name="toy_classifier")


def _segmenter():
    inputs = keras.Input((16, 16, 1))
    kernel = np.array([4.0, -4.0], np.float32).reshape(1, 1, 2, 1)
    out = keras.layers.Conv2D(1, 1, activation="sigmoid", name="head_conv",
                              kernel_initializer=keras.initializers.Constant(kernel),
                              bias_initializer="zeros")(_features(inputs))
    return keras.Model(inputs, out, name="toy_segmenter")


def test_grad_cam_responds_to_the_object_not_the_background():
    x, inside = _bright_square()
    model = _classifier()
    assert default_layer(model) == "features"
    cam, layer = grad_cam(model, x, target=1)
    assert layer == "features" and cam.shape == (16, 16)
    assert cam[inside].mean() > 0.9 and cam[~inside].max() < 0.05
    background, _ = grad_cam(model, x, target=0)  # the dark class looks at the background
    assert background[~inside].mean() > 0.9 and background[inside].max() < 0.05


def test_seg_grad_cam_over_the_predicted_region():
    x, inside = _bright_square()
    model = _segmenter()
    region = keras.ops.convert_to_numpy(model(x[None]))[0, ..., 0] > 0.5
    assert (region == inside).all()
    cam, _ = grad_cam(model, x, 0, region.astype(np.float32))
    assert cam[inside].mean() > 0.9 and cam[~inside].max() < 0.05
    with pytest.raises(ValueError, match="no layer 'nope'"):
        grad_cam(model, x, 0, region, layer="nope")


def test_explain_cli_writes_overlays_for_a_classifier_and_a_run(tmp_path, finished_run, capsys):
    x, _ = _bright_square()
    write_image(tmp_path / "square.png", (x[..., 0] * 255).astype(np.uint8))
    _classifier().save(tmp_path / "toy.keras")
    assert explain_main([str(tmp_path / "toy.keras"), str(tmp_path / "square.png"),
                         "--output", str(tmp_path / "cams")]) == 0
    assert sorted(p.name for p in (tmp_path / "cams").iterdir()) == [
        "square_gradcam_0.png", "square_gradcam_1.png"]
    run_dir = finished_run[0]
    val = json.loads((run_dir / "split.json").read_text())["val"][:2]
    assert explain_main([str(run_dir), *val, "--output", str(tmp_path / "seg")]) == 0
    panels = sorted((tmp_path / "seg").iterdir())
    assert len(panels) == 2
    assert cv2.imread(str(panels[0])).shape == (48, 2 * 64, 3)  # image and overlay, own size
    assert "heatmaps of layer" in capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["savedmodel", "onnx"])
def test_export_predicts_as_the_keras_model(finished_run, tmp_path, fmt, capsys):
    run_dir = finished_run[0]
    out = tmp_path / ("model.onnx" if fmt == "onnx" else "model")
    assert export_main([str(run_dir), "--format", fmt, "--output", str(out)]) == 0
    record = json.loads((tmp_path / f"{out.name}.export.json").read_text())
    assert record["max_abs_diff"] <= record["tolerance"] == 1e-4 and record["images"] == 4
    assert out.exists()
    assert export_main([str(run_dir), "--format", fmt, "--output", str(out)]) == 2
    assert "never overwritten" in capsys.readouterr().err


def test_a_layer_that_cannot_be_exported_is_named(tmp_path):
    import tensorflow as tf

    from kerasmed.exporting import ExportError, export_model

    class PythonSide(keras.layers.Layer):
        def call(self, x):
            return tf.ensure_shape(tf.numpy_function(lambda a: a * 2, [x], tf.float32),
                                   [None, 4])

        def compute_output_shape(self, shape):
            return shape

    inputs = keras.Input((4,))
    model = keras.Model(inputs, PythonSide(name="python_side")(inputs))
    with pytest.raises(ExportError, match="layer.s. in the way: python_side"):
        export_model(model, tmp_path / "m.onnx", "onnx", np.ones((2, 4), np.float32))
    assert not (tmp_path / "m.onnx").exists()  # nothing half-written is kept


@pytest.mark.parametrize("umask", [0o002, 0o022])
def test_a_savedmodel_follows_the_umask(tmp_path, umask):
    import os
    import stat

    from kerasmed.exporting import export_model

    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="dense")(inputs))
    old = os.umask(umask)
    try:
        export_model(model, tmp_path / "sm", "savedmodel", np.ones((2, 4), np.float32))
    finally:
        os.umask(old)
    folders = [tmp_path / "sm", *(p for p in (tmp_path / "sm").rglob("*") if p.is_dir())]
    files = [p for p in (tmp_path / "sm").rglob("*") if p.is_file()]
    assert len(folders) >= 3 and files  # the model folder, assets/, variables/
    # TensorFlow alone makes the folders 0755 under any umask; a group-shared server needs 0775.
    assert {stat.S_IMODE(p.stat().st_mode) for p in folders} == {0o777 & ~umask}
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o666 & ~umask}
