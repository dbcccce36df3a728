"""Inference on whole images and per-image evaluation, at the images' own resolution.

``predict_image`` turns one image of any size into a probability map of the same size, either by
resizing it to the model's input (how kerasmed's loader trains) and the prediction back, or by
sliding overlapping tiles of the model's input size over it and blending them (for models
trained on crops at native resolution, and images larger than the training size). Test-time
augmentation averages the prediction over flips (and 90-degree rotations for square inputs).

``score_masks`` gives Dice, IoU, precision, recall and the 95th-percentile Hausdorff distance of
one predicted mask against its ground truth; ``evaluate`` does it for a list of samples and
writes the CSV, the summary and overlays of the best and worst cases. For instance tasks
(nuclei, glands) ``evaluate`` also turns each prediction into objects (a watershed on a predicted
distance map, or connected components of a probability map; ``Postprocess``) and scores them
against the instance labels with AJI, object F1 and object Dice (``kerasmed.instances``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy import ndimage

from kerasmed.data.normalize import make_normalizer, normalize_image
from kerasmed.data.io import read_image, read_label_mask, read_mask
from kerasmed import instances as km_instances

__all__ = ["hd95", "score_masks", "predict_image", "sliding_window", "evaluate",
           "overlay", "model_input_shape", "Postprocess", "OBJECT_SCORES"]

OBJECT_SCORES = ("aji", "object_f1", "object_precision", "object_recall", "object_dice")


@dataclass(frozen=True)
class Postprocess:
    """How a prediction becomes instances, for object-level scores.

    Attributes:
        source: ``"distance"`` (the model regresses a distance map: a marker-controlled
            watershed, ``kerasmed.instances.watershed_from_distance``) or ``"probability"``
            (a foreground probability, or a softmax whose channel 0 is background: threshold,
            connected components, ``kerasmed.instances.instances_from_probabilities``).
        foreground_threshold: foreground is above it; ``None``: 0.05 for distance maps (with
            per-object normalised targets every object pixel is above it), 0.5 for probabilities.
        h: distance maps: the h-maxima depth of the watershed markers.
        marker_threshold: distance maps: markers are the regions above it instead of h-maxima.
        min_size: objects smaller than this (pixels, at the image's resolution) are removed.
        fill_holes: probabilities: fill holes inside objects.
        iou_threshold: a predicted object detects a true one above this IoU (object F1).
    """

    source: str = "probability"
    foreground_threshold: float | None = None
    h: float = 0.1
    marker_threshold: float | None = None
    min_size: int = 0
    fill_holes: bool = True
    iou_threshold: float = 0.5

    def __post_init__(self):
        if self.source not in ("distance", "probability"):
            raise ValueError(f"postprocess source must be 'distance' or 'probability', got "
                             f"{self.source!r}")

    def instances(self, prob: np.ndarray) -> np.ndarray:
        """An ``int32`` instance mask from a model's ``(H, W, C)`` output."""
        if self.source == "distance":
            threshold = 0.05 if self.foreground_threshold is None else self.foreground_threshold
            return km_instances.watershed_from_distance(
                prob[..., 0], foreground_threshold=threshold, h=self.h,
                marker_threshold=self.marker_threshold, min_size=self.min_size)
        foreground = prob[..., 0] if prob.shape[-1] == 1 else 1.0 - prob[..., 0]
        threshold = 0.5 if self.foreground_threshold is None else self.foreground_threshold
        return km_instances.instances_from_probabilities(
            foreground, threshold=threshold, min_size=self.min_size, fill_holes=self.fill_holes)


def _boundary(mask):
    return mask & ~ndimage.binary_erosion(mask, structure=np.ones((3, 3)), border_value=0)


def hd95(pred: np.ndarray, truth: np.ndarray) -> float:
    """95th-percentile symmetric Hausdorff distance (pixels) between two binary masks' outlines.

    Returns 0.0 when both masks are empty and ``nan`` when exactly one is (the distance is
    undefined; means over a dataset then skip that image, and the count of such images is
    reported beside them).
    """
    pred, truth = pred.astype(bool), truth.astype(bool)
    if not pred.any() and not truth.any():
        return 0.0
    if not pred.any() or not truth.any():
        return float("nan")
    bp, bt = _boundary(pred), _boundary(truth)
    to_truth = ndimage.distance_transform_edt(~bt)[bp]
    to_pred = ndimage.distance_transform_edt(~bp)[bt]
    return float(max(np.percentile(to_truth, 95), np.percentile(to_pred, 95)))


def score_masks(pred: np.ndarray, truth: np.ndarray) -> dict:
    """Dice, IoU, precision, recall and HD95 of a binary prediction against its ground truth.

    Empty-mask conventions (the same as kerasmed's Keras metrics): an empty prediction of an
    empty truth scores 1 for every overlap score; precision of an empty prediction is 1 when the
    truth is empty too and 0 otherwise, and recall of an empty truth likewise.
    """
    pred, truth = pred.astype(bool), truth.astype(bool)
    tp = float(np.logical_and(pred, truth).sum())
    p, t = float(pred.sum()), float(truth.sum())
    both_empty = p == 0 and t == 0
    return {
        "dice": 1.0 if both_empty else 2 * tp / (p + t),
        "iou": 1.0 if both_empty else tp / (p + t - tp),
        "precision": (1.0 if t == 0 else 0.0) if p == 0 else tp / p,
        "recall": (1.0 if p == 0 else 0.0) if t == 0 else tp / t,
        "hd95": hd95(pred, truth),
    }


def model_input_shape(model):
    """``(height, width, channels)`` of a model's (first) image input."""
    shape = model.inputs[0].shape
    return tuple(shape[1:4])


def _predict(model, batch):
    out = model.predict_on_batch(batch)
    if isinstance(out, (list, tuple)):
        out = out[-1]  # deep supervision: the last output is the one evaluated
    elif isinstance(out, dict):
        out = out[model.output_names[-1]]
    return np.asarray(out, dtype=np.float32)


def _tta_predict(model, batch, tta: bool):
    if not tta:
        return _predict(model, batch)
    # Quarter turns of a non-square input would change its shape; half turns do not.
    turns = range(4) if batch.shape[1] == batch.shape[2] else (0, 2)
    preds = []
    for flip in (False, True):
        for k in turns:
            x = np.rot90(batch[:, :, ::-1] if flip else batch, k, axes=(1, 2))
            y = np.rot90(_predict(model, np.ascontiguousarray(x)), -k, axes=(1, 2))
            preds.append(y[:, :, ::-1] if flip else y)
    return np.mean(preds, axis=0)


def _weights(h, w):
    # A tent window: tiles count most at their centre, so seams between tiles vanish.
    wy = 1.0 - np.abs(np.linspace(-1, 1, h)) * 0.9
    wx = 1.0 - np.abs(np.linspace(-1, 1, w)) * 0.9
    return np.outer(wy, wx).astype(np.float32)[..., None]


def sliding_window(model, image: np.ndarray, overlap: float = 0.5, tta: bool = False,
                   batch_size: int = 4) -> np.ndarray:
    """Predict a normalised ``(H, W, C)`` image of any size with overlapping model-sized tiles.

    The image is reflect-padded to at least one tile; tiles step by ``tile * (1 - overlap)``
    and their predictions are blended with a tent window. Returns ``(H, W, classes)``.
    """
    th, tw = model_input_shape(model)[:2]
    h, w = image.shape[:2]
    ph, pw = max(0, th - h), max(0, tw - w)
    padded = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")
    H, W = padded.shape[:2]
    sy, sx = max(1, int(th * (1 - overlap))), max(1, int(tw * (1 - overlap)))
    ys = list(range(0, H - th + 1, sy)) + ([H - th] if (H - th) % sy else [])
    xs = list(range(0, W - tw + 1, sx)) + ([W - tw] if (W - tw) % sx else [])
    corners = [(y, x) for y in ys for x in xs]
    weight = _weights(th, tw)
    acc, norm = None, np.zeros((H, W, 1), np.float32)
    for i in range(0, len(corners), batch_size):
        chunk = corners[i:i + batch_size]
        tiles = np.stack([padded[y:y + th, x:x + tw] for y, x in chunk])
        preds = _tta_predict(model, tiles, tta)
        if acc is None:
            acc = np.zeros((H, W, preds.shape[-1]), np.float32)
        for (y, x), p in zip(chunk, preds):
            acc[y:y + th, x:x + tw] += p * weight
            norm[y:y + th, x:x + tw] += weight
    return (acc / norm)[:h, :w]


def predict_image(model, image: np.ndarray, mode: str = "resize", normalization="auto",
                  overlap: float = 0.5, tta: bool = False) -> np.ndarray:
    """Probability map ``(H, W, classes)`` of a raw ``(H, W, C)`` image at its own size.

    ``mode="resize"`` resizes the image to the model's input size (as kerasmed's loader does
    for training) and the prediction back; ``mode="tile"`` runs ``sliding_window`` at native
    resolution.
    """
    h, w = image.shape[:2]
    x = make_normalizer(normalization)(image)
    if mode == "tile":
        return sliding_window(model, x, overlap=overlap, tta=tta)
    if mode != "resize":
        raise ValueError(f"mode must be 'resize' or 'tile', got {mode!r}")
    th, tw = model_input_shape(model)[:2]
    small = cv2.resize(x, (tw, th), interpolation=cv2.INTER_AREA)
    small = small[..., None] if small.ndim == 2 else small
    prob = _tta_predict(model, small[None], tta)[0]
    big = cv2.resize(prob, (w, h), interpolation=cv2.INTER_LINEAR)
    return big[..., None] if big.ndim == 2 else big


def to_mask(prob: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Binary ``(H, W)`` mask from one channel (threshold) or class index map (argmax)."""
    if prob.shape[-1] == 1:
        return (prob[..., 0] > threshold).astype(np.uint8)
    return np.argmax(prob, axis=-1).astype(np.uint8)


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


def _summarise(table, columns):
    summary = {}
    for col in columns:
        values = table[col].dropna()
        summary[col] = {"mean": float(values.mean()) if len(values) else math.nan,
                        "std": float(values.std(ddof=0)) if len(values) else math.nan,
                        "n": int(len(values))}
    return summary


def evaluate(model, samples, out_dir, *, channels=3, normalization="auto",
             mask_threshold=None, mode="resize", tta=False, threshold=0.5, n_overlays=3,
             postprocess: Postprocess | None = None):
    """Score ``model`` on every sample at its own resolution and write the results.

    Writes ``per_image.csv`` (one row per image: its path and each score), ``summary.json``
    (mean and standard deviation of each score; HD95 over the images where it is defined) and
    ``overlays/best_*.png`` / ``worst_*.png`` by Dice (by AJI for instances).

    With ``postprocess`` the masks are read as instance labels and each prediction is turned
    into instances; every row then also holds AJI, object F1 (with its precision, recall and
    TP / FP / FN counts) and object Dice, and the summary adds the object F1 of all images'
    objects pooled (``object_f1_pooled``, as the GlaS challenge counts detections). The pixel
    scores are those of the instances' union (the watershed's foreground for distance maps).

    Returns the summary dict.
    """
    import json

    import pandas as pd

    out_dir = Path(out_dir)

    def run(sample):
        image = read_image(sample.image, channels=channels)
        prob = predict_image(model, image, mode, normalization, tta=tta)
        shape = image.shape[:2]  # XML outline masks (MoNuSeg) are drawn at the image's size
        if postprocess is None:
            return image, read_mask(sample.mask, mask_threshold, sample.mask_type, shape), \
                to_mask(prob, threshold)
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
    summary = {"images": len(rows), "mode": mode, "tta": tta, "threshold": threshold}
    scores = ("dice", "iou", "precision", "recall", "hd95")
    if postprocess is not None:
        scores += OBJECT_SCORES
        tp, fp, fn = (int(table[c].sum()) for c in ("tp", "fp", "fn"))
        summary["postprocess"] = dict(vars(postprocess))
        summary["object_f1_pooled"] = {"value": km_instances.f1_from_counts(tp, fp, fn),
                                       "tp": tp, "fp": fp, "fn": fn}
    summary.update(_summarise(table, scores))
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    order = table["aji" if postprocess is not None else "dice"].argsort(kind="stable").tolist()
    picks = [("worst", i) for i in order[:n_overlays]] + \
            [("best", i) for i in order[::-1][:n_overlays]]
    # Predictions are not kept for every image (memory); the few shown are predicted again.
    for rank, (kind, i) in enumerate(picks):
        panel = overlay(*run(samples[i]))
        name = f"{kind}_{rank % n_overlays + 1}_{Path(samples[i].image).stem}.png"
        cv2.imwrite(str(out_dir / "overlays" / name), cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    return summary
