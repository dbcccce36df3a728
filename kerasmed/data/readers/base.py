"""What every reader shares: the ``Sample`` record, the layout error, listing a folder's
images (others reported) and finding a dataset's folder under the one given.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from kerasmed.data.io import IMAGE_EXTENSIONS
from kerasmed.names import KerasmedWarning


@dataclass(frozen=True)
class Sample:
    """One item of a dataset.

    Attributes:
        image: path of the image.
        mask: path of the mask (``None`` for classification datasets).
        group: what must stay on one side of a split (``"seq07"``, ``"patient12"``), or ``None``.
        label: class name, for classification datasets (OCT2017).
        subset: the publisher's own partition (``"train"``, ``"testA"``, ``"val"``...), if any.
        mask_type: ``"instances"`` when the mask holds instance labels (GlaS); ``None``: binary.
    """

    image: Path
    mask: Path | None = None
    group: str | None = None
    label: str | None = None
    subset: str | None = None
    mask_type: str | None = None


class DatasetLayoutError(ValueError):
    """A dataset folder does not have the expected layout; the message names the paths."""


# Publisher files that sit next to the images and are not images.
_IGNORED_EXTENSIONS = {".txt", ".csv", ".json", ".md", ".xml", ".xlsx", ".xls", ".pdf", ".db",
                       ".ini", ".html", ".htm", ".zip", ".rar", ".py", ".m"}


def _natural_key(text: str):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _list_images(folder: Path, what: str = "image") -> list[Path]:
    """Image files of ``folder`` in natural order; hidden files skipped, other files reported."""
    if not folder.is_dir():
        raise DatasetLayoutError(f"{what} folder {folder} does not exist")
    images, unknown = [], []
    for path in folder.iterdir():
        if path.name.startswith(".") or not path.is_file():
            continue  # .DS_Store, macOS '._x.png' resource forks, sub-folders
        suffix = path.suffix.lower()
        if suffix in IMAGE_EXTENSIONS:
            images.append(path)
        elif suffix not in _IGNORED_EXTENSIONS and path.name.lower() != "thumbs.db":
            unknown.append(path)
    if unknown:
        warnings.warn(f"ignored {len(unknown)} file(s) in {folder} that are not "
                      f"{'/'.join(IMAGE_EXTENSIONS)} images: "
                      + ", ".join(str(p) for p in sorted(unknown)[:20]),
                      stacklevel=3, category=KerasmedWarning)
    return sorted(images, key=lambda p: _natural_key(p.name))


def _find_base(root: Path, names, has) -> Path:
    """``root`` if it has the layout (``has(path)``), else a child named one of ``names``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset folder {root} does not exist")
    if has(root):
        return root
    children = {c.name.strip().lower(): c for c in root.iterdir() if c.is_dir()}
    for name in names:
        child = children.get(name.lower())
        if child is not None and has(child):
            return child
    return root
