"""Panoptic quality (PQ, SQ, RQ) against MONAI's, per image and pooled, and in evaluations."""

import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from _eval_shapes import objects, shift, spurious
from kerasmed.evaluation.object_scores import object_f1, object_metrics
from kerasmed.evaluation.panoptic import (PANOPTIC_SCORES, panoptic_quality,
                                          pooled_panoptic_quality)


def _split(labels, label):
    """Object ``label`` cut in two down its middle column: a new label for the right half."""
    out = labels.copy()
    cols = np.nonzero((labels == label).any(axis=0))[0]
    right = (labels == label) & (np.arange(labels.shape[1]) >= cols.mean())
    out[right] = labels.max() + 1
    return out


def _cases():
    """``[(name, true, pred)]`` instance masks: objects of radius 3 to 12 predicted shifted
    (small ones fall under IoU 0.5, large ones stay matched), eroded, split, merged, missed and
    with spurious blobs."""
    truth = objects(7, (96, 96), count=8, sizes=(3, 12))
    merged = np.where(truth == 2, 1, truth)
    missed = np.where(np.isin(truth, [3, 5]), 0, truth)
    blobs = ndimage.label(spurious(truth.shape, 8, count=4) & (truth == 0))[0]
    eroded = np.zeros_like(truth)
    for v in range(1, truth.max() + 1):
        eroded[ndimage.binary_erosion(truth == v, iterations=2)] = v
    return [
        ("shifted", truth, shift(truth, 2, 2)),
        ("eroded", truth, eroded),
        ("split", truth, _split(truth, 1)),
        ("merged", truth, merged),
        ("missed and spurious", truth, np.where(blobs > 0, blobs + truth.max(), missed)),
        ("other scene", truth, objects(9, (96, 96), count=6, sizes=(3, 12))),
        ("perfect", truth, truth),
    ]


CASES = _cases()


def _monai_counts(true, pred):
    from monai.metrics.panoptic_quality import compute_panoptic_quality

    out = compute_panoptic_quality(torch.from_numpy(pred.astype(np.int32)),
                                   torch.from_numpy(true.astype(np.int32)),
                                   output_confusion_matrix=True)
    return [float(v) for v in out]


@pytest.mark.parametrize("name,true,pred", CASES, ids=[c[0] for c in CASES])
def test_panoptic_quality_agrees_with_monai(name, true, pred):
    from monai.metrics.panoptic_quality import compute_panoptic_quality

    ours = panoptic_quality(true, pred)
    tp, fp, fn, iou_sum = _monai_counts(true, pred)
    assert [ours["tp"], ours["fp"], ours["fn"]] == [tp, fp, fn]
    assert ours["matched_iou"] == pytest.approx(iou_sum, rel=1e-5)
    for metric in PANOPTIC_SCORES:
        theirs = float(compute_panoptic_quality(torch.from_numpy(pred.astype(np.int32)),
                                                torch.from_numpy(true.astype(np.int32)),
                                                metric_name=metric))
        # MONAI adds 1e-6 to its denominators.
        assert ours[metric] == pytest.approx(theirs, rel=1e-4, abs=1e-5), metric
    assert ours["pq"] == pytest.approx(ours["sq"] * ours["rq"])


def test_the_cases_cover_matches_and_misses():
    results = {name: panoptic_quality(t, p) for name, t, p in CASES}
    assert results["perfect"]["pq"] == 1.0
    shifted = results["shifted"]
    assert shifted["tp"] > 0 and shifted["fn"] > 0  # large objects kept, small ones lost
    assert results["split"]["fp"] >= 1 and results["merged"]["fn"] >= 1
    assert results["missed and spurious"]["fp"] >= 1 and results["missed and spurious"]["fn"] == 2


def test_pooled_panoptic_quality_agrees_with_monai_summed():
    """Pooled over images, as CoNIC scores a test set: MONAI's PanopticQualityMetric with its
    confusion matrices summed over the batch."""
    from monai.metrics import PanopticQualityMetric

    rows = [panoptic_quality(t, p) for _, t, p in CASES]
    ours = pooled_panoptic_quality(rows)

    def stack(masks):
        masks = torch.from_numpy(np.stack(masks).astype(np.int64))
        return torch.stack([masks, (masks > 0).long()], dim=1)  # instances, class 1

    metric = PanopticQualityMetric(num_classes=1, metric_name=PANOPTIC_SCORES, reduction="sum")
    metric(stack([p for _, _, p in CASES]), stack([t for _, t, _ in CASES]))
    theirs = [float(v) for v in metric.aggregate()]
    assert [ours[m] for m in PANOPTIC_SCORES] == pytest.approx(theirs, rel=1e-4)
    # Pooling is not the mean of the images' scores.
    assert ours["pq"] != pytest.approx(np.mean([r["pq"] for r in rows]))


def test_rq_is_object_f1_and_object_metrics_carry_pq():
    for _, true, pred in CASES:
        metrics = object_metrics(true, pred)
        assert metrics["rq"] == pytest.approx(object_f1(true, pred))
        assert {*PANOPTIC_SCORES, "matched_iou"} <= set(metrics)


def test_empty_masks_differ_from_monai_as_documented():
    from monai.metrics.panoptic_quality import compute_panoptic_quality

    empty = np.zeros((32, 32), np.int32)
    blob = empty.copy()
    blob[4:12, 4:12] = 1
    # Nothing to find and nothing found: kerasmed 1 (as object F1), MONAI 0 (0 / 1e-6).
    assert panoptic_quality(empty, empty) == {"pq": 1.0, "sq": 1.0, "rq": 1.0, "tp": 0,
                                              "fp": 0, "fn": 0, "matched_iou": 0.0}
    assert float(compute_panoptic_quality(torch.from_numpy(empty), torch.from_numpy(empty))) \
        == 0.0
    # One side empty: 0 in both.
    for true, pred in ((blob, empty), (empty, blob)):
        ours = panoptic_quality(true, pred)
        assert ours["pq"] == ours["sq"] == ours["rq"] == 0.0
        assert float(compute_panoptic_quality(torch.from_numpy(pred),
                                              torch.from_numpy(true))) == 0.0
    with pytest.raises(ValueError, match="0.5"):
        panoptic_quality(blob, blob, iou_threshold=0.3)


def test_evaluate_writes_panoptic_quality(tmp_path):
    import keras
    import pandas as pd

    from kerasmed.data.lookalike import write_image
    from kerasmed.data.readers import read_folder_pair
    from kerasmed.data.targets import distance_map
    from kerasmed.evaluation import Postprocess, evaluate

    truth = np.zeros((32, 32), np.uint16)
    truth[4:12, 4:12], truth[4:12, 12:20], truth[20:28, 6:14] = 1, 2, 3
    shown = [truth, np.where(truth == 3, 0, truth)]  # image 1: nucleus 3 missed
    for k, predicted in enumerate(shown):
        image = np.zeros((32, 32, 3), np.uint8)
        image[..., 0] = np.round(distance_map(predicted) * 255)
        write_image(tmp_path / "images" / f"{k}.png", image)
        write_image(tmp_path / "masks" / f"{k}.png", truth)
    samples = read_folder_pair(tmp_path, mask_type="instances")
    inputs = keras.Input((32, 32, 3))
    kernel = np.zeros((1, 1, 3, 1), np.float32)
    kernel[0, 0, 0, 0] = 1.0
    model = keras.Model(inputs, keras.layers.Conv2D(
        1, 1, kernel_initializer=keras.initializers.Constant(kernel))(inputs))
    summary = evaluate(model, samples, tmp_path / "eval", normalization="dtype_range",
                       n_overlays=1, postprocess=Postprocess("distance", h=0.1))
    table = pd.read_csv(tmp_path / "eval" / "per_image.csv")
    assert {*PANOPTIC_SCORES, "matched_iou"} <= set(table.columns)
    # Image 0 exact; image 1: two of three found exactly, RQ = 2 / (2 + 1/2), SQ = 1.
    np.testing.assert_allclose(table[["pq", "sq", "rq"]].to_numpy(), [[1, 1, 1], [0.8, 1, 0.8]])
    assert summary["pq"]["mean"] == pytest.approx(0.9)
    assert summary["pq_pooled"]["pq"] == pytest.approx(5 / (5 + 0.5))
    assert summary["pq_pooled"]["tp"] == 5 and summary["pq_pooled"]["fn"] == 1
    assert json.loads((tmp_path / "eval" / "summary.json").read_text())["pq_pooled"]["rq"] \
        == pytest.approx(summary["object_f1_pooled"]["value"])
