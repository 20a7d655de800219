"""``autophase results``: check result records against the schema, or migrate old ones.

    autophase results validate benchmarks/results      # a folder: every *.json in it
    autophase results migrate benchmarks/results/*.json

``validate`` prints one line per bad file (the file and the field), exit 1 when any is bad.
``migrate`` rewrites records written before the schema (``autophase.result/1``) in place,
atomically; current records are left alone. If any file cannot be migrated, it says which
and why, exits 1, and writes nothing.
"""
from __future__ import annotations

import argparse
import sys

NAME = "results"
HELP = "validate result records against the schema, or migrate old-format ones in place"


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    v = sub.add_parser("validate", help="check records: one line per bad file, exit 1 if any")
    v.add_argument("files", nargs="+", metavar="FILE", help="record files, or folders of *.json records")
    m = sub.add_parser("migrate", help="rewrite old-format records in place (current ones are left alone)")
    m.add_argument("files", nargs="+", metavar="FILE", help="record files, or folders of *.json records")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import InputError
    from ..results.io import read_result, write_result
    from ..results.migrate import layout, migrate_file

    files: list[str] = []
    for f in args.files:
        files += sorted(map(str, Path(f).glob("*.json"))) if Path(f).is_dir() else [f]
    args.files = files
    if args.action == "validate":
        bad = 0
        for f in args.files:
            try:
                read_result(f)
            except InputError as e:
                msg = str(e)
                try:
                    import json

                    if layout(json.loads(Path(f).read_text())) not in (None, "current"):
                        msg = f"{f}: old-format record (no 'schema' field): run `autophase results migrate {f}`"
                except (OSError, ValueError):
                    pass
                print(msg)
                bad += 1
        print(f"results: {len(args.files) - bad} valid, {bad} invalid", file=sys.stderr)
        return 1 if bad else 0

    todo, errors = [], []
    for f in args.files:
        try:
            res = migrate_file(f)
        except InputError as e:
            errors.append(str(e))
            continue
        if res is None:
            print(f"{f}: already current, left alone")
        else:
            todo.append((f, res))
    if errors:
        for e in errors:
            print(e)
        print(f"results: nothing written ({len(errors)} file(s) cannot be migrated)", file=sys.stderr)
        return 1
    for f, res in todo:
        write_result(res, f)
        print(f"{f}: migrated ({res.suite}, {len(res.metrics)} metrics, {len(res.series)} series, "
              f"{len(res.distributions)} distributions)")
    return 0
