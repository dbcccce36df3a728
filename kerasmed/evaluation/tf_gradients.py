"""TensorFlow-only: gradients of a score with respect to a layer's feature map (Grad-CAM).

The one evaluation module that imports TensorFlow; ``kerasmed.evaluation.explain`` calls it on
the TensorFlow backend.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["feature_gradients"]


def feature_gradients(features, x, score):
    """Run ``features`` (a model returning ``[feature map, output]``) on ``x`` under a
    ``GradientTape``; returns ``(feature map, d score(output) / d feature map)`` as NumPy."""
    with tf.GradientTape() as tape:
        maps, out = features(x, training=False)
        tape.watch(maps)
        value = score(out)
    return maps.numpy(), tape.gradient(value, maps).numpy()
