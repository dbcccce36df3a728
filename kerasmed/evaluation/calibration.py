"""Calibration and uncertainty: is the network as sure as it is right, and where is it unsure?

- ``Calibration`` counts predictions in confidence bins (pixels of a segmentation, images of a
  classifier) and gives the expected calibration error (ECE, Naeini et al. 2015; Guo et al.,
  "On Calibration of Modern Neural Networks", ICML 2017: the bin-weighted mean of
  |accuracy - confidence| over 15 equal-width bins) and a reliability diagram.
- ``predictive_entropy`` and ``sample_variance`` summarise several stochastic predictions of one
  image: test-time augmentation (Wang et al., Neurocomputing 2019) or Monte Carlo dropout
  (Gal & Ghahramani, ICML 2016), which ``mc_dropout`` switches on in any network with dropout
  layers while batch normalisation stays in inference mode.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import keras
import numpy as np

__all__ = ["Calibration", "predictive_entropy", "sample_variance", "dropout_layers",
           "mc_dropout"]


class Calibration:
    """Running reliability counts: per confidence bin, how many predictions, their summed
    confidence and how many were right."""

    def __init__(self, bins: int = 15):
        self.edges = np.linspace(0.0, 1.0, bins + 1)
        self.count = np.zeros(bins, np.int64)
        self.confidence = np.zeros(bins)
        self.correct = np.zeros(bins)

    def add(self, confidence, correct):
        """Count predictions: ``confidence`` in [0, 1] of the predicted class, ``correct``
        whether that class is the true one (arrays of any shape, flattened)."""
        confidence = np.clip(np.asarray(confidence, np.float64).ravel(), 0.0, 1.0)
        correct = np.asarray(correct, bool).ravel()
        which = np.clip(np.digitize(confidence, self.edges[1:-1]), 0, len(self.count) - 1)
        self.count += np.bincount(which, minlength=len(self.count))
        self.confidence += np.bincount(which, confidence, minlength=len(self.count))
        self.correct += np.bincount(which, correct, minlength=len(self.count))

    def add_probabilities(self, prob, truth):
        """Count a ``(..., C)`` probability map against class indices ``truth`` (``(...)``;
        one channel: a sigmoid of the foreground, truth > 0 being foreground)."""
        prob = np.asarray(prob, np.float64)
        truth = np.asarray(truth)
        if prob.shape[-1] == 1:
            p = prob[..., 0]
            predicted = p > 0.5
            self.add(np.where(predicted, p, 1.0 - p), predicted == (truth > 0))
        else:
            predicted = prob.argmax(axis=-1)
            self.add(prob.max(axis=-1), predicted == truth)

    def ece(self) -> float:
        """Expected calibration error: sum over bins of (n_b / n) |accuracy_b - confidence_b|."""
        total = self.count.sum()
        if not total:
            return float("nan")
        used = self.count > 0
        gap = np.abs(self.correct[used] / self.count[used]
                     - self.confidence[used] / self.count[used])
        return float((self.count[used] / total * gap).sum())

    def table(self) -> list[dict]:
        """One dict per bin: its range, count, mean confidence and accuracy (NaN when empty)."""
        rows = []
        for i, n in enumerate(self.count):
            rows.append({"low": float(self.edges[i]), "high": float(self.edges[i + 1]),
                         "count": int(n),
                         "confidence": float(self.confidence[i] / n) if n else float("nan"),
                         "accuracy": float(self.correct[i] / n) if n else float("nan")})
        return rows

    def record(self) -> dict:
        """``{"ece", "bins"}`` for a summary."""
        return {"ece": self.ece(), "bins": self.table()}

    def plot(self, path, what: str = "pixels") -> Path:
        """Draw the reliability diagram (accuracy against confidence per bin, the diagonal, and
        the share of predictions per bin) to a PNG at ``path``; returns the path."""
        from matplotlib.figure import Figure  # no pyplot: a notebook's backend stays

        from kerasmed.runfiles import replace_atomic

        rows = self.table()
        centres = [(r["low"] + r["high"]) / 2 for r in rows]
        width = self.edges[1] - self.edges[0]
        fig = Figure(figsize=(5, 6), dpi=100)
        top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
        top.bar(centres, [r["accuracy"] for r in rows], width=width * 0.95,
                color="tab:blue", label="accuracy")
        top.plot([0, 1], [0, 1], color="black", lw=1, ls="--", label="perfectly calibrated")
        top.set_ylabel("accuracy")
        top.set_title(f"reliability ({what}), ECE = {self.ece():.4f}")
        top.legend(loc="upper left")
        total = max(int(self.count.sum()), 1)
        bottom.bar(centres, self.count / total, width=width * 0.95, color="tab:gray")
        bottom.set_xlabel("confidence")
        bottom.set_ylabel(f"share of {what}")
        fig.tight_layout()
        path = Path(path)
        replace_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
        return path


def predictive_entropy(samples: np.ndarray) -> np.ndarray:
    """Entropy (nats) of the mean of stochastic predictions ``(S, H, W, C)``; ``(H, W)``.

    One channel is a sigmoid (two-class entropy of p and 1 - p); several are a softmax."""
    mean = np.clip(np.asarray(samples, np.float64).mean(axis=0), 1e-7, 1 - 1e-7)
    if mean.shape[-1] == 1:
        p = mean[..., 0]
        return -(p * np.log(p) + (1 - p) * np.log(1 - p))
    return -(mean * np.log(mean)).sum(axis=-1)


def sample_variance(samples: np.ndarray) -> np.ndarray:
    """Variance over the samples ``(S, H, W, C)``, averaged over the channels; ``(H, W)``."""
    return np.asarray(samples, np.float64).var(axis=0).mean(axis=-1)


def dropout_layers(model) -> list:
    """Every dropout layer of ``model``, nested models included."""
    kinds = (keras.layers.Dropout, keras.layers.GaussianDropout, keras.layers.AlphaDropout)

    def walk(parent):
        for layer in getattr(parent, "layers", []):
            yield layer
            yield from walk(layer)
    return [layer for layer in walk(model) if isinstance(layer, kinds)]


@contextlib.contextmanager
def mc_dropout(model):
    """Within the block, calling ``model(x, training=False)`` keeps its dropout layers active
    (a different mask each call) and everything else, batch normalisation included, in
    inference mode. Raises ``ValueError`` naming the model when it has no dropout layer."""
    layers = dropout_layers(model)
    if not layers:
        raise ValueError(f"model {model.name!r} has no dropout layers, so Monte Carlo dropout "
                         f"has nothing to sample; build it with dropout (for example "
                         f"model.params.dropout: 0.1 for the U-Nets) or use --uncertainty tta")
    originals = {}
    for layer in layers:
        originals[layer] = layer.call

        def always(inputs, training=None, _call=layer.call):
            return _call(inputs, training=True)
        layer.call = always
    try:
        yield layers
    finally:
        for layer, call in originals.items():
            layer.call = call
