"""Mask cleaning, its choice on cross-validation predictions, and ensembles of networks."""

import keras
import numpy as np
import pytest

from kerasmed.evaluation.cleaning import (MaskCleaning, foreground_dice, min_size_candidates,
                                          select_cleaning)
from kerasmed.evaluation.ensemble import ensemble_model


def _disc(shape, centre, radius, value=1, out=None):
    out = np.zeros(shape, np.uint8) if out is None else out
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    out[(yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2] = value
    return out


def test_each_operation_on_a_constructed_mask():
    mask = _disc((64, 64), (20, 20), 10)
    mask[18:23, 18:23] = 0  # a hole
    mask[50:52, 50:52] = 1  # a 4-pixel speck
    filled = MaskCleaning(fill_holes=True)(mask)
    assert filled[20, 20] == 1 and filled[50, 50] == 1
    no_speck = MaskCleaning(min_size=5)(mask)
    assert no_speck[50, 50] == 0 and no_speck[10, 20] == 1 and no_speck[20, 20] == 0
    largest = MaskCleaning(keep_largest=True)(mask)
    assert largest[50:52, 50:52].sum() == 0 and largest.sum() == (mask.sum() - 4)
    assert MaskCleaning()(mask) is mask  # nothing asked, nothing changed
    with pytest.raises(ValueError, match="min_size"):
        MaskCleaning(min_size=-1)


def test_class_masks_are_cleaned_class_by_class():
    mask = _disc((48, 48), (12, 12), 6, value=1)
    _disc((48, 48), (35, 35), 6, value=2, out=mask)
    mask[40, 5] = 2  # a speck of class 2 far from its object
    mask[5, 40] = 1
    cleaned = MaskCleaning(keep_largest=True)(mask)
    assert cleaned[40, 5] == 0 and cleaned[5, 40] == 0
    assert (cleaned == 1).sum() == (mask == 1).sum() - 1
    assert (cleaned == 2).sum() == (mask == 2).sum() - 1


def test_foreground_dice_and_its_empty_rule():
    a = _disc((32, 32), (16, 16), 5)
    assert foreground_dice(a, a) == 1.0
    assert foreground_dice(np.zeros_like(a), np.zeros_like(a)) == 1.0
    assert foreground_dice(np.zeros_like(a), a) == 0.0
    shifted = np.roll(a, 3, axis=1)
    inter = np.logical_and(a, shifted).sum()
    assert foreground_dice(shifted, a) == pytest.approx(2 * inter / (2 * a.sum()))


def test_largest_component_is_kept_only_where_it_helps():
    truths = [_disc((64, 64), (30, 30), 12) for _ in range(4)]
    noisy = []
    for i, t in enumerate(truths):
        p = t.copy()
        p[2 + i:6 + i, 55:59] = 1  # a false blob next to each true object
        noisy.append(p)
    chosen, tried = select_cleaning(noisy, truths)
    assert chosen.keep_largest
    assert tried[0]["dice"] < max(t["dice"] for t in tried if t["kept"]) == pytest.approx(1.0)
    # Two true objects per image: keeping the largest would lose one, so it is refused, and
    # removing small objects (under half the smallest true object) takes the false blobs.
    two = [_disc((64, 64), (40, 40), 8, out=_disc((64, 64), (15, 15), 6)) for _ in range(3)]
    preds = [t.copy() for t in two]
    for p in preds:
        p[60:62, 2:4] = 1
    chosen, tried = select_cleaning(preds, two)
    assert not chosen.keep_largest and chosen.min_size in min_size_candidates(two)
    assert any(t["settings"]["keep_largest"] and not t["kept"] for t in tried)
    # Clean predictions: nothing improves, nothing is kept.
    chosen, _ = select_cleaning(two, two)
    assert not chosen.active
    with pytest.raises(ValueError, match="as many predictions as truths"):
        select_cleaning(preds, two[:1])


def _tiny(seed, outputs=1):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    heads = [keras.layers.Conv2D(1, 1, activation="sigmoid", name=f"out{i}")(x)
             for i in range(outputs)]
    return keras.Model(inputs, heads if outputs > 1 else heads[0])


def test_ensemble_is_the_mean_of_its_members():
    members = [_tiny(1), _tiny(2, outputs=2)]  # a deep-supervision member gives its last
    x = np.random.default_rng(0).random((3, 16, 16, 3), dtype=np.float32)
    expected = (members[0].predict_on_batch(x) + members[1].predict_on_batch(x)[-1]) / 2
    model = ensemble_model(members)
    np.testing.assert_allclose(model.predict_on_batch(x), expected, atol=1e-6)
    assert len(model.outputs) == 1
    small = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(1, 1)])
    with pytest.raises(ValueError, match="different inputs"):
        ensemble_model([members[0], small])
