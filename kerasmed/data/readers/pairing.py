"""Matching images to masks by file stem (every unpaired file reported), and setting samples'
groups from a CSV file or a dict.
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import replace
from pathlib import Path

from kerasmed.data.readers.base import DatasetLayoutError, Sample, _natural_key
from kerasmed.names import KerasmedWarning


def _by_stem(files, strip_suffix: str = "") -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in files:
        stem = path.stem
        if strip_suffix:
            if not stem.endswith(strip_suffix):
                continue
            stem = stem[: -len(strip_suffix)]
        if stem in found:
            raise DatasetLayoutError(f"two files share the stem {stem!r}: {found[stem]} and "
                                     f"{path}")
        found[stem] = path
    return found


def _report_unpaired(root, lonely, on_unpaired):
    if not lonely:
        return
    message = f"unpaired files in {root}:\n  " + "\n  ".join(lonely)
    if on_unpaired == "skip":
        warnings.warn(f"skipped {len(lonely)} {message}", stacklevel=3, category=KerasmedWarning)
        return
    if on_unpaired != "raise":
        raise ValueError(f"on_unpaired must be 'raise' or 'skip', not {on_unpaired!r}")
    raise DatasetLayoutError(message)


def _pair(root, image_files, mask_files, on_unpaired, **fields) -> list[Sample]:
    lonely = [f"{p} (no mask)" for s, p in image_files.items() if s not in mask_files]
    lonely += [f"{p} (no image)" for s, p in mask_files.items() if s not in image_files]
    _report_unpaired(root, lonely, on_unpaired)
    stems = sorted((s for s in image_files if s in mask_files), key=_natural_key)
    return [Sample(image_files[s], mask_files[s], **fields) for s in stems]


# ------------------------------------------------------------------------------- groups (CSV)

_KEY_COLUMNS = ("image", "file", "filename", "name", "stem", "frame", "sample", "sample_id",
                "id")
_GROUP_COLUMNS = ("group", "sequence", "sequence_id", "video", "patient", "patient_id")


def _read_group_csv(path: Path) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise DatasetLayoutError(f"group file {path} has no rows")
    columns = {c.strip().lower(): c for c in rows[0]}
    key = next((columns[c] for c in _KEY_COLUMNS if c in columns), None)
    group = next((columns[c] for c in _GROUP_COLUMNS if c in columns), None)
    if key is None or group is None:
        raise DatasetLayoutError(f"group file {path} needs a sample column (one of "
                                 f"{', '.join(_KEY_COLUMNS)}) and a group column (one of "
                                 f"{', '.join(_GROUP_COLUMNS)}); found {list(rows[0])}")
    return {Path(row[key].strip()).stem: row[group].strip() for row in rows}


def assign_groups(samples, groups) -> list[Sample]:
    """Set each sample's group from ``groups``: a CSV file (a sample column naming the image by
    file name, stem or path, and a group column) or a dict ``{image stem: group}``.

    Every sample must be covered; the error lists those that are not.
    """
    mapping = groups if isinstance(groups, dict) else _read_group_csv(Path(groups))
    mapping = {str(k): str(v) for k, v in mapping.items()}
    missing = [str(s.image) for s in samples if Path(s.image).stem not in mapping]
    if missing:
        raise DatasetLayoutError(f"{len(missing)} image(s) have no group in {groups}: "
                                 + ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else ""))
    return [replace(s, group=mapping[Path(s.image).stem]) for s in samples]
