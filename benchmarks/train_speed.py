"""Training and inference speed: kerasmed against the code a user would otherwise run.

Sections (``--sections``, default all but ``gpu``):

- ``peers``: for each network of ``peers.pairs()`` the kerasmed model and its peer (a
  segmentation_models, keras-unet-collection, plain-Keras or authors'-code model of the same
  architecture and filters), same input size, batch, precision, loss, metrics, optimizer and
  compile settings (kerasmed's default ``jit_compile``), trained with ``fit`` on the same
  random in-memory data. The contenders alternate (A B, B A, ...) after a short warm-up call
  each that compiles; each trial is one ``fit`` call of ``--steps`` + 1 steps, each step after
  the first timed from the end of the one before (the steady state); the table gives the
  median over all those steps (seconds per step), images/s, the ratio kerasmed / peer (below
  1: kerasmed is faster) and, with ``--memory`` (the default but in ``--quick``), each
  model's peak memory from a fresh subprocess (CPU: growth of the peak resident set over the
  process's size before the build; GPU under JAX: the device's ``peak_bytes_in_use``).
- ``compile``: each kerasmed network under ``jit_compile`` auto / true / false, each with
  ``fit`` and with ``train_on_batch`` (one call per step, as kerasmed's ``loop`` does; under
  ``auto`` only ``fit``, ``auto`` being true or false), five contenders interleaved; the
  ratio of each to the fastest, and which one kerasmed's default
  (``kerasmed.training.xla.resolve_jit_compile("auto")`` with the default ``loop: fit``) is.
- ``predict``: images/s of ``kerasmed.evaluation.predict_image`` (what ``kerasmed-predict``
  runs per image) at the model's size, against ``predict_on_batch`` of batches of 8; and
  sliding-window prediction of a 2048x2048 image, tiles batched by 1, 4, 8, 16 (the default,
  ``kerasmed.evaluation.inference.TILE_BATCH``) and 32.
- ``scaling``: step time against image size and batch for the U-Net and the ResNet50 Unet;
  "per pixel vs first" is (step time / pixels per step) over the first row's: 1.0 is linear.
- ``gpu``: float32, mixed_bfloat16 and mixed_float16 for the ResNet50 Unet at 256x256,
  MultiResUNet, DRRMSAN and Micro-Net-508, each precision and network in its own subprocess:
  images/s, peak device memory and model FLOP utilisation (the train step's FLOPs from XLA's
  cost analysis under JAX, over the device's dense 16-bit tensor peak, ``--peak-tflops``).

Run it from the repository root::

    python benchmarks/train_speed.py --quick          # peers and compile, 2-core CPU: minutes
    python benchmarks/train_speed.py                  # every CPU section, with memory
    KERAS_BACKEND=jax python benchmarks/train_speed.py --sections gpu,peers,compile

Record the printed tables with the machine and date in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("SM_FRAMEWORK", "tf.keras")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

SECTIONS = ("peers", "compile", "predict", "scaling", "gpu")
DEFAULT_SECTIONS = ("peers", "compile", "predict", "scaling")
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
_MARK = "TRAIN_SPEED "

# Input size, batch, filters, steps per trial and repeats, full and --quick.
FULL = dict(sections=DEFAULT_SECTIONS, memory=True,
            size=128, batch=8, filters=32, steps=10, repeats=3, compile_nets=None,
            scaling_sizes=(128, 256, 512), scaling_batches=(1, 2, 4, 8, 16, 32),
            scaling_steps=4, tile_image=2048, tile_model=256, tile_filters=16,
            predict_images=32)
# --quick: the ratio table and the U-Net's compile settings, no memory subprocesses (each
# imports TensorFlow afresh). Repeated runs on the 2-core machine still moved ratios by up to
# 10 %: most of the run is tracing the models' train steps, not the timed steps. The other
# networks' compile settings (minutes each: XLA compiles their train steps twice) are
# ``--sections compile --networks ...``.
QUICK = dict(sections=("peers", "compile"), memory=False,
             size=64, batch=4, filters=16, steps=10, repeats=3,
             compile_nets=("U-Net",),
             scaling_sizes=(64, 128, 256), scaling_batches=(1, 4, 16), scaling_steps=4,
             tile_image=2048, tile_model=256, tile_filters=8, predict_images=16)
GPU_NETWORKS = {
    "Unet ResNet50 256": ("backbone_unet", dict(backbone_name="resnet50", encoder_weights=None,
                                                input_shape=(256, 256, 3)), 16),
    "MultiResUNet 256": ("multiresunet", dict(input_shape=(256, 256, 3)), 16),
    "DRRMSAN 256": ("drrmsan", dict(input_shape=(256, 256, 3)), 16),
    "Micro-Net-508": ("micronet", dict(input_shape=(508, 508, 3), variant=508), 4),
}


# ----------------------------------------------------------------------------- timing

def interleaved(contenders: dict, repeats: int) -> dict:
    """Median seconds of each ``name -> trial()``; a trial returns its seconds, or a list of
    the seconds of each of its steps.

    Every contender warms up once (its ``warm_up`` attribute when it has one, a short call
    that compiles, else the trial itself), then all are called in turn, ``repeats`` rounds,
    the order reversed every other round (A B, B A, ...) so that neither always runs first.
    The median is over every step of every round: on a shared 2-core machine single steps
    stall now and then (one trial's mean moved by 15 % between rounds of the same contender),
    and the median of the steps is not moved by a few stalls. Returns
    ``name -> {"median": s, "samples": [...], "round_medians": [...]}``.
    """
    for trial in contenders.values():
        getattr(trial, "warm_up", trial)()
    samples = {name: [] for name in contenders}
    rounds = {name: [] for name in contenders}
    names = list(contenders)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            got = contenders[name]()
            got = got if isinstance(got, list) else [got]
            samples[name].extend(got)
            rounds[name].append(statistics.median(got))
    return {n: {"median": statistics.median(s), "samples": s, "round_medians": rounds[n]}
            for n, s in samples.items()}


def targets_for(model, n, rng):
    """Random targets for every output of ``model``: binary masks for sigmoid outputs,
    one-hot masks for several channels."""
    import numpy as np
    out = []
    for tensor in model.outputs:
        shape = (n,) + tuple(tensor.shape[1:])
        if shape[-1] == 1:
            out.append((rng.random(shape) > 0.5).astype("float32"))
        else:
            labels = rng.integers(0, shape[-1], shape[:-1])
            out.append(np.eye(shape[-1], dtype="float32")[labels])
    return out[0] if len(out) == 1 else out


def data_for(model, batch, steps, seed=0):
    """``steps + 1`` batches of random images and targets (``fit_trial`` times the steps
    after the first)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    steps += 1
    shape = (batch * steps,) + tuple(model.inputs[0].shape[1:])
    return rng.random(shape, dtype="float32"), targets_for(model, batch * steps, rng)


class _StepClock:
    """Keras callback: the time at the end of every training batch."""

    def __init__(self):
        import keras

        class Clock(keras.callbacks.Callback):
            def on_train_begin(cb, logs=None):
                cb.ends = []

            def on_train_batch_end(cb, batch, logs=None):
                # Reading the loss waits for the step (JAX and GPUs dispatch asynchronously).
                if logs and "loss" in logs:
                    float(keras.ops.convert_to_numpy(logs["loss"]))
                cb.ends.append(time.perf_counter())
        self.callback = Clock()


def fit_trial(model, x, y, batch):
    """The seconds of each ``fit`` step in its steady state: one ``fit`` call over all of
    ``x``, each step timed from the end of the batch before it (the first batch is left out).
    The call's set-up (data adapter, iterator, callbacks), which a real run pays once an
    epoch, is left out, so that ``fit`` and ``train_on_batch`` are compared on their steps."""
    clock = _StepClock().callback

    def trial():
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False,
                  callbacks=[clock])
        return [b - a for a, b in zip(clock.ends, clock.ends[1:])]

    def warm_up():  # two batches of the same shape compile the train step
        model.fit(_rows(x, 0, 2 * batch), _rows(y, 0, 2 * batch), batch_size=batch, epochs=1,
                  verbose=0, shuffle=False)
    trial.warm_up = warm_up
    return trial


def _rows(a, start, stop):
    """Rows ``start:stop`` of an array or of every array of a list (several outputs)."""
    return [t[start:stop] for t in a] if isinstance(a, list) else a[start:stop]


def batch_trial(model, x, y, batch):
    """The seconds of each ``train_on_batch`` call over the batches of ``x`` after the first
    (each call returns the loss as a number, so it has finished)."""
    steps = len(x) // batch - 1
    batches = [(_rows(x, i * batch, (i + 1) * batch), _rows(y, i * batch, (i + 1) * batch))
               for i in range(steps + 1)]

    def trial():
        model.train_on_batch(*batches[0])
        times = []
        for bx, by in batches[1:]:
            start = time.perf_counter()
            model.train_on_batch(bx, by)
            times.append(time.perf_counter() - start)
        return times
    trial.warm_up = lambda: model.train_on_batch(*batches[0])
    return trial


def training_section(jit="auto", **overrides):
    """kerasmed's default ``training`` section (the schema's defaults) with ``overrides``."""
    from kerasmed.experiment.validate import section_defaults
    training = section_defaults("training")
    training.update(jit_compile=jit, **overrides)
    return training


def compile_as_kerasmed(model, jit="auto", steps=10):
    """Compile ``model`` as ``kerasmed-train`` does at the defaults (BCE + Dice, Adam 1e-3,
    Dice and IoU), with ``jit_compile=jit``."""
    from kerasmed.training.compile import compile_model
    return compile_model(model, training_section(jit), steps)


# ----------------------------------------------------------------------------- memory

def _memory_worker(spec: dict) -> dict:
    import keras
    import peers as peer_module

    from kerasmed.models import build
    if spec.get("precision"):
        keras.mixed_precision.set_global_policy(spec["precision"])
    base = _rss_mib()
    if "registry" in spec:
        model = build(spec["registry"], **spec["params"])
    else:
        pair = next(p for p in peer_module.pairs() if p.label == spec["pair"])
        fn = pair.kerasmed if spec["side"] == "kerasmed" else pair.peer
        model = fn(tuple(spec["shape"]), spec["filters"])
    compile_as_kerasmed(model, spec.get("jit", "auto"))
    x, y = data_for(model, spec["batch"], spec["steps"])
    trial = fit_trial(model, x, y, spec["batch"])
    trial.warm_up()
    times = [t for _ in range(spec.get("repeats", 1)) for t in trial()]
    result = {"ok": True, "params": model.count_params(), "step_s": statistics.median(times),
              "peak_rss_mib": _peak_rss_mib() - base, "device_peak_gib": _device_peak_gib()}
    if spec.get("flops"):
        result["flops_per_step"] = train_step_flops(model, x, y, spec["batch"])
    return result


def _rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mib():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _device_peak_gib():
    import keras
    if keras.backend.backend() == "jax":
        import jax
        stats = jax.local_devices()[0].memory_stats() or {}
        peak = stats.get("peak_bytes_in_use")
        return None if peak is None else peak / 2**30
    if keras.backend.backend() == "torch":
        import torch
        return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    import tensorflow as tf
    if tf.config.list_physical_devices("GPU"):
        return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**30
    return None


def train_step_flops(model, x, y, batch):
    """FLOPs of one compiled train step from XLA's cost analysis (JAX backend); ``None`` on
    other backends."""
    import keras
    if keras.backend.backend() != "jax":
        return None
    import jax
    bx, by = _rows(x, 0, batch), _rows(y, 0, batch)
    state = ([v.value for v in model.trainable_variables],
             [v.value for v in model.non_trainable_variables],
             [v.value for v in model.optimizer.variables],
             [v.value for v in model.metrics_variables])
    cost = jax.jit(model.train_step).lower(state, (bx, by)).compile().cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost["flops"]) if cost and "flops" in cost else None


def in_subprocess(spec: dict, timeout: float = 1800) -> dict:
    """Run ``_memory_worker(spec)`` in a fresh interpreter; its JSON result, or an error."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker",
                               json.dumps(spec)], capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK):])
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"ok": False, "error": f"exit {done.returncode}: {tail[0][:200]}"}


# ----------------------------------------------------------------------------- sections

def _free(*models):
    import gc

    import keras
    del models
    keras.backend.clear_session()
    gc.collect()


def section_peers(cfg, args):
    import keras
    import peers as peer_module
    from peers import PeerUnavailable
    size, batch = cfg["size"], cfg["batch"]
    shape = (size, size, 3)
    rows = []
    for pair in peer_module.pairs():
        if args.networks and pair.label not in args.networks:
            continue
        filters = 32 if pair.label == "MultiResUNet" else cfg["filters"]
        row = {"network": pair.label, "peer": pair.peer_name, "size": size, "batch": batch,
               "filters": "encoder" if pair.backbone else filters}
        keras.utils.set_random_seed(0)
        ours = pair.kerasmed(shape, filters)
        try:
            theirs = pair.peer(shape, filters)
        except PeerUnavailable as err:
            row.update(status=f"peer cannot build: {err}", km_params=ours.count_params())
            rows.append(row)
            _free(ours)
            continue
        contenders = {}
        for side, model in (("kerasmed", ours), ("peer", theirs)):
            compile_as_kerasmed(model)
            x, y = data_for(model, batch, cfg["steps"])
            contenders[side] = fit_trial(model, x, y, batch)
        times = interleaved(contenders, cfg["repeats"])
        row.update(km_params=ours.count_params(), peer_params=theirs.count_params(),
                   km_s=times["kerasmed"]["median"], peer_s=times["peer"]["median"],
                   round_medians={k: v["round_medians"] for k, v in times.items()})
        row["ratio"] = row["km_s"] / row["peer_s"]
        _free(ours, theirs, contenders)
        if args.memory:
            for side in ("kerasmed", "peer"):
                got = in_subprocess({"pair": pair.label, "side": side, "shape": shape,
                                     "filters": filters, "batch": batch, "steps": 2})
                row[f"{side}_mem"] = (got.get("device_peak_gib") or got.get("peak_rss_mib")) \
                    if got.get("ok") else None
        rows.append(row)
        _print_progress(row)
    return rows


def section_compile(cfg, args):
    import keras
    import peers as peer_module

    from kerasmed.training.xla import resolve_jit_compile
    default = resolve_jit_compile("auto")
    size, batch = cfg["size"], cfg["batch"]
    shape = (size, size, 3)
    rows = []
    for pair in peer_module.pairs():
        if cfg["compile_nets"] and pair.label not in cfg["compile_nets"]:
            continue
        filters = 32 if pair.label == "MultiResUNet" else cfg["filters"]
        contenders, models = {}, []
        for jit in ("auto", True, False):
            keras.utils.set_random_seed(0)
            model = compile_as_kerasmed(pair.kerasmed(shape, filters), jit)
            models.append(model)
            x, y = data_for(model, batch, cfg["steps"])
            contenders[f"fit jit={jit}"] = fit_trial(model, x, y, batch)
            if jit != "auto":  # train_on_batch under "auto" is one of these two
                contenders[f"train_on_batch jit={jit}"] = batch_trial(model, x, y, batch)
        times = interleaved(contenders, cfg["repeats"])
        best = min(v["median"] for v in times.values())
        row = {"network": pair.label, "size": size, "batch": batch,
               "default": f"fit jit=auto (-> {default})",
               "times": {k: v["median"] for k, v in times.items()},
               "round_medians": {k: v["round_medians"] for k, v in times.items()}}
        row["default_vs_fastest"] = times["fit jit=auto"]["median"] / best
        row["fastest"] = min(times, key=lambda k: times[k]["median"])
        rows.append(row)
        _print_progress(row)
        _free(*models)
    return rows


def section_predict(cfg, args):
    import keras
    import numpy as np

    from kerasmed.evaluation.inference import (TILE_BATCH, predict_batch, predict_image,
                                               sliding_window)
    from kerasmed.models import build
    rng = np.random.default_rng(0)
    rows = []
    size = cfg["tile_model"]
    keras.utils.set_random_seed(0)
    model = build("unet", input_shape=(size, size, 3), filters=cfg["tile_filters"], depth=4)
    images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
              for _ in range(cfg["predict_images"])]
    batch8 = np.stack(images[:8]).astype("float32") / 255

    def one_at_a_time():
        start = time.perf_counter()
        for image in images:
            predict_image(model, image)
        return (time.perf_counter() - start) / len(images)

    def batched():
        start = time.perf_counter()
        for _ in range(len(images) // 8):
            predict_batch(model, batch8)
        return (time.perf_counter() - start) / (len(images) // 8 * 8)

    times = interleaved({"predict_image, one image a call (kerasmed-predict)": one_at_a_time,
                         "predict_on_batch, 8 images a call": batched}, cfg["repeats"])
    for name, t in times.items():
        rows.append({"what": name, "image": f"{size}x{size}", "s_per_image": t["median"],
                     "images_per_s": 1 / t["median"]})
    big = rng.random((cfg["tile_image"], cfg["tile_image"], 3), dtype="float32")

    def tiles(batch_size):
        def trial():
            start = time.perf_counter()
            sliding_window(model, big, overlap=0.5, batch_size=batch_size)
            return time.perf_counter() - start
        return trial
    tile_times = interleaved(
        {f"sliding window, tiles batched by {b}" + (" (default)" if b == TILE_BATCH else ""):
         tiles(b) for b in sorted({1, 4, 8, 16, 32, TILE_BATCH})}, max(2, cfg["repeats"] - 1))
    for name, t in tile_times.items():
        rows.append({"what": name, "image": f"{cfg['tile_image']}x{cfg['tile_image']}",
                     "s_per_image": t["median"], "images_per_s": 1 / t["median"]})
    for row in rows:
        _print_progress(row)
    _free(model)
    return rows


def section_scaling(cfg, args):
    import keras

    from kerasmed.models import build
    nets = {"U-Net": ("unet", dict(filters=cfg["filters"], depth=4)),
            "Unet ResNet50": ("backbone_unet", dict(backbone_name="resnet50",
                                                    encoder_weights=None))}
    rows = []
    for label, (name, params) in nets.items():
        configs = [(s, 2) for s in cfg["scaling_sizes"]]
        configs += [(cfg["scaling_sizes"][0], b) for b in cfg["scaling_batches"] if b != 2]
        contenders, models = {}, []
        for size, batch in configs:
            keras.utils.set_random_seed(0)
            model = compile_as_kerasmed(build(name, input_shape=(size, size, 3), **params))
            models.append(model)
            x, y = data_for(model, batch, cfg["scaling_steps"])
            contenders[(size, batch)] = fit_trial(model, x, y, batch)
        times = interleaved(contenders, max(2, cfg["repeats"] - 1))
        first = None
        for (size, batch), t in times.items():
            per_pixel = t["median"] / (size * size * batch)
            first = first or per_pixel
            row = {"network": label, "size": size, "batch": batch, "step_s": t["median"],
                   "images_per_s": batch / t["median"], "per_pixel_vs_first": per_pixel / first}
            rows.append(row)
            _print_progress(row)
        _free(*models)
    return rows


def section_gpu(cfg, args):
    rows = []
    for label, (name, params, batch) in GPU_NETWORKS.items():
        if args.networks and label not in args.networks:
            continue
        for precision in args.precisions:
            spec = {"registry": name, "params": params, "batch": batch, "steps": 10,
                    "repeats": 3, "precision": precision, "flops": True}
            got = in_subprocess(spec)
            row = {"network": label, "precision": precision, "batch": batch, **got}
            if got.get("ok"):
                row["images_per_s"] = batch / got["step_s"]
                if got.get("flops_per_step"):
                    row["mfu"] = got["flops_per_step"] / got["step_s"] / (args.peak_tflops * 1e12)
            rows.append(row)
            _print_progress(row)
    return rows


# ----------------------------------------------------------------------------- report

def _print_progress(row):
    print("  ..", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()
                   if k not in ("round_medians", "times")}, flush=True)


def _fmt(v, digits=3):
    if v is None:
        return "n/a"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def report(results: dict) -> str:
    out = []
    if "peers" in results:
        out.append("### Training step, kerasmed against the peer (fit, median of interleaved "
                   "trials)\n")
        rows = []
        for r in results["peers"]:
            if "status" in r:
                rows.append([r["network"], r["peer"], r["size"], r["batch"], r["filters"],
                             r["km_params"], "-", "-", "-", "-", r["status"], "-", "-"])
                continue
            rows.append([r["network"], r["peer"], r["size"], r["batch"], r["filters"],
                         f"{r['km_params']:,}", f"{r['peer_params']:,}",
                         r["km_s"], r["peer_s"], r["batch"] / r["km_s"],
                         f"{r['ratio']:.2f}x", r.get("kerasmed_mem"), r.get("peer_mem")])
        out.append(table(["network", "peer", "size", "batch", "filters", "params kerasmed",
                          "params peer", "s/step kerasmed", "s/step peer",
                          "images/s kerasmed", "kerasmed / peer", "memory kerasmed",
                          "memory peer"], rows))
    if "compile" in results:
        out.append("\n### Compile settings (seconds per step, median of interleaved trials; "
                   "ratio to the fastest)\n")
        keys = list(results["compile"][0]["times"]) if results["compile"] else []
        rows = []
        for r in results["compile"]:
            best = min(r["times"].values())
            rows.append([r["network"]] + [f"{r['times'][k]:.3f} ({r['times'][k] / best:.2f}x)"
                                          for k in keys]
                        + [f"{r['default_vs_fastest']:.2f}x"])
        out.append(table(["network"] + keys + ["default (fit, auto) vs fastest"], rows))
    if "predict" in results:
        out.append("\n### Prediction\n")
        out.append(table(["what", "image", "s/image", "images/s"],
                         [[r["what"], r["image"], r["s_per_image"], r["images_per_s"]]
                          for r in results["predict"]]))
    if "scaling" in results:
        out.append("\n### Scaling (fit, seconds per step)\n")
        out.append(table(["network", "size", "batch", "s/step", "images/s",
                          "per pixel vs first"],
                         [[r["network"], r["size"], r["batch"], r["step_s"], r["images_per_s"],
                           f"{r['per_pixel_vs_first']:.2f}"] for r in results["scaling"]]))
    if "gpu" in results:
        out.append("\n### Precision on the accelerator\n")
        out.append(table(["network", "precision", "batch", "images/s", "step (s)",
                          "peak memory (GiB)", "TFLOP/step", "MFU", "error"],
                         [[r["network"], r["precision"], r["batch"], r.get("images_per_s"),
                           r.get("step_s"), r.get("device_peak_gib"),
                           None if not r.get("flops_per_step") else r["flops_per_step"] / 1e12,
                           None if r.get("mfu") is None else f"{100 * r['mfu']:.1f} %",
                           r.get("error", "")] for r in results["gpu"]]))
    return "\n".join(out)


def header() -> str:
    import keras

    from kerasmed.training.xla import device_kind, resolve_jit_compile
    backend = keras.backend.backend()
    versions = {"keras": keras.__version__}
    for module in ("tensorflow", "jax", "torch"):
        if module in sys.modules:
            versions[module] = sys.modules[module].__version__
    return (f"{datetime.date.today()} | {platform.node()} | {platform.processor() or 'cpu'} "
            f"x{os.cpu_count()} | backend {backend} on {device_kind()} | "
            f"default jit_compile -> {resolve_jit_compile('auto')} | "
            + ", ".join(f"{k} {v}" for k, v in versions.items()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--sections", help=f"comma-separated, of {', '.join(SECTIONS)} "
                        f"(default: {','.join(FULL['sections'])}; --quick: "
                        f"{','.join(QUICK['sections'])})")
    parser.add_argument("--repeats", type=int, help="interleaved rounds per contender")
    parser.add_argument("--steps", type=int, help="training steps per trial")
    parser.add_argument("--size", type=int, help="input size of the peers/compile sections")
    parser.add_argument("--batch", type=int, help="batch of the peers/compile sections")
    parser.add_argument("--networks", help="comma-separated network labels of the peers, "
                        "compile and gpu sections (default: all of the section's)")
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=None,
                        help="the per-model memory subprocesses of the peers section "
                             "(default: on; --quick: off)")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--peak-tflops", type=float, default=989.4,
                        help="the device's dense 16-bit tensor peak (H100/H200 SXM: 989.4)")
    parser.add_argument("--json", help="also write the raw results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(_MARK + json.dumps(_memory_worker(json.loads(args.worker))), flush=True)
        return 0
    cfg = dict(QUICK if args.quick else FULL)
    for key in ("repeats", "steps", "size", "batch"):
        if getattr(args, key):
            cfg[key] = getattr(args, key)
    if args.memory is None:
        args.memory = cfg["memory"]
    args.precisions = args.precisions.split(",")
    if args.networks:
        cfg["compile_nets"] = args.networks = [n.strip() for n in args.networks.split(",")]
    sections = [s.strip() for s in args.sections.split(",") if s.strip()] if args.sections \
        else list(cfg["sections"])
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    print(header(), flush=True)
    results, start = {}, time.perf_counter()
    for section in sections:
        print(f"[{section}]", flush=True)
        results[section] = globals()[f"section_{section}"](cfg, args)
    print(f"\n{header()} | {time.perf_counter() - start:.0f} s\n")
    print(report(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": header(), "config": cfg, "results": results}, f, indent=1,
                      default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
