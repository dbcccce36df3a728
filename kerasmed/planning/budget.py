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
#: Seconds an epoch spends on checkpoints, history and plots besides validation.
EPOCH_OVERHEAD_S = 1.0


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

    def params(self, deep_supervision: bool = False) -> dict:
        if self.widths is None:
            return dict(self.extra)
        return {"widths": list(self.widths), "norm": "instance",
                "deep_supervision": deep_supervision}


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


def schedule(fp, candidate, cost: StepCost, budget_s: float, folds: int, n_train_fraction):
    """Epochs and steps of each of ``folds`` models (1: one run on a 20 % split) with this
    cost, and the whole plan's seconds; ``None`` when not even ``rules.MIN_STEPS`` fit."""
    n = fp["n_images"]
    n_val = n / folds if folds > 1 else max(1, round(0.2 * n))
    per_model = budget_s / folds - RUN_OVERHEAD_S - cost.trace_s
    if folds > 1:  # choosing the post-processing: each fold predicts its validation images
        per_model -= cost.trace_s + _tiles(fp, candidate, n_val) * cost.predict_s \
            / candidate.batch
    val_s = _tiles(fp, candidate, n_val) * cost.predict_s / candidate.batch + EPOCH_OVERHEAD_S
    if candidate.fit == "resize":
        n_train = int(n * n_train_fraction(folds))
        spe = max(1, n_train // candidate.batch)
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
    model_s = RUN_OVERHEAD_S + cost.trace_s + epochs * (spe * cost.step_s + val_s)
    select_s = (cost.trace_s + _tiles(fp, candidate, n_val) * cost.predict_s / candidate.batch) \
        if folds > 1 else 0.0
    return Schedule(folds, steps, epochs, spe, folds * (model_s + select_s))


def _train_fraction(folds):
    return (folds - 1) / folds if folds > 1 else 0.8


def needed_budget(fp, candidate, cost, folds=1) -> float:
    """Minutes of ``--budget`` that let ``candidate`` train ``rules.MIN_STEPS`` steps in each
    of ``folds`` models, by the same schedule the plan uses (rounded up to a half minute)."""
    def enough(seconds):
        plan = schedule(fp, candidate, cost, seconds, folds, _train_fraction)
        return plan is not None and plan.steps >= rules.MIN_STEPS

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
    ``rules.TARGET_STEPS`` steps a model, with the widest such base and the largest batch
    that does; failing that, any base; failing that, ``rules.MIN_STEPS`` steps. ``None``
    when nothing fits."""
    for target in (rules.TARGET_STEPS, rules.MIN_STEPS):
        for floor in (rules.MIN_BASE_WIDTH, min(rules.BASE_WIDTHS)):
            for candidate, cost in estimates:  # patch sides largest first, then widths
                if candidate.base < floor:
                    continue
                plan = schedule(fp, candidate, cost, budget_s, folds or 1, _train_fraction)
                if plan is not None and plan.steps >= target:
                    return candidate
    return None


def _with_folds(fp, estimates, budget_s, single):
    """Cross-validation where the budget affords it without losing context: the most folds
    (``rules.FOLD_CHOICES``, at most one per image) for which a candidate with the single
    run's patch and a base of at least ``rules.MIN_BASE_WIDTH`` trains ``rules.FOLD_STEPS``
    steps in each fold (the widest base, then the largest batch). Returns ``(candidate,
    folds)``, or ``(single, 1)`` when no fold count fits."""
    for k in rules.FOLD_CHOICES:
        if k > fp["n_images"]:
            continue
        for candidate, cost in estimates:
            if candidate.size != single.size or candidate.fit != single.fit \
                    or candidate.base < rules.MIN_BASE_WIDTH:
                continue
            plan = schedule(fp, candidate, cost, budget_s, k, _train_fraction)
            if plan is not None and plan.steps >= rules.FOLD_STEPS:
                return candidate, k
    return single, 1


def select(fp, candidates, measure, budget_s, budget_minutes, folds):
    """Measure one of ``candidates`` (the middle one) with ``measure``, scale the others'
    costs from it, choose the candidate and the folds (``folds`` given: those), measure the
    chosen one and schedule it. Returns ``(candidate, cost, schedule, costs)``, ``costs``
    being both measurements as recorded. Raises ``rules.PlanError`` with the budget needed
    when nothing fits ``budget_s`` (``budget_minutes`` is what the user gave)."""
    reference = measure(candidates[len(candidates) // 2])
    costs = {"reference": reference.record()}
    estimates = [(c, reference.scaled(c.units())) for c in candidates]
    chosen = _choose(fp, estimates, budget_s, folds)
    if chosen is not None and folds is None:
        chosen, folds_planned = _with_folds(fp, estimates, budget_s, chosen)
    else:
        folds_planned = folds
    fold_choices = (folds_planned,) if folds_planned is not None else (1,)
    n_groups = fp["n_images"]
    if chosen is None:
        smallest, cost = min(estimates, key=lambda item: item[1].step_s)
        raise rules.PlanError(
            f"a budget of {budget_minutes:g} min cannot train even the smallest network "
            f"({smallest.model} {smallest.params()}, {smallest.size[0]}x{smallest.size[1]}, batch "
            f"{smallest.batch}) for {rules.MIN_STEPS} steps on this machine "
            f"({cost.step_s:.3f} s a step); it needs about "
            f"{needed_budget(fp, smallest, cost):g} min (--budget)")
    measured = measure(chosen)
    costs["chosen"] = measured.record()
    plan = None
    for k in fold_choices:
        if k > 1 and k > n_groups:
            continue
        plan = schedule(fp, chosen, measured, budget_s, k, _train_fraction)
        needed = rules.MIN_STEPS
        if plan is not None and plan.steps >= needed:
            break
        plan = None
    if plan is None:
        raise rules.PlanError(
            f"measured at {measured.step_s:.3f} s a step, a budget of {budget_minutes:g} min "
            f"cannot train {chosen.model} {chosen.params()} at {chosen.size[0]}x{chosen.size[1]} for "
            f"{rules.MIN_STEPS} steps{' in each of ' + str(folds) + ' folds' if folds else ''}; "
            f"it needs about {needed_budget(fp, chosen, measured, folds or 1):g} min")
    return chosen, measured, plan, costs
