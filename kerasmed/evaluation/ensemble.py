"""Ensembles of trained networks: one Keras model whose output is the mean of its members'
probabilities.

nnU-Net (Isensee et al., Nature Methods 2021) predicts with the mean of its five fold models'
softmax outputs. Built as one ``keras.Model``, an ensemble goes through kerasmed's inference
unchanged: tiles, test-time augmentation (each member sees the same flipped image and the mean
is flipped back), uncertainty sampling, evaluation and export.
"""

from __future__ import annotations

import keras

__all__ = ["ensemble_model"]


def ensemble_model(models, name: str = "ensemble") -> keras.Model:
    """A ``keras.Model`` whose single output is the mean of ``models``' last outputs.

    Every member must take the same input shape and give outputs of one shape; a
    deep-supervision member contributes its evaluated (last) output only. Each member keeps its
    own weights, renamed ``member_<i>`` so that two copies of one network can sit side by side.
    Raises ``ValueError`` for fewer than one member or members that do not fit together.
    """
    models = list(models)
    if not models:
        raise ValueError("an ensemble needs at least one model")
    shapes = {tuple(m.inputs[0].shape[1:]) for m in models}
    if len(shapes) > 1:
        raise ValueError(f"ensemble members take different inputs: {sorted(map(str, shapes))}")
    outputs = {tuple(m.outputs[-1].shape[1:]) for m in models}
    if len(outputs) > 1:
        raise ValueError(f"ensemble members predict different shapes: "
                         f"{sorted(map(str, outputs))}")
    inputs = keras.Input(models[0].inputs[0].shape[1:], name="image")
    predictions = []
    for i, member in enumerate(models):
        # A single-output view of each member, named apart from the others.
        last = keras.Model(member.inputs, member.outputs[-1], name=f"member_{i + 1}")
        predictions.append(last(inputs))
    if len(predictions) == 1:
        mean = predictions[0]
    else:
        mean = keras.layers.Average(name="mean", dtype="float32")(predictions)
    return keras.Model(inputs, mean, name=name)
