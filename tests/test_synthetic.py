import json

import numpy as np
import pytest

from kerasmed.data.io import read_image, read_mask
from kerasmed.data.readers import read_folder_pair
from kerasmed.data.synthetic import MANIFEST, generate_polyp_dataset, make_polyp_image


def test_image_and_mask_shapes_and_values():
    image, mask = make_polyp_image(np.random.default_rng(0), 96, 128)
    assert image.shape == (96, 128, 3) and image.dtype == np.uint8
    assert mask.shape == (96, 128) and set(np.unique(mask)) == {0, 255}
    # A polyp covers a plausible share of the frame, and the frame is not flat.
    assert 0.01 < (mask > 0).mean() < 0.5
    assert image.std() > 10


def test_polyp_differs_from_its_surroundings():
    # The task is learnable: polyp pixels are on average brighter than the mucosa around them.
    diffs = []
    for k in range(10):
        image, mask = make_polyp_image(np.random.default_rng([0, k]), 144, 192)
        grey = image.mean(axis=2)
        inside = grey[mask > 0].mean()
        ring = (np.pad(mask, 8)[16:, 16:] == 0)  # crude neighbourhood: not the polyp
        diffs.append(inside - grey[ring & (grey > 20)].mean())
    assert np.mean(diffs) > 5


def test_generation_is_deterministic_and_reused(tmp_path):
    a = generate_polyp_dataset(tmp_path / "a", n_images=4, height=40, width=48, seed=7)
    b = generate_polyp_dataset(tmp_path / "b", n_images=6, height=40, width=48, seed=7)
    for k in range(4):
        name = f"{k:04d}.png"
        assert (a / "images" / name).read_bytes() == (b / "images" / name).read_bytes()
        assert (a / "masks" / name).read_bytes() == (b / "masks" / name).read_bytes()
    stamp = (a / "images" / "0000.png").stat().st_mtime_ns
    generate_polyp_dataset(tmp_path / "a", n_images=4, height=40, width=48, seed=7)
    assert (a / "images" / "0000.png").stat().st_mtime_ns == stamp
    assert json.loads((a / MANIFEST).read_text())["seed"] == 7


def test_written_in_the_paired_folder_layout(tmp_path):
    root = generate_polyp_dataset(tmp_path / "d", n_images=3, height=40, width=48)
    samples = read_folder_pair(root)
    assert [s.image.name for s in samples] == ["0000.png", "0001.png", "0002.png"]
    assert read_image(samples[0].image).shape == (40, 48, 3)
    assert set(np.unique(read_mask(samples[0].mask))) <= {0, 1}


def test_never_overwrites_other_data(tmp_path):
    generate_polyp_dataset(tmp_path / "d", n_images=2, height=40, width=48, seed=1)
    with pytest.raises(FileExistsError, match="seed"):
        generate_polyp_dataset(tmp_path / "d", n_images=2, height=40, width=48, seed=2)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a kerasmed synthetic dataset"):
        generate_polyp_dataset(other, n_images=2)
    assert (other / "notes.txt").read_text() == "mine"


def test_write_png_keeps_grey_grey_and_colours_in_order(tmp_path):
    import cv2

    from kerasmed.data.folders import write_png
    from kerasmed.data.io import read_image

    grey = np.arange(64, dtype=np.uint16).reshape(8, 8)[..., None] * 1000
    write_png(tmp_path / "g.png", grey)
    assert cv2.imread(str(tmp_path / "g.png"), cv2.IMREAD_UNCHANGED).shape == (8, 8)
    assert np.array_equal(read_image(tmp_path / "g.png"), grey)
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 200  # red
    write_png(tmp_path / "c.png", rgb)
    assert np.array_equal(read_image(tmp_path / "c.png"), rgb)
