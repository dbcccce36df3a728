"""``kerasmed-eval``: per-image (segmentation) or per-class (classification) figures of a run."""

from __future__ import annotations

import sys

from kerasmed.cli._common import (BAD_INPUT, EXIT_CODES, bad_input, bounded, inference_parser,
                                  inference_target, interrupted_code, quiet)
from kerasmed.signals import signal_name


def _spacing(text):
    """``--spacing``: ``ROW,COL`` or one number for square pixels, each finite and positive."""
    import argparse

    parts = text.split(",")
    if len(parts) not in (1, 2):
        raise argparse.ArgumentTypeError(f"expected ROW,COL or one number, got {text!r}")
    value = bounded(float, 0, low_open=True)
    return tuple(value(part.strip()) for part in parts)


def eval_main(argv=None) -> int:
    """Run ``kerasmed-eval``: per-image (segmentation) or per-class (classification) figures."""
    parser = inference_parser(
        "kerasmed-eval",
        "Evaluate a run's checkpoint (or a .keras model). Segmentation: Dice, IoU, precision, "
        "recall, HD95, ASSD and normalized surface Dice per image at the images' own "
        "resolution (per_image.csv; per class for class-index masks, per_class.csv; PQ, SQ, "
        "RQ, AJI and object F1 for instances), their mean and standard deviation "
        "(summary.json) and overlays of the best and worst cases (docs/evaluation.md). "
        "Classification: per-class sensitivity, specificity, precision, F1 and ROC AUC "
        "(per_class.csv), accuracy and macro F1 (summary.json), predictions.csv and the "
        "confusion matrix.")
    parser.add_argument("target", help="run directory, k-fold parent folder (its folds "
                                       "averaged) or .keras model file")
    parser.add_argument("--data", help="dataset folder (default for a run directory: its "
                                       "validation split)")
    parser.add_argument("--dataset", help="reader for --data (default: the run's, or folder)")
    parser.add_argument("--subsets", help="comma-separated subsets of --data to read, e.g. test")
    parser.add_argument("--images-dir", default="images", help="folder reader: image folder")
    parser.add_argument("--masks-dir", default="masks", help="folder reader: mask folder")
    parser.add_argument("--mask-type", choices=("binary", "instances"), default=None,
                        help="folder reader: the masks hold instance labels (nuclei), "
                             "foreground is label > 0")
    parser.add_argument("--classes", help="classification with a bare model: comma-separated "
                                          "class names in output order")
    parser.add_argument("--output", help="parent folder of the new evaluation directory "
                                         "(default: the run directory, or the model's folder)")
    parser.add_argument("--overlays", type=bounded(int, 0), default=3,
                        help="best and worst cases to draw")
    parser.add_argument("--instances", choices=("auto", "on", "off", "distance", "probability"),
                        default=None,
                        help="also score objects (AJI, object F1, object Dice) against instance "
                             "labels: on/off, or the kind of output to split into objects "
                             "(default: the run's postprocess.instances, auto: on for "
                             "distance-map runs and instance-label datasets such as GlaS)")
    # Light: Postprocess's module loads no Keras, so --help stays fast.
    from kerasmed.evaluation.objects import (DISTANCE_FOREGROUND, PROBABILITY_FOREGROUND,
                                             postprocess_defaults)
    parser.add_argument("--foreground-threshold", type=float, default=None,
                        help=f"instances: foreground above it (default: the run's "
                             f"postprocess.foreground_threshold, else {DISTANCE_FOREGROUND} for "
                             f"distance maps, {PROBABILITY_FOREGROUND} for probabilities)")
    parser.add_argument("--watershed-h", dest="h", type=float, default=None,
                        help=f"instances from distance maps: h-maxima depth of the watershed "
                             f"markers (default: the run's postprocess.h, else "
                             f"{postprocess_defaults()['h']})")
    parser.add_argument("--min-size", type=int, default=None,
                        help="instances: remove objects smaller than this many pixels")
    parser.add_argument("--uncertainty", choices=("tta", "mc_dropout"), default=None,
                        help="also map each pixel's uncertainty (predictive entropy and "
                             "variance) over test-time augmentations or Monte Carlo dropout "
                             "passes; per-image means in per_image.csv, maps beside the "
                             "overlays")
    parser.add_argument("--samples", type=bounded(int, 1), default=8,
                        help="--uncertainty mc_dropout: stochastic passes per image (default 8)")
    from kerasmed.evaluation.surface import DEFAULT_TOLERANCE_PIXELS
    parser.add_argument("--spacing", type=_spacing, default=None, metavar="ROW,COL",
                        help="pixel size (one number for square pixels): HD95, ASSD and the NSD "
                             "tolerance in its unit (default: the run's data.spacing, else the "
                             "images' TIFF resolution tags in micrometres, else pixels)")
    parser.add_argument("--spacing-unit", default=None,
                        help="name of --spacing's unit, recorded in summary.json (e.g. mm)")
    parser.add_argument("--nsd-tolerance", type=bounded(float, 0), default=None,
                        help=f"normalized surface Dice: outline points this close to the other "
                             f"outline agree, in the distances' unit (default "
                             f"{DEFAULT_TOLERANCE_PIXELS:g} pixels, times the largest pixel "
                             f"side with a spacing)")
    background = parser.add_mutually_exclusive_group()
    background.add_argument("--include-background", dest="include_background",
                            action="store_true", default=None,
                            help="class-index masks: score and average class 0 too")
    background.add_argument("--exclude-background", dest="include_background",
                            action="store_false",
                            help="class-index masks: leave class 0 out of the per-class scores "
                                 "and their averages (the default)")
    args = parser.parse_args(argv)
    quiet(args.verbose)
    from pathlib import Path

    from kerasmed.experiment import evaluation_samples, load_for_inference
    from kerasmed.runfiles import create_run_dir

    target = Path(args.target)
    try:
        run = load_for_inference(inference_target(target, args.ensemble), args.checkpoint,
                                 args.mode, args.normalization)
        if not args.data and run.experiment is None:
            parser.error("--data is required with a bare model file")
        folder = {"images": args.images_dir, "masks": args.masks_dir}
        if args.mask_type:
            folder["mask_type"] = args.mask_type
        samples = evaluation_samples(
            run.experiment, args.data, args.dataset,
            {"subsets": args.subsets.split(",")} if args.subsets else {}, folder,
            ensemble=run.is_ensemble)
        parent = Path(args.output) if args.output else (target if target.is_dir()
                                                        else target.parent)
        if run.is_classifier:
            if args.uncertainty:
                parser.error("--uncertainty maps pixels: it is for segmentation models")
            summary, out_dir = _evaluate_classifier(run, samples, args.classes, parent)
            print(f"kerasmed-eval: {summary['images']} images; accuracy "
                  f"{summary['accuracy']:.4f}, macro F1 {summary['macro_f1']:.4f}, mean AUC "
                  f"{summary['mean_auc']:.4f}, ECE {summary['ece']:.4f}; outputs in {out_dir}")
            return EXIT_CODES["done"]
        from kerasmed.evaluation import evaluate

        postprocess = run.postprocess(samples, args.instances,
                                      foreground_threshold=args.foreground_threshold,
                                      h=args.h, min_size=args.min_size)
        classes = _class_masks(run.experiment, args.include_background)
        if args.include_background is not None and classes is None:
            parser.error(f"--{'in' if args.include_background else 'ex'}clude-background is "
                         f"for class-index masks (data.mask_mode classes)")
        spacing, source = args.spacing, "--spacing"
        data = run.experiment.data if run.experiment is not None else {}
        if spacing is None and data.get("spacing") is not None:
            spacing, source = data["spacing"], "data.spacing"
        if args.spacing_unit is not None and spacing is None:
            parser.error("--spacing-unit names the unit of --spacing or data.spacing")
        out_dir = create_run_dir(parent, "eval")
        try:
            summary = evaluate(run.model, samples, out_dir, run.settings, tta=args.tta,
                               threshold=args.threshold, n_overlays=args.overlays,
                               postprocess=postprocess, uncertainty=args.uncertainty,
                               n_samples=args.samples, cleaning=run.cleaning, classes=classes,
                               spacing=spacing, spacing_source=source,
                               spacing_unit=args.spacing_unit,
                               nsd_tolerance=args.nsd_tolerance)
        except BaseException:
            if not any(out_dir.iterdir()):  # nothing written yet: leave no empty folder
                out_dir.rmdir()
            raise
    except BAD_INPUT as err:
        return bad_input("kerasmed-eval", err)
    except KeyboardInterrupt as interrupt:
        print(f"kerasmed-eval: interrupted ({signal_name(interrupt)}); an evaluation folder "
              f"is left only if its files were being written", file=sys.stderr)
        return interrupted_code(interrupt)
    from kerasmed.evaluation import PIXEL_SCORES

    scores = list(PIXEL_SCORES)
    if postprocess is not None:
        scores += ["aji", "object_f1", "object_dice", "pq"]
    if args.uncertainty:
        scores += ["uncertainty"]
    print(f"kerasmed-eval: {summary['images']} images; "
          + ", ".join(f"{k} {summary[k]['mean']:.4f} ± {summary[k]['std']:.4f}" for k in scores)
          + f" (distances in {summary['distance_unit']})"
          + (f"; pooled object F1 {summary['object_f1_pooled']['value']:.4f}, pooled PQ "
             f"{summary['pq_pooled']['pq']:.4f}" if postprocess is not None else "")
          + ("; classes " + ", ".join(f"{k} Dice {summary['averages'][k]['dice']:.4f}"
                                      for k in summary["averages"])
             if "averages" in summary else "")
          + (f"; ECE {summary['ece']:.4f}" if "ece" in summary else "")
          + f"; outputs in {out_dir}")
    return EXIT_CODES["done"]



def _class_masks(experiment, include_background):
    """The ``ClassMasks`` of a run with class-index masks (``data.mask_mode`` classes), else
    ``None``."""
    if experiment is None or experiment.data.get("mask_mode") != "classes":
        return None
    from kerasmed.evaluation.multiclass import ClassMasks

    data = experiment.data
    count = data["num_classes"] or len(data["class_values"] or ())
    return ClassMasks(count, data["class_values"], bool(include_background))


def _evaluate_classifier(run, samples, classes_arg, parent):
    """``kerasmed-eval`` of a classifier: the run's own dataset settings, or for a bare model
    the model's input size and the schema's batch size. Returns ``(summary, out_dir)``."""
    from kerasmed.data.dataset import ClassificationDataset
    from kerasmed.evaluation.classification import evaluate_classifier
    from kerasmed.experiment import SCHEMA
    from kerasmed.runfiles import create_run_dir

    settings = run.settings
    if run.experiment is not None:
        classes = classes_arg.split(",") if classes_arg else run.experiment.class_names()
        dataset = run.experiment.inference_dataset(samples, classes)
    else:
        classes = classes_arg.split(",") if classes_arg else None
        dataset = ClassificationDataset(
            samples, batch_size=SCHEMA["training"]["batch_size"].default,
            image_size=settings.image_size, channels=settings.channels, classes=classes,
            normalization=settings.normalization, fit=settings.fit)
    out_dir = create_run_dir(parent, "eval")
    return evaluate_classifier(run.model, dataset, out_dir, inference=settings.record()), out_dir

