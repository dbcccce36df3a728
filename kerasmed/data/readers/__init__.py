"""Readers that list a dataset's samples exactly as it unpacks on disk.

Each reader returns a list of ``Sample`` (image path, mask path, group, ...). The group is what
must not be split between training and validation (a video sequence, a patient); ``None`` when
the dataset has no such structure. ``read_dataset(kind, root, **options)`` dispatches on the
names in ``READERS``; docs/data.md describes each layout and option.

Nothing is dropped silently: an image without its mask (or a mask without its image) is an
error that lists every such file by path (``on_unpaired="skip"`` drops them with a warning that
lists them instead); files with an extension that is not an image are reported in a warning,
except the text and metadata files the publishers ship (``.txt``, ``.csv``, ``.json``...).
"""

from __future__ import annotations

import csv
import inspect
import re
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

from kerasmed.data.io import IMAGE_EXTENSIONS
from kerasmed.names import KerasmedWarning, did_you_mean

__all__ = ["Sample", "DatasetLayoutError", "READERS", "read_dataset", "read_folder_pair",
           "read_cvc_clinicdb", "read_kvasir_seg", "read_glas", "read_isic2018", "read_oct2017",
           "read_csv", "read_monuseg", "read_class_folders", "assign_groups",
           "CVC_CLINICDB_SEQUENCES",
           "cvc_clinicdb_sequence"]


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


# ------------------------------------------------------------------------------- CVC-ClinicDB

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


# ---------------------------------------------------------------------------------- Kvasir-SEG


def read_kvasir_seg(root, on_unpaired: str = "raise") -> list[Sample]:
    """Kvasir-SEG: ``images/<id>.jpg`` and ``masks/<id>.jpg`` (JPEG masks, thresholded on read).

    ``root`` is the ``Kvasir-SEG`` folder or its parent; ``kavsir_bboxes.json`` is not needed.
    The images carry no patient or video id, so samples are ungrouped.
    """
    base = _find_base(Path(root), ("Kvasir-SEG", "kvasir-seg", "Kvasir_SEG"),
                      lambda p: (p / "images").is_dir() and (p / "masks").is_dir())
    return read_folder_pair(base, "images", "masks", on_unpaired=on_unpaired)


# ---------------------------------------------------------------------------------------- GlaS

_GLAS_NAME = re.compile(r"^(train|testA|testB)_(\d+)(_anno)?$", re.IGNORECASE)


def _glas_patients(path: Path) -> dict[str, str]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    header = [h.strip().lower() for h in rows[0]] if rows else []
    try:
        name_col = next(i for i, h in enumerate(header) if h == "name")
        patient_col = next(i for i, h in enumerate(header) if "patient" in h)
    except StopIteration:
        raise DatasetLayoutError(f"{path}: expected 'name' and 'patient ID' columns, found "
                                 f"{rows[0] if rows else 'an empty file'}") from None
    return {r[name_col].strip(): f"patient{r[patient_col].strip()}" for r in rows[1:] if r}


def read_glas(root, subsets=None, on_unpaired: str = "raise") -> list[Sample]:
    """GlaS / Warwick-QU: one flat folder of ``train_<n>.bmp``, ``testA_<n>.bmp``,
    ``testB_<n>.bmp``, each with ``<name>_anno.bmp`` (instance labels), plus ``Grade.csv``.

    ``root`` is that folder or its parent (e.g. the folder holding "Warwick QU Dataset (Released
    2016_07_08)"). Samples carry ``subset`` (train / testA / testB), ``mask_type="instances"``
    (a binary mask is ``label > 0``; the labels are kept for object-level metrics) and, when
    ``Grade.csv`` is there, the patient as group. Without ``Grade.csv`` a warning says that
    splits cannot be patient-aware.

    Args:
        subsets: keep only these publisher subsets, e.g. ``["train"]``.
    """
    base = _find_base(Path(root), ("Warwick QU Dataset (Released 2016_07_08)", "GlaS",
                                   "Warwick_QU_Dataset", "Warwick QU Dataset"),
                      lambda p: any(_GLAS_NAME.match(f.stem) for f in p.glob("*.bmp")))
    images, masks, odd = {}, {}, []
    for path in _list_images(base):
        match = _GLAS_NAME.match(path.stem)
        if match is None:
            odd.append(str(path))
        elif match.group(3):
            masks[path.stem[: -len("_anno")]] = path
        else:
            images[path.stem] = path
    if odd:
        raise DatasetLayoutError(f"GlaS: unexpected image files in {base} (expected "
                                 f"train_/testA_/testB_<n>[_anno].bmp): " + ", ".join(odd[:20]))
    if not images:
        raise DatasetLayoutError(f"GlaS: no train_<n>.bmp / testA_<n>.bmp images in {base}")
    samples = _pair(base, images, masks, on_unpaired, mask_type="instances")
    grade = next((p for p in base.iterdir() if p.name.lower() == "grade.csv"), None)
    if grade is None:
        warnings.warn(f"GlaS: no Grade.csv in {base}; samples have no patient groups, so splits "
                      f"cannot keep a patient's images together",
                      stacklevel=2, category=KerasmedWarning)
        patients = {}
    else:
        patients = _glas_patients(grade)
        missing = [str(s.image) for s in samples if s.image.stem not in patients]
        if missing:
            raise DatasetLayoutError(f"GlaS: {grade} has no row for " + ", ".join(missing[:20]))
    out = []
    for s in samples:
        subset = _GLAS_NAME.match(s.image.stem).group(1)
        subset = {"train": "train", "testa": "testA", "testb": "testB"}[subset.lower()]
        out.append(replace(s, subset=subset, group=patients.get(s.image.stem)))
    if subsets is not None:
        out = [s for s in out if s.subset in set(subsets)]
        if not out:
            raise DatasetLayoutError(f"GlaS: no samples in subsets {list(subsets)}")
    return out


# --------------------------------------------------------------------------------- ISIC 2018

_ISIC_SUBSETS = {"training": "train", "validation": "val", "test": "test"}
_ISIC_IMAGE = re.compile(r"^ISIC_\d+$")


def read_isic2018(root, subsets="all", on_unpaired: str = "raise") -> list[Sample]:
    """ISIC 2018 task 1: ``ISIC2018_Task1-2_<Subset>_Input/ISIC_<id>.jpg`` with
    ``ISIC2018_Task1_<Subset>_GroundTruth/ISIC_<id>_segmentation.png``, Subset in Training,
    Validation, Test.

    ``LICENSE``/``ATTRIBUTION`` text files and ``*_superpixels.png`` files (older releases) in
    the folders are ignored. Samples carry ``subset`` ("train", "val", "test"); ISIC gives no
    patient id in task 1, so samples are ungrouped.

    Args:
        subsets: ``"all"`` (every subset present) or a list such as ``["training"]``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset folder {root} does not exist")
    wanted = list(_ISIC_SUBSETS) if subsets == "all" else [s.lower() for s in subsets]
    unknown = [s for s in wanted if s not in _ISIC_SUBSETS]
    if unknown:
        raise ValueError(f"ISIC 2018 subsets are {list(_ISIC_SUBSETS)}; got {unknown}")
    samples = []
    for name in wanted:
        cap = name.capitalize()
        inputs, truth = (root / f"ISIC2018_Task1-2_{cap}_Input",
                         root / f"ISIC2018_Task1_{cap}_GroundTruth")
        if not inputs.is_dir():
            if subsets != "all":
                raise DatasetLayoutError(f"ISIC 2018: folder {inputs} does not exist")
            continue
        if not truth.is_dir():
            if subsets == "all":  # e.g. a download without the test ground truth
                warnings.warn(f"ISIC 2018: skipped {inputs}: it has no ground-truth folder "
                              f"{truth}", stacklevel=2, category=KerasmedWarning)
                continue
            raise DatasetLayoutError(f"ISIC 2018: {inputs} has no ground-truth folder {truth}")
        files = [p for p in _list_images(inputs) if not p.stem.endswith("_superpixels")]
        odd = [str(p) for p in files if not _ISIC_IMAGE.match(p.stem)]
        if odd:
            raise DatasetLayoutError("ISIC 2018: unexpected image files (expected ISIC_<id>.jpg): "
                                     + ", ".join(odd[:20]))
        image_files = _by_stem(files)
        mask_list = _list_images(truth, "mask")
        odd = [str(p) for p in mask_list if not p.stem.endswith("_segmentation")]
        if odd:
            raise DatasetLayoutError("ISIC 2018: unexpected mask files (expected "
                                     "ISIC_<id>_segmentation.png): " + ", ".join(odd[:20]))
        mask_files = _by_stem(mask_list, "_segmentation")
        samples += _pair(inputs, image_files, mask_files, on_unpaired,
                         subset=_ISIC_SUBSETS[name])
    if not samples:
        raise DatasetLayoutError(f"ISIC 2018: no ISIC2018_Task1-2_<Training|Validation|Test>_Input "
                                 f"folder with images under {root}")
    return samples


# ------------------------------------------------------------------------------------ OCT2017

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


# ---------------------------------------------------------------------------------------- CSV


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


# ----------------------------------------------------------------------------------- registry

# --------------------------------------------------------------------------------- MoNuSeg

_TCGA_PATIENT = re.compile(r"^(TCGA-[A-Z0-9]{2}-[A-Z0-9]{4})", re.IGNORECASE)


def _outline_files(folder: Path) -> dict[str, Path]:
    # By stem; _pair puts the samples in natural order.
    return _by_stem(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                    and p.suffix.lower() == ".xml")


def _monuseg_parts(folder: Path):
    """``(image folder, outline folder, subset)`` of each MoNuSeg layout in ``folder``."""
    if (folder / "Tissue Images").is_dir() and (folder / "Annotations").is_dir():
        return [(folder / "Tissue Images", folder / "Annotations", "train")]
    suffixes = {p.suffix.lower() for p in folder.iterdir()}
    if ".xml" in suffixes and suffixes & set(IMAGE_EXTENSIONS):
        return [(folder, folder, "test")]
    return []


def read_monuseg(root, subsets=None, on_unpaired: str = "raise") -> list[Sample]:
    """MoNuSeg (Kumar et al. 2017, the 2018 challenge release) as it unpacks.

    Training data: ``MoNuSeg 2018 Training Data/Tissue Images/<TCGA id>.tif`` (1000x1000 H&E)
    with ``Annotations/<TCGA id>.xml``, one Aperio ImageScope XML file of nucleus outlines per
    image; test data: one flat ``MoNuSegTestData/`` folder of ``.tif`` and ``.xml`` files.
    ``root`` is either folder, or a folder that holds them. The outlines are drawn into
    instance labels at the image's size when read (``kerasmed.data.io.read_outline_mask``).

    Samples carry ``subset`` ("train" or "test"), ``mask_type="instances"`` and the TCGA patient
    barcode (``TCGA-XX-XXXX``, the first three fields of the name) as group, so that splits keep
    a patient's images together.

    Args:
        subsets: keep only these, e.g. ``["train"]``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"dataset folder {root} does not exist")
    parts = _monuseg_parts(root)
    if not parts:
        for child in sorted(c for c in root.iterdir() if c.is_dir()):
            parts += _monuseg_parts(child)
    if not parts:
        raise DatasetLayoutError(
            f"{root} has no MoNuSeg layout: expected 'Tissue Images/' + 'Annotations/' (training "
            f"data), a folder of .tif images with .xml outlines (test data), or a folder holding "
            f"them")
    samples = []
    for images, outlines, subset in parts:
        if subsets is not None and subset not in subsets:
            continue
        paired = _pair(images, _by_stem(_list_images(images)), _outline_files(outlines),
                       on_unpaired, mask_type="instances", subset=subset)
        for sample in paired:
            match = _TCGA_PATIENT.match(sample.image.stem)
            samples.append(replace(sample, group=match.group(1).upper() if match
                                   else sample.image.stem))
    if not samples:
        raise DatasetLayoutError(f"no MoNuSeg samples of subsets {subsets} in {root}")
    return samples


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
