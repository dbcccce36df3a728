"""U-Net family builders: attention_unet, r2unet, attention_r2unet, unet_parts (and unet)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from _model_checks import images

from kerasmed.models import build, default_config, get_spec

BUILDERS = ["unet", "attention_unet", "r2unet", "attention_r2unet", "unet_parts"]
TINY = {"input_shape": (32, 32, 3), "filters": 4, "depth": 2}

# Paper-size parameter counts at 256x256x3, one sigmoid output. The first four are the counts of
# the reference Keras implementations DRRMSAN compared against (ARCHITECTURES.md).
PAPER_COUNTS = [
    ("unet", dict(batch_norm=False, dropout=0.2, upsampling="nearest"), 31_378_945),
    ("attention_unet", dict(batch_norm=False, dropout=0.2, upsampling="nearest", gate_reduction=4),
     31_902_629),
    ("r2unet", dict(shared_weights=False, batch_norm=False, upsampling="nearest"), 95_986_049),
    ("attention_r2unet", dict(shared_weights=False, batch_norm=False, upsampling="nearest",
                              gate_reduction=4), 96_509_733),
    ("unet", {}, 31_049_409),
    ("attention_unet", {}, 31_401_905),
    ("r2unet", {}, 39_145_345),
    ("attention_r2unet", {}, 39_497_841),
    ("unet_parts", {}, 41_118_329),
]


def _may_be_dead(path):
    # CBAM's MLP has channels // 16 hidden ReLU units (one, at these widths); when they are all
    # inactive for both pooled vectors the MLP rightly gets no gradient.
    return "_cbam_mlp" in path


@pytest.mark.parametrize("name,params,expected", PAPER_COUNTS,
                         ids=[f"{n}-{'ref' if i < 4 else 'default'}{i}"
                              for i, (n, _, _) in enumerate(PAPER_COUNTS)])
def test_paper_size_parameter_count(name, params, expected):
    model = build(name, input_shape=(256, 256, 3), **params)
    assert model.count_params() == expected
    del model
    keras.backend.clear_session()


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("classes", [1, 3])
def test_tiny_output_shapes(name, classes):
    model = build(name, classes=classes, **TINY)
    assert model.name == name
    out = model.predict(images(), verbose=0)
    assert out.shape == (2, 32, 32, classes)
    assert out.dtype == np.float32
    if classes == 1:
        assert ((out >= 0) & (out <= 1)).all()
    else:
        np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", BUILDERS)
def test_one_train_step_changes_weights(name):
    model = build(name, **TINY, dropout=0.1)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  run_eagerly=True)  # tracing the step would dominate; predict covers graphs
    before = [w.numpy().copy() for w in model.trainable_weights]
    x = images(4)
    y = (np.random.default_rng(1).random((4, 32, 32, 1)) > 0.5).astype("float32")
    loss = model.train_on_batch(x, y)
    loss = float(loss[0] if isinstance(loss, (list, tuple)) else loss)
    assert np.isfinite(loss)
    unchanged = [w.path for w, b in zip(model.trainable_weights, before)
                 if np.array_equal(w.numpy(), b) and not _may_be_dead(w.path)]
    assert not unchanged, f"trainable weights did not change: {unchanged}"


@pytest.mark.parametrize("name", BUILDERS)
def test_keras_save_load_round_trip(name, tmp_path):
    model = build(name, **TINY)
    x = images(2, seed=3)
    expected = model.predict(x, verbose=0)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("part", ["residual", "aspp", "cbam", "attention"])
def test_unet_parts_each_part_alone(part):
    flags = {p: p == part for p in ("residual", "aspp", "cbam", "attention")}
    model = build("unet_parts", **TINY, **flags)
    plain = build("unet", **TINY)
    assert model.count_params() > plain.count_params()
    assert model.predict(images(1), verbose=0).shape == (1, 32, 32, 1)


def test_unet_parts_all_off_is_plain_unet():
    off = dict(residual=False, aspp=False, cbam=False, attention=False)
    parts = build("unet_parts", **TINY, **off)
    plain = build("unet", **TINY)
    assert [l.name for l in parts.layers] == [l.name for l in plain.layers]
    parts.set_weights(plain.get_weights())
    x = images(2)
    np.testing.assert_allclose(parts.predict(x, verbose=0), plain.predict(x, verbose=0),
                               rtol=1e-6, atol=1e-7)


def test_unet_parts_any_input_size():
    model = build("unet_parts", input_shape=(None, None, 3), filters=4, depth=2)
    for size in (32, 48):
        assert model.predict(images(1, (size, size, 3)), verbose=0).shape == (1, size, size, 1)


def test_r2unet_shared_weights_reuse_one_conv_per_rcl():
    shared = build("r2unet", **TINY, t=2, shared_weights=True)
    unshared = build("r2unet", **TINY, t=2, shared_weights=False)
    conv = shared.get_layer("enc1_rcl1_conv")
    assert len(conv._inbound_nodes) == 3  # t + 1 applications of one conv
    assert unshared.get_layer("enc1_rcl1_conv2") is not None
    assert unshared.count_params() > shared.count_params()


@pytest.mark.parametrize("mode", ["transpose", "bilinear", "nearest", "bilinear_conv",
                                  "nearest_conv"])
def test_attention_r2unet_upsampling_modes(mode):
    model = build("attention_r2unet", **TINY, upsampling=mode)
    assert model.output_shape == (None, 32, 32, 1)


def test_invalid_upsampling_and_size():
    with pytest.raises(ValueError, match="upsampling"):
        build("attention_unet", **TINY, upsampling="cubic")
    with pytest.raises(ValueError, match="divisible"):
        build("r2unet", input_shape=(30, 30, 3), filters=4, depth=2)


def test_logits_and_mixed_precision():
    model = build("unet_parts", **TINY, activation=None)
    assert model.layers[-1].name == "head_conv"
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build("attention_r2unet", **TINY)
        assert model.output.dtype == "float32"
        assert np.isfinite(model.predict(images(1), verbose=0)).all()
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("name", BUILDERS)
def test_registry_defaults_are_builder_arguments(name):
    spec = get_spec(name)
    assert set(default_config(name)) <= set(spec.parameters())
    assert spec.description


_JAX_SCRIPT = """
import json, sys
import keras, numpy as np
from kerasmed.models import build
assert keras.backend.backend() == "jax"
results = {}
x = np.random.default_rng(0).random((2, 16, 16, 3), dtype=np.float32)
y = (x[..., :1] > 0.5).astype("float32")
for name in json.loads(sys.argv[1]):
    # Depth 1 at 16 px: JAX compiles every op shape once, and that compilation is the cost here.
    model = build(name, input_shape=(16, 16, 3), filters=4, depth=1)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    before = [keras.ops.convert_to_numpy(w) for w in model.trainable_weights]
    loss = float(np.asarray(model.train_on_batch(x, y)).ravel()[0])
    changed = all(not np.array_equal(b, keras.ops.convert_to_numpy(w))
                  for b, w in zip(before, model.trainable_weights) if "_cbam_mlp" not in w.path)
    results[name] = [loss, changed, list(model.predict(x, verbose=0).shape)]
print("RESULT" + json.dumps(results))
"""


def test_jax_backend_builds_and_trains():
    pytest.importorskip("jax")
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([sys.executable, "-c", _JAX_SCRIPT, json.dumps(BUILDERS)], env=env,
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("RESULT"))
    results = json.loads(line[len("RESULT"):])
    for name in BUILDERS:
        loss, changed, shape = results[name]
        assert np.isfinite(loss) and changed and shape == [2, 16, 16, 1], (name, results[name])
