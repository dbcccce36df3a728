"""ISIC 2018 task 1: input and ground-truth folders per subset."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from kerasmed.data.readers.base import DatasetLayoutError, Sample, _list_images
from kerasmed.data.readers.pairing import _by_stem, _pair
from kerasmed.names import KerasmedWarning


_ISIC_SUBSETS = {"training": "train", "validation": "val", "test": "test"}
_ISIC_IMAGE = re.compile(r"^ISIC_\d+$")


def read_isic2018(root, subsets="all", on_unpaired: str = "raise") -> list[Sample]:
    """ISIC 2018 task 1: ``ISIC2018_Task1-2_<Subset>_Input/ISIC_<id>.jpg`` with
    ``ISIC2018_Task1_<Subset>_GroundTruth/ISIC_<id>_segmentation.png``, Subset in Training,
    Validation, Test.

    ``LICENSE``/``ATTRIBUTION`` text files and ``*_superpixels.png`` files (older releases) in
    the folders are ignored. Samples carry ``subset`` ("train", "val", "test"); ISIC gives no
    patient id in task 1, so samples are ungrouped.

    Args:
        subsets: ``"all"`` (every subset present) or a list such as ``["training"]``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset folder {root} does not exist")
    wanted = list(_ISIC_SUBSETS) if subsets == "all" else [s.lower() for s in subsets]
    unknown = [s for s in wanted if s not in _ISIC_SUBSETS]
    if unknown:
        raise ValueError(f"ISIC 2018 subsets are {list(_ISIC_SUBSETS)}; got {unknown}")
    samples = []
    for name in wanted:
        cap = name.capitalize()
        inputs, truth = (root / f"ISIC2018_Task1-2_{cap}_Input",
                         root / f"ISIC2018_Task1_{cap}_GroundTruth")
        if not inputs.is_dir():
            if subsets != "all":
                raise DatasetLayoutError(f"ISIC 2018: folder {inputs} does not exist")
            continue
        if not truth.is_dir():
            if subsets == "all":  # e.g. a download without the test ground truth
                warnings.warn(f"ISIC 2018: skipped {inputs}: it has no ground-truth folder "
                              f"{truth}", stacklevel=2, category=KerasmedWarning)
                continue
            raise DatasetLayoutError(f"ISIC 2018: {inputs} has no ground-truth folder {truth}")
        files = [p for p in _list_images(inputs) if not p.stem.endswith("_superpixels")]
        odd = [str(p) for p in files if not _ISIC_IMAGE.match(p.stem)]
        if odd:
            raise DatasetLayoutError("ISIC 2018: unexpected image files (expected ISIC_<id>.jpg): "
                                     + ", ".join(odd[:20]))
        image_files = _by_stem(files)
        mask_list = _list_images(truth, "mask")
        odd = [str(p) for p in mask_list if not p.stem.endswith("_segmentation")]
        if odd:
            raise DatasetLayoutError("ISIC 2018: unexpected mask files (expected "
                                     "ISIC_<id>_segmentation.png): " + ", ".join(odd[:20]))
        mask_files = _by_stem(mask_list, "_segmentation")
        samples += _pair(inputs, image_files, mask_files, on_unpaired,
                         subset=_ISIC_SUBSETS[name])
    if not samples:
        raise DatasetLayoutError(f"ISIC 2018: no ISIC2018_Task1-2_<Training|Validation|Test>_Input "
                                 f"folder with images under {root}")
    return samples
