"""``autophase scaling --config jobs/local.toml``: strong and weak scaling of a stage.

Runs the stage (``simulate`` by default, or ``train`` on the run's dataset) at every rank
count, one after another, through the site's Parsl MPI executor, and writes one JSON record
per mode to ``runs/<name>/scaling/scaling-<stage>-<mode>.json`` with T(N), speedup
S = T₁/T_N, efficiency S/N and weak efficiency thru(N)/(N·thru(1)). The options override the
config's ``[scaling]`` table (which may be absent). Points already measured are reused.

    autophase scaling --config jobs/local.toml --ranks 1,2 --work 8
    autophase scaling --config jobs/polaris.toml --stage train --ranks 4,8,16,32 --ranks-per-node 4
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

NAME = "scaling"
HELP = "strong/weak scaling study of a stage over rank or node counts (JSON records)"


def _counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of counts") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("counts must be ≥ 1")
    return counts


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, metavar="TOML", help="run config, e.g. jobs/local.toml")
    p.add_argument("--run-dir", metavar="DIR", help="run directory (default: <run.root>/<run.name>)")
    p.add_argument("--stage", choices=("simulate", "train"), help="stage to scale")
    p.add_argument("--ranks", type=_counts, metavar="N,N,…", help="rank counts, e.g. 1,2 or 4,8,16")
    p.add_argument("--ranks-per-node", type=int, metavar="P", help="ranks per node (nodes = N / P)")
    p.add_argument("--modes", type=lambda s: tuple(s.split(",")), metavar="strong,weak")
    p.add_argument("--work", type=int, metavar="W", help="crystals: total (strong) or per base count (weak)")
    p.add_argument("--size", type=int, metavar="CELLS", help="simulate: crystal size in unit cells")
    p.add_argument("--epochs", type=int, metavar="E", help="train: epochs per point")
    p.add_argument("--steps-per-epoch", type=int, metavar="S", help="train, weak: steps per epoch per rank")


def run(args: argparse.Namespace) -> int:

    from autophase.hpc import config, workflow
    from autophase.hpc.apps import StageFailed
    from autophase.hpc.config import ScalingSection

    from autophase.errors import InputError

    cfg = config.load(args.config)
    base = cfg.scaling or ScalingSection()
    over = {k: v for k, v in {"stage": args.stage, "ranks": args.ranks, "ranks_per_node": args.ranks_per_node,
                              "modes": args.modes, "work": args.work, "size": args.size, "epochs": args.epochs,
                              "steps_per_epoch": args.steps_per_epoch}.items()
            if v is not None}
    sc = dataclasses.replace(base, enabled=True, **over)
    # Re-validate through the strict loader's checks (counts vs ranks_per_node, site nodes, …).
    text = config.dumps(dataclasses.replace(cfg, scaling=sc))
    cfg = config.loads(text, f"{args.config} (with the command's options)")
    run_dir = workflow.run_dir_for(cfg, args.run_dir)
    if sc.stage == "train" and not (run_dir.out("simulate") / "manifest.json").exists():
        raise InputError(f"{run_dir.out('simulate')}: no dataset to train on; run "
                         f"`autophase workflow --config {args.config}` first")
    try:
        workflow.run(cfg, args.run_dir, only=lambda name: name.startswith("scaling-"))
    except StageFailed as e:
        print(f"autophase scaling: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("autophase scaling: interrupted; measured points are kept", file=sys.stderr)
        return 130
    return 0
