"""Planned against hand-written: does ``kerasmed-plan`` + ``kerasmed-train`` with no hand
settings reach the test Dice of a hand-written experiment, within its budget?

For each data set: a training folder and a held-out test folder (``folder`` layout), a
hand-written experiment file and a budget. The script trains the hand-written experiment,
plans and trains the planned one, evaluates both (a k-fold plan as the ensemble of its folds)
on the test folder, and prints one row per data set: budget, each one's wall time and test
Dice (mean over images), and the ratios. Every command runs as a user would run it, in its own
process, timed as a whole.

Usage::

    python benchmarks/planner.py --prepare DATA_DIR      # the three sets below, train and test
    python benchmarks/planner.py --standard DATA_DIR [--budget MINUTES]
    python benchmarks/planner.py --case NAME TRAIN_DIR TEST_DIR HAND.json MINUTES [--case ...]
        [--folds K] [--output bench_planner]

``--prepare`` writes, under DATA_DIR, train and test folders of three sets (binary 0/255
masks): ``polyps`` (kerasmed's synthetic polyps, 200 training frames as the quickstart's, 60
test frames of another seed), ``dsb`` (the Data Science Bowl nuclei image stardist ships, 64
tiles of 64 px; the lower-right quadrant's 16 tiles are the test set) and ``mni`` (nilearn's
MNI152 template, grey matter, axial slices 30..140 every 2 mm; every fourth slice is the test
set). ``--standard`` runs them against the hand-written experiments of
``benchmarks/planner_cases/``. The real sets are small and correlated (one field of view, one
template volume): they show the planner on real images, not generalisation.

Run on an otherwise idle machine: the planner measures this machine's step time, and another
job beside it makes the plan (and the timings) wrong.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def _run(args):
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CLI, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds, done.stdout


_CLI = ("import sys; from kerasmed import cli; name = sys.argv[1]; "
        "sys.exit(getattr(cli, name)(sys.argv[2:]))")


def _newest(folder: Path, pattern: str) -> Path:
    return max(folder.glob(pattern), key=lambda p: p.stat().st_mtime)


def _test_dice(target: Path, test_dir: str) -> float:
    _run(["eval_main", str(target), "--data", test_dir, "--overlays", "0"])
    summary = json.loads((_newest(target, "eval_*") / "summary.json").read_text())
    return summary["dice"]["mean"]


def run_case(name, train_dir, test_dir, hand, minutes, output: Path, planned_set=(),
             with_hand=True, folds=None) -> dict:
    """One row: the hand-written experiment (unless ``with_hand`` is false) and the planned
    one (with ``planned_set`` overrides, e.g. another optimiser; ``folds`` passed to
    ``kerasmed-plan --folds``), each trained and evaluated on ``test_dir``."""
    out = output / name
    row = {"data set": name, "budget min": minutes}
    if with_hand:
        hand_runs = out / "hand"
        hand_s, _ = _run(["train_main", hand, "--output", str(hand_runs), "--set",
                          f'data.root="{train_dir}"'])
        row.update({"hand min": hand_s / 60,
                    "hand Dice": _test_dice(_newest(hand_runs, "*"), test_dir)})
    plan_dir = out / "plan"
    if not (plan_dir / "experiment.json").exists():
        plan_s, _ = _run(["plan_main", train_dir, "--budget", str(minutes), "--output",
                          str(plan_dir)] + (["--folds", str(folds)] if folds else []))
        row["plan s"] = plan_s
    planned_runs = out / ("planned" + "".join(f"_{i}" for i, _ in enumerate(planned_set)))
    args = ["train_main", str(plan_dir / "experiment.json"), "--output", str(planned_runs)]
    for override in planned_set:
        args += ["--set", override]
    train_s, _ = _run(args)
    plan = json.loads((plan_dir / "plan.json").read_text())
    row.update({"planned train min": train_s / 60, "expected min": plan["expected_minutes"],
                "planned Dice": _test_dice(_newest(planned_runs, "*"), test_dir)})
    return row


CASES = Path(__file__).parent / "planner_cases"


def _binary_copy(pairs, root: Path):
    """Write ``(stem, image path, mask path)`` pairs to ``root`` with 0/255 masks."""
    from kerasmed.data.folders import write_png
    from kerasmed.data.io import read_image, read_label_mask

    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for stem, image, mask in pairs:
        write_png(root / "images" / f"{stem}.png", read_image(image))
        write_png(root / "masks" / f"{stem}.png",
                  ((read_label_mask(mask) > 0) * 255).astype("uint8"))


def prepare(data_dir) -> dict:
    """Write the three sets' train and test folders under ``data_dir``; returns
    ``{name: (train, test)}``."""
    import shutil
    import tempfile

    from kerasmed.data.packaged import extract_dsb2018_stardist, extract_mni152_nilearn
    from kerasmed.data.readers import read_dataset
    from kerasmed.data.synthetic import generate_polyp_dataset

    data_dir = Path(data_dir)
    out = {"polyps": (data_dir / "polyps_train", data_dir / "polyps_test")}
    generate_polyp_dataset(out["polyps"][0], n_images=200, height=192, width=256, seed=0)
    generate_polyp_dataset(out["polyps"][1], n_images=60, height=192, width=256, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        dsb = extract_dsb2018_stardist(Path(tmp) / "dsb", tile=64)
        mni = extract_mni152_nilearn(Path(tmp) / "mni", slices=list(range(30, 141, 2)))
        for name, root, is_test in (
                ("dsb", dsb, lambda stem: int(stem.split("_y")[1][:3]) >= 256
                 and int(stem.split("_x")[1][:3]) >= 256),
                ("mni", mni, lambda stem: int(stem.rsplit("_z", 1)[1]) % 8 == 0)):
            samples = read_dataset("folder", root, mask_type="instances")
            train, test = data_dir / f"{name}_train", data_dir / f"{name}_test"
            for target, keep in ((train, False), (test, True)):
                if target.exists():
                    shutil.rmtree(target)
                _binary_copy([(s.image.stem, s.image, s.mask) for s in samples
                              if is_test(s.image.stem) == keep], target)
            out[name] = (train, test)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", nargs=5, action="append",
                        metavar=("NAME", "TRAIN_DIR", "TEST_DIR", "HAND_JSON", "MINUTES"))
    parser.add_argument("--prepare", metavar="DATA_DIR")
    parser.add_argument("--standard", metavar="DATA_DIR")
    parser.add_argument("--budget", type=float, default=3.0)
    parser.add_argument("--planned-set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key of each planned experiment (repeatable)")
    parser.add_argument("--no-hand", action="store_true",
                        help="train only the planned experiments (an existing plan is reused)")
    parser.add_argument("--folds", type=int, default=None,
                        help="kerasmed-plan --folds K for every case (default: the plan's own)")
    parser.add_argument("--output", default="bench_planner")
    args = parser.parse_args(argv)
    if args.prepare:
        for name, (train, test) in prepare(args.prepare).items():
            print(f"{name}: {train} ({len(list((train / 'images').iterdir()))} images), "
                  f"{test} ({len(list((test / 'images').iterdir()))} images)")
        return
    cases = list(args.case or [])
    if args.standard:
        root = Path(args.standard)
        cases += [(n, str(root / f"{n}_train"), str(root / f"{n}_test"),
                   str(CASES / f"hand_{n}.json"), str(args.budget))
                  for n in ("polyps", "dsb", "mni")]
    if not cases:
        parser.error("give --prepare, --standard or --case")
    rows = [run_case(n, tr, te, h, float(m), Path(args.output), args.planned_set,
                     not args.no_hand, args.folds) for n, tr, te, h, m in cases]
    columns = list(rows[0])
    ratio = "hand Dice" in columns
    print("| " + " | ".join(columns) + (" | planned / hand Dice |" if ratio else " |"))
    print("|" + "---|" * (len(columns) + ratio))
    for row in rows:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells)
              + (f" | {row['planned Dice'] / row['hand Dice']:.3f} |" if ratio else " |"))


if __name__ == "__main__":
    main()
