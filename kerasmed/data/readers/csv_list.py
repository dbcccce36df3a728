"""Samples listed in a CSV file (the ``csv`` dataset kind): one row per sample."""

from __future__ import annotations

import csv
from pathlib import Path

from kerasmed.data.readers.base import DatasetLayoutError, Sample


def read_csv(root, csv_file: str | None = None, base=None, image_column: str = "image",
             mask_column: str | None = "mask", group_column: str = "group",
             label_column: str = "label", subset_column: str = "subset") -> list[Sample]:
    """Samples listed in a CSV file: one row per sample, with the image path and its mask path
    (or a label, for classification), and optionally group, label and subset columns.

    ``root`` is the CSV file, or a folder with ``csv_file`` in it. Relative paths start at
    ``base`` (default: the CSV's folder). Every missing file, and every row with an empty image
    or mask cell, is listed in one error with its row number.
    """
    root = Path(root)
    path = root / csv_file if csv_file else root
    if not path.is_file():
        raise DatasetLayoutError(f"sample list {path} does not exist")
    base = Path(base) if base is not None else path.parent
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    if image_column not in columns:
        raise DatasetLayoutError(f"{path}: no {image_column!r} column (columns: {columns})")
    has_mask = mask_column is not None and mask_column in columns
    if not rows:
        raise DatasetLayoutError(f"{path} lists no samples")
    samples, problems = [], []
    for line, row in enumerate(rows, start=2):
        fields = {}
        for key, column in (("group", group_column), ("label", label_column),
                            ("subset", subset_column)):
            if column in columns and row.get(column):
                fields[key] = row[column]
        paths = {}
        for key, column in (("image", image_column), ("mask", mask_column if has_mask else None)):
            if column is None:
                continue
            if not row.get(column):
                problems.append(f"row {line}: empty {column!r}")
                continue
            p = Path(row[column])
            p = p if p.is_absolute() else base / p
            if not p.is_file():
                problems.append(f"row {line}: {p} ({key} file not found)")
            paths[key] = p
        if "image" in paths and (not has_mask or "mask" in paths):
            samples.append(Sample(paths["image"], paths.get("mask"), **fields))
    if problems:
        raise DatasetLayoutError(f"{path}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    seen = {}
    for s in samples:
        if s.image in seen:
            raise DatasetLayoutError(f"{path}: image {s.image} is listed twice")
        seen[s.image] = s
    return samples
