"""MultiResUNet: the reference's exact parameter count, training, saving, JAX."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from kerasmed.models import build


def _images(n=2, shape=(32, 32, 3), seed=0):
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


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
    out = model.predict(_images(2, (32, 48, 3)), verbose=0)
    assert out.shape == (2, 32, 48, classes) and out.dtype == np.float32
    if classes == 3:
        np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="divisible by 16"):
        build("multiresunet", input_shape=(40, 40, 3))


def test_one_train_step_changes_weights_and_round_trips(tmp_path):
    model = build("multiresunet", input_shape=(32, 32, 3), filters=8)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  run_eagerly=True)
    before = [w.numpy().copy() for w in model.trainable_weights]
    y = (np.random.default_rng(1).random((4, 32, 32, 1)) > 0.5).astype("float32")
    loss = float(model.train_on_batch(_images(4), y))
    assert np.isfinite(loss)
    assert all(not np.array_equal(w.numpy(), b) for w, b in zip(model.trainable_weights, before))
    x = _images(2, seed=3)
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-7)


def test_mixed_precision_head_is_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build("multiresunet", input_shape=(32, 32, 3), filters=8)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("enc1_3x3_conv").compute_dtype == "float16"
    assert model.outputs[0].dtype == "float32"


def test_jax_backend_builds_and_trains():
    pytest.importorskip("jax")
    script = textwrap.dedent("""
        import numpy as np, keras
        from kerasmed.models import build
        m = build("multiresunet", input_shape=(16, 16, 3), filters=4)
        m.compile(optimizer="adam", loss="binary_crossentropy")
        x = np.random.rand(2, 16, 16, 3).astype("float32")
        y = (np.random.rand(2, 16, 16, 1) > 0.5).astype("float32")
        w0 = m.trainable_weights[0].numpy().copy()
        loss = float(m.train_on_batch(x, y))
        assert np.isfinite(loss) and not np.array_equal(w0, m.trainable_weights[0].numpy())
        print("OK", loss)
    """)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]
