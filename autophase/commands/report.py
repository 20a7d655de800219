"""``autophase report``: render result records as an HTML page and a Markdown twin.

    autophase report benchmarks/results -o reports/2026-11-25
    autophase report today/*.json eval.json -o out --previous reports/2026-11-24

RESULTS are result records (:mod:`autophase.results`: ``autophase bench``,
``benchmarks/bench_*.py``, ``autophase evaluate``, scaling studies), folders of them, or
past reports' ``report.json`` bundles. A file that is not a valid record is named in a
warning (stderr and the page's Records section) and left out. Without ``--previous`` the
newest earlier dated sibling folder of ``-o`` (``YYYY-MM-DD``) is the comparison. Exit 0;
2 when no record loads; 3 with ``--fail-on-regression`` when a figure got worse by more
than the threshold.
"""
from __future__ import annotations

import argparse

NAME = "report"
HELP = "render result records as a self-contained HTML report (+ Markdown), vs the previous run"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("results", nargs="+", metavar="RESULTS",
                   help="result records (JSON) or folders of them, or a past report's report.json")
    p.add_argument("-o", "--out", required=True, metavar="DIR",
                   help="output folder: index.html, report.md, report.json, figures/")
    p.add_argument("--previous", action="append", metavar="DIR_OR_JSON",
                   help="the run to compare with: a past report folder, its report.json, or records; "
                        "repeatable (default: the newest earlier YYYY-MM-DD folder beside DIR)")
    p.add_argument("--threshold", type=float, default=0.10,
                   help="relative change marked as regression/improvement (default 0.10 = 10%%)")
    p.add_argument("--title", help="page title (default: 'autophase benchmarks — <date>')")
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit with status 3 when any regression beyond the threshold is found")


def run(args: argparse.Namespace) -> int:
    from autophase.report import build_report

    files = build_report(args.results, args.out, args.previous, threshold=args.threshold, title=args.title)
    print(f"report: {files.html}")
    print(f"report: {files.markdown} ({len(files.figures)} figures)")
    if files.previous:
        print(f"report: vs {files.previous}: {files.regressions} regressions, "
              f"{files.improvements} improvements beyond ±{args.threshold:.0%}")
    else:
        print("report: no previous report to compare with")
    return 3 if args.fail_on_regression and files.regressions else 0
