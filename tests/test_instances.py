"""Distance-map targets, watershed post-processing and object metrics on hand-checked cases."""

import numpy as np
import pytest

from kerasmed.data.targets import distance_map
from kerasmed.evaluation.instances import instances_from_probabilities, watershed_from_distance
from kerasmed.evaluation.object_scores import (aggregated_jaccard_index, object_detection_counts,
                                               object_dice, object_f1, object_metrics)


def square(mask, label, top, left, size_h, size_w=None):
    mask[top:top + size_h, left:left + (size_w or size_h)] = label
    return mask


def disc(mask, label, cy, cx, r):
    yy, xx = np.mgrid[:mask.shape[0], :mask.shape[1]]
    mask[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = label
    return mask


# ---- distance maps -------------------------------------------------------------------------

def test_distance_map_of_a_square_by_hand():
    # A 5x5 object: the centre is 3 pixels from the nearest outside pixel, the border 1.
    labels = square(np.zeros((9, 9), int), 7, 2, 2, 5)
    raw = distance_map(labels, normalize=False)
    assert raw[4, 4] == 3 and raw[2, 2] == 1 and raw[3, 3] == 2 and raw[0, 0] == 0
    norm = distance_map(labels)
    assert norm.dtype == np.float32
    assert norm[4, 4] == 1 and norm[2, 4] == pytest.approx(1 / 3)
    assert np.all(norm[labels == 0] == 0)


def test_distance_map_keeps_touching_objects_apart():
    # Two 4-wide objects side by side: the pixels along their shared edge are border pixels of
    # each (distance 1), not interior pixels of one merged object.
    labels = np.zeros((6, 10), int)
    square(labels, 1, 1, 1, 4)
    square(labels, 2, 1, 5, 4)
    raw = distance_map(labels, normalize=False)
    assert raw[2, 4] == 1 and raw[2, 5] == 1
    assert raw.max() == 2


def test_distance_map_normalises_each_object_to_one():
    labels = np.zeros((40, 40), int)
    disc(labels, 3, 10, 10, 3)
    disc(labels, 9, 25, 25, 9)
    d = distance_map(labels)
    assert d[labels == 3].max() == 1 and d[labels == 9].max() == 1


# ---- watershed -----------------------------------------------------------------------------

def three_nuclei():
    labels = np.zeros((48, 48), int)
    disc(labels, 1, 14, 12, 7)
    disc(labels, 2, 14, 25, 7)   # overlaps the first: drawn later, so the two touch
    disc(labels, 3, 34, 34, 6)
    return labels


def test_watershed_recovers_touching_instances_from_their_distance_map():
    labels = three_nuclei()
    found = watershed_from_distance(distance_map(labels), foreground_threshold=0.05, h=0.2)
    assert found.dtype == np.int32 and found.max() == 3
    assert aggregated_jaccard_index(labels, found) > 0.95
    assert object_f1(labels, found) == 1.0
    # Thresholding alone merges the touching pair.
    merged = instances_from_probabilities(distance_map(labels), threshold=0.05)
    assert merged.max() == 2


def test_watershed_marker_threshold_and_min_size():
    labels = three_nuclei()
    labels[2:4, 44:46] = 4                                  # a 4-pixel speck
    d = distance_map(labels)
    found = watershed_from_distance(d, marker_threshold=0.7, min_size=10)
    assert found.max() == 3
    assert 4 not in np.unique(found[labels == 4])
    # With a huge h no marker survives: everything is background.
    assert watershed_from_distance(d, h=2.0).max() == 0


def test_instances_from_probabilities_fills_holes_and_drops_small():
    p = np.zeros((20, 20))
    p[2:10, 2:10] = 0.9
    p[5, 5] = 0.1                    # a hole
    p[15:17, 15:17] = 0.9            # 4 pixels
    labels = instances_from_probabilities(p, min_size=5)
    assert labels.max() == 1 and labels[5, 5] == 1 and labels[16, 16] == 0


# ---- object metrics: hand-computed cases ---------------------------------------------------

def test_identical_masks_score_one():
    labels = three_nuclei()
    shuffled = np.where(labels > 0, 10 - labels, 0)          # same objects, other label values
    m = object_metrics(labels, shuffled)
    assert m["aji"] == 1 and m["object_f1"] == 1 and m["object_dice"] == 1
    assert (m["tp"], m["fp"], m["fn"]) == (3, 0, 0)


def test_one_object_split_in_two():
    # Truth: one 10x10 object (100 px). Prediction: its left half (1) and right half (2).
    true = square(np.zeros((12, 12), int), 1, 1, 1, 10)
    pred = np.zeros_like(true)
    square(pred, 1, 1, 1, 10, 5)
    square(pred, 2, 1, 6, 10, 5)
    # AJI: both halves have IoU 50/100; the first is paired: C = 50, U = 100; the unpaired half
    # adds its 50 px to U: 50 / 150 = 1/3.
    assert aggregated_jaccard_index(true, pred) == pytest.approx(1 / 3)
    # F1: IoU 0.5 is not > 0.5, so nothing is detected: TP 0, FP 2, FN 1, F1 0.
    assert object_detection_counts(true, pred) == (0, 2, 1)
    assert object_f1(true, pred) == 0
    # Object Dice: Dice(G, half) = 2*50 / (100 + 50) = 2/3 for the truth term (weight 1) and
    # for each half (weights 1/2, 1/2): 0.5 * (2/3 + 2/3) = 2/3.
    assert object_dice(true, pred) == pytest.approx(2 / 3)


def test_a_missed_object():
    # Truth: A and B, 100 px each, apart. Prediction: exactly A.
    true = np.zeros((30, 30), int)
    square(true, 1, 1, 1, 10)
    square(true, 2, 15, 15, 10)
    pred = np.where(true == 1, 5, 0)
    # AJI: A pairs with C = U = 100; B overlaps nothing and adds 100 to U: 100 / 200.
    assert aggregated_jaccard_index(true, pred) == pytest.approx(0.5)
    # F1: TP 1, FP 0, FN 1: 2 / (2 + 0 + 1) = 2/3.
    assert object_detection_counts(true, pred) == (1, 0, 1)
    assert object_f1(true, pred) == pytest.approx(2 / 3)
    # Object Dice: truth term 0.5 * 1 + 0.5 * 0 = 0.5; prediction term 1 * 1: 0.5 * 1.5 = 0.75.
    assert object_dice(true, pred) == pytest.approx(0.75)


def test_a_false_positive():
    # Truth: A (100 px). Prediction: A and a 50 px object C elsewhere.
    true = square(np.zeros((30, 30), int), 1, 1, 1, 10)
    pred = true.copy()
    square(pred, 2, 20, 20, 5, 10)
    # AJI: C = 100, U = 100 + 50 (C unpaired): 2/3.
    assert aggregated_jaccard_index(true, pred) == pytest.approx(2 / 3)
    # F1: TP 1, FP 1, FN 0: 2 / 3.
    assert object_detection_counts(true, pred) == (1, 1, 0)
    assert object_f1(true, pred) == pytest.approx(2 / 3)
    # Object Dice: truth term 1; prediction term (100/150) * 1 + (50/150) * 0 = 2/3:
    # 0.5 * (1 + 2/3) = 5/6.
    assert object_dice(true, pred) == pytest.approx(5 / 6)


def test_a_shifted_object():
    # A 10x10 object predicted 2 columns to the right: intersection 80, union 120.
    true = square(np.zeros((14, 14), int), 1, 1, 1, 10)
    pred = square(np.zeros((14, 14), int), 1, 1, 3, 10)
    assert aggregated_jaccard_index(true, pred) == pytest.approx(80 / 120)
    assert object_f1(true, pred) == 1                       # IoU 2/3 > 0.5
    assert object_dice(true, pred) == pytest.approx(0.8)    # 2 * 80 / 200
    assert object_f1(true, pred, iou_threshold=0.7) == 0


def test_empty_masks():
    empty = np.zeros((8, 8), int)
    one = square(np.zeros((8, 8), int), 1, 1, 1, 3)
    assert object_metrics(empty, empty)["aji"] == 1 and object_f1(empty, empty) == 1
    assert object_dice(empty, empty) == 1
    assert aggregated_jaccard_index(one, empty) == 0 and aggregated_jaccard_index(empty, one) == 0
    assert object_f1(one, empty) == 0 and object_dice(empty, one) == 0


def test_input_checks():
    labels = np.zeros((4, 4), int)
    assert object_f1(labels[..., None], labels) == 1           # (H, W, 1) accepted
    with pytest.raises(ValueError, match="shape"):
        object_f1(labels, np.zeros((4, 5), int))
    with pytest.raises(ValueError, match="integer"):
        object_dice(labels + 0.5, labels)
    with pytest.raises(ValueError, match="one-to-one"):
        object_f1(labels, labels, iou_threshold=0.3)
