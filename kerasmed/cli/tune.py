"""``kerasmed-tune``: Bayesian optimisation (Optuna) over an experiment's ``tune`` section."""

from __future__ import annotations

import argparse

from kerasmed.cli._common import (BAD_INPUT, EXIT_CODES, add_verbose, bad_input,
                                  interrupted, quiet)


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
    quiet(args.verbose)
    try:
        import optuna  # noqa: F401
    except ImportError:
        return bad_input("kerasmed-tune", 'needs Optuna: pip install "kerasmed[tune]"')
    from kerasmed.api import tune

    try:
        tuning = tune(args.config, args.trials, args.output, args.resume, args.storage,
                      args.study)
    except BAD_INPUT as err:
        return bad_input("kerasmed-tune", err)
    except KeyboardInterrupt as interrupt:
        return interrupted("kerasmed-tune", interrupt, "continue with --resume")
    if tuning.best:
        print(f"kerasmed-tune: best value {tuning.best['value']:.4f} (trial "
              f"{tuning.best['trial']}); rerun it with {tuning.best_experiment}")
    print(f"kerasmed-tune: outputs in {tuning.path}")
    return EXIT_CODES["done"]

