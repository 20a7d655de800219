"""This machine: HTEX on 127.0.0.1 plus an MPIExecutor whose node file holds ``localhost``.

The MPIExecutor learns its nodes from ``PBS_NODEFILE`` (or ``SLURM_NODELIST``); on a laptop
there is neither, so the block's ``worker_init`` points ``PBS_NODEFILE`` at a generated file
holding one line, ``localhost`` — the trick Parsl's own MPI tests use. MPI tasks then run
``mpiexec -n R -ppn R -hosts localhost …`` (MPICH's Hydra forks the ranks locally).

Only one MPI task runs at a time (``max_workers_per_block=1``): on a few cores two MPI jobs
side by side would only slow each other down and spoil the timings.

**Nothing outlives the driver.** Ctrl-C or SIGTERM ends the run cleanly (Parsl cancels its
blocks). A driver killed outright (``kill -9``, a closed laptop lid) cannot; so each block and
each interchange here carries a small watcher that terminates it — the block as a process
group, with the running task and its ``mpiexec`` — once the driver's process is gone. An
orphaned training would otherwise keep writing the checkpoints the next run resumes from.
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from ..config import WorkflowConfig
from ..rundir import RunDir
from ..stages import REPO, Stage

SCHEDULER = None


def nodefile(run: RunDir) -> Path:
    """Write (once) and return the one-line node file of the local MPI block."""
    path = run.parsl / "nodefile"
    if not path.exists() or path.read_text() != "localhost\n":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("localhost\n")
    return path


def _follow(pid: int, target: str) -> str:
    """Shell: in the background, ``kill -TERM <target>`` once process ``pid`` (the driver) is
    gone; the loop also ends when the shell it guards (``$$``) ends on its own."""
    return (f"( while kill -0 {pid} 2>/dev/null && kill -0 $$ 2>/dev/null; do sleep 2; done; "
            f"kill -0 $$ 2>/dev/null && kill -TERM {target} ) </dev/null >/dev/null 2>&1 &")


def _path_line() -> str:
    # Workers must find this environment's autophase, python and mpiexec first, even
    # when the driver was started as .venv/bin/autophase without activating .venv.
    return f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH"


def parsl_config(cfg: WorkflowConfig, run: RunDir, address: str | None = None):
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor, MPIExecutor
    from parsl.launchers import SimpleLauncher
    from parsl.providers import LocalProvider

    from . import memoizer, worker_init

    address = address or "127.0.0.1"
    driver = os.getpid()
    # "kill -TERM 0": the block's whole process group (LocalProvider starts it as one).
    init = worker_init(cfg, [_path_line(), _follow(driver, "0")])
    interchange = str(REPO / "hpc" / "bin" / "interchange.sh")  # interchange.py, watched
    htex = HighThroughputExecutor(
        label="htex",
        address=address,
        loopback_address=address,
        max_workers_per_node=cfg.site.max_workers,
        cores_per_worker=1,
        interchange_launch_cmd=interchange,
        provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1, worker_init=init),
    )
    mpi = MPIExecutor(
        label="mpi",
        address=address,
        loopback_address=address,
        max_workers_per_block=1,
        mpi_launcher="mpiexec",
        interchange_launch_cmd=interchange,
        provider=LocalProvider(
            init_blocks=1, min_blocks=1, max_blocks=1, launcher=SimpleLauncher(),
            worker_init=f"{init}\nexport PBS_NODEFILE={shlex.quote(str(nodefile(run)))}",
        ),
    )
    return Config(
        executors=[htex, mpi],
        memoizer=memoizer(),
        run_dir=str(run.parsl),
        strategy="none",  # the blocks above live for the whole run; nothing to scale
        strategy_period=1,  # start them after 1 s rather than 5 (the first poll launches them)
    )


def launcher_options(cfg: WorkflowConfig, stage: Stage) -> str:
    return ""


def wrapper(cfg: WorkflowConfig, stage: Stage, repo: Path = REPO) -> list[str]:
    return []


def launch(cfg: WorkflowConfig, stage: Stage, repo: Path = REPO) -> str:
    """What Parsl's ``$PARSL_MPI_PREFIX`` expands to here, spelled out."""
    if not stage.mpi:
        return stage.command
    return f"mpiexec -n {stage.ranks} -ppn {stage.ranks_per_node} -hosts localhost {stage.command}"


def batch_header(cfg: WorkflowConfig, job: str, nodes: int, ranks_per_node: int | None = None) -> list[str]:
    return [f"# {job}: runs in place (no scheduler on the local site)"]


def batch_env(cfg: WorkflowConfig, stage: Stage | None) -> list[str]:
    return []
