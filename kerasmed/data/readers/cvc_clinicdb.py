"""CVC-ClinicDB (CVC-612): frames with their masks, grouped by video sequence."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kerasmed.data.readers.base import DatasetLayoutError, Sample, _find_base
from kerasmed.data.readers.folder import read_folder_pair
from kerasmed.data.readers.pairing import assign_groups


# Frame ranges (first, last; inclusive, 1-based) of the video sequences of CVC-ClinicDB's 612
# frames. Source: the frame/sequence correspondence as published with the dataset and reproduced
# by third-party documentation (Dataset Ninja's "CVC-612" page); the same 29 ranges are used by
# independent public code. It was NOT checked against the original release, and some
# descriptions of the dataset say 31 sequences: pass ``sequences=<csv>`` to use another mapping.
CVC_CLINICDB_SEQUENCES = (
    (1, 25), (26, 50), (51, 67), (68, 78), (79, 103), (104, 126), (127, 151), (152, 177),
    (178, 199), (200, 205), (206, 227), (228, 252), (253, 277), (278, 297), (298, 317),
    (318, 342), (343, 363), (364, 383), (384, 408), (409, 428), (429, 447), (448, 466),
    (467, 478), (479, 503), (504, 528), (529, 546), (547, 571), (572, 591), (592, 612),
)


def cvc_clinicdb_sequence(frame: int) -> str:
    """The sequence (``"seq01"`` ... ``"seq29"``) of a CVC-ClinicDB frame number (1..612)."""
    for k, (first, last) in enumerate(CVC_CLINICDB_SEQUENCES, start=1):
        if first <= frame <= last:
            return f"seq{k:02d}"
    raise DatasetLayoutError(f"CVC-ClinicDB frame {frame} is outside 1..612, the range of the "
                             f"documented sequence table; pass sequences=<csv> or sequences=None")


_GT_NAMES = ("Ground Truth", "GroundTruth", "Ground_Truth", "ground truth")


def _cvc_folders(base: Path, image_format: str):
    options = {"tif": [base, base / "TIF", base / "TIFF"], "png": [base / "PNG"]}
    formats = ["tif", "png"] if image_format == "auto" else [image_format]
    for fmt in formats:
        for parent in options[fmt]:
            if (parent / "Original").is_dir():
                gt = next((parent / g for g in _GT_NAMES if (parent / g).is_dir()), None)
                if gt is None:
                    raise DatasetLayoutError(f"CVC-ClinicDB: {parent / 'Original'} exists but "
                                             f"its masks folder {parent / 'Ground Truth'} does "
                                             f"not")
                return parent, gt.name
    looked = ", ".join(str(p) for f in formats for p in options[f])
    raise DatasetLayoutError(f"CVC-ClinicDB: no 'Original' + 'Ground Truth' folders under {base} "
                             f"(looked in {looked})")


def read_cvc_clinicdb(root, image_format: str = "auto", sequences="table",
                      on_unpaired: str = "raise") -> list[Sample]:
    """CVC-ClinicDB: ``Original/<n>.tif`` with ``Ground Truth/<n>.tif`` (a space in the name).

    ``root`` is the ``CVC-ClinicDB`` folder or its parent. Copies with ``PNG/Original`` (and
    ``TIF/Original``) are read too; ``image_format`` ("auto", "tif", "png") picks one when both
    exist (auto: TIFF, the original). Masks may be 1- or 3-channel (reduced when read).

    Args:
        sequences: ``"table"`` groups frames by video sequence from ``CVC_CLINICDB_SEQUENCES``
            (see its note on provenance); a CSV path (frame/image column + sequence column)
            gives the mapping instead; ``None`` leaves samples ungrouped (random splits leak
            near-identical frames between training and validation).
    """
    if image_format not in ("auto", "tif", "png"):
        raise ValueError(f"image_format must be 'auto', 'tif' or 'png', not {image_format!r}")
    base = _find_base(Path(root), ("CVC-ClinicDB", "CVC-612", "CVC_ClinicDB"),
                      lambda p: any((p / d / "Original").is_dir() for d in ("", "PNG", "TIF")))
    parent, gt = _cvc_folders(base, image_format)
    samples = read_folder_pair(parent, "Original", gt, on_unpaired=on_unpaired)
    if sequences is None:
        return samples
    if sequences == "table":
        bad = [str(s.image) for s in samples if not s.image.stem.isdigit()]
        if bad:
            raise DatasetLayoutError("CVC-ClinicDB frames are named by number; these are not, so "
                                     "the sequence table cannot group them: " + ", ".join(bad[:20]))
        return [replace(s, group=cvc_clinicdb_sequence(int(s.image.stem))) for s in samples]
    return assign_groups(samples, sequences)
