"""One Parsl configuration per site, plus what each site knows about launching MPI jobs.

Every site module (:mod:`.local`, :mod:`.polaris`, :mod:`.perlmutter`, and :mod:`.slurm`, any
Slurm cluster through Perlmutter's functions) provides:

``SCHEDULER``                       ``None``, ``"pbs"`` or ``"slurm"``
``parsl_config(cfg, run, address)`` a :class:`parsl.config.Config` with two executors:
                                    ``"htex"`` (one worker per GPU, or per core slot: evaluation,
                                    benchmarks, report, manifest check) and ``"mpi"`` (an
                                    :class:`~parsl.executors.MPIExecutor` whose tasks launch
                                    ``$PARSL_MPI_PREFIX <command>``: simulation, training)
``launcher_options(cfg, stage)``    what Parsl appends to ``$PARSL_MPI_PREFIX`` (binding, depth)
``wrapper(cfg, stage, repo)``       argv put between the launcher and the command (GPU affinity)
``launch(cfg, stage, repo)``        the explicit launcher line a batch script runs
``batch_header(cfg, job, nodes)``   scheduler directives of a batch script
``batch_env(cfg, stage)``           extra lines a batch script runs before its launch

All apps land in ``checkpoint_mode="task_exit"`` memoization, with Parsl's run directory
inside the run directory, so that a second run of the same config reloads the finished
tasks (see :mod:`hpc.rundir` for why each stage also carries a token).
"""
from __future__ import annotations

import importlib
import shlex
from pathlib import Path
from types import ModuleType

from autophase.errors import InputError

from ..config import WorkflowConfig
from ..rundir import RunDir
from ..stages import REPO, Stage

__all__ = ["site_module", "parsl_config", "worker_init", "mpi_app_command", "memoizer",
           "HTEX_LABEL", "MPI_LABEL", "address_of"]

HTEX_LABEL = "htex"
MPI_LABEL = "mpi"


def site_module(cfg: WorkflowConfig) -> ModuleType:
    """The module of ``cfg.site.name`` (``hpc.sites.polaris`` …)."""
    return importlib.import_module(f"{__name__}.{cfg.site.name}")


def parsl_config(cfg: WorkflowConfig, run: RunDir, address: str | None = None):
    """The site's :class:`parsl.config.Config` for this run (``address``: where workers
    connect back to; by default looked up from ``site.interface`` on HPC sites)."""
    return site_module(cfg).parsl_config(cfg, run, address)


def driver_path() -> None:
    """Put this interpreter's ``bin/`` first on the driver's ``PATH``.

    Parsl starts ``interchange.py`` and ``process_worker_pool.py`` by name; they live beside
    the interpreter, which is not on ``PATH`` when the driver was started as
    ``.venv/bin/autophase`` without activating the environment.
    """
    import os
    import sys

    bindir = str(Path(sys.executable).parent)
    if os.environ.get("PATH", "").split(os.pathsep)[0] != bindir:
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def mpi_nodes(cfg: WorkflowConfig) -> int:
    """Nodes of a submitted MPI block: the widest MPI stage (simulation, training, the
    largest scaling point)."""
    sc = cfg.scaling
    return max(cfg.simulate.nodes, cfg.train.nodes, sc.layout(max(sc.ranks))[0] if sc else 1)


def cluster_config(cfg: WorkflowConfig, run: RunDir, address: str, provider, htex_launcher,
                   mpi_launcher: str, cpu_affinity: str):
    """The Parsl config of a batch-scheduled site (Polaris, Perlmutter).

    ``htex``: one worker per GPU, pinned by ``cpu_affinity``, one manager per node started
    by ``htex_launcher``; ``mpi``: an MPIExecutor whose tasks start with ``mpi_launcher``
    (``"mpiexec"``, ``"srun"``). ``provider(nodes, launcher)`` builds the site's block
    provider. ``site.driver = "login"``: blocks are submitted when needed (htex one node,
    mpi the widest MPI stage); ``"job"``: both span the job's nodes, started at once.
    """
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor, MPIExecutor
    from parsl.launchers import SimpleLauncher

    site = cfg.site
    login = site.driver == "login"
    htex = HighThroughputExecutor(
        label=HTEX_LABEL,
        address=address,
        available_accelerators=site.gpus_per_node,
        max_workers_per_node=site.max_workers,
        cpu_affinity=cpu_affinity,
        prefetch_capacity=0,
        provider=provider(1 if login else site.nodes, htex_launcher),
    )
    mpi = MPIExecutor(
        label=MPI_LABEL,
        address=address,
        max_workers_per_block=1,
        mpi_launcher=mpi_launcher,
        provider=provider(mpi_nodes(cfg) if login else site.nodes, SimpleLauncher()),
    )
    return Config(executors=[htex, mpi], memoizer=memoizer(), run_dir=str(run.parsl),
                  strategy="simple" if login else "none")


def memoizer():
    """Task-exit checkpointing: each finished task is appended to ``parsl/NNN/checkpoint/``."""
    from parsl.dataflow.memoization import BasicMemoizer

    return BasicMemoizer(checkpoint_mode="task_exit")


def address_of(interface: str, source: str | None = None) -> str:
    """IPv4 address of a network interface, as an InputError if the interface is absent
    (``source``: the run config, named in the message)."""
    from parsl.addresses import address_by_interface

    try:
        return address_by_interface(interface)
    except OSError:
        raise InputError(f"{source or 'run config'}: site.interface: no network interface {interface!r} "
                         f"on this host; "
                         f"run the driver on the site (or in its batch job)") from None


def worker_init(cfg: WorkflowConfig, extra: list[str] = (), repo: Path = REPO) -> str:
    """Shell lines every Parsl block runs before starting its workers.

    The site's ``setup`` (``module load``, ``conda activate``), its ``env``, ``TMPDIR=/tmp``
    (ALCF: a long TMPDIR breaks AF_UNIX socket paths). Workers unpickle the apps from the
    installed ``autophase.hpc``: nothing goes on ``PYTHONPATH`` (a package folder there would
    shadow the standard library with ``autophase/io``).
    """
    lines = list(cfg.site.setup)
    lines += [f"export {k}={shlex.quote(v)}" for k, v in cfg.site.env.items()]
    lines += ["export TMPDIR=/tmp"]
    lines += list(extra)
    return "\n".join(lines)


def stage_exports(stage: Stage) -> list[str]:
    """``export`` lines a stage needs on every rank (threads per rank, its own env)."""
    lines = []
    if stage.threads:
        lines.append(f"export OMP_NUM_THREADS={stage.threads}")
    lines += [f"export {k}={shlex.quote(v)}" for k, v in stage.env]
    return lines


def mpi_app_command(cfg: WorkflowConfig, stage: Stage, repo: Path = REPO) -> str:
    """The shell command a Parsl MPI task runs: ``exec $PARSL_MPI_PREFIX [wrapper] argv``.

    ``$PARSL_MPI_PREFIX`` is composed by the worker from the task's resource specification
    and the nodes it was given (``mpiexec -n R -ppn P -hosts …`` or ``srun --ntasks R …``),
    followed by :func:`launcher_options`. DDP's rendezvous is left to the training engine
    (rank 0 broadcasts its host and a free port with mpi4py), so that two trainings never
    collide on a fixed port.
    """
    mod = site_module(cfg)
    argv = [*mod.wrapper(cfg, stage, repo), *stage.argv]
    lines = stage_exports(stage)
    lines.append(f"exec $PARSL_MPI_PREFIX {shlex.join(argv)}")
    return "; ".join(lines)


def app_command(stage: Stage) -> str:
    """The shell command an HTEX task runs: the stage's exports, then ``exec argv``."""
    return "; ".join([*stage_exports(stage), f"exec {stage.command}"])


def resource_spec(cfg: WorkflowConfig, stage: Stage) -> dict:
    """``parsl_resource_specification`` of an MPI stage."""
    spec = {"num_nodes": stage.nodes, "ranks_per_node": stage.ranks_per_node}
    opts = site_module(cfg).launcher_options(cfg, stage)
    if opts:
        spec["launcher_options"] = opts
    return spec
