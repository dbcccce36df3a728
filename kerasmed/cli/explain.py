"""``kerasmed-explain``: Grad-CAM / Seg-Grad-CAM heatmaps over images, as PNGs."""

from __future__ import annotations

import argparse

from kerasmed.cli._common import (BAD_INPUT, EXIT_CODES, add_checkpoint, add_verbose,
                                  bad_input, bounded, interrupted, quiet, staged_output,
                                  write_png)


def explain_main(argv=None) -> int:
    """Run ``kerasmed-explain``: Grad-CAM / Seg-Grad-CAM heatmaps over images, as PNGs."""
    parser = argparse.ArgumentParser(
        prog="kerasmed-explain",
        description="Grad-CAM heatmaps over images: for a classifier one per class, for a "
                    "segmentation network Seg-Grad-CAM over the predicted region (or a given "
                    "mask). Runs on the TensorFlow backend.")
    parser.add_argument("target", help="run directory or .keras model file")
    parser.add_argument("images", nargs="+", help="image files or folders of images")
    parser.add_argument("--output", required=True, help="folder for the heatmap PNGs")
    add_checkpoint(parser)
    parser.add_argument("--layer", help="layer to explain (default: the last feature map "
                                        "before the head)")
    parser.add_argument("--classes", help="classifier: comma-separated class indices or names "
                                          "(default: every class)")
    parser.add_argument("--masks", help="segmentation: a folder of masks (by image stem) whose "
                                        "region is explained instead of the predicted one")
    parser.add_argument("--threshold", type=bounded(float, 0, 1), default=0.5,
                        help="segmentation: the predicted region is above it (default 0.5)")
    add_verbose(parser)
    args = parser.parse_args(argv)
    quiet(args.verbose)
    from pathlib import Path

    import cv2

    from kerasmed.api import explain

    out = Path(args.output)
    try:
        heatmaps = explain(args.target, args.images, classes=args.classes, layer=args.layer,
                           masks=args.masks, threshold=args.threshold,
                           checkpoint=args.checkpoint)
        # Written when every image is done: an unreadable image leaves nothing half-written.
        with staged_output(out, ".kerasmed-explain-") as staging:
            for h in heatmaps:
                suffix = "seggradcam" if h.label == "segmentation" else f"gradcam_{h.label}"
                write_png(staging / f"{h.image_path.stem}_{suffix}.png",
                          cv2.cvtColor(h.overlay(), cv2.COLOR_RGB2BGR))
    except BAD_INPUT as err:
        return bad_input("kerasmed-explain", err, "; nothing was written")
    except KeyboardInterrupt as interrupt:
        return interrupted("kerasmed-explain", interrupt, "nothing was written")
    print(f"kerasmed-explain: {len(heatmaps)} heatmaps of layer {heatmaps[0].layer!r} in "
          f"{out}")
    return EXIT_CODES["done"]
