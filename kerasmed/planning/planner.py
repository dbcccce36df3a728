"""From a folder of images and masks to a planned experiment: fingerprint, rules, budget.

``plan_experiment`` measures the dataset once (``kerasmed.data.fingerprint``), applies the rules
of ``kerasmed.planning.rules``, measures on this machine what the candidate networks cost
(``kerasmed.planning.probe``) and picks the largest network and patch whose training fits the
budget with enough steps, then the number of folds the budget affords, the epochs and the
steps per epoch. The result is an ordinary experiment file that ``kerasmed-train`` runs, every
choice explicit, and ``plan.json``: every decision with its rule and the figures it used.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path

from kerasmed.data.fingerprint import compute_fingerprint, save_fingerprint
from kerasmed.data.readers import DatasetLayoutError, read_dataset
from kerasmed.experiment.schema import ConfigError, section_defaults, validate_config
from kerasmed.models.planned_unet import planned_unet_activation_units
from kerasmed.planning import rules
from kerasmed.planning.probe import StepCost, measure_loader, measure_step
from kerasmed.runfiles import write_json_atomic

__all__ = ["Plan", "plan_experiment", "plan_from_fingerprint", "Candidate", "PLAN_FILES",
           "RUN_OVERHEAD_S", "EPOCH_OVERHEAD_S"]

#: What ``plan_experiment`` writes into its output folder.
PLAN_FILES = ("fingerprint.json", "plan.json", "experiment.json")
MODEL = "planned_unet"
#: Seconds a run spends besides its steps: building, scanning the images, tracing the
#: validation step (the train step's tracing is measured by the probe).
RUN_OVERHEAD_S = 8.0
#: Seconds an epoch spends on checkpoints, history and plots besides validation.
EPOCH_OVERHEAD_S = 1.0
#: Patch sides tried, largest first.
PATCH_SIDES = (512, 384, 256, 192, 128, 96, 64, 48, 32)


@dataclass
class Candidate:
    """One network and input the planner weighs: its fit, input size, widths and batch."""

    fit: str
    size: list
    scale: float
    widths: list
    batch: int
    channels: int
    fit_decision: rules.Decision

    @property
    def pools(self) -> int:
        return len(self.widths) - 1

    def units(self) -> float:
        """Activation units of one train step (the batch's)."""
        return float(planned_unet_activation_units(self.size, self.widths) * self.batch)

    def params(self, deep_supervision: bool = False) -> dict:
        return {"widths": list(self.widths), "norm": "instance",
                "deep_supervision": deep_supervision}


@dataclass
class Plan:
    """A planned experiment: ``experiment`` (an experiment dict), ``decisions`` (each
    ``rules.Decision``), the fingerprint, the costs measured and the time expected."""

    experiment: dict
    decisions: list
    fingerprint: dict
    budget_minutes: float
    expected_minutes: float
    costs: dict = field(default_factory=dict)

    def record(self) -> dict:
        """``plan.json``'s content."""
        return {"budget_minutes": self.budget_minutes, "expected_minutes": self.expected_minutes,
                "decisions": [d.record() for d in self.decisions], "costs": self.costs,
                "fingerprint": self.fingerprint}

    def table(self) -> list[str]:
        """The decisions as text lines: key, value, reason."""
        lines = []
        for d in self.decisions:
            value = d.value if not isinstance(d.value, (list, dict)) or len(str(d.value)) < 40 \
                else f"{type(d.value).__name__} ({len(d.value)} items)"
            lines.append(f"{d.key:<28} {str(value):<28} {d.reason}")
        return lines

    def write(self, output) -> Path:
        """Write ``fingerprint.json``, ``plan.json`` and ``experiment.json`` into the new or
        empty folder ``output`` (an earlier plan is never overwritten); returns the folder."""
        output = Path(output)
        if output.exists() and any((output / name).exists() for name in PLAN_FILES):
            raise FileExistsError(f"{output}: holds an earlier plan; choose another --output "
                                  f"(plans are never overwritten)")
        output.mkdir(parents=True, exist_ok=True)
        save_fingerprint(self.fingerprint, output / "fingerprint.json")
        write_json_atomic(output / "plan.json", self.record())
        write_json_atomic(output / "experiment.json", self.experiment)
        return output


def _candidates(fp, channels):
    """Every (patch side, base width, batch) the planner weighs, in the order of preference:
    larger patches first, then wider bases, then larger batches (at most what the batch rule
    allows, down to its minimum)."""
    seen, out = set(), []
    for side in PATCH_SIDES:
        fit, size, scale, decision = rules.patch_rule(fp, side)
        if min(size) < rules.MIN_PATCH:
            continue
        pools = min(rules.pools_for(min(size)), rules.MAX_POOLS)
        largest = rules.batch_rule(fp, size).value
        for base in rules.BASE_WIDTHS:
            for batch in sorted({largest, *(b for b in rules.BATCH_STEPS if b < largest)},
                                reverse=True):
                key = (fit, tuple(size), base, batch)
                if key in seen:
                    continue
                seen.add(key)
                out.append(Candidate(fit, size, scale, rules.widths_rule(base, pools), batch,
                                     channels, decision))
    return out


def _tiles(fp, candidate, images):
    """Model-sized windows that validating (or predicting) ``images`` images takes."""
    h, w = fp["median_shape"]
    if candidate.fit == "resize":
        return images
    per = math.ceil(h / candidate.size[0]) * math.ceil(w / candidate.size[1])
    return images * per


@dataclass
class _Schedule:
    folds: int
    steps: int  # train steps of one model
    epochs: int
    steps_per_epoch: int
    seconds: float  # the whole plan


def _schedule(fp, candidate, cost: StepCost, budget_s: float, folds: int, n_train_fraction):
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
    return _Schedule(folds, steps, epochs, spe, folds * (model_s + select_s))


def _train_fraction(folds):
    return (folds - 1) / folds if folds > 1 else 0.8


def _needed_budget(fp, candidate, cost, folds=1) -> float:
    """Minutes of ``--budget`` that let ``candidate`` train ``rules.MIN_STEPS`` steps in each
    of ``folds`` models, by the same schedule the plan uses (rounded up to a half minute)."""
    def enough(seconds):
        schedule = _schedule(fp, candidate, cost, seconds, folds, _train_fraction)
        return schedule is not None and schedule.steps >= rules.MIN_STEPS

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
                if candidate.widths[0] < floor:
                    continue
                schedule = _schedule(fp, candidate, cost, budget_s, folds or 1, _train_fraction)
                if schedule is not None and schedule.steps >= target:
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
                    or candidate.widths[0] < rules.MIN_BASE_WIDTH:
                continue
            schedule = _schedule(fp, candidate, cost, budget_s, k, _train_fraction)
            if schedule is not None and schedule.steps >= rules.FOLD_STEPS:
                return candidate, k
    return single, 1


def plan_from_fingerprint(fp, root, *, dataset="folder", options=None, budget_minutes=10.0,
                          folds=None, seed=0, measure=None, name=None, samples=None) -> Plan:
    """Plan an experiment for the dataset ``fp`` describes (its ``root`` and reader).

    ``measure(candidate) -> StepCost`` times a candidate on this machine (default: a probe of
    a few train steps, ``measure_step``, plus the loader's time a batch on ``samples`` when
    they are given); the first call calibrates the cost of the others,
    the chosen candidate is measured again. ``folds`` overrides the number of folds (1: a
    single run). Raises ``rules.PlanError`` when the dataset cannot be planned or the budget
    cannot train even the smallest candidate for ``rules.MIN_STEPS`` steps (the message gives
    the budget needed).
    """
    if fp["kind"] != "segmentation":
        raise rules.PlanError("kerasmed-plan plans segmentation datasets (images and masks); "
                              "this one has no masks")
    if budget_minutes is None or not budget_minutes > 0 or math.isinf(budget_minutes):
        raise rules.PlanError(f"--budget must be a positive number of minutes, got "
                              f"{budget_minutes}")
    if folds is not None and (folds < 1 or folds > fp["n_images"]):
        raise rules.PlanError(f"--folds must be between 1 and the {fp['n_images']} images, got "
                              f"{folds}")
    budget_s = 60.0 * budget_minutes * rules.BUDGET_SHARE
    mask_mode = "classes" if fp["mask_mode"] == "classes" else "binary"
    decisions = [rules.channels_rule(fp), rules.normalization_rule(fp)]
    channels = decisions[0].value
    loss = rules.loss_rule(mask_mode)
    optimizer, schedule = rules.optimizer_rule()
    training = section_defaults("training")
    training.update(loss=loss.value, optimizer=optimizer.value, lr_schedule=schedule.value,
                    verbose=2)
    measure = measure or _probe(training, channels, samples, decisions[1].value)

    candidates = _candidates(fp, channels)
    if not candidates:
        raise rules.PlanError(f"images of median size {fp['median_shape']} are smaller than "
                              f"the smallest patch ({rules.MIN_PATCH} px)")
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
            f"(widths {smallest.widths}, {smallest.size[0]}x{smallest.size[1]}, batch "
            f"{smallest.batch}) for {rules.MIN_STEPS} steps on this machine "
            f"({cost.step_s:.3f} s a step); it needs about "
            f"{_needed_budget(fp, smallest, cost):g} min (--budget)")
    measured = measure(chosen)
    costs["chosen"] = measured.record()
    plan = None
    for k in fold_choices:
        if k > 1 and k > n_groups:
            continue
        plan = _schedule(fp, chosen, measured, budget_s, k, _train_fraction)
        needed = rules.MIN_STEPS
        if plan is not None and plan.steps >= needed:
            break
        plan = None
    if plan is None:
        raise rules.PlanError(
            f"measured at {measured.step_s:.3f} s a step, a budget of {budget_minutes:g} min "
            f"cannot train {chosen.widths} at {chosen.size[0]}x{chosen.size[1]} for "
            f"{rules.MIN_STEPS} steps{' in each of ' + str(folds) + ' folds' if folds else ''}; "
            f"it needs about {_needed_budget(fp, chosen, measured, folds or 1):g} min")
    decisions += _budget_decisions(fp, chosen, measured, plan, budget_minutes, folds)
    decisions += [loss, optimizer, schedule, rules.augmentation_rule(chosen.size),
                  rules.cache_rule(fp, channels)]
    experiment = _experiment(fp, root, dataset, options, decisions, mask_mode, seed,
                             name or Path(root).name, budget_minutes)
    return Plan(experiment, decisions, fp, budget_minutes, plan.seconds / 60.0, costs)


def _budget_decisions(fp, c, cost, plan, budget_minutes, folds_given):
    per = f"{cost.step_s:.3f} s a measured step"
    out = [
        c.fit_decision,
        rules.Decision("data.image_size", list(c.size), "patch",
                       f"{c.size[0]}x{c.size[1]}: the largest input whose network trains "
                       f"{plan.steps} steps a model in the budget ({per})",
                       {"median_shape": fp["median_shape"]}),
        rules.Decision("model.params.widths", list(c.widths), "topology",
                       f"{c.pools} poolings (feature maps >= {rules.MIN_FEATURE_MAP} px before "
                       f"pooling), base {c.widths[0]} doubling, capped at {rules.WIDTH_CAP}: "
                       f"the widest base the budget affords",
                       {"patch": list(c.size)}),
        _batch_decision(fp, c),
        rules.Decision("training.folds", plan.folds if plan.folds > 1 else None, "folds",
                       ("given by --folds" if folds_given else
                        f"the most folds (of {rules.FOLD_CHOICES}) whose models each get >= "
                        f"{rules.FOLD_STEPS} steps") + f": {plan.steps} steps each",
                       {"n_images": fp["n_images"]}),
        rules.Decision("training.epochs", plan.epochs, "schedule",
                       f"{plan.epochs} epochs of {plan.steps_per_epoch} steps; validation and "
                       f"checkpoints <= {rules.VALIDATION_SHARE:.0%} of an epoch",
                       {"step_s": cost.step_s, "predict_s": cost.predict_s}),
        rules.Decision("training.budget_minutes", budget_minutes, "budget",
                       f"expected {plan.seconds / 60:.1f} min of {budget_minutes:g}",
                       {"expected_s": plan.seconds}),
        rules.Decision("postprocess.select", plan.folds > 1, "postprocessing",
                       "chosen on the folds' validation predictions" if plan.folds > 1 else
                       "one run: no folds to choose post-processing on"),
    ]
    if c.fit == "patches":
        out.insert(1, rules.Decision(
            "data.patches_per_epoch", plan.steps_per_epoch * c.batch, "schedule",
            f"{plan.steps_per_epoch} steps of {c.batch}", {}))
        out.insert(2, rules.Decision(
            "data.foreground_share", rules.FOREGROUND_SHARE, "sampling",
            f"nnU-Net oversamples foreground in a third of each batch; median foreground "
            f"fraction {fp['foreground_fraction']['median']:.4f}",
            {"foreground_fraction": fp["foreground_fraction"]}))
    return out


def _batch_decision(fp, c):
    rule = rules.batch_rule(fp, c.size)
    if rule.value == c.batch:
        return rule
    return rules.Decision("training.batch_size", c.batch, "batch",
                          f"{rule.reason}; {c.batch}, so that this patch trains enough steps",
                          rule.figures)


def _experiment(fp, root, dataset, options, decisions, mask_mode, seed, name, budget):
    experiment = {"name": f"{name}_planned", "seed": seed,
                  "description": f"planned by kerasmed-plan for {root} within {budget:g} min",
                  "model": {"name": MODEL, "params": {"norm": "instance",
                                                      "deep_supervision": False}},
                  "data": {"dataset": dataset, "root": str(Path(root).resolve()),
                           "options": dict(options or {}), "mask_mode": mask_mode},
                  "training": {"metrics": ["dice", "iou"], "monitor": "val_dice",
                               "monitor_mode": "max", "verbose": 2},
                  "postprocess": {}}
    if mask_mode == "classes":
        experiment["data"]["num_classes"] = fp["classes"]["n_classes"]
        experiment["model"]["params"]["classes"] = fp["classes"]["n_classes"]
    for d in decisions:
        node = experiment
        keys = d.key.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = copy.deepcopy(d.value)
    try:
        return validate_config(copy.deepcopy(experiment), "<plan>") and experiment
    except ConfigError as err:  # a rule produced something the schema refuses: a bug
        raise RuntimeError(f"the planned experiment does not validate: {err}") from err


def _probe(training, channels, samples=None, normalization="auto"):
    """``measure(candidate)``: the network's step (``measure_step``) plus, given the
    ``samples``, the loader's time a batch with the planned augmentation
    (``measure_loader``)."""
    def measure(candidate):
        cost = measure_step(MODEL, candidate.params(), (*candidate.size, channels),
                            candidate.batch, training, candidate.units())
        if samples:
            cost = cost.plus_loader(measure_loader(
                samples, candidate.fit, candidate.size, candidate.batch, channels,
                normalization, rules.augmentation_rule(candidate.size).value))
        return cost
    return measure


def plan_experiment(root, *, dataset="folder", options=None, budget_minutes=10.0, folds=None,
                    output=None, seed=0, measure=None, workers=2) -> Plan:
    """Plan an experiment for the dataset in ``root`` (read by ``dataset`` with ``options``)
    to train within ``budget_minutes`` on this machine; with ``output``, write
    ``fingerprint.json``, ``plan.json`` and ``experiment.json`` there.

    Returns the ``Plan``. Raises ``rules.PlanError`` (a ``ValueError``) for a dataset or a
    budget that cannot be planned, ``ConfigError`` for a bad folder or reader.
    """
    from kerasmed.data.readers import READERS

    if dataset not in READERS:
        raise ConfigError([f"--dataset: unknown reader {dataset!r}; choose one of "
                           f"{', '.join(READERS)}"])
    if output is not None and any((Path(output) / n).exists() for n in PLAN_FILES):
        raise FileExistsError(f"{output}: holds an earlier plan; choose another --output "
                              f"(plans are never overwritten)")
    try:
        samples = read_dataset(dataset, root, **(options or {}))
    except (DatasetLayoutError, TypeError) as err:
        raise ConfigError([f"{root}: {err}"]) from err
    fp = compute_fingerprint(samples, workers=workers)
    plan = plan_from_fingerprint(fp, root, dataset=dataset, options=options,
                                 budget_minutes=budget_minutes, folds=folds, seed=seed,
                                 measure=measure, samples=samples)
    if output is not None:
        plan.write(output)
    return plan
