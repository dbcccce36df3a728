"""A classification dataset laid out as one folder a class."""

from __future__ import annotations

from pathlib import Path

from kerasmed.data.readers.base import DatasetLayoutError, Sample, _list_images


def read_class_folders(root) -> list[Sample]:
    """A classification dataset laid out as ``<root>/<CLASS>/<image>``: one folder a class.

    Samples have no mask; ``label`` is the class folder's name. Hidden folders are skipped; a
    root without class folders, or a class folder without images, is an error naming it.

    Returns:
        The samples, class by class (sorted by name), each in natural order.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset folder {root} does not exist")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DatasetLayoutError(f"{root}: a class-folder dataset needs one sub-folder a class "
                                 f"(at least two), found {[p.name for p in classes]}")
    samples = []
    for folder in classes:
        images = _list_images(folder)
        if not images:
            raise DatasetLayoutError(f"class folder {folder} holds no images")
        samples += [Sample(path, None, label=folder.name) for path in images]
    return samples
