"""MultiResUNet: the reference's exact parameter count, training, saving, JAX."""

import keras
import numpy as np
import pytest

import _jax_backend
from _model_checks import images
from kerasmed.models import build

JAX_CODE = """
    import numpy as np, keras
    assert keras.backend.backend() == "jax"
    from kerasmed.models import build
    m = build("multiresunet", input_shape=(32, 32, 3), filters=8)
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy")
    x = np.random.rand(2, 32, 32, 3).astype("float32")
    y = (np.random.rand(2, 32, 32, 1) > 0.5).astype("float32")
    before = [np.array(w) for w in m.trainable_weights]
    loss = float(m.train_on_batch(x, y))
    assert np.isfinite(loss)
    assert all(not np.array_equal(np.array(w), b) for w, b in zip(m.trainable_weights, before))
    print("ok", loss)
"""


jax_run = _jax_backend.module_fixture(JAX_CODE)



def test_reference_parameter_count_exactly():
    model = build("multiresunet", input_shape=(256, 256, 3))
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert model.count_params() == 7_262_750 and non_trainable == 24_522
    assert build("multiresunet", input_shape=(256, 256, 1)).count_params() == 7_262_504
    keras.backend.clear_session()


def test_multires_block_widths_follow_the_paper():
    from kerasmed.models.blocks import multires_widths
    assert multires_widths(32) == (8, 17, 26)
    model = build("multiresunet", input_shape=(32, 32, 3))
    assert model.get_layer("enc1_concat").output.shape[-1] == 51
    assert model.get_layer("respath1_4_bn").output.shape[-1] == 32  # four ResPath units
    with pytest.raises(ValueError):
        model.get_layer("respath4_2_bn")  # the deepest ResPath has one unit


@pytest.mark.parametrize("classes", [1, 3])
def test_output_shapes_and_head(classes):
    model = build("multiresunet", input_shape=(32, 48, 3), classes=classes, filters=8)
    out = keras.ops.convert_to_numpy(model(images(2, (32, 48, 3)), training=False))
    assert out.shape == (2, 32, 48, classes) and out.dtype == np.float32
    if classes == 3:
        np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="divisible by 16"):
        build("multiresunet", input_shape=(40, 40, 3))


def test_one_train_step_changes_weights_and_round_trips(tmp_path):
    model = build("multiresunet", input_shape=(32, 32, 3), filters=8)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  run_eagerly=True)
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    y = (np.random.default_rng(1).random((4, 32, 32, 1)) > 0.5).astype("float32")
    loss = float(model.train_on_batch(images(4), y))
    assert np.isfinite(loss)
    assert all(not np.array_equal(keras.ops.convert_to_numpy(w), b)
               for w, b in zip(model.trainable_weights, before))
    x = images(2, seed=3)
    expected = keras.ops.convert_to_numpy(model(x, training=False))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x, training=False)), expected,
                               rtol=1e-6, atol=1e-7)


def test_mixed_precision_head_is_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build("multiresunet", input_shape=(32, 32, 3), filters=8)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("enc1_3x3_conv").compute_dtype == "float16"
    assert model.outputs[0].dtype == "float32"


def test_jax_backend_builds_and_trains(jax_run):
    # Started with the module (see jax_run).
    pytest.importorskip("jax")
    assert "ok" in _jax_backend.finish(jax_run)
