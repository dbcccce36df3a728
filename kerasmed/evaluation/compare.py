"""Paired statistics between evaluations of the same images: is one model's difference real?

Two evaluations of the same images (the ``per_image.csv`` files ``kerasmed-eval`` writes) are
compared image by image, for each score: the mean difference with a bootstrap 95 % confidence
interval (the percentile interval of the mean of resampled differences, Efron & Tibshirani
1993), the Wilcoxon signed-rank test's two-sided p-value (``scipy.stats.wilcoxon``) and the
wins, ties and losses (for distances, HD95 and ASSD, the lower score wins:
``kerasmed.evaluation.scores.LOWER_IS_BETTER``). Pairs where either score is undefined (HD95 of
an empty mask) are left out and counted. Evaluations whose distances are in different units
(pixels and micrometres, say) are not compared. ``mean_confidence_interval`` gives the
t-interval of a mean over folds.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from kerasmed.evaluation.objects import OBJECT_SCORES
from kerasmed.evaluation.scores import (LOWER_IS_BETTER, PIXEL_SCORES, base_score,
                                        lower_is_better)

__all__ = ["LOWER_IS_BETTER", "load_per_image", "check_same_images", "check_same_units",
           "paired_difference", "compare_tables", "mean_confidence_interval", "plot_paired"]

_KNOWN = PIXEL_SCORES + OBJECT_SCORES + ("uncertainty",)


def _default_metrics(columns) -> list:
    """The scores compared when none are named: the known ones, each followed by its per-class
    and macro columns (``kerasmed.evaluation.multiclass``), in per_image.csv's order."""
    return [c for known in _KNOWN for c in columns
            if c == known or (base_score(c) == known and c != known)]


def check_same_units(paths: dict) -> None:
    """Raise ``ValueError`` when evaluation folders (``{name: path}``) measured distances in
    different units (their summary.json's ``distance_unit``; older evaluations without it were
    in pixels)."""
    import json

    units = {}
    for name, path in paths.items():
        path = Path(path)
        summary = (path if path.is_dir() else path.parent) / "summary.json"
        try:
            units[name] = json.loads(summary.read_text()).get("distance_unit", "pixel")
        except (OSError, ValueError, AttributeError):
            continue  # a bare per_image.csv: nothing to check against
    if len(set(units.values())) > 1:
        raise ValueError("the evaluations measure distances in different units ("
                         + ", ".join(f"{n}: {u}" for n, u in units.items())
                         + "); evaluate them with the same --spacing")


def load_per_image(path) -> pd.DataFrame:
    """The ``per_image.csv`` of an evaluation folder (or the CSV itself); raises ``ValueError``
    naming the path when it is not a kerasmed evaluation."""
    path = Path(path)
    csv = path / "per_image.csv" if path.is_dir() else path
    if not csv.is_file():
        raise ValueError(f"{path}: not a kerasmed-eval folder (no per_image.csv)")
    table = pd.read_csv(csv)
    if "image" not in table.columns:
        raise ValueError(f"{csv}: has no 'image' column; is it a kerasmed-eval per_image.csv?")
    if table["image"].duplicated().any():
        raise ValueError(f"{csv}: lists an image twice, e.g. "
                         f"{table['image'][table['image'].duplicated()].iloc[0]}")
    for column in table.columns.drop("image"):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() & table[column].notna()
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            raise ValueError(f"{csv}: column {column!r}, row {row + 2} (image "
                             f"{table['image'].iloc[row]}): {table[column].iloc[row]!r} is not "
                             f"a number")
        table[column] = values
    return table.set_index("image")


def check_same_images(tables: dict) -> None:
    """Raise ``ValueError`` unless every table scores exactly the same images."""
    names = list(tables)
    reference = set(tables[names[0]].index)
    for name in names[1:]:
        other = set(tables[name].index)
        if other != reference:
            only_a, only_b = sorted(reference - other), sorted(other - reference)
            raise ValueError(
                f"{names[0]} and {name} evaluate different images ({len(reference)} and "
                f"{len(other)}; {len(only_a)} only in the first, e.g. "
                f"{only_a[:2]}, {len(only_b)} only in the second, e.g. {only_b[:2]}): a "
                f"paired comparison needs the same images, e.g. both runs' kerasmed-eval "
                f"--data on one test folder")


def paired_difference(a, b, lower_is_better=False, n_boot: int = 10_000, seed: int = 0) -> dict:
    """Paired statistics of scores ``a`` and ``b`` of the same images (``a - b``).

    Returns ``n`` (pairs with both scores defined), ``left_out``, ``mean_a``, ``mean_b``,
    ``mean_diff``, ``ci_low`` / ``ci_high`` (bootstrap 95 % interval of the mean difference),
    ``p_wilcoxon`` (two-sided; 1.0 when every difference is zero, NaN with no pairs) and
    ``wins`` / ``ties`` / ``losses`` of ``a`` (a win is a higher score, or a lower one when
    ``lower_is_better``).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    diff = a - b
    out = {"n": int(len(diff)), "left_out": int((~keep).sum())}
    if not len(diff):
        return {**out, **dict.fromkeys(("mean_a", "mean_b", "mean_diff", "ci_low", "ci_high",
                                        "p_wilcoxon"), math.nan), "wins": 0, "ties": 0,
                "losses": 0}
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (n_boot, len(diff)))].mean(axis=1)
    better = -diff if lower_is_better else diff
    if np.all(diff == 0):
        p = 1.0
    else:
        p = float(stats.wilcoxon(diff, zero_method="wilcox").pvalue)
    return {**out, "mean_a": float(a.mean()), "mean_b": float(b.mean()),
            "mean_diff": float(diff.mean()), "ci_low": float(np.percentile(means, 2.5)),
            "ci_high": float(np.percentile(means, 97.5)), "p_wilcoxon": p,
            "wins": int((better > 0).sum()), "ties": int((better == 0).sum()),
            "losses": int((better < 0).sum())}


def compare_tables(tables: dict, metrics=None, n_boot: int = 10_000, seed: int = 0):
    """Every pair of evaluations (in the order given), for every score they share.

    ``tables`` maps a name to a ``load_per_image`` table. Returns a DataFrame with one row per
    (metric, a, b) and the columns of ``paired_difference``.
    """
    check_same_images(tables)
    names = list(tables)
    if len(names) < 2:
        raise ValueError("a comparison needs at least two evaluations")
    shared = [c for c in tables[names[0]].columns if all(c in t.columns for t in tables.values())]
    if metrics is None:
        metrics = _default_metrics(shared)
    missing = [m for m in metrics if m not in shared]
    if missing:
        raise ValueError(f"score(s) {missing} are not in every evaluation; shared: {shared}")
    index = tables[names[0]].index
    rows = []
    for metric in metrics:
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                stats_ = paired_difference(tables[a].loc[index, metric],
                                           tables[b].loc[index, metric],
                                           lower_is_better(metric), n_boot, seed)
                rows.append({"metric": metric, "a": a, "b": b, **stats_})
    return pd.DataFrame(rows)


def mean_confidence_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the Student-t interval of the mean of ``values`` (the folds of a
    cross-validation); NaN bounds with fewer than two finite values."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return (float(values.mean()) if len(values) else math.nan, math.nan, math.nan)
    mean = float(values.mean())
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1)
                 * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def plot_paired(tables: dict, a: str, b: str, metric: str, path) -> Path:
    """A paired plot of one score: each image a line from its score under ``a`` to ``b``, and
    the distribution of the differences. Writes a PNG to ``path`` and returns it."""
    from matplotlib.figure import Figure  # no pyplot: a notebook's backend stays

    from kerasmed.runfiles import replace_atomic

    index = tables[a].index
    x = tables[a].loc[index, metric].to_numpy(float)
    y = tables[b].loc[index, metric].to_numpy(float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    fig = Figure(figsize=(9, 4), dpi=100)
    left, right = fig.subplots(1, 2)
    for u, v in zip(x, y):
        left.plot([0, 1], [u, v], color="tab:blue" if v >= u else "tab:red", alpha=0.4, lw=1)
    left.set_xticks([0, 1], [a, b])
    left.set_ylabel(metric)
    left.set_title(f"{metric} per image (n = {len(x)})")
    diff = x - y
    centre = float(diff.mean()) if len(diff) else 0.0
    # Equal differences (up to rounding) have no spread to cut into bins: one bar.
    if len(diff) and np.ptp(diff) > 1e-9 * max(1.0, abs(centre)):
        right.hist(diff, bins=min(30, max(5, len(diff) // 3)), color="tab:gray")
    else:
        right.hist(diff, bins=1, range=(centre - 0.5, centre + 0.5), color="tab:gray")
    right.axvline(0, color="black", lw=1)
    right.set_xlabel(f"{metric}: {a} - {b}")
    right.set_title("paired differences")
    fig.tight_layout()
    path = Path(path)
    replace_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    return path
