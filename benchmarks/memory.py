"""Resident memory of long training runs: kerasmed's train_on_batch loop, fit, and the seed's loop.

Each engine trains the same small U-Net on kerasmed's synthetic polyp dataset for the same number
of steps (at least 2,000), validating every epoch, in its own process so that one cannot inflate
another's memory. The resident set size (RSS) is read after every epoch; the table reports it
after the first epoch and at the end, and the growth between the two.

The "seed loop" is the polyp project's loop as it was written: it recompiles the model at the
start of every epoch (to change which layers train) and validates with ``predict`` per batch.

    python benchmarks/memory.py                  # 2,000 steps per engine
    python benchmarks/memory.py --steps 4000 --engines loop,fit
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time

ENGINES = ("loop", "fit", "seed_loop")


def rss_mb() -> float:
    """This process's resident set size in MiB (Linux /proc; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker(engine: str, steps: int, data_root: str) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from kerasmed import losses, metrics
    from kerasmed.data.dataset import SegmentationDataset
    from kerasmed.data.readers import read_folder_pair
    from kerasmed.data.synthetic import generate_polyp_dataset
    from kerasmed.models import build
    from kerasmed.training.loop import train_on_batch_loop

    keras.utils.set_random_seed(0)
    samples = read_folder_pair(generate_polyp_dataset(data_root, n_images=200, height=96,
                                                      width=96))
    batch = 4  # 40 steps per epoch: 2,000 steps are 50 epochs, each validated
    train = SegmentationDataset(samples[:160], batch, (64, 64), shuffle=True, cache=True)
    val = SegmentationDataset(samples[160:], batch, (64, 64), cache=True)
    epochs = max(1, steps // len(train))
    model = build("unet", input_shape=(64, 64, 3), filters=8, depth=3)

    def compile_model():
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=losses.get("bce_dice"),
                      metrics=[metrics.get("dice")])

    memory: list[float] = []

    class Probe(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            gc.collect()
            memory.append(rss_mb())

    start = time.perf_counter()
    compile_model()
    if engine == "loop":
        train_on_batch_loop(model, train, val, epochs, [Probe()], verbose=0)
    elif engine == "fit":
        model.fit(train, validation_data=val, epochs=epochs, callbacks=[Probe()], verbose=0)
    else:  # the seed's loop
        for _ in range(epochs):
            compile_model()  # re-compiled each epoch, as the seed did to (un)freeze layers
            for step in range(len(train)):
                x, y = train[step]
                model.train_on_batch(x, y)
            scores = []
            for step in range(len(val)):
                x, y = val[step]
                pred = model.predict(x, verbose=0) > 0.5
                inter = (pred * y).sum()
                scores.append(2 * inter / (pred.sum() + y.sum() + 1e-7))
            train.on_epoch_end()
            gc.collect()
            memory.append(rss_mb())
    seconds = time.perf_counter() - start
    return {"engine": engine, "epochs": epochs, "steps": epochs * len(train),
            "memory_mb": memory, "seconds": seconds, "backend": keras.backend.backend(),
            "keras": keras.__version__}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.steps, args.data)))
        return 0
    print("| engine | steps | epochs | RSS after epoch 1 (MiB) | RSS at end (MiB) | growth "
          "after epoch 1 | wall time (s) | time vs loop |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "synthetic")
        for engine in args.engines.split(","):
            out = subprocess.run([sys.executable, __file__, "--worker", engine, "--steps",
                                  str(args.steps), "--data", data], capture_output=True,
                                 text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            results.append(r)
            # Each row as soon as its engine is done: a long run still reports what it has.
            base = next((x["seconds"] for x in results if x["engine"] == "loop"), None)
            first, last = r["memory_mb"][0], r["memory_mb"][-1]
            ratio = f"{r['seconds'] / base:.2f}x" if base else "-"
            print(f"| {r['engine']} | {r['steps']} | {r['epochs']} | {first:.1f} | {last:.1f} | "
                  f"{100 * (last - first) / first:+.2f} % | {r['seconds']:.1f} | {ratio} |",
                  flush=True)
    print(f"\nbackend {results[0]['backend']}, Keras {results[0]['keras']}; RSS per epoch (MiB):")
    for r in results:
        print(f"  {r['engine']}: " + " ".join(f"{m:.0f}" for m in r["memory_mb"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
