"""Simulate a dataset over MPI ranks: each rank writes whole shards; rank 0 writes the manifest.

    autophase simulate --n-crystals 1000 --out runs/sim                 # one process
    mpiexec -n 8 autophase simulate --n-crystals 1000 --out runs/sim    # eight ranks

Work split: shard k (crystals [k·S, (k+1)·S)) is made by whichever rank claims it next from
a shared counter (:class:`ShardQueue`, dynamic load balancing: crystals vary in cost —
LAMMPS iterations, size — and a rank that drew cheap ones takes more shards, instead of a
static round robin that waits for the unluckiest rank). Every file is written by exactly one
rank and the file set does not depend on R; each crystal's randomness depends only on
(seed, crystal index) (:func:`~autophase.simulate.pipeline.crystal_rng`), so neither do the
bytes of the magnitudes, whichever rank makes them. One rank is one core: FFTs run single-threaded (``AUTOPHASE_FFT_WORKERS=1``
unless set) and LAMMPS runs on ``MPI.COMM_SELF``.

Sequence:
1. rank 0 checks or creates ``DIR/run.json`` (another run's data → InputError) and deletes
   partial files of killed runs; the result is broadcast;
2. every rank makes its shards, skipping those already complete (resume);
3. after a barrier, rank 0 reads every shard's bookkeeping and writes ``magnitudes.h5``
   (virtual dataset) and, last, ``manifest.json``.

A rank that fails aborts the whole job (``MPI_Abort``): the other ranks would otherwise
wait for it forever at the barrier. Complete shards survive; re-running the same
command finishes the rest.

Without an MPI launcher (or without mpi4py) the run is a single rank.
"""
from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from ..data.manifest import build_manifest, prepare_run_dir, remove_part_files
from ..data.shards import ShardWriter, check_shard, shard_name
from ..errors import InputError
from .config import SimulationConfig
from .pipeline import simulate_crystal

__all__ = ["get_comm", "my_shards", "ShardQueue", "run_simulation", "KILL_ENV"]

# Test hook: SIGKILL this process after writing this many samples (proves resumability
# with a real, uncatchable kill; ignored unless set).
KILL_ENV = "AUTOPHASE_TEST_KILL_AFTER_SAMPLES"


def get_comm():
    """MPI.COMM_WORLD if mpi4py is importable, else None (a single rank)."""
    try:
        from mpi4py import MPI
    except ImportError:  # pragma: no cover - mpi4py is in the sim/hpc extras
        return None
    except Exception as e:  # noqa: BLE001 - mpi4py present but no MPI library it can load  # pragma: no cover
        print(f"autophase simulate: mpi4py cannot start MPI ({e}); running as one rank", file=sys.stderr)
        return None
    return MPI.COMM_WORLD


def my_shards(n_shards: int, rank: int, size: int) -> list[int]:
    """A static split (round robin): k ≡ rank (mod size). :class:`ShardQueue` replaced it."""
    return list(range(rank, n_shards, size))


class ShardQueue:
    """Shard indices 0 … n−1 handed out one at a time to whichever rank asks next.

    The counter (one int64) lives in an MPI window on rank 0; a claim is an atomic
    ``MPI_Fetch_and_op(+1)`` under a shared lock, so every index goes to exactly one rank.
    Without hardware atomics MPICH completes it when rank 0 enters the MPI library, so rank 0
    calls :meth:`poke` between crystals (a claim waits at most one of its crystals). With one
    rank (or no MPI) it counts locally. :meth:`close` is collective: every rank calls it after
    its last claim.
    """

    def __init__(self, comm, n_shards: int):
        self.n, self._next_local, self._win, self._comm = n_shards, 0, None, comm
        if comm is not None and comm.Get_size() > 1:
            from mpi4py import MPI

            self._mpi = MPI
            item = MPI.INT64_T.Get_size()
            self._win = MPI.Win.Allocate(item if comm.Get_rank() == 0 else 0, item, comm=comm)
            if comm.Get_rank() == 0:
                self._win.Lock(0)
                self._win.Put(np.zeros(1, np.int64), 0)
                self._win.Unlock(0)
            comm.Barrier()  # nobody claims before the counter is 0

    def claim(self) -> int:
        """The next unclaimed index (≥ n once all are gone)."""
        if self._win is None:
            k, self._next_local = self._next_local, self._next_local + 1
            return k
        got = np.zeros(1, np.int64)
        self._win.Lock(0, self._mpi.LOCK_SHARED)
        self._win.Fetch_and_op(np.ones(1, np.int64), got, 0, 0, self._mpi.SUM)
        self._win.Unlock(0)
        return int(got[0])

    def poke(self) -> None:
        """Let MPI progress other ranks' pending claims on this rank's counter."""
        if self._win is not None and self._comm.Get_rank() == 0:
            self._comm.Iprobe()

    def __iter__(self):
        while (k := self.claim()) < self.n:
            yield k

    def close(self) -> None:
        if self._win is not None:
            self._win.Free()
            self._win = None


class _Killer:
    def __init__(self):
        v = os.environ.get(KILL_ENV)
        self.left = int(v) if v else None

    def tick(self):
        if self.left is not None:
            self.left -= 1
            if self.left <= 0:
                sys.stdout.flush()
                sys.stderr.flush()
                os.kill(os.getpid(), signal.SIGKILL)


def _make_shard(cfg: SimulationConfig, run_dir: Path, k: int, rid: str, killer: _Killer,
                bar, queue: ShardQueue | None = None) -> dict:
    crystals = cfg.shard_crystals(k)
    spc = cfg.samples_per_crystal
    stats = {"crystals": 0, "seconds": 0.0, "relax_iterations": [], "relax_drop_eV": []}
    with ShardWriter(run_dir, k, len(crystals) * spc, crystals.start * spc, rid) as w:
        for j, c in enumerate(crystals):
            t0 = time.perf_counter()
            samples = simulate_crystal(cfg, c)
            for r, s in enumerate(samples):
                w.write(j * spc + r, s.magnitude, s.truth, s.support, s.meta, s.params)
                killer.tick()
            stats["crystals"] += 1
            stats["seconds"] += time.perf_counter() - t0
            rel = samples[0].params["relax"]
            if rel["method"] == "lammps":
                stats["relax_iterations"].append(rel["iterations"])
                stats["relax_drop_eV"].append(rel["energy_drop_per_atom_eV"])
            if bar is not None:
                bar.update(1)
            if queue is not None:
                queue.poke()
        w.commit()
    return stats


def _bcast(comm, obj):
    return obj if comm is None or comm.Get_size() == 1 else comm.bcast(obj, root=0)


def run_simulation(cfg: SimulationConfig, out_dir: str | os.PathLike, progress: bool = True,
                   log=print) -> dict | None:
    """Run (or resume) the simulation of ``cfg`` into ``out_dir`` on all ranks.

    Returns a summary dict on rank 0 (None on the others): crystals, samples, shards
    written and skipped, wall seconds, crystals per second, relaxation statistics.
    Raises InputError (rank 0) for another run's directory.
    """
    with _single_threaded_fft():
        return _run(cfg, Path(out_dir), progress, log)


class _single_threaded_fft:
    """AUTOPHASE_FFT_WORKERS=1 for the duration (unless the user set it), then restored."""

    def __enter__(self):
        self.old = os.environ.get("AUTOPHASE_FFT_WORKERS")
        if self.old is None:
            os.environ["AUTOPHASE_FFT_WORKERS"] = "1"

    def __exit__(self, *exc):
        if self.old is None:
            os.environ.pop("AUTOPHASE_FFT_WORKERS", None)
        return False


def _run(cfg: SimulationConfig, run_dir: Path, progress: bool, log) -> dict | None:
    comm = get_comm()
    rank = comm.Get_rank() if comm is not None else 0
    size = comm.Get_size() if comm is not None else 1
    config = cfg.to_dict()
    t0 = time.perf_counter()

    # 1. the run directory (rank 0), result to everyone
    status = None
    if rank == 0:
        try:
            rid = prepare_run_dir(run_dir, config)
            removed = remove_part_files(run_dir)
            status = ("ok", rid, removed)
        except InputError as e:
            status = ("error", str(e), [])
    status = _bcast(comm, status)
    if status[0] == "error":
        if rank == 0:
            raise InputError(status[1])
        raise SystemExit(2)
    rid = status[1]
    if rank == 0 and status[2]:
        log(f"simulate: removed {len(status[2])} partial file(s) of an interrupted run")

    # 2. this rank's shards (any failure, a foreign shard included, must stop every rank)
    bar = None
    local = {"crystals": 0, "seconds": 0.0, "written": 0, "skipped": 0,
             "relax_iterations": [], "relax_drop_eV": []}
    try:
        queue = ShardQueue(comm, cfg.n_shards)
        if progress and rank == 0:
            from tqdm import tqdm

            bar = tqdm(unit="crystal", desc=f"simulate (rank 0 of {size})", disable=None, leave=False)
        killer = _Killer()
        for k in queue:
            final = run_dir / shard_name(k)
            crystals = cfg.shard_crystals(k)
            if final.exists():  # a final name is only ever given to a complete shard
                check_shard(final, len(crystals) * cfg.samples_per_crystal,
                            crystals.start * cfg.samples_per_crystal, rid)
                local["skipped"] += 1
                continue
            st = _make_shard(cfg, run_dir, k, rid, killer, bar, queue)
            local["crystals"] += st["crystals"]
            local["seconds"] += st["seconds"]
            local["written"] += 1
            local["relax_iterations"] += st["relax_iterations"]
            local["relax_drop_eV"] += st["relax_drop_eV"]
        queue.close()
    except BaseException as e:  # noqa: BLE001 - stop every rank rather than hang them
        if size > 1:
            print(f"autophase simulate: rank {rank} failed: {e}", file=sys.stderr)
            if not isinstance(e, InputError):
                traceback.print_exc()
            sys.stderr.flush()
            comm.Abort(2 if isinstance(e, InputError) else 1)
        raise
    finally:
        if bar is not None:
            bar.close()

    # 3. manifest (rank 0) once every shard is there
    all_stats = comm.gather(local, root=0) if comm is not None and size > 1 else [local]
    if comm is not None and size > 1:
        comm.Barrier()
    summary = None
    if rank == 0:
        try:
            manifest = build_manifest(run_dir, config, cfg.n_shards, cfg.samples_per_crystal)
        except BaseException as e:  # noqa: BLE001 - the other ranks wait at the barrier below
            if size > 1:
                print(f"autophase simulate: error: {e}", file=sys.stderr)
                sys.stderr.flush()
                comm.Abort(2 if isinstance(e, InputError) else 1)
            raise
        wall = time.perf_counter() - t0
        made = sum(s["crystals"] for s in all_stats)
        busy = sum(s["seconds"] for s in all_stats)
        iters = [i for s in all_stats for i in s["relax_iterations"]]
        drops = [d for s in all_stats for d in s["relax_drop_eV"]]
        summary = {
            "run_dir": str(run_dir), "run_id": rid, "ranks": size,
            "n_crystals": cfg.n_crystals, "n_samples": manifest["n_samples"],
            "n_shards": cfg.n_shards, "crystals_made": made,
            "shards_written": sum(s["written"] for s in all_stats),
            "shards_skipped": sum(s["skipped"] for s in all_stats),
            "wall_s": wall,
            "crystals_per_s": made / wall if made else 0.0,
            "seconds_per_crystal_per_rank": busy / made if made else None,
            "relax_iterations_mean": float(np.mean(iters)) if iters else None,
            "relax_drop_eV_per_atom_mean": float(np.mean(drops)) if drops else None,
        }
    if comm is not None and size > 1:
        comm.Barrier()  # nobody leaves before the manifest exists
    return summary
