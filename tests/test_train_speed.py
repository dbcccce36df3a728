"""benchmarks/train_speed.py and benchmarks/peers.py: the interleaving, the per-step timing
and the peers' parity with kerasmed. Nothing here is timed; the timings are in
benchmarks/RESULTS.md."""

import importlib
import importlib.util
from pathlib import Path

import keras
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ts = _load("train_speed")
peers = importlib.import_module("peers")    # train_speed put benchmarks/ on sys.path


def test_interleaved_alternates_warms_up_and_pools_the_steps():
    calls = []

    def contender(name, steps):
        def trial():
            calls.append(name)
            return list(steps)
        trial.warm_up = lambda: calls.append(f"warm {name}")
        return trial

    got = ts.interleaved({"a": contender("a", [1.0, 9.0, 2.0]),
                          "b": contender("b", [5.0, 5.0, 6.0])}, repeats=3)
    assert calls == ["warm a", "warm b", "a", "b", "b", "a", "a", "b"]
    assert got["a"]["median"] == 2.0 and got["b"]["median"] == 5.0   # one stall, not the mean
    assert len(got["a"]["samples"]) == 9 and got["a"]["round_medians"] == [2.0] * 3


def test_interleaved_accepts_plain_seconds():
    values = iter([3.0, 1.0, 2.0])
    got = ts.interleaved({"only": lambda: next(values)}, repeats=2)
    assert got["only"]["samples"] == [1.0, 2.0]      # the first call warmed up


def _tiny_model():
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid")(inputs)
    return ts.compile_as_kerasmed(keras.Model(inputs, outputs))


@pytest.mark.parametrize("trial_fn", ["fit_trial", "batch_trial"])
def test_trials_time_every_step_after_the_first(trial_fn):
    model = _tiny_model()
    x, y = ts.data_for(model, batch=2, steps=3)
    assert x.shape == (8, 8, 8, 1) and y.shape == (8, 8, 8, 1)       # steps + 1 batches
    trial = getattr(ts, trial_fn)(model, x, y, 2)
    trial.warm_up()
    times = trial()
    assert len(times) == 3 and all(t > 0 for t in times)


def test_peers_build_the_same_network_as_kerasmed():
    by_label = {p.label: p for p in peers.pairs()}
    shape = (32, 32, 3)
    multires = by_label["MultiResUNet"]
    assert multires.kerasmed(shape, 8).count_params() == multires.peer(shape, 8).count_params()
    ours = by_label["U-Net"].kerasmed(shape, 8)
    theirs = by_label["U-Net"].peer(shape, 8)
    # the same layers; kerasmed leaves out the bias of every conv followed by batch norm
    biases = sum(layer.filters for layer in theirs.layers
                 if isinstance(layer, keras.layers.Conv2D)
                 and not isinstance(layer, keras.layers.Conv2DTranspose)) - 1
    assert theirs.count_params() - ours.count_params() == biases


def test_report_prints_the_ratio_and_the_default_against_the_fastest():
    results = {
        "peers": [{"network": "U-Net", "peer": "plain Keras", "size": 64, "batch": 4,
                   "filters": 16, "km_params": 10, "peer_params": 12, "km_s": 0.09,
                   "peer_s": 0.1, "ratio": 0.9},
                  {"network": "R2U-Net", "peer": "kuc", "size": 64, "batch": 4, "filters": 16,
                   "km_params": 10, "status": "peer cannot build: no kuc"}],
        "compile": [{"network": "U-Net", "times": {"fit jit=auto": 0.2, "fit jit=True": 0.1},
                     "default_vs_fastest": 2.0}],
    }
    text = ts.report(results)
    assert "| U-Net | plain Keras | 64 | 4 | 16 | 10 | 12 | 0.090 | 0.100 | 44.444 | 0.90x |" \
        in text
    assert "peer cannot build: no kuc" in text
    assert "| U-Net | 0.200 (2.00x) | 0.100 (1.00x) | 2.00x |" in text


def test_memory_flag_defaults_per_mode(monkeypatch):
    seen = {}

    def fake_section(cfg, args):
        seen.update(memory=args.memory, steps=cfg["steps"])
        return []
    monkeypatch.setattr(ts, "section_peers", fake_section, raising=True)
    monkeypatch.setitem(ts.__dict__, "report", lambda results: "")
    for argv, memory in ((["--quick"], False), ([], True), (["--quick", "--memory"], True)):
        assert ts.main(argv + ["--sections", "peers", "--steps", "3"]) == 0
        assert seen == {"memory": memory, "steps": 3}
    with pytest.raises(SystemExit):
        ts.main(["--sections", "peerz"])


def test_resnet50_stride_moves_the_stride_and_counts_the_flops():
    rs = _load("resnet50_stride")
    from kerasmed.models import build
    ours = build("backbone_unet", input_shape=(64, 64, 3), backbone_name="resnet50",
                 encoder_weights=None)
    moved = rs.stride_in_3x3(ours)
    assert moved.count_params() == ours.count_params()
    assert moved.output.shape == ours.output.shape
    layers = {layer.name: layer for layer in rs._leaves(moved)}
    for stage in (3, 4, 5):
        assert tuple(layers[f"conv{stage}_block1_1_conv"].strides) == (1, 1)
        assert tuple(layers[f"conv{stage}_block1_2_conv"].strides) == (2, 2)
    # the stride-2 3x3 conv now runs on the larger map: more FLOPs
    assert rs.conv_gflops(moved) > rs.conv_gflops(ours) > 0


@pytest.mark.parametrize("prebuilt", [True, False])
def test_first_step_times_a_fresh_model_with_and_without_the_built_optimizer(prebuilt):
    fs = _load("first_step")
    seconds = fs.first_fit_seconds("unet", dict(filters=4, depth=2), 32, 2, 2, prebuilt)
    assert seconds > 0
    assert set(fs.NETWORKS) >= {"U-Net", "Unet ResNet50"}
