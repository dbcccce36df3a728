"""Readers for the public layouts, on small look-alikes built on the fly (no downloads)."""

import warnings

import numpy as np
import pytest

from kerasmed.data import lookalike
from kerasmed.data.io import read_image, read_label_mask, read_mask
from kerasmed.data.readers import (CVC_CLINICDB_SEQUENCES, READERS, DatasetLayoutError,
                                   read_dataset, read_folder_pair)


# --------------------------------------------------------------------------- CVC-ClinicDB

@pytest.fixture(scope="module")
def cvc(tmp_path_factory):
    root = tmp_path_factory.mktemp("cvc")
    lookalike.make_cvc_clinicdb(root, png_copy=False)
    return root


def test_cvc_reads_all_frames_in_numeric_order_with_sequences(cvc):
    samples = read_dataset("cvc_clinicdb", cvc)
    assert len(samples) == 612
    assert [s.image.name for s in samples[:3]] == ["1.tif", "2.tif", "3.tif"]
    assert samples[0].mask.parent.name == "Ground Truth"
    assert len({s.group for s in samples}) == len(CVC_CLINICDB_SEQUENCES) == 29
    by_frame = {int(s.image.stem): s.group for s in samples}
    assert by_frame[25] == "seq01" and by_frame[26] == "seq02" and by_frame[612] == "seq29"
    # Root may also be the CVC-ClinicDB folder itself.
    assert read_dataset("cvc_clinicdb", cvc / "CVC-ClinicDB")[5] == samples[5]
    # Images are 384x288-shaped RGB TIFF (tiny here); some masks are 3-channel.
    assert read_image(samples[0].image).shape == (36, 48, 3)
    assert read_image(samples[1].mask).shape == (36, 48, 3)
    assert set(np.unique(read_mask(samples[1].mask))) == {0, 1}


def test_cvc_table_covers_612_frames_without_gaps():
    frames = [f for first, last in CVC_CLINICDB_SEQUENCES for f in range(first, last + 1)]
    assert frames == list(range(1, 613))


def test_cvc_sequences_from_a_user_csv_or_none(tmp_path):
    lookalike.make_cvc_clinicdb(tmp_path, frames=range(1, 7))
    csv = tmp_path / "seq.csv"
    csv.write_text("frame,sequence\n" + "".join(f"{n},video{(n - 1) // 3}\n" for n in range(1, 7)))
    samples = read_dataset("cvc_clinicdb", tmp_path, sequences=csv)
    assert [s.group for s in samples] == ["video0"] * 3 + ["video1"] * 3
    assert {s.group for s in read_dataset("cvc_clinicdb", tmp_path, sequences=None)} == {None}
    csv.write_text("frame,sequence\n1,a\n2,a\n")
    with pytest.raises(DatasetLayoutError, match=r"4 image\(s\) have no group.*3\.tif"):
        read_dataset("cvc_clinicdb", tmp_path, sequences=csv)


def test_cvc_png_copy_and_format_choice(tmp_path):
    lookalike.make_cvc_clinicdb(tmp_path, frames=range(1, 4), png_copy=True)
    assert read_dataset("cvc_clinicdb", tmp_path)[0].image.suffix == ".tif"
    png = read_dataset("cvc_clinicdb", tmp_path, image_format="png")
    assert png[0].image.suffix == ".png" and png[0].mask.parent.name == "Ground Truth"
    assert png[0].mask.parent.parent.name == "PNG"


def test_cvc_missing_masks_are_listed(tmp_path):
    base = lookalike.make_cvc_clinicdb(tmp_path, frames=range(1, 5))
    (base / "Ground Truth" / "3.tif").unlink()
    with pytest.raises(DatasetLayoutError, match=r"Original/3\.tif \(no mask\)"):
        read_dataset("cvc_clinicdb", tmp_path)
    with pytest.warns(UserWarning, match=r"3\.tif \(no mask\)"):
        samples = read_dataset("cvc_clinicdb", tmp_path, on_unpaired="skip")
    assert [s.image.stem for s in samples] == ["1", "2", "4"]
    for f in (base / "Ground Truth").iterdir():
        f.unlink()
    (base / "Ground Truth").rmdir()
    with pytest.raises(DatasetLayoutError, match="Ground Truth"):
        read_dataset("cvc_clinicdb", tmp_path)


# ------------------------------------------------------------------------------ Kvasir-SEG

def test_kvasir_jpeg_masks_and_varying_sizes(tmp_path):
    lookalike.make_kvasir_seg(tmp_path, n=5)
    samples = read_dataset("kvasir_seg", tmp_path)
    assert len(samples) == 5 and all(s.image.suffix == ".jpg" == s.mask.suffix for s in samples)
    assert len({read_image(s.image).shape for s in samples}) > 1
    raw = read_image(samples[0].mask)
    assert len(np.unique(raw)) > 2  # JPEG noise
    assert set(np.unique(read_mask(samples[0].mask))) == {0, 1}
    assert read_dataset("kvasir_seg", tmp_path / "Kvasir-SEG") == samples


# ------------------------------------------------------------------------------------ GlaS

def test_glas_subsets_patients_and_instance_labels(tmp_path):
    lookalike.make_glas(tmp_path)
    samples = read_dataset("glas", tmp_path)
    assert len(samples) == 8
    assert {s.subset for s in samples} == {"train", "testA", "testB"}
    assert all(s.mask.name == s.image.stem + "_anno.bmp" for s in samples)
    assert all(s.mask_type == "instances" for s in samples)
    train1 = next(s for s in samples if s.image.name == "train_1.bmp")
    train2 = next(s for s in samples if s.image.name == "train_2.bmp")
    assert train1.group == train2.group == "patient1"
    labels = read_label_mask(train1.mask)
    assert labels.max() >= 2  # instance labels kept
    assert np.array_equal(read_mask(train1.mask, mask_type="instances"), (labels > 0))
    only_train = read_dataset("glas", tmp_path, subsets=["train"])
    assert {s.subset for s in only_train} == {"train"} and len(only_train) == 4


def test_glas_without_grade_csv_warns_and_bad_names_fail(tmp_path):
    base = lookalike.make_glas(tmp_path, grade_csv=False, counts=(("train", 2),))
    with pytest.warns(UserWarning, match="no Grade.csv"):
        samples = read_dataset("glas", tmp_path)
    assert {s.group for s in samples} == {None}
    (base / "train_2_anno.bmp").unlink()
    with pytest.raises(DatasetLayoutError, match=r"train_2\.bmp \(no mask\)"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            read_dataset("glas", tmp_path)
    (base / "extra.bmp").write_bytes((base / "train_1.bmp").read_bytes())
    with pytest.raises(DatasetLayoutError, match="extra.bmp"):
        read_dataset("glas", base)


# ------------------------------------------------------------------------------- ISIC 2018

def test_isic_subsets_and_text_files_ignored(tmp_path):
    lookalike.make_isic2018(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # LICENSE / ATTRIBUTION must not even warn
        samples = read_dataset("isic2018", tmp_path)
    assert len(samples) == 6 and [s.subset for s in samples].count("val") == 2
    assert samples[0].mask.name == samples[0].image.stem + "_segmentation.png"
    assert read_dataset("isic2018", tmp_path, subsets=["training"]) == samples[:4]
    lookalike.make_isic2018(tmp_path / "notest", counts=(("Training", 1), ("Test", 1)))
    for f in (tmp_path / "notest" / "ISIC2018_Task1_Test_GroundTruth").iterdir():
        f.unlink()
    (tmp_path / "notest" / "ISIC2018_Task1_Test_GroundTruth").rmdir()
    with pytest.warns(UserWarning, match="Test_Input: it has no ground-truth folder"):
        assert len(read_dataset("isic2018", tmp_path / "notest")) == 1
    with pytest.raises(DatasetLayoutError, match="no ground-truth folder"):
        read_dataset("isic2018", tmp_path / "notest", subsets=["test"])
    gt = tmp_path / "ISIC2018_Task1_Training_GroundTruth" / "ISIC_0000001_segmentation.png"
    gt.unlink()
    with pytest.raises(DatasetLayoutError, match=r"ISIC_0000001\.jpg \(no mask\)"):
        read_dataset("isic2018", tmp_path)


# --------------------------------------------------------------------------------- OCT2017

def test_oct_classes_patients_and_trailing_space_folder(tmp_path):
    lookalike.make_oct2017(tmp_path, per_class=2)
    samples = read_dataset("oct2017", tmp_path)
    assert len(samples) == 16 and {s.label for s in samples} == {"CNV", "DME", "DRUSEN", "NORMAL"}
    assert samples[0].mask is None and samples[0].image.parent.parent.parent.name == "OCT2017 "
    s = next(x for x in samples if x.image.name == "DME-1000007-2.jpeg")
    assert s.group == "patient1000007" and s.label == "DME" and s.subset == "train"
    # A patient appears in several classes: the group spans them.
    assert len({x.label for x in samples if x.group == "patient1000000"}) == 4
    assert read_image(s.image).shape[2] == 1
    assert len(read_dataset("oct2017", tmp_path, subsets=["test"])) == 8


def test_oct_bad_file_names_are_listed(tmp_path):
    base = lookalike.make_oct2017(tmp_path, per_class=1, splits=("train",))
    src = next((base / "train" / "CNV").iterdir())
    (base / "train" / "CNV" / "scan_7.jpeg").write_bytes(src.read_bytes())
    (base / "train" / "NORMAL" / "CNV-1-1.jpeg").write_bytes(src.read_bytes())
    with pytest.raises(DatasetLayoutError, match=r"2 file name.*scan_7\.jpeg.*NORMAL/CNV-1-1"):
        read_dataset("oct2017", tmp_path)


# ------------------------------------------------------------------------- generic + CSV

def test_folder_pair_matches_stems_across_extensions(tmp_path):
    lookalike.write_image(tmp_path / "images" / "10.jpg", np.zeros((4, 4, 3), np.uint8))
    lookalike.write_image(tmp_path / "images" / "2.png", np.zeros((4, 4, 3), np.uint8))
    lookalike.write_image(tmp_path / "masks" / "10.png", np.zeros((4, 4), np.uint8))
    lookalike.write_image(tmp_path / "masks" / "2.tif", np.zeros((4, 4), np.uint8))
    (tmp_path / "images" / ".DS_Store").write_bytes(b"junk")
    (tmp_path / "images" / "._2.png").write_bytes(b"junk")  # macOS resource fork
    samples = read_folder_pair(tmp_path)
    assert [(s.image.name, s.mask.name) for s in samples] == [("2.png", "2.tif"),
                                                               ("10.jpg", "10.png")]
    (tmp_path / "images" / "3.gif").write_bytes(b"GIF89a")
    with pytest.warns(UserWarning, match=r"3\.gif"):
        read_folder_pair(tmp_path)


def test_empty_dataset_folder_is_a_clear_error(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DatasetLayoutError, match="no images"):
        read_folder_pair(tmp_path)
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        read_dataset("kvasir_seg", tmp_path / "nowhere")


def test_16bit_microscopy_folder_with_instance_masks(tmp_path):
    lookalike.make_microscopy16(tmp_path)
    samples = read_dataset("folder", tmp_path, mask_type="instances")
    assert read_image(samples[0].image).dtype == np.uint16
    assert set(np.unique(read_mask(samples[0].mask, mask_type=samples[0].mask_type))) == {0, 1}


def test_csv_of_paths(tmp_path):
    lookalike.make_kvasir_seg(tmp_path, n=3)
    base = tmp_path / "Kvasir-SEG"
    names = sorted(p.name for p in (base / "images").iterdir())
    rows = [f"images/{n},masks/{n},case{k % 2}" for k, n in enumerate(names)]
    (base / "list.csv").write_text("image,mask,group\n" + "\n".join(rows) + "\n")
    samples = read_dataset("csv", base / "list.csv")
    assert [s.group for s in samples] == ["case0", "case1", "case0"]
    assert samples[0].image == base / "images" / names[0]
    rows[1] = "images/missing.jpg,masks/x.jpg,case1"
    (base / "list.csv").write_text("image,mask,group\n" + "\n".join(rows) + "\n,,\n")
    with pytest.raises(DatasetLayoutError) as err:
        read_dataset("csv", base, csv_file="list.csv")
    text = str(err.value)
    assert "row 3:" in text and "missing.jpg (image file not found)" in text
    assert "x.jpg (mask file not found)" in text and "row 5: empty 'image'" in text


def test_monuseg_training_and_test_layouts_with_xml_outlines(tmp_path):
    lookalike.make_monuseg(tmp_path, train=3, test=2)
    samples = read_dataset("monuseg", tmp_path)
    assert [s.subset for s in samples] == ["train"] * 3 + ["test"] * 2
    assert samples[0].image.parent.name == "Tissue Images"
    assert samples[0].mask.parent.name == "Annotations" and samples[0].mask.suffix == ".xml"
    assert samples[3].image.parent == samples[3].mask.parent  # the flat test folder
    assert all(s.mask_type == "instances" for s in samples)
    # Patients from the TCGA barcode: the first two training images are one patient's.
    assert samples[0].group == samples[1].group == "TCGA-18-5593" != samples[2].group
    # Either part on its own, as the two archives unpack.
    train = read_dataset("monuseg", tmp_path / "MoNuSeg 2018 Training Data")
    assert [s.image for s in train] == [s.image for s in samples[:3]]
    assert len(read_dataset("monuseg", tmp_path / "MoNuSegTestData")) == 2
    assert len(read_dataset("monuseg", tmp_path, subsets=["test"])) == 2
    # A missing outline is listed by path.
    samples[4].mask.unlink()
    with pytest.raises(DatasetLayoutError, match=rf"{samples[4].image.name} \(no mask\)"):
        read_dataset("monuseg", tmp_path)
    with pytest.raises(DatasetLayoutError, match="no MoNuSeg layout"):
        read_dataset("monuseg", tmp_path / "MoNuSeg 2018 Training Data" / "Annotations")


def test_monuseg_outlines_are_drawn_into_the_instance_labels(tmp_path):
    """The XML outlines come back as the labels they were traced from, through the reader,
    the training loader and kerasmed-eval's reading."""
    from kerasmed.data.dataset import SegmentationDataset
    from kerasmed.data.io import looks_like_mask, read_outline_mask

    rng = np.random.default_rng(3)
    _, truth = lookalike.nuclei_pair(rng, 40, 50, n_nuclei=5)
    path = tmp_path / "a.xml"
    path.write_text(lookalike.outline_xml(truth))
    labels = read_outline_mask(path, truth.shape)
    assert labels.shape == (40, 50) and labels.max() == len(np.unique(truth)) - 1
    assert np.array_equal(labels > 0, truth > 0)  # every pixel, boundaries included
    for k, value in enumerate((v for v in np.unique(truth) if v), start=1):
        assert np.array_equal(labels == k, truth == value)
    assert looks_like_mask(path) and not looks_like_mask(tmp_path / "none.xml")
    assert np.array_equal(read_mask(path, shape=truth.shape), (truth > 0).astype(np.uint8))
    with pytest.raises(ValueError, match="shape is needed"):
        read_label_mask(path)
    (tmp_path / "bad.xml").write_text("<Annotations><Region>")
    with pytest.raises(OSError, match=r"bad\.xml is not well-formed XML"):
        read_outline_mask(tmp_path / "bad.xml", (4, 4))

    root = lookalike.make_monuseg(tmp_path / "m", train=2, test=0, height=32, width=32)
    samples = read_dataset("monuseg", root)
    ds = SegmentationDataset(samples, 2, (32, 32), mask_mode="instances")
    _, y = ds[0]
    assert y.shape == (2, 32, 32, 1) and y.max() >= 3


def test_registry_and_option_errors(tmp_path):
    assert set(READERS) >= {"folder", "cvc_clinicdb", "kvasir_seg", "glas", "isic2018", "csv",
                            "oct2017", "monuseg"}
    with pytest.raises(ValueError, match="Did you mean 'kvasir_seg'"):
        read_dataset("kvasir", tmp_path)
    with pytest.raises(ValueError, match=r"no option\(s\) \['sequence'\]"):
        read_dataset("cvc_clinicdb", tmp_path, sequence=None)
    lookalike.make_kvasir_seg(tmp_path, n=2)
    samples = read_dataset("kvasir_seg", tmp_path,
                           groups={s.image.stem: "g" for s in read_dataset("kvasir_seg",
                                                                           tmp_path)})
    assert {s.group for s in samples} == {"g"}
