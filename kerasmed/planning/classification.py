"""Planning a classifier for a folder of labelled images (``class_folders``, ``oct2017``).

The input size comes from the images' median shape, the class weights from the class counts,
and the network's width, input size and batch from the budget, as for segmentation
(``kerasmed.planning.budget``). The network is the OCT seed project's small Residual Attention
Network (``residual_attention_network``, variant ``oct_small``; Wang et al., CVPR 2017), whose
``width`` scales every stage.
"""

from __future__ import annotations

from kerasmed.planning import rules
from kerasmed.planning.budget import Candidate

__all__ = ["CLASSIFIER", "INPUT_SIDES", "WIDTHS", "BATCHES", "IMBALANCE", "candidates",
           "class_weights_rule", "augmentation_rule", "decisions"]

CLASSIFIER = "residual_attention_network"
#: The network's first stage has 64 features at width 1 (``oct_small``).
_FEATURES = 64
#: Input sides tried (the longer side), largest first; multiples of the network's stride, 32.
INPUT_SIDES = (128, 96, 64, 32)
#: Width multipliers tried, widest first.
WIDTHS = (1.0, 0.5, 0.25)
#: Batch sizes tried, largest first (a classifier's batch of whole small images is cheap),
#: at most a fifth of the images.
BATCHES = (32, 16, 8, 4, 2)
#: Classes are weighted by inverse frequency when the largest class has this many times the
#: smallest one's images.
IMBALANCE = 1.5


def candidates(fp, channels) -> list[Candidate]:
    """Every (input size, width, batch) weighed, in the order of preference: larger inputs,
    then wider networks, then larger batches (at most a fifth of the images)."""
    h, w = fp["median_shape"]
    n = fp["n_images"]
    out, seen = [], set()
    for side in INPUT_SIDES:
        scale = min(1.0, side / max(h, w))
        size = [rules.round_to_multiple(h * scale, 32), rules.round_to_multiple(w * scale, 32)]
        decision = rules.Decision(
            "data.fit", "resize", "fit",
            f"whole images resized from the {h:g}x{w:g} median to {size[0]}x{size[1]} "
            f"(aspect kept, sides multiples of the network's stride 32)",
            {"median_shape": [h, w]})
        for width in WIDTHS:
            base = int(_FEATURES * width)
            for batch in BATCHES:
                if batch > max(BATCHES[-1], n // 5):  # several steps an epoch
                    continue
                key = (tuple(size), width, batch)
                if key in seen:
                    continue
                seen.add(key)
                # Convolution cost grows with the pixels and the square of the features.
                units = size[0] * size[1] * base * base / _FEATURES
                out.append(Candidate("resize", size, scale, None, batch, channels, decision,
                                     model=CLASSIFIER,
                                     extra={"variant": "oct_small", "width": width},
                                     base_width=base, image_units=units))
    return out


def class_weights_rule(fp) -> rules.Decision:
    """Inverse-frequency class weights when the classes are unbalanced (``IMBALANCE``)."""
    counts = fp["classes"]["counts"]
    ratio = max(counts.values()) / max(1, min(counts.values()))
    value = "balanced" if ratio >= IMBALANCE else None
    return rules.Decision("data.class_weights", value, "class weights",
                          f"largest / smallest class: {ratio:.2f} "
                          f"{'>=' if value else '<'} {IMBALANCE:g}", {"counts": counts})


def augmentation_rule() -> rules.Decision:
    """Mirroring, small rotations, brightness and contrast: the OCT seed project's flips and
    rotations, with nnU-Net's intensity changes. No large rotations: a classifier's images
    (retinal scans, slides) often have an orientation that carries meaning."""
    ops = [{"op": "flip_left_right", "probability": 0.5},
           {"op": "rotate", "probability": 0.5, "max_left_rotation": 10,
            "max_right_rotation": 10},
           {"op": "random_brightness", "probability": 0.15, "min_factor": 0.75,
            "max_factor": 1.25},
           {"op": "random_contrast", "probability": 0.15, "min_factor": 0.75,
            "max_factor": 1.25}]
    return rules.Decision("data.augmentation", ops, "augmentation",
                          "flips, rotation +-10 deg, brightness, contrast")


def decisions(fp, c, plan) -> list[rules.Decision]:
    """The classifier's decisions for the chosen candidate ``c`` and its schedule."""
    return [
        c.fit_decision,
        rules.Decision("data.image_size", list(c.size), "input",
                       f"{c.size[0]}x{c.size[1]}: the largest input whose network trains "
                       f"{plan.epochs} epochs ({plan.steps} steps) in the budget", {}),
        rules.Decision("model.params.width", c.extra["width"], "width",
                       f"{c.base} features in the first stage: the widest the budget affords",
                       {}),
        rules.Decision("training.batch_size", c.batch, "batch",
                       f"the largest of {BATCHES} (at most a fifth of the images) that trains "
                       f"enough steps", {"n_images": fp["n_images"]}),
        class_weights_rule(fp),
        rules.Decision("training.loss", "sparse_categorical_crossentropy", "loss",
                       "cross-entropy over class indices"),
        rules.Decision("training.metrics", ["accuracy"], "metrics",
                       "accuracy each epoch; macro F1, balanced accuracy and AUC from "
                       "kerasmed's classification callback"),
        rules.Decision("training.monitor", "val_macro_f1", "monitor",
                       "macro F1 weighs every class alike, unlike accuracy"),
        augmentation_rule(),
    ]
