"""Small on-disk look-alikes of the public datasets' layouts, for tests and offline checks.

Each ``make_*`` function writes a tiny dataset with the publisher's folder names (``Ground
Truth`` with its space, ``"OCT2017 "`` with its trailing space), file names, extensions, bit
depths and quirks (3-channel masks, JPEG masks, instance-label annotations, text files among the
images), with small synthetic images. They let kerasmed's readers, and a user's experiment
config, be checked without the real data. Contents are deterministic for a given ``seed``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

__all__ = ["write_image", "make_cvc_clinicdb", "make_kvasir_seg", "make_glas", "make_isic2018",
           "make_oct2017", "make_microscopy16", "make_nuclei", "make_monuseg", "nuclei_pair",
           "outline_xml", "blob_pair"]


def write_image(path, array, params=()):
    """Write ``array`` (RGB(A) or grey, 8/16-bit) to ``path``; the format follows the suffix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = array
    if array.ndim == 3 and array.shape[2] == 3:
        out = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    elif array.ndim == 3 and array.shape[2] == 4:
        out = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(path.suffix, out, list(params))
    if not ok:
        raise OSError(f"could not encode {path}")
    buf.tofile(str(path))
    return path


def blob_pair(rng, height, width, n_blobs=1, channels=3, dtype=np.uint8, labels=False):
    """An image with ``n_blobs`` bright ellipses on a textured background and their mask (0/255,
    or instance labels 1..n with ``labels``)."""
    mask = np.zeros((height, width), np.uint8)
    for k in range(1, n_blobs + 1):
        c = (int(rng.integers(width // 5, 4 * width // 5)),
             int(rng.integers(height // 5, 4 * height // 5)))
        axes = (int(rng.integers(max(2, width // 10), max(3, width // 5))),
                int(rng.integers(max(2, height // 10), max(3, height // 5))))
        cv2.ellipse(mask, c, axes, float(rng.uniform(0, 180)), 0, 360, k if labels else 255, -1)
    top = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0
    base = rng.uniform(0.2, 0.4) + 0.05 * rng.standard_normal((height, width))
    grey = np.clip(base + 0.4 * (mask > 0), 0, 1)
    image = (grey * top).astype(dtype)
    if channels == 3:
        image = np.stack([image, (image * 0.6).astype(dtype), (image * 0.5).astype(dtype)], -1)
    return image, mask


def make_cvc_clinicdb(root, frames=range(1, 613), height=36, width=48, png_copy=False,
                      rgb_masks=(2, 5), seed=0) -> Path:
    """``root/CVC-ClinicDB/Original/<n>.tif`` + ``Ground Truth/<n>.tif`` (8-bit RGB TIFF; mask 255
    = polyp, 3-channel for the frames in ``rgb_masks``); with ``png_copy`` also ``PNG/...``."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "CVC-ClinicDB"
    for n in frames:
        image, mask = blob_pair(rng, height, width)
        write_image(base / "Original" / f"{n}.tif", image)
        m = np.repeat(mask[..., None], 3, axis=2) if n in rgb_masks else mask
        write_image(base / "Ground Truth" / f"{n}.tif", m)
        if png_copy:
            write_image(base / "PNG" / "Original" / f"{n}.png", image)
            write_image(base / "PNG" / "Ground Truth" / f"{n}.png", mask)
    return base


_KVASIR_IDS = ("cju0qkwl35piu0993l0dewei2", "cju0qoxqj9q6s0835b43399p4",
               "cju0roawvklrq0799vmjorwfv", "cju0rx1idathl0835detmsp84",
               "cju0s2a9ekvms080138tjjpxr", "cju0s690hkp960855tjuaqvv0",
               "cju0sr5ghl0nd08789uzf1raf", "cju0sxqiclckk08551ycbwhno")


def make_kvasir_seg(root, n=6, seed=0, quality=75) -> Path:
    """``root/Kvasir-SEG/images/<id>.jpg`` + ``masks/<id>.jpg`` (JPEG masks: noisy grey levels),
    sizes varying per image, and ``kavsir_bboxes.json``."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "Kvasir-SEG"
    for k in range(n):
        name = _KVASIR_IDS[k % len(_KVASIR_IDS)] + ("" if k < len(_KVASIR_IDS) else str(k))
        h, w = int(rng.integers(33, 49)), int(rng.integers(40, 64))
        image, mask = blob_pair(rng, h, w)
        write_image(base / "images" / f"{name}.jpg", image, (cv2.IMWRITE_JPEG_QUALITY, 90))
        write_image(base / "masks" / f"{name}.jpg", mask, (cv2.IMWRITE_JPEG_QUALITY, quality))
    (base / "kavsir_bboxes.json").write_text("{}")
    return base


def make_glas(root, counts=(("train", 4), ("testA", 2), ("testB", 2)), height=26, width=39,
              grade_csv=True, seed=0) -> Path:
    """One flat folder ``root/Warwick QU Dataset (Released 2016_07_08)/`` of ``<subset>_<n>.bmp``
    RGB images and ``<subset>_<n>_anno.bmp`` 8-bit instance-label masks (0 background,
    1..k glands), plus ``Grade.csv`` (patients shared within, never across, pairs of images)."""
    rng = np.random.default_rng(seed)
    base = Path(root) / "Warwick QU Dataset (Released 2016_07_08)"
    rows = ["name, patient ID, grade (GlaS), grade (Sirinukunwattana et al. 2015)"]
    patient = 0
    for subset, count in counts:
        for n in range(1, count + 1):
            image, labels = blob_pair(rng, height, width, n_blobs=3, labels=True)
            write_image(base / f"{subset}_{n}.bmp", image)
            write_image(base / f"{subset}_{n}_anno.bmp", labels)
            if n % 2 == 1:
                patient += 1
            rows.append(f"{subset}_{n},{patient},{'benign' if patient % 2 else 'malignant'},"
                        f"healthy")
    if grade_csv:
        (base / "Grade.csv").write_text("\n".join(rows) + "\n")
    return base


def make_isic2018(root, counts=(("Training", 4), ("Validation", 2)), seed=0) -> Path:
    """``root/ISIC2018_Task1-2_<Subset>_Input/ISIC_<id>.jpg`` and
    ``root/ISIC2018_Task1_<Subset>_GroundTruth/ISIC_<id>_segmentation.png`` (0/255), with the
    LICENSE.txt and ATTRIBUTION.txt files the archives carry; sizes vary."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    ident = 0
    for subset, count in counts:
        inputs = root / f"ISIC2018_Task1-2_{subset}_Input"
        truth = root / f"ISIC2018_Task1_{subset}_GroundTruth"
        for _ in range(count):
            h, w = int(rng.integers(30, 45)), int(rng.integers(40, 60))
            image, mask = blob_pair(rng, h, w)
            write_image(inputs / f"ISIC_{ident:07d}.jpg", image)
            write_image(truth / f"ISIC_{ident:07d}_segmentation.png", mask)
            ident += 1
        for folder in (inputs, truth):
            (folder / "LICENSE.txt").write_text("CC-BY-NC")
            (folder / "ATTRIBUTION.txt").write_text("ISIC archive")
    return root


def make_oct2017(root, per_class=3, splits=("train", "test"),
                 classes=("CNV", "DME", "DRUSEN", "NORMAL"), folder="OCT2017 ", seed=0) -> Path:
    """``root/"OCT2017 "/<split>/<CLASS>/<CLASS>-<patient>-<n>.jpeg`` grayscale JPEGs of varying
    size (the Kaggle archive's folder name has a trailing space). Patients recur across
    classes, as in the real data."""
    rng = np.random.default_rng(seed)
    base = Path(root) / folder
    for split in splits:
        for c, cls in enumerate(classes):
            for k in range(per_class):
                patient = 1000000 + 7 * k + (0 if split == "train" else 500)
                h, w = int(rng.integers(24, 40)), int(rng.integers(30, 50))
                image = (rng.random((h, w)) * 60 + 40 * c).astype(np.uint8)
                write_image(base / split / cls / f"{cls}-{patient}-{k + 1}.jpeg", image)
    return base


def make_microscopy16(root, n=4, height=40, width=40, low=900, high=1400, seed=0) -> Path:
    """``root/images/<k>.tif`` single-channel 16-bit images whose values fill only ``low..high``
    (a narrow part of 0..65535, as in fluorescence microscopy) and ``root/masks/<k>.png``
    instance labels."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for k in range(n):
        _, labels = blob_pair(rng, height, width, n_blobs=3, labels=True)
        image = low + (high - low) * (0.2 + 0.6 * (labels > 0)
                                      + 0.1 * rng.random((height, width)))
        write_image(root / "images" / f"{k}.tif", image.astype(np.uint16))
        write_image(root / "masks" / f"{k}.png", labels)
    return root


def nuclei_pair(rng, height, width, n_nuclei=6, radius=(3, 6)):
    """An H&E-like RGB tile (pink stroma, dark purple nuclei) and its ``uint16`` instance labels.

    Nuclei are discs placed at random; some touch or overlap (a later nucleus is drawn over an
    earlier one, as annotators split touching nuclei), which the distance-map targets and the
    watershed must separate.
    """
    labels = np.zeros((height, width), np.uint16)
    for k in range(1, n_nuclei + 1):
        r = int(rng.integers(radius[0], radius[1] + 1))
        c = (int(rng.integers(r, max(r + 1, width - r))), int(rng.integers(r, max(r + 1,
                                                                                 height - r))))
        cv2.circle(labels, c, r, k, -1)
    nucleus = labels > 0
    noise = 12 * rng.standard_normal((height, width))
    stroma = np.array([230, 170, 200], np.float64)
    dark = np.array([90, 50, 140], np.float64)
    image = np.where(nucleus[..., None], dark, stroma) + noise[..., None]
    return np.clip(image, 0, 255).astype(np.uint8), labels


def make_nuclei(root, n=6, height=48, width=48, n_nuclei=6, seed=0) -> Path:
    """A nuclei dataset as Kidney-SegNet's data (kidney, TNBC) is laid out: ``root/images/<k>.png``
    RGB tiles and ``root/masks/<k>.png`` 16-bit instance labels with the same file names."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    for k in range(n):
        image, labels = nuclei_pair(rng, height, width, n_nuclei)
        write_image(root / "images" / f"{k}.png", image)
        write_image(root / "masks" / f"{k}.png", labels)
    return root


def outline_xml(labels) -> str:
    """Aperio ImageScope XML (as MoNuSeg's annotations) with one Region per label: its outer
    contour's pixel centres as Vertex X, Y."""
    regions = []
    for k, value in enumerate((v for v in np.unique(labels) if v), start=1):
        contours, _ = cv2.findContours((labels == value).astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        contour = max(contours, key=len)[:, 0]
        vertices = "".join(f'<Vertex X="{x:.3f}" Y="{y:.3f}" Z="0"/>' for x, y in contour)
        regions.append(f'<Region Id="{k}" Type="0" Zoom="1" Selected="0"><Attributes/>'
                       f'<Vertices>{vertices}</Vertices></Region>')
    return ('<?xml version="1.0"?>\n<Annotations MicronsPerPixel="0.252000"><Annotation Id="1" '
            'Name="" ReadOnly="0" LineColor="65280"><Attributes/><Regions>'
            '<RegionAttributeHeaders/>' + "".join(regions)
            + '</Regions><Plots/></Annotation></Annotations>\n')


def make_monuseg(root, train=3, test=2, height=48, width=48, n_nuclei=6, seed=0) -> Path:
    """MoNuSeg 2018 as it unpacks: ``root/MoNuSeg 2018 Training Data/Tissue Images/<TCGA>.tif``
    with ``Annotations/<TCGA>.xml`` outlines, and ``root/MoNuSegTestData/`` holding both kinds
    of file. The first two training images share a patient (the first three fields of the TCGA
    name). Returns ``root``."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    train_dir = root / "MoNuSeg 2018 Training Data"
    for k in range(train + test):
        patient = f"TCGA-{18 + max(k - 1, 0):02d}-{5592 + k:04d}" if k else "TCGA-18-5593"
        name = f"{patient}-01Z-00-DX{k + 1}"
        image, labels = nuclei_pair(rng, height, width, n_nuclei)
        if k < train:
            images, outlines = train_dir / "Tissue Images", train_dir / "Annotations"
        else:
            images = outlines = root / "MoNuSegTestData"
        write_image(images / f"{name}.tif", image)
        outlines.mkdir(parents=True, exist_ok=True)
        (outlines / f"{name}.xml").write_text(outline_xml(labels))
    return root
