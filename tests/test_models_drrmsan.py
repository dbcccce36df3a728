"""DRRMSAN: parameter counts against the authors' MSAN-1, output layout, fusion, sizes, one
training step on every output, saving and reloading, mixed precision and the JAX backend."""

import keras
import numpy as np
import pytest

import _jax_backend
from _model_checks import images, predict
from kerasmed.models import build, default_config
from kerasmed.models.drrmsan import WeightedFusion

NAMES = ["side4", "side3", "side2", "final", "fused"]

JAX_CODE = """
    import numpy as np, keras
    assert keras.backend.backend() == "jax"
    from kerasmed.models import build

    alphas = (0.287, 0.026, 0.173, 0.512)
    m = build("drrmsan", input_shape=(32, 32, 3), filters=4, alphas=alphas)
    m.compile(optimizer=keras.optimizers.Adam(1e-2),
              loss={n: "binary_crossentropy" for n in m.output_names})
    x = np.random.rand(2, 32, 32, 3).astype("float32")
    y = (np.random.rand(2, 32, 32, 1) > 0.5).astype("float32")
    before = [np.array(w) for w in m.trainable_weights]
    logs = m.train_on_batch(x, {n: y for n in m.output_names}, return_dict=True)
    assert np.isfinite(logs["loss"]), logs
    assert all(not np.array_equal(np.array(w), b) for w, b in zip(m.trainable_weights, before))
    *parts, fused = m.predict(x, verbose=0)
    np.testing.assert_allclose(fused, sum(a * p for a, p in zip(alphas, parts)), atol=1e-6)
    print("ok")
"""


jax_run = _jax_backend.module_fixture(JAX_CODE)




def _count(layers):
    return sum(layer.count_params() for layer in layers)


def test_paper_size_parameter_count_against_the_authors_msan1():
    model = build("drrmsan", input_shape=(256, 256, 3))
    non_trainable = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert model.count_params() == 11_068_574 and non_trainable == 24_522  # see the docstring
    assert model.output_names == NAMES
    # The parts that follow the authors' MSAN-1 exactly: the input pyramid and the MultiResUNet
    # blocks, ResPaths and transpose convs; only the gates and heads differ (21,580,994 in all).
    assert _count(l for l in model.layers if l.name.startswith("pyramid")) == 273_770
    backbone = [l for l in model.layers if l.name.startswith(("enc", "bottleneck", "respath"))
                or (l.name.startswith("dec") and "_gate" not in l.name)]
    assert _count(backbone) == 7_262_696
    assert default_config("drrmsan")["alphas"] == (0.25, 0.25, 0.25, 0.25)
    keras.backend.clear_session()


@pytest.mark.parametrize("shape", [(64, 64, 3), (96, 128, 3), (256, 256, 1)])
def test_any_size_divisible_by_16(shape):
    model = build("drrmsan", input_shape=shape, filters=4)
    outs = predict(model, images(1, shape))
    assert [o.shape for o in outs] == [(1, *shape[:2], 1)] * 5
    assert all(o.dtype == np.float32 and np.all((o >= 0) & (o <= 1)) for o in outs)


def test_sizes_and_alphas_are_validated():
    with pytest.raises(ValueError, match="divisible by 16"):
        build("drrmsan", input_shape=(40, 40, 3), filters=4)
    with pytest.raises(ValueError, match="alphas"):
        build("drrmsan", input_shape=(32, 32, 3), filters=4, alphas=(0.5, 0.5))


def test_three_classes_softmax_heads():
    model = build("drrmsan", input_shape=(32, 32, 3), classes=3, filters=4)
    outs = predict(model, images())
    assert [o.shape for o in outs] == [(2, 32, 32, 3)] * 5
    for o in outs:  # every head is a softmax; the fused sums to sum(alphas) = 1
        np.testing.assert_allclose(o.sum(-1), 1.0, rtol=1e-5)


def test_fused_is_the_alpha_weighted_sum_and_logits():
    alphas = (0.287, 0.026, 0.173, 0.512)
    model = build("drrmsan", input_shape=(32, 32, 3), filters=4, alphas=alphas)
    *parts, fused = predict(model, images())
    np.testing.assert_allclose(fused, sum(a * p for a, p in zip(alphas, parts)), atol=1e-6)
    logits = build("drrmsan", input_shape=(32, 32, 3), filters=4, activation=None)
    assert any(o.min() < 0 for o in predict(logits, images()))


def test_learnable_alphas_single_output_and_regularized():
    model = build("drrmsan", input_shape=(32, 32, 3), filters=4, learnable_alphas=True)
    alpha = model.get_layer("fused").alpha
    assert alpha.trainable and any(w is alpha for w in model.trainable_weights)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(alpha), [0.25] * 4)
    single = build("drrmsan", input_shape=(32, 32, 3), filters=4, single_output=True)
    assert len(single.outputs) == 1 and single.output_names == ["fused"]
    assert single.output_shape == (None, 32, 32, 1)
    plain = build("drrmsan", input_shape=(32, 32, 3), filters=4)
    regularized = build("drrmsan", input_shape=(32, 32, 3), filters=4, regularized=True)
    assert not plain.losses and len(regularized.losses) > 0
    assert regularized.count_params() == plain.count_params()
    dropouts = [l.name for l in regularized.layers if isinstance(l, keras.layers.SpatialDropout2D)]
    assert "dec1_gate_dropout" in dropouts and "side4_dropout" in dropouts


def test_weighted_fusion_config():
    layer = WeightedFusion([0.1, 0.9], learnable_alphas=True, name="f")
    config = layer.get_config()
    assert config["alphas"] == [0.1, 0.9] and config["learnable_alphas"] is True
    assert WeightedFusion.from_config(config).get_config() == config
    # Models saved before the argument was renamed stored it as "learnable".
    assert WeightedFusion.from_config({"alphas": [1.0, 2.0], "learnable": True}).learnable_alphas
    a, b = np.ones((1, 2, 2, 1), "float32"), np.full((1, 2, 2, 1), 2.0, "float32")
    out = keras.ops.convert_to_numpy(WeightedFusion([0.1, 0.9])([a, b]))
    np.testing.assert_allclose(out, 1.9, rtol=1e-6)


def test_train_step_on_every_output_and_round_trip(tmp_path):
    model = build("drrmsan", input_shape=(32, 32, 3), filters=4, learnable_alphas=True)
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss={n: "binary_crossentropy" for n in model.output_names},
                  run_eagerly=True)  # one step: tracing would take longer than it saves
    y = (np.random.default_rng(1).random((2, 32, 32, 1)) > 0.5).astype("float32")
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    logs = model.train_on_batch(images(), {n: y for n in model.output_names}, return_dict=True)
    assert np.isfinite(logs["loss"]) and all(f"{n}_loss" in logs for n in NAMES)
    unchanged = [w.path for w, b in zip(model.trainable_weights, before)
                 if np.array_equal(keras.ops.convert_to_numpy(w), b)]
    assert not unchanged, unchanged  # includes the fusion's alphas
    x = images(seed=3)
    expected = predict(model, x)
    model.save(tmp_path / "d.keras")
    loaded = keras.saving.load_model(tmp_path / "d.keras")
    assert loaded.output_names == NAMES
    for a, b in zip(predict(loaded, x), expected):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_mixed_precision_heads_are_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build("drrmsan", input_shape=(32, 32, 3), filters=4)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("enc1_3x3_conv").compute_dtype == "float16"
    assert [o.dtype for o in model.outputs] == ["float32"] * 5


def test_jax_backend_builds_and_trains(jax_run):
    pytest.importorskip("jax")
    # Started with the module (see jax_run): a train step on every output changes every
    # weight, and the fused output is the alpha-weighted sum, under KERAS_BACKEND=jax.
    assert "ok" in _jax_backend.finish(jax_run)
