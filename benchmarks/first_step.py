"""How long the first ``fit`` call takes (tracing the train step included) with the training
state built as ``kerasmed-train`` builds it, against the state Keras creates itself inside the
first traced step.

Keras on TensorFlow (no distribution strategy) creates the optimizer's slots, per-output loss
trackers and metrics named by a string while it traces the first train step, which makes
``tf.function`` trace the step a second time (``kerasmed.training.tracing``). One contender
is ``compile_model`` followed by ``build_training_state`` on the first batch, as
``kerasmed-train`` runs them; the other is the same compiled model with its optimizer swapped
for an unbuilt copy (``from_config`` of its config) and nothing else built, which is what a
plain ``compile`` leaves. Each trial builds a fresh model (same seed), compiles it
and times one ``fit`` of ``--steps`` steps; the contenders alternate (A B, B A, ...), and the
table gives each one's median and the ratio.

    python benchmarks/first_step.py [--rounds 2] [--networks "U-Net,DRRMSAN"]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402

import train_speed  # noqa: E402

NETWORKS = {
    "U-Net": ("unet", dict(filters=16)),
    "MultiResUNet": ("multiresunet", {}),
    "DRRMSAN": ("drrmsan", dict(filters=16)),   # five outputs: five loss trackers
    "Unet ResNet50": ("backbone_unet", dict(backbone_name="resnet50", encoder_weights=None)),
}


def first_fit_seconds(name, params, size, batch, steps, prebuilt):
    """Seconds of the first ``fit`` call of a freshly built and compiled model."""
    from kerasmed.models import build
    from kerasmed.training.tracing import build_training_state

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = train_speed.compile_as_kerasmed(build(name, input_shape=(size, size, 3), **params))
    x, y = train_speed.data_for(model, batch, steps - 1)
    start = time.perf_counter()   # the symbolic build is part of the cost it saves
    if prebuilt:
        first = [train_speed._rows(a, 0, batch) for a in (x, y)]   # noqa: SLF001
        build_training_state(model, first)
    else:
        optimizer = model.optimizer
        model.optimizer = optimizer.__class__.from_config(optimizer.get_config())
        assert not model.optimizer.built
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--networks", default=",".join(NETWORKS))
    args = parser.parse_args(argv)
    print(train_speed.header(), flush=True)
    # One-off costs of the process's first fit (kernel libraries, data adapters) go here.
    inputs = keras.Input((8, 8, 3))
    tiny = train_speed.compile_as_kerasmed(
        keras.Model(inputs, keras.layers.Conv2D(1, 1, activation="sigmoid")(inputs)))
    tiny.fit(*train_speed.data_for(tiny, 2, 1), batch_size=2, verbose=0)
    rows = []
    for label in (n.strip() for n in args.networks.split(",")):
        name, params = NETWORKS[label]
        times = {True: [], False: []}
        for r in range(args.rounds):
            for prebuilt in ((True, False) if r % 2 == 0 else (False, True)):
                times[prebuilt].append(first_fit_seconds(name, params, args.size, args.batch,
                                                         args.steps, prebuilt))
        built, lazy = (statistics.median(times[k]) for k in (True, False))
        rows.append([label, args.size, args.batch, f"{lazy:.1f}", f"{built:.1f}",
                     f"{built / lazy:.2f}x"])
        print("  ..", rows[-1], flush=True)
    print(train_speed.table(["network", "size", "batch", "first fit, state built in the "
                             "trace (s)", "first fit, state built first (s)", "ratio"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
