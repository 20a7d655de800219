"""Training throughput (samples/s) for 1 and 2 ranks per engine, through the real CLI.

Each configuration runs ``autophase train`` on the voxel-level synthetic set for two short
epochs (the first absorbs start-up: imports, oneDNN kernel selection, data generation)
and reads the second epoch's ``samples_per_s`` — summed over ranks, training steps only
— from metrics.csv:

    none     1 rank                    autophase train --engine none
    ddp      1 and 2 ranks (gloo)      mpiexec -n R autophase train --engine ddp
    horovod  1 and 2 ranks (MPI)       mpiexec -n R autophase train --engine horovod

On an R-core node each rank gets cores/R torch threads (autophase.distributed), so the
ranks split the machine rather than oversubscribe it.

    .venv/bin/python benchmarks/bench_training.py [--quick] [--width 8] [--out PATH]

Writes benchmarks/results/training-<cpu|gpu>.json via autophase.bench.record.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autophase.bench.record import write_record  # noqa: E402

BIN = Path(sys.executable).parent


def run_config(engine: str, ranks: int, args, workdir: Path) -> dict:
    out = workdir / f"{engine}-{ranks}"
    cmd = [str(BIN / "autophase"), "train", "--engine", engine, "--data", f"synthetic:{args.samples}:0",
           "--out", str(out), "--width", str(args.width), "--batch-size", str(args.batch_size), "--epochs", "2",
           "--steps-per-epoch", str(args.steps), "--max-val", "2", "--bn-recalibrate", "1", "--no-progress"]
    if engine != "none":
        cmd = [str(BIN / "mpiexec"), "-n", str(ranks)] + cmd
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        print(r.stdout[-2000:], r.stderr[-2000:], file=sys.stderr)
        return {"error": f"exit {r.returncode}", "wall_s": wall}
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    last = rows[-1]
    return {"samples_per_s": float(last["samples_per_s"]), "train_s": float(last["train_s"]),
            "steps": args.steps, "batch_per_rank": args.batch_size, "ranks": ranks, "wall_s": wall,
            "first_epoch_samples_per_s": float(rows[0]["samples_per_s"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="width 4, 3 steps per epoch")
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=4, help="per rank")
    ap.add_argument("--steps", type=int, default=8, help="steps per epoch")
    ap.add_argument("--engines", default="none,ddp,horovod")
    ap.add_argument("--out", help="record path (default benchmarks/results/training-<device>.json)")
    args = ap.parse_args()
    if args.quick:
        args.width, args.steps = 4, 3
    args.samples = max(16, 2 * args.batch_size * (args.steps + 2))
    res = {"width": args.width, "batch_per_rank": args.batch_size, "steps_per_epoch": args.steps, "configs": {}}
    with tempfile.TemporaryDirectory() as d:
        for engine in args.engines.split(","):
            for ranks in ((1,) if engine == "none" else (1, 2)):
                r = run_config(engine, ranks, args, Path(d))
                res["configs"][f"{engine}-{ranks}"] = r
                msg = (f"{r['samples_per_s']:.2f} samples/s (all ranks)" if "samples_per_s" in r else r["error"])
                print(f"  {engine:8s} {ranks} rank(s): {msg}  [{r['wall_s']:.0f} s wall]", flush=True)
    for engine in ("ddp", "horovod"):
        one, two = res["configs"].get(f"{engine}-1", {}), res["configs"].get(f"{engine}-2", {})
        if "samples_per_s" in one and "samples_per_s" in two:
            res["configs"][f"{engine}-2"]["speedup_over_1"] = two["samples_per_s"] / one["samples_per_s"]
    path = write_record("training", res, args.out)
    print(f"bench_training: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
