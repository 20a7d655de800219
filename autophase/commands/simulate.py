"""``autophase simulate --n-crystals N --out DIR``: simulated training data as HDF5 shards.

    autophase simulate --n-crystals 64 --out runs/sim                     # one process
    mpiexec -n 4 autophase simulate --n-crystals 1024 --out runs/sim      # 4 ranks, same data
    autophase simulate --n-crystals 16 --out runs/small --size 16 --relax lammps

Re-running the same command into the same DIR resumes (only missing shards are made);
a different configuration into a DIR holding data is refused. See
:mod:`autophase.simulate.run` for the parallel layout and :mod:`autophase.data.manifest`
for what DIR holds.
"""
from __future__ import annotations

import argparse
import json

NAME = "simulate"
HELP = "simulate strained fcc gold crystals and their noisy diffraction patterns (HDF5 shards; MPI-parallel)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--n-crystals", type=int, required=True, metavar="N", help="number of crystals")
    p.add_argument("--out", required=True, metavar="DIR", help="output run directory")
    p.add_argument("--relax", choices=("none", "lammps"), default="none",
                   help="LAMMPS EAM energy minimisation of each strained crystal (default none)")
    p.add_argument("--seed", type=int, default=0, help="run seed (crystal i uses (seed, i))")
    p.add_argument("--photons", default=None, metavar="LO[:HI]",
                   help="expected photons per pattern: fixed LO, or log-uniform in [LO, HI] (default 1e7:1e9; "
                        "1e5:1e10 with --domain)")
    p.add_argument("--rotations", type=int, default=0, metavar="K",
                   help="K extra random rotations of each crystal's atoms (augmentation; default 0)")
    p.add_argument("--size", type=int, default=49, metavar="CELLS",
                   help="edge of the starting fcc cube in unit cells (49 ≈ 20 nm; 6–128)")
    p.add_argument("--shard-size", type=int, default=64, metavar="S", help="crystals per shard file")
    p.add_argument("--max-strain", type=float, default=0.01, help="strain amplitude (default 0.01 = 1 %%)")
    p.add_argument("--relax-maxiter", type=int, default=300, help="LAMMPS minimize iteration cap")
    p.add_argument("--domain", nargs="?", const="{}", default=None, metavar="JSON",
                   help="domain randomisation (shapes, per-axis oversampling, defects, blur, background, gaps, "
                        "off-centre peak; autophase.simulate.domain); optional JSON object or .json file of "
                        "range overrides, e.g. '{\"p_gap\": 0}'")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="also print the run summary as one JSON line")


def _domain(text: str | None):
    """None, or a DomainConfig from ``--domain`` (a JSON object or a .json file of overrides)."""
    if text is None:
        return None
    from pathlib import Path

    from ..simulate.domain import DomainConfig

    src = Path(text).read_text() if text.endswith(".json") and Path(text).is_file() else text
    try:
        d = json.loads(src)
    except ValueError as e:
        raise ValueError(f"--domain: not a JSON object or .json file ({e})") from None
    if not isinstance(d, dict):
        raise ValueError(f"--domain: expected a JSON object of overrides, got {text!r}")
    return DomainConfig.from_dict(d)


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..mpi_world import check_world
    from ..simulate.config import SimulationConfig, parse_photons
    from ..simulate.run import run_simulation

    check_world("simulate")  # before any file: COMM_WORLD.size == the ranks asked for
    try:
        domain = _domain(args.domain)
        lo, hi = parse_photons(args.photons or ("1e5:1e10" if domain is not None else "1e7:1e9"))
        cfg = SimulationConfig(
            n_crystals=args.n_crystals, seed=args.seed, relax=args.relax, photons_min=lo,
            photons_max=hi, rotations=args.rotations, size_cells=args.size,
            shard_size=args.shard_size, max_strain=args.max_strain,
            relax_maxiter=args.relax_maxiter, domain=domain)
    except ValueError as e:
        raise InputError(f"simulate options: {e}") from None
    summary = run_simulation(cfg, args.out, progress=not args.no_progress)
    if summary is not None:
        s = summary
        print(f"simulate: {s['n_crystals']} crystals → {s['n_samples']} patterns in {s['n_shards']} "
              f"shard(s) at {s['run_dir']} ({s['shards_written']} written, {s['shards_skipped']} "
              f"already there) on {s['ranks']} rank(s) in {s['wall_s']:.1f} s")
        if s["crystals_made"]:
            print(f"simulate: {s['crystals_per_s']:.2f} crystals/s overall, "
                  f"{s['seconds_per_crystal_per_rank']:.3f} s per crystal per rank")
        if s["relax_iterations_mean"] is not None:
            print(f"simulate: LAMMPS relaxation: {s['relax_iterations_mean']:.0f} iterations and "
                  f"{s['relax_drop_eV_per_atom_mean'] * 1000:.2f} meV/atom energy drop on average")
        if args.json:
            print(json.dumps(s))
    return 0
