"""Residual Attention Network: paper-size parameter counts, attention residual learning, one
training step, saving and reloading, and the JAX backend."""

import keras
import numpy as np
import pytest

import _jax_backend
from _model_checks import (assert_most_weights_changed, assert_reloads_identically, images,
                          predict, trained_tiny_fixture)
from kerasmed.models import build, get_spec, list_models
from kerasmed.models.residual_attention import attention_module, residual_attention_network

JAX_CODE = """
    import numpy as np, keras
    assert keras.backend.backend() == "jax"
    from kerasmed.models import build
    # Attention-56 has every code path of the builder but oct_small's dense head.
    model = build("residual_attention_network", input_shape=(32, 32, 1), classes=3,
                  width=1 / 16)
    model.compile(keras.optimizers.SGD(0.01), loss="categorical_crossentropy")
    before = model.get_weights()
    loss = model.train_on_batch(np.random.rand(2, 32, 32, 1).astype("float32"),
                                keras.utils.to_categorical([0, 2], 3))
    assert np.isfinite(loss), loss
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    print("ok")
"""


jax_run = _jax_backend.module_fixture(JAX_CODE)


def trainable_count(model):
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


# Documented in residual_attention_network's docstring, beside the papers' figures.
@pytest.mark.parametrize("variant, shape, classes, total, trainable, paper", [
    ("attention56", (224, 224, 3), 1000, 31_883_432, 31_810_728, 31.9e6),
    ("attention92", (224, 224, 3), 1000, 52_599_976, 52_466_344, 51.3e6),
    ("oct_small", (32, 32, 1), 4, 1_917_508, 1_905_412, 1.9e6),
])
def test_paper_size_parameter_counts(variant, shape, classes, total, trainable, paper):
    model = residual_attention_network(shape, classes, variant=variant)
    assert model.name == variant
    assert model.count_params() == total
    assert trainable_count(model) == trainable
    assert abs(trainable - paper) / paper < 0.025
    assert model.output_shape == (None, classes)
    assert model.layers[-1].dtype_policy.name == "float32"


def test_registry_and_options():
    assert "residual_attention_network" in list_models("classification")
    assert get_spec("residual_attention_network").defaults["variant"] == "attention56"
    model = build("residual_attention_network", input_shape=(64, 64, 3), classes=5, width=1 / 16,
                  activation=None)
    assert model.layers[-1].name == "predictions"
    with pytest.raises(ValueError, match="variant"):
        residual_attention_network(variant="attention128")
    with pytest.raises(ValueError, match="divisible by 32"):
        residual_attention_network((48, 48, 3))


def test_attention_residual_learning():
    # A module's output after its trunk is (1 + M) * T: with M = sigmoid(m) in (0, 1) it lies
    # between T and 2T. Check on the module's own tensors.
    inputs = keras.Input((16, 16, 8))
    out = attention_module(inputs, 8, name="att", pools=2, expansion=2)
    model = keras.Model(inputs, out)
    probe = keras.Model(inputs, [model.get_layer("att_trunk2_add").output,
                                 model.get_layer("att_mask_sigmoid").output,
                                 model.get_layer("att_residual").output])
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 8)).astype("float32")
    trunk, mask, fused = (keras.ops.convert_to_numpy(t) for t in probe(x))
    np.testing.assert_allclose(fused, (1 + mask) * trunk, rtol=1e-5, atol=1e-6)
    assert model.output_shape == (None, 16, 16, 8)
    # Stage-1 mask of Attention-56: three poolings down, skips at 1/2 and 1/4.
    big = keras.Model(inputs, attention_module(inputs, 8, name="a", pools=3, expansion=2))
    names = {layer.name for layer in big.layers}
    assert {"a_mask_pool3", "a_mask_merge1", "a_mask_merge2"} <= names
    assert "a_mask_merge3" not in names


# Eager: tracing this ~330-weight step takes TensorFlow tens of seconds on this CPU; the JAX test
# jit-compiles the same step.
trained_tiny = trained_tiny_fixture(
    lambda: residual_attention_network((64, 64, 3), classes=3, width=1 / 16),
    images(2, (64, 64, 3)), keras.utils.to_categorical([0, 2], 3), "categorical_crossentropy",
    "ran")


def test_one_training_step(trained_tiny):
    model, x, before, loss, _ = trained_tiny
    assert np.isfinite(loss)
    assert_most_weights_changed(before, model)
    np.testing.assert_allclose(predict(model, x).sum(axis=1), 1, rtol=1e-5)


def test_save_and_reload_give_identical_predictions(trained_tiny):
    model, x, _, _, tmp = trained_tiny
    assert_reloads_identically(model, x, tmp / "ran.keras")


def test_oct_small_on_grayscale():
    # Its layers are Attention-56's plus Keras' Flatten / Dense / Dropout: a forward pass.
    model = residual_attention_network((32, 32, 1), classes=4, variant="oct_small", width=0.25)
    assert model.get_layer("fc1").units == 128
    assert model.get_layer("stage2_attention1_mask_pool4").output.shape[1:3] == (1, 1)
    x = np.random.default_rng(1).random((2, 32, 32, 1), dtype=np.float32)
    probabilities = keras.ops.convert_to_numpy(model(x, training=True))
    assert probabilities.shape == (2, 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)


def test_jax_backend_builds_and_trains(jax_run):
    # Started when this module began (see jax_run).
    assert "ok" in _jax_backend.finish(jax_run)
