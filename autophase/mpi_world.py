"""Where this process sits in its job, and a start-up check that MPI agrees with the launcher.

Two things every MPI stage (``simulate``, ``train``) needs, without importing torch:

:func:`launch_env` — rank, world size and local rank from the launcher's environment:
torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``), horovodrun (``HOROVOD_*``), Open MPI
(``OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK``), MPICH/PALS/Cray PMI (``PMI_RANK``, ``PMI_SIZE``,
``PMI_LOCAL_RANK`` or Hydra's ``MPI_LOCALRANKID``), PMIx (``PMIX_RANK``) and Slurm
(``SLURM_PROCID``, ``SLURM_STEP_NUM_TASKS``/``SLURM_NTASKS``, ``SLURM_LOCALID``).

:func:`check_world` — the guard against a site environment whose ``mpi4py`` loads a
different MPI than the launcher's (e.g. a pip ``mpich`` wheel on a Cray: ``mpiexec``/``srun``
start N processes, and each one is rank 0 of a 1-rank world, so each would write every
shard). The ranks the launcher was asked for come from ``AUTOPHASE_EXPECT_RANKS`` (set by
the generated ``mpiexec``/``srun`` lines, :mod:`hpc.sites`) or else from the launcher's own
size variable; ``MPI.COMM_WORLD.size`` must equal it. A mismatch is an
:class:`~autophase.errors.InputError` (one line, exit 2) raised before the stage writes
anything. ``MPI.Get_library_version()`` is logged once (rank 0, stderr) so that a job log
shows which MPI ran (on the sites it should say Cray MPICH).

Without any launcher variable and without ``AUTOPHASE_EXPECT_RANKS`` the process is a
plain single process: nothing is checked and mpi4py is not even imported.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Mapping

from .errors import InputError

__all__ = ["LaunchEnv", "launch_env", "expected_ranks", "check_world", "EXPECT_ENV"]

#: Set by the generated launcher lines to the rank count they ask for (``mpiexec -n N``).
EXPECT_ENV = "AUTOPHASE_EXPECT_RANKS"


@dataclass(frozen=True)
class LaunchEnv:
    """This process's place in the job, as the launcher told it."""

    rank: int
    world: int
    local_rank: int  # -1: the launcher did not say (found later by an MPI shared-memory split)
    local_world: int | None  # None: the launcher did not say
    source: str


def _int(env: Mapping[str, str], *names: str) -> int | None:
    for n in names:
        v = env.get(n)
        if v not in (None, ""):
            try:
                return int(v)
            except ValueError:
                continue
    return None


# (source, rank vars, world vars, local-rank vars, local-size vars, marker that must be set)
_TABLE = [
    ("torchrun", ("RANK",), ("WORLD_SIZE",), ("LOCAL_RANK",), ("LOCAL_WORLD_SIZE",), "TORCHELASTIC_RUN_ID"),
    ("horovodrun", ("HOROVOD_RANK",), ("HOROVOD_SIZE",), ("HOROVOD_LOCAL_RANK",), ("HOROVOD_LOCAL_SIZE",), None),
    ("openmpi", ("OMPI_COMM_WORLD_RANK",), ("OMPI_COMM_WORLD_SIZE",), ("OMPI_COMM_WORLD_LOCAL_RANK",),
     ("OMPI_COMM_WORLD_LOCAL_SIZE",), None),
    ("pmi", ("PMI_RANK",), ("PMI_SIZE",), ("PMI_LOCAL_RANK", "PALS_LOCAL_RANKID", "MPI_LOCALRANKID"),
     ("PMI_LOCAL_SIZE", "MPI_LOCALNRANKS"), None),
    ("pmix", ("PMIX_RANK",), ("PMIX_SIZE", "OMPI_COMM_WORLD_SIZE", "SLURM_STEP_NUM_TASKS"),
     ("PMIX_LOCAL_RANK", "SLURM_LOCALID"), ("PMIX_LOCAL_SIZE",), None),
    # SLURM_STEP_NUM_TASKS is the size of *this* srun step; SLURM_NTASKS (the whole
    # allocation) would make a lone process in the batch script wait for peers.
    ("slurm", ("SLURM_PROCID",), ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"), ("SLURM_LOCALID",),
     ("SLURM_STEP_TASKS_PER_NODE", "SLURM_NTASKS_PER_NODE"), "SLURM_STEP_ID"),
]


def launch_env(environ: Mapping[str, str] | None = None) -> LaunchEnv:
    """Rank, world size and local rank from the launcher's environment variables.

    Pure function of ``environ`` (default ``os.environ``); checked in this order:
    torchrun, horovodrun, Open MPI, MPICH/PALS (PMI), PMIx, Slurm; else a single process
    (source ``"single"``).
    """
    env = os.environ if environ is None else environ
    for source, rk, ws, lr, lw, marker in _TABLE:
        if marker is not None and marker not in env:
            continue
        rank, world = _int(env, *rk), _int(env, *ws)
        if rank is None or world is None:
            continue
        if not 0 <= rank < world:
            raise ValueError(f"{source}: rank {rank} outside world of size {world}")
        local = _int(env, *lr)
        if local is None:  # unknown: 0 when alone, else -1 (found later by an MPI split)
            local = 0 if world == 1 else -1
        return LaunchEnv(rank, world, local, _int(env, *lw), source)
    return LaunchEnv(0, 1, 0, 1, "single")


def expected_ranks(environ: Mapping[str, str] | None = None) -> tuple[int | None, str]:
    """The rank count the job asked for, and where that number came from.

    ``AUTOPHASE_EXPECT_RANKS`` wins; else an MPI launcher's size variable (Open MPI, PMI,
    PMIx, Slurm). torchrun and horovodrun (Gloo) start processes without MPI, so they set
    no expectation. ``(None, "")`` when nothing asks for MPI ranks.
    """
    env = os.environ if environ is None else environ
    raw = env.get(EXPECT_ENV)
    if raw not in (None, ""):
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if n < 1:
            raise InputError(f"{EXPECT_ENV}={raw!r}: must be a positive integer (the ranks mpiexec/srun start)")
        return n, EXPECT_ENV
    le = launch_env(env)
    if le.source in ("single", "torchrun", "horovodrun"):
        return None, ""
    return le.world, f"the {le.source} launcher's variables"


def check_world(stage: str, environ: Mapping[str, str] | None = None, log=None) -> int:
    """Check ``MPI.COMM_WORLD.size`` against the ranks asked for; → the world size.

    Call it first thing in an MPI stage, before any file is written. Raises
    :class:`InputError` (one line with both counts, where the expectation came from and
    the first line of the MPI library's version) on a
    mismatch, or when ranks were asked for and mpi4py cannot start MPI. Rank 0 writes
    ``<stage>: MPI: <first line of Get_library_version()>, N rank(s)`` to ``log``
    (default stderr). Returns 1 without importing mpi4py when nothing asks for MPI ranks.
    """
    want, where = expected_ranks(environ)
    if want is None:
        return 1
    try:
        from mpi4py import MPI
    except Exception as e:  # noqa: BLE001 - ImportError, or RuntimeError when libmpi cannot load
        raise InputError(f"{want} MPI ranks asked for ({where}) but mpi4py cannot start MPI: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    comm = MPI.COMM_WORLD
    size, rank = comm.Get_size(), comm.Get_rank()
    lines = [" ".join(ln.split()) for ln in MPI.Get_library_version().splitlines() if ln.strip()]
    lib = lines[0][:100] if lines else "an unknown MPI"
    if size != want:
        raise InputError(f"MPI.COMM_WORLD has {size} rank(s) but {want} were asked for ({where}); "
                         f"mpi4py runs on {lib!r}: is it built for the MPI that launched the job "
                         "(no pip 'mpich' wheel in a site environment)?")
    if rank == 0:
        print(f"{stage}: MPI: {lib}, {size} rank(s)", file=log or sys.stderr, flush=True)
    return size
