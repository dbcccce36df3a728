"""``kerasmed-eval``: per-image (segmentation) or per-class (classification) figures of a run."""

from __future__ import annotations

from kerasmed.cli._common import (BAD_INPUT, EXIT_CODES, bad_input, bounded, inference_parser,
                                  interrupted, quiet)


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
    # Light: Postprocess's module loads no Keras, so --help stays fast.
    from kerasmed.evaluation.objects import (DISTANCE_FOREGROUND, INSTANCE_CHOICES,
                                             PROBABILITY_FOREGROUND, postprocess_defaults)
    parser.add_argument("--instances", choices=INSTANCE_CHOICES, default=None,
                        help="also score objects (AJI, object F1, object Dice) against instance "
                             "labels: on/off, or the kind of output to split into objects "
                             "(default: the run's postprocess.instances, auto: on for "
                             "distance-map runs and instance-label datasets such as GlaS)")
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
    from kerasmed.evaluation.choices import UNCERTAINTY_METHODS
    parser.add_argument("--uncertainty", choices=UNCERTAINTY_METHODS, default=None,
                        help="also map each pixel's uncertainty (predictive entropy and "
                             "variance) over test-time augmentations or Monte Carlo dropout "
                             "passes; per-image means in per_image.csv, maps beside the "
                             "overlays")
    parser.add_argument("--samples", type=bounded(int, 1), default=8,
                        help="--uncertainty mc_dropout: stochastic passes per image (default 8)")
    from kerasmed.evaluation.choices import DEFAULT_TOLERANCE_PIXELS
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
    from kerasmed.api import evaluate

    try:
        evaluation = evaluate(
            args.target, args.data, dataset=args.dataset, subsets=args.subsets,
            images_dir=args.images_dir, masks_dir=args.masks_dir, mask_type=args.mask_type,
            classes=args.classes, output=args.output, overlays=args.overlays,
            instances=args.instances, foreground_threshold=args.foreground_threshold,
            watershed_h=args.h, min_size=args.min_size, uncertainty=args.uncertainty,
            samples=args.samples, spacing=args.spacing, spacing_unit=args.spacing_unit,
            nsd_tolerance=args.nsd_tolerance, include_background=args.include_background,
            checkpoint=args.checkpoint, mode=args.mode, tta=args.tta, threshold=args.threshold,
            normalization=args.normalization, ensemble=args.ensemble)
    except BAD_INPUT as err:
        return bad_input("kerasmed-eval", err)
    except KeyboardInterrupt as interrupt:
        return interrupted("kerasmed-eval", interrupt, "no evaluation folder was kept")
    print(_closing_line(evaluation.summary, evaluation.path))
    return EXIT_CODES["done"]


def _closing_line(summary, out_dir) -> str:
    """The scores of an evaluation in one line (a classifier's report, or each pixel score's
    mean and std with the object, class and calibration figures it has); an undefined figure
    (null in summary.json) shows as n/a."""
    def f(value):
        return "n/a" if value is None else f"{value:.4f}"

    if "accuracy" in summary:
        return (f"kerasmed-eval: {summary['images']} images; accuracy "
                f"{f(summary['accuracy'])}, macro F1 {f(summary['macro_f1'])}, mean AUC "
                f"{f(summary['mean_auc'])}, ECE {f(summary['ece'])}; outputs in {out_dir}")
    from kerasmed.evaluation.objects import SUMMARY_OBJECT_SCORES
    from kerasmed.evaluation.scores import PIXEL_SCORES

    objects = "aji" in summary
    scores = [*PIXEL_SCORES, *(SUMMARY_OBJECT_SCORES if objects else ()),
              *(["uncertainty"] if "uncertainty" in summary else [])]
    return (f"kerasmed-eval: {summary['images']} images; "
            + ", ".join(f"{k} {f(summary[k]['mean'])} ± {f(summary[k]['std'])}"
                        for k in scores)
            + f" (distances in {summary['distance_unit']})"
            + (f"; pooled object F1 {f(summary['object_f1_pooled']['value'])}, pooled PQ "
               f"{f(summary['pq_pooled']['pq'])}" if objects else "")
            + ("; classes " + ", ".join(f"{k} Dice {f(summary['averages'][k]['dice'])}"
                                        for k in summary["averages"])
               if "averages" in summary else "")
            + (f"; ECE {f(summary['ece'])}" if "ece" in summary else "")
            + f"; outputs in {out_dir}")
