"""Instance segmentation helpers under their earlier import path.

They live in ``kerasmed.data.targets`` (``distance_map``, the training target) and
``kerasmed.evaluation.instances`` (post-processing and object scores); this module re-exports
them for code written against ``kerasmed.instances``.
"""

from kerasmed.data.targets import distance_map
from kerasmed.evaluation.instances import (aggregated_jaccard_index, f1_from_counts,
                                           instances_from_probabilities, object_detection_counts,
                                           object_dice, object_f1, object_metrics,
                                           watershed_from_distance)

__all__ = ["distance_map", "watershed_from_distance", "instances_from_probabilities",
           "aggregated_jaccard_index", "object_f1", "f1_from_counts", "object_detection_counts",
           "object_dice", "object_metrics"]
