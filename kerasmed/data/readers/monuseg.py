"""MoNuSeg: H&E tiles with Aperio XML nucleus outlines, grouped by TCGA patient."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from kerasmed.data.io import IMAGE_EXTENSIONS
from kerasmed.data.readers.base import DatasetLayoutError, Sample, _list_images
from kerasmed.data.readers.pairing import _by_stem, _pair


_TCGA_PATIENT = re.compile(r"^(TCGA-[A-Z0-9]{2}-[A-Z0-9]{4})", re.IGNORECASE)


def _outline_files(folder: Path) -> dict[str, Path]:
    # By stem; _pair puts the samples in natural order.
    return _by_stem(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                    and p.suffix.lower() == ".xml")


def _monuseg_parts(folder: Path):
    """``(image folder, outline folder, subset)`` of each MoNuSeg layout in ``folder``."""
    if (folder / "Tissue Images").is_dir() and (folder / "Annotations").is_dir():
        return [(folder / "Tissue Images", folder / "Annotations", "train")]
    suffixes = {p.suffix.lower() for p in folder.iterdir()}
    if ".xml" in suffixes and suffixes & set(IMAGE_EXTENSIONS):
        return [(folder, folder, "test")]
    return []


def read_monuseg(root, subsets=None, on_unpaired: str = "raise") -> list[Sample]:
    """MoNuSeg (Kumar et al. 2017, the 2018 challenge release) as it unpacks.

    Training data: ``MoNuSeg 2018 Training Data/Tissue Images/<TCGA id>.tif`` (1000x1000 H&E)
    with ``Annotations/<TCGA id>.xml``, one Aperio ImageScope XML file of nucleus outlines per
    image; test data: one flat ``MoNuSegTestData/`` folder of ``.tif`` and ``.xml`` files.
    ``root`` is either folder, or a folder that holds them. The outlines are drawn into
    instance labels at the image's size when read (``kerasmed.data.io.read_outline_mask``).

    Samples carry ``subset`` ("train" or "test"), ``mask_type="instances"`` and the TCGA patient
    barcode (``TCGA-XX-XXXX``, the first three fields of the name) as group, so that splits keep
    a patient's images together.

    Args:
        subsets: keep only these, e.g. ``["train"]``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset folder {root} does not exist")
    parts = _monuseg_parts(root)
    if not parts:
        for child in sorted(c for c in root.iterdir() if c.is_dir()):
            parts += _monuseg_parts(child)
    if not parts:
        raise DatasetLayoutError(
            f"{root} has no MoNuSeg layout: expected 'Tissue Images/' + 'Annotations/' (training "
            f"data), a folder of .tif images with .xml outlines (test data), or a folder holding "
            f"them")
    samples = []
    for images, outlines, subset in parts:
        if subsets is not None and subset not in subsets:
            continue
        paired = _pair(images, _by_stem(_list_images(images)), _outline_files(outlines),
                       on_unpaired, mask_type="instances", subset=subset)
        for sample in paired:
            match = _TCGA_PATIENT.match(sample.image.stem)
            samples.append(replace(sample, group=match.group(1).upper() if match
                                   else sample.image.stem))
    if not samples:
        raise DatasetLayoutError(f"no MoNuSeg samples of subsets {subsets} in {root}")
    return samples
