"""Post-processing chosen on the cross-validation folds (nnU-Net's
``find_best_configuration`` and ``remove_connected_components``, Isensee et al. 2021).

Each fold's network predicts its own validation images (images it never trained on), so the
choice is made on out-of-fold predictions of every image of the dataset; an operation is kept
only where it raises the mean foreground Dice (``kerasmed.evaluation.cleaning.select_cleaning``).
The choice goes to the k-fold parent's ``postprocess.json``, which ``kerasmed-eval`` and
``kerasmed-predict`` of the parent (the folds' ensemble) apply.
"""

from __future__ import annotations

from pathlib import Path

from kerasmed.data.io import read_class_mask, read_mask
from kerasmed.evaluation.cleaning import select_cleaning
from kerasmed.evaluation.inference import predict_image, to_mask
from kerasmed.experiment.trained_run import POSTPROCESS_FILE, fold_dirs, load_for_inference
from kerasmed.experiment.schema import ConfigError
from kerasmed.runfiles import write_json_atomic

__all__ = ["out_of_fold_masks", "select_postprocessing"]

# Targets whose thresholded prediction is a mask that can be cleaned.
_CLEANABLE = ("binary", "classes")


def out_of_fold_masks(parent, checkpoint="best", threshold: float = 0.5):
    """Every fold's predicted and true masks of its own validation images.

    Returns ``(preds, truths, images)``: lists of ``(H, W)`` masks at each image's size and the
    image paths, over all folds in fold order.
    """
    import keras

    from kerasmed.data.io import read_image

    preds, truths, images = [], [], []
    for fold in fold_dirs(parent):
        run = load_for_inference(fold, checkpoint)
        data, settings = run.experiment.data, run.settings
        if data["mask_mode"] not in _CLEANABLE:
            raise ConfigError([f"{fold}: post-processing is chosen for binary and class-index "
                               f"masks, not data.mask_mode {data['mask_mode']!r}"])
        for sample in run.experiment.run_split().val:
            image = read_image(sample.image, channels=settings.channels)
            prob = predict_image(run.model, image, settings.mode, settings.normalization,
                                 pad_value=settings.pad_value)
            preds.append(to_mask(prob, threshold))
            if data["mask_mode"] == "binary":
                truth = read_mask(sample.mask, settings.mask_threshold, sample.mask_type,
                                  image.shape[:2])
            else:
                truth = read_class_mask(sample.mask, data["num_classes"], data["class_values"])
            truths.append(truth.astype(preds[-1].dtype))
            images.append(str(sample.image))
        keras.backend.clear_session()  # the next fold's model replaces this one
    return preds, truths, images


def select_postprocessing(parent, checkpoint="best") -> dict:
    """Choose the mask cleaning of a k-fold parent on its folds' validation predictions and
    write it to ``<parent>/postprocess.json``.

    Returns the record written: ``mask`` (the chosen ``postprocess.mask`` settings, all off
    when nothing helped), ``dice_without`` and ``dice_with`` (mean foreground Dice over the
    out-of-fold images), ``images`` and ``tried`` (each setting tried, its Dice, whether kept).
    """
    parent = Path(parent)
    preds, truths, images = out_of_fold_masks(parent, checkpoint)
    cleaning, tried = select_cleaning(preds, truths)
    record = {"mask": cleaning.record(), "dice_without": tried[0]["dice"],
              "dice_with": max(t["dice"] for t in tried if t["kept"]),
              "images": len(images), "checkpoint": checkpoint,
              "rule": "each operation kept only where the mean out-of-fold foreground Dice "
                      "rises (nnU-Net's choice of post-processing on the folds)",
              "tried": tried}
    write_json_atomic(parent / POSTPROCESS_FILE, record)
    return record
