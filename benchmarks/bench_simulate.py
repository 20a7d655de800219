"""Simulation benchmark: crystals per second per core, LAMMPS cost, 1 vs 2 ranks.

    .venv/bin/python benchmarks/bench_simulate.py            # full (≈5 min on 2 idle cores)
    .venv/bin/python benchmarks/bench_simulate.py --quick    # fewer crystals (≈2–3 min)

Sections (one JSON record, ``benchmarks/results/simulate-cpu.json``):

* ``none_default`` — ``--relax none`` at the default size (49 cells ≈ 20 nm, ≈0.2–0.5 M
  atoms): seconds per crystal of :func:`~autophase.simulate.pipeline.simulate_crystal`
  in one process with single-threaded FFTs (= one core), the median over crystals
  0…n−1, its inverse as crystals/s/core (target ≥ 2), and a per-stage split (facets,
  strain, voxelisation, FFT + Poisson) on the same crystals. Writing a shard row
  (Blosc-LZ4) is timed apart.
* ``lammps`` — seconds per crystal with ``--relax lammps`` (EAM, CG, ≤ 300 iterations)
  at a small size (12 cells ≈ 5 nm) and at the default size, with atoms, iterations
  and the energy drop.
* ``weak_scaling`` — ``mpiexec -n R autophase simulate`` with R crystals-per-rank × R
  crystals (``--relax none``, default size) for R = 1, 2: the run's own wall time (from
  its JSON summary; interpreter and import start-up excluded), throughput, and weak
  efficiency thru(2) / (2 · thru(1)). On a shared 2-core machine this measures the
  machine as much as the code: the load average is recorded beside it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("AUTOPHASE_FFT_WORKERS", "1")  # one core: set before the FFTs run

import numpy as np  # noqa: E402

from autophase.bench.record import write_record  # noqa: E402
from autophase.physics.forward import support_from_amplitude  # noqa: E402
from autophase.simulate.config import SimulationConfig  # noqa: E402
from autophase.simulate.crystal import random_crystal  # noqa: E402
from autophase.simulate.pipeline import (STREAM_FACETS, STREAM_SAMPLE, STREAM_STRAIN,  # noqa: E402
                                         crystal_rng, simulate_crystal)
from autophase.simulate.strain import G111, random_strain  # noqa: E402
from autophase.simulate.voxelize import base_bin, diffract, voxelize  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _load() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


def bench_none(n: int) -> dict:
    cfg = SimulationConfig(n_crystals=n + 1)
    simulate_crystal(cfg, n)  # warm-up: builds the cached 49-cell cube, loads the FFT plan
    per, atoms = [], []
    for i in range(n):
        t0 = time.perf_counter()
        s = simulate_crystal(cfg, i)[0]
        per.append(time.perf_counter() - t0)
        atoms.append(s.meta["n_atoms"])
    # per-stage split on the same crystals
    stages = {"facets": [], "strain": [], "voxelize": [], "fft_poisson": []}
    for i in range(n):
        t = time.perf_counter()
        x = random_crystal(crystal_rng(cfg.seed, i, STREAM_FACETS), cfg.size_cells)
        t1 = time.perf_counter()
        f = random_strain(crystal_rng(cfg.seed, i, STREAM_STRAIN), cfg.size_cells / 2, cfg.max_strain)
        u = f.displacement(x.positions)
        pos = x.positions + u
        p = u @ G111
        t2 = time.perf_counter()
        v = voxelize(pos, p, base_bin(cfg.size_cells))
        t3 = time.perf_counter()
        d = diffract(v.obj, 1e8, crystal_rng(cfg.seed, i, STREAM_SAMPLE))
        support_from_amplitude(d.truth)
        t4 = time.perf_counter()
        for k, dt in zip(stages, (t1 - t, t2 - t1, t3 - t2, t4 - t3)):
            stages[k].append(dt)
    # writing rows to a shard
    from autophase.data.shards import ShardWriter

    samples = [simulate_crystal(cfg, i)[0] for i in range(min(n, 4))]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with ShardWriter(tmp, 0, len(samples), 0, "bench") as w:
            for r, s in enumerate(samples):
                w.write(r, s.magnitude, s.truth, s.support, s.meta, s.params)
            w.commit()
        write_s = (time.perf_counter() - t0) / len(samples)
        size = (Path(tmp) / "shard-00000.h5").stat().st_size / len(samples)
    med = statistics.median(per)
    return {
        "size_cells": cfg.size_cells, "crystals": n, "atoms_median": int(np.median(atoms)),
        "seconds_per_crystal_median": med, "seconds_per_crystal": per,
        "crystals_per_s_per_core": 1.0 / med, "target_crystals_per_s_per_core": 2.0,
        "meets_target": 1.0 / med >= 2.0,
        "stages_median_s": {k: statistics.median(v) for k, v in stages.items()},
        "shard_write_s_per_sample": write_s, "shard_bytes_per_sample": size,
    }


def bench_lammps(size: int, n: int) -> dict:
    cfg = SimulationConfig(n_crystals=n, size_cells=size, relax="lammps")
    rows = []
    for i in range(n):
        t0 = time.perf_counter()
        s = simulate_crystal(cfg, i)[0]
        dt = time.perf_counter() - t0
        r = s.params["relax"]
        rows.append({"seconds": dt, "atoms": r["n_atoms"], "iterations": r["iterations"],
                     "energy_drop_eV": r["energy_drop_eV"],
                     "energy_drop_meV_per_atom": 1e3 * r["energy_drop_per_atom_eV"]})
        print(f"  lammps size {size}: crystal {i}: {dt:.1f} s, {r['n_atoms']} atoms, "
              f"{r['iterations']} iterations", flush=True)
    secs = [r["seconds"] for r in rows]
    return {"size_cells": size, "crystals": n, "seconds_per_crystal_median": statistics.median(secs),
            "us_per_atom_iteration": statistics.median(
                r["seconds"] / (r["atoms"] * max(1, r["iterations"])) * 1e6 for r in rows),
            "runs": rows}


def bench_weak(per_rank: int) -> dict:
    out = {}
    mpiexec = Path(sys.executable).parent / "mpiexec"
    for ranks in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            n = per_rank * ranks
            cmd = [str(mpiexec), "-n", str(ranks), sys.executable, "-m", "autophase.cli", "simulate",
                   "--n-crystals", str(n), "--shard-size", str(per_rank), "--out", f"{tmp}/run",
                   "--no-progress", "--json"]
            t0 = time.perf_counter()
            p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900,
                               env={**os.environ, "AUTOPHASE_FFT_WORKERS": "1"})
            total = time.perf_counter() - t0
            if p.returncode != 0:
                raise RuntimeError(p.stderr)
            summary = json.loads(p.stdout.strip().splitlines()[-1])
            out[str(ranks)] = {"ranks": ranks, "crystals": n, "wall_s": summary["wall_s"],
                               "wall_with_startup_s": total,
                               "crystals_per_s": n / summary["wall_s"], "load_avg": _load()}
            print(f"  {ranks} rank(s): {n} crystals in {summary['wall_s']:.1f} s "
                  f"({n / summary['wall_s']:.2f}/s)", flush=True)
    out["weak_efficiency"] = out["2"]["crystals_per_s"] / (2 * out["1"]["crystals_per_s"])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer crystals (machine busy)")
    ap.add_argument("--out", help="JSON path (default benchmarks/results/simulate-cpu.json)")
    args = ap.parse_args(argv)
    q = args.quick
    res = {"quick": q, "load_avg_start": _load()}
    print("relax none, default size …", flush=True)
    res["none_default"] = bench_none(8 if q else 24)
    nd = res["none_default"]
    print(f"  {nd['seconds_per_crystal_median']:.3f} s/crystal → {nd['crystals_per_s_per_core']:.2f} "
          f"crystals/s/core ({nd['atoms_median']} atoms); stages "
          + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in nd["stages_median_s"].items()), flush=True)
    print("relax lammps …", flush=True)
    res["lammps"] = {"small": bench_lammps(12, 2 if q else 4),
                     "default": bench_lammps(49, 1 if q else 2)}
    print("weak scaling …", flush=True)
    res["weak_scaling"] = bench_weak(6 if q else 16)
    res["load_avg_end"] = _load()
    path = write_record("simulate", res, args.out)
    print(f"weak efficiency (2 ranks): {res['weak_scaling']['weak_efficiency']:.2f}; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
