"""Does the place of ResNet50's stride explain the Unet ResNet50's gap to segmentation_models?

keras.applications' ResNet50 (v1, kerasmed's encoder) strides the first 1x1 conv of stages
3-5; qubvel's ResNet50 (segmentation_models' encoder) strides the 3x3 conv. This script times,
interleaved in one process as ``train_speed.py`` does (its ``fit_trial`` and ``interleaved``):
kerasmed's Unet ResNet50; the same model rebuilt from its config with the stride moved to the
3x3 conv; and segmentation_models' Unet ResNet50. It prints each median step time and its
ratio to segmentation_models', and the conv FLOPs and layer counts of the three.

    python benchmarks/resnet50_stride.py [--repeats 5] [--size 64] [--batch 4]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402

import peers  # noqa: E402
import train_speed  # noqa: E402

_STRIDED_1X1 = re.compile(r"conv[345]_block1_1_conv")
_FIRST_3X3 = re.compile(r"conv[345]_block1_2_conv")


def _leaves(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaves(layer)
        else:
            yield layer


def conv_gflops(model) -> float:
    """Forward GFLOPs of the model's Conv2D layers for one image (2 x MACs)."""
    total = 0
    for layer in _leaves(model):
        if type(layer) is keras.layers.Conv2D:
            _, h, w, _ = layer.output.shape
            total += 2 * h * w * int(keras.ops.size(layer.kernel))
    return total / 1e9


def stride_in_3x3(model):
    """``model`` rebuilt from its config with stages 3-5's stride moved from the first 1x1
    conv to the 3x3 conv (kernels keep their shapes, so the count of parameters is unchanged)."""
    config = model.get_config()
    moved = []

    def walk(node):
        if isinstance(node, dict):
            inner = node.get("config")
            name = inner.get("name") if isinstance(inner, dict) else None
            if name and _STRIDED_1X1.fullmatch(name):
                inner["strides"] = [1, 1]
                moved.append(name)
            elif name and _FIRST_3X3.fullmatch(name):
                inner["strides"] = [2, 2]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(config)
    if len(moved) != 3:
        raise RuntimeError(f"expected the three strided 1x1 convs of stages 3-5, found {moved}")
    return model.__class__.from_config(config)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args(argv)
    shape = (args.size, args.size, 3)
    (pair,) = [p for p in peers.pairs() if p.label == "Unet ResNet50"]
    keras.utils.set_random_seed(0)
    ours = pair.kerasmed(shape, None)
    models = {"kerasmed (stride in the 1x1)": ours,
              "kerasmed, stride moved to the 3x3": stride_in_3x3(ours),
              "segmentation_models": pair.peer(shape, None)}
    contenders = {}
    for label, model in models.items():
        train_speed.compile_as_kerasmed(model)
        x, y = train_speed.data_for(model, args.batch, args.steps)
        contenders[label] = train_speed.fit_trial(model, x, y, args.batch)
    print(train_speed.header(), flush=True)
    times = train_speed.interleaved(contenders, args.repeats)
    peer = times["segmentation_models"]["median"]
    rows = [[label, f"{sum(1 for _ in _leaves(models[label])):,}",
             f"{conv_gflops(models[label]):.3f}", f"{t['median']:.3f}",
             f"{t['median'] / peer:.2f}x"] for label, t in times.items()]
    print(train_speed.table(["model", "layers", "conv GFLOP/image", "s/step",
                             "vs segmentation_models"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
