"""``kerasmed-plan``: a planned experiment for a folder of images and masks, within a budget."""

from __future__ import annotations

import argparse

from kerasmed.cli._common import (BAD_INPUT, EXIT_CODES, add_verbose, bad_input, bounded,
                                  interrupted, quiet)


def _plan_parser():
    parser = argparse.ArgumentParser(
        prog="kerasmed-plan",
        description="Measure a dataset (fingerprint.json), plan every choice of an experiment "
                    "from it within a training-time budget on this machine (plan.json: each "
                    "decision and its reason) and write an experiment file that "
                    "kerasmed-train runs (experiment.json).")
    parser.add_argument("root", help="dataset folder")
    parser.add_argument("--dataset", default="folder",
                        help="reader of the folder's layout (default: folder, images/ and "
                             "masks/ paired by stem)")
    parser.add_argument("--budget", type=bounded(float, 0, low_open=True), default=10.0,
                        metavar="MINUTES",
                        help="minutes the whole plan may train, folds and post-processing "
                             "included (default 10)")
    parser.add_argument("--folds", type=bounded(int, 1), metavar="K",
                        help="folds of the cross-validation (1: a single run; default: as "
                             "many as the budget affords)")
    parser.add_argument("--output", default=None,
                        help="folder for the plan (default: plans/<dataset folder name>)")
    parser.add_argument("--seed", type=int, default=0, help="the experiment's seed")
    parser.add_argument("--images-dir", default=None, help="folder reader: image folder")
    parser.add_argument("--masks-dir", default=None, help="folder reader: mask folder")
    parser.add_argument("--mask-type", choices=("binary", "instances"), default=None,
                        help="folder reader: the masks hold instance labels (nuclei); "
                             "foreground is label > 0")
    add_verbose(parser)
    return parser


def plan_main(argv=None) -> int:
    """Run ``kerasmed-plan``; returns 0, or 2 for bad input or a budget that cannot train a
    useful model (the message gives the budget needed)."""
    parser = _plan_parser()
    args = parser.parse_args(argv)
    quiet(args.verbose)
    from pathlib import Path

    from kerasmed.api import plan

    try:
        planned = plan(args.root, args.budget, dataset=args.dataset, folds=args.folds,
                       output=args.output, seed=args.seed, images_dir=args.images_dir,
                       masks_dir=args.masks_dir, mask_type=args.mask_type)
    except BAD_INPUT as err:
        return bad_input("kerasmed-plan", err)
    except KeyboardInterrupt as interrupt:
        return interrupted("kerasmed-plan", interrupt, "its files are written only at the end")
    print("\n".join(planned.table()))
    print(f"kerasmed-plan: expected {planned.expected_minutes:.1f} of {args.budget:g} min; "
          f"train with: kerasmed-train {Path(planned.output) / 'experiment.json'}")
    return EXIT_CODES["done"]
