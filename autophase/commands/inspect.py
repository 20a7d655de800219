"""``autophase inspect DIR``: what a simulated run holds, in numbers and in a picture.

Prints counts, shapes and photon statistics from the manifest, and writes a PNG montage
(default ``DIR/inspect.png``) of a few patterns (log scale, central slices) beside their
true amplitudes and phases. See :mod:`autophase.data.inspect`.
"""
from __future__ import annotations

import argparse
import json

NAME = "inspect"
HELP = "summarise a simulated run directory and write a PNG montage of patterns and truths"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="DIR", help="a directory written by 'autophase simulate'")
    p.add_argument("--png", help="montage path (default DIR/inspect.png)")
    p.add_argument("-n", type=int, default=4, help="samples in the montage (default 4)")
    p.add_argument("--no-png", action="store_true", help="print the summary only")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..data.inspect import format_summary, montage, summarize
    from ..errors import InputError

    if args.n < 1:
        raise InputError(f"-n must be ≥ 1, got {args.n}")
    s = summarize(args.run_dir)
    print(json.dumps(s, indent=1) if args.json else format_summary(s))
    if not args.no_png:
        png = Path(args.png) if args.png else Path(args.run_dir) / "inspect.png"
        if not png.parent.is_dir():
            raise InputError(f"{png.parent}: directory does not exist")
        out = montage(args.run_dir, png, n=args.n)
        print(f"montage    {out}")
    return 0
