"""``kerasmed-compare``: paired per-image statistics of two or more evaluations."""

from __future__ import annotations

import argparse

from kerasmed.cli._common import BAD_INPUT, EXIT_CODES, bad_input, bounded


def _labels(paths):
    """Short names for evaluations: the run's folder name (an ``eval_*`` folder's parent), or
    the path as given when those collide."""
    from pathlib import Path

    labels = []
    for p in map(Path, paths):
        folder = p if p.is_dir() else p.parent
        labels.append(folder.parent.name if folder.name.startswith("eval_") else folder.name)
    return labels if len(set(labels)) == len(labels) else [str(p) for p in paths]



def compare_main(argv=None) -> int:
    """Run ``kerasmed-compare``: paired per-image statistics of two or more evaluations."""
    parser = argparse.ArgumentParser(
        prog="kerasmed-compare",
        description="Compare evaluations of the same images (kerasmed-eval folders or their "
                    "per_image.csv) image by image: for each score the mean difference with a "
                    "bootstrap 95 %% confidence interval, the Wilcoxon signed-rank p-value, "
                    "wins / ties / losses (comparison.csv; for the distances HD95 and ASSD "
                    "the lower score wins) and a paired plot per score.")
    parser.add_argument("evaluations", nargs="+", help="two or more eval_* folders")
    parser.add_argument("--names", help="comma-separated names (default: the runs' folders)")
    parser.add_argument("--metrics", help="comma-separated scores (default: every score the "
                                          "evaluations share)")
    parser.add_argument("--output", default="comparisons",
                        help="parent folder of the new compare_<timestamp> folder "
                             "(default: comparisons)")
    parser.add_argument("--bootstrap", type=bounded(int, 1), default=10_000,
                        help="bootstrap resamples of the mean difference (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    args = parser.parse_args(argv)
    if len(args.evaluations) < 2:
        parser.error("give at least two evaluations")
    from pathlib import Path

    resolved = [Path(p).resolve() for p in args.evaluations]
    if len(set(resolved)) < len(resolved):
        twice = next(str(p) for p in args.evaluations
                     if resolved.count(Path(p).resolve()) > 1)
        parser.error(f"{twice} is given twice; compare different evaluations")
    names = args.names.split(",") if args.names else _labels(args.evaluations)
    if len(names) != len(args.evaluations) or len(set(names)) != len(names):
        parser.error("--names needs one distinct name per evaluation")
    import json
    import re

    from kerasmed.evaluation.compare import (check_same_units, compare_tables, load_per_image,
                                             plot_paired)
    from kerasmed.runfiles import create_run_dir, write_json_atomic

    try:
        tables = {n: load_per_image(p) for n, p in zip(names, args.evaluations)}
        check_same_units(dict(zip(names, args.evaluations)))
        metrics = args.metrics.split(",") if args.metrics else None
        result = compare_tables(tables, metrics, n_boot=args.bootstrap, seed=args.seed)
        out = create_run_dir(args.output, "compare")
        result.to_csv(out / "comparison.csv", index=False)
        for row in result.itertuples():
            pair = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{row.a}_vs_{row.b}").strip("-")
            plot_paired(tables, row.a, row.b, row.metric, out / f"paired_{row.metric}_{pair}.png")
        write_json_atomic(out / "summary.json", {
            "evaluations": dict(zip(names, map(str, args.evaluations))),
            "images": int(len(next(iter(tables.values())))), "bootstrap": args.bootstrap,
            "seed": args.seed, "rows": json.loads(result.to_json(orient="records"))})
    except BAD_INPUT as err:
        return bad_input("kerasmed-compare", err)
    for row in result.itertuples():
        print(f"{row.metric:>12} {row.a} - {row.b}: {row.mean_diff:+.4f} "
              f"[{row.ci_low:+.4f}, {row.ci_high:+.4f}], Wilcoxon p = {row.p_wilcoxon:.3g}, "
              f"{row.wins}/{row.ties}/{row.losses} wins/ties/losses (n = {row.n})")
    print(f"kerasmed-compare: outputs in {out}")
    return EXIT_CODES["done"]

