"""Train/validation splits that keep every group (video sequence, patient) on one side."""

from __future__ import annotations

import numpy as np

__all__ = ["split_by_fraction"]


def split_by_fraction(samples, val_fraction: float, seed: int = 0):
    """Split ``samples`` so that about ``val_fraction`` of them are in validation.

    Whole groups move together (a sample without a group is its own group), so no sequence or
    patient is on both sides. Deterministic for a given ``seed``.

    Returns:
        ``(train, val)`` lists, each in the input order.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    keys = [s.group if s.group is not None else f"__sample{i}" for i, s in enumerate(samples)]
    groups = sorted(set(keys))
    order = np.random.default_rng(seed).permutation(len(groups))
    target = val_fraction * len(samples)
    sizes = {g: 0 for g in groups}
    for k in keys:
        sizes[k] += 1
    val_groups, taken = set(), 0
    for idx in order:
        if taken >= target:
            break
        val_groups.add(groups[idx])
        taken += sizes[groups[idx]]
    if not val_groups or len(val_groups) == len(groups):
        raise ValueError(f"cannot split {len(groups)} groups into non-empty train and validation "
                         f"sets with val_fraction={val_fraction}")
    train = [s for s, k in zip(samples, keys) if k not in val_groups]
    val = [s for s, k in zip(samples, keys) if k in val_groups]
    return train, val
