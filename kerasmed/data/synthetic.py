"""A synthetic polyp-segmentation dataset, generated deterministically, so kerasmed runs offline.

Each image imitates a colonoscopy frame: pink-red mucosa with multi-scale texture and blood
vessels, the dark rim and vignetting of an endoscope's optics, specular highlights, sensor noise
and occasional defocus. One or two polyps per frame are raised, lit, irregular blobs whose
outline gives the mask. Images and masks are written as ``images/<id>.png`` and
``masks/<id>.png``: the paired-folder layout of Kvasir-SEG and of kerasmed's generic reader, so
the quickstart experiment exercises the same loading path as real data.

Every image is drawn from its own random stream (seeded by the dataset seed and the image index),
so image ``k`` is the same whatever ``n_images`` is and on any machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from kerasmed.data.folders import write_folder_dataset

__all__ = ["make_polyp_image", "generate_polyp_dataset", "MANIFEST", "SYNTHETIC_DATASETS"]

MANIFEST = "kerasmed_synthetic.json"
_FORMAT_VERSION = 1


def _smooth_noise(rng, shape, scale):
    """Gaussian-blurred white noise with features about ``scale`` pixels wide, in [-1, 1]."""
    h, w = shape
    small = rng.standard_normal((max(2, h // scale + 2), max(2, w // scale + 2))).astype(np.float32)
    field = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return field / (np.abs(field).max() + 1e-6)


def _blob_polygon(rng, center, radius, n_points=64):
    """An irregular closed outline: a circle whose radius varies by a few low harmonics."""
    angles = np.linspace(0, 2 * np.pi, n_points, endpoint=False)
    r = np.ones_like(angles)
    for k in range(2, 5):
        r += rng.uniform(0, 0.12) * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
    aspect = rng.uniform(0.7, 1.0)
    theta = rng.uniform(0, np.pi)
    x = radius * r * np.cos(angles)
    y = radius * r * np.sin(angles) * aspect
    xr = x * np.cos(theta) - y * np.sin(theta) + center[0]
    yr = x * np.sin(theta) + y * np.cos(theta) + center[1]
    return np.stack([xr, yr], axis=1).round().astype(np.int32)


def _background(rng, h, w):
    base = np.array([rng.uniform(0.62, 0.8), rng.uniform(0.25, 0.36), rng.uniform(0.22, 0.32)],
                    np.float32)
    texture = 0.06 * _smooth_noise(rng, (h, w), 40) + 0.04 * _smooth_noise(rng, (h, w), 8)
    img = base[None, None, :] * (1.0 + texture[..., None])
    # Folds of the colon wall: broad dark bands.
    folds = _smooth_noise(rng, (h, w), 90)
    img *= (1.0 - 0.18 * np.clip(folds, 0, 1))[..., None]
    # Blood vessels: thin dark-red curves.
    vessels = np.zeros((h, w), np.float32)
    for _ in range(rng.integers(3, 8)):
        pts = np.cumsum(rng.normal(0, 14, (12, 2)), axis=0) + rng.uniform((0, 0), (w, h))
        thickness = int(rng.integers(1, 3))
        cv2.polylines(vessels, [pts.astype(np.int32)], False, 1.0, thickness=thickness)
    vessels = cv2.GaussianBlur(vessels, (0, 0), 1.0)
    img *= (1.0 - 0.25 * vessels[..., None] * np.array([0.2, 1.0, 1.0], np.float32))
    return img


def _add_polyp(rng, img, mask):
    h, w = mask.shape
    radius = rng.uniform(0.09, 0.24) * min(h, w)
    center = (rng.uniform(radius, w - radius), rng.uniform(radius, h - radius))
    outline = _blob_polygon(rng, center, radius)
    blob = np.zeros((h, w), np.uint8)
    cv2.fillPoly(blob, [outline], 1)
    mask |= blob
    # A raised, lit dome: brightness grows towards the centre and towards the light.
    dist = cv2.distanceTransform(blob, cv2.DIST_L2, 5)
    dome = np.sqrt(np.clip(dist / (dist.max() + 1e-6), 0, 1))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = rng.uniform(0, 2 * np.pi)
    side = ((xx - center[0]) * np.cos(light) + (yy - center[1]) * np.sin(light)) / radius
    shade = 1.0 + 0.22 * dome - 0.12 * np.clip(side, -1, 1) * (blob > 0)
    tint = np.array([rng.uniform(1.0, 1.15), rng.uniform(1.05, 1.35), rng.uniform(0.95, 1.25)],
                    np.float32)
    texture = 1.0 + 0.05 * _smooth_noise(rng, (h, w), 6)
    # A soft 2-pixel rim keeps the edge realistic rather than a hard cut.
    soft = cv2.GaussianBlur(blob.astype(np.float32), (0, 0), 1.5)[..., None]
    polyp = img * tint * (shade * texture)[..., None]
    return img * (1 - soft) + polyp * soft


def make_polyp_image(rng: np.random.Generator, height: int = 288, width: int = 384):
    """Draw one synthetic frame.

    Returns:
        ``(image, mask)``: ``image`` is ``uint8`` RGB of shape ``(height, width, 3)``; ``mask`` is
        ``uint8`` of shape ``(height, width)`` with 255 on polyp pixels and 0 elsewhere.
    """
    img = _background(rng, height, width)
    mask = np.zeros((height, width), np.uint8)
    for _ in range(1 if rng.random() < 0.8 else 2):
        img = _add_polyp(rng, img, mask)
    # Specular highlights, anywhere (also on the polyp, as on real wet mucosa).
    spec = np.zeros((height, width), np.float32)
    for _ in range(rng.integers(4, 14)):
        c = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        axes = (int(rng.integers(1, 5)), int(rng.integers(1, 4)))
        cv2.ellipse(spec, c, axes, rng.uniform(0, 180), 0, 360, 1.0, -1)
    spec = cv2.GaussianBlur(spec, (0, 0), 1.2)[..., None]
    img = img * (1 - spec) + spec
    # Endoscope optics: radial vignetting and a dark rim.
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = np.hypot((xx - width / 2) / (width / 2), (yy - height / 2) / (height / 2))
    img *= np.clip(1.15 - 0.45 * r**2, 0.0, 1.0)[..., None]
    img *= (r < rng.uniform(1.2, 1.35))[..., None]
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.6, 1.5))
    img += rng.normal(0, rng.uniform(0.01, 0.03), img.shape).astype(np.float32)
    image = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
    return image, mask * 255


def generate_polyp_dataset(root, n_images: int = 200, height: int = 288, width: int = 384,
                           seed: int = 0) -> Path:
    """Write the synthetic polyp dataset to ``root`` (``images/`` and ``masks/``), if not there.

    A manifest records the generation parameters. If ``root`` already holds a dataset made with
    the same parameters it is reused as it is; if it holds anything else, ``FileExistsError`` is
    raised rather than overwriting it.

    Returns:
        The dataset root as a ``Path``.
    """
    root = Path(root)
    params = {"format_version": _FORMAT_VERSION, "n_images": int(n_images), "height": int(height),
              "width": int(width), "seed": int(seed)}
    manifest = root / MANIFEST
    if manifest.exists():
        found = json.loads(manifest.read_text())
        if found == params:
            return root
        raise FileExistsError(
            f"{root} holds a synthetic dataset made with {found}, not the requested {params}; "
            f"choose another data.root or delete that folder")
    def pairs():
        for k in range(n_images):
            image, mask = make_polyp_image(np.random.default_rng([seed, k]), height, width)
            yield f"{k:04d}", image, mask

    write_folder_dataset(root, pairs(), MANIFEST, params, "synthetic dataset")
    return root


# Datasets kerasmed generates itself (into ``data.root`` on first use), by experiment name.
SYNTHETIC_DATASETS = {"synthetic_polyps": generate_polyp_dataset}
