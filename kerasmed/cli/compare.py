"""``kerasmed-compare``: paired per-image statistics of two or more evaluations."""

from __future__ import annotations

import argparse

from kerasmed.cli._common import (BAD_INPUT, EXIT_CODES, add_verbose, bad_input, bounded,
                                  interrupted, quiet)


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
    add_verbose(parser)
    args = parser.parse_args(argv)
    quiet(args.verbose)
    from kerasmed.api import compare

    try:
        comparison = compare(args.evaluations, args.names, args.metrics, args.output,
                             args.bootstrap, args.seed)
    except BAD_INPUT as err:
        return bad_input("kerasmed-compare", err)
    except KeyboardInterrupt as interrupt:
        return interrupted("kerasmed-compare", interrupt, "no comparison folder was kept")
    result, out = comparison.table, comparison.path
    for row in result.itertuples():
        print(f"{row.metric:>12} {row.a} - {row.b}: {row.mean_diff:+.4f} "
              f"[{row.ci_low:+.4f}, {row.ci_high:+.4f}], Wilcoxon p = {row.p_wilcoxon:.3g}, "
              f"{row.wins}/{row.ties}/{row.losses} wins/ties/losses (n = {row.n})")
    print(f"kerasmed-compare: outputs in {out}")
    return EXIT_CODES["done"]

