"""``kerasmed-predict``: a mask PNG for each image, at the image's own size."""

from __future__ import annotations

import sys

from kerasmed.cli._common import (EXIT_CODES, bad_input, bounded, inference_parser,
                                  interrupted, quiet, staged_output, write_png)


def predict_main(argv=None) -> int:
    """Run ``kerasmed-predict``: a mask PNG (0/255) for each image, at the image's own size."""
    parser = inference_parser(
        "kerasmed-predict",
        "Predict masks for new images of any size with a run's checkpoint or a .keras model.")
    parser.add_argument("target", help="run directory, k-fold parent folder (its folds "
                                       "averaged) or .keras model file")
    parser.add_argument("images", nargs="+", help="image files or folders of images")
    parser.add_argument("--output", required=True, help="folder for the masks")
    parser.add_argument("--overlap", type=bounded(float, 0, 1, high_open=True), default=0.5,
                        help="tile overlap for --mode tile (default 0.5)")
    parser.add_argument("--probabilities", action="store_true",
                        help="also write the foreground probability as a 16-bit PNG")
    from kerasmed.data.io import ON_ERROR  # light: no Keras, so --help stays fast
    parser.add_argument("--on-error", choices=ON_ERROR, default="raise",
                        help="an unreadable image: stop and write nothing (raise, default), or "
                             "predict every readable image and list the others (skip)")
    args = parser.parse_args(argv)
    quiet(args.verbose)
    from pathlib import Path

    import numpy as np

    from kerasmed.api import iter_predictions
    from kerasmed.data.io import image_paths
    from kerasmed.experiment import ConfigError

    try:
        paths = image_paths(args.images)
    except ValueError as err:
        return bad_input("kerasmed-predict", err, "; nothing was written")
    out = Path(args.output)
    targets = {p: out / f"{p.stem}.png" for p in paths}
    clashes = [str(t) for t in targets.values() if t.exists()]
    if clashes:
        return bad_input("kerasmed-predict", f"refusing to overwrite {', '.join(clashes[:5])}"
                         + (" ..." if len(clashes) > 5 else ""))
    if len(set(targets.values())) < len(targets):
        return bad_input("kerasmed-predict", "two input images share a file stem")
    skipped = []
    try:
        predictions = iter_predictions(
            args.target, paths, checkpoint=args.checkpoint, mode=args.mode, tta=args.tta,
            threshold=args.threshold, normalization=args.normalization,
            ensemble=args.ensemble, overlap=args.overlap, on_error=args.on_error,
            skipped=skipped)
        # Masks are moved into place only when every image is done: an unreadable image (with
        # --on-error raise) or a full disk leaves nothing half-written.
        with staged_output(out, ".kerasmed-predict-") as staging:
            for p in predictions:
                prob = p.probabilities
                scale = 255 if prob.shape[-1] == 1 else 1  # class indices stay as they are
                write_png(staging / targets[p.image].name, (p.mask * scale).astype(np.uint8))
                if args.probabilities and prob.shape[-1] == 1:
                    write_png(staging / f"{p.image.stem}_prob.png",
                              (np.clip(prob[..., 0], 0, 1) * 65535).astype(np.uint16))
    except (ConfigError, OSError) as err:
        return bad_input("kerasmed-predict", err, "; nothing was written")
    except KeyboardInterrupt as interrupt:
        return interrupted("kerasmed-predict", interrupt, "nothing was written")
    done = len(targets) - len(skipped)
    print(f"kerasmed-predict: {done} masks in {out}")
    if skipped:
        print(f"kerasmed-predict: skipped {len(skipped)} unreadable image(s):\n  "
              + "\n  ".join(f"{p}: {reason}" for p, reason in skipped), file=sys.stderr)
    return EXIT_CODES["done"]

