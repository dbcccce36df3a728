"""The choices of the inference engine, stated once and importable without Keras (the
commands' ``--help`` lists them without loading a backend): ``kerasmed.evaluation.inference``
checks them, ``kerasmed.cli`` offers them."""

__all__ = ["INFERENCE_MODES", "UNCERTAINTY_METHODS"]

# How an image reaches the model's input size (kerasmed.evaluation.inference.predict_image).
INFERENCE_MODES = ("resize", "pad", "tile")
# Several stochastic predictions of one image (kerasmed.evaluation.inference.predict_samples).
UNCERTAINTY_METHODS = ("tta", "mc_dropout")
