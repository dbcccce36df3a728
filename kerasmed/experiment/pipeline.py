"""One pipeline from a validated experiment to what every command needs.

``Experiment`` owns the path from an experiment file to data, model and run, so that training,
k-fold runs, evaluation and prediction (and every later tool) see the same thing: the samples
(generated datasets made on first use), the split (new, or as a run recorded it), the
training / validation / inference datasets, the built and checked model, its compile contract
(``kerasmed.training.compile``) and the ``InferenceSettings`` that show a trained network images
exactly as training did.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from kerasmed.data.dataset import ClassificationDataset, SegmentationDataset
from kerasmed.data.readers import DatasetLayoutError, read_dataset
from kerasmed.data.splits import make_split, split_from_record
from kerasmed.data.synthetic import SYNTHETIC_DATASETS
from kerasmed.evaluation.inference import InferenceSettings
from kerasmed.evaluation.cleaning import MaskCleaning
from kerasmed.evaluation.objects import SOURCES, Postprocess, postprocess_defaults
from kerasmed.experiment.files import load_config, read_experiment
from kerasmed.experiment.schema import SCHEMA, ConfigError
from kerasmed.experiment.validate import validate_config
from kerasmed.models.registry import build, task_of
from kerasmed.training.compile import Compilation

__all__ = ["Experiment", "Split", "list_samples"]


def list_samples(data: dict):
    """The samples of the dataset described by an experiment's ``data`` section."""
    root = Path(data["root"])
    if data["dataset"] in SYNTHETIC_DATASETS:
        SYNTHETIC_DATASETS[data["dataset"]](root, **data["synthetic"])
        return read_dataset("folder", root, groups=data["groups"])
    return read_dataset(data["dataset"], root, groups=data["groups"], **data["options"])


@dataclass
class Split:
    """The training and validation samples and the record ``split.json`` keeps of them."""

    train: list
    val: list
    record: dict


class Experiment:
    """A validated experiment and everything derived from it.

    Build one with ``Experiment.from_file(path, overrides)``, ``Experiment(config, where)`` or,
    for a trained run, ``Experiment.from_run(run_dir)`` (its ``config.json`` and
    ``split.json``). Errors in the data or the model are ``ConfigError`` naming ``where``.
    """

    def __init__(self, config: dict, where: str = "<config>", source=None, run_dir=None):
        self.config = config
        self.where = str(where)
        self.source = None if source is None else Path(source)
        self.run_dir = None if run_dir is None else Path(run_dir)
        self._samples = None

    # ----------------------------------------------------------------------------- creation

    @classmethod
    def from_file(cls, path, overrides=()) -> Experiment:
        """The experiment file ``path`` with ``--set`` style ``overrides``, validated."""
        return cls(load_config(path, overrides), where=path, source=path)

    @classmethod
    def from_run(cls, run_dir, preflight: bool = False) -> Experiment:
        """The experiment a run directory was trained with (its ``config.json``); with
        ``preflight``, also checked against this machine as for training (``--resume``)."""
        run_dir = Path(run_dir)
        path = run_dir / "config.json"
        if not path.exists():
            raise ConfigError([f"{run_dir}: not a kerasmed run directory (no config.json)"])
        # By default the saved config is checked, not this machine: the run is usable anywhere.
        return cls(validate_config(read_experiment(path), str(path), preflight=preflight),
                   where=path, run_dir=run_dir)

    # ---------------------------------------------------------------------------- the facts

    @property
    def task(self) -> str:
        """``"segmentation"`` or ``"classification"``: the network's task."""
        return task_of(self.config["model"]["name"])

    @property
    def data(self) -> dict:
        return self.config["data"]

    @property
    def training(self) -> dict:
        return self.config["training"]

    def _error(self, section, err):
        return ConfigError([f"{self.where}: {section}: {err}"])

    # ----------------------------------------------------------------------- samples, split

    def samples(self) -> list:
        """Every sample of the experiment's dataset (a generated one is made on first use)."""
        if self._samples is None:
            try:
                self._samples = list_samples(self.data)
            except (ValueError, DatasetLayoutError) as err:
                raise self._error("data", err) from err
        return self._samples

    def split(self, record=None, fold=None) -> Split:
        """The training and validation samples: as ``record`` (a ``split.json``) gives them,
        fold ``i`` of a group-aware ``k``-fold split (``fold=(k, i)``), or a new split holding
        out ``data.val_fraction`` of the groups."""
        samples = self.samples()
        try:
            if record is not None:
                parts = split_from_record(samples, record, parts=("train", "val"))
            elif fold is not None:
                parts, record = make_split(samples, "kfold", seed=self.config["seed"], k=fold[0],
                                           fold=fold[1])
            else:
                parts, record = make_split(samples, "fraction", seed=self.config["seed"],
                                           val_fraction=self.data["val_fraction"])
        except (ValueError, DatasetLayoutError) as err:
            raise self._error("data", err) from err
        return Split(parts["train"], parts["val"], record)

    def run_split(self) -> Split:
        """The split a trained run recorded in its ``split.json``."""
        if self.run_dir is None:
            raise ValueError("run_split needs an experiment made with Experiment.from_run")
        return self.split(json.loads((self.run_dir / "split.json").read_text()))

    def class_names(self, samples=None) -> list | None:
        """Classification: the class names, from ``data.classes``, the run's ``split.json`` or
        the labels of ``samples``; ``None`` for segmentation."""
        if self.task != "classification":
            return None
        if self.data["classes"]:
            return list(self.data["classes"])
        if samples is None and self.run_dir is not None:
            recorded = json.loads((self.run_dir / "split.json").read_text()).get("classes")
            if recorded:
                return recorded
        return sorted({s.label for s in (samples if samples is not None else self.samples())})

    # ----------------------------------------------------------------------------- the model

    def build_model(self, classes=None):
        """The network at the experiment's input size, checked against the experiment: its
        monitor is a column the run reports, its loss weights name its outputs, and
        (segmentation) the loader's targets have as many channels as the network predicts.
        Returns an uncompiled ``keras.Model``."""
        params = dict(self.config["model"]["params"])
        if classes is not None:
            params.setdefault("classes", len(classes))  # a classifier has one output per class
        input_shape = (*self.data["image_size"], self.data["channels"])
        try:
            model = build(self.config["model"]["name"], input_shape=input_shape, **params)
        except (TypeError, ValueError) as err:
            raise self._error("model", err) from err
        self._check_compilation(model, classes)
        if classes is None:
            self._check_target_channels(model)
        return model

    def _check_compilation(self, model, classes=None):
        """The compile contract fits the model: the monitor is a column the run reports, the
        loss weights name its outputs."""
        compilation = self.compilation(model)
        try:
            compilation.loss_weights()
        except ValueError as err:
            raise ConfigError([f"{self.where}: training.loss_weights: {err}"]) from err
        monitor = self.training["monitor"]
        valid = compilation.history_columns(classes)
        if monitor not in valid:
            raise ConfigError([f"{self.where}: training.monitor: {monitor!r} is not "
                               f"a column this run reports; choose one of {', '.join(valid)}"])

    def _check_target_channels(self, model):
        """The targets the loader makes must have as many channels as the model predicts."""
        data = self.data
        mode, one_hot = data["mask_mode"], data["one_hot"]
        out = model.outputs[-1].shape[-1]
        hint = ""
        if mode == "classes" and not one_hot:
            expected = None  # sparse indices fit any number of output channels
        elif mode == "classes":
            # None when neither is given: the loader reports that itself.
            expected = data["num_classes"] or (len(data["class_values"])
                                               if data["class_values"] else None)
        elif mode == "binary":
            expected = 2 if one_hot else 1
            hint = ("" if one_hot else " (or data.one_hot: true for a two-class softmax head)")
        else:
            expected = 1
        if expected is not None and out != expected:
            raise ConfigError([f"{self.where}: data: mask_mode {mode!r} gives {expected}-channel "
                               f"targets but model {self.config['model']['name']!r} predicts "
                               f"{out} channel(s); set model.params.classes={expected}{hint}"])

    def compilation(self, model, steps_per_epoch: int = 1) -> Compilation:
        """The compile contract of ``model`` under this experiment
        (``kerasmed.training.compile``): optimizer, schedule, losses, metrics, the callbacks
        they imply and the history columns they produce."""
        return Compilation.for_experiment(self.config, model, steps_per_epoch)

    def compile(self, model, steps_per_epoch: int):
        """Compile ``model`` with the experiment's optimizer, schedule, loss and metrics (its
        compile contract, which the trainer then reuses). Returns the model."""
        return self.compilation(model, steps_per_epoch).compile(model)

    # -------------------------------------------------------------------------- the datasets

    def _common(self, batch_size=None):
        data = self.data
        return dict(batch_size=batch_size or self.training["batch_size"],
                    image_size=data["image_size"], channels=data["channels"],
                    normalization=data["normalization"], cache=data["cache"], fit=data["fit"],
                    on_error=data["on_error"], workers=data["workers"],
                    use_multiprocessing=data["use_multiprocessing"])

    @staticmethod
    def _target_size(model, image_size):
        """The (last) output's ``[height, width]`` where it differs from the input's
        (valid-padded networks predict a centre window), else ``None``."""
        size = tuple(model.outputs[-1].shape[1:3])
        if len(size) != 2 or None in size or list(size) == list(image_size):
            return None
        return size

    def _maker(self, model, classes):
        data = self.data
        if classes is not None:
            return functools.partial(ClassificationDataset, classes=classes, **self._common())
        return functools.partial(
            SegmentationDataset, mask_threshold=data["mask_threshold"],
            mask_mode=data["mask_mode"], num_classes=data["num_classes"],
            class_values=data["class_values"], one_hot=data["one_hot"],
            distance_normalize=data["distance_normalize"],
            target_size=self._target_size(model, data["image_size"]),
            outputs=model.output_names if len(model.output_names) > 1 else None,
            **self._patches(), **self._common())

    def _patches(self):
        """The random-patch settings, for ``data.fit: "patches"`` only."""
        data = self.data
        if data["fit"] != "patches":
            return {}
        return dict(patches_per_epoch=data["patches_per_epoch"],
                    foreground_share=data["foreground_share"])

    def datasets(self, model, split: Split, classes=None):
        """The training and validation ``PyDataset`` of the experiment's task for ``model``."""
        make = self._maker(model, classes)
        try:
            train_ds = make(split.train, shuffle=True, seed=self.config["seed"],
                            augment=self.data["augmentation"],
                            passes_per_epoch=self.data["passes_per_epoch"])
            val_ds = make(split.val, shuffle=False)
        except ValueError as err:
            raise self._error("data", err) from err
        return train_ds, val_ds

    def inference_dataset(self, samples, classes):
        """A classifier's evaluation dataset: the samples read, fitted and normalised as the
        validation set was in training, with the training batch size."""
        try:
            return ClassificationDataset(samples, classes=classes,
                                         **{**self._common(), "cache": False})
        except ValueError as err:
            raise self._error("data", err) from err

    # ------------------------------------------------------------------------------ inference

    def inference_settings(self, mode=None, normalization=None) -> InferenceSettings:
        """How images reach the trained network: the run's fit, size, channels and
        normalisation (``mode`` or ``normalization`` given override the run's)."""
        data = self.data
        return InferenceSettings(fit=data["fit"], image_size=tuple(data["image_size"]),
                                 channels=data["channels"],
                                 normalization=normalization or data["normalization"],
                                 mask_threshold=data["mask_threshold"], mode=mode)

    def postprocess(self, samples, instances=None, **overrides) -> Postprocess | None:
        """Object scoring for evaluation: a ``Postprocess``, or ``None`` for pixels only.

        The experiment's ``postprocess`` section gives the settings and ``overrides`` (not
        ``None``) replace them. ``instances`` (or the section's) ``auto`` scores objects for
        runs trained on distance maps (watershed) and for datasets whose masks hold instance
        labels, such as GlaS (connected components); ``on``/``off``, or the kind of output.
        """
        settings = dict(self.config["postprocess"])
        settings.update((k, v) for k, v in overrides.items() if v is not None)
        return postprocess_for(settings, samples, instances,
                               distance=self.data["mask_mode"] == "distance")

    def mask_cleaning(self) -> MaskCleaning:
        """How predicted masks are cleaned before scoring or writing: the ``postprocess.mask``
        section (chosen on the folds by ``postprocess.select``, or set by hand)."""
        return MaskCleaning(**self.config["postprocess"]["mask"])


_POSTPROCESS_KEYS = tuple(SCHEMA["postprocess"])
# The section's keys that configure objects (Postprocess); "mask" and "select" clean pixels.
_OBJECT_SETTINGS = tuple(postprocess_defaults())


def postprocess_for(settings: dict, samples, instances=None, distance=False):
    """``Postprocess`` (or ``None``) from a ``postprocess`` section's ``settings`` (a setting
    left out: its default, ``Postprocess``'s own; ``instances``: auto), the evaluated
    ``samples`` and an ``instances`` choice that overrides it; see ``Experiment.postprocess``.
    ``distance``: the network regresses distance maps."""
    unknown = set(settings) - set(_POSTPROCESS_KEYS)
    if unknown:
        raise ValueError(f"unknown postprocess settings {sorted(unknown)}")
    choice = instances or {True: "on", False: "off"}.get(settings.get("instances"), "auto")
    if choice == "auto":
        choice = "on" if distance or any(s.mask_type == "instances" for s in samples) else "off"
    if choice == "off":
        return None
    source = choice if choice in SOURCES else \
        ("distance" if distance else "probability")
    return Postprocess(source=source, **{k: v for k, v in settings.items()
                                         if k in _OBJECT_SETTINGS})
