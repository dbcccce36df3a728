"""From a network's output to objects: ``Postprocess``, the one place its settings and their
defaults live (the experiment file's ``postprocess`` section and ``kerasmed-eval``'s options
take theirs from here)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from kerasmed.evaluation.choices import PANOPTIC_SCORES

__all__ = ["Postprocess", "OBJECT_SCORES", "SUMMARY_OBJECT_SCORES", "SOURCES",
           "INSTANCE_CHOICES", "DISTANCE_FOREGROUND", "PROBABILITY_FOREGROUND",
           "postprocess_defaults"]

OBJECT_SCORES = ("aji", "object_f1", "object_precision", "object_recall",
                 "object_dice") + PANOPTIC_SCORES
# The object scores an evaluation's one-line summary shows (kerasmed-eval's closing line).
SUMMARY_OBJECT_SCORES = ("aji", "object_f1", "object_dice", "pq")
SOURCES = ("distance", "probability")
# Whether to score objects (kerasmed-eval --instances): auto (distance-map runs and
# instance-label datasets), on, off, or the kind of output to split into objects.
INSTANCE_CHOICES = ("auto", "on", "off") + SOURCES
# With per-object normalised distance targets every object pixel is above 0.05.
DISTANCE_FOREGROUND = 0.05
PROBABILITY_FOREGROUND = 0.5


@dataclass(frozen=True)
class Postprocess:
    """How a prediction becomes instances, for object-level scores.

    Attributes:
        source: ``"distance"`` (the model regresses a distance map: a marker-controlled
            watershed, ``kerasmed.evaluation.instances.watershed_from_distance``) or
            ``"probability"`` (a foreground probability, or a softmax whose channel 0 is
            background: threshold, connected components, ``instances_from_probabilities``).
        foreground_threshold: foreground is above it; ``None``: ``DISTANCE_FOREGROUND`` (0.05)
            for distance maps, ``PROBABILITY_FOREGROUND`` (0.5) for probabilities.
        h: distance maps: the h-maxima depth of the watershed markers.
        marker_threshold: distance maps: markers are the regions above it instead of h-maxima.
        min_size: objects smaller than this (pixels, at the image's resolution) are removed.
        fill_holes: probabilities: fill holes inside objects.
        iou_threshold: a predicted object detects a true one above this IoU (object F1).
    """

    source: str = "probability"
    foreground_threshold: float | None = None
    h: float = 0.1
    marker_threshold: float | None = None
    min_size: int = 0
    fill_holes: bool = True
    iou_threshold: float = 0.5

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"postprocess source must be 'distance' or 'probability', got "
                             f"{self.source!r}")

    def instances(self, prob: np.ndarray) -> np.ndarray:
        """An ``int32`` instance mask from a model's ``(H, W, C)`` output."""
        # Imported here: the settings above are read by the commands' --help, without SciPy.
        from kerasmed.evaluation import instances as km_instances

        if self.source == "distance":
            threshold = (DISTANCE_FOREGROUND if self.foreground_threshold is None
                         else self.foreground_threshold)
            return km_instances.watershed_from_distance(
                prob[..., 0], foreground_threshold=threshold, h=self.h,
                marker_threshold=self.marker_threshold, min_size=self.min_size)
        foreground = prob[..., 0] if prob.shape[-1] == 1 else 1.0 - prob[..., 0]
        threshold = (PROBABILITY_FOREGROUND if self.foreground_threshold is None
                     else self.foreground_threshold)
        return km_instances.instances_from_probabilities(
            foreground, threshold=threshold, min_size=self.min_size, fill_holes=self.fill_holes)


def postprocess_defaults() -> dict:
    """``{setting: default}`` of every ``Postprocess`` setting but ``source``."""
    return {f.name: f.default for f in fields(Postprocess) if f.name != "source"}
