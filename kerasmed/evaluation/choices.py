"""The choices and defaults of inference and evaluation, stated once and importable without
Keras, SciPy or scikit-image (the commands' ``--help`` lists them without loading either):
``kerasmed.evaluation``'s engines check and use them, ``kerasmed.cli`` offers them."""

__all__ = ["INFERENCE_MODES", "UNCERTAINTY_METHODS", "PANOPTIC_SCORES",
           "DEFAULT_TOLERANCE_PIXELS"]

# How an image reaches the model's input size (kerasmed.evaluation.inference.predict_image).
INFERENCE_MODES = ("resize", "pad", "tile")
# Several stochastic predictions of one image (kerasmed.evaluation.inference.predict_samples).
UNCERTAINTY_METHODS = ("tta", "mc_dropout")
# Panoptic quality and its two factors (kerasmed.evaluation.panoptic).
PANOPTIC_SCORES = ("pq", "sq", "rq")
# The Normalized Surface Dice tolerance in pixels when none is given (with a pixel size: this
# many of the largest pixel side; kerasmed.evaluation.surface.default_tolerance). Two pixels
# absorb the one-pixel disagreement of annotators drawing the same outline and the rounding
# of a resized prediction; docs/evaluation.md.
DEFAULT_TOLERANCE_PIXELS = 2.0
