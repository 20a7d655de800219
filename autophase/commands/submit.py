"""``autophase submit STAGE --config jobs/polaris.toml``: a batch script per stage, or the workflow's.

STAGE is ``workflow`` (the Parsl driver inside one job holding ``site.nodes`` nodes) or one
stage of the graph (``simulate``, ``train``, ``evaluate``, ``bench-<suite>``, ``report``), run
alone with its site's launcher line and environment. The script is written to
``runs/<name>/jobs/`` and handed to ``qsub`` (Polaris) or ``sbatch`` (Perlmutter) from the
repository root, which the scripts ``cd`` back into and name their paths from.

``--dry-run`` prints the script instead; ``--write DIR`` writes every stage's script and the
workflow's into DIR (how ``jobs/polaris/`` and ``jobs/perlmutter/`` are made).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from ..atomic import write_text

NAME = "submit"
HELP = "write (and qsub/sbatch) the batch script of one stage or of the whole workflow"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("stage", help="workflow | simulate | train | evaluate | bench-<suite> | report | all")
    p.add_argument("--config", required=True, metavar="TOML", help="run config, e.g. jobs/polaris.toml")
    p.add_argument("--dry-run", action="store_true", help="print the script; submit nothing")
    p.add_argument("--write", metavar="DIR", help="write the script(s) into DIR; submit nothing")


def run(args: argparse.Namespace) -> int:

    from autophase.hpc import batch, config, sites

    from autophase.errors import InputError

    cfg = config.load(args.config)
    scripts = batch.all_scripts(cfg)
    suffix = batch.SUFFIX[sites.site_module(cfg).SCHEDULER]
    if args.stage == "all":
        if not (args.dry_run or args.write):
            raise InputError("submit all: use it with --dry-run or --write DIR (submit stages one by one)")
        chosen = scripts
    else:
        name = f"{args.stage}{suffix}"
        if name not in scripts:
            known = ", ".join(k.removesuffix(suffix) for k in scripts)
            raise InputError(f"{args.config}: no stage {args.stage!r} (known: {known}, all)")
        chosen = {name: scripts[name]}

    if args.write:
        out = Path(args.write)
        out.mkdir(parents=True, exist_ok=True)
        for name, text in chosen.items():
            _write(out / name, text)
            print(out / name)
    if args.dry_run:
        for name, text in chosen.items():
            print(f"# ---- {name}")
            print(text, end="")
    if args.dry_run or args.write:
        return 0

    ((name, text),) = chosen.items()
    from autophase.paths import checkout_root

    # The scripts cd into the submission directory and name everything relative to the
    # repository root: submit from there, whatever the current directory (from a wheel:
    # the current directory).
    base = checkout_root() or Path.cwd()
    path = (base / cfg.run.root / cfg.run.name / "jobs" / name).resolve()
    _write(path, text)
    tool = "qsub" if suffix == ".pbs" else "sbatch"
    if shutil.which(tool) is None:
        raise InputError(f"{tool}: not found on this host (wrote {path}; submit it on a login node)")
    done = subprocess.run([tool, str(path)], capture_output=True, text=True, cwd=base)
    sys.stdout.write(done.stdout)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise InputError(f"{tool} {path}: exit status {done.returncode}")
    return 0


def _write(path: Path, text: str) -> None:
    write_text(path, text, mode=0o755)
