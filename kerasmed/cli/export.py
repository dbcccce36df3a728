"""``kerasmed-export``: a run's model as a SavedModel or ONNX, checked against Keras."""

from __future__ import annotations

import argparse

from kerasmed.cli._common import (BAD_INPUT, EXIT_CODES, add_verbose, bad_input, bounded,
                                  interrupted, quiet)


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
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")
    parser.add_argument("--images", type=bounded(int, 1), default=4,
                        help="validation images the check predicts (default 4)")
    parser.add_argument("--tolerance", type=bounded(float, 0, low_open=True), default=None,
                        help="largest absolute difference accepted (default 1e-4, 1e-2 under "
                             "mixed precision)")
    add_verbose(parser)
    args = parser.parse_args(argv)
    quiet(args.verbose)
    from pathlib import Path

    import numpy as np

    from kerasmed.data.io import read_image
    from kerasmed.data.synthetic import SYNTHETIC_DATASETS
    from kerasmed.evaluation.inference import model_input_shape, model_view
    from kerasmed.experiment import ConfigError, load_for_inference
    from kerasmed.export import ExportError, export_model
    from kerasmed.runfiles import remove_path, write_json_atomic

    target = Path(args.target)
    out = None
    try:
        run = load_for_inference(target, args.checkpoint)
        model, settings = run.model, run.settings
        size = model_input_shape(model)
        base = target if target.is_dir() else target.parent
        out = Path(args.output) if args.output else base / "export" / (
            "model.onnx" if args.format == "onnx" else "model")
        if out.exists():
            raise ConfigError([f"{out}: exists; choose another --output (exports are never "
                               f"overwritten)"])
        out.parent.mkdir(parents=True, exist_ok=True)
        data = run.experiment.data if run.experiment is not None else None
        if data is not None and (Path(data["root"]).is_dir() or data["dataset"] in
                                 SYNTHETIC_DATASETS):
            samples = run.experiment.run_split().val[:max(1, args.images)]
            x = np.stack([model_view(read_image(s.image, channels=settings.channels),
                                     size[:2], settings.mode, settings.normalization,
                                     settings.pad_value)[0] for s in samples])
        else:  # a bare model, or a run whose images are not on this machine
            x = np.random.default_rng(0).random((max(1, args.images), *size), np.float32)
        record = export_model(model, out, args.format, x, args.tolerance)
        write_json_atomic(out.parent / f"{out.name}.export.json",
                          {**record, "checkpoint": str(run.checkpoint),
                           "input_shape": [None, *map(int, size)],
                           "inference": settings.record()})
    except (ExportError, *BAD_INPUT) as err:
        return bad_input("kerasmed-export", err)
    except ImportError as err:
        return bad_input("kerasmed-export", err,
                         '; ONNX export needs pip install "kerasmed[export]"')
    except KeyboardInterrupt as interrupt:
        # The output did not exist before (exports are never overwritten): all of it goes.
        for path in (out, out.parent / f"{out.name}.export.json") if out else ():
            remove_path(path)
        return interrupted("kerasmed-export", interrupt, "nothing was written")
    print(f"kerasmed-export: {out} ({args.format}); predictions match the Keras model's within "
          f"{record['tolerance']:g} (largest difference {record['max_abs_diff']:.3g} on "
          f"{record['images']} images)")
    return EXIT_CODES["done"]

