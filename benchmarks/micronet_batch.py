"""The largest batch Micro-Net trains with, under mixed precision against float32.

For each precision policy (``float32``, ``mixed_float16``, ``mixed_bfloat16`` by default) the
script finds the largest batch size for which Micro-Net-508 (or -252) completes training steps
on the accelerator, and at that batch reports the step time, the throughput (images/s) and the
peak device memory, with the ratios to float32. The training step is the one ``kerasmed-train``
compiles for Micro-Net: the loss (categorical cross-entropy by default) on the main output and
the same loss scaled by the shared auxiliary weight on ``aux1``-``aux3``
(``kerasmed.training.aux_weight.auxiliary_losses``), Adam, XLA on JAX. Under ``mixed_float16``
Keras wraps Adam in a ``LossScaleOptimizer`` at compile, as the trainer gets it. Inputs are
random images and random one-hot masks of the model's size (508x508x3 / 508x508x2); metrics
are not compiled (the trainer's Dice/IoU on the main output cost little memory).

Search: batch 1, 2, 4, 8, ... until a trial fails (out of memory, or a crashed or timed-out
trial) or ``--max-batch`` is reached, then bisection between the last success and the first
failure: O(log2(largest batch)) trials. Every trial runs in a FRESH Python subprocess (device
memory of a failed trial is not reliably freed in-process), with ``KERAS_BACKEND`` and the
rest of the environment inherited, and reports one JSON line: ``ok`` / ``oom`` / ``error``,
seconds per step, images/s and peak device memory (JAX: ``memory_stats()['peak_bytes_in_use']``
of the first local device, GPU only; TensorFlow: ``get_memory_info('GPU:0')['peak']``; PyTorch:
``torch.cuda.max_memory_allocated()``). The parent process never imports Keras or JAX, so it
holds no device memory. By default the later precisions start their search at float32's largest
batch (``--no-chain`` starts each at 1); a failure there is still bisected down, so the result
does not assume that mixed precision needs less memory.

On the GPU machine (JAX, no TensorFlow)::

    KERAS_BACKEND=jax python benchmarks/micronet_batch.py --variant 508 --json micronet.json
    KERAS_BACKEND=jax python benchmarks/micronet_batch.py --variant 508 --precisions mixed_bfloat16

JAX pre-allocates ``XLA_PYTHON_CLIENT_MEM_FRACTION`` (default 0.75) of the GPU's memory, which
then bounds the batch; that is also what ``kerasmed-train`` gets, so the default is measured.
``--mem-fraction 0.95`` sets it for the trials (the header prints the value used). Record the
printed table, with the device and the date it prints, in ``benchmarks/RESULTS.md``.

On a CPU there is usually no out-of-memory failure: the search then stops at ``--max-batch``
and the table says ``>= N (cap)``. A smoke run (what the test runs)::

    KERAS_BACKEND=jax python benchmarks/micronet_batch.py --variant 252 --width 0.03125 \\
        --max-batch 2 --steps 1 --precisions float32,mixed_bfloat16
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import time
from typing import Callable

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
_MARK = "MICRONET_TRIAL "
_OOM_WORDS = ("RESOURCE_EXHAUSTED", "out of memory", "Out of memory", "OutOfMemory",
              "ResourceExhausted", "OOM when allocating", "Failed to allocate",
              "Resource exhausted")


# --------------------------------------------------------------------------- the search

def largest_batch(trial: Callable[[int], bool], max_batch: int, start: int = 1):
    """The largest batch ``b <= max_batch`` with ``trial(b)`` true, by doubling then bisection.

    ``trial(b)`` returns true when batch ``b`` trains. Trials start at ``start`` and double
    (the last one clipped to ``max_batch``) until one fails; the gap between the last success
    and the first failure is then bisected. If ``start`` fails, ``[0, start)`` is bisected.
    Assumes monotonicity (a batch that fits implies every smaller one fits). Every batch is
    tried at most once.

    Returns ``(largest, capped, tried)``: the largest batch that trained (``None`` if batch 1
    failed), whether the search stopped at ``max_batch`` without a failure, and the list of
    ``(batch, ok)`` in the order tried.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    start = max(1, min(int(start), max_batch))
    tried: list[tuple[int, bool]] = []
    seen: dict[int, bool] = {}

    def run(b):
        if b not in seen:
            seen[b] = bool(trial(b))
            tried.append((b, seen[b]))
        return seen[b]

    lo, hi = 0, None          # lo: largest known success (0: none); hi: smallest known failure
    b = start
    while True:
        if run(b):
            lo = b
            if b >= max_batch:
                return lo, True, tried
            b = min(2 * b, max_batch)
        else:
            hi = b
            break
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if run(mid):
            lo = mid
        else:
            hi = mid
    return (lo or None), False, tried


# --------------------------------------------------------------------------- one trial (child)

def _peak_memory_bytes(backend: str):
    try:
        if backend == "jax":
            import jax
            stats = jax.local_devices()[0].memory_stats()
            return None if not stats else stats.get("peak_bytes_in_use")
        if backend == "tensorflow":
            import tensorflow as tf
            if not tf.config.list_physical_devices("GPU"):
                return None
            return tf.config.experimental.get_memory_info("GPU:0")["peak"]
        if backend == "torch":
            import torch
            return torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001 - memory statistics are optional
        return None
    return None


def _device_description(backend: str) -> str:
    try:
        if backend == "jax":
            import jax
            return ", ".join(f"{d.platform}:{getattr(d, 'device_kind', '?')}"
                             for d in jax.devices())
        if backend == "tensorflow":
            import tensorflow as tf
            gpus = tf.config.list_physical_devices("GPU")
            return ", ".join(g.name for g in gpus) or "CPU"
        if backend == "torch":
            import torch
            return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except Exception as exc:  # noqa: BLE001
        return f"unknown ({exc})"
    return "unknown"


def _is_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}"
    return any(w in text for w in _OOM_WORDS)


def run_trial(spec: dict) -> dict:
    """Build, compile and train Micro-Net at one batch size; the child's whole job."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    backend = keras.backend.backend()
    result = {"batch": spec["batch"], "precision": spec["precision"], "backend": backend,
              "keras": keras.__version__}
    try:
        from kerasmed.models import build
        from kerasmed.training.aux_weight import auxiliary_losses

        keras.mixed_precision.set_global_policy(spec["precision"])
        # No keras.utils.set_random_seed: it imports TensorFlow where installed (slow, and
        # beside the point of a memory benchmark); the initial weights are random.
        model = build("micronet", variant=spec["variant"], width=spec["width"])
        jit = spec["jit"]
        if jit is None:
            jit = True if backend == "jax" else "auto"
        model.compile(optimizer=keras.optimizers.Adam(spec["learning_rate"]),
                      loss=auxiliary_losses(model, spec["loss"]), jit_compile=jit)
        result["parameters"] = int(model.count_params())
        result["optimizer"] = type(model.optimizer).__name__
        size, batch = spec["variant"], spec["batch"]
        rng = np.random.default_rng(0)
        x = rng.random((batch, size, size, 3), dtype=np.float32)
        labels = rng.integers(0, 2, (batch, size, size))
        y = np.eye(2, dtype=np.float32)[labels]
        ys = {name: y for name in model.output_names}
        t0 = time.perf_counter()
        for _ in range(spec["warmup"]):
            model.train_on_batch(x, ys, return_dict=True)   # the first step compiles
        result["warmup_s"] = time.perf_counter() - t0
        times = []
        for _ in range(spec["steps"]):
            t0 = time.perf_counter()
            logs = model.train_on_batch(x, ys, return_dict=True)  # returns host floats: synced
            times.append(time.perf_counter() - t0)
        step = sum(times) / len(times)
        loss = float(logs["loss"])
        result.update(status="ok", step_s=step, min_step_s=min(times), images_per_s=batch / step,
                      loss=loss, finite_loss=math.isfinite(loss))
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        result.update(status="oom" if _is_oom(exc) else "error",
                      message=f"{type(exc).__name__}: {str(exc)[:500]}")
    result["peak_bytes"] = _peak_memory_bytes(backend)
    result["device"] = _device_description(backend)
    return result


def _child_main(spec_json: str) -> int:
    result = run_trial(json.loads(spec_json))
    sys.stdout.flush()
    print(_MARK + json.dumps(result), flush=True)
    return 0


# --------------------------------------------------------------------------- the parent

def spawn_trial(spec: dict, timeout: float, env: dict | None = None) -> dict:
    """Run one trial in a fresh subprocess; a crash or timeout counts as a failed trial."""
    cmd = [sys.executable, os.path.abspath(__file__), "--_trial", json.dumps(spec)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {**spec, "status": "timeout", "message": f"no result after {timeout:.0f} s",
                "wall_s": time.perf_counter() - t0}
    wall = time.perf_counter() - t0
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARK):
            return {**json.loads(line[len(_MARK):]), "wall_s": wall}
    tail = (proc.stderr or "")[-800:]
    status = "oom" if any(w in tail for w in _OOM_WORDS) else "crash"
    return {**spec, "status": status, "wall_s": wall,
            "message": f"exit code {proc.returncode}: {tail.strip()[-500:]}"}


def search_precision(args, precision: str, start: int, env: dict, log=print) -> dict:
    results: dict[int, dict] = {}

    def trial(batch):
        spec = {"variant": args.variant, "width": args.width, "precision": precision,
                "batch": batch, "steps": args.steps, "warmup": args.warmup, "jit": args.jit,
                "loss": args.loss, "learning_rate": args.learning_rate}
        r = spawn_trial(spec, args.timeout, env)
        results[batch] = r
        extra = (f"{r['step_s']:.3f} s/step, {r['images_per_s']:.2f} img/s"
                 if r["status"] == "ok" else r.get("message", "")[:200])
        log(f"  {precision} batch {batch}: {r['status']} ({r['wall_s']:.0f} s) {extra}")
        return r["status"] == "ok"

    best, capped, tried = largest_batch(trial, args.max_batch, start=start)
    failures = [results[b] for b, ok in tried if not ok]
    first_failure = min(failures, key=lambda r: r["batch"]) if failures else None
    return {"precision": precision, "largest_batch": best, "capped": capped,
            "tried": [[b, results[b]["status"]] for b, _ in tried],
            "at_largest": results.get(best), "first_failure": first_failure}


def _fmt(value, spec="{:.3f}", none="n/a"):
    return none if value is None else spec.format(value)


def markdown_table(rows: list[dict]) -> str:
    base = next((r for r in rows if r["precision"] == "float32" and r["largest_batch"]), None)
    lines = ["| precision | largest batch | images/s | step time (s) | peak memory (GiB) | "
             "first failure | batch vs float32 | images/s vs float32 | trials |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        at, b = r["at_largest"] or {}, r["largest_batch"]
        if b is None:
            batch = "none (batch 1 failed)"
        else:
            batch = f">= {b} (cap)" if r["capped"] else str(b)
        peak = at.get("peak_bytes")
        fail = r["first_failure"]
        fail_s = f"{fail['batch']}: {fail['status']}" if fail else "-"
        if base and b:
            mark = "" if not (r["capped"] or base["capped"]) else " (cap)"
            ratio_b = f"{b / base['largest_batch']:.2f}x{mark}"
            ratio_t = f"{at['images_per_s'] / base['at_largest']['images_per_s']:.2f}x"
        else:
            ratio_b = ratio_t = "n/a"
        tried = ", ".join(f"{bb} {s}" for bb, s in r["tried"])
        lines.append(f"| {r['precision']} | {batch} | {_fmt(at.get('images_per_s'), '{:.2f}')} "
                     f"| {_fmt(at.get('step_s'))} | {_fmt(peak and peak / 2**30, '{:.2f}')} "
                     f"| {fail_s} | {ratio_b} | {ratio_t} | {tried} |")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variant", type=int, default=508, choices=(508, 252))
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier (1: the paper)")
    p.add_argument("--precisions", default=",".join(PRECISIONS),
                   help="comma-separated Keras policies (default: %(default)s)")
    p.add_argument("--max-batch", type=int, default=64, help="largest batch tried")
    p.add_argument("--steps", type=int, default=3, help="timed train steps per trial")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (they compile)")
    p.add_argument("--timeout", type=float, default=900, help="seconds per trial")
    p.add_argument("--jit", action=argparse.BooleanOptionalAction, default=None,
                   help="XLA-compile the train step (default: on for JAX, 'auto' otherwise)")
    p.add_argument("--loss", default="categorical_crossentropy")
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--start-batch", type=int, default=1)
    p.add_argument("--chain", action=argparse.BooleanOptionalAction, default=True,
                   help="start later precisions at float32's largest batch (default: on)")
    p.add_argument("--mem-fraction", type=float, default=None,
                   help="XLA_PYTHON_CLIENT_MEM_FRACTION for the trials (JAX GPU)")
    p.add_argument("--json", dest="json_path", default=None, help="also save results here")
    p.add_argument("--_trial", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.precisions = [s.strip() for s in args.precisions.split(",") if s.strip()]
    for s in args.precisions:
        if s not in PRECISIONS:
            p.error(f"unknown precision {s!r}; choose from {', '.join(PRECISIONS)}")
    if args.steps < 1 or args.warmup < 0 or args.max_batch < 1:
        p.error("--steps and --max-batch must be >= 1, --warmup >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args._trial is not None:
        return _child_main(args._trial)
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.mem_fraction is not None:
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = str(args.mem_fraction)
    started = datetime.datetime.now().astimezone()

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    rows = []
    for precision in args.precisions:
        start = args.start_batch
        if args.chain and precision != "float32" and rows and rows[0]["precision"] == "float32" \
                and rows[0]["largest_batch"]:
            start = max(start, rows[0]["largest_batch"])
        log(f"{precision}: searching from batch {start} (cap {args.max_batch})")
        rows.append(search_precision(args, precision, start, env, log))
    info = next((r["at_largest"] or r["first_failure"] for r in rows
                 if r["at_largest"] or r["first_failure"]), {}) or {}
    header = [
        f"Micro-Net-{args.variant}, width {args.width:g} ({_fmt(info.get('parameters'), '{:,}')} "
        f"parameters), {args.loss} through auxiliary_losses, Adam, "
        f"jit {'default' if args.jit is None else args.jit}",
        f"date {started:%Y-%m-%d %H:%M %Z}; backend {info.get('backend', env.get('KERAS_BACKEND'))}"
        f", keras {info.get('keras', '?')}; device {info.get('device', '?')}",
        f"{args.warmup} warm-up + {args.steps} timed steps per trial; max batch {args.max_batch}; "
        f"XLA_PYTHON_CLIENT_MEM_FRACTION={env.get('XLA_PYTHON_CLIENT_MEM_FRACTION', 'default')}",
    ]
    print("\n".join(header) + "\n")
    print(markdown_table(rows))
    errors = [r["first_failure"] for r in rows
              if r["first_failure"] and r["first_failure"]["status"] in ("error", "crash")]
    for e in errors:
        print(f"\n{e['precision']} batch {e['batch']} {e['status']}: {e.get('message', '')}")
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items() if k != "_trial"},
                       "date": started.isoformat(), "header": header, "results": rows}, f,
                      indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
