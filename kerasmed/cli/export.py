"""``kerasmed-export``: a run's model as a SavedModel or ONNX, checked against Keras."""

from __future__ import annotations

import argparse

from kerasmed.cli._common import (BAD_INPUT, EXIT_CODES, add_checkpoint, add_verbose,
                                  bad_input, bounded, interrupted, quiet)


def export_main(argv=None) -> int:
    """Run ``kerasmed-export``: a run's model as a SavedModel or ONNX, checked against Keras."""
    parser = argparse.ArgumentParser(
        prog="kerasmed-export",
        description="Export a run's checkpoint with Keras' model.export (TensorFlow SavedModel, "
                    "or ONNX through tf2onnx) and check that the exported model predicts as the "
                    "Keras model does on a few of the run's validation images.")
    parser.add_argument("target", help="run directory or .keras model file")
    parser.add_argument("--format", choices=("savedmodel", "onnx"), required=True)
    parser.add_argument("--output", help="where to write it (default: <run>/export/model or "
                                         "model.onnx); never overwritten")
    add_checkpoint(parser)
    parser.add_argument("--images", type=bounded(int, 1), default=4,
                        help="validation images the check predicts (default 4)")
    parser.add_argument("--tolerance", type=bounded(float, 0, low_open=True), default=None,
                        help="largest absolute difference accepted (default 1e-4, 1e-2 under "
                             "mixed precision)")
    add_verbose(parser)
    args = parser.parse_args(argv)
    quiet(args.verbose)
    from kerasmed.api import export
    from kerasmed.exporting import ExportError

    try:
        record = export(args.target, args.format, args.output, checkpoint=args.checkpoint,
                        images=args.images, tolerance=args.tolerance)
    except (ExportError, *BAD_INPUT) as err:
        return bad_input("kerasmed-export", err)
    except ImportError as err:
        return bad_input("kerasmed-export", err,
                         '; ONNX export needs pip install "kerasmed[export]"')
    except KeyboardInterrupt as interrupt:
        return interrupted("kerasmed-export", interrupt, "nothing was written")
    out = record["path"]
    print(f"kerasmed-export: {out} ({args.format}); predictions match the Keras model's within "
          f"{record['tolerance']:g} (largest difference {record['max_abs_diff']:.3g} on "
          f"{record['images']} images)")
    return EXIT_CODES["done"]

