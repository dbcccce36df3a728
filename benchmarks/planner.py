"""Planned against hand-written: does ``kerasmed-plan`` + ``kerasmed-train`` with no hand
settings reach the test Dice of a hand-written experiment, within its budget?

For each data set: a training folder and a held-out test folder (``folder`` layout), a
hand-written experiment file and a budget. The script trains the hand-written experiment,
plans and trains the planned one, evaluates both (a k-fold plan as the ensemble of its folds)
on the test folder, and prints one row per data set: budget, each one's wall time and test
Dice (mean over images), and the ratios. Every command runs as a user would run it, in its own
process, timed as a whole.

Usage::

    python benchmarks/planner.py --case NAME TRAIN_DIR TEST_DIR HAND.json MINUTES [--case ...]
        [--output bench_planner]

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


def run_case(name, train_dir, test_dir, hand, minutes, output: Path) -> dict:
    out = output / name
    hand_runs = out / "hand"
    hand_s, _ = _run(["train_main", hand, "--output", str(hand_runs), "--set",
                      f'data.root="{train_dir}"'])
    hand_target = _newest(hand_runs, "*")
    plan_dir = out / "plan"
    plan_s, _ = _run(["plan_main", train_dir, "--budget", str(minutes), "--output",
                      str(plan_dir)])
    planned_runs = out / "planned"
    train_s, _ = _run(["train_main", str(plan_dir / "experiment.json"), "--output",
                       str(planned_runs)])
    planned_target = _newest(planned_runs, "*")
    plan = json.loads((plan_dir / "plan.json").read_text())
    return {"data set": name, "budget min": minutes,
            "hand min": hand_s / 60, "hand Dice": _test_dice(hand_target, test_dir),
            "plan s": plan_s, "planned train min": train_s / 60,
            "expected min": plan["expected_minutes"],
            "planned Dice": _test_dice(planned_target, test_dir)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", nargs=5, action="append", required=True,
                        metavar=("NAME", "TRAIN_DIR", "TEST_DIR", "HAND_JSON", "MINUTES"))
    parser.add_argument("--output", default="bench_planner")
    args = parser.parse_args(argv)
    rows = [run_case(n, tr, te, h, float(m), Path(args.output)) for n, tr, te, h, m in args.case]
    columns = list(rows[0])
    print("| " + " | ".join(columns) + " | planned / hand Dice |")
    print("|" + "---|" * (len(columns) + 1))
    for row in rows:
        cells = [f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + f" | {row['planned Dice'] / row['hand Dice']:.3f} |")


if __name__ == "__main__":
    main()
