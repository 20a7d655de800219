"""``autophase evaluate``: NN alone vs NN + K ER vs full phasing on held-out simulated crystals.

Example::

    autophase evaluate --data runs/sim --model autophase/models/default.pt --out results.json \\
        --n 100 --refine 50 --phasing 600

Each crystal's row is appended (fsync'd) to ``<out stem>.rows.jsonl`` beside the results
as soon as it is scored; the same command after a kill or a walltime continues from
there, skipping the crystals done. The results JSON is written once all are done, and the
rows file is then removed.
"""
from __future__ import annotations

import argparse
import sys

NAME = "evaluate"
HELP = "compare the network, network + ER refinement and iterative phasing against the truth"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..predict import add_refinement_arguments

    p.add_argument("--data", help="a simulated run directory (or synthetic:N[:SEED[:LO:HI]]); required "
                                   "unless --suite external")
    p.add_argument("--suite", choices=("heldout", "external"), default="heldout",
                   help="heldout (default): --data's held-out crystals; external: the independent generator "
                        "(set --seed, --n crystals) and every shared measured scan (autophase.external_suite)")
    p.add_argument("--model", help="checkpoint (default: the shipped model)")
    p.add_argument("--out", required=True, help="results .json")
    p.add_argument("--n", type=int, default=100, help="held-out crystals to evaluate")
    p.add_argument("--refine", type=int, default=50, metavar="K", help="ER iterations after the NN (0: skip)")
    add_refinement_arguments(p)
    p.add_argument("--phasing", type=int, default=None, metavar="N",
                   help="iterations of full phasing (20 ER + 160 HIO + 20 ER blocks; 0: skip; default: as "
                        "many as phasing's own default schedule, 600)")
    p.add_argument("--seed", type=int, default=0, help="phasing's random starts")
    p.add_argument("--sources", default=None,
                   help="--suite external: a comma-separated subset of its sources (default: all)")
    p.add_argument("--phasing-starts", type=int, default=None, metavar="N",
                   help="--suite external: phasing seeds on each measured scan, the median run reported "
                        "(default 3; phasing is not bit-reproducible, so its spread is part of the answer)")
    p.add_argument("--backend", choices=("torch", "onnx"), default=None,
                   help="--suite external: what runs the network, torch (default) or onnx (ONNX Runtime, the "
                        "same weights; what `predict` runs on a CPU): the same answers to rounding, so a "
                        "second backend repeats the suite with ER's sensitivity to its start showing")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the network; its one-off cost counts in the NN time (default: from 32 "
                        "patterns on, where it is repaid)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import InputError
    from ..evaluate import evaluate, write_results
    from ..predict import refinement_from_args

    out = Path(args.out)
    if out.suffix.lower() != ".json":
        raise InputError(f"{out}: results must be a .json file")
    if not out.parent.exists():
        raise InputError(f"{out.parent}: output directory does not exist")
    if args.n < 1 or args.refine < 0 or (args.phasing is not None and args.phasing < 0):
        raise InputError("need --n ≥ 1, --refine ≥ 0, --phasing ≥ 0")
    refinement = refinement_from_args(args)
    if args.suite != "external":
        # options of the other suite are refused, not ignored: a study run with them would
        # silently be a different study
        for opt, v in (("--sources", args.sources), ("--phasing-starts", args.phasing_starts)):
            if v is not None:
                raise InputError(f"{opt}: only with --suite external (the held-out suite has one source and "
                                 f"one phasing start per crystal)")
        if args.backend is not None:
            raise InputError("--backend: only with --suite external (the held-out suite runs torch, compiled "
                             "from 32 crystals on)")
    if args.suite == "external":
        from ..external_suite import run_command

        return run_command(args, out)
    if not args.data:
        raise InputError("--data: a simulated run directory is required (or --suite external)")

    def progress(k, n):
        print(f"\revaluate: {k}/{n} crystals", end="" if k < n else "\n", file=sys.stderr, flush=True)

    rows = out.with_name(out.stem + ".rows.jsonl")
    if rows.exists():
        print(f"evaluate: continuing from the rows in {rows}", file=sys.stderr, flush=True)
    from ..evaluate import default_phasing_iterations

    phasing = default_phasing_iterations() if args.phasing is None else args.phasing
    res = evaluate(args.data, args.model, n=args.n, refine=args.refine, phasing=phasing, seed=args.seed,
                   progress=progress, refinement=refinement, symmetries=args.symmetries,
                   average_above=args.average_above, compile=args.compile, rows_file=rows)
    write_results(res, out)
    rows.unlink(missing_ok=True)  # every row is in the results now
    s = res["summary"]
    for m in ("nn", "refine", "phasing", "sphere"):
        if m in s:
            d = s[m]
            print(f"evaluate: {m:8s} χ² {d['chi2']['median']:.4g}  complex error {d['complex_error']['median']:.3f}"
                  f"  phase error {d['phase_error_rad']['median']:.3f} rad  SSIM {d['ssim_box']['median']:.3f}"
                  + (f"  {d['seconds']['median']:.3g} s" if "seconds" in d else ""))
    for k, v in s["acceptance"].items():
        print(f"evaluate: {k} = {v:.3g}" if isinstance(v, float) else f"evaluate: {k} = {v}")
    print(f"evaluate: {res['n']} crystals from {res['held_out']}; results in {out}")
    return 0
