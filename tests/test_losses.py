"""kerasmed.losses against plain NumPy, under low precision, through get() and saving, on JAX."""

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from kerasmed import losses  # noqa: E402

EPS = 1e-7
ROOT = Path(__file__).resolve().parents[1]

# ---------------------------------------------------------------------------------------------
# Inputs: every batch mixes empty, all-foreground and random masks.


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def make_case(mode, seed=0, spatial=(8, 8)):
    """``(y_true, logits)`` for 6 images; y_true in the form ``mode`` expects."""
    rng = np.random.default_rng(seed)
    if mode == "binary":
        shape = (6, *spatial, 1)
        y_true = np.zeros(shape, "float32")
        y_true[2] = 1.0                                   # all foreground
        y_true[3] = rng.random(shape[1:]) > 0.5           # random
        y_true[4] = rng.random(shape[1:]) > 0.7           # random, predicted empty below
        logits = rng.normal(0.0, 3.0, shape)
        logits[0] = -30.0                                 # empty truth, empty prediction
        logits[1] = rng.normal(-6.0, 1.0, shape[1:])      # empty truth, near-empty prediction
        logits[2] = 30.0                                  # full truth, full prediction
        logits[4] = -3.0                                  # non-empty truth, empty prediction
        return y_true, logits.astype("float32")           # image 5: empty truth, random pred
    labels = rng.integers(0, 3, (6, *spatial))
    labels[0] = 0                                         # background only
    labels[1] = 2                                         # one class everywhere
    labels[4][labels[4] == 1] = 0                         # class 1 absent
    logits = rng.normal(0.0, 2.0, (*labels.shape, 3))
    logits[0] = [30.0, -30.0, -30.0]                      # perfect prediction of image 0
    logits[1] += 3.0 * np.eye(3)[labels[1]]
    y_true = np.eye(3, dtype="float32")[labels] if mode == "multiclass" else labels[..., None]
    return y_true, logits.astype("float32")


def probabilities(mode, logits):
    act = _sigmoid if mode == "binary" else _softmax
    return act(logits.astype("float64")).astype("float32")


# ---------------------------------------------------------------------------------------------
# NumPy reference: textbook formulas, one image and one class at a time.


def np_prepare(y_true, y_pred, mode):
    y_pred = y_pred.astype("float64")
    if mode == "sparse":
        labels = y_true.astype(int)
        if labels.ndim == y_pred.ndim:
            labels = labels[..., 0]
        y_true = np.eye(y_pred.shape[-1])[labels]
    y_true = y_true.astype("float64")
    if y_true.ndim == y_pred.ndim - 1:
        y_true = y_true[..., None]
    return y_true, y_pred


def np_overlap(name, t, p, smooth=1.0, alpha=0.3, beta=0.7, gamma=0.75):
    """Loss of one image and one class (t, p flat)."""
    inter = (t * p).sum()
    if name == "dice":
        return 1.0 - (2 * inter + smooth) / (t.sum() + p.sum() + smooth)
    if name == "jaccard":
        return 1.0 - (inter + smooth) / (t.sum() + p.sum() - inter + smooth)
    ti = (inter + smooth) / (inter + alpha * ((1 - t) * p).sum() + beta * (t * (1 - p)).sum()
                             + smooth)
    if name == "tversky":
        return 1.0 - ti
    return max(1.0 - ti, EPS) ** gamma


def np_pixelwise(name, t, p, mode, alpha=0.25, gamma=2.0):
    """Mean over pixels of one image (t, p of shape (..., C))."""
    p = np.clip(p, EPS, 1 - EPS)
    if name == "ce":
        if mode == "binary":
            return np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p)))
        return np.mean(-(t * np.log(p)).sum(-1))
    if mode == "binary":
        p_t = np.where(t == 1, p, 1 - p)
        a_t = np.where(t == 1, alpha, 1 - alpha)
        return np.mean(-a_t * (1 - p_t) ** gamma * np.log(p_t))
    return np.mean(-(alpha * t * (1 - p) ** gamma * np.log(p)).sum(-1))


def np_loss(name, y_true, y_pred, mode, **kw):
    y_true, y_pred = np_prepare(y_true, y_pred, mode)
    values = []
    for t, p in zip(y_true, y_pred):
        def overlap(kind, **k):
            return np.mean([np_overlap(kind, t[..., c].ravel(), p[..., c].ravel(), **k)
                            for c in range(t.shape[-1])])
        if name in ("dice", "jaccard", "tversky", "focal_tversky"):
            values.append(overlap(name, **kw))
        elif name == "bce_dice":
            bw, dw = kw.get("bce_weight", 1.0), kw.get("dice_weight", 1.0)
            values.append(bw * np_pixelwise("ce", t, p, mode)
                          + dw * overlap("dice", smooth=kw.get("smooth", 1.0)))
        else:
            values.append(np_pixelwise("focal", t, p, mode, **kw))
    return float(np.mean(values))


NAMES = ["dice", "jaccard", "tversky", "focal_tversky", "bce_dice", "focal"]
MODES = ["binary", "multiclass", "sparse"]
KWARGS = {"dice": {}, "jaccard": {"smooth": 0.5}, "tversky": {"alpha": 0.4, "beta": 0.6},
          "focal_tversky": {"alpha": 0.3, "beta": 0.7, "gamma": 0.75},
          "bce_dice": {"bce_weight": 0.3, "dice_weight": 0.7}, "focal": {"alpha": 0.5,
                                                                         "gamma": 1.5}}


def value(loss, y_true, y_pred):
    return float(keras.ops.convert_to_numpy(loss(y_true, y_pred)))


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_matches_numpy(name, mode):
    y_true, logits = make_case(mode)
    probs = probabilities(mode, logits)
    expected = np_loss(name, y_true, probs, mode, **KWARGS[name])
    loss = losses.get({"name": name, "mode": mode, **KWARGS[name]})
    assert value(loss, y_true, probs) == pytest.approx(expected, rel=1e-4, abs=1e-6)
    from_logits = losses.get({"name": name, "mode": mode, "from_logits": True, **KWARGS[name]})
    assert value(from_logits, y_true, logits) == pytest.approx(expected, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_each_image_and_3d_volumes(name):
    # Per-image values (reduction="none") and 3-D inputs reduce over every spatial axis.
    y_true, logits = make_case("binary", seed=1, spatial=(4, 6, 5))
    probs = probabilities("binary", logits)
    loss = losses.get({"name": name, "reduction": "none", **KWARGS[name]})
    per_image = keras.ops.convert_to_numpy(loss(y_true, probs))
    assert per_image.shape == (6,)
    for i in range(6):
        expected = np_loss(name, y_true[i:i + 1], probs[i:i + 1], "binary", **KWARGS[name])
        assert per_image[i] == pytest.approx(expected, rel=1e-4, abs=1e-6)


@pytest.mark.parametrize("name", ["dice", "jaccard", "tversky", "focal_tversky", "bce_dice"])
@pytest.mark.parametrize("mode", MODES)
def test_perfect_prediction_of_empty_mask_is_zero(name, mode):
    if mode == "binary":
        y_true = np.zeros((2, 8, 8, 1), "float32")
        y_pred = np.zeros_like(y_true)
    else:  # background everywhere, predicted exactly
        y_pred = np.zeros((2, 8, 8, 3), "float32")
        y_pred[..., 0] = 1.0
        y_true = y_pred if mode == "multiclass" else np.zeros((2, 8, 8, 1), "int32")
    for smooth in (1.0, 1e-5, 0.0):
        kwargs = {"smooth": smooth} if name != "bce_dice" else {}
        result = value(losses.get({"name": name, "mode": mode, **kwargs}), y_true, y_pred)
        assert np.isfinite(result) and result < 1e-4


def test_target_layouts_agree():
    y_true, logits = make_case("sparse")
    probs = probabilities("sparse", logits)
    one_hot = np.eye(3, dtype="float32")[y_true[..., 0]]
    expected = value(losses.DiceLoss(mode="multiclass"), one_hot, probs)
    assert value(losses.DiceLoss(mode="sparse"), y_true, probs) == pytest.approx(expected)
    assert value(losses.DiceLoss(mode="sparse"), y_true[..., 0], probs) == pytest.approx(expected)
    assert value(losses.DiceLoss(mode="sparse"), y_true.astype("float32"), probs) == \
        pytest.approx(expected)
    y_true, logits = make_case("binary")
    probs = probabilities("binary", logits)
    assert value(losses.DiceLoss(), y_true[..., 0], probs) == \
        pytest.approx(value(losses.DiceLoss(), y_true, probs))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_low_precision_predictions(name, mode, dtype):
    y_true, logits = make_case(mode, seed=2)
    # Moderate logits: a float16 probability within 5e-4 of 1 rounds to 1, which no loss can undo.
    probs = probabilities(mode, np.clip(logits, -4.0, 4.0))
    low = keras.ops.cast(probs, dtype)
    loss = losses.get({"name": name, "mode": mode})
    result = loss(y_true, low)
    assert keras.backend.standardize_dtype(result.dtype) == "float32"
    result = float(result)
    assert np.isfinite(result)
    # Exactly the float32 value of the rounded inputs, and close to that of the float32 inputs.
    rounded = keras.ops.convert_to_numpy(keras.ops.cast(low, "float32"))
    assert result == pytest.approx(value(loss, y_true, rounded), rel=1e-5, abs=1e-6)
    assert result == pytest.approx(value(loss, y_true, probs), rel=0.05, abs=0.01)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", NAMES)
def test_gradient_finite_on_empty_masks(name, mode, from_logits):
    channels = 1 if mode == "binary" else 3
    if from_logits:
        y_pred = np.full((2, 8, 8, channels), -20.0, "float32")
        y_pred[..., 0] = 20.0 if mode != "binary" else -20.0
    else:  # exact zeros and ones: the edge where x ** 0.75 and log(0) live
        y_pred = np.zeros((2, 8, 8, channels), "float32")
        if mode != "binary":
            y_pred[..., 0] = 1.0
    y_true = {"binary": np.zeros((2, 8, 8, 1), "float32"),
              "multiclass": np.eye(3, dtype="float32")[np.zeros((2, 8, 8), int)],
              "sparse": np.zeros((2, 8, 8, 1), "int32")}[mode]
    # Second image: an empty prediction of a non-empty mask.
    if mode == "binary":
        y_true[1, 2:5, 2:5] = 1.0
    elif mode == "multiclass":
        y_true[1, 2:5, 2:5] = [0.0, 1.0, 0.0]
    else:
        y_true[1, 2:5, 2:5] = 1
    loss = losses.get({"name": name, "mode": mode, "from_logits": from_logits})
    variable = tf.Variable(y_pred)
    with tf.GradientTape() as tape:
        result = loss(y_true, variable)
    grad = tape.gradient(result, variable).numpy()
    assert np.isfinite(float(result)) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("mode", MODES)
def test_weighted_crossentropy_matches_numpy(mode):
    y_true, logits = make_case(mode)
    probs = probabilities(mode, logits)
    weights = [0.2, 3.0] if mode == "binary" else [0.5, 2.0, 4.0]
    t, p = np_prepare(y_true, probs, mode)
    p = np.clip(p, EPS, 1 - EPS)
    if mode == "binary":
        per_pixel = -(weights[1] * t * np.log(p) + weights[0] * (1 - t) * np.log(1 - p))[..., 0]
    else:
        per_pixel = -(np.asarray(weights) * t * np.log(p)).sum(-1)
    expected = per_pixel.mean(axis=(1, 2)).mean()
    loss = losses.get({"name": "weighted_crossentropy", "mode": mode, "class_weights": weights})
    assert value(loss, y_true, probs) == pytest.approx(expected, rel=1e-5)
    # Unweighted, it is the plain cross-entropy; the weights really change the value.
    plain = losses.get({"name": "weighted_crossentropy", "mode": mode})
    assert value(plain, y_true, probs) == pytest.approx(
        np.mean([np_pixelwise("ce", a, b, mode) for a, b in zip(t, p)]), rel=1e-5)
    assert abs(value(plain, y_true, probs) - expected) > 1e-3
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert restored.class_weights == weights


def test_weighted_crossentropy_rejects_bad_weights():
    with pytest.raises(ValueError, match="background, foreground"):
        losses.get({"name": "weighted_crossentropy", "mode": "binary", "class_weights": [1.0]})
    with pytest.raises(ValueError, match="non-negative"):
        losses.get({"name": "weighted_crossentropy", "class_weights": [1.0, -2.0]})
    y_true, logits = make_case("multiclass")
    with pytest.raises(ValueError, match="2 class_weights for 3 output classes"):
        losses.get({"name": "weighted_crossentropy", "class_weights": [1.0, 2.0]})(
            y_true, probabilities("multiclass", logits))


# ---------------------------------------------------------------------------------------------
# Lookup by name.


def test_get_by_name_and_dict():
    assert losses.available() == sorted(
        ["dice", "jaccard", "iou", "bce_dice", "focal", "tversky", "focal_tversky",
         "weighted_crossentropy"])
    classes = {"dice": losses.DiceLoss, "jaccard": losses.JaccardLoss, "iou": losses.JaccardLoss,
               "bce_dice": losses.BCEDiceLoss, "focal": losses.FocalLoss,
               "tversky": losses.TverskyLoss, "focal_tversky": losses.FocalTverskyLoss}
    for name, cls in classes.items():
        assert type(losses.get(name)) is cls  # kerasmed's "dice"/"tversky" win over Keras'
    loss = losses.get({"name": "focal_tversky", "alpha": 0.7, "beta": 0.3, "gamma": 1.0,
                       "mode": "sparse"})
    assert (loss.alpha, loss.beta, loss.gamma, loss.mode) == (0.7, 0.3, 1.0, "sparse")
    built = losses.DiceLoss()
    assert losses.get(built) is built
    assert losses.get(keras.losses.binary_crossentropy) is keras.losses.binary_crossentropy


def test_keras_names():
    y_true, logits = make_case("binary")
    probs = probabilities("binary", logits)
    expected = float(keras.losses.binary_crossentropy(y_true, probs).numpy().mean())
    for spec in ("binary_crossentropy", "bce", "BinaryCrossentropy"):
        assert value(losses.get(spec), y_true, probs) == pytest.approx(expected, rel=1e-5)
    bce_logits = losses.get({"name": "bce", "from_logits": True})
    assert value(bce_logits, y_true, logits) == pytest.approx(expected, rel=1e-3)
    assert losses.get("mse") is not None
    labels = make_case("sparse")[0]
    assert losses.get("sparse_categorical_crossentropy")(labels, probabilities(
        "sparse", make_case("sparse")[1])) is not None


@pytest.mark.parametrize("spec, words", [
    ("dcie", ["unknown loss 'dcie'", "Did you mean 'dice'"]),
    ("focal_tverski", ["Did you mean 'focal_tversky'"]),
    ("binary_crossentropi", ["Did you mean 'binary_crossentropy'"]),
    ({"name": "tversky", "alpah": 0.5}, ["'alpah'", "Did you mean 'alpha'"]),
    ({"name": "bce", "frm_logits": True}, ["'frm_logits'", "Did you mean 'from_logits'"]),
    ({"name": "mse", "delta": 1.0}, ["'mse' takes no arguments"]),
    ({"name": "dice", "mode": "multi"}, ["mode must be one of"]),
    ({"mode": "binary"}, ["a loss is a name"]),
    (3, ["a loss is a name"]),
])
def test_get_errors(spec, words):
    with pytest.raises(ValueError) as info:
        losses.get(spec)
    for word in words:
        assert word in str(info.value)


# ---------------------------------------------------------------------------------------------
# Saving.


@pytest.mark.parametrize("name", NAMES)
def test_serialize_round_trip(name):
    loss = losses.get({"name": name, "mode": "multiclass", "from_logits": True, **KWARGS[name]})
    config = keras.saving.serialize_keras_object(loss)
    json.dumps(config)  # experiment files and .keras archives hold it as JSON
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is type(loss) and restored.get_config() == loss.get_config()
    y_true, logits = make_case("multiclass")
    assert value(restored, y_true, logits) == pytest.approx(value(loss, y_true, logits))


def test_saved_model_keeps_loss(tmp_path):
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Conv2D(3, 3, padding="same")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile("adam", loss=losses.get({"name": "focal_tversky", "mode": "sparse",
                                           "from_logits": True, "gamma": 1.5}))
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    y = (x > 0.5).astype("int32") * 2
    model.fit(x, y, epochs=1, verbose=0)
    before = model.evaluate(x, y, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")  # no custom_objects
    assert isinstance(loaded.loss, losses.FocalTverskyLoss) and loaded.loss.gamma == 1.5
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(before, rel=1e-5)


def test_trains_under_mixed_precision():
    # A bfloat16 model output, as under the mixed_bfloat16 policy.
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid",
                                  dtype="mixed_bfloat16")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile("adam", loss=losses.get("bce_dice"))
    x = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")
    history = model.fit(x, (x > 0.5).astype("float32"), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


# ---------------------------------------------------------------------------------------------
# JAX backend: the same numbers.

JAX_SCRIPT = """
import json, sys
import numpy as np
import keras
from kerasmed import losses
assert keras.backend.backend() == "jax"
data = np.load(sys.argv[1])
out = {}
for key in data.files:
    if key.startswith("true_"):
        case = key[5:]
        mode = case.split("-")[0]
        for name, kwargs in json.loads(sys.argv[2]).items():
            for from_logits, pred in ((False, "probs_"), (True, "logits_")):
                loss = losses.get({"name": name, "mode": mode, "from_logits": from_logits,
                                   **kwargs})
                out[f"{case}/{name}/{from_logits}"] = float(loss(data[key], data[pred + case]))
print(json.dumps(out))
"""


def test_jax_backend_agrees(tmp_path):
    pytest.importorskip("jax")
    arrays, expected = {}, {}
    for mode in MODES:
        y_true, logits = make_case(mode, seed=5)
        probs = probabilities(mode, logits)
        arrays.update({f"true_{mode}": y_true, f"probs_{mode}": probs,
                       f"logits_{mode}": logits})
        for name in NAMES:
            for from_logits, pred in ((False, probs), (True, logits)):
                loss = losses.get({"name": name, "mode": mode, "from_logits": from_logits,
                                   **KWARGS[name]})
                expected[f"{mode}/{name}/{from_logits}"] = value(loss, y_true, pred)
    np.savez(tmp_path / "cases.npz", **arrays)
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", JAX_SCRIPT, str(tmp_path / "cases.npz"),
                           json.dumps(KWARGS)], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got.keys() == expected.keys()
    for key, tf_value in expected.items():
        assert got[key] == pytest.approx(tf_value, rel=1e-4, abs=1e-6), key
