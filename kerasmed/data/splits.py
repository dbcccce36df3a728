"""Train/validation/test splits that keep every group (video sequence, patient) on one side.

A sample without a group is its own group. Every split function is deterministic for its seed and
checks its result with ``check_no_leak``. ``make_split`` dispatches on a method name and returns,
with the split, a JSON-able record (``split_record``) from which ``split_from_record`` rebuilds
the same split later (a resumed or reproduced run).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from kerasmed.names import KerasmedWarning

__all__ = ["split_by_fraction", "split_train_val_test", "kfold_assignments", "kfold_split",
           "split_by_subset", "check_no_leak", "GroupLeakError", "split_record",
           "split_from_record", "make_split", "SPLIT_METHODS"]

SPLIT_METHODS = ("fraction", "kfold", "subset", "record")


class GroupLeakError(ValueError):
    """A group has samples on more than one side of a split; the message names the groups."""


def _keys(samples):
    return [s.group if s.group is not None else f"__sample{i}:{s.image}"
            for i, s in enumerate(samples)]


def check_no_leak(splits: dict) -> None:
    """Raise ``GroupLeakError`` if any group appears in more than one part of ``splits``
    (``{"train": [...], "val": [...], ...}``), or any image in more than one part."""
    where: dict[str, set] = {}
    images: dict[str, set] = {}
    for part, samples in splits.items():
        for s in samples:
            if s.group is not None:
                where.setdefault(s.group, set()).add(part)
            images.setdefault(str(s.image), set()).add(part)
    leaks = {g: sorted(p) for g, p in where.items() if len(p) > 1}
    dup = {i: sorted(p) for i, p in images.items() if len(p) > 1}
    if leaks or dup:
        shown = [f"group {g} in {p}" for g, p in list(leaks.items())[:10]]
        shown += [f"image {i} in {p}" for i, p in list(dup.items())[:10]]
        raise GroupLeakError(f"{len(leaks)} group(s) and {len(dup)} image(s) are on more than one "
                             f"side of the split: " + "; ".join(shown))


def _take_groups(order, groups, sizes, target, exclude=()):
    chosen, taken = set(), 0
    for idx in order:
        g = groups[idx]
        if g in exclude:
            continue
        if taken >= target:
            break
        chosen.add(g)
        taken += sizes[g]
    return chosen


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
    sizes = Counter(keys)
    val_groups = _take_groups(order, groups, sizes, val_fraction * len(samples))
    if not val_groups or len(val_groups) == len(groups):
        raise ValueError(f"cannot split {len(groups)} groups into non-empty train and validation "
                         f"sets with val_fraction={val_fraction}")
    train = [s for s, k in zip(samples, keys) if k not in val_groups]
    val = [s for s, k in zip(samples, keys) if k in val_groups]
    check_no_leak({"train": train, "val": val})
    return train, val


def split_train_val_test(samples, val_fraction: float, test_fraction: float, seed: int = 0):
    """Three-way group-aware split: about ``test_fraction`` of the samples in test and
    ``val_fraction`` in validation, whole groups each. Returns ``(train, val, test)``."""
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be between 0 and 1, got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"val_fraction + test_fraction must be below 1, got "
                         f"{val_fraction + test_fraction}")
    keys = _keys(samples)
    groups = sorted(set(keys))
    sizes = Counter(keys)
    order = np.random.default_rng(seed).permutation(len(groups))
    test_groups = _take_groups(order, groups, sizes, test_fraction * len(samples))
    val_groups = _take_groups(order, groups, sizes, val_fraction * len(samples),
                              exclude=test_groups)
    if not test_groups or not val_groups or len(test_groups) + len(val_groups) >= len(groups):
        raise ValueError(f"cannot split {len(groups)} groups into non-empty train, validation and "
                         f"test sets with val_fraction={val_fraction}, "
                         f"test_fraction={test_fraction}")
    parts = {"train": [], "val": [], "test": []}
    for s, k in zip(samples, keys):
        parts["test" if k in test_groups else "val" if k in val_groups else "train"].append(s)
    check_no_leak(parts)
    return parts["train"], parts["val"], parts["test"]


def kfold_assignments(samples, k: int, seed: int = 0) -> list[int]:
    """The fold (``0..k-1``) of each sample: whole groups per fold, folds balanced by sample
    count (groups in seeded random order, largest first, each to the smallest fold)."""
    if k < 2:
        raise ValueError(f"k must be at least 2, got {k}")
    keys = _keys(samples)
    sizes = Counter(keys)
    groups = sorted(sizes)
    if len(groups) < k:
        raise ValueError(f"cannot make {k} folds from {len(groups)} group(s)")
    order = np.random.default_rng(seed).permutation(len(groups))
    shuffled = sorted((groups[i] for i in order), key=lambda g: -sizes[g])  # stable sort
    load = [0] * k
    fold_of = {}
    for g in shuffled:
        f = min(range(k), key=lambda j: (load[j], j))
        fold_of[g] = f
        load[f] += sizes[g]
    return [fold_of[key] for key in keys]


def kfold_split(samples, k: int, fold: int, seed: int = 0):
    """``(train, val)`` for fold ``fold`` of a group-aware ``k``-fold split."""
    if not 0 <= fold < k:
        raise ValueError(f"fold must be in 0..{k - 1}, got {fold}")
    folds = kfold_assignments(samples, k, seed)
    train = [s for s, f in zip(samples, folds) if f != fold]
    val = [s for s, f in zip(samples, folds) if f == fold]
    check_no_leak({"train": train, "val": val})
    return train, val


def split_by_subset(samples, train, val=(), test=(), on_leak: str = "raise") -> dict:
    """A fixed split by the publisher's subsets (``Sample.subset``): e.g. GlaS
    ``train=["train"], test=["testA", "testB"]``, ISIC ``train=["train"], val=["val"]``.

    A group found in two parts (OCT2017's patients are in both train and test) raises
    ``GroupLeakError``, or only warns with ``on_leak="warn"``. Samples of subsets not named are
    left out; the returned dict names them under ``"unused"`` only if there are any.
    """
    names = {"train": list(train), "val": list(val), "test": list(test)}
    owner = {}
    for part, subsets in names.items():
        for sub in subsets:
            if sub in owner:
                raise ValueError(f"subset {sub!r} is assigned to both {owner[sub]} and {part}")
            owner[sub] = part
    present = {s.subset for s in samples}
    missing = [sub for sub in owner if sub not in present]
    if missing:
        raise ValueError(f"subsets {missing} are not in the dataset (it has "
                         f"{sorted(str(p) for p in present)})")
    parts = {part: [s for s in samples if owner.get(s.subset) == part] for part in names}
    parts = {p: v for p, v in parts.items() if v or p == "train"}
    if not parts["train"]:
        raise ValueError("the training part of the split is empty")
    try:
        check_no_leak(parts)
    except GroupLeakError as err:
        if on_leak != "warn":
            raise GroupLeakError(f"{err}. The publisher's split shares these groups; pass "
                                 f"on_leak='warn' to use it anyway") from None
        import warnings

        warnings.warn(str(err), stacklevel=2, category=KerasmedWarning)
    unused = [s for s in samples if s.subset not in owner]
    if unused:
        parts["unused"] = unused
    return parts


def split_record(splits: dict, **info) -> dict:
    """A JSON-able record of ``splits``: the image paths of each part (``"train"``, ``"val"``,
    ``"test"``...), the groups of each part, and ``info`` (method, seed, fractions...)."""
    record = dict(info)
    for part, samples in splits.items():
        record[part] = [str(s.image) for s in samples]
    record["groups"] = {part: sorted({s.group for s in samples if s.group is not None})
                        for part, samples in splits.items()}
    return record


def split_from_record(samples, record: dict, parts=("train", "val", "test")) -> dict:
    """Rebuild a recorded split: each part's samples, looked up by image path.

    Raises ``ValueError`` listing recorded images that are no longer in ``samples``.
    """
    by_path = {str(s.image): s for s in samples}
    out, missing = {}, []
    for part in parts:
        if part not in record:
            continue
        out[part] = []
        for p in record[part]:
            if p in by_path:
                out[part].append(by_path[p])
            else:
                missing.append(p)
    if missing:
        raise ValueError(f"{len(missing)} recorded image(s) are no longer in the dataset, e.g. "
                         + ", ".join(missing[:5]))
    check_no_leak(out)
    return out


def make_split(samples, method: str = "fraction", seed: int = 0, val_fraction: float = 0.2,
               test_fraction: float = 0.0, k: int = 5, fold: int = 0, train_subsets=None,
               val_subsets=(), test_subsets=(), on_leak: str = "raise", record=None):
    """Split ``samples`` by ``method`` and return ``(parts, record)``.

    Methods:
        ``"fraction"``: group-aware random validation (and, with ``test_fraction > 0``, test)
            fractions.
        ``"kfold"``: fold ``fold`` of a group-aware ``k``-fold split as validation.
        ``"subset"``: the publisher's subsets (``train_subsets``, ``val_subsets``,
            ``test_subsets``).
        ``"record"``: the split recorded in ``record`` (a dict from ``split_record``).

    ``parts`` is ``{"train": [...], "val": [...], ["test": [...]]}``; ``record`` is the
    JSON-able record to store with the run (paths, groups, method and parameters).
    """
    if method == "fraction":
        info = {"method": method, "seed": seed, "val_fraction": val_fraction}
        if test_fraction:
            train, val, test = split_train_val_test(samples, val_fraction, test_fraction, seed)
            parts = {"train": train, "val": val, "test": test}
            info["test_fraction"] = test_fraction
        else:
            train, val = split_by_fraction(samples, val_fraction, seed)
            parts = {"train": train, "val": val}
    elif method == "kfold":
        train, val = kfold_split(samples, k, fold, seed)
        parts = {"train": train, "val": val}
        info = {"method": method, "seed": seed, "k": k, "fold": fold}
    elif method == "subset":
        if not train_subsets:
            raise ValueError("method 'subset' needs train_subsets")
        parts = split_by_subset(samples, train_subsets, val_subsets, test_subsets, on_leak)
        parts.pop("unused", None)
        info = {"method": method, "train_subsets": list(train_subsets),
                "val_subsets": list(val_subsets), "test_subsets": list(test_subsets)}
    elif method == "record":
        if record is None:
            raise ValueError("method 'record' needs record")
        parts = split_from_record(samples, record)
        info = {k2: v for k2, v in record.items()
                if k2 not in ("train", "val", "test", "groups")}
    else:
        raise ValueError(f"unknown split method {method!r}; choose one of {SPLIT_METHODS}")
    return parts, split_record(parts, **info)
