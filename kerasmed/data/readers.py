"""Readers that list a dataset's samples exactly as it unpacks on disk.

Each reader returns a list of ``Sample`` (image path, mask path, group). The group is what must
not be split between training and validation (a video sequence, a patient); ``None`` when the
dataset has no such structure.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kerasmed.data.io import IMAGE_EXTENSIONS

__all__ = ["Sample", "DatasetLayoutError", "read_folder_pair"]


@dataclass(frozen=True)
class Sample:
    image: Path
    mask: Path | None = None
    group: str | None = None


class DatasetLayoutError(ValueError):
    """A dataset folder does not have the expected layout; the message names the paths."""


def _images_by_stem(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            if path.stem in found:
                raise DatasetLayoutError(f"two files share the stem {path.stem!r}: "
                                         f"{found[path.stem]} and {path}")
            found[path.stem] = path
    return found


def read_folder_pair(root, images: str = "images", masks: str = "masks") -> list[Sample]:
    """List the samples of a generic ``images/`` + ``masks/`` dataset, matched by file stem.

    Extensions may differ between an image and its mask (``1.jpg`` and ``1.png``). Every image
    without a mask and every mask without an image is listed in the error, by path, so nothing
    is silently dropped.

    Returns:
        The samples, sorted by stem.
    """
    root = Path(root)
    folders = {"images": root / images, "masks": root / masks}
    for key, folder in folders.items():
        if not folder.is_dir():
            raise DatasetLayoutError(f"{key} folder {folder} does not exist")
    image_files = _images_by_stem(folders["images"])
    mask_files = _images_by_stem(folders["masks"])
    if not image_files:
        raise DatasetLayoutError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folders['images']}")
    lonely = [str(p) + " (no mask)" for s, p in image_files.items() if s not in mask_files]
    lonely += [str(p) + " (no image)" for s, p in mask_files.items() if s not in image_files]
    if lonely:
        raise DatasetLayoutError("unpaired files in " + str(root) + ":\n  " + "\n  ".join(lonely))
    return [Sample(image_files[s], mask_files[s]) for s in sorted(image_files)]
