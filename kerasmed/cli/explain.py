"""``kerasmed-explain``: Grad-CAM / Seg-Grad-CAM heatmaps over images, as PNGs."""

from __future__ import annotations

import argparse

from kerasmed.cli._common import (BAD_INPUT, EXIT_CODES, add_verbose, bad_input, bounded,
                                  image_paths, interrupted, quiet, staged_output,
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
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best")
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

    import numpy as np

    from kerasmed.data.io import read_image, read_mask
    from kerasmed.evaluation.explain import grad_cam
    from kerasmed.evaluation.inference import model_input_shape, model_view
    from kerasmed.experiment import load_for_inference

    out = Path(args.output)
    try:
        paths = image_paths(args.images)
        run = load_for_inference(args.target, args.checkpoint)
        model, settings = run.model, run.settings
        size = model_input_shape(model)[:2]
        names = (run.experiment.class_names() if run.experiment is not None and
                 run.is_classifier else None)
        count = model.outputs[-1].shape[-1]
        targets = class_targets(args.classes, names, count, run.is_classifier)
        # Heatmaps are moved into place when every image is done: an unreadable image leaves
        # nothing half-written.
        written = []
        with staged_output(out, ".kerasmed-explain-") as staging:
            for path in paths:
                image = read_image(path, channels=settings.channels)
                x, back = model_view(image, size, settings.mode, settings.normalization,
                                     settings.pad_value)
                stem = path.stem
                if run.is_classifier:
                    for t in targets:
                        cam, layer = grad_cam(model, x, t, layer=args.layer)
                        label = names[t] if names else str(t)
                        written.append(_save_cam(staging / f"{stem}_gradcam_{label}.png",
                                                 image, back(cam)))
                    continue
                if args.masks:
                    truth = read_mask(Path(args.masks) / f"{stem}.png")
                    region, _ = model_view(truth.astype(np.uint8)[..., None] * 255, size,
                                           settings.mode, "dtype_range")
                    region = region[..., 0] > 0.5
                else:
                    prob = np.asarray(model(x[None], training=False)[-1]
                                      if len(model.outputs) > 1
                                      else model(x[None], training=False))
                    region = (prob[0, ..., 0] > args.threshold) if count == 1 else \
                        (prob[0].argmax(axis=-1) == targets[0])
                cam, layer = grad_cam(model, x, targets[0], region.astype(np.float32),
                                      layer=args.layer)
                written.append(_save_cam(staging / f"{stem}_seggradcam.png", image,
                                         back(cam)))
    except BAD_INPUT as err:
        return bad_input("kerasmed-explain", err, "; nothing was written")
    except KeyboardInterrupt as interrupt:
        return interrupted("kerasmed-explain", interrupt, "nothing was written")
    print(f"kerasmed-explain: {len(written)} heatmaps of layer {layer!r} in {out}")
    return EXIT_CODES["done"]



def class_targets(spec, names, count: int, classifier: bool) -> list[int]:
    """The output channels ``--classes`` names: comma-separated class names (of the run) or
    indices in ``0..count-1``; by default every class of a classifier, the foreground of a
    segmentation network. Raises ``ValueError`` naming the option and the bad entry."""
    if not spec:
        return list(range(count)) if classifier else [0 if count == 1 else 1]
    targets = []
    for entry in (e.strip() for e in spec.split(",")):
        if names and entry in names:
            targets.append(names.index(entry))
            continue
        try:
            index = int(entry)
        except ValueError:
            known = f"; its classes: {', '.join(names)}" if names else ""
            raise ValueError(f"--classes: {entry!r} is neither a class name of this run nor an "
                             f"index{known}") from None
        if not 0 <= index < count:
            raise ValueError(f"--classes: {index} is not an output of this network, which has "
                             f"{count} channel(s) (0-{count - 1})")
        targets.append(index)
    return targets


def _save_cam(path, image, cam):
    import cv2

    from kerasmed.evaluation.explain import cam_overlay

    panel = cam_overlay(image, cam)
    write_png(path, cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    return path

