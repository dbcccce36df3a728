"""Command-line entry points: ``kerasmed-train``, ``kerasmed-eval``, ``kerasmed-predict``,
``kerasmed-compare``, ``kerasmed-tune``, ``kerasmed-explain`` and ``kerasmed-export``."""

from __future__ import annotations

import argparse
import errno
import os
import sys

__all__ = ["train_main", "eval_main", "predict_main", "compare_main", "tune_main",
           "explain_main", "export_main"]


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
                             "directory, with folds.csv (each fold, mean and std)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a key of the experiment, VALUE in JSON "
                             "(e.g. --set training.epochs=2); repeatable")
    _add_verbose(parser)
    return parser


EXIT_CODES = {"done": 0, "failed": 1, "bad input": 2, "diverged": 3, "interrupted": 130}


def _os_error(err: OSError) -> str:
    """One line for an expected OS error: the path and the cause, no traceback."""
    path = err.filename if err.filename is not None else ""
    cause = err.strerror or str(err)
    hints = {errno.ENOSPC: "free some space or choose another --output",
             errno.EROFS: "choose a writable --output", errno.EACCES: "check its permissions",
             errno.EEXIST: "it exists and is not a folder", errno.ENOTDIR: "a part of the path "
             "is a file, not a folder"}
    hint = hints.get(err.errno)
    return f"{path}: {cause}" + (f" ({hint})" if hint else "")


def _quiet(verbose: bool):
    """Silence third-party warnings and logs (TensorFlow, OpenCV, matplotlib...) unless
    ``--verbose``; kerasmed's own warnings always show."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    import warnings

    from kerasmed.names import KerasmedWarning

    default_format = warnings.formatwarning

    def one_line(message, category, filename, lineno, line=None):
        if issubclass(category, KerasmedWarning):  # ours: the message says it all
            return f"kerasmed: warning: {message}\n"
        return default_format(message, category, filename, lineno, line)
    warnings.formatwarning = one_line
    if verbose:
        return

    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", category=KerasmedWarning)
    if "keras" not in sys.modules:
        _import_keras_silently()
    import cv2
    if hasattr(cv2, "setLogLevel"):
        cv2.setLogLevel(0)  # silent
    import logging
    for name in ("tensorflow", "absl", "matplotlib", "PIL", "jax"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _import_keras_silently():
    """Import Keras (and its backend) with the process's stderr closed: TensorFlow's C++ start-up
    lines (oneDNN, CUDA drivers, CPU features) are written there before any log level applies."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _add_verbose(parser):
    parser.add_argument("--verbose", action="store_true",
                        help="also show third-party warnings and logs (TensorFlow, OpenCV, "
                             "matplotlib)")


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
    _quiet(args.verbose)
    # Imported here so that --help answers without loading TensorFlow.
    from kerasmed.data.io import ImageReadError
    from kerasmed.data.readers import DatasetLayoutError
    from kerasmed.experiment import ConfigError, Experiment, resume, train, train_kfold
    from kerasmed.training.trainer import RunDiverged, read_summary

    try:
        if args.resume:
            run_dir = resume(args.resume)
        else:
            experiment = Experiment.from_file(args.config, args.overrides)
            if args.folds is not None:
                parent = train_kfold(experiment, args.folds, args.output)
                print(f"kerasmed-train: {args.folds} folds done; see {parent / 'folds.csv'}")
                return 0
            run_dir = train(experiment, args.output)
    except (ConfigError, DatasetLayoutError, ImageReadError, ValueError) as err:
        print(f"kerasmed-train: error: {err}", file=sys.stderr)
        return EXIT_CODES["bad input"]
    except OSError as err:
        print(f"kerasmed-train: error: {_os_error(err)}", file=sys.stderr)
        return EXIT_CODES["bad input"]
    except RunDiverged as err:
        print(f"kerasmed-train: diverged: {err} (summary.json has the details; no checkpoint "
              f"holds non-finite weights)", file=sys.stderr)
        return EXIT_CODES["diverged"]
    except KeyboardInterrupt:
        print("kerasmed-train: interrupted; the run directory keeps the epochs completed "
              "(continue with --resume)", file=sys.stderr)
        return EXIT_CODES["interrupted"]
    summary = read_summary(run_dir)
    best = summary.get("best")
    if best:
        print(f"kerasmed-train: best {best['monitor']} = {best['value']:.4f} at epoch "
              f"{best['epoch']}; outputs in {run_dir}")
    return EXIT_CODES["done"] if summary["status"] in ("completed", "stopped") \
        else EXIT_CODES["failed"]


def _inference_parser(prog, description):
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="which checkpoint of a run directory to use (default: best)")
    parser.add_argument("--mode", choices=("resize", "pad", "tile"), default=None,
                        help="resize each image to the model's input, letterbox it (pad), or "
                             "slide overlapping model-sized tiles at native size (default: as "
                             "the run was trained: pad for data.fit pad, tile for crops and "
                             "tiles, resize otherwise)")
    parser.add_argument("--tta", action="store_true",
                        help="test-time augmentation: average over flips and rotations")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="probability above which a pixel is foreground (default 0.5)")
    parser.add_argument("--normalization", default=None,
                        help="override the run's data.normalization (dtype_range or minmax)")
    _add_verbose(parser)
    return parser


def eval_main(argv=None) -> int:
    """Run ``kerasmed-eval``: per-image (segmentation) or per-class (classification) figures."""
    parser = _inference_parser(
        "kerasmed-eval",
        "Evaluate a run's checkpoint (or a .keras model). Segmentation: Dice, IoU, precision, "
        "recall and HD95 per image at the images' own resolution (per_image.csv), their mean "
        "and standard deviation (summary.json) and overlays of the best and worst cases. "
        "Classification: per-class sensitivity, specificity, precision, F1 and ROC AUC "
        "(per_class.csv), accuracy and macro F1 (summary.json), predictions.csv and the "
        "confusion matrix.")
    parser.add_argument("target", help="run directory or .keras model file")
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
    parser.add_argument("--overlays", type=int, default=3, help="best and worst cases to draw")
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
    parser.add_argument("--samples", type=int, default=8,
                        help="--uncertainty mc_dropout: stochastic passes per image (default 8)")
    args = parser.parse_args(argv)
    _quiet(args.verbose)
    from pathlib import Path

    from kerasmed.data.io import ImageReadError
    from kerasmed.data.readers import DatasetLayoutError
    from kerasmed.experiment import ConfigError, evaluation_samples, load_for_inference
    from kerasmed.runfiles import create_run_dir

    target = Path(args.target)
    try:
        run = load_for_inference(target, args.checkpoint, args.mode, args.normalization)
        if not args.data and run.experiment is None:
            parser.error("--data is required with a bare model file")
        folder = {"images": args.images_dir, "masks": args.masks_dir}
        if args.mask_type:
            folder["mask_type"] = args.mask_type
        samples = evaluation_samples(
            run.experiment, args.data, args.dataset,
            {"subsets": args.subsets.split(",")} if args.subsets else {}, folder)
        parent = Path(args.output) if args.output else (target if target.is_dir()
                                                        else target.parent)
        if run.is_classifier:
            if args.uncertainty:
                parser.error("--uncertainty maps pixels: it is for segmentation models")
            summary, out_dir = _evaluate_classifier(run, samples, args.classes, parent)
            print(f"kerasmed-eval: {summary['images']} images; accuracy "
                  f"{summary['accuracy']:.4f}, macro F1 {summary['macro_f1']:.4f}, mean AUC "
                  f"{summary['mean_auc']:.4f}, ECE {summary['ece']:.4f}; outputs in {out_dir}")
            return 0
        from kerasmed.evaluation import evaluate

        postprocess = run.postprocess(samples, args.instances,
                                      foreground_threshold=args.foreground_threshold,
                                      h=args.h, min_size=args.min_size)
        out_dir = create_run_dir(parent, "eval")
        try:
            summary = evaluate(run.model, samples, out_dir, run.settings, tta=args.tta,
                               threshold=args.threshold, n_overlays=args.overlays,
                               postprocess=postprocess, uncertainty=args.uncertainty,
                               n_samples=args.samples)
        except BaseException:
            if not any(out_dir.iterdir()):  # nothing written yet: leave no empty folder
                out_dir.rmdir()
            raise
    except (ConfigError, DatasetLayoutError, ImageReadError, ValueError) as err:
        print(f"kerasmed-eval: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"kerasmed-eval: error: {_os_error(err)}", file=sys.stderr)
        return 2
    from kerasmed.evaluation import PIXEL_SCORES

    scores = list(PIXEL_SCORES)
    if postprocess is not None:
        scores += ["aji", "object_f1", "object_dice"]
    if args.uncertainty:
        scores += ["uncertainty"]
    print(f"kerasmed-eval: {summary['images']} images; "
          + ", ".join(f"{k} {summary[k]['mean']:.4f} ± {summary[k]['std']:.4f}" for k in scores)
          + (f"; pooled object F1 {summary['object_f1_pooled']['value']:.4f}"
             if postprocess is not None else "")
          + (f"; ECE {summary['ece']:.4f}" if "ece" in summary else "")
          + f"; outputs in {out_dir}")
    return 0


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


def predict_main(argv=None) -> int:
    """Run ``kerasmed-predict``: a mask PNG (0/255) for each image, at the image's own size."""
    parser = _inference_parser(
        "kerasmed-predict",
        "Predict masks for new images of any size with a run's checkpoint or a .keras model.")
    parser.add_argument("target", help="run directory or .keras model file")
    parser.add_argument("images", nargs="+", help="image files or folders of images")
    parser.add_argument("--output", required=True, help="folder for the masks")
    parser.add_argument("--overlap", type=float, default=0.5,
                        help="tile overlap for --mode tile (default 0.5)")
    parser.add_argument("--probabilities", action="store_true",
                        help="also write the foreground probability as a 16-bit PNG")
    parser.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                        help="an unreadable image: stop and write nothing (raise, default), or "
                             "predict every readable image and list the others (skip)")
    args = parser.parse_args(argv)
    _quiet(args.verbose)
    import shutil
    import tempfile
    from pathlib import Path

    import numpy as np

    from kerasmed.data.io import IMAGE_EXTENSIONS, ImageReadError, read_image
    from kerasmed.evaluation import predict_image, to_mask
    from kerasmed.experiment import ConfigError, load_for_inference

    paths = []
    for item in map(Path, args.images):
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        else:
            paths.append(item)
    out = Path(args.output)
    targets = {p: out / f"{p.stem}.png" for p in paths}
    clashes = [str(t) for t in targets.values() if t.exists()]
    if clashes:
        print(f"kerasmed-predict: error: refusing to overwrite {', '.join(clashes[:5])}"
              + (" ..." if len(clashes) > 5 else ""), file=sys.stderr)
        return 2
    if len(set(targets.values())) < len(targets):
        print("kerasmed-predict: error: two input images share a file stem", file=sys.stderr)
        return 2
    created = not out.exists()
    staging = None
    skipped = []
    try:
        run = load_for_inference(args.target, args.checkpoint, args.mode, args.normalization)
        model, settings = run.model, run.settings
        out.mkdir(parents=True, exist_ok=True)
        # Masks are written to a staging folder and moved into place only when every image is
        # done: an unreadable image (with --on-error raise) or a full disk leaves nothing
        # half-written.
        staging = Path(tempfile.mkdtemp(prefix=".kerasmed-predict-", dir=out))
        written = []
        for path, target in targets.items():
            try:
                image = read_image(path, channels=settings.channels)
            except ImageReadError as err:
                if args.on_error == "raise":
                    raise
                skipped.append((path, str(err)))
                continue
            prob = predict_image(model, image, settings.mode, settings.normalization,
                                 pad_value=settings.pad_value,
                                 overlap=args.overlap, tta=args.tta)
            mask = to_mask(prob, args.threshold)
            scale = 255 if prob.shape[-1] == 1 else 1  # class indices stay as they are
            _write_png(staging / target.name, (mask * scale).astype(np.uint8))
            written.append(target.name)
            if args.probabilities and prob.shape[-1] == 1:
                name = f"{path.stem}_prob.png"
                _write_png(staging / name,
                           (np.clip(prob[..., 0], 0, 1) * 65535).astype(np.uint16))
                written.append(name)
        for name in written:
            os.replace(staging / name, out / name)
    except (ConfigError, ImageReadError, OSError) as err:
        message = _os_error(err) if isinstance(err, OSError) and not isinstance(
            err, ImageReadError) else str(err)
        print(f"kerasmed-predict: error: {message}; nothing was written", file=sys.stderr)
        return 2
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
    done = len(targets) - len(skipped)
    print(f"kerasmed-predict: {done} masks in {out}")
    if skipped:
        print(f"kerasmed-predict: skipped {len(skipped)} unreadable image(s):\n  "
              + "\n  ".join(f"{p}: {reason}" for p, reason in skipped), file=sys.stderr)
    return 0


def _write_png(path, array):
    import cv2

    if not cv2.imwrite(str(path), array):
        raise OSError(errno.EIO, "OpenCV could not write the file", str(path))


def _labels(paths):
    """Short names for evaluations: the run's folder name (an ``eval_*`` folder's parent), or
    the path as given when those collide."""
    from pathlib import Path

    labels = []
    for p in map(Path, paths):
        folder = p if p.is_dir() else p.parent
        labels.append(folder.parent.name if folder.name.startswith("eval_") else folder.name)
    return labels if len(set(labels)) == len(labels) else [str(p) for p in paths]


def compare_main(argv=None) -> int:
    """Run ``kerasmed-compare``: paired per-image statistics of two or more evaluations."""
    parser = argparse.ArgumentParser(
        prog="kerasmed-compare",
        description="Compare evaluations of the same images (kerasmed-eval folders or their "
                    "per_image.csv) image by image: for each score the mean difference with a "
                    "bootstrap 95 %% confidence interval, the Wilcoxon signed-rank p-value, "
                    "wins / ties / losses (comparison.csv) and a paired plot per score.")
    parser.add_argument("evaluations", nargs="+", help="two or more eval_* folders")
    parser.add_argument("--names", help="comma-separated names (default: the runs' folders)")
    parser.add_argument("--metrics", help="comma-separated scores (default: every score the "
                                          "evaluations share)")
    parser.add_argument("--output", default="comparisons",
                        help="parent folder of the new compare_<timestamp> folder "
                             "(default: comparisons)")
    parser.add_argument("--bootstrap", type=int, default=10_000,
                        help="bootstrap resamples of the mean difference (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    args = parser.parse_args(argv)
    if len(args.evaluations) < 2:
        parser.error("give at least two evaluations")
    names = args.names.split(",") if args.names else _labels(args.evaluations)
    if len(names) != len(args.evaluations) or len(set(names)) != len(names):
        parser.error("--names needs one distinct name per evaluation")
    import json
    import re

    from kerasmed.evaluation.compare import compare_tables, load_per_image, plot_paired
    from kerasmed.runfiles import create_run_dir, write_json_atomic

    try:
        tables = {n: load_per_image(p) for n, p in zip(names, args.evaluations)}
        metrics = args.metrics.split(",") if args.metrics else None
        result = compare_tables(tables, metrics, n_boot=args.bootstrap, seed=args.seed)
        out = create_run_dir(args.output, "compare")
        result.to_csv(out / "comparison.csv", index=False)
        for row in result.itertuples():
            pair = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{row.a}_vs_{row.b}").strip("-")
            plot_paired(tables, row.a, row.b, row.metric, out / f"paired_{row.metric}_{pair}.png")
        write_json_atomic(out / "summary.json", {
            "evaluations": dict(zip(names, map(str, args.evaluations))),
            "images": int(len(next(iter(tables.values())))), "bootstrap": args.bootstrap,
            "seed": args.seed, "rows": json.loads(result.to_json(orient="records"))})
    except ValueError as err:
        print(f"kerasmed-compare: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"kerasmed-compare: error: {_os_error(err)}", file=sys.stderr)
        return 2
    for row in result.itertuples():
        print(f"{row.metric:>12} {row.a} - {row.b}: {row.mean_diff:+.4f} "
              f"[{row.ci_low:+.4f}, {row.ci_high:+.4f}], Wilcoxon p = {row.p_wilcoxon:.3g}, "
              f"{row.wins}/{row.ties}/{row.losses} wins/ties/losses (n = {row.n})")
    print(f"kerasmed-compare: outputs in {out}")
    return 0


def tune_main(argv=None) -> int:
    """Run ``kerasmed-tune``: Bayesian optimisation over an experiment's ``tune`` section."""
    parser = argparse.ArgumentParser(
        prog="kerasmed-tune",
        description="Tune an experiment with Optuna over its tune section (any key by its "
                    "dotted path; DRRMSAN-style weights that sum to a total). Every trial is a "
                    "run directory; the tuning folder holds study.db, trials.csv, "
                    "best_experiment.json and plots. Rerun with --resume to continue.")
    parser.add_argument("config", nargs="?", help="experiment file with a tune section")
    parser.add_argument("--trials", type=int, help="trials in the study (default: "
                                                   "tune.trials, else 20); a resumed study "
                                                   "runs the missing ones")
    parser.add_argument("--resume", metavar="TUNE_DIR", help="continue a study in its folder")
    parser.add_argument("--output", default="tuning",
                        help="parent of the new tuning folder (default: tuning)")
    parser.add_argument("--storage", help="Optuna database URL shared by several machines "
                                          "(default: SQLite in the tuning folder)")
    parser.add_argument("--study", help="study name in --storage (default: the experiment's)")
    _add_verbose(parser)
    args = parser.parse_args(argv)
    if (args.config is None) == (args.resume is None):
        parser.error("give either an experiment file or --resume TUNE_DIR")
    if args.trials is not None and args.trials < 1:
        parser.error("--trials must be at least 1")
    _quiet(args.verbose)
    try:
        import optuna  # noqa: F401
    except ImportError:
        print("kerasmed-tune: error: needs Optuna: pip install \"kerasmed[tune]\"",
              file=sys.stderr)
        return EXIT_CODES["bad input"]
    from kerasmed.data.io import ImageReadError
    from kerasmed.data.readers import DatasetLayoutError
    from kerasmed.experiment import ConfigError
    from kerasmed.experiment.tune import tune

    try:
        folder = tune(args.config, args.trials, args.output, args.resume, args.storage,
                      args.study)
    except (ConfigError, DatasetLayoutError, ImageReadError, ValueError) as err:
        print(f"kerasmed-tune: error: {err}", file=sys.stderr)
        return EXIT_CODES["bad input"]
    except OSError as err:
        print(f"kerasmed-tune: error: {_os_error(err)}", file=sys.stderr)
        return EXIT_CODES["bad input"]
    except KeyboardInterrupt:
        print("kerasmed-tune: interrupted; continue with --resume", file=sys.stderr)
        return EXIT_CODES["interrupted"]
    best = folder / "best.json"
    if best.exists():
        import json

        record = json.loads(best.read_text())
        print(f"kerasmed-tune: best value {record['value']:.4f} (trial {record['trial']}); "
              f"rerun it with {folder / 'best_experiment.json'}")
    print(f"kerasmed-tune: outputs in {folder}")
    return EXIT_CODES["done"]


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
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="segmentation: the predicted region is above it (default 0.5)")
    _add_verbose(parser)
    args = parser.parse_args(argv)
    _quiet(args.verbose)
    from pathlib import Path

    import numpy as np

    from kerasmed.data.io import IMAGE_EXTENSIONS, ImageReadError, read_image, read_mask
    from kerasmed.evaluation.explain import grad_cam
    from kerasmed.evaluation.inference import model_input_shape, model_view
    from kerasmed.experiment import ConfigError, load_for_inference

    paths = []
    for item in map(Path, args.images):
        paths += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS) \
            if item.is_dir() else [item]
    out = Path(args.output)
    try:
        run = load_for_inference(args.target, args.checkpoint)
        model, settings = run.model, run.settings
        size = model_input_shape(model)[:2]
        names = (run.experiment.class_names() if run.experiment is not None and
                 run.is_classifier else None)
        count = model.outputs[-1].shape[-1]
        if args.classes:
            wanted = args.classes.split(",")
            targets = [names.index(c) if names and c in names else int(c) for c in wanted]
        else:
            targets = list(range(count)) if run.is_classifier else [0 if count == 1 else 1]
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for path in paths:
            image = read_image(path, channels=settings.channels)
            x, back = model_view(image, size, settings.mode, settings.normalization,
                                 settings.pad_value)
            stem = path.stem
            if run.is_classifier:
                for t in targets:
                    cam, layer = grad_cam(model, x, t, layer=args.layer)
                    label = names[t] if names else str(t)
                    written.append(_save_cam(out / f"{stem}_gradcam_{label}.png", image,
                                             back(cam)))
                continue
            if args.masks:
                truth = read_mask(Path(args.masks) / f"{stem}.png")
                region, _ = model_view(truth.astype(np.uint8)[..., None] * 255, size,
                                       settings.mode, "dtype_range")
                region = region[..., 0] > 0.5
            else:
                prob = np.asarray(model(x[None], training=False)[-1]
                                  if len(model.outputs) > 1 else model(x[None], training=False))
                region = (prob[0, ..., 0] > args.threshold) if count == 1 else \
                    (prob[0].argmax(axis=-1) == targets[0])
            cam, layer = grad_cam(model, x, targets[0], region.astype(np.float32),
                                  layer=args.layer)
            written.append(_save_cam(out / f"{stem}_seggradcam.png", image, back(cam)))
    except (ConfigError, ImageReadError, ValueError) as err:
        print(f"kerasmed-explain: error: {err}", file=sys.stderr)
        return EXIT_CODES["bad input"]
    except OSError as err:
        print(f"kerasmed-explain: error: {_os_error(err)}", file=sys.stderr)
        return EXIT_CODES["bad input"]
    print(f"kerasmed-explain: {len(written)} heatmaps of layer {layer!r} in {out}")
    return EXIT_CODES["done"]


def _save_cam(path, image, cam):
    import cv2

    from kerasmed.evaluation.explain import cam_overlay

    panel = cam_overlay(image, cam)
    _write_png(path, cv2.cvtColor(panel, cv2.COLOR_RGB2BGR))
    return path


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
    parser.add_argument("--images", type=int, default=4,
                        help="validation images the check predicts (default 4)")
    parser.add_argument("--tolerance", type=float, default=None,
                        help="largest absolute difference accepted (default 1e-4, 1e-2 under "
                             "mixed precision)")
    _add_verbose(parser)
    args = parser.parse_args(argv)
    _quiet(args.verbose)
    from pathlib import Path

    import numpy as np

    from kerasmed.data.io import ImageReadError, read_image
    from kerasmed.evaluation.inference import model_input_shape, model_view
    from kerasmed.experiment import ConfigError, load_for_inference
    from kerasmed.export import ExportError, export_model
    from kerasmed.runfiles import write_json_atomic

    target = Path(args.target)
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
        if run.experiment is not None:
            samples = run.experiment.run_split().val[:max(1, args.images)]
            x = np.stack([model_view(read_image(s.image, channels=settings.channels),
                                     size[:2], settings.mode, settings.normalization,
                                     settings.pad_value)[0] for s in samples])
        else:
            x = np.random.default_rng(0).random((max(1, args.images), *size), np.float32)
        record = export_model(model, out, args.format, x, args.tolerance)
        write_json_atomic(out.parent / f"{out.name}.export.json",
                          {**record, "checkpoint": str(run.checkpoint),
                           "input_shape": [None, *map(int, size)],
                           "inference": settings.record()})
    except (ConfigError, ExportError, ImageReadError, ValueError) as err:
        print(f"kerasmed-export: error: {err}", file=sys.stderr)
        return EXIT_CODES["bad input"]
    except ImportError as err:
        print(f"kerasmed-export: error: {err}; ONNX export needs pip install "
              f"\"kerasmed[export]\"", file=sys.stderr)
        return EXIT_CODES["bad input"]
    except OSError as err:
        print(f"kerasmed-export: error: {_os_error(err)}", file=sys.stderr)
        return EXIT_CODES["bad input"]
    print(f"kerasmed-export: {out} ({args.format}); predictions match the Keras model's within "
          f"{record['tolerance']:g} (largest difference {record['max_abs_diff']:.3g} on "
          f"{record['images']} images)")
    return EXIT_CODES["done"]


if __name__ == "__main__":
    sys.exit(train_main())
