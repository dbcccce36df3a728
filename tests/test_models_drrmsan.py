"""DRRMSAN: outputs, fusion, sizes, training, saving, JAX."""

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


def test_paper_size_parameter_count_and_outputs():
    model = build("drrmsan", input_shape=(256, 256, 3))
    assert model.count_params() == 11_635_659  # documented in the builder's docstring
    assert model.output_names == ["side4", "side3", "side2", "final", "fused"]
    keras.backend.clear_session()


@pytest.mark.parametrize("shape", [(64, 64, 3), (96, 128, 3), (32, 48, 1)])
def test_any_size_divisible_by_16(shape):
    model = build("drrmsan", input_shape=shape, filters=4)
    outs = model.predict(_images(1, shape), verbose=0)
    assert [o.shape for o in outs] == [(1, *shape[:2], 1)] * 5


def test_fused_is_the_alpha_weighted_sum():
    alphas = (0.287, 0.026, 0.173, 0.512)
    model = build("drrmsan", input_shape=(32, 32, 3), filters=4, alphas=alphas)
    *parts, fused = model.predict(_images(), verbose=0)
    np.testing.assert_allclose(fused, sum(a * p for a, p in zip(alphas, parts)), atol=1e-6)


def test_learnable_alphas_and_single_output(tmp_path):
    model = build("drrmsan", input_shape=(32, 32, 3), filters=4, learnable_alphas=True,
                  classes=3)
    alpha = model.get_layer("fused").alpha
    assert alpha.trainable and any(w is alpha for w in model.trainable_weights)
    single = build("drrmsan", input_shape=(32, 32, 3), filters=4, single_output=True)
    assert len(single.outputs) == 1 and single.output_shape == (None, 32, 32, 1)
    assert build("drrmsan", input_shape=(32, 32, 3), filters=4,
                 regularized=True).losses, "L2 regularisation adds losses"


def test_train_step_on_every_output_and_round_trip(tmp_path):
    model = build("drrmsan", input_shape=(32, 32, 3), filters=4, learnable_alphas=True)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss={n: "binary_crossentropy" for n in model.output_names}, run_eagerly=True)
    y = (np.random.default_rng(1).random((2, 32, 32, 1)) > 0.5).astype("float32")
    alpha_before = model.get_layer("fused").alpha.numpy().copy()
    logs = model.train_on_batch(_images(), {n: y for n in model.output_names}, return_dict=True)
    assert np.isfinite(logs["loss"]) and "fused_loss" in logs and "side4_loss" in logs
    assert not np.array_equal(model.get_layer("fused").alpha.numpy(), alpha_before)
    x = _images(seed=3)
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "d.keras")
    loaded = keras.saving.load_model(tmp_path / "d.keras")
    for a, b in zip(loaded.predict(x, verbose=0), expected):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_jax_backend_builds_and_trains():
    pytest.importorskip("jax")
    script = textwrap.dedent("""
        import numpy as np
        from kerasmed.models import build
        m = build("drrmsan", input_shape=(16, 16, 3), filters=4)
        m.compile(optimizer="adam", loss={n: "binary_crossentropy" for n in m.output_names})
        x = np.random.rand(2, 16, 16, 3).astype("float32")
        y = (np.random.rand(2, 16, 16, 1) > 0.5).astype("float32")
        logs = m.train_on_batch(x, {n: y for n in m.output_names}, return_dict=True)
        assert np.isfinite(logs["loss"])
        print("OK")
    """)
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               XLA_FLAGS="--xla_backend_optimization_level=0")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]
