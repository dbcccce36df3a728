"""Micro-Net-508 / -252: full-size parameter counts, output layout, one training step with the
auxiliary-loss weight, saving and reloading, and the JAX backend."""

import gc

import keras
import numpy as np
import pytest

import _jax_backend
from kerasmed.models import build, default_config
from kerasmed.models.micronet import micronet, micronet_parameters
from kerasmed.training.aux_weight import (AuxiliaryLossWeight, ScaledLoss, auxiliary_losses,
                                          auxiliary_weight_variables, inverse_epoch,
                                          set_auxiliary_weight)

JAX_CODE = """
    import numpy as np, keras
    assert keras.backend.backend() == "jax"
    from kerasmed.models import build
    from kerasmed.training.aux_weight import auxiliary_losses, set_auxiliary_weight

    model = build("micronet", variant=252, width=1 / 32)
    model.compile(keras.optimizers.SGD(0.01),
                  loss=auxiliary_losses(model, "categorical_crossentropy"))
    x = np.random.rand(1, 252, 252, 3).astype("float32")
    y = np.zeros((1, 252, 252, 2), "float32"); y[..., 0] = 1
    logs = model.train_on_batch(x, [y] * 4, return_dict=True)
    assert all(np.isfinite(v) for v in logs.values()), logs

    # JAX holds a non-state variable as a constant of the traced step: set_auxiliary_weight
    # re-creates the step, so the new weight shows in the very next call.
    inputs = keras.Input((3,))
    h = keras.layers.Dense(4, name="h")(inputs)
    toy = keras.Model(inputs, [keras.layers.Dense(1, name="aux")(h),
                               keras.layers.Dense(1, name="main")(h)])
    toy.compile(keras.optimizers.SGD(0.0), loss=auxiliary_losses(toy, "mse"))
    tx, ty = np.ones((4, 3), "float32"), np.ones((4, 1), "float32")
    full = toy.train_on_batch(tx, [ty, ty], return_dict=True)
    set_auxiliary_weight(toy, 0.0)
    off = toy.train_on_batch(tx, [ty, ty], return_dict=True)
    assert off["aux_loss"] == 0 and full["aux_loss"] > 0, (full, off)
    assert abs(off["loss"] - off["main_loss"]) < 1e-6, off
    set_auxiliary_weight(toy, 0.5)
    half = toy.evaluate(tx, [ty, ty], verbose=0, return_dict=True)
    assert abs(half["aux_loss"] - 0.5 * full["aux_loss"]) < 1e-5, (full, half)
    print("ok")
"""


jax_run = _jax_backend.module_fixture(JAX_CODE)


# ---- sizes and layout ----------------------------------------------------------------------

@pytest.mark.parametrize("variant, total, trainable", [
    (508, 276_684_936, 276_681_096),
    (252, 184_404_104, 184_400_264),
])
def test_full_size_parameter_counts(variant, total, trainable):
    # Built at full width (weights only: about 1.1 GB and a few seconds for Micro-Net-508).
    model = build("micronet", variant=variant)
    try:
        assert model.name == f"micronet{variant}"
        assert model.count_params() == total == micronet_parameters(variant)
        assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == trainable
        assert micronet_parameters(variant, trainable_only=True) == trainable
        assert model.input_shape == (None, variant, variant, 3)
        assert model.output_names == ["aux1", "aux2", "aux3", "main"]     # main head last
        assert all(shape == (None, variant, variant, 2) for shape in model.output_shape)
        assert model.get_layer("main_concat").output.shape[-1] == 448     # 64 + 128 + 256
        assert model.get_layer("b4_concat").output.shape[1:] == (
            (28, 28, 1024) if variant == 508 else (12, 12, 1024))
        assert all(model.get_layer(n).dtype_policy.name == "float32" for n in model.output_names)
    finally:
        del model
        keras.backend.clear_session()
        gc.collect()


@pytest.mark.parametrize("variant", [508, 252])
def test_width_scaled_model_matches_the_formula(variant):
    model = micronet(variant=variant, width=1 / 16, classes=3)
    assert model.count_params() == micronet_parameters(variant, classes=3, width=1 / 16)
    sizes = [model.get_layer(f"b{i}_resize").output.shape[1] for i in range(1, 5)]
    assert sizes == ([256, 128, 64, 32] if variant == 508 else [128, 64, 32, 16])
    assert model.output_shape[-1] == (None, variant, variant, 3)


def test_input_checks_and_registry_defaults():
    assert micronet(input_shape=(252, 252, 1), width=1 / 32).name == "micronet252"
    with pytest.raises(ValueError, match="takes 508x508"):
        micronet(input_shape=(512, 512, 3), variant=508)
    with pytest.raises(ValueError, match="variant"):
        micronet(input_shape=(256, 256, 3))
    assert default_config("micronet")["variant"] == 508
    sigmoid = micronet(variant=252, width=1 / 32, classes=1)
    assert sigmoid.get_layer("main").get_config()["activation"] == "sigmoid"


def test_mixed_precision_outputs_are_float32():
    # Micro-Net's size makes mixed precision the way to train it.
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = micronet(variant=252, width=1 / 32)
        assert model.get_layer("b5_1_conv").compute_dtype == "float16"
        outputs = model(np.random.rand(1, 252, 252, 3).astype("float32"))
    finally:
        keras.config.set_dtype_policy(previous)
    for out in outputs:
        assert keras.backend.standardize_dtype(out.dtype) == "float32"
        np.testing.assert_allclose(keras.ops.convert_to_numpy(out).sum(-1), 1, rtol=1e-3)


# ---- training with the auxiliary-loss weight -----------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = micronet(variant=252, width=1 / 32)
    model.compile(keras.optimizers.SGD(0.01),
                  loss=auxiliary_losses(model, "categorical_crossentropy"))
    rng = np.random.default_rng(0)
    x = rng.random((1, 252, 252, 3), dtype=np.float32)
    y = np.zeros((1, 252, 252, 2), "float32")
    y[..., 0] = rng.random((1, 252, 252)) > 0.5
    y[..., 1] = 1 - y[..., 0]
    return model, x, [y] * 4, tmp_path_factory.mktemp("micronet")


def test_one_training_step(tiny):
    model, x, ys, _ = tiny
    before = [w.copy() for w in model.get_weights()]
    logs = model.train_on_batch(x, ys, return_dict=True)
    assert set(logs) == {"loss", "aux1_loss", "aux2_loss", "aux3_loss", "main_loss"}
    assert all(np.isfinite(v) for v in logs.values())
    changed = [not np.array_equal(b, a) for b, a in zip(before, model.get_weights())]
    assert sum(changed) > len(changed) // 2


def test_auxiliary_weight_changes_the_reported_losses(tiny):
    model, x, ys, _ = tiny
    assert len(auxiliary_weight_variables(model)) == 1          # one weight shared by three
    set_auxiliary_weight(model, 1.0)
    full = model.evaluate(x, ys, verbose=0, return_dict=True)
    set_auxiliary_weight(model, 0.25)
    quarter = model.evaluate(x, ys, verbose=0, return_dict=True)
    for name in ("aux1_loss", "aux2_loss", "aux3_loss"):
        assert quarter[name] == pytest.approx(0.25 * full[name], rel=1e-5)
    assert quarter["main_loss"] == pytest.approx(full["main_loss"], rel=1e-6)
    set_auxiliary_weight(model, 0.0)
    off = model.train_on_batch(x, ys, return_dict=True)
    assert off["aux1_loss"] == off["aux2_loss"] == off["aux3_loss"] == 0
    assert off["loss"] == pytest.approx(off["main_loss"], rel=1e-6)


def test_callback_decays_the_weight_as_one_over_epoch(tiny):
    model, x, ys, _ = tiny
    callback = AuxiliaryLossWeight()
    history = model.fit(x, ys, epochs=3, verbose=0, callbacks=[callback])
    assert callback.values == [(1, 1.0), (2, 0.5), (3, pytest.approx(1 / 3))]
    assert float(keras.ops.convert_to_numpy(callback.variables[0])) == pytest.approx(1 / 3)
    assert len(history.history["aux1_loss"]) == 3
    assert inverse_epoch(4) == 0.25


def test_save_and_reload(tiny):
    model, x, _, tmp = tiny
    set_auxiliary_weight(model, 0.2)
    path = tmp / "micronet.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    for a, b in zip(model(x, training=False), reloaded(x, training=False)):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(b), keras.ops.convert_to_numpy(a),
                                   rtol=1e-5, atol=1e-6)
    weights = auxiliary_weight_variables(reloaded)
    assert weights and all(float(keras.ops.convert_to_numpy(w)) == pytest.approx(0.2)
                           for w in weights)


def test_scaled_loss_alone():
    loss = ScaledLoss("mse", weight=3.0)
    y_true, y_pred = np.zeros((2, 4), "float32"), np.ones((2, 4), "float32")
    assert float(keras.ops.convert_to_numpy(loss(y_true, y_pred))) == pytest.approx(3.0)
    loss.set_weight(0.5)
    assert float(keras.ops.convert_to_numpy(loss(y_true, y_pred))) == pytest.approx(0.5)
    clone = ScaledLoss.from_config(loss.get_config())
    assert float(keras.ops.convert_to_numpy(clone(y_true, y_pred))) == pytest.approx(0.5)
    wrapped = ScaledLoss(keras.losses.MeanAbsoluteError(), weight=2.0)
    assert float(keras.ops.convert_to_numpy(wrapped(y_true, y_pred))) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="at least two"):
        auxiliary_losses(["only"], "mse")


def test_callback_needs_a_scaled_loss():
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile("sgd", loss="mse")
    with pytest.raises(ValueError, match="ScaledLoss"):
        model.fit(np.ones((2, 2)), np.ones((2, 1)), verbose=0, callbacks=[AuxiliaryLossWeight()])


def test_jax_backend_builds_trains_and_reweights(jax_run):
    # Started when this module began (see jax_run).
    assert "ok" in _jax_backend.finish(jax_run)
