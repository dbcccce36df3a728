"""Images per second delivered by SegmentationDataset against a naive seed-style loader.

Both loaders read the synthetic polyp dataset (kerasmed.data.synthetic; 384x288 PNG frames),
apply a polyp-project-like Augmentor augmentation (rotate, flips, zoom, random distortion) and
deliver 256x256 batches, in the same run:

- naive: written the way the seed project did it: a ``keras.utils.Sequence``-style
  ``PyDataset`` whose ``__getitem__`` reads each image and mask with Pillow, passes the pair
  through Augmentor's operations at full resolution (Augmentor's own probability test and
  bicubic resampling of the mask, then a threshold), resizes and normalises, one image at a
  time, with no workers;
- kerasmed: ``SegmentationDataset`` with the same operations as an augmentation spec, read
  through Keras's own PyDataset adapter (the path ``model.fit`` takes) with 1 and 2 workers
  (threads) and 2 worker processes.

Usage::

    python benchmarks/loader.py                 # 96 images, 3 epochs, batch 8, 256x256
    python benchmarks/loader.py --images 32 --epochs 1 --size 128

Prints a table of images/second and the ratio to the naive loader.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

SPEC = [
    {"op": "rotate", "probability": 0.7, "max_left_rotation": 10, "max_right_rotation": 10},
    {"op": "flip_left_right", "probability": 0.5},
    {"op": "flip_top_bottom", "probability": 0.5},
    {"op": "zoom", "probability": 0.5, "min_factor": 1.1, "max_factor": 1.3},
    {"op": "random_distortion", "probability": 0.5, "grid_width": 4, "grid_height": 4,
     "magnitude": 4},
]


def naive_loader_class():
    import Augmentor
    import keras
    from PIL import Image

    class NaiveLoader(keras.utils.PyDataset):
        """The seed's way: read, augment (image and mask together), resize, one by one."""

        def __init__(self, samples, batch_size, size):
            super().__init__()
            self.samples, self.batch_size, self.size = samples, batch_size, size
            p = Augmentor.Pipeline()
            p.rotate(probability=0.7, max_left_rotation=10, max_right_rotation=10)
            p.flip_left_right(probability=0.5)
            p.flip_top_bottom(probability=0.5)
            p.zoom(probability=0.5, min_factor=1.1, max_factor=1.3)
            p.random_distortion(probability=0.5, grid_width=4, grid_height=4, magnitude=4)
            self.operations = p.operations

        def __len__(self):
            return len(self.samples) // self.batch_size

        def __getitem__(self, index):
            images, masks = [], []
            for s in self.samples[index * self.batch_size:(index + 1) * self.batch_size]:
                pair = [Image.open(s.image).convert("RGB"), Image.open(s.mask).convert("L")]
                for op in self.operations:  # as Augmentor's DataPipeline does
                    if round(random.uniform(0, 1), 1) <= op.probability:
                        pair = op.perform_operation(pair)
                image = pair[0].resize((self.size, self.size), Image.BILINEAR)
                mask = pair[1].resize((self.size, self.size), Image.NEAREST)
                images.append(np.asarray(image, np.float32) / 255.0)
                masks.append((np.asarray(mask) > 127).astype(np.float32)[..., None])
            return np.stack(images), np.stack(masks)

    return NaiveLoader


def _iterate(dataset, epochs):
    """Batches per epoch as model.fit gets them; returns images delivered and seconds."""
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    adapter = PyDatasetAdapter(dataset, shuffle=False)
    n, start = 0, time.perf_counter()
    for _ in range(epochs):
        adapter.on_epoch_begin()
        for x, _y in adapter.get_numpy_iterator():
            n += x.shape[0]
        adapter.on_epoch_end()
    return n, time.perf_counter() - start


def run(images=96, epochs=3, batch_size=8, size=256, data=None, out=sys.stdout):
    from kerasmed.data.dataset import SegmentationDataset
    from kerasmed.data.readers import read_folder_pair
    from kerasmed.data.synthetic import generate_polyp_dataset

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(data) if data else Path(tmp) / "polyps"
        samples = read_folder_pair(generate_polyp_dataset(root, n_images=images))
        random.seed(0)
        rows = []
        naive = naive_loader_class()(samples, batch_size, size)
        naive[0]  # warm-up: imports, first-use costs
        n, secs = _iterate(naive, epochs)
        rows.append(("naive (seed-style)", "1", "-", n / secs))
        for workers, processes in ((1, False), (2, False), (2, True)):
            ds = SegmentationDataset(samples, batch_size, (size, size), shuffle=True, seed=0,
                                     augment=SPEC, workers=workers,
                                     use_multiprocessing=processes)
            ds[0]
            n, secs = _iterate(ds, epochs)
            rows.append(("kerasmed SegmentationDataset", str(workers),
                         "processes" if processes else "threads" if workers > 1 else "-",
                         n / secs))
    base = rows[0][3]
    print(f"\nloader benchmark: {len(samples)} synthetic 384x288 frames -> {size}x{size}, batch "
          f"{batch_size}, {epochs} epoch(s), augmentation: "
          + ", ".join(s["op"] for s in SPEC) + f"; {os.cpu_count()} CPU(s)\n", file=out)
    header = f"| {'loader':30s} | workers | {'kind':9s} | images/s | vs naive |"
    print(header, file=out)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|", file=out)
    for name, workers, kind, rate in rows:
        print(f"| {name:30s} | {workers:>7s} | {kind:9s} | {rate:8.1f} | {rate / base:7.2f}x |",
              file=out)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--data", default=None, help="reuse/generate the synthetic set here")
    args = parser.parse_args(argv)
    run(args.images, args.epochs, args.batch_size, args.size, args.data)


if __name__ == "__main__":
    main()
