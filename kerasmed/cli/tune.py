"""``kerasmed-tune``: Bayesian optimisation (Optuna) over an experiment's ``tune`` section."""

from __future__ import annotations

import argparse
import sys

from kerasmed.cli._common import (BAD_INPUT, EXIT_CODES, add_verbose, bad_input,
                                  interrupted_code, quiet)


def tune_main(argv=None) -> int:
    """Run ``kerasmed-tune``: Bayesian optimisation over an experiment's ``tune`` section."""
    parser = argparse.ArgumentParser(
        prog="kerasmed-tune",
        description="Tune an experiment with Optuna over its tune section (any key by its "
                    "dotted path; DRRMSAN-style weights that sum to a total). Every trial is a "
                    "run directory; the tuning folder holds study.db, trials.csv, "
                    "best_experiment.json and plots. Rerun with --resume to continue.")
    parser.add_argument("config", nargs="?", help="experiment file with a tune section")
    parser.add_argument("--trials", type=int, help="trials in the study (default: "
                                                   "tune.trials, else 20), however many "
                                                   "workers share it; a resumed study runs "
                                                   "the missing ones")
    parser.add_argument("--resume", metavar="TUNE_DIR", help="continue a study in its folder")
    parser.add_argument("--output", default="tuning",
                        help="parent of the new tuning folder (default: tuning)")
    parser.add_argument("--storage", help="Optuna database URL shared by several machines "
                                          "(default: SQLite in the tuning folder)")
    parser.add_argument("--study", help="study name in --storage (default: the experiment's)")
    add_verbose(parser)
    args = parser.parse_args(argv)
    if (args.config is None) == (args.resume is None):
        parser.error("give either an experiment file or --resume TUNE_DIR")
    if args.trials is not None and args.trials < 1:
        parser.error("--trials must be at least 1")
    quiet(args.verbose)
    try:
        import optuna  # noqa: F401
    except ImportError:
        return bad_input("kerasmed-tune", 'needs Optuna: pip install "kerasmed[tune]"')
    from kerasmed.experiment.tune import tune

    try:
        folder = tune(args.config, args.trials, args.output, args.resume, args.storage,
                      args.study)
    except BAD_INPUT as err:
        return bad_input("kerasmed-tune", err)
    except KeyboardInterrupt as interrupt:
        print("kerasmed-tune: interrupted; continue with --resume", file=sys.stderr)
        return interrupted_code(interrupt)
    best = folder / "best.json"
    if best.exists():
        import json

        record = json.loads(best.read_text())
        print(f"kerasmed-tune: best value {record['value']:.4f} (trial {record['trial']}); "
              f"rerun it with {folder / 'best_experiment.json'}")
    print(f"kerasmed-tune: outputs in {folder}")
    return EXIT_CODES["done"]

