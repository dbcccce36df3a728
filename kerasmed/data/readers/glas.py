"""GlaS / Warwick-QU: one flat folder of images with instance-label masks, patients from
``Grade.csv``.
"""

from __future__ import annotations

import csv
import re
import warnings
from dataclasses import replace
from pathlib import Path

from kerasmed.data.readers.base import DatasetLayoutError, Sample, _find_base, _list_images
from kerasmed.data.readers.pairing import _pair
from kerasmed.names import KerasmedWarning


_GLAS_NAME = re.compile(r"^(train|testA|testB)_(\d+)(_anno)?$", re.IGNORECASE)


def _glas_patients(path: Path) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    header = [h.strip().lower() for h in rows[0]] if rows else []
    try:
        name_col = next(i for i, h in enumerate(header) if h == "name")
        patient_col = next(i for i, h in enumerate(header) if "patient" in h)
    except StopIteration:
        raise DatasetLayoutError(f"{path}: expected 'name' and 'patient ID' columns, found "
                                 f"{rows[0] if rows else 'an empty file'}") from None
    return {r[name_col].strip(): f"patient{r[patient_col].strip()}" for r in rows[1:] if r}


def read_glas(root, subsets=None, on_unpaired: str = "raise") -> list[Sample]:
    """GlaS / Warwick-QU: one flat folder of ``train_<n>.bmp``, ``testA_<n>.bmp``,
    ``testB_<n>.bmp``, each with ``<name>_anno.bmp`` (instance labels), plus ``Grade.csv``.

    ``root`` is that folder or its parent (e.g. the folder holding "Warwick QU Dataset (Released
    2016_07_08)"). Samples carry ``subset`` (train / testA / testB), ``mask_type="instances"``
    (a binary mask is ``label > 0``; the labels are kept for object-level metrics) and, when
    ``Grade.csv`` is there, the patient as group. Without ``Grade.csv`` a warning says that
    splits cannot be patient-aware.

    Args:
        subsets: keep only these publisher subsets, e.g. ``["train"]``.
    """
    base = _find_base(Path(root), ("Warwick QU Dataset (Released 2016_07_08)", "GlaS",
                                   "Warwick_QU_Dataset", "Warwick QU Dataset"),
                      lambda p: any(_GLAS_NAME.match(f.stem) for f in p.glob("*.bmp")))
    images, masks, odd = {}, {}, []
    for path in _list_images(base):
        match = _GLAS_NAME.match(path.stem)
        if match is None:
            odd.append(str(path))
        elif match.group(3):
            masks[path.stem[: -len("_anno")]] = path
        else:
            images[path.stem] = path
    if odd:
        raise DatasetLayoutError(f"GlaS: unexpected image files in {base} (expected "
                                 f"train_/testA_/testB_<n>[_anno].bmp): " + ", ".join(odd[:20]))
    if not images:
        raise DatasetLayoutError(f"GlaS: no train_<n>.bmp / testA_<n>.bmp images in {base}")
    samples = _pair(base, images, masks, on_unpaired, mask_type="instances")
    grade = next((p for p in base.iterdir() if p.name.lower() == "grade.csv"), None)
    if grade is None:
        warnings.warn(f"GlaS: no Grade.csv in {base}; samples have no patient groups, so splits "
                      f"cannot keep a patient's images together",
                      stacklevel=2, category=KerasmedWarning)
        patients = {}
    else:
        patients = _glas_patients(grade)
        missing = [str(s.image) for s in samples if s.image.stem not in patients]
        if missing:
            raise DatasetLayoutError(f"GlaS: {grade} has no row for " + ", ".join(missing[:20]))
    out = []
    for s in samples:
        subset = _GLAS_NAME.match(s.image.stem).group(1)
        subset = {"train": "train", "testa": "testA", "testb": "testB"}[subset.lower()]
        out.append(replace(s, subset=subset, group=patients.get(s.image.stem)))
    if subsets is not None:
        out = [s for s in out if s.subset in set(subsets)]
        if not out:
            raise DatasetLayoutError(f"GlaS: no samples in subsets {list(subsets)}")
    return out
