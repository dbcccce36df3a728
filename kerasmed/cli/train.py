"""``kerasmed-train``: start, resume or cross-validate a run from an experiment file."""

from __future__ import annotations

import argparse
import sys

from kerasmed.cli._common import (BAD_INPUT, EXIT_CODES, add_verbose, bad_input,
                                  interrupted, quiet)


def _train_parser():
    parser = argparse.ArgumentParser(
        prog="kerasmed-train",
        description="Train a kerasmed experiment file. Each run writes a new directory under "
                    "--output with the config, history.csv, plots, checkpoints and summary.json.")
    parser.add_argument("config", nargs="?",
                        help="experiment file (JSON), e.g. experiments/quickstart.json")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue an interrupted run from its last checkpoint, appending "
                             "to its history.csv (no CONFIG needed)")
    parser.add_argument("--output", default="runs",
                        help="folder that receives the run directory (default: runs)")
    parser.add_argument("--folds", type=int, metavar="K",
                        help="k-fold cross-validation: train K runs, one per fold, in one "
                             "directory, with folds.csv (each fold, mean and std); default: the "
                             "experiment's training.folds")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a key of the experiment, VALUE in JSON "
                             "(e.g. --set training.epochs=2); repeatable")
    add_verbose(parser)
    return parser



def _selection_line(summary) -> str:
    """The post-processing chosen on the folds (a k-fold parent's ``summary``), as the end of
    the closing line."""
    chosen = summary.get("postprocess")
    if not chosen:
        return ""
    kept = [f"{k}={v}" for k, v in chosen["mask"].items() if v] or ["none"]
    return (f"; post-processing chosen on the folds: {', '.join(kept)} (out-of-fold Dice "
            f"{chosen['dice_without']:.4f} -> {chosen['dice_with']:.4f})")


def _start_distribution(args):
    """Join a multi-worker cluster before TensorFlow runs anything (it configures collectives
    only then): the distribution is read from the experiment file and its --set overrides, or
    from the resumed run's config.json, ahead of the full check."""
    from pathlib import Path

    from kerasmed.experiment.files import read_experiment
    from kerasmed.experiment.overrides import apply_overrides
    from kerasmed.training.distribution import start_distribution

    if args.resume:
        path = Path(args.resume) / "config.json"
        if not path.exists():
            return  # resume() says what is missing
        raw = read_experiment(path)
    else:
        raw = apply_overrides(read_experiment(args.config), args.overrides, args.config)
    training = raw.get("training")
    if isinstance(training, dict) and training.get("distribution") == "multi_worker":
        start_distribution("multi_worker")


def train_main(argv=None) -> int:
    """Run ``kerasmed-train``; returns the exit status: 0 completed (or stopped early), 1 failed,
    2 bad input or a file-system error, 3 diverged, 130 interrupted.

    ``kerasmed-train CONFIG [--output DIR] [--set KEY=VALUE ...]`` starts a new run;
    ``kerasmed-train --resume RUN_DIR`` continues one.
    """
    parser = _train_parser()
    args = parser.parse_args(argv)
    if (args.config is None) == (args.resume is None):
        parser.error("give either an experiment file or --resume RUN_DIR")
    if args.resume and args.overrides:
        parser.error("--set cannot change a run being resumed")
    if args.folds is not None and args.folds < 2:
        parser.error("--folds needs at least 2 folds")
    quiet(args.verbose)
    # Imported here so that --help answers without loading TensorFlow.
    try:
        _start_distribution(args)
    except BAD_INPUT as err:
        return bad_input("kerasmed-train", err)
    from kerasmed.api import resume, train
    from kerasmed.training.distribution import lost_workers, worker_role
    from kerasmed.training.trainer import RunDiverged

    try:
        run = resume(args.resume) if args.resume else \
            train(args.config, args.output, args.overrides, args.folds)
    except BAD_INPUT as err:
        return bad_input("kerasmed-train", err)
    except RunDiverged as err:
        print(f"kerasmed-train: diverged: {err} (summary.json has the details; no checkpoint "
              f"holds non-finite weights)", file=sys.stderr)
        return EXIT_CODES["diverged"]
    except KeyboardInterrupt as interrupt:
        return interrupted("kerasmed-train", interrupt, "the run directory keeps the epochs "
                           "completed (continue with --resume)")
    except Exception as err:
        lost = lost_workers(err)
        if lost is None:
            raise
        print(f"kerasmed-train: error: the multi-worker run stopped: "
              f"{', '.join(lost) or 'a worker'} stopped answering; start every worker again "
              f"with kerasmed-train --resume RUN_DIR (the chief's run directory, which keeps "
              f"the completed epochs)", file=sys.stderr)
        return EXIT_CODES["failed"]
    if run.is_kfold:
        print(f"kerasmed-train: {len(run.folds)} folds done; see {run.path / 'folds.csv'}"
              + _selection_line(run.summary))
        return EXIT_CODES["done"]
    summary = run.summary
    chief, index, workers = worker_role()
    if not chief:
        print(f"kerasmed-train: worker {index} of {workers} done ({summary['status']}); the "
              f"chief writes the run directory")
    elif best := summary.get("best"):
        print(f"kerasmed-train: best {best['monitor']} = {best['value']:.4f} at epoch "
              f"{best['epoch']}; outputs in {run.path}")
    return EXIT_CODES["done"] if summary["status"] in ("completed", "stopped") \
        else EXIT_CODES["failed"]

