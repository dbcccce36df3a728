"""The planner's rules: each reads a few figures of a dataset fingerprint (and of the budget) and
returns one decision with the reason it was taken.

The rules adapt nnU-Net's 2D planning (Isensee et al., "nnU-Net: a self-configuring method for
deep learning-based biomedical image segmentation", Nature Methods 2021;
``nnunetv2/experiment_planning``) to a compute budget on the machine at hand; docs/planning.md
lists each rule, its source and where kerasmed departs from it. The constants below are the
rules' only numbers; each says where it comes from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kerasmed.data import memory
from kerasmed.models.planned_unet import default_side_levels, deep_supervision_weights

__all__ = ["Decision", "PlanError", "MIN_FEATURE_MAP", "MAX_POOLS", "WIDTH_CAP", "BASE_WIDTHS",
           "MIN_BASE_WIDTH", "MIN_MINOR_AXIS", "SPECK_RATIO", "PATCH_DIAMETERS", "MAX_PATCH",
           "MIN_PATCH", "FOREGROUND_SHARE", "BATCH_PIXEL_SHARE", "BATCH_RANGE", "BATCH_STEPS",
           "BUDGET_SHARE", "TARGET_STEPS", "TARGET_PASSES", "MIN_STEPS", "FOLD_STEPS",
           "FOLD_PASSES",
           "FOLD_CHOICES", "EPOCH_RANGE", "VALIDATION_SHARE", "channels_rule",
           "normalization_rule", "pools_for", "patch_rule", "widths_rule", "batch_rule",
           "augmentation_rule", "loss_rule", "optimizer_rule", "round_to_multiple",
           "cache_rule", "smallest_minor_axis", "typical_diameter", "DEEP_SUPERVISION",
           "deep_supervision_rule", "uses_deep_supervision"]

# --- network topology (nnU-Net: get_pool_and_conv_props, PlainConvUNet constants) -----------
#: A stage is pooled only while its feature map stays at least this wide before pooling, so the
#: bottleneck is at least half of it (nnU-Net: 4 px at the bottleneck in 2D... 8 before it).
MIN_FEATURE_MAP = 8
#: At most this many poolings (nnU-Net's 2D plans of large images reach 6 or 7; on a CPU budget
#: patches are far smaller, so the cap seldom binds).
MAX_POOLS = 6
#: Features of the widest stage (nnU-Net 2D: 512).
WIDTH_CAP = 512
#: First-stage widths tried, widest first (nnU-Net: 32; narrower ones when the budget needs).
BASE_WIDTHS = (32, 24, 16, 12, 8)
#: Narrower first stages are used only when no patch trains enough steps with this one.
MIN_BASE_WIDTH = 16
#: Deep supervision (nnU-Net trains every plan with it): side outputs on the middle decoder
#: levels, weighted 1/2**level. Off: trained on the same three plans for the same steps
#: (benchmarks/RESULTS.md, 2026-12-05), it changed the test Dice by +0.009 on the synthetic
#: polyps but -0.008 and -0.009 on the two real sets (DSB nuclei, MNI grey matter). A budget
#: of a few hundred steps is far from nnU-Net's 250,000. ``deep_supervision_rule`` still
#: writes the weights when this is switched on.
DEEP_SUPERVISION = False
DEEP_SUPERVISION_REASON = ("off: on the same plans it changed test Dice by +0.009, -0.008 and "
                           "-0.009 (polyps, DSB, MNI; benchmarks/RESULTS.md)")

# --- resolution and patch -------------------------------------------------------------------
#: Resizing is allowed only while the smallest objects keep a minor axis of this many pixels.
MIN_MINOR_AXIS = 4.0
#: Objects whose minor axis is under the median's / this are specks, not the smallest objects.
SPECK_RATIO = 4
#: A patch should be at least this many median object diameters wide (context around objects).
PATCH_DIAMETERS = 4
#: The largest patch side tried (nnU-Net starts at 2048 in 2D and shrinks to fit a GPU; a CPU
#: budget cannot afford more than this).
MAX_PATCH = 512
#: The smallest patch side worth training (below it the network has under 3 poolings).
MIN_PATCH = 32
#: Share of each batch's patches placed on foreground (nnU-Net: oversample_foreground_percent).
FOREGROUND_SHARE = 1 / 3

# --- batch ----------------------------------------------------------------------------------
#: One batch covers at most this share of the dataset's pixels (nnU-Net: 5 %).
BATCH_PIXEL_SHARE = 0.05
#: Batch sizes allowed: nnU-Net's minimum of 2; at most 8 because on a CPU the step time is
#: linear in the pixels of a step (benchmarks/RESULTS.md, "Scaling"), so a larger batch buys no
#: speed and only fewer, costlier steps.
BATCH_RANGE = (2, 8)
#: Batch sizes tried below the rule's, when a smaller batch lets a larger patch train enough
#: steps (nnU-Net shrinks the patch for memory and keeps the batch; a time budget on a CPU
#: trades batch for context instead, since the patch decides what the network can see).
BATCH_STEPS = (8, 4, 2)

# --- budget ---------------------------------------------------------------------------------
#: Train steps and passes over the training pixels (epochs of whole images, or patches
#: covering the images' pixels that often) a model should get before a wider network or a
#: larger patch is preferred over more training. Both count: on the synthetic polyps a
#: planned U-Net of 1200 steps of batch 2 (15 passes) beat the hand-written one of 800 steps
#: of batch 8 (40 passes), test Dice 0.965 against 0.954 (benchmarks/RESULTS.md).
TARGET_STEPS = 1000
TARGET_PASSES = 15
#: The fewest train steps of a useful model: the quickstart's U-Net reaches a validation Dice
#: of 0.89 after 240 steps (12 epochs of 20; README).
MIN_STEPS = 250
#: Each fold of a cross-validation must get this many steps and passes, else one run is
#: planned.
FOLD_STEPS = 500
FOLD_PASSES = 10
#: Fold counts tried, most first (nnU-Net: 5). Not 2: each model would train on half the
#: images, fewer than the single run's 80 %.
FOLD_CHOICES = (5, 4, 3)
#: Share of the budget the plan fills: the rest absorbs the error of the time estimate. Four
#: planned runs on the 2-core machine took 0.84-1.19x the time their plan expected
#: (benchmarks/RESULTS.md, 2026-12-04).
BUDGET_SHARE = 0.8
#: Epochs of a planned run: enough for curves and a best checkpoint, few enough that
#: validation and checkpoints stay a small share of the time.
EPOCH_RANGE = (5, 100)
#: Validation and checkpoints may take at most this share of an epoch.
VALIDATION_SHARE = 0.2


class PlanError(ValueError):
    """The dataset or the budget cannot give a sensible plan; the message says why and, for a
    budget, the budget needed."""


@dataclass
class Decision:
    """One decision of a plan: the experiment key it sets, its value, the rule that took it and
    the figures it used, in one line."""

    key: str
    value: Any
    rule: str
    reason: str
    figures: dict = field(default_factory=dict)

    def record(self) -> dict:
        return {"key": self.key, "value": self.value, "rule": self.rule, "reason": self.reason,
                "figures": self.figures}


def round_to_multiple(value: float, multiple: int, up: bool = False) -> int:
    """``value`` rounded down (or ``up``) to a multiple of ``multiple``, at least ``multiple``."""
    steps = math.ceil(value / multiple) if up else math.floor(value / multiple)
    return max(multiple, int(steps) * multiple)


def channels_rule(fp) -> Decision:
    """RGB when any image has three or more channels, else grey."""
    stored = fp["channels"]
    value = 3 if max(stored) >= 3 else 1
    return Decision("data.channels", value, "channels",
                    f"stored channels {stored}: {'RGB' if value == 3 else 'grey'}",
                    {"channels": stored})


def normalization_rule(fp) -> Decision:
    """8-bit images: divided by 255 (nnU-Net's ``rgb_to_0_1``); 16-bit or float images:
    each image's 0.5-99.5 percentiles mapped to 0-1 (nnU-Net z-scores each non-CT image; a
    percentile stretch does the same job for microscopy whose values fill a narrow part of
    the range, and keeps kerasmed's loaders' 0-1 inputs)."""
    dtypes = fp["dtypes"]
    if dtypes == ["uint8"]:
        return Decision("data.normalization", "dtype_range", "normalization",
                        "8-bit images: divide by 255 (nnU-Net rgb_to_0_1)", {"dtypes": dtypes})
    value = {"method": "percentile", "low": 0.5, "high": 99.5, "clip": True}
    return Decision("data.normalization", value, "normalization",
                    f"{', '.join(dtypes)} images: each image's 0.5-99.5 percentiles to 0-1 "
                    f"(nnU-Net: per-image normalisation of non-CT data)", {"dtypes": dtypes})


def pools_for(side: int) -> int:
    """Poolings of a patch side: pool while the feature map stays >= ``MIN_FEATURE_MAP``
    before pooling, at most ``MAX_POOLS``."""
    pools = 0
    while pools < MAX_POOLS and side / 2 ** pools >= MIN_FEATURE_MAP \
            and (side / 2 ** (pools + 1)) >= MIN_FEATURE_MAP / 2:
        pools += 1
    return pools


def smallest_minor_axis(components) -> float | None:
    """The minor axis of the smallest objects that matter: the area-weighted 10th percentile
    (the objects holding the smallest tenth of the foreground), so that specks (one-pixel
    islands of a thresholded map, objects cut by an image's border) do not forbid resizing;
    for a fingerprint without it, the minimum raised to a ``SPECK_RATIO``-th of the median.
    ``None`` when there are no objects."""
    weighted = (components.get("minor_axis_by_area") or {}).get("p10")
    if weighted is not None:
        return weighted
    axes = components.get("minor_axis_length") or {}
    if axes.get("min") is None:
        return None
    return max(axes["min"], (axes.get("median") or 0) / SPECK_RATIO)


def typical_diameter(components) -> float | None:
    """The objects' area-weighted median equivalent diameter (the count median without it)."""
    weighted = (components.get("diameter_by_area") or {}).get("median")
    if weighted is not None:
        return weighted
    return (components.get("equivalent_diameter") or {}).get("median")


def patch_rule(fp, max_side: int = MAX_PATCH):
    """Fit, input size and patch from the median image and the objects' sizes.

    Returns ``(fit, size, scale, decision)``: ``fit`` is ``"resize"`` when the whole median
    image fits in a ``max_side`` patch at a scale that keeps the smallest objects' minor axis
    >= ``MIN_MINOR_AXIS`` px (``scale`` <= 1, aspect kept), else ``"patches"`` (native
    resolution, random patches of ``size``: the median shape capped at ``max_side``, at least
    ``PATCH_DIAMETERS`` median object diameters when that fits); ``size`` is a multiple of
    2^pools on each side.
    """
    h, w = fp["median_shape"]
    components = fp.get("components") or {}
    minor, diameter = smallest_minor_axis(components), typical_diameter(components)
    scale = min(1.0, max_side / h, max_side / w)
    figures = {"median_shape": [h, w], "smallest_minor_axis": minor,
               "median_diameter": diameter, "max_side": max_side}
    keeps_objects = minor is None or minor * scale >= MIN_MINOR_AXIS
    if scale == 1.0 or keeps_objects:
        side = min(h, w) * scale
        pools = pools_for(int(side))
        size = [round_to_multiple(h * scale, 2 ** pools, up=scale == 1.0),
                round_to_multiple(w * scale, 2 ** pools, up=scale == 1.0)]
        if max(size) > max_side:
            size = [min(s, round_to_multiple(max_side, 2 ** pools)) for s in size]
        why = ("the median image fits a patch" if scale == 1.0 else
               f"shrunk by {scale:.3f}, the smallest objects keep a minor axis of "
               f"{minor * scale:.1f} px >= {MIN_MINOR_AXIS:g}" if minor is not None else
               f"shrunk by {scale:.3f} (no objects measured)")
        return "resize", size, scale, Decision(
            "data.fit", "resize", "fit", f"{why}: whole images resized to {size[0]}x{size[1]} "
                                         f"(aspect kept)", figures)
    want = max(min(h, w, max_side), min(max_side, PATCH_DIAMETERS * (diameter or 0)))
    side = max(MIN_PATCH, min(int(want), max_side))
    pools = pools_for(side)
    size = [round_to_multiple(min(side, h) if h >= MIN_PATCH else side, 2 ** pools),
            round_to_multiple(side, 2 ** pools)]
    return "patches", size, 1.0, Decision(
        "data.fit", "patches", "fit",
        f"shrinking the {h:g}x{w:g} median image into {max_side} px would leave the smallest "
        f"objects a minor axis of {minor * scale:.1f} px < {MIN_MINOR_AXIS:g}: native "
        f"resolution, random {size[0]}x{size[1]} patches", figures)


def widths_rule(base: int, pools: int) -> list[int]:
    """Stage widths ``base * 2^i`` for the ``pools + 1`` stages, capped at ``WIDTH_CAP``."""
    return [min(WIDTH_CAP, base * 2 ** i) for i in range(pools + 1)]


def batch_rule(fp, size) -> Decision:
    """At least 2, at most 8 (``BATCH_RANGE``), and one batch at most ``BATCH_PIXEL_SHARE``
    of the dataset's pixels (nnU-Net's 5 % rule)."""
    pixels = sum(i["height"] * i["width"] for i in fp["images"])
    patch = size[0] * size[1]
    cap = int(BATCH_PIXEL_SHARE * pixels // patch)
    value = max(BATCH_RANGE[0], min(BATCH_RANGE[1], cap))
    return Decision("training.batch_size", value, "batch",
                    f"5 % of the dataset's {pixels} pixels is {cap} patches of {patch}; "
                    f"kept in {BATCH_RANGE[0]}-{BATCH_RANGE[1]}",
                    {"dataset_pixels": pixels, "patch_pixels": patch})


def augmentation_rule(size) -> Decision:
    """nnU-Net's 2D augmentation with its probabilities, as far as kerasmed's operations go:
    rotation (+-180 deg, +-15 deg when the patch aspect exceeds 1.5: rotating a long patch by
    more would turn its content out of it), scaling, both flips, Gaussian noise, blur,
    brightness, contrast and gamma. Simulated low resolution has no kerasmed operation yet."""
    aspect = max(size) / min(size)
    angle = 15 if aspect > 1.5 else 180
    ops = [
        {"op": "rotate_without_crop", "probability": 0.2, "max_left_rotation": angle,
         "max_right_rotation": angle},
        {"op": "zoom", "probability": 0.2, "min_factor": 1.0, "max_factor": 1.4},
        {"op": "gaussian_noise", "probability": 0.1, "max_sigma": 0.05},
        {"op": "gaussian_blur", "probability": 0.2, "min_sigma": 0.5, "max_sigma": 1.0},
        {"op": "random_brightness", "probability": 0.15, "min_factor": 0.75, "max_factor": 1.25},
        {"op": "random_contrast", "probability": 0.15, "min_factor": 0.75, "max_factor": 1.25},
        {"op": "gamma", "probability": 0.3, "min_gamma": 0.7, "max_gamma": 1.5},
        {"op": "flip_left_right", "probability": 0.5},
        {"op": "flip_top_bottom", "probability": 0.5},
    ]
    return Decision("data.augmentation", ops, "augmentation",
                    f"nnU-Net 2D: rotation +-{angle} deg (patch aspect {aspect:.2f}), "
                    f"scaling, noise, blur, brightness, contrast, gamma, flips",
                    {"aspect": aspect})


def uses_deep_supervision(widths) -> bool:
    """Whether a planned U-Net of these stage widths trains with side outputs: when the rule
    is on (``DEEP_SUPERVISION``) and the network has a decoder level between the top and the
    lowest (nnU-Net supervises those; at least 4 stages)."""
    return DEEP_SUPERVISION and bool(default_side_levels(len(widths)))


def deep_supervision_rule(widths) -> list[Decision]:
    """Side outputs on the decoder levels between the top and the lowest, their losses
    weighted 1/2**level and normalised (nnU-Net), when ``uses_deep_supervision``."""
    levels = default_side_levels(len(widths))
    on = uses_deep_supervision(widths)
    figures = {"stages": len(widths), "side_levels": list(levels)}
    if not on:
        why = (f"{len(widths)} stages leave no level between the top and the lowest"
               if DEEP_SUPERVISION else DEEP_SUPERVISION_REASON)
        return [Decision("model.params.deep_supervision", False, "deep supervision", why,
                         figures)]
    names = [f"side{level}" for level in levels] + ["final"]
    weights = {name: round(w, 6) for name, w in deep_supervision_weights(names).items()}
    return [Decision("model.params.deep_supervision", True, "deep supervision",
                     f"side outputs at levels {', '.join(map(str, levels))} (nnU-Net: every "
                     f"decoder level but the top and the lowest); {DEEP_SUPERVISION_REASON}",
                     figures),
            Decision("training.loss_weights", weights, "deep supervision",
                     "weight 1/2**level, normalised (nnU-Net)", figures),
            Decision("training.monitor", "val_final_dice", "deep supervision",
                     "with several outputs the metrics are the final output's", figures)]


def loss_rule(mask_mode: str) -> Decision:
    """Cross-entropy + Dice, 1:1 (nnU-Net)."""
    value = "bce_dice" if mask_mode == "binary" else {"name": "bce_dice", "mode": "sparse"}
    return Decision("training.loss", value, "loss", "cross-entropy + Dice, 1:1 (nnU-Net)",
                    {"mask_mode": mask_mode})


def optimizer_rule() -> tuple[Decision, Decision]:
    """Adam (lr 1e-3) with cosine decay to 1 % over the run. nnU-Net trains with SGD
    (Nesterov, momentum 0.99, lr 1e-2, poly decay 0.9) for 250,000 steps; kerasmed's budgets
    give a few hundred to a few thousand. Measured on the same three plans (3-minute budget,
    benchmarks/RESULTS.md, 2026-12-04), Adam with cosine decay reached test Dice 0.959, 0.943
    and 0.935 against SGD's 0.956, 0.940 and 0.933."""
    optimizer = {"name": "adam", "learning_rate": 1e-3}
    schedule = {"name": "CosineDecay", "alpha": 0.01}
    reason = ("Adam 1e-3 with cosine decay: above nnU-Net's SGD + poly decay on the same plans "
              "(test Dice +0.002 to +0.003 on three sets)")
    return (Decision("training.optimizer", optimizer, "optimizer", reason),
            Decision("training.lr_schedule", schedule, "optimizer", reason))


def cache_rule(fp, channels: int, fit: str, size) -> Decision:
    """Keep decoded samples in memory when the loader's own check would accept them
    (``data.memory``: ``CACHE_SHARE`` of this machine's memory, the estimate the loader makes
    before it fills the cache): whole images in their stored dtype for the windowed fits,
    ``size`` for a resize; one byte a mask pixel."""
    itemsize = max(np.dtype(i["dtype"]).itemsize for i in fp["images"])
    if fit == "resize":
        pixels = [math.prod(size)] * len(fp["images"])
    else:
        pixels = [i["height"] * i["width"] for i in fp["images"]]
    nbytes = memory.cache_bytes(pixels, channels, itemsize,
                                0 if fp["kind"] == "classification" else 1)
    machine = memory.physical_memory_bytes() or 0
    value = nbytes < memory.CACHE_SHARE * machine
    return Decision("data.cache", value, "cache",
                    f"decoded samples take {nbytes / 2**20:.0f} MiB "
                    f"{'<' if value else '>='} {memory.CACHE_SHARE:.0%} of this machine's "
                    f"{machine / 2**30:.0f} GiB", {"bytes": nbytes, "memory_bytes": machine})
