"""OCT2017 (Kermany et al.): a classification dataset, split / class / image, patients from
the file names.
"""

from __future__ import annotations

import re
from pathlib import Path

from kerasmed.data.readers.base import DatasetLayoutError, Sample, _find_base, _list_images


_OCT_NAME = re.compile(r"^([A-Za-z]+)-(\d+)-(\d+)$")


def read_oct2017(root, subsets=None, classes=None) -> list[Sample]:
    """OCT2017 (Kermany et al.): ``<split>/<CLASS>/<CLASS>-<patient>-<n>.jpeg``, split in
    train / test / val (whichever exist), classes CNV, DME, DRUSEN, NORMAL.

    ``root`` is the ``OCT2017`` folder or its parent (the Kaggle archive's folder is named
    ``"OCT2017 "`` with a trailing space; it is found too). Samples have no mask; ``label`` is the
    class folder, ``group`` the patient id from the file name (a patient can appear in several
    classes and in both train and test), ``subset`` the split folder. A file whose name does not
    follow the pattern, or whose class prefix differs from its folder, is an error.

    Args:
        subsets: keep only these split folders (default: all present).
        classes: expected class folders (default: the folders found; an error if one is
            missing or extra when given).
    """
    def has_split(p):
        return any((p / s).is_dir() for s in ("train", "test", "val"))

    base = _find_base(Path(root), ("OCT2017", "oct2017"), has_split)
    if not has_split(base):
        nested = [c for c in base.iterdir() if c.is_dir() and has_split(c)]
        if len(nested) == 1:
            base = nested[0]
        else:
            raise DatasetLayoutError(f"OCT2017: no train/ test/ val/ folders under {root}")
    splits = [s for s in ("train", "val", "test") if (base / s).is_dir()]
    if subsets is not None:
        missing = [s for s in subsets if s not in splits]
        if missing:
            raise DatasetLayoutError(f"OCT2017: split folder(s) {missing} not in {base}")
        splits = [s for s in splits if s in subsets]
    samples, bad = [], []
    for split in splits:
        found = sorted(c.name for c in (base / split).iterdir()
                       if c.is_dir() and not c.name.startswith("."))
        if classes is not None and sorted(classes) != found:
            raise DatasetLayoutError(f"OCT2017: {base / split} has class folders {found}, "
                                     f"expected {sorted(classes)}")
        for cls in found:
            for path in _list_images(base / split / cls):
                match = _OCT_NAME.match(path.stem)
                if match is None or match.group(1).upper() != cls.upper():
                    bad.append(str(path))
                    continue
                samples.append(Sample(path, None, group=f"patient{match.group(2)}", label=cls,
                                      subset=split))
    if bad:
        raise DatasetLayoutError(f"OCT2017: {len(bad)} file name(s) do not follow "
                                 f"<CLASS>-<patient>-<n>.jpeg inside their class folder: "
                                 + ", ".join(bad[:20]))
    if not samples:
        raise DatasetLayoutError(f"OCT2017: no images under {base}")
    return samples
