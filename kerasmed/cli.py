"""Command-line entry points: ``kerasmed-train``."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["train_main"]


def _train_parser():
    parser = argparse.ArgumentParser(
        prog="kerasmed-train",
        description="Train a kerasmed experiment file. Each run writes a new directory under "
                    "--output with the config, history.csv, plots, checkpoints and summary.json.")
    parser.add_argument("config", help="experiment file (JSON), e.g. experiments/quickstart.json")
    parser.add_argument("--output", default="runs",
                        help="folder that receives the run directory (default: runs)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a key of the experiment, VALUE in JSON "
                             "(e.g. --set training.epochs=2); repeatable")
    return parser


def train_main(argv=None) -> int:
    """Run ``kerasmed-train``; returns the exit status (0 done, 2 bad input, 130 interrupted)."""
    args = _train_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Imported here so that --help answers without loading TensorFlow.
    from kerasmed.config import ConfigError, load_config
    from kerasmed.data.io import ImageReadError
    from kerasmed.data.readers import DatasetLayoutError
    from kerasmed.training.trainer import read_summary, train

    try:
        config = load_config(args.config, args.overrides)
        run_dir = train(config, args.output, config_path=args.config)
    except (ConfigError, DatasetLayoutError, ImageReadError, FileExistsError) as err:
        print(f"kerasmed-train: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kerasmed-train: interrupted; the run directory keeps the epochs completed",
              file=sys.stderr)
        return 130
    summary = read_summary(run_dir)
    best = summary.get("best")
    if best:
        print(f"kerasmed-train: best {best['monitor']} = {best['value']:.4f} at epoch "
              f"{best['epoch']}; outputs in {run_dir}")
    return 0 if summary["status"] in ("completed", "stopped") else 1


if __name__ == "__main__":
    sys.exit(train_main())
