"""kerasmed-plan: every rule on constructed fingerprints, the budget, and the planned
experiment file trained end to end."""

import json

import numpy as np
import pytest

from kerasmed.planning import PlanError, plan_from_fingerprint
from kerasmed.planning import rules
from kerasmed.planning.probe import StepCost

# A machine on which a step costs 2e-8 s an activation unit plus 5 ms (about this project's
# 2-core CPU for small U-Nets), so that the rules are tested without training anything.
SECONDS_PER_UNIT = 2e-8


def fake_measure(candidate):
    units = candidate.units()
    step = 0.005 + SECONDS_PER_UNIT * units
    return StepCost(step, step / 3, 2.0, units)


def fingerprint(n=20, shape=(256, 256), dtype="uint8", channels=3, minor=10.0, diameter=20.0,
                foreground=0.1):
    """The figures of a fingerprint the rules read, for ``n`` images of one ``shape``."""
    images = [{"image": f"{i}.png", "height": shape[0], "width": shape[1], "channels": channels,
               "dtype": dtype} for i in range(n)]
    return {"kind": "segmentation", "n_images": n, "mask_mode": "binary", "images": images,
            "median_shape": [float(shape[0]), float(shape[1])], "channels": [channels],
            "dtypes": [dtype],
            "components": {"minor_axis_length": {"min": minor, "median": minor * 2, "max": 99},
                           "equivalent_diameter": {"min": diameter / 2, "median": diameter,
                                                   "max": 99}},
            "foreground_fraction": {"min": 0.0, "median": foreground, "max": 0.5,
                                    "mean": foreground},
            "classes": None}


def decisions(plan):
    return {d.key: d.value for d in plan.decisions}


def test_large_16_bit_frames_with_small_objects_get_native_patches_and_percentiles(tmp_path):
    fp = fingerprint(n=15, shape=(700, 1100), dtype="uint16", channels=1, minor=3.0,
                     diameter=8.0, foreground=0.003)
    plan = plan_from_fingerprint(fp, tmp_path, budget_minutes=10, measure=fake_measure)
    d = decisions(plan)
    assert d["data.fit"] == "patches" and d["data.channels"] == 1
    assert d["data.normalization"]["method"] == "percentile"
    assert d["data.foreground_share"] == pytest.approx(1 / 3)
    h, w = d["data.image_size"]
    pools = len(d["model.params.widths"]) - 1
    assert h % 2 ** pools == 0 and w % 2 ** pools == 0
    assert h / 2 ** pools >= rules.MIN_FEATURE_MAP / 2  # the bottleneck keeps >= 4 px
    assert min(h, w) >= rules.PATCH_DIAMETERS * 8.0 or min(h, w) == rules.MIN_PATCH
    assert d["data.patches_per_epoch"] == d["training.batch_size"] * (
        plan.experiment["data"]["patches_per_epoch"] // d["training.batch_size"])
    assert plan.expected_minutes <= 10
    # Every decision carries its rule and reason into plan.json.
    record = plan.record()
    assert all(r["rule"] and r["reason"] for r in record["decisions"])
    json.dumps(record, allow_nan=False)


def test_small_uniform_rgb_images_are_resized_whole(tmp_path):
    plan = plan_from_fingerprint(fingerprint(n=40, shape=(96, 128)), tmp_path,
                                 budget_minutes=10, measure=fake_measure)
    d = decisions(plan)
    assert d["data.fit"] == "resize" and d["data.image_size"] == [96, 128]
    assert d["data.normalization"] == "dtype_range" and d["data.channels"] == 3
    assert "data.patches_per_epoch" not in d


def test_cache_is_planned_with_the_loaders_estimate_and_limit(monkeypatch):
    """The plan keeps samples in memory exactly when the loader's cache check would accept
    them: ``data.memory``'s estimate against its share of this machine's memory."""
    from kerasmed.data import memory

    fp = fingerprint(n=10, shape=(1000, 1000), dtype="uint16", channels=1)
    native = memory.cache_bytes([1000 * 1000] * 10, 1, 2, 1)  # 16-bit pixels, 8-bit masks
    assert rules.cache_rule(fp, 1, "patches", [256, 256]).figures["bytes"] == native
    resized = rules.cache_rule(fp, 1, "resize", [256, 256]).figures["bytes"]
    assert resized == memory.cache_bytes([256 * 256] * 10, 1, 2, 1)
    monkeypatch.setattr(memory, "physical_memory_bytes", lambda: 2 * native + 2)
    assert rules.cache_rule(fp, 1, "patches", [256, 256]).value is True
    monkeypatch.setattr(memory, "physical_memory_bytes", lambda: 2 * native)
    refused = rules.cache_rule(fp, 1, "patches", [256, 256])
    assert refused.value is False and "50%" in refused.reason


def test_passes_are_grouped_into_epochs_until_validation_is_a_small_share(tmp_path):
    """A small dataset's pass is a few steps, and validation, checkpoints and plots each epoch
    would take much of the budget: ``schedule`` groups the fewest passes into one epoch that
    keep them within ``rules.VALIDATION_SHARE`` of it, and keeps ``EPOCH_RANGE[0]`` epochs."""
    from kerasmed.planning import budget

    fp = fingerprint(n=20, shape=(64, 64))
    candidate = budget.Candidate("resize", [64, 64], 1.0, [16, 32, 64, 128], 2, 3,
                                 rules.Decision("data.fit", "resize", "fit", ""))
    cost = StepCost(0.05, 0.02, 2.0, 1.0)
    plan = budget.schedule(fp, candidate, cost, 300.0, 1, lambda folds: 0.8)
    per_pass = 16 // 2  # 16 training images, batch 2
    val_s = 4 * cost.predict_s / 2 + budget.EPOCH_OVERHEAD_S  # 4 validation images
    k = plan.passes_per_epoch
    assert k > 1 and plan.steps_per_epoch == per_pass * k
    assert val_s <= rules.VALIDATION_SHARE * per_pass * k * cost.step_s
    assert val_s > rules.VALIDATION_SHARE * per_pass * (k - 1) * cost.step_s
    assert plan.passes == plan.epochs * k and plan.epochs >= rules.EPOCH_RANGE[0]
    short = budget.schedule(fp, candidate, cost, 60.0, 1, lambda folds: 0.8)
    assert short.epochs >= rules.EPOCH_RANGE[0] and 1 <= short.passes_per_epoch < k
    # The plan writes the grouping into the experiment; patches set their epoch otherwise.
    small = plan_from_fingerprint(fp, tmp_path, budget_minutes=5, measure=fake_measure)
    assert small.experiment["data"]["passes_per_epoch"] == decisions(small)["data.passes_per_epoch"]
    large = plan_from_fingerprint(fingerprint(n=15, shape=(700, 1100), dtype="uint16",
                                              channels=1, minor=3.0, diameter=8.0),
                                  tmp_path, budget_minutes=10, measure=fake_measure)
    assert "data.passes_per_epoch" not in decisions(large)


def test_deep_supervision_weights_halve_per_level_and_the_final_output_is_monitored(
        tmp_path, monkeypatch):
    from kerasmed.experiment.validate import validate_config
    from kerasmed.models import build

    fp = fingerprint(n=40, shape=(96, 128))
    # Off by default, as measured (rules.DEEP_SUPERVISION), with the reason in plan.json.
    off = decisions(plan_from_fingerprint(fp, tmp_path, budget_minutes=10,
                                          measure=fake_measure))
    assert off["model.params.deep_supervision"] is False and "training.loss_weights" not in off
    # Switched on: nnU-Net's side outputs and weights, and the final output monitored.
    monkeypatch.setattr(rules, "DEEP_SUPERVISION", True)
    plan = plan_from_fingerprint(fp, tmp_path, budget_minutes=10, measure=fake_measure)
    d = decisions(plan)
    widths = d["model.params.widths"]
    assert len(widths) >= 4 and d["model.params.deep_supervision"] is True
    weights = d["training.loss_weights"]
    levels = sorted(int(k[4:]) for k in weights if k.startswith("side"))
    assert levels == list(range(1, len(widths) - 2))  # nnU-Net: all but the top and lowest
    assert sum(weights.values()) == pytest.approx(1, abs=1e-5)
    for level in levels:  # each level weighs half the one above it
        above = weights["final"] if level == 1 else weights[f"side{level - 1}"]
        assert weights[f"side{level}"] == pytest.approx(above / 2, rel=1e-4)
    assert d["training.monitor"] == "val_final_dice"
    # The model the plan names has exactly the outputs the weights name.
    config = validate_config(plan.experiment, "<plan>", preflight=False)
    model = build("planned_unet", input_shape=(*config["data"]["image_size"], 3),
                  **config["model"]["params"])
    assert set(model.output_names) == set(weights)
    # Three stages leave no level between the top and the lowest: no side outputs.
    (none,) = rules.deep_supervision_rule([16, 32, 64])
    assert none.key == "model.params.deep_supervision" and none.value is False


def test_large_images_with_large_objects_are_shrunk_keeping_the_aspect(tmp_path):
    plan = plan_from_fingerprint(fingerprint(n=40, shape=(1024, 1536), minor=120,
                                             diameter=200), tmp_path, budget_minutes=10,
                                 measure=fake_measure)
    d = decisions(plan)
    h, w = d["data.image_size"]
    assert d["data.fit"] == "resize" and w > h and abs(w / h - 1.5) < 0.2


def test_a_tiny_budget_shrinks_the_network_and_an_impossible_one_is_refused(tmp_path):
    fp = fingerprint(n=30, shape=(512, 512), minor=2.0, diameter=30.0)
    big = decisions(plan_from_fingerprint(fp, tmp_path, budget_minutes=120,
                                          measure=fake_measure))
    small = decisions(plan_from_fingerprint(fp, tmp_path, budget_minutes=2,
                                            measure=fake_measure))
    cost = [d["data.image_size"][0] * d["data.image_size"][1] * d["model.params.widths"][0]
            * d["training.batch_size"] for d in (big, small)]
    assert cost[1] < cost[0]
    assert big["training.folds"] is not None and big["postprocess.select"]
    with pytest.raises(PlanError, match=r"needs about [0-9.]+ min \(--budget\)") as err:
        plan_from_fingerprint(fp, tmp_path, budget_minutes=0.05, measure=fake_measure)
    needed = float(str(err.value).split("needs about ")[1].split(" min")[0])
    # The budget it asks for is enough: planning with it succeeds.
    plan_from_fingerprint(fp, tmp_path, budget_minutes=needed, measure=fake_measure)


def test_folds_given_are_kept_and_bad_ones_refused(tmp_path):
    fp = fingerprint(n=12, shape=(64, 64))
    d = decisions(plan_from_fingerprint(fp, tmp_path, budget_minutes=20, folds=3,
                                        measure=fake_measure))
    assert d["training.folds"] == 3 and d["postprocess.select"]
    d = decisions(plan_from_fingerprint(fp, tmp_path, budget_minutes=20, folds=1,
                                        measure=fake_measure))
    assert d["training.folds"] is None and not d["postprocess.select"]
    with pytest.raises(PlanError, match="--folds"):
        plan_from_fingerprint(fp, tmp_path, budget_minutes=20, folds=13, measure=fake_measure)


def test_rotation_follows_the_patch_aspect():
    assert rules.augmentation_rule([64, 64]).value[0]["max_left_rotation"] == 180
    assert rules.augmentation_rule([64, 128]).value[0]["max_left_rotation"] == 15


def test_pooling_stops_at_the_smallest_feature_map():
    assert rules.pools_for(32) == 3 and rules.pools_for(64) == 4 and rules.pools_for(8) == 1
    assert rules.pools_for(4096) == rules.MAX_POOLS


def test_plan_command_writes_a_plan_that_trains(tmp_path, monkeypatch, capsys):
    """The user's path: kerasmed-plan on a folder, then kerasmed-train of its experiment."""
    from kerasmed.cli import plan_main, train_main
    from kerasmed.data.synthetic import generate_polyp_dataset

    monkeypatch.chdir(tmp_path)
    generate_polyp_dataset(tmp_path / "polyps", n_images=12, height=48, width=64, seed=0)
    out = tmp_path / "plan"
    assert plan_main([str(tmp_path / "polyps"), "--budget", "5", "--output", str(out),
                      "--folds", "1"]) == 0
    experiment = json.loads((out / "experiment.json").read_text())
    plan = json.loads((out / "plan.json").read_text())
    assert experiment["model"]["name"] == "planned_unet"
    assert plan["costs"]["chosen"]["step_s"] > 0 and plan["expected_minutes"] <= 5
    assert json.loads((out / "fingerprint.json").read_text())["n_images"] == 12
    # A second plan into the same folder is refused: plans are never overwritten.
    assert plan_main([str(tmp_path / "polyps"), "--output", str(out)]) == 2
    assert train_main([str(out / "experiment.json"), "--output", str(tmp_path / "runs"),
                       "--set", "training.epochs=1"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed"
    # Training shows what is left of the plan's budget.
    assert "budget after epoch 1:" in capsys.readouterr().out


def test_budget_clock_counts_from_the_start_it_is_given():
    import time

    from kerasmed.training.callbacks import BudgetClock

    assert "min left" in BudgetClock(10).line(0)
    assert "1.0 min over" in BudgetClock(1, started=time.time() - 120).line(4)


def test_plan_command_answers_bad_input_in_one_line(tmp_path, capsys):
    from kerasmed.cli import plan_main

    assert plan_main([str(tmp_path / "missing")]) == 2
    assert "missing" in capsys.readouterr().err
    for budget in ("-1", "nan", "inf"):
        with pytest.raises(SystemExit) as err:
            plan_main([str(tmp_path), "--budget", budget])
        assert err.value.code == 2


def classification_fingerprint(counts, shape=(496, 512), dtype="uint8"):
    n = sum(counts.values())
    images = [{"image": f"{i}.png", "height": shape[0], "width": shape[1], "channels": 1,
               "dtype": dtype} for i in range(n)]
    return {"kind": "classification", "n_images": n, "mask_mode": None, "images": images,
            "median_shape": [float(shape[0]), float(shape[1])], "channels": [1],
            "dtypes": [dtype], "components": None, "foreground_fraction": None,
            "classes": {"n_classes": len(counts), "counts": counts,
                        "fraction": {k: v / n for k, v in counts.items()}}}


def test_classification_folders_are_planned_with_class_weights_from_the_counts(tmp_path):
    unbalanced = decisions(plan_from_fingerprint(
        classification_fingerprint({"CNV": 300, "DME": 60, "NORMAL": 200}), tmp_path,
        dataset="class_folders", budget_minutes=10, measure=fake_measure))
    assert unbalanced["data.class_weights"] == "balanced"
    assert unbalanced["training.loss"] == "sparse_categorical_crossentropy"
    assert unbalanced["training.monitor"] == "val_macro_f1"
    h, w = unbalanced["data.image_size"]
    assert h % 32 == 0 and w % 32 == 0 and unbalanced["data.fit"] == "resize"
    balanced = plan_from_fingerprint(classification_fingerprint({"a": 100, "b": 90}), tmp_path,
                                     dataset="class_folders", budget_minutes=60,
                                     measure=fake_measure)
    assert decisions(balanced)["data.class_weights"] is None
    assert balanced.experiment["model"]["name"] == "residual_attention_network"
    assert not decisions(balanced)["postprocess.select"]
    # A smaller budget gives a cheaper classifier (smaller input, narrower or smaller batch).
    small = decisions(plan_from_fingerprint(classification_fingerprint({"a": 100, "b": 90}),
                                            tmp_path, dataset="class_folders",
                                            budget_minutes=1, measure=fake_measure))
    big = decisions(balanced)
    cost = [d["data.image_size"][0] * d["data.image_size"][1] * d["model.params.width"] ** 2
            * d["training.batch_size"] for d in (big, small)]
    assert cost[1] < cost[0]


def test_a_planned_classifier_trains_from_its_class_folders(tmp_path):
    from kerasmed.cli import train_main
    from kerasmed.data.folders import write_png
    from kerasmed.planning import plan_experiment

    rng = np.random.default_rng(0)
    for label, level in (("bright", 180), ("dark", 60)):
        (tmp_path / "oct" / label).mkdir(parents=True)
        for i in range(8):
            image = np.clip(rng.normal(level, 20, (40, 48)), 0, 255).astype(np.uint8)
            write_png(tmp_path / "oct" / label / f"{i}.png", image)
    plan = plan_experiment(tmp_path / "oct", dataset="class_folders", budget_minutes=5,
                           output=tmp_path / "plan", measure=fake_measure)
    assert plan.fingerprint["classes"]["counts"] == {"bright": 8, "dark": 8}
    # One short epoch: the fake machine's cheap steps make the plan's epochs ~100 passes long.
    assert plan.experiment["data"]["passes_per_epoch"] > 1
    assert train_main([str(tmp_path / "plan" / "experiment.json"), "--output",
                       str(tmp_path / "runs"), "--set", "training.epochs=1",
                       "--set", "data.passes_per_epoch=1"]) == 0
