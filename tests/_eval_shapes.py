"""Constructed masks for the evaluation tests: objects of several sizes, and predictions made
from them by shifting, eroding, dilating, dropping objects and adding spurious blobs."""

import numpy as np
from scipy import ndimage


def ellipse(shape, centre, radii):
    """A boolean filled ellipse."""
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    return ((yy - centre[0]) / radii[0]) ** 2 + ((xx - centre[1]) / radii[1]) ** 2 <= 1


def objects(seed, shape=(96, 96), count=5, sizes=(3, 16)):
    """An instance mask of ``count`` non-overlapping ellipses of radii in ``sizes``."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int32)
    placed = 0
    for _ in range(200):
        if placed == count:
            break
        radii = rng.uniform(*sizes, 2)
        centre = rng.uniform(radii.max() + 1, np.array(shape) - radii.max() - 1)
        blob = ellipse(shape, centre, radii)
        if (labels[ndimage.binary_dilation(blob, iterations=2)] == 0).all():
            placed += 1
            labels[blob] = placed
    return labels


def shift(mask, rows, cols):
    """``mask`` moved by whole pixels, what leaves the image lost."""
    return ndimage.shift(mask, (rows, cols), order=0, mode="constant", cval=0)


def spurious(shape, seed, count=3, radius=2):
    """Small blobs at random places: false positives."""
    rng = np.random.default_rng(seed)
    out = np.zeros(shape, bool)
    for _ in range(count):
        out |= ellipse(shape, rng.uniform(radius, np.array(shape) - radius), (radius, radius))
    return out


def binary_cases(shape=(96, 96)):
    """``[(name, pred, truth)]``: binary predictions with the errors segmentations make."""
    truth = objects(1, shape) > 0
    eroded = ndimage.binary_erosion(truth, iterations=2)
    return [
        ("shifted", shift(truth, 2, -3), truth),
        ("eroded", eroded, truth),
        ("dilated", ndimage.binary_dilation(truth, iterations=3), truth),
        ("spurious blobs", truth | spurious(shape, 2), truth),
        ("missed object and blobs", (objects(1, shape) > 1) | spurious(shape, 3), truth),
        ("other scene", objects(4, shape) > 0, truth),
        ("touching the border", shift(truth, 0, 30), shift(truth, 0, 27)),
    ]


def channel0_model(size):
    """A Keras model whose output is its input's first channel: an image whose first channel
    holds a mask, a probability or a distance map is "predicted" as exactly that."""
    import keras

    inputs = keras.Input((*size, 3))
    kernel = np.zeros((1, 1, 3, 1), np.float32)
    kernel[0, 0, 0, 0] = 1.0
    out = keras.layers.Conv2D(1, 1, kernel_initializer=keras.initializers.Constant(kernel),
                              bias_initializer="zeros")(inputs)
    return keras.Model(inputs, out)
