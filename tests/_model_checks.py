"""Checks the model tests share: random inputs, eager predictions, one training step and the
save / reload round trip. Each lives here once; the test modules import them."""

import keras
import numpy as np
import pytest


def images(n=2, shape=(32, 32, 3), seed=0):
    """``n`` random float32 images of ``shape`` in [0, 1)."""
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def binary_masks(n=2, shape=(32, 32, 1), seed=1):
    """``n`` random 0/1 float32 masks of ``shape``."""
    return (np.random.default_rng(seed).random((n, *shape)) > 0.5).astype("float32")


def predict(model, x):
    """An eager call (for one small batch, much faster on CPU than tracing ``predict``);
    NumPy output, or a list of them for several outputs."""
    out = model(x, training=False)
    if isinstance(out, (list, tuple)):
        return [keras.ops.convert_to_numpy(o) for o in out]
    return keras.ops.convert_to_numpy(out)


def predict_outputs(model, x):
    """``predict`` as a list, one NumPy array per output, for one output too."""
    out = predict(model, x)
    return out if isinstance(out, list) else [out]


def assert_probability_maps(out, shape, classes):
    """``out`` is a float32 ``(*shape, classes)`` head output: sigmoid probabilities in [0, 1]
    for one class, a softmax summing to 1 over the classes otherwise."""
    assert out.shape == (*shape, classes) and out.dtype == np.float32
    if classes == 1:
        assert ((out >= 0) & (out <= 1)).all()
    else:
        np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)


def train_one_step(model, x, y, loss, optimizer=None):
    """Compile eagerly (tracing a large step costs TensorFlow tens of seconds on a CPU and says
    nothing more about the model) and take one step. Returns ``(weights_before, loss)``."""
    model.compile(optimizer or keras.optimizers.SGD(0.01), loss=loss, run_eagerly=True)
    before = [w.copy() for w in model.get_weights()]
    return before, model.train_on_batch(x, y)


def assert_reloads_identically(model, x, path):
    """Save ``model`` to ``path`` (.keras), load it back and compare name and predictions."""
    model.save(path)
    reloaded = keras.saving.load_model(path)
    assert reloaded.name == model.name
    a, b = predict(model, x), predict(reloaded, x)
    for p, q in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
        np.testing.assert_allclose(q, p, rtol=1e-5, atol=1e-6)
    return reloaded


def trained_tiny_fixture(make_model, x, y, loss, name):
    """A module-scoped fixture: a model from ``make_model()`` after one SGD step on ``(x, y)``.

    It gives ``(model, x, weights_before, loss, tmp_dir)`` to the tests of one network."""
    @pytest.fixture(scope="module")
    def trained_tiny(tmp_path_factory):
        keras.utils.set_random_seed(0)
        model = make_model()
        before, value = train_one_step(model, x, y, loss)
        return model, x, before, value, tmp_path_factory.mktemp(name)
    return trained_tiny


def assert_most_weights_changed(before, model):
    changed = [not np.array_equal(b, a) for b, a in zip(before, model.get_weights())]
    assert sum(changed) > len(changed) // 2


def train_step_and_round_trip(model, tmp_path, optimizer=None):
    """One eager training step on random data (SGD 0.01 unless ``optimizer``; the loss is finite
    and most weights change), then save, reload and compare predictions exactly."""
    rng = np.random.default_rng(0)
    x = rng.random((2, *model.inputs[0].shape[1:]), dtype=np.float32)
    y = (rng.random((2, *model.outputs[0].shape[1:])) > 0.5).astype("float32")
    model.compile(optimizer or keras.optimizers.SGD(0.01), loss="binary_crossentropy",
                  run_eagerly=True)
    before = [w.copy() for w in model.get_weights()]
    assert np.isfinite(float(model.train_on_batch(x, y)))
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights())]
    assert np.mean(changed) > 0.8, np.mean(changed)
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.name == model.name and restored.count_params() == model.count_params()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(x, training=False)),
                                  keras.ops.convert_to_numpy(restored(x, training=False)))
