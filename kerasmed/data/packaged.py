"""Real images with segmentation masks that ship inside PyPI packages, written out as ``folder``
datasets, so kerasmed can be tested on real data without downloading anything.

Each extractor copies the files of one installed package into ``root/images/<stem>.png`` and
``root/masks/<stem>.png``, the layout ``read_dataset("folder", root)`` reads, with a manifest
``kerasmed_packaged.json`` that records the source package and version, the files used (with
their SHA-256), the original dataset and the licences. Nothing is fetched over the network: if
the package is not installed, the extractor raises ``ImportError`` naming the ``pip install``
that provides it. The packages are located with ``importlib`` without being imported (importing
stardist would start TensorFlow), so extraction takes a fraction of a second.

``dsb2018_stardist``
    One fluorescence image of stained nuclei (512 x 512) with its hand-annotated instance mask
    (125 nuclei), from the 2018 Data Science Bowl (BBBC038v1), as shipped by ``stardist`` for its
    tests. It is cut into non-overlapping square tiles (128 px: 16 samples); a nucleus that
    crosses a tile border becomes a partial object in each tile. Masks: instance labels 1..n per
    tile, 16-bit PNG (read them with ``mask_type="instances"`` / ``read_label_mask``). All tiles
    come from one field of view: use them to exercise the pipeline on real data, not to measure
    generalisation.

``mni152_nilearn``
    Axial slices of the ICBM 2009a non-linear symmetric MNI152 T1 template (1 mm, skull-stripped)
    with a binary grey- or white-matter mask (the template's tissue probability > 0.5), as shipped
    by ``nilearn``. The template is a population average of 152 adult brains, not one subject's
    scan; its tissue maps come from automatic classification, not manual outlining; slices of one
    volume are strongly correlated. Masks: 0/255 PNG.

Every extraction is deterministic. An existing folder is reused when its manifest says it holds
the same extraction (same dataset, options and source files); any other non-empty folder is
refused with ``FileExistsError``, as ``generate_polyp_dataset`` does.

``python -m kerasmed.data.packaged NAME ROOT [--option KEY=VALUE ...]`` extracts from the command
line; ``--list`` lists the datasets and the package each needs.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.util
import inspect
import json
import sys
from pathlib import Path

import numpy as np

from kerasmed.data.folders import write_folder_dataset
from kerasmed.data.io import read_image, read_label_mask
from kerasmed.names import unknown_name_message

__all__ = ["extract_dsb2018_stardist", "extract_mni152_nilearn", "extract_packaged_dataset",
           "PACKAGED_DATASETS", "REQUIREMENTS", "MANIFEST", "main"]

MANIFEST = "kerasmed_packaged.json"
_FORMAT_VERSION = 1

# The pip requirement that provides each dataset (the versions the extractors were checked with).
REQUIREMENTS = {"dsb2018_stardist": "stardist>=0.9.2", "mni152_nilearn": "nilearn>=0.14.1"}


# ------------------------------------------------------------------------------------- helpers


def _package(module: str, dataset: str) -> tuple[Path, str, str]:
    """``(package folder, installed version, licence from the package metadata)`` of ``module``,
    found without importing it. Raises ``ImportError`` naming the pip install when it is absent."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the packaged dataset {dataset!r} is read from the {module!r} package, "
                          f"which is not installed: pip install '{REQUIREMENTS[dataset]}' (it is "
                          f"in kerasmed's test extra: pip install -e '.[test]')")
    try:
        meta = importlib.metadata.metadata(module)
        version = meta["Version"]
        licence = meta.get("License-Expression") or meta.get("License") or "see the package"
    except importlib.metadata.PackageNotFoundError:
        version, licence = "unknown", "see the package"
    return Path(list(spec.submodule_search_locations)[0]), version, licence


def _source_files(base: Path, relative: list[str], dataset: str) -> dict[str, Path]:
    paths = {rel: base / rel for rel in relative}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"the packaged dataset {dataset!r} needs {', '.join(missing)}, "
                                f"which the installed package lacks; install "
                                f"'{REQUIREMENTS[dataset]}'")
    return paths


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _identity(manifest: dict) -> dict:
    """What decides whether a folder holds the requested extraction (not the package version
    alone: a new release that ships the same files gives the same dataset)."""
    return {key: manifest.get(key) for key in ("format_version", "dataset", "options")} | {
        "files": {f: d.get("sha256") for f, d in manifest.get("source", {}).get("files",
                                                                                 {}).items()}}


def _write_dataset(root, manifest: dict, samples) -> Path:
    """Write ``samples`` (``(stem, image, mask)``, lazily) under ``root`` unless it already holds
    this extraction; the manifest goes last so a half-written folder is never taken as done."""
    root = Path(root)
    path = root / MANIFEST
    if path.exists():
        try:
            found = json.loads(path.read_text())
            if not isinstance(found, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as err:
            raise FileExistsError(f"{root} holds an unreadable {MANIFEST} ({err}); choose another "
                                  f"root or delete that folder") from err
        have, want = _identity(found), _identity(manifest)
        if have == want:
            return root
        differs = ("made from other source files (another release of the package?)"
                   if {k: have[k] for k in have if k != "files"} ==
                   {k: want[k] for k in want if k != "files"} else
                   f"{have['dataset']!r} with options {have['options']}")
        raise FileExistsError(f"{root} holds the packaged dataset {differs}, not the requested "
                              f"{want['dataset']!r} with options {want['options']}; choose "
                              f"another root or delete that folder")
    write_folder_dataset(root, samples, MANIFEST, lambda n: dict(manifest, n_samples=n),
                         "packaged dataset")
    return root


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Instance labels renumbered 1..n in order of first appearance (row-major), as ``uint16``."""
    values, first = np.unique(labels.ravel(), return_index=True)
    keep = values != 0
    values, first = values[keep], first[keep]
    order = values[np.argsort(first)]
    lut = np.zeros(int(labels.max()) + 1, np.uint16)
    lut[order] = np.arange(1, len(order) + 1, dtype=np.uint16)
    return lut[labels]


# ------------------------------------------------------------------------- DSB 2018 (stardist)

_DSB_FILES = ["data/images/img2d.tif", "data/images/mask2d.tif"]


def extract_dsb2018_stardist(root, tile: int = 128) -> Path:
    """Write stardist's Data Science Bowl 2018 nuclei image, cut into tiles, to ``root``.

    Args:
        tile: side of the square, non-overlapping tiles (pixels). The 512 x 512 image gives
            ``(512 // tile) ** 2`` samples (a remainder at the right and bottom is dropped);
            ``tile=512`` keeps the whole image as one sample.

    Samples are named ``dsb2018_y<row>_x<col>`` (pixel offsets). Images are 8-bit grey PNGs when
    the source values fit (they do: 0..235, stored as uint16 in the TIFF; the conversion is
    lossless), else 16-bit. Masks are 16-bit PNG instance labels, renumbered 1..n per tile.

    Returns:
        The dataset root as a ``Path``; read it with
        ``read_dataset("folder", root, mask_type="instances")``.

    Raises:
        ImportError: stardist is not installed (the message names the pip install).
        FileExistsError: ``root`` holds something else.
    """
    dataset = "dsb2018_stardist"
    tile = int(tile)
    base, version, licence = _package("stardist", dataset)
    files = _source_files(base, _DSB_FILES, dataset)
    image_path, mask_path = files[_DSB_FILES[0]], files[_DSB_FILES[1]]
    image = read_image(image_path)[..., 0]
    labels = read_label_mask(mask_path)
    if image.shape != labels.shape:
        raise ValueError(f"{image_path} and {mask_path} differ in shape: {image.shape} vs "
                         f"{labels.shape}")
    height, width = image.shape
    if not 16 <= tile <= min(height, width):
        raise ValueError(f"tile must be between 16 and {min(height, width)} pixels, not {tile}")
    if int(image.max()) <= 255:
        image = image.astype(np.uint8)
        image_note = (f"stored as uint16 with values {int(image.min())}..{int(image.max())}; "
                      f"written as 8-bit PNG without loss")
    else:
        image_note = "16-bit PNG, values as stored"
    manifest = {
        "format_version": _FORMAT_VERSION,
        "dataset": dataset,
        "options": {"tile": tile},
        "source": {
            "package": "stardist", "version": version, "requirement": REQUIREMENTS[dataset],
            "files": {f"stardist/{rel}": {"sha256": _sha256(p)} for rel, p in files.items()},
            "accessor": "stardist.data.test_image_nuclei_2d(return_mask=True)",
        },
        "original_dataset": ("2018 Data Science Bowl (Kaggle), stage 1 training images, "
                             "redistributed by the Broad Bioimage Benchmark Collection as "
                             "BBBC038v1; fluorescence microscopy of stained nuclei with hand-"
                             "annotated instance masks"),
        "citation": ("Caicedo et al., Nucleus segmentation across imaging experiments: the 2018 "
                     "Data Science Bowl, Nature Methods 16, 1247-1253 (2019). We used image set "
                     "BBBC038v1 [Caicedo et al.], available from the Broad Bioimage Benchmark "
                     "Collection [Ljosa et al., Nature Methods, 2012]."),
        "licence": {
            "package": f"{licence} (stardist, Uwe Schmidt and Martin Weigert)",
            "data": ("BBBC038v1 is listed as CC0 1.0 (public domain dedication) by its "
                     "redistributors; stardist does not state a separate licence for its data"),
        },
        "preparation": (f"the {height} x {width} image cut into non-overlapping {tile} x {tile} "
                        f"tiles in row-major order (remainder dropped); instance labels "
                        f"renumbered 1..n per tile, so a nucleus crossing a tile border is a "
                        f"partial object in each tile; image {image_note}"),
        "mask_type": "instances",
        "caveat": "all tiles come from one field of view",
    }

    def samples():
        for y in range(0, height - tile + 1, tile):
            for x in range(0, width - tile + 1, tile):
                window = (slice(y, y + tile), slice(x, x + tile))
                yield f"dsb2018_y{y:03d}_x{x:03d}", image[window], _relabel(labels[window])

    return _write_dataset(root, manifest, samples())


# ------------------------------------------------------------------------ MNI152 (nilearn)

_MNI_FILES = {"t1": "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
              "gm": "datasets/data/mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
              "wm": "datasets/data/mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz"}
_MNI_SLICES = tuple(range(30, 141, 10))


def _read_nifti(path: Path) -> np.ndarray:
    try:
        import nibabel
    except ImportError as err:  # nilearn requires nibabel, so this means a broken install
        raise ImportError(f"reading {path} needs nibabel (a dependency of nilearn): "
                          f"pip install '{REQUIREMENTS['mni152_nilearn']}'") from err
    image = nibabel.load(str(path))
    if nibabel.aff2axcodes(image.affine) != ("R", "A", "S"):
        raise ValueError(f"{path}: expected RAS voxel axes, found "
                         f"{nibabel.aff2axcodes(image.affine)}")
    return np.asarray(image.dataobj)


def extract_mni152_nilearn(root, tissue: str = "gm", slices=_MNI_SLICES) -> Path:
    """Write axial slices of nilearn's MNI152 T1 template with a tissue mask to ``root``.

    Args:
        tissue: ``"gm"`` (grey matter) or ``"wm"`` (white matter): the mask is the template's
            tissue probability > 0.5 (stored value > 127 of 255).
        slices: axial slice indices (0..188, 1 mm apart; default 30, 40, ..., 140: 12 slices,
            each with at least 3000 grey-matter pixels).

    Slices are 233 x 197 (height x width) 8-bit grey PNGs, anterior at the top and the subject's
    left on the image's left; masks are 0/255 PNGs. Samples are named ``mni152_z<index>``.

    Returns:
        The dataset root as a ``Path``; read it with ``read_dataset("folder", root)``.

    Raises:
        ImportError: nilearn is not installed (the message names the pip install).
        FileExistsError: ``root`` holds something else.
    """
    dataset = "mni152_nilearn"
    if tissue not in ("gm", "wm"):
        raise ValueError(unknown_name_message("tissue", tissue, ["gm", "wm"]))
    try:
        slices = [int(z) for z in slices]
    except (TypeError, ValueError) as err:
        raise ValueError(f"slices must be a list of axial indices, not {slices!r}") from err
    if not slices or len(set(slices)) != len(slices):
        raise ValueError(f"slices must be distinct axial indices, not {slices}")
    base, version, licence = _package("nilearn", dataset)
    relative = [_MNI_FILES["t1"], _MNI_FILES[tissue]]
    files = _source_files(base, relative, dataset)
    t1 = _read_nifti(files[relative[0]])
    probability = _read_nifti(files[relative[1]])
    if t1.shape != probability.shape or t1.dtype != np.uint8 or probability.dtype != np.uint8:
        raise ValueError(f"unexpected template volumes: {t1.shape} {t1.dtype} and "
                         f"{probability.shape} {probability.dtype}")
    bad = [z for z in slices if not 0 <= z < t1.shape[2]]
    if bad:
        raise ValueError(f"slice indices {bad} are outside 0..{t1.shape[2] - 1}")
    names = {"gm": "grey matter", "wm": "white matter"}
    manifest = {
        "format_version": _FORMAT_VERSION,
        "dataset": dataset,
        "options": {"tissue": tissue, "slices": slices},
        "source": {
            "package": "nilearn", "version": version, "requirement": REQUIREMENTS[dataset],
            "files": {f"nilearn/{rel}": {"sha256": _sha256(p)} for rel, p in files.items()},
            "accessor": ("nilearn.datasets.load_mni152_template(resolution=1), "
                         f"load_mni152_{tissue}_template(resolution=1)"),
        },
        "original_dataset": ("ICBM 2009a non-linear symmetric MNI152 template (McConnell Brain "
                             "Imaging Centre, Montreal Neurological Institute): a T1-weighted "
                             "population average of 152 adult brains, 1 mm, skull-stripped, with "
                             "tissue probability maps from automatic classification"),
        "citation": ("Fonov et al., Unbiased average age-appropriate atlases for pediatric "
                     "studies, NeuroImage 54(1), 2011; Fonov et al., NeuroImage 47, S102, 2009; "
                     "Collins et al., ANIMAL+INSECT, 1999"),
        "licence": {
            "package": f"{licence} (nilearn)",
            "data": ("nilearn's description of the template gives its licence as 'unknown'; the "
                     "MNI distributes the ICBM 2009 templates under a permissive copyright "
                     "notice (use, copy, modify and distribute without fee, keeping the notice)"),
        },
        "preparation": (f"axial slices {slices} of the (197, 233, 189) RAS volume, rotated so "
                        f"anterior is up and the subject's left is on the image's left; mask: "
                        f"{names[tissue]} probability > 0.5"),
        "mask_type": "binary",
        "caveat": ("a population-average template, not one subject's scan; the masks are "
                   "automatic tissue classes; slices of one volume are strongly correlated"),
    }

    def samples():
        for z in slices:
            image = np.ascontiguousarray(np.rot90(t1[:, :, z]))
            mask = (np.rot90(probability[:, :, z]) > 127).astype(np.uint8) * 255
            yield f"mni152_z{z:03d}", image, np.ascontiguousarray(mask)

    return _write_dataset(root, manifest, samples())


# --------------------------------------------------------------------------------- registry

# Real datasets kerasmed can write from an installed package, by name.
PACKAGED_DATASETS = {"dsb2018_stardist": extract_dsb2018_stardist,
                     "mni152_nilearn": extract_mni152_nilearn}


def extract_packaged_dataset(name: str, root, **options) -> Path:
    """``PACKAGED_DATASETS[name](root, **options)``, with unknown names reported by name."""
    if name not in PACKAGED_DATASETS:
        raise ValueError(unknown_name_message("packaged dataset", name, PACKAGED_DATASETS))
    extract = PACKAGED_DATASETS[name]
    valid = [p for p in inspect.signature(extract).parameters if p != "root"]
    for key in options:
        if key not in valid:
            raise ValueError(f"{unknown_name_message(f'option of {name!r}', key, valid)}")
    return extract(root, **options)


def _option(text: str):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def main(argv=None) -> int:
    """``python -m kerasmed.data.packaged NAME ROOT [--option KEY=VALUE ...]``; 0 on success."""
    parser = argparse.ArgumentParser(
        prog="python -m kerasmed.data.packaged",
        description="Write a real dataset shipped inside an installed package as images/ and "
                    "masks/ under ROOT.")
    parser.add_argument("name", nargs="?", help=f"one of {', '.join(PACKAGED_DATASETS)}")
    parser.add_argument("root", nargs="?", help="folder to write (new or empty)")
    parser.add_argument("--option", "-o", action="append", type=_option, default=[],
                        metavar="KEY=VALUE", help="extractor option, VALUE parsed as JSON "
                        "(tile=256, tissue=wm, slices=[60,90])")
    parser.add_argument("--list", action="store_true", help="list the datasets and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, requirement in REQUIREMENTS.items():
            print(f"{name}\tpip install '{requirement}'")
        return 0
    if not args.name or not args.root:
        parser.error("NAME and ROOT are required (or --list)")
    try:
        root = extract_packaged_dataset(args.name, args.root, **dict(args.option))
    except (ImportError, OSError, ValueError) as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
    count = json.loads((root / MANIFEST).read_text())["n_samples"]
    print(f"{root}: {count} image/mask pairs ({args.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
