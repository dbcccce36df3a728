"""Fitting a plan to a time budget: candidates, their schedules, and the choice among them.

A ``Candidate`` is one network at one input size and batch; ``schedule`` turns its measured
cost (``kerasmed.planning.probe.StepCost``) into epochs and steps for a number of folds, and
``select`` picks, among candidates whose costs were scaled from one measurement, the one to
train (context first, then width, then batch), the folds the budget affords, and measures it
again. The rules' constants are in ``kerasmed.planning.rules``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kerasmed.models.planned_unet import planned_unet_activation_units
from kerasmed.planning import rules
from kerasmed.planning.probe import StepCost

__all__ = ["Candidate", "Schedule", "schedule", "select", "needed_budget", "RUN_OVERHEAD_S",
           "EPOCH_OVERHEAD_S"]

#: Seconds a run spends besides its steps: building, scanning the images, tracing the
#: validation step (the train step's tracing is measured by the probe).
RUN_OVERHEAD_S = 8.0
#: Seconds an epoch spends besides its train steps and its validation images' predictions:
#: checkpoints, history and plots. Measured on the 2-core machine: 1.5-1.8 s in three 3-minute
#: plans (2026-12-04), 2.5 s in the 10-minute MNI plan, whose checkpoints hold 94 MB
#: (2026-12-05; benchmarks/RESULTS.md). Before epochs grouped several passes
#: (``data.passes_per_epoch``) a figure above 1 s shrank the plans (the MNI slices to 64x48),
#: because every pass paid it; now an epoch is made long enough that this overhead and the
#: validation take at most ``rules.VALIDATION_SHARE`` of it. (Timing the probe's steps through
#: ``model.fit`` was tried too: a fit call's start-up, spread over a few steps, made every
#: network look slower.)
EPOCH_OVERHEAD_S = 2.0


@dataclass
class Candidate:
    """One network and input the planner weighs: its fit, input size, batch and network.

    ``widths``: the stage widths of a ``planned_unet``; a classifier instead gives its
    ``model``, ``extra`` builder parameters, ``base`` (its first stage's features) and
    ``image_units`` (its cost per image, in the planner's units)."""

    fit: str
    size: list
    scale: float
    widths: list | None
    batch: int
    channels: int
    fit_decision: rules.Decision
    model: str = "planned_unet"
    extra: dict = field(default_factory=dict)
    base_width: int | None = None
    image_units: float | None = None

    @property
    def pools(self) -> int:
        return len(self.widths) - 1

    @property
    def base(self) -> int:
        """Features of the first stage: what the width rules compare."""
        return self.widths[0] if self.widths else self.base_width

    def units(self) -> float:
        """Activation units of one train step (the batch's)."""
        if self.image_units is not None:
            return float(self.image_units * self.batch)
        return float(planned_unet_activation_units(self.size, self.widths) * self.batch)

    def params(self) -> dict:
        """The builder's keyword arguments (the input shape aside)."""
        if self.widths is None:
            return dict(self.extra)
        return {"widths": list(self.widths), "norm": "instance",
                "deep_supervision": rules.uses_deep_supervision(self.widths)}


def _tiles(fp, candidate, images):
    """Model-sized windows that validating (or predicting) ``images`` images takes."""
    h, w = fp["median_shape"]
    if candidate.fit == "resize":
        return images
    per = math.ceil(h / candidate.size[0]) * math.ceil(w / candidate.size[1])
    return images * per


@dataclass
class Schedule:
    folds: int
    steps: int  # train steps of one model
    epochs: int
    steps_per_epoch: int
    seconds: float  # the whole plan
    passes: float  # how often one model sees its training images' pixels
    passes_per_epoch: int = 1  # whole-image fits: passes over the images one epoch makes


def schedule(fp, candidate, cost: StepCost, budget_s: float, folds: int, n_train_fraction):
    """Epochs and steps of each of ``folds`` models (1: one run on a 20 % split) with this
    cost, how often each model sees its training pixels (``passes``: epochs for whole
    images; the patches' pixels over the training images' for patches), and the whole plan's
    seconds; ``None`` when not even ``rules.MIN_STEPS`` fit."""
    n = fp["n_images"]
    n_val = n / folds if folds > 1 else max(1, round(0.2 * n))
    per_model = budget_s / folds - RUN_OVERHEAD_S - cost.trace_s
    if folds > 1:  # choosing the post-processing: each fold predicts its validation images
        per_model -= cost.trace_s + _tiles(fp, candidate, n_val) * cost.predict_s \
            / candidate.batch
    val_s = _tiles(fp, candidate, n_val) * cost.predict_s / candidate.batch + EPOCH_OVERHEAD_S
    repeats = 1
    if candidate.fit == "resize":
        n_train = int(n * n_train_fraction(folds))
        per_pass = max(1, n_train // candidate.batch)
        # A small dataset's pass is a few steps: passes are grouped into one epoch until its
        # validation, checkpoints and plots take at most VALIDATION_SHARE of it (as the
        # patches' epochs are sized), keeping at least EPOCH_RANGE[0] epochs to choose from.
        repeats = max(1, math.ceil(val_s / (rules.VALIDATION_SHARE * per_pass * cost.step_s)))
        while repeats > 1 and per_model // (per_pass * repeats * cost.step_s + val_s) \
                < rules.EPOCH_RANGE[0]:
            repeats -= 1
        spe = per_pass * repeats
        epochs = int(per_model // (spe * cost.step_s + val_s))
        epochs = min(epochs, 1000)
    else:
        spe = max(10, math.ceil(val_s / (rules.VALIDATION_SHARE * cost.step_s)))
        epochs = int(per_model // (spe * cost.step_s + val_s))
        low, high = rules.EPOCH_RANGE
        if epochs > high:
            spe = int((per_model - high * val_s) // (high * cost.step_s))
            epochs = high
        elif epochs < low:
            epochs = low
            spe = int((per_model - low * val_s) // (low * cost.step_s))
    steps = epochs * spe
    if epochs < 1 or spe < 1 or steps < rules.MIN_STEPS:
        return None
    if candidate.fit == "resize":
        passes = float(epochs * repeats)
    else:
        h, w = fp["median_shape"]
        n_train = max(1.0, n * n_train_fraction(folds))
        passes = steps * candidate.batch * candidate.size[0] * candidate.size[1] \
            / (n_train * h * w)
    model_s = RUN_OVERHEAD_S + cost.trace_s + epochs * (spe * cost.step_s + val_s)
    select_s = (cost.trace_s + _tiles(fp, candidate, n_val) * cost.predict_s / candidate.batch) \
        if folds > 1 else 0.0
    return Schedule(folds, steps, epochs, spe, folds * (model_s + select_s), passes, repeats)


def _train_fraction(folds):
    return (folds - 1) / folds if folds > 1 else 0.8


def needed_budget(fp, candidate, cost, folds=1) -> float:
    """Minutes of ``--budget`` that let ``candidate`` train ``rules.MIN_STEPS`` steps in each
    of ``folds`` models, by the same schedule the plan uses (rounded up to a half minute)."""
    def enough(seconds):
        return schedule(fp, candidate, cost, seconds, folds, _train_fraction) is not None

    low, high = 0.0, 60.0
    while not enough(high):
        low, high = high, high * 2
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (low, middle) if enough(middle) else (middle, high)
    return math.ceil(high / rules.BUDGET_SHARE / 30) / 2


def _choose(fp, estimates, budget_s, folds):
    """The candidate to train: context first, then width, then batch. The largest patch (up
    to the median image) for which a base width of at least ``rules.MIN_BASE_WIDTH`` trains
    ``rules.TARGET_STEPS`` steps and ``rules.TARGET_PASSES`` passes over the training
    pixels, with the widest such base and the largest batch that does; failing that, any
    base; failing that, ``rules.TARGET_STEPS`` steps whatever the passes (patches of very
    large images); failing that, ``rules.MIN_STEPS`` steps. Returns ``(candidate, passes)``:
    ``passes`` says whether the passes were asked for; ``(None, False)`` when nothing fits."""
    tiers = ((rules.TARGET_STEPS, rules.TARGET_PASSES), (rules.TARGET_STEPS, 0),
             (rules.MIN_STEPS, 0))
    for steps, passes in tiers:
        for floor in (rules.MIN_BASE_WIDTH, min(rules.BASE_WIDTHS)):
            for candidate, cost in estimates:  # patch sides largest first, then widths
                if candidate.base < floor:
                    continue
                plan = schedule(fp, candidate, cost, budget_s, folds or 1, _train_fraction)
                if plan is not None and plan.steps >= steps and plan.passes >= passes:
                    return candidate, passes > 0
    return None, False


def _with_folds(fp, estimates, budget_s, single, passes=True):
    """Cross-validation where the budget affords it without losing context (measured: five
    folds forced onto a smaller input cost the MNI slices 0.079 test Dice; RESULTS.md,
    2026-12-05): the most folds
    (``rules.FOLD_CHOICES``, at most one per image) for which a candidate with the single
    run's patch and a base of at least ``rules.MIN_BASE_WIDTH`` trains ``rules.FOLD_STEPS``
    steps and ``rules.FOLD_PASSES`` passes in each fold (the widest base, then the largest
    batch); without ``passes`` (the single run could not be asked for them either), the
    steps alone. Returns ``(candidate, folds)``, or ``(single, 1)`` when no fold count fits."""
    for k in rules.FOLD_CHOICES:
        if k > fp["n_images"]:
            continue
        for candidate, cost in estimates:
            if candidate.size != single.size or candidate.fit != single.fit \
                    or candidate.base < rules.MIN_BASE_WIDTH:
                continue
            plan = schedule(fp, candidate, cost, budget_s, k, _train_fraction)
            if plan is not None and plan.steps >= rules.FOLD_STEPS \
                    and (not passes or plan.passes >= rules.FOLD_PASSES):
                return candidate, k
    return single, 1


#: Candidates measured at most, after the reference, before a plan is refused.
MEASURE_TRIES = 3


def select(fp, candidates, measure, budget_s, budget_minutes, folds):
    """Measure one of ``candidates`` (the middle one) with ``measure``, scale the others'
    costs from it, choose the candidate and the folds (``folds`` given: those), measure the
    chosen one and schedule it. A chosen candidate whose measurement does not fit is set
    aside and the others' costs are scaled from that measurement instead, at most
    ``MEASURE_TRIES`` times. Returns ``(candidate, cost, schedule, costs)``, ``costs`` being
    the measurements as recorded. Raises ``rules.PlanError`` with the budget needed when
    nothing fits ``budget_s`` (``budget_minutes`` is what the user gave)."""
    reference = measure(candidates[len(candidates) // 2])
    costs = {"reference": reference.record()}
    remaining = list(candidates)
    for _ in range(MEASURE_TRIES):
        estimates = [(c, reference.scaled(c.units())) for c in remaining]
        chosen, passes = _choose(fp, estimates, budget_s, folds)
        if chosen is None:
            break
        if folds is None:
            chosen, folds_planned = _with_folds(fp, estimates, budget_s, chosen, passes)
        else:
            folds_planned = folds
        measured = measure(chosen)
        costs["chosen"] = measured.record()
        if folds_planned <= fp["n_images"]:
            plan = schedule(fp, chosen, measured, budget_s, folds_planned, _train_fraction)
            if plan is not None:
                return chosen, measured, plan, costs
        # Slower than its estimate: scale the rest from this, closer, measurement.
        costs.setdefault("set_aside", []).append(measured.record())
        remaining = [c for c in remaining if c is not chosen]
        reference = measured
    # Last: the cheapest candidate, measured, so that a refusal names a budget that was
    # measured, not estimated.
    smallest = min(remaining, key=lambda c: reference.scaled(c.units()).step_s)
    measured = measure(smallest)
    costs["smallest"] = measured.record()
    plan = schedule(fp, smallest, measured, budget_s, folds or 1, _train_fraction)
    if plan is not None:
        costs["chosen"] = measured.record()
        return smallest, measured, plan, costs
    folds_text = f" in each of {folds} folds" if folds and folds > 1 else ""
    raise rules.PlanError(
        f"a budget of {budget_minutes:g} min cannot train even the smallest network "
        f"({smallest.model} {smallest.params()}, {smallest.size[0]}x{smallest.size[1]}, batch "
        f"{smallest.batch}) for {rules.MIN_STEPS} steps{folds_text} on this machine "
        f"({measured.step_s:.3f} s a measured step); it needs about "
        f"{needed_budget(fp, smallest, measured, folds or 1):g} min (--budget)")
