"""Readers that list a dataset's samples exactly as it unpacks on disk.

Each reader returns a list of ``Sample`` (image path, mask path, group, ...). The group is what
must not be split between training and validation (a video sequence, a patient); ``None`` when
the dataset has no such structure. ``read_dataset(kind, root, **options)`` dispatches on the
names in ``READERS``; docs/data.md describes each layout and option.

Nothing is dropped silently: an image without its mask (or a mask without its image) is an
error that lists every such file by path (``on_unpaired="skip"`` drops them with a warning that
lists them instead); files with an extension that is not an image are reported in a warning,
except the text and metadata files the publishers ship (``.txt``, ``.csv``, ``.json``...).

One module a layout (``folder``, ``class_folders``, ``cvc_clinicdb``, ``kvasir_seg``, ``glas``,
``monuseg``, ``isic2018``, ``oct2017``, ``csv_list``); ``base`` holds ``Sample``, the layout
error and folder listing, ``pairing`` the matching of images to masks and the group CSVs. Every
public name is imported here: import from ``kerasmed.data.readers``.
"""

from __future__ import annotations

import inspect

from kerasmed.data.readers.base import DatasetLayoutError, Sample
from kerasmed.data.readers.class_folders import read_class_folders
from kerasmed.data.readers.csv_list import read_csv
from kerasmed.data.readers.cvc_clinicdb import (CVC_CLINICDB_SEQUENCES, cvc_clinicdb_sequence,
                                                read_cvc_clinicdb)
from kerasmed.data.readers.folder import read_folder_pair
from kerasmed.data.readers.glas import read_glas
from kerasmed.data.readers.isic2018 import read_isic2018
from kerasmed.data.readers.kvasir_seg import read_kvasir_seg
from kerasmed.data.readers.monuseg import read_monuseg
from kerasmed.data.readers.oct2017 import read_oct2017
from kerasmed.data.readers.pairing import assign_groups
from kerasmed.names import did_you_mean

__all__ = ["Sample", "DatasetLayoutError", "READERS", "read_dataset", "read_folder_pair",
           "read_cvc_clinicdb", "read_kvasir_seg", "read_glas", "read_isic2018", "read_oct2017",
           "read_csv", "read_monuseg", "read_class_folders", "assign_groups",
           "CVC_CLINICDB_SEQUENCES",
           "cvc_clinicdb_sequence"]


READERS = {
    "folder": read_folder_pair,
    "cvc_clinicdb": read_cvc_clinicdb,
    "kvasir_seg": read_kvasir_seg,
    "glas": read_glas,
    "monuseg": read_monuseg,
    "isic2018": read_isic2018,
    "oct2017": read_oct2017,
    "class_folders": read_class_folders,
    "csv": read_csv,
}


def read_dataset(kind: str, root, groups=None, **options) -> list[Sample]:
    """List the samples of dataset ``kind`` (a key of ``READERS``) found at ``root``.

    Args:
        groups: optional CSV file or ``{image stem: group}`` dict that sets (or replaces) every
            sample's group, for datasets whose grouping is not in their file names.
        **options: the reader's keyword arguments (see each ``read_*`` function).

    Raises:
        ValueError: unknown ``kind`` or option (the message names it and the valid ones).
        DatasetLayoutError: the folder does not have the layout (the message names the paths).
    """
    if kind not in READERS:
        raise ValueError(f"unknown dataset kind {kind!r}; choose one of {sorted(READERS)}."
                         f"{did_you_mean(kind, READERS)}")
    reader = READERS[kind]
    valid = [p for p in inspect.signature(reader).parameters if p != "root"]
    bad = [k for k in options if k not in valid]
    if bad:
        raise ValueError(f"dataset kind {kind!r} has no option(s) {bad}; its options are {valid}")
    samples = reader(root, **options)
    if groups is not None:
        samples = assign_groups(samples, groups)
    return samples
