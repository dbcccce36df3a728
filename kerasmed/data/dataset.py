"""``keras.utils.PyDataset`` loaders that stream samples from disk in fixed-shape batches."""

from __future__ import annotations

import math

import cv2
import keras
import numpy as np

from kerasmed.data.io import read_image, read_mask

__all__ = ["SegmentationDataset", "normalize_image", "NORMALIZATIONS"]

NORMALIZATIONS = ("dtype_range", "minmax")


def normalize_image(image: np.ndarray, method: str = "dtype_range") -> np.ndarray:
    """Scale an image to float32 in [0, 1].

    ``dtype_range`` divides by the dtype's maximum (255 for 8-bit, 65535 for 16-bit);
    ``minmax`` stretches each image's own range to [0, 1].
    """
    if method == "dtype_range":
        if np.issubdtype(image.dtype, np.integer):
            return image.astype(np.float32) / np.iinfo(image.dtype).max
        return image.astype(np.float32)
    if method == "minmax":
        image = image.astype(np.float32)
        lo, hi = float(image.min()), float(image.max())
        return (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
    raise ValueError(f"unknown normalization {method!r}; choose one of {NORMALIZATIONS}")


class SegmentationDataset(keras.utils.PyDataset):
    """Batches of ``(images, masks)`` read from a list of ``Sample``.

    Images are resized to ``image_size`` (area interpolation) and normalised; masks are resized
    with nearest-neighbour interpolation so they stay binary. ``shuffle=True`` (training) draws a
    new order each epoch from ``seed`` and the epoch number, and drops the last incomplete batch
    so every batch has the same shape (a new shape would retrace the compiled train step).
    Validation (``shuffle=False``) keeps every sample.

    ``outputs`` repeats the mask for models with several outputs (deep supervision): a list of
    output names gives a dict target per batch.
    """

    def __init__(self, samples, batch_size: int, image_size, channels: int = 3, shuffle=False,
                 seed: int = 0, normalization: str = "dtype_range", mask_threshold=None,
                 cache: bool = False, outputs=None, **kwargs):
        super().__init__(**kwargs)
        if not samples:
            raise ValueError("SegmentationDataset needs at least one sample")
        self.samples = list(samples)
        self.batch_size = int(batch_size)
        self.image_size = tuple(int(s) for s in image_size)
        self.channels = channels
        self.shuffle = shuffle
        self.seed = seed
        self.normalization = normalization
        self.mask_threshold = mask_threshold
        self.outputs = list(outputs) if outputs else None
        self._cache = {} if cache else None
        self._epoch = 0
        self._order = self._make_order()
        if shuffle and len(self.samples) < self.batch_size:
            raise ValueError(f"{len(self.samples)} training samples are fewer than one batch "
                             f"of {self.batch_size}")

    def _make_order(self):
        n = len(self.samples)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, self._epoch]).permutation(n)

    def __len__(self):
        n = len(self.samples)
        return n // self.batch_size if self.shuffle else math.ceil(n / self.batch_size)

    def load(self, index: int):
        """Return sample ``index`` as ``(image float32 (H, W, C), mask float32 (H, W, 1))``."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        sample = self.samples[index]
        h, w = self.image_size
        image = read_image(sample.image, channels=self.channels)
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        if image.ndim == 2:
            image = image[..., None]
        image = normalize_image(image, self.normalization)
        mask = read_mask(sample.mask, self.mask_threshold)
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
        pair = (image, mask[..., None].astype(np.float32))
        if self._cache is not None:
            self._cache[index] = pair
        return pair

    def __getitem__(self, batch_index):
        if batch_index >= len(self):
            raise IndexError(f"batch {batch_index} out of range for {len(self)} batches")
        start = batch_index * self.batch_size
        indices = self._order[start:start + self.batch_size]
        pairs = [self.load(int(i)) for i in indices]
        images = np.stack([p[0] for p in pairs])
        masks = np.stack([p[1] for p in pairs])
        if self.outputs:
            return images, {name: masks for name in self.outputs}
        return images, masks

    def set_epoch(self, epoch: int):
        """Use the sample order of ``epoch`` (counted from 0), whatever came before.

        kerasmed's trainers call this at the start of every epoch (``fit`` also calls
        ``on_epoch_end`` when it resets its iterator, so counting those calls would skip
        orders); it makes ``fit``, the ``train_on_batch`` loop and a resumed run see the same
        batches in the same epoch.
        """
        self._epoch = int(epoch)
        self._order = self._make_order()

    def on_epoch_end(self):
        self.set_epoch(self._epoch + 1)
