"""Perlmutter (NERSC): Slurm, GPU nodes with 4× A100 and 64 cores (128 hardware threads).

Executors:

* ``htex``: one worker per GPU (``available_accelerators=4``), workers pinned to the cores of
  their GPU's NUMA domain (``cpu_affinity`` below: GPU 0 sits on NUMA domain 3, cores 48–63
  and threads 112–127, down to GPU 3 on domain 0 — ``nvidia-smi topo -m`` on a GPU node);
  one manager per node started by ``srun --ntasks-per-node=1``.
* ``mpi``: an :class:`~parsl.executors.MPIExecutor` with ``mpi_launcher="srun"``: tasks run
  ``srun --ntasks R --ntasks-per-node P --nodelist … --nodes N --gpus-per-node=4
  -c C --cpu-bind=cores --export=ALL,AUTOPHASE_EXPECT_RANKS=R`` (``C = 128 / P``; every rank
  checks that its MPI world has R ranks, :mod:`autophase.mpi_world`); GPU stages go through
  ``hpc/bin/slurm_ranks.sh``, which exports ``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` from
  ``SLURM_PROCID``/``SLURM_LOCALID``/``SLURM_STEP_NUM_TASKS``. No ``MASTER_ADDR`` is exported
  for the job: each training task's rank 0 broadcasts its own host and a free port over MPI
  (:mod:`autophase.distributed`), so a task never waits on a node outside it.

Batch scripts ask Slurm for SIGTERM :data:`SIGNAL_LEAD_S` seconds before the walltime
(``#SBATCH --signal=B:TERM@120``, to the batch shell, which passes it on to ``srun``; the
training ranks then checkpoint at their next step).

``site.driver = "job"`` (NERSC's advice: the Parsl driver inside the batch job) starts both
blocks in place over the job's nodes; every ``srun`` then carries ``--overlap``, because the
HTEX managers' own step already holds the nodes' CPUs and GPUs and a second step would
otherwise wait for them. ``"login"``: Parsl submits its blocks with
:class:`~parsl.providers.SlurmProvider` (``-C gpu``, ``-q``, ``-A``, ``--gpus-per-node=4``).
"""
from __future__ import annotations

import shlex
from pathlib import Path

from ..config import WorkflowConfig
from ..rundir import RunDir
from ..stages import REPO, Stage

SCHEDULER = "slurm"
#: Seconds before the walltime at which Slurm sends the batch shell SIGTERM (checkpoint time).
SIGNAL_LEAD_S = 120
EXPECT_ENV = "AUTOPHASE_EXPECT_RANKS"  # autophase.mpi_world.EXPECT_ENV (hpc/ must not import torch)
CPU_AFFINITY = "list:48-63,112-127:32-47,96-111:16-31,80-95:0-15,64-79"


def _cpus_per_task(cfg: WorkflowConfig, ranks_per_node: int) -> int:
    return max(1, cfg.site.cpus_per_node // ranks_per_node)


def _licenses(cfg: WorkflowConfig) -> str:
    # NERSC asks jobs to declare the file systems they use as Slurm licenses (-L scratch,cfs).
    return ",".join(cfg.site.filesystems)


def _srun_gpu_opts(cfg: WorkflowConfig, ranks_per_node: int) -> list[str]:
    gpus = [f"--gpus-per-node={cfg.site.gpus_per_node}"] if cfg.site.gpus_per_node else []
    return [*gpus, "-c", str(_cpus_per_task(cfg, ranks_per_node)), "--cpu-bind=cores"]


def parsl_config(cfg: WorkflowConfig, run: RunDir, address: str | None = None,
                 cpu_affinity: str = CPU_AFFINITY):
    """Also the generic ``slurm`` site's (:mod:`.slurm`), with its own ``cpu_affinity``;
    empty ``account``/``queue``/``constraint`` and no GPUs leave their options out."""
    from parsl.launchers import SrunLauncher
    from parsl.providers import LocalProvider, SlurmProvider

    from . import address_of, cluster_config, worker_init

    site = cfg.site
    address = address or address_of(site.interface, cfg.source)
    init = worker_init(cfg)
    overlap = " --overlap" if site.driver == "job" else ""
    gpus = f" --gpus-per-node={site.gpus_per_node}" if site.gpus_per_node else ""
    htex_launcher = SrunLauncher(overrides=f"--ntasks-per-node=1 -c {site.cpus_per_node}{gpus}{overlap}")

    def provider(nodes: int, launcher):
        if site.driver == "job":
            return LocalProvider(nodes_per_block=nodes, init_blocks=1, min_blocks=1, max_blocks=1,
                                 launcher=launcher, worker_init=init)
        opts = f"#SBATCH -L {_licenses(cfg)}" if site.filesystems else ""
        return SlurmProvider(
            account=site.account or None, qos=site.queue or None, constraint=site.constraint or None,
            walltime=site.walltime, nodes_per_block=nodes, gpus_per_node=site.gpus_per_node or None,
            # a shared node: ask for its CPUs (sbatch --cpus-per-task) instead of the whole node
            cores_per_node=None if site.exclusive else site.cpus_per_node, scheduler_options=opts,
            worker_init=init, launcher=launcher, exclusive=site.exclusive, init_blocks=0, min_blocks=0,
            max_blocks=1,
        )

    return cluster_config(cfg, run, address, provider, htex_launcher, "srun", cpu_affinity)


def launcher_options(cfg: WorkflowConfig, stage: Stage) -> str:
    """Appended by Parsl to ``srun --ntasks R --ntasks-per-node P --nodelist … --nodes N``."""
    opts = [*_srun_gpu_opts(cfg, stage.ranks_per_node), f"--export=ALL,{EXPECT_ENV}={stage.ranks}"]
    if cfg.site.driver == "job":
        opts.append("--overlap")
    return " ".join(opts)


def wrapper(cfg: WorkflowConfig, stage: Stage, repo: Path = REPO) -> list[str]:
    return [str(repo / "hpc" / "bin" / "slurm_ranks.sh")] if stage.gpu and stage.mpi else []


def launch(cfg: WorkflowConfig, stage: Stage, repo: Path = REPO) -> str:
    """NERSC-style: ``srun -N n --ntasks-per-node=P --gpus-per-node=4 -c C --cpu-bind=cores cmd``."""
    if not stage.mpi:
        return stage.command
    argv = ["srun", "-N", str(stage.nodes), f"--ntasks-per-node={stage.ranks_per_node}",
            *_srun_gpu_opts(cfg, stage.ranks_per_node), f"--export=ALL,{EXPECT_ENV}={stage.ranks}"]
    return shlex.join([*argv, *wrapper(cfg, stage, repo)]) + " " + stage.command


def batch_header(cfg: WorkflowConfig, job: str, nodes: int, ranks_per_node: int | None = None) -> list[str]:
    site = cfg.site
    rpn = ranks_per_node or site.gpus_per_node or 1
    lines = ["#!/bin/bash", f"#SBATCH -J {job}"]
    lines += [f"#SBATCH -{flag} {value}" for flag, value in
              (("A", site.account), ("C", site.constraint), ("q", site.queue)) if value]
    lines += [f"#SBATCH -t {site.walltime}",
              f"#SBATCH -N {nodes}",
              f"#SBATCH --ntasks-per-node={rpn}"]
    if site.gpus_per_node:
        lines.append(f"#SBATCH --gpus-per-node={site.gpus_per_node}")
    lines.append(f"#SBATCH -c {_cpus_per_task(cfg, rpn)}")
    if site.filesystems:
        lines.append(f"#SBATCH -L {_licenses(cfg)}")
    # a stage script's shell passes SIGTERM on to srun (B:); the workflow job's driver cannot,
    # so there every step's tasks (Parsl's srun tasks: the training ranks) get it directly
    lines.append(f"#SBATCH --signal={'B:' if ranks_per_node is not None else ''}TERM@{SIGNAL_LEAD_S}")
    lines.append("#SBATCH -o %x-%j.out")
    return lines


def batch_env(cfg: WorkflowConfig, stage: Stage | None) -> list[str]:
    """Job-side lines: the submission directory. No job-wide MASTER_ADDR/MASTER_PORT: Parsl's
    MPI tasks would inherit them and wait on a node outside the task (the training engine
    does its own rendezvous per task)."""
    return ['cd "${SLURM_SUBMIT_DIR}"',
            'echo "job ${SLURM_JOB_ID}: ${SLURM_JOB_NUM_NODES} nodes"']
