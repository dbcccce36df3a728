"""Evaluation engines, found as easily as the networks: one module per kind of judgement.

- ``inference``: predicting whole images exactly as training showed them to the network
  (``InferenceSettings``, ``predict_image``, ``sliding_window``, test-time augmentation);
  ``choices``: its modes and uncertainty methods, stated once without Keras;
- ``scores``: pixel scores of a mask (Dice, IoU, precision, recall, HD95, ASSD, NSD) and the
  one list of score names; ``surface``: the boundary scores, in pixels or physical units, and
  where the pixel size comes from;
- ``multiclass``: per-class scores of class-index masks and their micro, macro, weighted and
  per-image averages;
- ``instances``: watershed and connected-component post-processing, AJI, object F1, object Dice;
  ``panoptic``: panoptic quality (PQ, SQ, RQ);
- ``objects``: ``Postprocess``, how a prediction becomes objects, and its defaults;
- ``segmentation``: ``evaluate``, which scores a model on a list of samples and writes the run's
  ``eval_*`` folder;
- ``classification``: the per-class report of a classifier and ``evaluate_classifier``.

The engines know nothing of experiment files: ``kerasmed.experiment`` turns a run into the
settings and samples they take. docs/evaluation.md defines every score.
"""

import importlib

# Re-exported names, imported on first use (PEP 562): the inference engine imports Keras, and
# the light modules (choices, objects, scores, surface) must not pull it in for a command's
# --help.
_EXPORTS = {
    "choices": ("INFERENCE_MODES", "UNCERTAINTY_METHODS"),
    "inference": ("InferenceSettings", "inference_mode", "model_input_shape", "predict_image",
                  "sliding_window", "to_mask"),
    "objects": ("OBJECT_SCORES", "Postprocess"),
    "scores": ("PIXEL_SCORES", "hd95", "score_masks"),
    "segmentation": ("evaluate", "overlay"),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = list(_HOME)


def __getattr__(name):
    if name not in _HOME:
        raise AttributeError(f"module 'kerasmed.evaluation' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"kerasmed.evaluation.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_HOME))
