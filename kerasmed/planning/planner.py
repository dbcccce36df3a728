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
from kerasmed.experiment.schema import ConfigError
from kerasmed.experiment.validate import section_defaults, validate_config
from kerasmed.planning import classification, rules
from kerasmed.planning.budget import Candidate, select
from kerasmed.planning.probe import measure_loader, measure_step
from kerasmed.runfiles import write_json_atomic

__all__ = ["Plan", "plan_experiment", "plan_from_fingerprint", "PLAN_FILES"]

#: What ``plan_experiment`` writes into its output folder.
PLAN_FILES = ("fingerprint.json", "plan.json", "experiment.json")
#: Patch sides tried, largest first.
PATCH_SIDES = (512, 384, 256, 192, 128, 96, 64, 48, 32)


def _refuse_earlier_plan(output: Path) -> None:
    """Raise ``FileExistsError`` when ``output`` holds a plan: plans are never overwritten."""
    if any((output / name).exists() for name in PLAN_FILES):
        raise FileExistsError(f"{output}: holds an earlier plan; choose another --output "
                              f"(plans are never overwritten)")


@dataclass
class Plan:
    """A planned experiment: ``experiment`` (an experiment dict), ``decisions`` (each
    ``rules.Decision``), the fingerprint, the costs measured, the time expected and, once
    written, the folder that holds its files."""

    experiment: dict
    decisions: list
    fingerprint: dict
    budget_minutes: float
    expected_minutes: float
    costs: dict = field(default_factory=dict)
    output: Path | None = None

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
        _refuse_earlier_plan(output)
        output.mkdir(parents=True, exist_ok=True)
        save_fingerprint(self.fingerprint, output / "fingerprint.json")
        write_json_atomic(output / "plan.json", self.record())
        write_json_atomic(output / "experiment.json", self.experiment)
        self.output = output
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


def plan_from_fingerprint(fp, root, *, dataset="folder", options=None, budget_minutes=10.0,
                          folds=None, seed=0, measure=None, name=None, samples=None) -> Plan:
    """Plan an experiment for the dataset ``fp`` describes (its ``root`` and reader): a
    ``planned_unet`` for images with masks, the small Residual Attention Network for labelled
    images (``kerasmed.planning.classification``).

    ``measure(candidate) -> StepCost`` times a candidate on this machine (default: a probe of
    a few train steps, ``measure_step``, plus the loader's time a batch on ``samples`` when
    they are given); the first call calibrates the cost of the others, the chosen candidate is
    measured again. ``folds`` overrides the number of folds (1: a single run). Raises
    ``rules.PlanError`` when the dataset cannot be planned or the budget cannot train even the
    smallest candidate for ``rules.MIN_STEPS`` steps (the message gives the budget needed).
    """
    if budget_minutes is None or not budget_minutes > 0 or math.isinf(budget_minutes):
        raise rules.PlanError(f"--budget must be a positive number of minutes, got "
                              f"{budget_minutes}")
    if folds is not None and (folds < 1 or folds > fp["n_images"]):
        raise rules.PlanError(f"--folds must be between 1 and the {fp['n_images']} images, got "
                              f"{folds}")
    budget_s = 60.0 * budget_minutes * rules.BUDGET_SHARE
    decisions = [rules.channels_rule(fp), rules.normalization_rule(fp)]
    channels, normalization = decisions[0].value, decisions[1].value
    optimizer, schedule = rules.optimizer_rule()
    training = section_defaults("training")
    training.update(optimizer=optimizer.value, lr_schedule=schedule.value, verbose=2)
    classify = fp["kind"] == "classification"
    if classify:
        if fp["classes"]["n_classes"] < 2:
            raise rules.PlanError(f"a classifier needs at least two classes, found "
                                  f"{list(fp['classes']['counts'])}")
        training.update(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        candidates = classification.candidates(fp, channels)
        augmentation = (lambda size: classification.augmentation_rule().value)
    else:
        mask_mode = "classes" if fp["mask_mode"] == "classes" else "binary"
        loss = rules.loss_rule(mask_mode)
        training.update(loss=loss.value)
        candidates = _candidates(fp, channels)
        augmentation = None
    if not candidates:
        raise rules.PlanError(f"images of median size {fp['median_shape']} are smaller than "
                              f"the smallest input ({rules.MIN_PATCH} px)")
    measure = measure or _probe(training, channels, samples, normalization, augmentation)
    chosen, measured, plan, costs = select(fp, candidates, measure, budget_s, budget_minutes,
                                           folds)
    if classify:
        decisions += classification.decisions(fp, chosen, plan)
        base = {"data": {}, "training": {"monitor_mode": "max"}}
    else:
        decisions += _network_decisions(fp, chosen, measured, plan)
        decisions += [loss, *rules.deep_supervision_rule(chosen.widths),
                      rules.augmentation_rule(chosen.size)]
        base = {"data": {"mask_mode": mask_mode},
                "training": {"metrics": ["dice", "iou"], "monitor": "val_dice",
                             "monitor_mode": "max"}}
    # The builder's parameters as the chosen candidate was measured with.
    model = {"name": chosen.model, "params": chosen.params()}
    if not classify and mask_mode == "classes":
        base["data"]["num_classes"] = model["params"]["classes"] = fp["classes"]["n_classes"]
    decisions += _schedule_decisions(fp, measured, plan, budget_minutes, folds, classify,
                                     chosen.fit)
    decisions += [optimizer, schedule, rules.cache_rule(fp, channels, chosen.fit, chosen.size)]
    experiment = _experiment(root, dataset, options, decisions, model, base, seed,
                             name or Path(root).name, budget_minutes)
    return Plan(experiment, decisions, fp, budget_minutes, plan.seconds / 60.0, costs)


def _network_decisions(fp, c, cost, plan):
    """The segmentation network's input and topology decisions."""
    out = [
        c.fit_decision,
        rules.Decision("data.image_size", list(c.size), "patch",
                       f"{c.size[0]}x{c.size[1]}: the largest input whose network sees its "
                       f"pixels {plan.passes:.0f} times ({plan.steps} steps) in the budget "
                       f"({cost.step_s:.3f} s a measured step)",
                       {"median_shape": fp["median_shape"]}),
        rules.Decision("model.params.widths", list(c.widths), "topology",
                       f"{c.pools} poolings (feature maps >= {rules.MIN_FEATURE_MAP} px before "
                       f"pooling), base {c.widths[0]} doubling, capped at {rules.WIDTH_CAP}: "
                       f"the widest base the budget affords",
                       {"patch": list(c.size)}),
        _batch_decision(fp, c),
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


def _schedule_decisions(fp, cost, plan, budget_minutes, folds_given, classify, fit):
    """Folds, epochs (and for whole images, the passes an epoch makes), the budget and
    (segmentation) the post-processing choice."""
    select_on_folds = plan.folds > 1 and not classify
    passes = [] if fit == "patches" else [rules.Decision(
        "data.passes_per_epoch", plan.passes_per_epoch, "schedule",
        f"{plan.passes_per_epoch} pass(es) over the training images an epoch: validation and "
        f"checkpoints <= {rules.VALIDATION_SHARE:.0%} of it",
        {"step_s": cost.step_s, "predict_s": cost.predict_s})]
    return passes + [
        rules.Decision("training.folds", plan.folds if plan.folds > 1 else None, "folds",
                       ("given by --folds" if folds_given else
                        f"the most folds (of {rules.FOLD_CHOICES}) whose models each get >= "
                        f"{rules.FOLD_STEPS} steps and {rules.FOLD_PASSES} passes")
                       + f": {plan.steps} steps, {plan.passes:.0f} passes each",
                       {"n_images": fp["n_images"]}),
        rules.Decision("training.epochs", plan.epochs, "schedule",
                       f"{plan.epochs} epochs of {plan.steps_per_epoch} steps; validation and "
                       f"checkpoints <= {rules.VALIDATION_SHARE:.0%} of an epoch",
                       {"step_s": cost.step_s, "predict_s": cost.predict_s}),
        rules.Decision("training.budget_minutes", budget_minutes, "budget",
                       f"expected {plan.seconds / 60:.1f} min of {budget_minutes:g}",
                       {"expected_s": plan.seconds}),
        rules.Decision("postprocess.select", select_on_folds, "postprocessing",
                       "chosen on the folds' validation predictions" if select_on_folds else
                       "a classifier: no masks to clean" if classify else
                       "one run: no folds to choose post-processing on"),
    ]


def _batch_decision(fp, c):
    rule = rules.batch_rule(fp, c.size)
    if rule.value == c.batch:
        return rule
    return rules.Decision("training.batch_size", c.batch, "batch",
                          f"{rule.reason}; {c.batch}, so that this patch trains enough steps",
                          rule.figures)


def _experiment(root, dataset, options, decisions, model, base, seed, name, budget):
    """The experiment dict: ``model``, the ``base`` sections, then every decision's key."""
    experiment = {"name": f"{name}_planned", "seed": seed,
                  "description": f"planned by kerasmed-plan for {root} within {budget:g} min",
                  "model": model,
                  "data": {"dataset": dataset, "root": str(Path(root).resolve()),
                           "options": dict(options or {}), **base["data"]},
                  "training": {"verbose": 2, **base["training"]},
                  "postprocess": {}}
    for d in decisions:
        node = experiment
        keys = d.key.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = copy.deepcopy(d.value)
    try:
        validate_config(copy.deepcopy(experiment), "<plan>")
    except ConfigError as err:  # a rule produced something the schema refuses: a bug
        raise RuntimeError(f"the planned experiment does not validate: {err}") from err
    return experiment


def _probe(training, channels, samples=None, normalization="auto", augmentation=None):
    """``measure(candidate)``: the network's step (``measure_step``) plus, given the
    ``samples``, the loader's time a batch with the planned augmentation
    (``measure_loader``; ``augmentation(size)`` gives it, default the segmentation rule's)."""
    augmentation = augmentation or (lambda size: rules.augmentation_rule(size).value)

    def measure(candidate):
        cost = measure_step(candidate.model, candidate.params(), (*candidate.size, channels),
                            candidate.batch, training, candidate.units())
        if samples:
            cost = cost.plus_loader(measure_loader(
                samples, candidate.fit, candidate.size, candidate.batch, channels,
                normalization, augmentation(candidate.size)))
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
    if output is not None:  # before the work, not only when writing
        _refuse_earlier_plan(Path(output))
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
