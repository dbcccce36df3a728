"""kerasmed's commands as Python functions, for notebooks and scripts.

Each ``kerasmed-*`` command is a thin wrapper over one function here; the function does the
work and returns objects instead of printing: a ``Run`` (its folder, summary, history and
``plot()``), an ``Evaluation`` (per-image table, summary and ``show()``), predicted masks as
arrays, a comparison table, a ``Plan``. Arguments mirror the command-line flags
(``--images-dir`` is ``images_dir``). Bad input raises the exceptions the commands turn into
one-line messages (``ConfigError``, ``ValueError``, ``OSError``, ``PlanError``...);
docs/api.md lists the functions.

Keras is imported only when a function runs, so ``import kerasmed`` stays quick.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Run", "Evaluation", "Comparison", "Prediction", "Heatmap", "train", "resume",
           "evaluate", "compare", "predict", "iter_predictions", "explain", "export", "plan",
           "tune", "Tuning", "load_run"]


def _figure_of_pngs(pngs, columns=3, size=3.2):
    """A matplotlib figure showing the PNG files ``pngs`` in a grid, each titled with its
    name (made with pyplot for inline display, and closed so that a notebook shows it
    once)."""
    import cv2
    import matplotlib.pyplot as plt

    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in pngs]
    titles = [p.stem for p in pngs]
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows),
                             squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles):
        ax.imshow(image)
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    plt.close(fig)
    return fig


@dataclass
class Run:
    """A training run's folder (or a k-fold parent's) and what it holds."""

    path: Path

    def __post_init__(self):
        self.path = Path(self.path)

    @property
    def is_kfold(self) -> bool:
        """Whether this is a k-fold parent folder (``folds.csv``, one run per fold)."""
        return (self.path / "folds.csv").exists()

    @property
    def folds(self) -> list[Run]:
        """The fold runs of a k-fold parent, in fold order (empty for a single run)."""
        from kerasmed.experiment.trained_run import fold_dirs

        return [Run(p) for p in fold_dirs(self.path)] if self.is_kfold else []

    @property
    def summary(self) -> dict:
        """``summary.json``: status, best epoch and value, times (the parent's for k-fold)."""
        return json.loads((self.path / "summary.json").read_text())

    @property
    def config(self) -> dict:
        """The validated experiment the run trained (``config.json``)."""
        return json.loads((self.path / "config.json").read_text())

    @property
    def history(self):
        """``history.csv`` as a pandas DataFrame, one row per epoch; for a k-fold parent,
        ``folds.csv`` (each fold's best scores, their mean and std)."""
        import pandas as pd

        return pd.read_csv(self.path / ("folds.csv" if self.is_kfold else "history.csv"))

    @property
    def checkpoint(self) -> Path:
        """The best checkpoint (``best.keras``)."""
        return self.path / "best.keras"

    def plot(self, quantities=None):
        """The training curves (train and validation per quantity; every fold's for a
        k-fold parent) as one matplotlib figure, shown inline in a notebook."""
        from kerasmed.training.plots import history_figure

        runs = self.folds or [self]
        return history_figure([r.history for r in runs], quantities,
                              labels=[r.path.name for r in runs] if self.folds else None)

    def __repr__(self):
        status = self.summary.get("status", "?") if (self.path / "summary.json").exists() \
            else "no summary"
        return f"Run({str(self.path)!r}, {status})"


def load_run(path) -> Run:
    """The run (or k-fold parent) in folder ``path``; raises ``FileNotFoundError`` when the
    folder holds no run."""
    path = Path(path)
    if not (path / "config.json").exists() and not (path / "folds.csv").exists():
        raise FileNotFoundError(f"{path}: not a kerasmed run folder (no config.json)")
    return Run(path)


def train(experiment, output="runs", overrides=(), folds=None) -> Run:
    """Train an experiment as ``kerasmed-train`` does; returns the ``Run``.

    ``experiment`` is an experiment file or a dict; ``overrides`` are ``--set`` strings
    (``"training.epochs=2"``) or a ``{dotted key: value}`` dict; ``folds`` (default: the
    experiment's ``training.folds``) trains a k-fold parent. Raises ``ConfigError`` for a bad
    experiment and ``RunDiverged`` when the loss becomes non-finite.
    """
    from kerasmed.experiment import Experiment, train_kfold
    from kerasmed.experiment import train as train_run
    from kerasmed.experiment.overrides import apply_overrides
    from kerasmed.experiment.validate import validate_config

    if isinstance(overrides, dict):
        overrides = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    if isinstance(experiment, dict):
        raw = apply_overrides(json.loads(json.dumps(experiment)), overrides, "<experiment>")
        experiment = Experiment(validate_config(raw, "<experiment>"), "<experiment>")
    else:
        experiment = Experiment.from_file(experiment, overrides)
    folds = folds if folds is not None else experiment.training["folds"]
    if folds is not None:
        return Run(train_kfold(experiment, folds, output))
    return Run(train_run(experiment, output))


def resume(run) -> Run:
    """Continue an interrupted run (a folder or ``Run``) from its last checkpoint, as
    ``kerasmed-train --resume`` does; returns the ``Run``."""
    from kerasmed.experiment import resume as resume_run

    return Run(resume_run(Path(getattr(run, "path", run))))


@dataclass
class Prediction:
    """One image's prediction: the foreground probability (or class probabilities) and the
    mask (0/1, or class indices), both at the image's own size."""

    image: Path
    probabilities: object  # numpy array (H, W, C)
    mask: object  # numpy array (H, W)


def _target(target, ensemble=()):
    target = getattr(target, "path", target)
    members = [getattr(e, "path", e) for e in ensemble]
    return [target, *members] if members else target


def iter_predictions(target, images, *, checkpoint="best", mode=None, tta=False,
                     threshold=0.5, normalization=None, ensemble=(), overlap=0.5,
                     on_error="raise", skipped=None):
    """Yield a ``Prediction`` for each image file (folders are expanded) in turn, as
    ``kerasmed-predict`` computes them (the run's inference settings, its post-processing).

    ``target``: a run folder or ``Run``, a k-fold parent (its folds averaged) or a ``.keras``
    file; ``ensemble``: more runs to average with it. With ``on_error="skip"`` unreadable
    images are appended to the list ``skipped`` as ``(path, message)`` instead of raising
    ``ImageReadError``.
    """
    from kerasmed.data.io import ON_ERROR, ImageReadError, image_paths, read_image
    from kerasmed.evaluation import predict_image, to_mask
    from kerasmed.experiment import load_for_inference

    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    paths = image_paths(images)
    run = load_for_inference(_target(target, ensemble), checkpoint, mode, normalization)
    settings = run.settings
    for path in paths:
        try:
            image = read_image(path, channels=settings.channels)
        except ImageReadError as err:
            if on_error == "raise":
                raise
            if skipped is not None:
                skipped.append((path, str(err)))
            continue
        prob = predict_image(run.model, image, settings.mode, settings.normalization,
                             pad_value=settings.pad_value, overlap=overlap, tta=tta)
        yield Prediction(path, prob, run.cleaning(to_mask(prob, threshold)))


def predict(target, images, **options) -> list[Prediction]:
    """Predict every image (files or folders) with a run; returns a ``Prediction`` per
    image, in order. ``options`` are ``iter_predictions``'s."""
    return list(iter_predictions(target, images, **options))


@dataclass
class Heatmap:
    """A Grad-CAM heatmap in [0, 1] at the image's own size, for the class ``label`` (a
    class name or index, or ``"segmentation"``), computed at ``layer``."""

    image_path: Path
    image: object  # numpy array (H, W, C), as read
    label: str
    heatmap: object  # numpy array (H, W)
    layer: str

    def overlay(self):
        """An RGB panel: the image beside the image with the heatmap blended over it."""
        from kerasmed.evaluation.explain import cam_overlay

        return cam_overlay(self.image, self.heatmap)


def explain(target, images, *, classes=None, layer=None, masks=None, threshold=0.5,
            checkpoint="best") -> list[Heatmap]:
    """Grad-CAM heatmaps (classifiers: one per class) or Seg-Grad-CAM (segmentation: over
    the predicted region, or a given mask's) for each image, as ``kerasmed-explain``
    computes them. Returns a ``Heatmap`` per image and class; ``classes`` is ``--classes``
    (names or indices, comma-separated or a list), ``masks`` a folder of masks named by
    image stem (segmentation)."""
    import numpy as np

    from kerasmed.data.io import read_image, read_mask, image_paths
    from kerasmed.evaluation.explain import class_targets, grad_cam
    from kerasmed.evaluation.inference import model_input_shape, model_view
    from kerasmed.experiment import load_for_inference

    paths = image_paths(images)
    run = load_for_inference(_target(target), checkpoint)
    model, settings = run.model, run.settings
    size = model_input_shape(model)[:2]
    names = (run.experiment.class_names() if run.experiment is not None and run.is_classifier
             else None)
    count = model.outputs[-1].shape[-1]
    if isinstance(classes, (list, tuple)):
        classes = ",".join(map(str, classes))
    targets = class_targets(classes, names, count, run.is_classifier)
    out = []
    for path in paths:
        image = read_image(path, channels=settings.channels)
        x, back = model_view(image, size, settings.mode, settings.normalization,
                             settings.pad_value)
        if run.is_classifier:
            for t in targets:
                cam, used = grad_cam(model, x, t, layer=layer)
                out.append(Heatmap(path, image, names[t] if names else str(t), back(cam),
                                   used))
            continue
        if masks:
            truth = read_mask(Path(masks) / f"{path.stem}.png")
            region, _ = model_view(truth.astype(np.uint8)[..., None] * 255, size,
                                   settings.mode, "dtype_range")
            region = region[..., 0] > 0.5
        else:
            prob = model(x[None], training=False)
            prob = np.asarray(prob[-1] if len(model.outputs) > 1 else prob)
            region = (prob[0, ..., 0] > threshold) if count == 1 else \
                (prob[0].argmax(axis=-1) == targets[0])
        cam, used = grad_cam(model, x, targets[0], region.astype(np.float32), layer=layer)
        out.append(Heatmap(path, image, "segmentation", back(cam), used))
    return out


def export(target, format="savedmodel", output=None, *, checkpoint="best", images=4,
           tolerance=None) -> dict:
    """Export a run's network (``savedmodel`` or ``onnx``) as ``kerasmed-export`` does, and
    check the export against the Keras model on ``images`` validation images (random inputs
    when the run's images are not on this machine). Returns the record also written to
    ``<output>.export.json``; never overwrites (``ConfigError`` if ``output`` exists)."""
    import numpy as np

    from kerasmed.data.io import read_image
    from kerasmed.data.synthetic import SYNTHETIC_DATASETS
    from kerasmed.evaluation.inference import model_input_shape, model_view
    from kerasmed.experiment import ConfigError, load_for_inference
    from kerasmed.exporting import check_format, export_model
    from kerasmed.runfiles import remove_path, write_json_atomic

    check_format(format)  # before the model loads
    target = Path(getattr(target, "path", target))
    run = load_for_inference(target, checkpoint)
    model, settings = run.model, run.settings
    size = model_input_shape(model)
    base = target if target.is_dir() else target.parent
    out = Path(output) if output else base / "export" / (
        "model.onnx" if format == "onnx" else "model")
    if out.exists():
        raise ConfigError([f"{out}: exists; choose another --output (exports are never "
                           f"overwritten)"])
    record_path = out.parent / f"{out.name}.export.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = run.experiment.data if run.experiment is not None else None
        if data is not None and (Path(data["root"]).is_dir() or data["dataset"] in
                                 SYNTHETIC_DATASETS):
            samples = run.experiment.run_split().val[:max(1, images)]
            x = np.stack([model_view(read_image(s.image, channels=settings.channels),
                                     size[:2], settings.mode, settings.normalization,
                                     settings.pad_value)[0] for s in samples])
        else:  # a bare model, or a run whose images are not on this machine
            x = np.random.default_rng(0).random((max(1, images), *size), np.float32)
        record = export_model(model, out, format, x, tolerance)
        record = {**record, "checkpoint": str(run.checkpoint),
                  "input_shape": [None, *map(int, size)], "inference": settings.record()}
        write_json_atomic(record_path, record)
    except KeyboardInterrupt:
        # The output did not exist before (exports are never overwritten): all of it goes.
        for path in (out, record_path):
            remove_path(path)
        raise
    return record


def plan(root, budget=10.0, *, dataset="folder", folds=None, output=None, seed=0,
         images_dir=None, masks_dir=None, mask_type=None):
    """Plan an experiment for the data in ``root`` within ``budget`` minutes, as
    ``kerasmed-plan`` does: writes ``fingerprint.json``, ``plan.json`` and
    ``experiment.json`` to ``output`` (default ``plans/<root's name>``) and returns the
    ``kerasmed.planning.Plan`` (``plan.table()``, ``plan.experiment``). Raises ``PlanError``
    when the budget cannot train a useful model (with the budget needed)."""
    from kerasmed.planning import plan_experiment

    options = {k: v for k, v in (("images", images_dir), ("masks", masks_dir),
                                 ("mask_type", mask_type)) if v is not None}
    output = Path(output) if output else Path("plans") / Path(root).resolve().name
    return plan_experiment(root, dataset=dataset, options=options, budget_minutes=budget,
                           folds=folds, output=output, seed=seed)


def evaluate(target, data=None, *, dataset=None, subsets=None, images_dir="images",
             masks_dir="masks", mask_type=None, classes=None, output=None, overlays=3,
             instances=None, foreground_threshold=None, watershed_h=None, min_size=None,
             uncertainty=None, samples=8, spacing=None, spacing_unit=None, nsd_tolerance=None,
             include_background=None, checkpoint="best", mode=None, tta=False, threshold=0.5,
             normalization=None, ensemble=()) -> Evaluation:
    """Evaluate a run as ``kerasmed-eval`` does and return the ``Evaluation`` (a new
    ``eval_*`` folder under ``output``, default the run's folder).

    Segmentation: per-image scores (docs/evaluation.md), their summary and overlays of the
    best and worst cases; classification: the per-class report. ``data`` is a dataset folder
    read with ``dataset`` (default: the run's validation split); the other arguments are
    the command's options (``--watershed-h`` is ``watershed_h``, ``--subsets a,b`` is
    ``subsets=["a", "b"]``). Raises ``ValueError`` naming the option for options that do not
    apply, and removes the evaluation folder when stopped (Ctrl-C, SIGTERM).
    """
    from kerasmed.experiment import evaluation_samples, load_for_inference
    from kerasmed.runfiles import create_run_dir, remove_path

    target_path = Path(getattr(target, "path", target))
    run = load_for_inference(_target(target, ensemble), checkpoint, mode, normalization)
    if not data and run.experiment is None:
        raise ValueError("--data is required with a bare model file")
    if run.is_classifier and uncertainty:
        raise ValueError("--uncertainty maps pixels: it is for segmentation models")
    folder = {"images": images_dir, "masks": masks_dir}
    if mask_type:
        folder["mask_type"] = mask_type
    if isinstance(subsets, str):
        subsets = subsets.split(",")
    eval_samples = evaluation_samples(run.experiment, data, dataset,
                                      {"subsets": list(subsets)} if subsets else {}, folder,
                                      ensemble=run.is_ensemble)
    parent = Path(output) if output else (target_path if target_path.is_dir()
                                          else target_path.parent)
    if run.is_classifier:
        classifier_data = _classifier_dataset(run, eval_samples, classes)
    else:
        options = _segmentation_options(run, eval_samples, instances, foreground_threshold,
                                        watershed_h, min_size, include_background, spacing,
                                        spacing_unit)
    out_dir = create_run_dir(parent, "eval")
    try:
        if run.is_classifier:
            from kerasmed.evaluation.classification import evaluate_classifier

            evaluate_classifier(run.model, classifier_data, out_dir,
                                inference=run.settings.record())
        else:
            from kerasmed.evaluation.segmentation import evaluate as evaluate_segmentation

            evaluate_segmentation(run.model, eval_samples, out_dir, run.settings, tta=tta,
                                  threshold=threshold, n_overlays=overlays,
                                  uncertainty=uncertainty, n_samples=samples,
                                  cleaning=run.cleaning, nsd_tolerance=nsd_tolerance,
                                  **options)
    except BaseException:
        remove_path(out_dir)  # an evaluation is complete or absent
        raise
    return Evaluation(out_dir)


def _segmentation_options(run, samples, instances, foreground_threshold, h, min_size,
                          include_background, spacing, spacing_unit) -> dict:
    """``evaluate``'s object post-processing, class masks and pixel size for a run."""
    postprocess = run.postprocess(samples, instances, foreground_threshold=foreground_threshold,
                                  h=h, min_size=min_size)
    experiment = run.experiment
    classes = None
    if experiment is not None and experiment.data.get("mask_mode") == "classes":
        from kerasmed.evaluation.multiclass import ClassMasks

        data = experiment.data
        count = data["num_classes"] or len(data["class_values"] or ())
        classes = ClassMasks(count, data["class_values"], bool(include_background))
    if include_background is not None and classes is None:
        raise ValueError(f"--{'in' if include_background else 'ex'}clude-background is for "
                         f"class-index masks (data.mask_mode classes)")
    source = "--spacing"
    data = experiment.data if experiment is not None else {}
    if spacing is None and data.get("spacing") is not None:
        spacing, source = data["spacing"], "data.spacing"
    if spacing_unit is not None and spacing is None:
        raise ValueError("--spacing-unit names the unit of --spacing or data.spacing")
    return dict(postprocess=postprocess, classes=classes, spacing=spacing,
                spacing_source=source, spacing_unit=spacing_unit)


def _classifier_dataset(run, samples, classes):
    """The classifier's evaluation dataset: the run's own dataset settings, or for a bare
    model the model's input size and the schema's batch size."""
    from kerasmed.data.dataset import ClassificationDataset
    from kerasmed.experiment import SCHEMA

    if isinstance(classes, str):
        classes = classes.split(",")
    settings = run.settings
    if run.experiment is not None:
        return run.experiment.inference_dataset(samples,
                                                classes or run.experiment.class_names())
    return ClassificationDataset(
        samples, batch_size=SCHEMA["training"]["batch_size"].default,
        image_size=settings.image_size, channels=settings.channels, classes=classes or None,
        normalization=settings.normalization, fit=settings.fit)


@dataclass
class Tuning:
    """A tuning folder (``kerasmed-tune``): ``trials`` (``trials.csv``: each trial's values,
    score, state and run folder), ``best`` (``best.json``, or ``None`` before a trial
    completed) and ``best_experiment`` (the experiment file that reruns the best trial)."""

    path: Path

    def __post_init__(self):
        self.path = Path(self.path)

    @property
    def trials(self):
        import pandas as pd

        return pd.read_csv(self.path / "trials.csv")

    @property
    def best(self) -> dict | None:
        path = self.path / "best.json"
        return json.loads(path.read_text()) if path.exists() else None

    @property
    def best_experiment(self) -> Path:
        return self.path / "best_experiment.json"

    def show(self, columns=2):
        """The study's plots (optimisation history, parameter importances...) as one figure."""
        return _figure_of_pngs(sorted(self.path.glob("*.png")), columns=columns, size=4.5)


def tune(experiment=None, trials=None, output="tuning", resume=None, storage=None,
         study=None) -> Tuning:
    """Tune an experiment file's ``tune`` section with Optuna, or continue a study (``resume``:
    its folder), as ``kerasmed-tune`` does; returns the ``Tuning``. ``storage`` is a database
    URL shared by several workers (default: SQLite in the folder; docs/scaling.md). Raises
    ``ConfigError`` for a bad search space, before any trial."""
    from kerasmed.experiment.tune import tune as run_study

    if (experiment is None) == (resume is None):
        raise ValueError("give either an experiment file or --resume TUNE_DIR")
    if trials is not None and trials < 1:
        raise ValueError("--trials must be at least 1")
    return Tuning(run_study(experiment, trials, output, resume, storage, study))


@dataclass
class Comparison:
    """A comparison folder (``kerasmed-compare``'s ``compare_*``): ``table`` has one row per
    score and pair of evaluations (mean difference, bootstrap 95 % interval, Wilcoxon p,
    wins / ties / losses)."""

    path: Path
    table: object  # pandas DataFrame (comparison.csv)

    def show(self, columns=2):
        """The paired plots (one per score and pair) as one figure."""
        return _figure_of_pngs(sorted(self.path.glob("paired_*.png")), columns=columns,
                               size=4.5)


def _labels(paths) -> list[str]:
    """Short names for evaluations: the run's folder name (an ``eval_*`` folder's parent), or
    the path as given when those collide."""
    labels = []
    for p in map(Path, paths):
        folder = p if p.is_dir() else p.parent
        labels.append(folder.parent.name if folder.name.startswith("eval_") else folder.name)
    return labels if len(set(labels)) == len(labels) else [str(p) for p in paths]


def compare(evaluations, names=None, metrics=None, output="comparisons", bootstrap=10_000,
            seed=0) -> Comparison:
    """Compare evaluations of the same images image by image, as ``kerasmed-compare`` does
    (``evaluations``: ``Evaluation`` objects, ``eval_*`` folders or their ``per_image.csv``;
    ``names`` default to the runs' folders). Writes ``comparison.csv``, ``summary.json`` and
    a paired plot per score into a new ``compare_*`` folder under ``output``; returns the
    ``Comparison``. Raises ``ValueError`` naming the option at fault."""
    import re

    from kerasmed.evaluation.compare import (check_same_units, compare_tables, load_per_image,
                                             plot_paired)
    from kerasmed.runfiles import create_run_dir, remove_path, write_json_atomic

    paths = [Path(getattr(e, "path", e)) for e in evaluations]
    if len(paths) < 2:
        raise ValueError("give at least two evaluations")
    resolved = [p.resolve() for p in paths]
    if len(set(resolved)) < len(resolved):
        twice = next(str(p) for p, r in zip(paths, resolved) if resolved.count(r) > 1)
        raise ValueError(f"{twice} is given twice; compare different evaluations")
    if isinstance(names, str):
        names = names.split(",")
    names = list(names) if names else _labels(paths)
    if len(names) != len(paths) or len(set(names)) != len(names):
        raise ValueError("--names needs one distinct name per evaluation")
    if isinstance(metrics, str):
        metrics = metrics.split(",")
    tables = {n: load_per_image(p) for n, p in zip(names, paths)}
    check_same_units(dict(zip(names, paths)))
    result = compare_tables(tables, metrics, n_boot=bootstrap, seed=seed)
    out = create_run_dir(output, "compare")
    try:
        result.to_csv(out / "comparison.csv", index=False)
        for row in result.itertuples():
            pair = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{row.a}_vs_{row.b}").strip("-")
            plot_paired(tables, row.a, row.b, row.metric, out / f"paired_{row.metric}_{pair}.png")
        write_json_atomic(out / "summary.json", {
            "evaluations": dict(zip(names, map(str, paths))),
            "images": int(len(next(iter(tables.values())))), "bootstrap": bootstrap,
            "seed": seed, "rows": json.loads(result.to_json(orient="records"))})
    except BaseException:
        remove_path(out)  # a comparison is complete or absent
        raise
    return Comparison(out, result)


@dataclass
class Evaluation:
    """An evaluation folder (``kerasmed-eval``'s ``eval_*``) and what it holds."""

    path: Path
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.path = Path(self.path)

    @property
    def summary(self) -> dict:
        """``summary.json``: every score's mean and std (or a classifier's report)."""
        return json.loads((self.path / "summary.json").read_text())

    @property
    def per_image(self):
        """``per_image.csv`` (segmentation) or ``per_class.csv`` (classification) as a
        pandas DataFrame."""
        import pandas as pd

        name = "per_image.csv" if (self.path / "per_image.csv").exists() else "per_class.csv"
        return pd.read_csv(self.path / name)

    def show(self, columns=3):
        """The overlays the evaluation drew (best and worst cases by Dice; each panel:
        image, truth, prediction), or a classifier's confusion matrix, as one figure."""
        pngs = sorted((self.path / "overlays").glob("*.png")) if \
            (self.path / "overlays").is_dir() else sorted(self.path.glob("confusion*.png"))
        return _figure_of_pngs(pngs, columns=columns)

    def __repr__(self):
        return f"Evaluation({str(self.path)!r})"
