"""A generic dataset: ``images/`` and ``masks/`` folders matched by file stem."""

from __future__ import annotations

from pathlib import Path

from kerasmed.data.io import IMAGE_EXTENSIONS
from kerasmed.data.readers.base import DatasetLayoutError, Sample, _list_images
from kerasmed.data.readers.pairing import _by_stem, _pair


def read_folder_pair(root, images: str = "images", masks: str = "masks", mask_suffix: str = "",
                     on_unpaired: str = "raise", mask_type: str | None = None) -> list[Sample]:
    """List the samples of a generic ``images/`` + ``masks/`` dataset, matched by file stem.

    Extensions may differ between an image and its mask (``1.jpg`` and ``1.png``). Every image
    without a mask and every mask without an image is listed in the error, by path, so nothing
    is silently dropped (``on_unpaired="skip"`` drops them with a warning listing them).

    Args:
        mask_suffix: the mask's stem is the image's stem plus this (``"_segmentation"``).
        mask_type: ``"instances"`` if the masks hold instance labels (nuclei datasets such as
            Kidney / TNBC): binary targets are then ``label > 0``.

    Returns:
        The samples, in natural order of their stems (``2`` before ``10``).
    """
    root = Path(root)
    folders = {"images": root / images, "masks": root / masks}
    for key, folder in folders.items():
        if not folder.is_dir():
            raise DatasetLayoutError(f"{key} folder {folder} does not exist")
    image_files = _by_stem(_list_images(folders["images"]))
    mask_files = _by_stem(_list_images(folders["masks"], "mask"), mask_suffix)
    if not image_files:
        raise DatasetLayoutError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in "
                                 f"{folders['images']}")
    if mask_type not in (None, "binary", "instances"):
        raise ValueError(f"mask_type must be None, 'binary' or 'instances', not {mask_type!r}")
    fields = {"mask_type": mask_type} if mask_type == "instances" else {}
    return _pair(root, image_files, mask_files, on_unpaired, **fields)
