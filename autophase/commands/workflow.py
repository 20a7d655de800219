"""``autophase workflow --config jobs/local.toml``: the whole graph, driven by Parsl.

simulate (MPI) → validate the manifest → train (MPI: DDP or Horovod) → evaluate →
benchmarks → (scaling) → report, on this machine or inside a Polaris / Perlmutter job,
from one strict TOML run config (``jobs/{local,polaris,perlmutter}.toml``). Everything of a
run lives in ``runs/<name>/`` (or ``--run-dir``); running the same command again reuses every
finished stage and resumes an interrupted training from its last checkpoint.

``--dry-run`` prints the plan — each stage's exact ``mpiexec``/``srun`` line and, for a batch
site, the workflow's batch script — and runs nothing.

This command imports neither torch nor the model: the graph drives the other commands.
"""
from __future__ import annotations

import argparse
import sys

NAME = "workflow"
HELP = "run the whole graph (simulate → train → evaluate → benchmarks → report) with Parsl"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, metavar="TOML", help="run config, e.g. jobs/local.toml")
    p.add_argument("--run-dir", metavar="DIR", help="run directory (default: <run.root>/<run.name>)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the batch script and the exact launcher lines; run nothing")


def run(args: argparse.Namespace) -> int:
    from autophase.hpc import config, workflow
    from autophase.hpc.apps import StageFailed

    cfg = config.load(args.config)
    if args.dry_run:
        workflow.dry_run(cfg, args.run_dir)
        return 0
    try:
        workflow.run(cfg, args.run_dir)
    except StageFailed as e:
        print(f"autophase workflow: {e}", file=sys.stderr)
        if e.tail:
            print("".join(f"  | {line}\n" for line in e.tail.rstrip().splitlines()), end="", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("autophase workflow: interrupted; finished stages are kept — run the same command "
              "again to resume", file=sys.stderr)
        return 130
    return 0
