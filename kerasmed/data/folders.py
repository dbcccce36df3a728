"""Writing datasets that kerasmed makes itself (generated or extracted from a package) in the
``folder`` layout: ``images/<stem>.png`` and ``masks/<stem>.png``, a manifest written last."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

__all__ = ["write_png", "write_folder_dataset"]


def write_png(path: Path, array: np.ndarray) -> None:
    """Write a grey (``(H, W)`` or ``(H, W, 1)``), RGB or RGBA array, 8- or 16-bit, as a PNG
    at ``path``."""
    # cv2.imencode + tofile also works for paths with non-ASCII characters, unlike cv2.imwrite.
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]  # grey stays grey
    elif array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR if array.shape[2] == 3
                             else cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(array))
    if not ok:
        raise OSError(f"could not encode {path}")
    buf.tofile(str(path))


def write_folder_dataset(root, pairs, manifest_name: str, manifest, kind: str) -> int:
    """Write ``pairs`` (``(stem, image, mask)``, may be lazy) into the empty or new folder
    ``root``, then ``manifest`` (a dict, or ``manifest(n_pairs) -> dict``) as
    ``root/manifest_name``: last, so that a half-written folder is never taken for a complete
    one. Returns the number of pairs written.

    Raises ``FileExistsError`` when ``root`` holds anything (the caller has checked that it is
    not already the dataset asked for); ``kind`` names the dataset in that message.
    """
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} exists and is not a kerasmed {kind}; refusing to write "
                              f"into it")
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    n = 0
    for stem, image, mask in pairs:
        write_png(root / "images" / f"{stem}.png", image)
        write_png(root / "masks" / f"{stem}.png", mask)
        n += 1
    content = manifest(n) if callable(manifest) else manifest
    (root / manifest_name).write_text(json.dumps(content, indent=2))
    return n
