"""Kvasir-SEG: ``images/`` and ``masks/`` of JPEG files, ungrouped."""

from __future__ import annotations

from pathlib import Path

from kerasmed.data.readers.base import Sample, _find_base
from kerasmed.data.readers.folder import read_folder_pair


def read_kvasir_seg(root, on_unpaired: str = "raise") -> list[Sample]:
    """Kvasir-SEG: ``images/<id>.jpg`` and ``masks/<id>.jpg`` (JPEG masks, thresholded on read).

    ``root`` is the ``Kvasir-SEG`` folder or its parent; ``kavsir_bboxes.json`` is not needed.
    The images carry no patient or video id, so samples are ungrouped.
    """
    base = _find_base(Path(root), ("Kvasir-SEG", "kvasir-seg", "Kvasir_SEG"),
                      lambda p: (p / "images").is_dir() and (p / "masks").is_dir())
    return read_folder_pair(base, "images", "masks", on_unpaired=on_unpaired)
