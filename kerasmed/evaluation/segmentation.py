"""Evaluate a segmentation model on whole images at their own resolution.

``evaluate`` predicts every sample as training showed images to the network
(``kerasmed.evaluation.inference``), scores each prediction against its ground truth
(``kerasmed.evaluation.scores`` and ``surface``; per class for class-index masks,
``kerasmed.evaluation.multiclass``; for nuclei and glands also as objects,
``kerasmed.evaluation.objects`` and ``panoptic``) and writes the CSV, the summary and overlays
of the best and worst cases. docs/evaluation.md defines every score.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from kerasmed.data.io import read_image, read_label_mask, read_mask
from kerasmed.data.normalize import normalize_image
from kerasmed.evaluation import object_scores
from kerasmed.evaluation.calibration import Calibration, predictive_entropy, sample_variance
from kerasmed.evaluation.cleaning import MaskCleaning
from kerasmed.evaluation.inference import (InferenceSettings, model_input_shape, predict_image,
                                           predict_samples, to_mask)
from kerasmed.evaluation.multiclass import ClassMasks, class_columns, score_classes, \
    summarise_classes
from kerasmed.evaluation.objects import OBJECT_SCORES, Postprocess
from kerasmed.evaluation.panoptic import pooled_panoptic_quality
from kerasmed.evaluation.scores import PIXEL_SCORES, score_masks, summarise
from kerasmed.evaluation.surface import default_tolerance, resolve_spacing
from kerasmed.runfiles import replace_atomic, write_json_atomic

__all__ = ["evaluate", "overlay", "heatmap"]


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


def heatmap(values: np.ndarray, top=None) -> np.ndarray:
    """An RGB heatmap (matplotlib's magma) of a 2-D map, scaled to [0, ``top``] (default: its
    maximum)."""
    from matplotlib import colormaps

    top = float(np.max(values)) if top is None else float(top)
    scaled = np.clip(values / top, 0, 1) if top > 0 else np.zeros_like(values)
    return (colormaps["magma"](scaled)[..., :3] * 255).astype(np.uint8)


def overlay(image: np.ndarray, truth: np.ndarray, pred: np.ndarray,
            uncertainty: np.ndarray | None = None) -> np.ndarray:
    """Side-by-side RGB panel: the image, the ground truth (green) and the prediction (red);
    instance masks get an outline per object; with ``uncertainty`` (a per-pixel entropy map)
    a fourth panel shows it as a heatmap (bright: unsure, up to ln 2). Each panel is named in
    a ``LABEL_HEIGHT``-pixel strip above it ("image", "truth", "prediction", "uncertainty")."""
    rgb = image[..., :3] if image.shape[-1] >= 3 else np.repeat(image, 3, axis=-1)
    rgb = (normalize_image(rgb, "minmax") * 255).astype(np.uint8)
    panels = [_labelled(rgb, "image")]
    for mask, colour, name in ((truth, (0, 255, 0), "truth"), (pred, (255, 0, 0), "prediction")):
        panel = rgb.copy()
        tint = panel[mask > 0].astype(np.float32) * 0.5 + np.array(colour) * 0.5
        panel[mask > 0] = tint.astype(np.uint8)
        cv2.drawContours(panel, _outlines(mask), -1, colour, 1)
        panels.append(_labelled(panel, name))
    if uncertainty is not None:
        panels.append(_labelled(heatmap(uncertainty, top=np.log(2)), "uncertainty"))
    return np.concatenate(panels, axis=1)


LABEL_HEIGHT = 16


def _labelled(panel: np.ndarray, text: str) -> np.ndarray:
    """``panel`` under a black strip naming it in white."""
    strip = np.zeros((LABEL_HEIGHT, panel.shape[1], 3), np.uint8)
    cv2.putText(strip, text, (3, LABEL_HEIGHT - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([strip, panel], axis=0)


def evaluate(model, samples, out_dir, settings: InferenceSettings | None = None, *,
             channels=3, normalization="auto", mask_threshold=None, mode="resize", tta=False,
             threshold=0.5, n_overlays=3, postprocess: Postprocess | None = None,
             uncertainty: str | None = None, n_samples: int = 8,
             cleaning: MaskCleaning | None = None, classes: ClassMasks | None = None,
             spacing=None, spacing_source: str | None = None, spacing_unit: str | None = None,
             nsd_tolerance: float | None = None):
    """Score ``model`` on every sample at its own resolution and write the results.

    ``settings`` (a run's ``InferenceSettings``) says how images reach the network; without it
    ``channels``, ``normalization``, ``mask_threshold`` and ``mode`` describe a bare model.

    Writes ``per_image.csv`` (one row per image: its path and each score), ``summary.json``
    (mean and standard deviation of each score, HD95 and ASSD over the images where they are
    defined, and the inference settings applied) and ``overlays/best_*.png`` / ``worst_*.png``
    by Dice (by AJI for instances).

    Distances (HD95, ASSD, and the NSD tolerance) are in the units of ``spacing`` (a ``(row,
    col)`` pixel size named by ``spacing_source``, in ``spacing_unit``); without it in the
    micrometres of the images' TIFF resolution tags when every image has them, else in pixels
    (``kerasmed.evaluation.surface.resolve_spacing``). ``nsd_tolerance`` defaults to two
    pixels (``surface.default_tolerance`` of the largest pixel size). ``summary.json`` records
    ``distance_unit``, ``spacing`` and ``nsd_tolerance``.

    With ``classes`` (``kerasmed.evaluation.multiclass.ClassMasks``) the masks are read as
    class indices and the prediction is the argmax: the row's plain scores are those of the
    foreground (every class but 0 together), and each row adds every score per class
    (``<score>_class_<c>``) and the image's mean over the classes (``<score>_macro``);
    ``per_class.csv`` holds each class's pooled scores and image means, and ``summary.json``
    ``per_class`` and the ``micro``, ``macro``, ``weighted`` and ``per_image`` averages.

    With ``postprocess`` the masks are read as instance labels and each prediction is turned
    into instances; every row then also holds AJI, object F1 (with its precision, recall and
    TP / FP / FN counts), object Dice and the panoptic quality (PQ, SQ, RQ, with the matched
    pairs' IoU sum), and the summary adds the object F1 and the PQ of all images' objects
    pooled (``object_f1_pooled``, as the GlaS challenge counts detections; ``pq_pooled``, as
    CoNIC scores a test set). The pixel scores are those of the instances' union (the
    watershed's foreground for distance maps).

    ``cleaning`` (``kerasmed.evaluation.cleaning.MaskCleaning``: hole filling, small-object
    removal, the largest component) is applied to each thresholded mask before it is scored
    (not to instances, which ``postprocess`` makes); ``summary.json`` records it.

    Every evaluation of probabilities also reports the pixels' expected calibration error
    (``ece``, with the bins in ``calibration``) and draws ``reliability.png``. With
    ``uncertainty`` (``"tta"`` or ``"mc_dropout"``, ``n_samples`` passes) the prediction is the
    mean of the samples, each row adds the image's mean predictive entropy (``uncertainty``)
    and variance (``variance``), and each overlay gets its entropy panel, with the entropy and
    variance maps beside it (``overlays/*_entropy.png``, ``*_variance.png``).

    Returns the summary dict.
    """
    import pandas as pd

    if settings is None:
        settings = InferenceSettings(image_size=model_input_shape(model)[:2], channels=channels,
                                     normalization=normalization, mask_threshold=mask_threshold,
                                     mode=mode)
    out_dir = Path(out_dir)
    cleaning = MaskCleaning() if cleaning is None else cleaning
    if classes is not None and postprocess is not None:
        raise ValueError("class masks and instance (object) scores are separate evaluations")
    samples = list(samples)
    spacings, spacing_record = resolve_spacing(samples, spacing, spacing_source, spacing_unit)
    if nsd_tolerance is None:  # one tolerance for every image: the coarsest pixel's two sides
        known = [s for s in spacings if s is not None]
        nsd_tolerance = default_tolerance(max(known, key=max) if known else None)

    calibration = None if postprocess is not None and postprocess.source == "distance" \
        else Calibration()  # a regressed distance map has no confidence to calibrate

    def run(sample):
        image = read_image(sample.image, channels=settings.channels)
        maps = None
        if uncertainty is None:
            prob = predict_image(model, image, settings.mode, settings.normalization, tta=tta,
                                 pad_value=settings.pad_value)
        else:
            stack = predict_samples(model, image, uncertainty, n_samples, settings.mode,
                                    settings.normalization, pad_value=settings.pad_value)
            prob = stack.mean(axis=0)
            maps = predictive_entropy(stack), sample_variance(stack)
        shape = image.shape[:2]  # XML outline masks (MoNuSeg) are drawn at the image's size
        if classes is not None:
            truth = classes.read(sample.mask)
            if truth.shape != shape:
                raise ValueError(f"mask {sample.mask}: {truth.shape[0]}x{truth.shape[1]}, its "
                                 f"image {shape[0]}x{shape[1]}")
            if prob.shape[-1] != classes.n_classes:
                raise ValueError(f"the model predicts {prob.shape[-1]} channel(s) for "
                                 f"{classes.n_classes} classes")
            return image, truth, cleaning(to_mask(prob, threshold)), prob, maps
        if postprocess is None:
            truth = read_mask(sample.mask, settings.mask_threshold, sample.mask_type, shape)
            return image, truth, cleaning(to_mask(prob, threshold)), prob, maps
        truth = read_label_mask(sample.mask, shape)
        return image, truth, postprocess.instances(prob), prob, maps

    rows, per_class = [], []
    for sample, pixel_size in zip(samples, spacings):
        _, truth, pred, prob, maps = run(sample)
        row = {"image": str(sample.image),
               **score_masks(pred > 0, truth > 0, pixel_size, nsd_tolerance)}
        if classes is not None:
            per_class.append(score_classes(pred, truth, classes.n_classes,
                                           classes.include_background, pixel_size,
                                           nsd_tolerance))
            row.update(class_columns(per_class[-1]))
        if postprocess is not None:
            row.update(object_scores.object_metrics(truth, pred, postprocess.iou_threshold))
        if maps is not None:
            row.update(uncertainty=float(maps[0].mean()), variance=float(maps[1].mean()))
        if calibration is not None:
            # A softmax's confidence is judged against the class; a sigmoid's, the foreground.
            calibration.add_probabilities(prob, (truth if classes is not None and
                                                 prob.shape[-1] > 1 else truth > 0)
                                          .astype(np.int64))
        rows.append(row)
    # Only now, with every image scored: an unreadable mask leaves no half-written folder.
    (out_dir / "overlays").mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    replace_atomic(out_dir / "per_image.csv", lambda tmp: table.to_csv(tmp, index=False))
    summary = {"images": len(rows), "mode": settings.mode, "tta": tta, "threshold": threshold,
               "inference": settings.record(), "distance_unit": spacing_record["unit"],
               "spacing": spacing_record, "nsd_tolerance": nsd_tolerance}
    if postprocess is None:
        summary["mask_cleaning"] = cleaning.record()
    scores = PIXEL_SCORES
    if uncertainty is not None:
        summary["uncertainty_sampling"] = {
            "method": uncertainty, "samples": n_samples if uncertainty == "mc_dropout" else None}
        scores += ("uncertainty", "variance")
    if calibration is not None:
        summary["ece"] = calibration.ece()
        summary["calibration"] = calibration.record()["bins"]
        calibration.plot(out_dir / "reliability.png", "pixels")
    if postprocess is not None:
        scores += OBJECT_SCORES
        tp, fp, fn = (int(table[c].sum()) for c in ("tp", "fp", "fn"))
        summary["postprocess"] = dict(vars(postprocess))
        summary["object_f1_pooled"] = {"value": object_scores.f1_from_counts(tp, fp, fn),
                                       "tp": tp, "fp": fp, "fn": fn}
        summary["pq_pooled"] = pooled_panoptic_quality(table.to_dict("records"))
    summary.update(summarise(table, scores))
    if classes is not None:
        class_summary, class_table = summarise_classes(per_class)
        summary["classes"] = classes.record()
        summary.update(class_summary)
        replace_atomic(out_dir / "per_class.csv",
                       lambda tmp: class_table.to_csv(tmp, index=False))
    write_json_atomic(out_dir / "summary.json", summary)
    order = table["aji" if postprocess is not None else "dice"].argsort(kind="stable").tolist()
    picks = [("worst", i) for i in order[:n_overlays]] + \
            [("best", i) for i in order[::-1][:n_overlays]]
    # Predictions are not kept for every image (memory); the few shown are predicted again.
    for rank, (kind, i) in enumerate(picks):
        image, truth, pred, _, maps = run(samples[i])
        panel = overlay(image, truth, pred, None if maps is None else maps[0])
        stem = f"{kind}_{rank % n_overlays + 1}_{Path(samples[i].image).stem}"
        _write_rgb(out_dir / "overlays" / f"{stem}.png", panel)
        if maps is not None:
            _write_rgb(out_dir / "overlays" / f"{stem}_entropy.png", heatmap(maps[0], np.log(2)))
            _write_rgb(out_dir / "overlays" / f"{stem}_variance.png", heatmap(maps[1]))
    return summary


def _write_rgb(path, rgb):
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
