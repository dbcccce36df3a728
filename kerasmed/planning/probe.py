"""Measuring what a planned network costs on this machine: a few train steps of the real
model, compiled as training compiles it, on random data of the planned shape.

nnU-Net sizes its plans against a fixed GPU-memory reference; kerasmed plans to a time budget,
so it measures. One probe calibrates ``StepCost`` (seconds per activation unit of a step, the
step time of a plain U-Net being linear in its pixels on a CPU: benchmarks/RESULTS.md,
"Scaling"); a second probe measures the configuration chosen.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

__all__ = ["StepCost", "measure_step", "measure_loader"]


@dataclass(frozen=True)
class StepCost:
    """Times measured for one configuration, and what they predict for others.

    Attributes:
        step_s: seconds of one train step (median of the timed steps).
        predict_s: seconds of one forward pass over a batch (inference, validation).
        trace_s: seconds of the first train step (tracing and building), paid once a run.
        units: activation units of one step of the measured configuration (batch included).
    """

    step_s: float
    predict_s: float
    trace_s: float
    units: float

    def plus_loader(self, seconds: float) -> StepCost:
        """The cost with the loader's ``seconds`` a batch added to each train step."""
        return StepCost(self.step_s + seconds, self.predict_s, self.trace_s, self.units)

    def scaled(self, units: float) -> StepCost:
        """The cost of a configuration with ``units`` activation units a step, assuming time
        linear in them (tracing assumed the same)."""
        ratio = units / self.units
        return StepCost(self.step_s * ratio, self.predict_s * ratio, self.trace_s, units)

    def record(self) -> dict:
        return {"step_s": self.step_s, "predict_s": self.predict_s, "trace_s": self.trace_s,
                "units": self.units}


def measure_step(model_name: str, params: dict, input_shape, batch_size: int, training: dict,
                 units: float, steps: int = 8, seed: int = 0) -> StepCost:
    """Build ``model_name`` with ``params`` at ``input_shape``, compile it with the
    ``training`` section (as ``kerasmed-train`` does) and time ``steps`` train steps after the
    first, and two forward passes, on random images and targets (binary masks, or class
    indices for a classifier) of ``batch_size``.

    Returns the ``StepCost`` (``units``: the configuration's activation units a step, as the
    caller counts them). The Keras session is cleared afterwards.
    """
    import keras

    from kerasmed.training.compile import compile_model
    from kerasmed.models import build

    rng = np.random.default_rng(seed)
    model = build(model_name, input_shape=tuple(input_shape), **params)
    compile_model(model, training, steps_per_epoch=max(1, steps))
    x = rng.random((batch_size, *input_shape), dtype=np.float32)
    out = model.outputs[-1].shape
    if len(out) == 2:  # a classifier: class indices
        target = rng.integers(0, out[-1], batch_size).astype(np.int32)
    else:
        target = (rng.random((batch_size, *input_shape[:2], out[-1])) > 0.5).astype(np.float32)
    y = {name: target for name in model.output_names} if len(model.outputs) > 1 else target
    start = time.perf_counter()
    model.train_on_batch(x, y)
    trace_s = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    model.predict_on_batch(x)  # traced here, timed below
    start = time.perf_counter()
    model.predict_on_batch(x)
    predict_s = time.perf_counter() - start
    keras.backend.clear_session()
    return StepCost(float(np.median(times)), predict_s, trace_s, float(units))


def measure_loader(samples, fit: str, size, batch_size: int, channels: int, normalization,
                   augmentation, batches: int = 4, seed: int = 0) -> float:
    """Seconds kerasmed's training loader (segmentation or, for samples without masks,
    classification) takes for one batch of this configuration (read
    from its cache, fitted, augmented and normalised), the median of ``batches`` batches
    after one pass that fills the cache. With one worker, ``fit`` waits for each batch, so
    this adds to every step."""
    from kerasmed.data.dataset import ClassificationDataset, SegmentationDataset

    samples = list(samples)[:max(batch_size, 16)]
    extra = {"patches_per_epoch": batch_size * batches} if fit == "patches" else {}
    make = SegmentationDataset if samples[0].mask is not None else ClassificationDataset
    dataset = make(samples, batch_size, size, channels=channels, shuffle=True, seed=seed,
                   normalization=normalization, cache=True, augment=augmentation, fit=fit,
                   **extra)
    count = min(batches, len(dataset))
    for i in range(count):  # fills the cache
        dataset[i]
    times = []
    for i in range(count):
        start = time.perf_counter()
        dataset[i]
        times.append(time.perf_counter() - start)
    return float(np.median(times))
