"""The ``autophase`` command: one subcommand per module in :mod:`autophase.commands`.

Each command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``; heavy imports live inside ``run`` so that ``autophase --help``
stays instant. An :class:`~autophase.errors.InputError` (bad file, shape, values) is
printed as one line ``autophase <cmd>: error: <message>`` with exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import InputError

# Order is the order shown by --help: the workflow first, then its stages.
COMMANDS = [
    "workflow", "submit", "scaling",
    "simulate",
    "inspect",
    "prep",
    "phase",
    "train",
    "finetune",
    "predict",
    "watch",
    "models",
    "evaluate",
    "bench",
    "report",
    "results",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autophase",
        description="AutoPhaseNN and iterative phase retrieval for 3D Bragg CDI.",
    )
    parser.add_argument("--version", action="version", version=f"autophase {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        mod = importlib.import_module(f"autophase.commands.{name}")
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    try:
        from .threads import single_blas_thread

        single_blas_thread()  # numpy's BLAS pool would spin on the cores torch and FFTW use
        return int(args._run(args) or 0)
    except InputError as e:
        print(f"autophase {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"autophase {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
