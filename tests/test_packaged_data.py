"""Real images with masks shipped inside PyPI packages (kerasmed.data.packaged).

The packages are in the test extra; when one is missing its tests fail (not skip) and say what
to install.
"""

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from kerasmed.data import packaged
from kerasmed.data.io import MaskValueError, read_image, read_label_mask, read_mask
from kerasmed.data.packaged import (MANIFEST, PACKAGED_DATASETS, REQUIREMENTS,
                                    extract_dsb2018_stardist, extract_mni152_nilearn,
                                    extract_packaged_dataset, main)
from kerasmed.data.readers import read_dataset

DATASET_OF = {"stardist": "dsb2018_stardist", "nilearn": "mni152_nilearn"}


def _package_dir(module) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"the {module!r} package is not installed; these tests read the real images "
                    f"it ships. Install the test extra: pip install -e '.[test]' (it holds "
                    f"{REQUIREMENTS[DATASET_OF[module]]!r})", pytrace=False)
    return Path(list(spec.submodule_search_locations)[0])


def _raw(path):
    return cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.fixture(scope="module")
def dsb_root(tmp_path_factory):
    _package_dir("stardist")
    return extract_dsb2018_stardist(tmp_path_factory.mktemp("packaged") / "dsb")


@pytest.fixture(scope="module")
def mni_root(tmp_path_factory):
    _package_dir("nilearn")
    return extract_mni152_nilearn(tmp_path_factory.mktemp("packaged") / "mni")


# ---------------------------------------------------------------------- DSB 2018 via stardist


def test_dsb_tiles_are_read_by_the_folder_reader(dsb_root):
    samples = read_dataset("folder", dsb_root, mask_type="instances")
    assert len(samples) == 16
    assert [s.image.stem for s in samples[:2]] == ["dsb2018_y000_x000", "dsb2018_y000_x128"]
    n_objects = 0
    for sample in samples:
        assert sample.mask_type == "instances"
        image = read_image(sample.image)
        assert image.shape == (128, 128, 1) and image.dtype == np.uint8
        labels = read_label_mask(sample.mask)
        assert labels.shape == (128, 128) and labels.dtype == np.uint16
        found = np.unique(labels)
        assert list(found) == list(range(len(found)))  # renumbered 1..n per tile
        assert 3 <= len(found) - 1 <= 30  # a few nuclei per tile
        n_objects += len(found) - 1
        binary = read_mask(sample.mask, mask_type="instances")
        assert set(np.unique(binary)) <= {0, 1} and np.array_equal(binary, labels > 0)
    # 125 nuclei in the whole image; those crossing a tile border are counted once per tile.
    assert 125 < n_objects < 200


def test_dsb_tiles_put_back_together_give_the_shipped_image_and_mask(dsb_root):
    source = _package_dir("stardist") / "data" / "images"
    image, labels = _raw(source / "img2d.tif"), _raw(source / "mask2d.tif")
    assert image.shape == labels.shape == (512, 512)
    mosaic = np.zeros_like(image)
    foreground = np.zeros(image.shape, bool)
    for path in (dsb_root / "images").iterdir():
        y, x = (int(part[1:]) for part in path.stem.split("_")[1:])
        mosaic[y:y + 128, x:x + 128] = read_image(path)[..., 0]
        foreground[y:y + 128, x:x + 128] = read_label_mask(dsb_root / "masks" / path.name) > 0
    assert np.array_equal(mosaic, image)
    assert np.array_equal(foreground, labels > 0)


def test_dsb_instance_masks_are_not_taken_for_binary_ones(dsb_root):
    # Instance labels 1..n in a 16-bit PNG are refused by the automatic binary reading: the
    # reader must be told mask_type="instances" (as the folder reader's option does).
    with pytest.raises(MaskValueError, match="instance-label"):
        read_mask(dsb_root / "masks" / "dsb2018_y000_x000.png")


def test_dsb_manifest_records_source_and_licence(dsb_root):
    manifest = json.loads((dsb_root / MANIFEST).read_text())
    assert manifest["dataset"] == "dsb2018_stardist" and manifest["n_samples"] == 16
    assert manifest["source"]["package"] == "stardist" and manifest["source"]["version"]
    assert set(manifest["source"]["files"]) == {"stardist/data/images/img2d.tif",
                                                "stardist/data/images/mask2d.tif"}
    assert all(len(f["sha256"]) == 64 for f in manifest["source"]["files"].values())
    assert "BSD" in manifest["licence"]["package"] and "CC0" in manifest["licence"]["data"]
    assert "BBBC038" in manifest["original_dataset"]


def test_dsb_whole_image_as_one_tile(tmp_path):
    _package_dir("stardist")
    root = extract_dsb2018_stardist(tmp_path / "whole", tile=512)
    (sample,) = read_dataset("folder", root, mask_type="instances")
    labels = read_label_mask(sample.mask)
    assert labels.shape == (512, 512) and labels.max() == 125
    areas = np.bincount(labels.ravel())[1:]
    assert 300 < np.median(areas) < 600  # nuclei of ~20-25 px diameter
    with pytest.raises(ValueError, match="tile must be between"):
        extract_dsb2018_stardist(tmp_path / "bad", tile=8)


# ----------------------------------------------------------------------- MNI152 via nilearn


def test_mni_slices_are_read_by_the_folder_reader(mni_root):
    samples = read_dataset("folder", mni_root)
    assert [s.image.stem for s in samples] == [f"mni152_z{z:03d}" for z in range(30, 141, 10)]
    for sample in samples:
        assert sample.mask_type is None
        image = read_image(sample.image)
        assert image.shape == (233, 197, 1) and image.dtype == np.uint8
        stored = _raw(sample.mask)
        assert stored.shape == (233, 197) and set(np.unique(stored)) == {0, 255}
        mask = read_mask(sample.mask)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 1}
        assert 0.05 < mask.mean() < 0.4
        # Grey matter lies inside the skull-stripped brain.
        assert (image[..., 0][mask > 0] > 0).all()
    manifest = json.loads((mni_root / MANIFEST).read_text())
    assert manifest["source"]["package"] == "nilearn" and manifest["n_samples"] == 12
    assert manifest["options"] == {"tissue": "gm", "slices": list(range(30, 141, 10))}


def test_mni_white_matter_and_chosen_slices(mni_root, tmp_path):
    root = extract_mni152_nilearn(tmp_path / "wm", tissue="wm", slices=[70, 90])
    names = sorted(p.name for p in (root / "masks").iterdir())
    assert names == ["mni152_z070.png", "mni152_z090.png"]
    assert (read_image(root / "images" / names[0]) ==
            read_image(mni_root / "images" / names[0])).all()
    wm, gm = read_mask(root / "masks" / names[0]), read_mask(mni_root / "masks" / names[0])
    assert wm.any() and not (wm & gm).any()  # p > 0.5 for both is impossible
    with pytest.raises(ValueError, match="Did you mean 'wm'"):
        extract_mni152_nilearn(tmp_path / "x", tissue="wn")
    with pytest.raises(ValueError, match="outside"):
        extract_mni152_nilearn(tmp_path / "y", slices=[500])


# ------------------------------------------------------------------------- shared behaviour


def test_extraction_is_deterministic_and_reused(dsb_root, tmp_path):
    again = extract_dsb2018_stardist(tmp_path / "again")
    for path in (dsb_root / "images").iterdir():
        for sub in ("images", "masks"):
            assert (again / sub / path.name).read_bytes() == (dsb_root / sub /
                                                               path.name).read_bytes()
    stamp = (again / "masks" / "dsb2018_y000_x000.png").stat().st_mtime_ns
    assert extract_packaged_dataset("dsb2018_stardist", again) == again
    assert (again / "masks" / "dsb2018_y000_x000.png").stat().st_mtime_ns == stamp


def test_refuses_other_contents(dsb_root, tmp_path):
    with pytest.raises(FileExistsError, match="options"):
        extract_dsb2018_stardist(dsb_root, tile=256)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="refusing"):
        extract_dsb2018_stardist(tmp_path / "mine")
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]


def test_missing_package_names_the_pip_install(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(packaged.importlib.util, "find_spec",
                        lambda name, *args: None if name in DATASET_OF else real(name, *args))
    for name, extract in PACKAGED_DATASETS.items():
        with pytest.raises(ImportError, match=f"pip install '{REQUIREMENTS[name]}'"):
            extract(tmp_path / name)
        assert not (tmp_path / name).exists()


def test_unknown_names_and_options():
    with pytest.raises(ValueError, match="Did you mean 'dsb2018_stardist'"):
        extract_packaged_dataset("dsb2018_stardst", "unused")
    with pytest.raises(ValueError, match="Did you mean 'tile'"):
        extract_packaged_dataset("dsb2018_stardist", "unused", tiles=64)


def test_command_line(dsb_root, tmp_path, capsys):
    assert main(["--list"]) == 0
    assert "stardist>=" in capsys.readouterr().out
    assert main(["dsb2018_stardist", str(tmp_path / "cli"), "-o", "tile=256"]) == 0
    assert "4 image/mask pairs" in capsys.readouterr().out
    assert len(read_dataset("folder", tmp_path / "cli", mask_type="instances")) == 4
    assert main(["dsb2018_stardist", str(dsb_root), "-o", "tile=256"]) == 1
    assert "choose another root" in capsys.readouterr().err
    assert main(["nonsense", str(tmp_path / "n")]) == 1
