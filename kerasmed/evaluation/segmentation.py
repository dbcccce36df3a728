"""Evaluate a segmentation model on whole images at their own resolution.

``evaluate`` predicts every sample as training showed images to the network
(``kerasmed.evaluation.inference``), scores each prediction against its ground truth
(``kerasmed.evaluation.scores``; for nuclei and glands also as objects,
``kerasmed.evaluation.objects``) and writes the CSV, the summary and overlays of the best and
worst cases.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from kerasmed.data.io import read_image, read_label_mask, read_mask
from kerasmed.data.normalize import normalize_image
from kerasmed.evaluation import instances as km_instances
from kerasmed.evaluation.inference import (InferenceSettings, model_input_shape, predict_image,
                                           to_mask)
from kerasmed.evaluation.objects import OBJECT_SCORES, Postprocess
from kerasmed.evaluation.scores import PIXEL_SCORES, score_masks, summarise

__all__ = ["evaluate", "overlay"]


def _outlines(mask):
    """Outer contours of every object: each label of an instance mask on its own, so that
    touching objects show their shared border."""
    labels = [1] if mask.max() <= 1 else [v for v in np.unique(mask) if v]
    contours = []
    for value in labels:
        found, _ = cv2.findContours((mask == value if len(labels) > 1 else mask > 0)
                                    .astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        contours += list(found)
    return contours


def overlay(image: np.ndarray, truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Side-by-side RGB panel: the image, the ground truth (green) and the prediction (red);
    instance masks get an outline per object."""
    rgb = image[..., :3] if image.shape[-1] >= 3 else np.repeat(image, 3, axis=-1)
    rgb = (normalize_image(rgb, "minmax") * 255).astype(np.uint8)
    panels = [rgb]
    for mask, colour in ((truth, (0, 255, 0)), (pred, (255, 0, 0))):
        panel = rgb.copy()
        tint = panel[mask > 0].astype(np.float32) * 0.5 + np.array(colour) * 0.5
        panel[mask > 0] = tint.astype(np.uint8)
        cv2.drawContours(panel, _outlines(mask), -1, colour, 1)
        panels.append(panel)
    return np.concatenate(panels, axis=1)


def evaluate(model, samples, out_dir, settings: InferenceSettings | None = None, *,
             channels=3, normalization="auto", mask_threshold=None, mode="resize", tta=False,
             threshold=0.5, n_overlays=3, postprocess: Postprocess | None = None):
    """Score ``model`` on every sample at its own resolution and write the results.

    ``settings`` (a run's ``InferenceSettings``) says how images reach the network; without it
    ``channels``, ``normalization``, ``mask_threshold`` and ``mode`` describe a bare model.

    Writes ``per_image.csv`` (one row per image: its path and each score), ``summary.json``
    (mean and standard deviation of each score, HD95 over the images where it is defined, and
    the inference settings applied) and ``overlays/best_*.png`` / ``worst_*.png`` by Dice (by
    AJI for instances).

    With ``postprocess`` the masks are read as instance labels and each prediction is turned
    into instances; every row then also holds AJI, object F1 (with its precision, recall and
    TP / FP / FN counts) and object Dice, and the summary adds the object F1 of all images'
    objects pooled (``object_f1_pooled``, as the GlaS challenge counts detections). The pixel
    scores are those of the instances' union (the watershed's foreground for distance maps).

    Returns the summary dict.
    """
    import pandas as pd

    if settings is None:
        settings = InferenceSettings(image_size=model_input_shape(model)[:2], channels=channels,
                                     normalization=normalization, mask_threshold=mask_threshold,
                                     mode=mode)
    out_dir = Path(out_dir)

    def run(sample):
        image = read_image(sample.image, channels=settings.channels)
        prob = predict_image(model, image, settings.mode, settings.normalization, tta=tta,
                             pad_value=settings.pad_value)
        shape = image.shape[:2]  # XML outline masks (MoNuSeg) are drawn at the image's size
        if postprocess is None:
            return image, read_mask(sample.mask, settings.mask_threshold, sample.mask_type,
                                    shape), to_mask(prob, threshold)
        return image, read_label_mask(sample.mask, shape), postprocess.instances(prob)

    samples = list(samples)
    rows = []
    for sample in samples:
        _, truth, pred = run(sample)
        row = {"image": str(sample.image), **score_masks(pred > 0, truth > 0)}
        if postprocess is not None:
            row.update(km_instances.object_metrics(truth, pred, postprocess.iou_threshold))
        rows.append(row)
    # Only now, with every image scored: an unreadable mask leaves no half-written folder.
    (out_dir / "overlays").mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(out_dir / "per_image.csv", index=False)
    summary = {"images": len(rows), "mode": settings.mode, "tta": tta, "threshold": threshold,
               "inference": settings.record()}
    scores = PIXEL_SCORES
    if postprocess is not None:
        scores += OBJECT_SCORES
        tp, fp, fn = (int(table[c].sum()) for c in ("tp", "fp", "fn"))
        summary["postprocess"] = dict(vars(postprocess))
        summary["object_f1_pooled"] = {"value": km_instances.f1_from_counts(tp, fp, fn),
                                       "tp": tp, "fp": fp, "fn": fn}
    summary.update(summarise(table, scores))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    order = table["aji" if postprocess is not None else "dice"].argsort(kind="stable").tolist()
    picks = [("worst", i) for i in order[:n_overlays]] + \
            [("best", i) for i in order[::-1][:n_overlays]]
    # Predictions are not kept for every image (memory); the few shown are predicted again.
    for rank, (kind, i) in enumerate(picks):
        panel = overlay(*run(samples[i]))
        name = f"{kind}_{rank % n_overlays + 1}_{Path(samples[i].image).stem}.png"
        cv2.imwrite(str(out_dir / "overlays" / name), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    return summary
