"""kerasmed.metrics against plain NumPy: per-image means, empty masks, state, names, saving, JAX."""

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from kerasmed import metrics  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NAMES = ["dice", "iou", "precision", "recall"]
MODES = ["binary", "multiclass", "sparse"]


def make_case(mode, seed=0, n=6):
    """``(y_true, y_pred, logits)`` for ``n`` 8x8 images mixing empty, full and random masks."""
    rng = np.random.default_rng(seed)
    if mode == "binary":
        shape = (n, 8, 8, 1)
        y_true = (rng.random(shape) > rng.random((n, 1, 1, 1))).astype("float32")
        y_pred = rng.random(shape).astype("float32")
        y_true[0], y_pred[0] = 0.0, 0.1            # both empty
        y_true[1], y_pred[1] = 0.0, 0.9            # empty truth, full prediction
        y_true[2], y_pred[2] = 1.0, 0.2            # full truth, empty prediction
        y_true[3], y_pred[3] = 1.0, 0.8            # both full
        logits = np.log(y_pred) - np.log1p(-y_pred)
        return y_true, y_pred, logits.astype("float32")
    labels = rng.integers(0, 3, (n, 8, 8))
    labels[0] = 0
    labels[1] = 2
    labels[2][labels[2] == 1] = 0
    logits = rng.normal(0.0, 1.0, (n, 8, 8, 3)).astype("float32")
    logits[0] = [5.0, 0.0, 0.0]                    # background only, predicted exactly
    logits[3] = [0.0, 5.0, 0.0]                    # class 1 predicted everywhere
    y_pred = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    y_true = np.eye(3, dtype="float32")[labels] if mode == "multiclass" else labels[..., None]
    return y_true, y_pred.astype("float32"), logits


def np_score(name, t, p):
    """Score of one image and one class (boolean arrays), with the documented empty rules."""
    tp, fp, fn = np.sum(t & p), np.sum(~t & p), np.sum(t & ~p)
    if name == "dice":
        return 1.0 if t.sum() + p.sum() == 0 else 2 * tp / (t.sum() + p.sum())
    if name == "iou":
        return 1.0 if (t | p).sum() == 0 else tp / (t | p).sum()
    if name == "precision":
        return (1.0 if t.sum() == 0 else 0.0) if p.sum() == 0 else tp / p.sum()
    return (1.0 if p.sum() == 0 else 0.0) if t.sum() == 0 else tp / t.sum()


def np_per_image(name, y_true, y_pred, mode, threshold=0.5, ignore_background=False):
    if mode == "binary":
        t, p = y_true.astype(bool), y_pred > threshold
    else:
        labels = y_true.argmax(-1) if mode == "multiclass" else y_true[..., 0]
        classes = range(1 if ignore_background else 0, y_pred.shape[-1])
        t = np.stack([labels == c for c in classes], -1)
        p = np.stack([y_pred.argmax(-1) == c for c in classes], -1)
    return np.array([np.mean([np_score(name, t[i, ..., c], p[i, ..., c])
                              for c in range(t.shape[-1])]) for i in range(len(t))])


def result_of(metric, *batches):
    metric.reset_state()
    for y_true, y_pred in batches:
        metric.update_state(y_true, y_pred)
    return float(metric.result())


@pytest.mark.parametrize("ignore_background", [False, True])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_matches_numpy(name, mode, ignore_background):
    y_true, y_pred, logits = make_case(mode)
    kwargs = {"mode": mode, "ignore_background": ignore_background}
    expected = np_per_image(name, y_true, y_pred, mode, ignore_background=ignore_background)
    assert result_of(metrics.get({"name": name, **kwargs}), (y_true, y_pred)) == \
        pytest.approx(expected.mean(), rel=1e-6)
    from_logits = metrics.get({"name": name, "from_logits": True, **kwargs})
    assert result_of(from_logits, (y_true, logits)) == pytest.approx(expected.mean(), rel=1e-6)


@pytest.mark.parametrize("name, expected", [
    # (both empty, empty truth + full prediction, full truth + empty prediction, both full)
    ("dice", [1.0, 0.0, 0.0, 1.0]),
    ("iou", [1.0, 0.0, 0.0, 1.0]),
    ("precision", [1.0, 0.0, 0.0, 1.0]),
    ("recall", [1.0, 0.0, 0.0, 1.0]),
])
def test_empty_and_full_masks(name, expected):
    y_true, y_pred, _ = make_case("binary")
    metric = metrics.get(name)
    per_image = keras.ops.convert_to_numpy(metric.scores(y_true[:4], y_pred[:4]))
    np.testing.assert_allclose(per_image, expected)


def test_threshold():
    y_true = np.ones((1, 4, 4, 1), "float32")
    y_pred = np.full((1, 4, 4, 1), 0.4, "float32")
    assert result_of(metrics.Dice(), (y_true, y_pred)) == 0.0
    assert result_of(metrics.Dice(threshold=0.3), (y_true, y_pred)) == 1.0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_state_is_the_mean_over_all_images(name, mode):
    y_true, y_pred, _ = make_case(mode, seed=3, n=9)
    metric = metrics.get({"name": name, "mode": mode})
    # Unequal batches: a mean of batch means would weigh them wrongly.
    batches = [(y_true[:1], y_pred[:1]), (y_true[1:6], y_pred[1:6]), (y_true[6:], y_pred[6:])]
    expected = np_per_image(name, y_true, y_pred, mode).mean()
    assert result_of(metric, *batches) == pytest.approx(expected, rel=1e-6)
    metric.reset_state()
    assert float(metric.result()) == 0.0
    metric.update_state(*batches[0])
    assert float(metric.result()) == pytest.approx(
        np_per_image(name, y_true[:1], y_pred[:1], mode).mean())


def test_sample_weight():
    y_true, y_pred, _ = make_case("binary")
    per_image = np_per_image("dice", y_true, y_pred, "binary")
    weights = np.array([0.0, 1.0, 2.0, 0.0, 1.0, 3.0], "float32")
    metric = metrics.Dice()
    metric.update_state(y_true, y_pred, sample_weight=weights)
    assert float(metric.result()) == pytest.approx(np.sum(per_image * weights) / weights.sum())
    # Per-pixel weights count an image by its mean weight.
    metric.reset_state()
    metric.update_state(y_true, y_pred, sample_weight=np.broadcast_to(
        weights[:, None, None], (6, 8, 8)))
    assert float(metric.result()) == pytest.approx(np.sum(per_image * weights) / weights.sum())


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_low_precision_predictions(name, mode, dtype):
    y_true, y_pred, _ = make_case(mode, seed=4)
    # Keep probabilities off the threshold, where rounding could flip a pixel.
    if mode == "binary":
        y_pred = np.where(np.abs(y_pred - 0.5) < 0.02, 0.7, y_pred).astype("float32")
    metric = metrics.get({"name": name, "mode": mode})
    metric.update_state(y_true, keras.ops.cast(y_pred, dtype))
    result = metric.result()
    assert keras.backend.standardize_dtype(result.dtype) == "float32"
    assert np.isfinite(float(result))
    assert float(result) == pytest.approx(result_of(metric, (y_true, y_pred)), rel=1e-6)


def test_get_by_name_and_dict():
    assert metrics.available() == sorted(
        ["dice", "f1", "iou", "jaccard", "precision", "recall", "sensitivity"])
    for name, cls in [("dice", metrics.Dice), ("iou", metrics.IoU), ("jaccard", metrics.IoU),
                      ("precision", metrics.Precision), ("recall", metrics.Recall)]:
        metric = metrics.get(name)
        assert type(metric) is cls and metric.name == name  # kerasmed's names win over Keras'
    assert [metrics.get(n).name for n in NAMES] == NAMES  # history columns dice, val_dice, ...
    assert metrics.Dice().name == "dice" and metrics.IoU().name == "iou"
    metric = metrics.get({"name": "iou", "mode": "sparse", "ignore_background": True})
    assert (metric.mode, metric.ignore_background, metric.name) == ("sparse", True, "iou")
    built = metrics.Recall()
    assert metrics.get(built) is built
    assert type(metrics.get("accuracy")) is keras.metrics.Accuracy
    accuracy = metrics.get({"name": "binary_accuracy", "threshold": 0.3})
    assert isinstance(accuracy, keras.metrics.BinaryAccuracy) and accuracy.threshold == 0.3


@pytest.mark.parametrize("spec, words", [
    ("dcie", ["unknown metric 'dcie'", "Did you mean 'dice'"]),
    ("precission", ["Did you mean 'precision'"]),
    ({"name": "dice", "treshold": 0.3}, ["'treshold'", "Did you mean 'threshold'"]),
    ({"name": "binary_accuracy", "treshold": 0.3}, ["Did you mean 'threshold'"]),
    ({"name": "iou", "mode": "one_hot"}, ["mode must be one of"]),
    (["dice"], ["a metric is a name"]),
])
def test_get_errors(spec, words):
    with pytest.raises(ValueError) as info:
        metrics.get(spec)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_serialize_round_trip(name):
    metric = metrics.get({"name": name, "mode": "sparse", "threshold": 0.3,
                          "ignore_background": True, "from_logits": True})
    config = keras.saving.serialize_keras_object(metric)
    json.dumps(config)
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(metric) and restored.get_config() == metric.get_config()
    y_true, _, logits = make_case("sparse")
    assert result_of(restored, (y_true, logits)) == result_of(metric, (y_true, logits))


def test_history_columns_and_saved_model(tmp_path):
    from kerasmed import losses

    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile("adam", loss=losses.get("bce_dice"),
                  metrics=[metrics.get(n) for n in NAMES])
    x = np.random.default_rng(0).random((8, 8, 8, 1)).astype("float32")
    y = (x > 0.5).astype("float32")
    history = model.fit(x, y, validation_data=(x, y), epochs=1, batch_size=3, verbose=0)
    for name in NAMES:
        assert name in history.history and f"val_{name}" in history.history
    # evaluate's metric is the per-image mean over all 8 images, across batches of 3.
    logs = model.evaluate(x, y, batch_size=3, verbose=0, return_dict=True)
    pred = model.predict(x, verbose=0)
    assert logs["dice"] == pytest.approx(np_per_image("dice", y, pred, "binary").mean(),
                                         rel=1e-5)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")  # no custom_objects
    assert loaded.evaluate(x, y, batch_size=3, verbose=0, return_dict=True) == \
        pytest.approx(logs, rel=1e-5)


JAX_SCRIPT = """
import json, sys
import numpy as np
import keras
from kerasmed import metrics
assert keras.backend.backend() == "jax"
data = np.load(sys.argv[1])
out = {}
for mode in ("binary", "multiclass", "sparse"):
    for name in ("dice", "iou", "precision", "recall"):
        for ignore in (False, True):
            metric = metrics.get({"name": name, "mode": mode, "ignore_background": ignore})
            for i in range(3):  # three updates, so the state is exercised too
                metric.update_state(data["true_" + mode][2 * i:2 * i + 2],
                                    data["pred_" + mode][2 * i:2 * i + 2])
            out[f"{mode}/{name}/{ignore}"] = float(metric.result())
print(json.dumps(out))
"""


def test_jax_backend_agrees(tmp_path):
    pytest.importorskip("jax")
    arrays, expected = {}, {}
    for mode in MODES:
        y_true, y_pred, _ = make_case(mode, seed=6)
        arrays.update({f"true_{mode}": y_true, f"pred_{mode}": y_pred})
        for name in NAMES:
            for ignore in (False, True):
                metric = metrics.get({"name": name, "mode": mode, "ignore_background": ignore})
                expected[f"{mode}/{name}/{ignore}"] = result_of(metric, (y_true, y_pred))
    np.savez(tmp_path / "cases.npz", **arrays)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", JAX_SCRIPT, str(tmp_path / "cases.npz")],
                          env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got.keys() == expected.keys()
    for key, tf_value in expected.items():
        assert got[key] == pytest.approx(tf_value, rel=1e-5, abs=1e-7), key
