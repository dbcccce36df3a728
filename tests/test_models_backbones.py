"""Pretrained-backbone Unet, FPN, Linknet and PSPNet (kerasmed.models.backbone_models),
the backbone table (kerasmed.models.encoders) and encoder unfreezing (kerasmed.training.unfreeze).

Everything runs offline with ``encoder_weights=None`` or local weight files; ImageNet loading is
exercised through Keras' real cache path with a locally written file, and the offline failure
with the download made to fail.
"""

import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from kerasmed.models import FPN, Linknet, PSPNet, Unet, build, default_config, get_spec
from kerasmed.models.encoders import (BACKBONES, BackbonePreprocessing, BackboneSpec,
                                      WeightsUnavailableError, build_encoder, get_backbone_spec,
                                      imagenet_weights_file, keras_cache_dir)
from kerasmed.training.unfreeze import UnfreezeEncoder, unfreeze_encoder

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = {"unet": Unet, "fpn": FPN, "linknet": Linknet, "pspnet": PSPNet}
REGISTRY_NAMES = {"unet": "backbone_unet", "fpn": "fpn", "linknet": "linknet", "pspnet": "pspnet"}


def _images(n, size, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, size, size, channels), dtype=np.float32)
    y = (rng.random((n, size, size, 1)) > 0.5).astype("float32")
    return x, y


# ------------------------------------------------------------- every backbone in every family

FAMILY_ORDER = tuple(FAMILIES)  # unet, fpn, linknet, pspnet


def _matrix_size(spec):
    """One input size that all four families accept, so that they can share one encoder
    build: 96, a multiple of 32 (Unet, FPN, Linknet) and of 6 x 8 = 48 (PSPNet); 192 for the
    'valid'-padded Inception backbones, whose taps then stay above half their nominal size.
    (64 would do for Unet/FPN/Linknet; 32 gives ResNet152 NaN predictions after one step.)"""
    return 96 if spec.aligned else 192


@pytest.fixture
def shared_application(monkeypatch):
    """Construct each keras.applications network once per test and hand the same one to every
    builder that asks for it with the same arguments (the four families at the same size).
    Each family still cuts its own ``encoder`` from it (Unet/FPN/Linknet at strides 2-32,
    PSPNet at 8) and builds and wires everything else itself; the cut's layers keep a single
    call each, so every model's config is the one it has when built alone. Construction is
    most of the building time: four families then cost about a third of four separate builds."""
    cache = {}
    original = BackboneSpec.constructor

    def constructor(spec):
        application = original(spec)

        def shared(**kwargs):
            key = (spec.name, repr(sorted(kwargs.items())))
            if key not in cache:
                cache[key] = application(**kwargs)
            return cache[key]

        return shared

    monkeypatch.setattr(BackboneSpec, "constructor", constructor)
    yield cache
    cache.clear()
    keras.backend.clear_session()


def _assert_taps(spec, size, outputs, strides):
    """Each encoder output has its stride's resolution: H/stride exactly, or for the 'valid'-
    padded Inception backbones between H/(2 stride) and H/stride (kerasmed resizes those)."""
    assert len(outputs) == len(strides), (spec.name, strides, outputs)
    for stride, tensor in zip(strides, outputs):
        h, w = tensor.shape[1:3]
        nominal = size // stride
        if spec.aligned:
            assert (h, w) == (nominal, nominal), (spec.name, stride, tensor.shape)
        else:
            assert nominal / 2 < h <= nominal and h == w, (spec.name, stride, tensor.shape)


def _train_save_reload(model, tmp_path):
    """One SGD step (eager, batch 2), then .keras save and load_model.

    Asserts a finite loss; that the step changed the head and the encoder's first layer (the
    gradient reached both ends) and at least 85 % of the trainable variables (EfficientNet's
    stochastic depth and ConvNeXt's 1e-6 layer scale leave a few unchanged by one small step);
    finite predictions of the output shape; identical predictions, name and parameter count
    after reloading. The file is deleted (ConvNeXt-XLarge's is 1.4 GB)."""
    size, channels = model.input_shape[1], model.input_shape[-1]
    x, y = _images(2, size, channels)
    model.compile(optimizer=keras.optimizers.SGD(1e-2), loss="binary_crossentropy",
                  run_eagerly=True)
    variables = model.trainable_variables
    before = [keras.ops.convert_to_numpy(v).copy() for v in variables]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss), (model.name, loss)
    changed = {id(v): not np.array_equal(keras.ops.convert_to_numpy(v), b)
               for v, b in zip(variables, before)}
    first = model.get_layer("encoder").trainable_variables[0]
    head = model.get_layer("head_conv").kernel
    assert changed[id(first)] and changed[id(head)], (model.name, first.path)
    assert sum(changed.values()) >= 0.85 * len(changed), (model.name, sum(changed.values()))
    expected = model.predict_on_batch(x)
    assert expected.shape == (2, size, size, 1) and np.isfinite(expected).all(), model.name
    path = tmp_path / f"{model.name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    path.unlink()
    assert loaded.name == model.name
    assert loaded.count_params() == model.count_params()
    np.testing.assert_array_equal(loaded.predict_on_batch(x), expected)


# The largest members of a family only build here (taps, shapes, preprocessing): one training
# step and reload of theirs costs the suite minutes, and their code is their smaller
# siblings', which train. benchmarks/backbone_matrix.py trains every pair.
_BUILT_ONLY = {"resnet152", "densenet169", "densenet201", "efficientnetb5", "efficientnetb6",
               "efficientnetb7", "efficientnetv2m", "efficientnetv2l", "convnext_base",
               "convnext_large", "convnext_xlarge"}


@pytest.mark.parametrize("index,name", list(enumerate(BACKBONES)))
def test_every_backbone_in_every_family(shared_application, tmp_path, index, name):
    """All 144 (backbone, family) pairs: each builds at 96x96 (Inception 192x192, see
    ``_matrix_size``) with one sigmoid output at the input's size, its encoder cut at the
    strides it uses with the right resolutions and the backbone's preprocessing. Half of the
    backbones (every other group of four) take grey images. One family per backbone, rotating
    (Unet, FPN, Linknet, PSPNet, Unet ...), then trains one step and round-trips through
    .keras (``_train_save_reload``), except the largest members (``_BUILT_ONLY``). The 256x256 matrix with every pair
    trained and reloaded is ``benchmarks/backbone_matrix.py``."""
    spec = BACKBONES[name]
    size = _matrix_size(spec)
    channels = 1 if index // 4 % 2 else 3
    models = {family: build(REGISTRY_NAMES[family], backbone_name=name,
                            input_shape=(size, size, channels), encoder_weights=None)
              for family in FAMILY_ORDER}
    for family, model in models.items():
        assert model.name == f"{family}_{name}"
        assert model.input_shape == (None, size, size, channels), family
        assert model.output_shape == (None, size, size, 1), family
        assert model.get_layer("preprocessing").mode == spec.preprocessing, family
    strides = [s for s in (2, 4, 8, 16) if spec.taps[s] is not None] + [32]
    for family in ("unet", "fpn", "linknet"):
        _assert_taps(spec, size, models[family].get_layer("encoder").outputs, strides)
    _assert_taps(spec, size, models["pspnet"].get_layer("encoder").outputs, [8])
    # Strides without a tap exist only where documented (ConvNeXt's stem is 4x4 / 4).
    missing = [s for s, tap in spec.taps.items() if tap is None]
    assert missing == ([2] if name.startswith("convnext") else [])
    if name not in _BUILT_ONLY:
        _train_save_reload(models[FAMILY_ORDER[index % 4]], tmp_path)


def test_preprocessing_mode_of_every_backbone_matches_its_keras_module():
    """The table's mode reproduces keras.applications' own preprocess_input (on 0..255) for
    the backbone's module; 'raw255' backbones have a pass-through preprocess_input."""
    x = np.random.default_rng(1).random((2, 8, 8, 3), dtype=np.float32)
    for spec in BACKBONES.values():
        module = importlib.import_module(spec.constructor().__module__)
        expected = module.preprocess_input(x * 255.0)
        got = keras.ops.convert_to_numpy(BackbonePreprocessing(spec.preprocessing)(x))
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4, err_msg=spec.name)


def test_grey_input_is_repeated_to_rgb_inside_the_model():
    grey = np.random.default_rng(2).random((2, 8, 8, 1), dtype=np.float32)
    for mode in ("caffe", "tf", "torch", "raw255"):
        layer = BackbonePreprocessing(mode)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(grey)),
                                   keras.ops.convert_to_numpy(layer(np.repeat(grey, 3, -1))))


def test_every_layer_is_named_readably():
    model = Linknet("mobilenetv2", input_shape=(64, 64, 3), encoder_weights=None)
    names = [layer.name for layer in model.layers]
    assert names[:3] == ["image", "preprocessing", "encoder"]
    assert "decoder_stage0a_conv" in names and "decoder_stage3_add" in names
    assert names[-2:] == ["head_conv", "head_sigmoid"]
    automatic = re.compile(r"^(conv2d|batch_normalization|activation|add|concatenate|"
                           r"up_sampling2d|re_lu|resizing|functional|input_layer)(_\d+)?$")
    assert not [name for name in names if automatic.match(name)]


# --------------------------------------------------------------------------- API and errors

def test_registry_entries_and_defaults():
    for family, name in REGISTRY_NAMES.items():
        spec = get_spec(name)
        assert spec.builder is FAMILIES[family]
        params = set(spec.parameters())
        assert {"backbone_name", "input_shape", "classes", "activation", "encoder_weights",
                "encoder_freeze", "weights"} <= params
        assert set(default_config(name)) <= params
        assert default_config(name)["backbone_name"] == "vgg16"
        assert default_config(name)["encoder_weights"] == "imagenet"
    assert default_config("backbone_unet")["decoder_filters"] == (256, 128, 64, 32, 16)
    assert default_config("fpn")["pyramid_block_filters"] == 256
    assert default_config("pspnet")["downsample_factor"] == 8


def test_bad_arguments_are_reported_before_building():
    with pytest.raises(ValueError, match="resnet50"):
        Unet("resnet5", encoder_weights=None)
    with pytest.raises(ValueError, match="divisible by 32"):
        Unet("vgg16", input_shape=(100, 100, 3), encoder_weights=None)
    with pytest.raises(ValueError, match=r"\(H, W, 1\) or \(H, W, 3\)"):
        FPN("vgg16", input_shape=(64, 64, 2), encoder_weights=None)
    with pytest.raises(ValueError, match="divisible by 6 \\* downsample_factor = 48"):
        PSPNet("vgg16", input_shape=(256, 256, 3), encoder_weights=None)
    with pytest.raises(ValueError, match="at least 75x75"):
        Unet("inceptionv3", input_shape=(64, 64, 3), encoder_weights=None)
    with pytest.raises(ValueError, match="decoder_block_type"):
        Unet("vgg16", input_shape=(64, 64, 3), encoder_weights=None, decoder_block_type="x")
    with pytest.raises(FileNotFoundError, match="no such file"):
        Unet("vgg16", input_shape=(64, 64, 3), encoder_weights="/nonexistent/vgg16.h5")


def test_variable_input_size_and_custom_encoder_features():
    model = Unet("vgg16", input_shape=(None, None, 3), encoder_weights=None)
    out = model.predict_on_batch(np.zeros((1, 64, 96, 3), np.float32))
    assert out.shape == (1, 64, 96, 1)
    custom = Unet("vgg16", input_shape=(64, 64, 3), encoder_weights=None,
                  encoder_features=("block5_conv3", "block4_conv3", "block3_conv3", "block2_conv2"))
    assert custom.count_params() == model.count_params()


def test_encoder_freeze_freezes_the_whole_encoder():
    model = Unet("vgg16", input_shape=(64, 64, 3), encoder_weights=None, encoder_freeze=True)
    encoder = model.get_layer("encoder")
    assert not encoder.trainable and encoder.trainable_weights == []
    decoder = [layer for layer in model.layers if layer is not encoder]
    assert model.trainable_weights == [w for layer in decoder for w in layer.trainable_weights]


# ----------------------------------------------------------------------------- weights

def _write_legacy_h5(model, path):
    import h5py
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group
    with h5py.File(path, "w") as f:
        save_weights_to_hdf5_group(f, model)


def _point_keras_home(monkeypatch, folder):
    """KERAS_HOME for this process: Keras resolves it once, at import, into its config."""
    from keras.src.backend import config
    monkeypatch.setenv("KERAS_HOME", str(folder))
    monkeypatch.setattr(config, "_KERAS_DIR", str(folder))


def test_imagenet_loads_through_the_keras_cache(tmp_path, monkeypatch):
    """'imagenet' with the file Keras expects already in $KERAS_HOME/models: loaded from there
    by keras.applications, with no download attempted."""
    _point_keras_home(monkeypatch, tmp_path)
    spec = get_backbone_spec("mobilenetv2")
    fname = imagenet_weights_file(spec, (96, 96, 3))
    assert fname == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"
    reference = keras.applications.MobileNetV2(include_top=False, weights=None,
                                               input_shape=(96, 96, 3))
    (tmp_path / "models").mkdir()
    _write_legacy_h5(reference, tmp_path / "models" / fname)

    def no_download(*args, **kwargs):
        raise AssertionError("nothing may be downloaded")

    monkeypatch.setattr(keras.utils, "get_file", no_download)
    model = Unet("mobilenetv2", input_shape=(96, 96, 3), encoder_weights="imagenet")
    for got, want in zip(model.get_layer("encoder").get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(got, want)


def test_encoder_weights_from_a_file(tmp_path):
    reference = keras.applications.MobileNetV2(include_top=False, weights=None,
                                               input_shape=(64, 64, 3))
    path = tmp_path / "mobilenetv2_encoder.weights.h5"
    reference.save_weights(path)
    model = FPN("mobilenetv2", input_shape=(64, 64, 3), encoder_weights=str(path))
    for got, want in zip(model.get_layer("encoder").get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(got, want)


OFFLINE_MESSAGE_PARTS = ("resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
                         "~/.keras/models", "encoder_weights=None")


def test_offline_imagenet_fails_fast_naming_the_file_and_folder(tmp_path, monkeypatch):
    """Without internet (keras.utils.get_file fails), 'imagenet' raises at once with the file
    name Keras expects and the folder to put it in ($KERAS_HOME/models)."""
    _point_keras_home(monkeypatch, tmp_path)

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError) as info:
        Unet("resnet50", input_shape=(64, 64, 3), encoder_weights="imagenet")
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert all(part in message for part in OFFLINE_MESSAGE_PARTS), message
    assert keras_cache_dir() == str(tmp_path / "models")
    assert str(tmp_path / "models" / OFFLINE_MESSAGE_PARTS[0]) in message


_OFFLINE_SCRIPT = """
import socket, sys, time
def unreachable(*args, **kwargs):
    raise OSError(101, "Network is unreachable")
socket.getaddrinfo = unreachable
socket.socket.connect = unreachable
from kerasmed.models import Unet
from kerasmed.models.encoders import WeightsUnavailableError
start = time.perf_counter()
try:
    Unet("resnet50", input_shape=(64, 64, 3), encoder_weights="imagenet")
except WeightsUnavailableError as err:
    print("SECONDS", time.perf_counter() - start)
    print("MESSAGE", err)
"""


def test_offline_imagenet_with_keras_home_and_no_network(tmp_path):
    """The real thing, in a fresh process: KERAS_HOME is an empty folder, sockets cannot
    resolve or connect, and Keras' own download code runs and fails."""
    env = {**os.environ, "KERAS_HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", _OFFLINE_SCRIPT], capture_output=True,
                          text=True, env=env, timeout=300)
    assert "MESSAGE" in done.stdout, done.stderr[-3000:]
    seconds = float(done.stdout.split("SECONDS", 1)[1].split()[0])
    message = done.stdout.split("MESSAGE", 1)[1]
    assert seconds < 10
    assert all(part in message for part in OFFLINE_MESSAGE_PARTS), message
    assert str(tmp_path / "models" / OFFLINE_MESSAGE_PARTS[0]) in message
    assert not any((tmp_path / "models").glob("*.h5"))


@pytest.mark.filterwarnings("ignore:.*Weights for input shape:UserWarning")
def test_weights_table_names_the_files_keras_asks_for(monkeypatch):
    """For one backbone of every keras.applications module, the table's file, URL and hash
    are those keras.applications passes to get_file (intercepted, nothing downloaded)."""
    from keras.src.utils import file_utils

    class Asked(Exception):
        pass

    def intercept(fname=None, origin=None, **kwargs):
        raise Asked(fname, origin, kwargs.get("file_hash"))

    monkeypatch.setattr(file_utils, "get_file", intercept)
    for name in ("vgg16", "resnet101", "resnet50v2", "densenet169", "mobilenetv2",
                 "mobilenetv3small", "inceptionv3", "efficientnetb1", "efficientnetv2b0",
                 "convnext_tiny"):
        spec = BACKBONES[name]
        shape = (96, 96, 3)
        with pytest.raises(Asked) as info:
            spec.constructor()(include_top=False, weights="imagenet", input_shape=shape)
        fname, origin, file_hash = info.value.args
        assert fname == imagenet_weights_file(spec, shape), name
        assert origin == spec.weights_url.replace(spec.weights_file, fname), name
        assert file_hash == spec.weights_hash, name


def test_build_encoder_cuts_at_the_deepest_requested_stride():
    encoder = build_encoder("resnet50", (64, 64, 3), weights=None, strides=(8,))
    assert encoder.strides == (8,)
    assert [tuple(t.shape) for t in encoder.model.outputs] == [(None, 8, 8, 512)]
    full = build_encoder("resnet50", (64, 64, 3), weights=None)
    assert encoder.model.count_params() < full.model.count_params()


# ------------------------------------------------------------------------ encoder unfreezing

def test_unfreeze_encoder_callback_trains_the_encoder_from_epoch_n(monkeypatch):
    """Epochs 0-1 leave the frozen encoder untouched, epochs 2-3 change it; the optimizer is
    the same object, its iterations continue, and the model is compiled once more, once."""
    model = Unet("vgg16", input_shape=(32, 32, 3), encoder_weights=None, encoder_freeze=True,
                 decoder_filters=(16, 8, 8, 4, 4))
    x, y = _images(8, 32)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy",
                  metrics=["accuracy"])
    optimizer = model.optimizer
    compiles = []
    original_compile = model.compile
    monkeypatch.setattr(model, "compile", lambda **kw: (compiles.append(kw),
                                                        original_compile(**kw))[1])
    encoder = model.get_layer("encoder")
    initial = [w.copy() for w in encoder.get_weights()]
    record = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            change = max(float(np.abs(a - b).max())
                         for a, b in zip(encoder.get_weights(), initial))
            record.append((change, int(self.model.optimizer.iterations.numpy()), dict(logs)))

    callback = UnfreezeEncoder(2, verbose=0)
    history = model.fit(x, y, batch_size=4, epochs=4, verbose=0, callbacks=[callback, Record()])
    changes = [r[0] for r in record]
    assert changes[0] == 0.0 and changes[1] == 0.0
    assert changes[2] > 0.0 and changes[3] > changes[2]
    assert [r[1] for r in record] == [2, 4, 6, 8]
    assert model.optimizer is optimizer and len(compiles) == 1 and callback.unfrozen_at == 2
    assert compiles[0]["loss"] == "binary_crossentropy" and compiles[0]["optimizer"] is optimizer
    assert set(history.history) == {"loss", "accuracy"} and len(history.history["loss"]) == 4


def test_unfreeze_encoder_keeps_optimizer_state_and_batchnorm_frozen():
    model = Linknet("mobilenetv2", input_shape=(32, 32, 3), encoder_weights=None,
                    encoder_freeze=True)
    x, y = _images(2, 32)
    model.compile(optimizer="adam", loss="binary_crossentropy", run_eagerly=True)
    model.train_on_batch(x, y)
    optimizer = model.optimizer
    state = {v.path: keras.ops.convert_to_numpy(v) for v in optimizer.variables}
    new = unfreeze_encoder(model)
    assert new and model.optimizer is optimizer and int(optimizer.iterations.numpy()) == 1
    after = {v.path: keras.ops.convert_to_numpy(v) for v in optimizer.variables}
    assert set(state) < set(after)
    for path, value in state.items():
        np.testing.assert_array_equal(after[path], value)
    encoder = model.get_layer("encoder")
    bns = [layer for layer in encoder.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and not any(bn.trainable for bn in bns)
    assert encoder.get_layer("Conv1").trainable
    model.train_on_batch(x, y)
    assert int(optimizer.iterations.numpy()) == 2
    assert unfreeze_encoder(model) == []  # already trainable: nothing to do


# ------------------------------------------------------------------ segmentation_models parity

PARITY_CASES = [(family, backbone, {}) for family in ("Unet", "FPN", "Linknet")
                for backbone in ("vgg16", "vgg19", "mobilenetv2", "inceptionv3")]
PARITY_CASES += [("Unet", "vgg16", {"decoder_block_type": "transpose"}),
                 ("Linknet", "mobilenetv2", {"decoder_block_type": "transpose"}),
                 ("FPN", "vgg16", {"pyramid_aggregation": "sum", "pyramid_dropout": 0.2}),
                 ("PSPNet", "vgg16", {}), ("PSPNet", "mobilenetv2", {"downsample_factor": 16}),
                 ("PSPNet", "inceptionv3", {"psp_pooling_type": "max"})]

_SM_SCRIPT = """
import json, os, sys
os.environ["SM_FRAMEWORK"] = "tf.keras"
import segmentation_models as sm
out = []
for family, backbone, kwargs in json.loads(sys.argv[1]):
    shape = (384, 384, 3) if family == "PSPNet" else (256, 256, 3)
    model = getattr(sm, family)(backbone, encoder_weights=None, input_shape=shape, **kwargs)
    out.append([model.count_params(), list(model.output_shape)])
print("RESULT" + json.dumps(out))
"""


def _sm_available():
    return (importlib.util.find_spec("segmentation_models") is not None
            and keras.backend.backend() == "tensorflow")


@pytest.fixture(scope="module", autouse=True)
def _sm_process():
    """Start building segmentation_models' models in a subprocess when this module's first test
    runs, so that it works beside the other tests (and its global custom objects, e.g.
    efficientnet's 'swish', stay out of this process)."""
    if not _sm_available():
        yield None
        return
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "SM_FRAMEWORK": "tf.keras"}
    process = subprocess.Popen([sys.executable, "-c", _SM_SCRIPT, json.dumps(PARITY_CASES)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    yield process
    if process.poll() is None:
        process.kill()
        process.communicate()


@pytest.fixture(scope="module")
def sm_counts(_sm_process):
    """Parameter counts and output shapes of segmentation_models 1.0.1 at its defaults."""
    if _sm_process is None:
        pytest.skip("segmentation_models 1.0.1 (TensorFlow backend) is not installed")
    stdout, stderr = _sm_process.communicate(timeout=600)
    assert _sm_process.returncode == 0, stderr[-3000:]
    line = next(line for line in stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


@pytest.mark.parametrize("case", range(len(PARITY_CASES)),
                         ids=[f"{f}-{b}-{'-'.join(map(str, k.values())) or 'defaults'}"
                              for f, b, k in PARITY_CASES])
def test_same_parameters_and_output_as_segmentation_models(sm_counts, case):
    """Same encoder, segmentation_models' defaults (FPN and PSPNet: 21 classes, softmax): the
    same number of parameters and the same output shape."""
    family, backbone, kwargs = PARITY_CASES[case]
    shape = (384, 384, 3) if family == "PSPNet" else (256, 256, 3)
    sm_defaults = {"classes": 21, "activation": "softmax"} if family in ("FPN", "PSPNet") else {}
    model = {"Unet": Unet, "FPN": FPN, "Linknet": Linknet, "PSPNet": PSPNet}[family](
        backbone, input_shape=shape, encoder_weights=None, **sm_defaults, **kwargs)
    count, output_shape = sm_counts[case]
    assert model.count_params() == count
    assert list(model.output_shape) == output_shape


# ------------------------------------------------------------------------------ experiment

def test_cvc_resnet50_experiment_validates_except_for_the_missing_data():
    from kerasmed.experiment.files import load_config
    from kerasmed.experiment.schema import ConfigError
    path = ROOT / "experiments" / "cvc_resnet50.json"
    try:
        config = load_config(str(path))
    except ConfigError as err:
        problems = [p for p in err.problems if "data.root" not in p]
        assert problems == []
    else:
        assert config["model"]["name"] == "backbone_unet"
    raw = json.loads(path.read_text())
    assert raw["model"]["params"]["backbone_name"] == "resnet50"
    assert raw["data"]["image_size"] == [288, 384]
