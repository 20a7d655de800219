"""Training throughput (samples/s) for 1 and 2 ranks per engine, through the real CLI.

Each configuration runs ``autophase train`` (as ``python -m autophase.cli``) for two short
epochs (the first absorbs start-up: imports, oneDNN/cuDNN kernel selection, data
generation) and reads the second epoch's ``samples_per_s`` — summed over ranks, training
steps only — from metrics.csv:

    none     1 rank                    autophase train --engine none
    ddp      1 and 2 ranks             mpiexec -n R … --engine ddp   (or torchrun --nproc-per-node R)
    horovod  1 and 2 ranks (MPI)       mpiexec -n R … --engine horovod

On an R-core node each rank gets cores/R torch threads (autophase.distributed), so the
ranks split the machine rather than oversubscribe it. On GPUs each rank takes its own
GPU (NCCL refuses two ranks on one), so R runs only up to the GPU count; a row that
cannot run here is recorded with the reason instead of a figure.

Data: ``synthetic:N`` (the default; generated on the fly and cached per rank, fine for a
CPU) or ``--data RUN_DIR`` — a simulated run, read from its HDF5 shards by ``--workers``
loader processes: on a GPU the synthetic generator, not the network, would be timed.

    .venv/bin/python benchmarks/bench_training.py [--quick] [--width 8] [--out PATH]
    python3 benchmarks/bench_training.py --data runs/sim --workers 6 --batch-size 16 --steps 20   # GPU

Writes benchmarks/results/training-<cpu|gpu>.json via autophase.bench.record.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autophase.bench.record import write_record  # noqa: E402

BIN = Path(sys.executable).parent


def gpu_count() -> int:
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:  # pragma: no cover
        return 0


def find_mpiexec() -> str | None:
    """The mpiexec beside this Python (the venv's MPICH), else the one on the PATH."""
    return str(BIN / "mpiexec") if (BIN / "mpiexec").exists() else shutil.which("mpiexec")


def mpi_family(text: str) -> str | None:
    """``"openmpi"``, ``"mpich"`` (MPICH, Hydra, Cray MPICH) or None, from version text."""
    t = text.lower()
    if "open mpi" in t or "open-rte" in t or "openrte" in t:
        return "openmpi"
    if "mpich" in t or "hydra" in t:
        return "mpich"
    return None


def mpiexec_problem(exe: str | None) -> str | None:
    """Why ``exe`` cannot launch this Python's mpi4py ranks (None: it can).

    The recorded H200 row ``ddp-1: exit 1`` after 4 ms was this: the benchmark ran under the
    system ``python3``, the launcher "beside this Python" was ``/usr/bin/mpiexec`` — Open
    MPI's, which exits 1 at once when run as root — while mpi4py was not built on Open MPI.
    A launcher of another MPI family than mpi4py's (or one that cannot start) is refused;
    the benchmark then uses torchrun.
    """
    if exe is None:
        return "no mpiexec beside this Python or on the PATH"
    try:
        ver = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60)
        lib = subprocess.run([sys.executable, "-c", "from mpi4py import MPI; print(MPI.Get_library_version())"],
                             capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"{exe}: {e}"
    if lib.returncode != 0:
        return "mpi4py cannot start MPI here"
    have, want = mpi_family(ver.stdout + ver.stderr), mpi_family(lib.stdout)
    if have != want:
        return f"{exe} belongs to {have or 'an unknown MPI'} but mpi4py runs on {want or 'an unknown MPI'}"
    return None


def launcher_command(launcher: str, ranks: int) -> list[str]:
    """The prefix that starts ``ranks`` processes of ``python -m autophase.cli``."""
    if launcher == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks),
                "-m", "autophase.cli"]
    return [find_mpiexec(), "-n", str(ranks), sys.executable, "-m", "autophase.cli"]


def cannot_run(engine: str, ranks: int, launcher: str, gpus: int) -> str | None:
    """Why this row cannot run on this machine (None: it can)."""
    if gpus and ranks > gpus:
        return f"needs {ranks} GPUs (one rank per GPU), {gpus} here"
    if engine == "horovod" and importlib.util.find_spec("horovod") is None:
        return "horovod is not built for this Python (scripts/build_horovod.sh)"
    if engine == "horovod" and launcher == "torchrun":
        return "horovod runs under mpiexec or horovodrun, not torchrun"
    if engine != "none" and launcher == "mpiexec" and find_mpiexec() is None:
        return "no mpiexec on the PATH (pip install mpich)"
    return None


def run_config(engine: str, ranks: int, args, workdir: Path) -> dict:
    out = workdir / f"{engine}-{ranks}"
    cmd = ["train", "--engine", engine, "--data", args.data, "--out", str(out), "--width", str(args.width),
           "--batch-size", str(args.batch_size), "--epochs", "2", "--steps-per-epoch", str(args.steps),
           "--max-val", "2", "--bn-recalibrate", "1", "--workers", str(args.workers), "--no-progress"]
    if engine == "none":
        cmd = [sys.executable, "-m", "autophase.cli"] + cmd
    else:
        cmd = launcher_command(args.launcher, ranks) + cmd
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    if engine != "none" and args.launcher == "mpiexec" and os.geteuid() == 0:
        # Open MPI refuses root without these (MPICH ignores them)
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in [env.get("PYTHONPATH")] if p])
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        print(r.stdout[-2000:], r.stderr[-2000:], file=sys.stderr)
        last = next((ln.strip() for ln in reversed((r.stderr or r.stdout).splitlines()) if ln.strip()), "")
        # the launcher's own last line, so that a record explains itself
        return {"error": f"exit {r.returncode}" + (f": {last[:300]}" if last else ""), "wall_s": wall,
                "launcher": "-" if engine == "none" else args.launcher}
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    last = rows[-1]
    return {"samples_per_s": float(last["samples_per_s"]), "train_s": float(last["train_s"]),
            "steps": args.steps, "batch_per_rank": args.batch_size, "ranks": ranks, "wall_s": wall,
            "first_epoch_samples_per_s": float(rows[0]["samples_per_s"]),
            "launcher": "-" if engine == "none" else args.launcher}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="width 4, 3 steps per epoch")
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=4, help="per rank")
    ap.add_argument("--steps", type=int, default=8, help="steps per epoch")
    ap.add_argument("--engines", default="none,ddp,horovod")
    ap.add_argument("--data", help="training data (default synthetic:N, N enough for both epochs)")
    ap.add_argument("--workers", type=int, default=0, help="data-loader processes per rank")
    ap.add_argument("--launcher", choices=("mpiexec", "torchrun"),
                    help="how ddp ranks start (default: the mpiexec beside this Python, else torchrun)")
    ap.add_argument("--out", help="record path (default benchmarks/results/training-<cpu|gpu>.json)")
    args = ap.parse_args()
    if args.quick:
        args.width, args.steps = 4, 3
    if args.data is None:
        args.data = f"synthetic:{max(16, 2 * args.batch_size * (args.steps + 2))}:0"
    launcher_note = None
    if args.launcher is None:
        # mpiexec only when it is mpi4py's own MPI (see mpiexec_problem: the H200's
        # /usr/bin/mpiexec was Open MPI's and failed at once); torchrun needs no MPI
        launcher_note = mpiexec_problem(find_mpiexec())
        args.launcher = "torchrun" if launcher_note else "mpiexec"
        if launcher_note:
            print(f"bench_training: ddp ranks start with torchrun: {launcher_note}", flush=True)
    gpus = gpu_count()
    res = {"width": args.width, "batch_per_rank": args.batch_size, "steps_per_epoch": args.steps,
           "data": args.data, "workers": args.workers, "device": f"{gpus} GPU(s)" if gpus else "cpu",
           "launcher": args.launcher, "launcher_note": launcher_note, "configs": {}}
    with tempfile.TemporaryDirectory() as d:
        for engine in args.engines.split(","):
            for ranks in ((1,) if engine == "none" else (1, 2)):
                why = cannot_run(engine, ranks, args.launcher, gpus)
                r = {"skipped": why, "ranks": ranks} if why else run_config(engine, ranks, args, Path(d))
                res["configs"][f"{engine}-{ranks}"] = r
                msg = (f"{r['samples_per_s']:.2f} samples/s (all ranks)" if "samples_per_s" in r
                       else r.get("error") or f"skipped: {why}")
                print(f"  {engine:8s} {ranks} rank(s): {msg}" + (f"  [{r['wall_s']:.0f} s wall]" if "wall_s" in r
                                                                  else ""), flush=True)
    for engine in ("ddp", "horovod"):
        one, two = res["configs"].get(f"{engine}-1", {}), res["configs"].get(f"{engine}-2", {})
        if "samples_per_s" in one and "samples_per_s" in two:
            res["configs"][f"{engine}-2"]["speedup_over_1"] = two["samples_per_s"] / one["samples_per_s"]
    path = write_record("training", res, args.out)
    print(f"bench_training: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
