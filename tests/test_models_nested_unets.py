"""UNet++, UNet 3+ and U^2-Net: parameter counts against the authors' code, output layout,
deep supervision, the classification-guided module, one training step, saving and reloading.
The JAX check of these three and of V-Net and ResUNet-a runs in one subprocess from the start
of this module."""

import keras
import numpy as np
import pytest

import _jax_backend
from _model_checks import assert_probability_maps, images, predict_outputs
from kerasmed.models import build, default_config, get_spec
from kerasmed.models.unet_3plus import ClassificationGate

NAMES = ["unet_plus_plus", "unet_3plus", "u2net"]
TINY = {
    "unet_plus_plus": dict(input_shape=(32, 32, 3), filters=4, depth=2),
    "unet_3plus": dict(input_shape=(32, 32, 3), filters=4, depth=2),
    "u2net": dict(input_shape=(32, 32, 3), filters=4, depth=2),
}
OUTPUTS = {  # outputs of the TINY models at their defaults
    "unet_plus_plus": ["final"],
    "unet_3plus": ["side2", "side1", "final"],
    "u2net": ["side1", "side2", "side3", "fused"],
}

JAX_CODE = """
    import numpy as np, keras, os, tempfile
    assert keras.backend.backend() == "jax"
    from kerasmed.models import build

    # 16 px and the smallest depths: JAX compiles every op shape once, and that is the cost.
    cases = {
        "unet_plus_plus": dict(filters=4, depth=1, deep_supervision=True),
        "unet_3plus": dict(filters=4, depth=1, cgm=True),
        "u2net": dict(filters=4, depth=2, variant="small"),
        "vnet_2d": dict(filters=4, depth=1),
        "resunet_a": dict(filters=4, depth=2),
    }
    rng = np.random.default_rng(0)
    x = rng.random((2, 16, 16, 3), dtype=np.float32)
    y = (rng.random((2, 16, 16, 1)) > 0.5).astype("float32")
    tmp = tempfile.mkdtemp()

    def dead_bias(path, names):
        # A conv bias that BatchNormalization follows gets no gradient in training mode.
        layer, _, weight = path.rpartition("/")
        return weight == "bias" and layer.endswith("_conv") and layer[:-5] + "_bn" in names

    for name, params in cases.items():
        m = build(name, input_shape=(16, 16, 3), **params)
        if name == "unet_3plus":  # the classifier starts out saying "present": gradients reach
            kernel, _ = m.get_layer("cgm_conv").get_weights()  # every segmentation weight
            m.get_layer("cgm_conv").set_weights([np.zeros_like(kernel), np.array([0.0, 1.0])])
        targets = {n: (np.array([[0.0, 1.0], [1.0, 0.0]], "float32")
                       if n == "classification" else y) for n in m.output_names}
        if len(m.outputs) == 1:
            targets = y
        m.compile(optimizer="adam", loss="binary_crossentropy" if len(m.outputs) == 1
                  else {n: "binary_crossentropy" for n in m.output_names})
        before = [np.array(w) for w in m.trainable_weights]
        logs = m.train_on_batch(x, targets, return_dict=True)
        assert np.isfinite(logs["loss"]), (name, logs)
        names = {layer.name for layer in m.layers}
        live = [(w, b) for w, b in zip(m.trainable_weights, before)
                if not dead_bias(w.path, names)]
        changed = sum(not np.array_equal(np.array(w), b) for w, b in live)
        assert changed == len(live), (name, changed, len(live))
        path = os.path.join(tmp, name + ".keras")
        m.save(path)
        a = m.predict(x, verbose=0)
        b = keras.saving.load_model(path).predict(x, verbose=0)
        for p, q in zip(a if isinstance(a, list) else [a], b if isinstance(b, list) else [b]):
            np.testing.assert_allclose(np.asarray(p), np.asarray(q), atol=1e-6, err_msg=name)
        print(name, "ok", flush=True)
"""


@pytest.fixture(scope="module", autouse=True)
def jax_run():
    try:
        import jax  # noqa: F401
    except ImportError:
        yield None
        return
    proc = _jax_backend.start(JAX_CODE)
    yield proc
    _jax_backend.stop(proc)


def _dead_bias(path, model):
    # The authors keep conv biases before BatchNormalization (UNet 3+, U^2-Net); in training
    # mode BN subtracts the batch mean, so those biases rightly get no gradient.
    layer, _, weight = path.rpartition("/")
    names = {l.name for l in model.layers}
    return weight == "bias" and layer.endswith("_conv") and layer[:-5] + "_bn" in names


def _trainable(model, prefix=None):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights
               if prefix is None or w.path.startswith(prefix))


def test_unet_plus_plus_paper_size_equals_the_authors_nest_net():
    # The authors' Keras Nest_Net (github.com/MrGiovanni/UNetPlusPlus) reports 9,041,601
    # parameters for a 96x96x1 input and one output; the paper's Table 1 gives 9.04M.
    model = build("unet_plus_plus", input_shape=(96, 96, 1))
    assert model.count_params() == 9_041_601 and model.output_names == ["final"]
    assert len(model.losses) > 0  # the authors' L2 1e-4 on every kernel
    del model
    deep = build("unet_plus_plus", input_shape=(96, 96, 1), deep_supervision=True)
    assert deep.output_names == ["side1", "side2", "side3", "final"]
    assert deep.count_params() == 9_041_601 + 3 * 33  # three more 1x1 heads on 32 channels
    del deep
    keras.backend.clear_session()


def test_unet_3plus_paper_size_equals_the_authors_pytorch_models():
    # Trainable counts of the authors' UNet_3Plus, UNet_3Plus_DeepSup and
    # UNet_3Plus_DeepSup_CGM (github.com/ZJUGiveLab/UNet-Version), counted with torch at
    # n_classes=1; the paper gives 26.97M.
    model = build("unet_3plus", input_shape=(320, 320, 3), cgm=True)
    assert model.output_names == ["classification", "side4", "side3", "side2", "side1",
                                  "final"]
    cgm = _trainable(model, "cgm_")
    sides = sum(_trainable(model, f"side{i}_") for i in range(1, 5))
    assert _trainable(model) == 26_991_687
    assert _trainable(model) - cgm == 26_989_637
    assert _trainable(model) - cgm - sides == 26_971_777
    # 64 channels per scale, five scales: 320 in every decoder stage.
    assert model.get_layer("dec0_concat").output.shape[-1] == 320
    assert model.get_layer("dec3_fusion1_conv").output.shape[-1] == 320
    del model
    keras.backend.clear_session()


@pytest.mark.parametrize("variant,expected", [("full", 44_009_869), ("small", 1_131_181)])
def test_u2net_paper_size_equals_the_authors_pytorch_models(variant, expected):
    # The authors' U2NET and U2NETP (github.com/xuebinqin/U-2-Net) counted with torch; the
    # paper gives 176.3 MB and 4.7 MB (about 44.0M and 1.13M parameters).
    model = build("u2net", input_shape=(320, 320, 3), variant=variant)
    assert _trainable(model) == expected
    assert model.output_names == [f"side{i}" for i in range(1, 7)] + ["fused"]
    assert all(model.get_layer(f"en{i}_residual") is not None for i in range(1, 7))
    del model
    keras.backend.clear_session()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("classes", [1, 3])
def test_tiny_outputs(name, classes):
    model = build(name, classes=classes, **TINY[name])
    assert model.name == name and model.output_names == OUTPUTS[name]
    for out in predict_outputs(model, images()):
        assert_probability_maps(out, (2, 32, 32), classes)


def test_deep_supervision_switches():
    upp = build("unet_plus_plus", deep_supervision=True, **TINY["unet_plus_plus"])
    assert upp.output_names == ["side1", "final"]
    single = build("unet_3plus", deep_supervision=False, **TINY["unet_3plus"])
    assert single.output_names == ["final"]
    fused = build("u2net", deep_supervision=False, activation=None, **TINY["u2net"])
    assert fused.output_names == ["fused"]
    assert fused.get_layer("fused").get_config()["activation"] == "linear"


def test_u2net_depth_and_custom_widths():
    # depth 2 keeps the paper's first stage and its two RSU-4F stages, RSU heights lowered.
    model = build("u2net", **TINY["u2net"])
    assert model.get_layer("en1_enc3_conv") is not None  # RSU-4: three convs down
    with pytest.raises(ValueError):
        model.get_layer("en1_enc4_conv")
    assert model.get_layer("en2_bottom_conv").dilation_rate == (8, 8)  # RSU-4F
    custom = build("u2net", input_shape=(32, 32, 3), depth=2,
                   variant=[(2, 4), (2, 8), (2, 8), (2, 8), (1, 4)])
    assert custom.get_layer("de1_in_conv").filters == 4
    with pytest.raises(ValueError, match="pairs"):
        build("u2net", input_shape=(32, 32, 3), depth=2, variant=[(2, 4)] * 11)
    with pytest.raises(ValueError, match="variant"):
        build("u2net", input_shape=(32, 32, 3), depth=2, variant="huge")
    with pytest.raises(ValueError, match="divisible by 32"):
        build("u2net", input_shape=(48, 48, 3), filters=4)


def test_classification_gate_zeroes_images_classified_empty():
    seg = np.full((2, 4, 4, 1), 0.7, "float32")
    cls = np.array([[0.9, 0.2], [0.1, 0.6]], "float32")  # image 0 "absent", image 1 "present"
    out = keras.ops.convert_to_numpy(ClassificationGate()([seg, cls]))
    assert (out[0] == 0).all() and np.allclose(out[1], 0.7)
    model = build("unet_3plus", cgm=True, **TINY["unet_3plus"])
    outs = predict_outputs(model, images())
    assert outs[0].shape == (2, 2) and ((outs[0] > 0) & (outs[0] < 1)).all()
    present = outs[0].argmax(-1) == 1
    for out in outs[1:]:
        assert (out[~present] == 0).all()
    ungated = keras.Model(model.input, model.get_layer("final_ungated").output)
    np.testing.assert_allclose(outs[-1][present], predict_outputs(ungated, images())[0][present],
                               rtol=1e-6)


@pytest.mark.parametrize("name,params", [
    ("unet_plus_plus", dict(deep_supervision=True, dropout=0.1)),
    ("unet_3plus", dict(cgm=True)),
    ("u2net", {}),
])
def test_one_train_step_on_every_output_and_round_trip(name, params, tmp_path):
    keras.utils.set_random_seed(0)
    model = build(name, **TINY[name], **params)
    if "cgm" in params:  # the classifier starts out saying "present" for every image, so that
        kernel, _ = model.get_layer("cgm_conv").get_weights()  # every weight gets a gradient
        model.get_layer("cgm_conv").set_weights([np.zeros_like(kernel), np.array([0.0, 1.0])])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss={n: "binary_crossentropy" for n in model.output_names},
                  run_eagerly=True)  # one step: tracing would take longer than it saves
    y = (np.random.default_rng(1).random((2, 32, 32, 1)) > 0.5).astype("float32")
    targets = {n: np.array([[0.0, 1.0], [1.0, 0.0]], "float32") if n == "classification"
               else y for n in model.output_names}
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.trainable_weights]
    logs = model.train_on_batch(images(), targets, return_dict=True)
    assert np.isfinite(logs["loss"])
    unchanged = [w.path for w, b in zip(model.trainable_weights, before)
                 if np.array_equal(keras.ops.convert_to_numpy(w), b)
                 and not _dead_bias(w.path, model)]
    assert not unchanged, unchanged
    x = images(seed=3)
    expected = predict_outputs(model, x)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.name == name and loaded.count_params() == model.count_params()
    for a, b in zip(predict_outputs(loaded, x), expected):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_mixed_precision_heads_are_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        for name, params in (("unet_3plus", dict(cgm=True)), ("u2net", {})):
            model = build(name, **TINY[name], **params)
            assert all(o.dtype == "float32" for o in model.outputs), name
            assert all(np.isfinite(o).all() for o in predict_outputs(model, images(1)))
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("name", NAMES + ["vnet_2d", "resunet_a"])
def test_registry_entries(name):
    spec = get_spec(name)
    assert spec.description and set(default_config(name)) <= set(spec.parameters())
    assert "filters" in spec.parameters() and "depth" in spec.parameters()  # tiny experiments


def test_jax_backend_trains_and_reloads_all_five(jax_run):
    if jax_run is None:
        pytest.skip("jax is not installed")
    lines = _jax_backend.finish(jax_run).splitlines()
    assert sorted(line.split()[0] for line in lines if line.endswith(" ok")) == sorted(
        NAMES + ["vnet_2d", "resunet_a"]), lines
