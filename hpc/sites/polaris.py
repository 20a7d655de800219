"""Polaris (ALCF): PBS Pro, 4× A100 and 64 hardware threads (32 cores) per node.

Executors, after ALCF's Parsl page and ``parsl/configs/polaris.py``:

* ``htex``: one worker per GPU (``available_accelerators=4`` sets each worker's
  ``CUDA_VISIBLE_DEVICES``), workers pinned to the cores nearest their GPU
  (``cpu_affinity`` below: worker 0 ↔ GPU 0 ↔ cores 24–31 and their hyper-threads 56–63),
  one manager per node started by ``mpiexec --cpu-bind none --depth=64 --ppn 1``.
* ``mpi``: an :class:`~parsl.executors.MPIExecutor` whose tasks run
  ``mpiexec -n R -ppn P -hosts … --depth=D --cpu-bind core --env AUTOPHASE_EXPECT_RANKS=R``
  with ``D = 32 / P`` physical cores per rank (with ``--cpu-bind core`` the depth counts
  cores, each with its hyper-thread twin: training ``--ppn 4 --depth=8`` gives rank r cores
  8r..8r+7, simulation ``--ppn 32 --depth=1`` one core each — ALCF's "Running Jobs" page);
  GPU stages go through ``hpc/bin/set_affinity_gpu_polaris.sh`` (local rank r → GPU 3 − r
  mod 4, the GPU nearest those cores; inside the rank it is ``cuda:0``, see
  :func:`autophase.distributed.cuda_device`). ``AUTOPHASE_EXPECT_RANKS`` lets every rank
  check that its MPI world has R ranks (:mod:`autophase.mpi_world`).

``site.driver = "login"``: Parsl submits its blocks with :class:`~parsl.providers.PBSProProvider`
(``-l select=N:ngpus=4``, ``filesystems``, ``place=scatter``). ``"job"``: the driver runs in
the whole-workflow batch job and the blocks are started in place over ``$PBS_NODEFILE``.
Every block's ``worker_init`` runs the site's ``setup`` (``module use/load``, ``conda
activate``), exports ``env`` and ``TMPDIR=/tmp``.

Queues: stages of one or two nodes go to ``debug`` when the config names ``debug-scaling``
(which allows one job per user, running or queued). PBS sends SIGTERM only at the
walltime, so a stage script sets a timer that sends it :data:`SIGNAL_LEAD_S` seconds earlier
(:func:`signal_timer`), and the script passes it on to ``mpiexec``.
"""
from __future__ import annotations

import shlex
from pathlib import Path

from ..config import WorkflowConfig
from ..rundir import RunDir
from ..stages import REPO, Stage

SCHEDULER = "pbs"
#: Seconds before the walltime at which a stage script sends its job SIGTERM (checkpoint time).
SIGNAL_LEAD_S = 120
EXPECT_ENV = "AUTOPHASE_EXPECT_RANKS"  # autophase.mpi_world.EXPECT_ENV (hpc/ must not import torch)
#: Worker k ↔ GPU k ↔ the cores PCIe-closest to it (ALCF's Parsl page for Polaris).
CPU_AFFINITY = "list:24-31,56-63:16-23,48-55:8-15,40-47:0-7,32-39"


def _cores(cfg: WorkflowConfig) -> int:
    """Physical cores per node: ``cpus_per_node`` counts hardware threads (2 per core)."""
    return max(1, cfg.site.cpus_per_node // 2)


def _depth(cfg: WorkflowConfig, ranks_per_node: int) -> int:
    """Cores per rank for ``--cpu-bind core`` (4 ranks → 8, 32 ranks → 1)."""
    return max(1, _cores(cfg) // ranks_per_node)


def queue(cfg: WorkflowConfig, nodes: int) -> str:
    """``debug`` for 1–2 nodes when the config says ``debug-scaling`` (one job per user)."""
    return "debug" if cfg.site.queue == "debug-scaling" and nodes <= 2 else cfg.site.queue


def _walltime_s(walltime: str) -> int:
    h, m, s = (int(x) for x in walltime.split(":"))
    return 3600 * h + 60 * m + s


def _scheduler_options(cfg: WorkflowConfig) -> str:
    fs = ":".join(cfg.site.filesystems)
    lines = ["#PBS -l place=scatter"]
    if fs:
        lines.append(f"#PBS -l filesystems={fs}")
    return "\n".join(lines)


def parsl_config(cfg: WorkflowConfig, run: RunDir, address: str | None = None):
    from parsl.launchers import MpiExecLauncher
    from parsl.providers import LocalProvider, PBSProProvider

    from . import address_of, cluster_config, worker_init

    site = cfg.site
    address = address or address_of(site.interface, cfg.source)
    init = worker_init(cfg)
    # One manager per node, unbound: it binds its own workers (cpu_affinity).
    htex_launcher = MpiExecLauncher(bind_cmd="--cpu-bind", overrides=f"--depth={site.cpus_per_node} --ppn 1")

    def provider(nodes: int, launcher):
        if site.driver == "job":
            # Inside the workflow's own PBS job: the nodes are already ours.
            return LocalProvider(nodes_per_block=nodes, init_blocks=1, min_blocks=1, max_blocks=1,
                                 launcher=launcher, worker_init=init)
        return PBSProProvider(
            account=site.account, queue=queue(cfg, nodes), walltime=site.walltime,
            select_options=f"ngpus={site.gpus_per_node}", scheduler_options=_scheduler_options(cfg),
            worker_init=init, launcher=launcher, nodes_per_block=nodes, cpus_per_node=site.cpus_per_node,
            init_blocks=0, min_blocks=0, max_blocks=1,
        )

    return cluster_config(cfg, run, address, provider, htex_launcher, "mpiexec", CPU_AFFINITY)


def launcher_options(cfg: WorkflowConfig, stage: Stage) -> str:
    """Appended by Parsl to ``mpiexec -n R -ppn P -hosts …``."""
    return f"--depth={_depth(cfg, stage.ranks_per_node)} --cpu-bind core --env {EXPECT_ENV}={stage.ranks}"


def wrapper(cfg: WorkflowConfig, stage: Stage, repo: Path = REPO) -> list[str]:
    return [str(repo / "hpc" / "bin" / "set_affinity_gpu_polaris.sh")] if stage.gpu and stage.mpi else []


def launch(cfg: WorkflowConfig, stage: Stage, repo: Path = REPO) -> str:
    """The ALCF-style line: ``mpiexec -n N --ppn P --depth=D --cpu-bind core --env … [affinity] cmd``."""
    if not stage.mpi:
        return stage.command
    argv = ["mpiexec", "-n", str(stage.ranks), "--ppn", str(stage.ranks_per_node),
            f"--depth={_depth(cfg, stage.ranks_per_node)}", "--cpu-bind", "core",
            "--env", f"{EXPECT_ENV}={stage.ranks}"]
    if stage.threads:
        argv += ["--env", f"OMP_NUM_THREADS={stage.threads}"]
    return shlex.join([*argv, *wrapper(cfg, stage, repo)]) + " " + stage.command


def batch_header(cfg: WorkflowConfig, job: str, nodes: int, ranks_per_node: int | None = None) -> list[str]:
    site = cfg.site
    lines = ["#!/bin/bash -l",
             f"#PBS -N {job}",
             f"#PBS -A {site.account}",
             f"#PBS -q {queue(cfg, nodes)}",
             f"#PBS -l select={nodes}:system=polaris",
             f"#PBS -l walltime={site.walltime}",
             *_scheduler_options(cfg).splitlines(),
             "#PBS -j oe",
             "#PBS -r y"]
    return lines


def signal_timer(cfg: WorkflowConfig) -> list[str]:
    """Lines that send this script SIGTERM :data:`SIGNAL_LEAD_S` s before the walltime
    (PBS has no ``--signal``; its own SIGTERM comes at the walltime, SIGKILL soon after)."""
    lead = max(0, _walltime_s(cfg.site.walltime) - SIGNAL_LEAD_S)
    return [f"( sleep {lead}; kill -TERM $$ ) &  # SIGTERM {SIGNAL_LEAD_S} s before the walltime", "timer=$!"]


def batch_env(cfg: WorkflowConfig, stage: Stage | None) -> list[str]:
    """Job-side lines: go to the submission directory, count the nodes PBS gave us."""
    return ['cd "${PBS_O_WORKDIR}"',
            'NNODES=$(wc -l < "${PBS_NODEFILE}")',
            'echo "job ${PBS_JOBID}: ${NNODES} nodes"']
