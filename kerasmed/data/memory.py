"""How much memory a setting asks for, checked before anything is allocated.

A size that cannot fit is refused with the estimate and the machine's memory, instead of a
``MemoryError`` (or the kernel's OOM killer) some minutes into a run.
"""

from __future__ import annotations

import os

__all__ = ["physical_memory_bytes", "cache_bytes", "CACHE_SHARE"]

# A dataset's cache may take this share of the machine's memory: the training and the
# validation set each hold one, and the network, its activations and the batches need the rest.
CACHE_SHARE = 0.5


def physical_memory_bytes():
    """This machine's physical memory in bytes, or ``None`` where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def cache_bytes(pixels, channels: int, image_itemsize: int, mask_itemsize: int = 0) -> int:
    """The bytes an in-memory cache of decoded samples takes: ``pixels`` (one count per
    sample, at the size the cache keeps them) times the image's channels and item size, plus
    one mask value per pixel."""
    per_pixel = channels * image_itemsize + mask_itemsize
    return int(sum(int(p) for p in pixels) * per_pixel)
