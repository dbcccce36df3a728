"""Command-line entry points: ``kerasmed-train``, ``kerasmed-eval`` and ``kerasmed-predict``."""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["train_main", "eval_main", "predict_main"]


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
    return parser


def train_main(argv=None) -> int:
    """Run ``kerasmed-train``; returns the exit status (0 done, 2 bad input, 130 interrupted).

    ``kerasmed-train CONFIG [--output DIR] [--set KEY=VALUE ...]`` starts a new run;
    ``kerasmed-train --resume RUN_DIR`` continues one.
    """
    parser = _train_parser()
    args = parser.parse_args(argv)
    if (args.config is None) == (args.resume is None):
        parser.error("give either an experiment file or --resume RUN_DIR")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Imported here so that --help answers without loading TensorFlow.
    from kerasmed.config import ConfigError, load_config
    from kerasmed.data.io import ImageReadError
    from kerasmed.data.readers import DatasetLayoutError
    from kerasmed.training.trainer import read_summary, resume, train, train_kfold

    try:
        if args.resume:
            if args.overrides:
                parser.error("--set cannot change a run being resumed")
            run_dir = resume(args.resume)
        else:
            config = load_config(args.config, args.overrides)
            if args.folds is not None:
                if args.folds < 2:
                    parser.error("--folds needs at least 2 folds")
                parent = train_kfold(config, args.folds, args.output, config_path=args.config)
                print(f"kerasmed-train: {args.folds} folds done; see {parent / 'folds.csv'}")
                return 0
            run_dir = train(config, args.output, config_path=args.config)
    except (ConfigError, DatasetLayoutError, ImageReadError, FileExistsError, ValueError) as err:
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



def _load_for_inference(target, checkpoint="best"):
    """A model and its input settings from a run directory or a ``.keras`` file.

    Returns ``(model, settings, run_config)``; ``run_config`` is ``None`` for a bare model file.
    """
    import json
    from pathlib import Path

    import keras

    import kerasmed.losses  # noqa: F401  (registers the objects a checkpoint refers to)
    import kerasmed.metrics  # noqa: F401
    import kerasmed.models  # noqa: F401
    from kerasmed.config import ConfigError

    target = Path(target)
    config = None
    if target.is_dir():
        path = target / f"{checkpoint}.keras"
        config_path = target / "config.json"
        if not path.exists() or not config_path.exists():
            raise ConfigError([f"{target}: not a kerasmed run directory with {path.name} "
                               f"and config.json"])
        config = json.loads(config_path.read_text())
    elif target.suffix == ".keras" and target.exists():
        path = target
    else:
        raise ConfigError([f"{target}: expected a run directory or a .keras model file"])
    model = keras.saving.load_model(path, compile=False)
    channels = int(model.inputs[0].shape[-1])
    data = (config or {}).get("data", {})
    # Crop- and tile-trained models see images at native scale: predict them with tiles.
    native = data.get("fit") in ("center_crop", "random_crop", "tile")
    settings = {"channels": channels, "normalization": data.get("normalization", "auto"),
                "mask_threshold": data.get("mask_threshold"),
                "mode": "tile" if native else "resize"}
    return model, settings, config


def _inference_parser(prog, description):
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="which checkpoint of a run directory to use (default: best)")
    parser.add_argument("--mode", choices=("resize", "tile"), default=None,
                        help="resize each image to the model's input, or slide overlapping "
                             "model-sized tiles at native size (default: tile for runs trained "
                             "on crops or tiles, resize otherwise)")
    parser.add_argument("--tta", action="store_true",
                        help="test-time augmentation: average over flips and rotations")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="probability above which a pixel is foreground (default 0.5)")
    parser.add_argument("--normalization", default=None,
                        help="override the run's data.normalization (dtype_range or minmax)")
    return parser


def _eval_samples(args, config):
    """The samples to evaluate: ``--data`` read with the run's reader, or the run's val split."""
    import json
    from pathlib import Path

    from kerasmed.data.readers import read_dataset
    from kerasmed.training.trainer import list_samples

    data = (config or {}).get("data", {})
    if args.data:
        kind = args.dataset or (data.get("dataset") if data.get("dataset") not in
                                (None, "synthetic_polyps") else "folder")
        options = dict(data.get("options", {})) if kind == data.get("dataset") else {}
        if kind == "folder":
            options.update(images=args.images_dir, masks=args.masks_dir)
            if args.mask_type:
                options["mask_type"] = args.mask_type
        if args.subsets:
            options["subsets"] = args.subsets.split(",")
        return read_dataset(kind, args.data, **options)
    val = set(json.loads((Path(args.target) / "split.json").read_text())["val"])
    return [s for s in list_samples(data) if str(s.image) in val]


def _postprocess(args, config, samples):
    """Object-level scoring for ``kerasmed-eval``: a ``Postprocess``, or ``None`` for pixels only.

    The run's ``postprocess`` section gives the defaults and the command line overrides them.
    ``auto`` scores objects for runs trained on distance maps (watershed) and for datasets whose
    masks hold instance labels, such as GlaS (connected components of the probability map).
    """
    from kerasmed.config import SCHEMA
    from kerasmed.evaluation import Postprocess

    settings = {k: v.default for k, v in SCHEMA["postprocess"].items()}
    settings.update((config or {}).get("postprocess", {}))
    for key in ("foreground_threshold", "h", "min_size"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    distance = (config or {}).get("data", {}).get("mask_mode") == "distance"
    choice = args.instances or {True: "on", False: "off"}.get(settings["instances"], "auto")
    if choice == "auto":
        choice = "on" if distance or any(s.mask_type == "instances" for s in samples) else "off"
    if choice == "off":
        return None
    source = choice if choice in ("distance", "probability") else \
        ("distance" if distance else "probability")
    return Postprocess(source=source, **{k: v for k, v in settings.items() if k != "instances"})


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
    parser.add_argument("--foreground-threshold", type=float, default=None,
                        help="instances: foreground above it (default 0.05 for distance maps, "
                             "0.5 for probabilities)")
    parser.add_argument("--watershed-h", dest="h", type=float, default=None,
                        help="instances from distance maps: h-maxima depth of the watershed "
                             "markers (default 0.1)")
    parser.add_argument("--min-size", type=int, default=None,
                        help="instances: remove objects smaller than this many pixels")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import json
    from pathlib import Path

    from kerasmed.config import ConfigError
    from kerasmed.data.io import ImageReadError
    from kerasmed.data.readers import DatasetLayoutError
    from kerasmed.runfiles import create_run_dir

    target = Path(args.target)
    try:
        model, settings, config = _load_for_inference(target, args.checkpoint)
        if not args.data and config is None:
            parser.error("--data is required with a bare model file")
        samples = _eval_samples(args, config)
        parent = Path(args.output) if args.output else (target if target.is_dir()
                                                        else target.parent)
        normalization = args.normalization or settings["normalization"]
        if len(model.outputs[-1].shape) == 2:  # (batch, classes): a classifier
            from kerasmed.classification import evaluate_classifier
            from kerasmed.data.dataset import ClassificationDataset

            classes = (args.classes.split(",") if args.classes else
                       json.loads((target / "split.json").read_text()).get("classes")
                       if config is not None else None)
            dataset = ClassificationDataset(
                samples, batch_size=8, image_size=model.inputs[0].shape[1:3],
                channels=settings["channels"], classes=classes, normalization=normalization,
                fit=(config or {}).get("data", {}).get("fit", "resize"))
            out_dir = create_run_dir(parent, "eval")
            summary = evaluate_classifier(model, dataset, out_dir)
            print(f"kerasmed-eval: {summary['images']} images; accuracy "
                  f"{summary['accuracy']:.4f}, macro F1 {summary['macro_f1']:.4f}, mean AUC "
                  f"{summary['mean_auc']:.4f}; outputs in {out_dir}")
            return 0
        from kerasmed.evaluation import evaluate

        postprocess = _postprocess(args, config, samples)
        out_dir = create_run_dir(parent, "eval")
        try:
            summary = evaluate(model, samples, out_dir, channels=settings["channels"],
                               normalization=normalization,
                               mask_threshold=settings["mask_threshold"],
                               mode=args.mode or settings["mode"],
                               tta=args.tta, threshold=args.threshold, n_overlays=args.overlays,
                               postprocess=postprocess)
        except BaseException:
            if not any(out_dir.iterdir()):  # nothing written yet: leave no empty folder
                out_dir.rmdir()
            raise
    except (ConfigError, DatasetLayoutError, ImageReadError, ValueError) as err:
        print(f"kerasmed-eval: error: {err}", file=sys.stderr)
        return 2
    scores = ["dice", "iou", "precision", "recall", "hd95"]
    if postprocess is not None:
        scores += ["aji", "object_f1", "object_dice"]
    print(f"kerasmed-eval: {summary['images']} images; "
          + ", ".join(f"{k} {summary[k]['mean']:.4f} ± {summary[k]['std']:.4f}" for k in scores)
          + (f"; pooled object F1 {summary['object_f1_pooled']['value']:.4f}"
             if postprocess is not None else "")
          + f"; outputs in {out_dir}")
    return 0


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
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pathlib import Path

    import cv2
    import numpy as np

    from kerasmed.config import ConfigError
    from kerasmed.data.io import IMAGE_EXTENSIONS, ImageReadError, read_image
    from kerasmed.evaluation import predict_image, to_mask

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
    try:
        model, settings, _ = _load_for_inference(args.target, args.checkpoint)
        out.mkdir(parents=True, exist_ok=True)
        for path, target in targets.items():
            image = read_image(path, channels=settings["channels"])
            prob = predict_image(model, image, args.mode or settings["mode"],
                                 args.normalization or settings["normalization"],
                                 overlap=args.overlap, tta=args.tta)
            mask = to_mask(prob, args.threshold)
            scale = 255 if prob.shape[-1] == 1 else 1  # class indices stay as they are
            cv2.imwrite(str(target), (mask * scale).astype(np.uint8))
            if args.probabilities and prob.shape[-1] == 1:
                cv2.imwrite(str(out / f"{path.stem}_prob.png"),
                            (np.clip(prob[..., 0], 0, 1) * 65535).astype(np.uint16))
    except (ConfigError, ImageReadError) as err:
        print(f"kerasmed-predict: error: {err}", file=sys.stderr)
        return 2
    print(f"kerasmed-predict: {len(targets)} masks in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(train_main())
