"""Polaris (ALCF): PBS Pro, 4× A100 and 64 hardware threads (32 cores) per node.

Executors, after ALCF's Parsl page and ``parsl/configs/polaris.py``:

* ``htex``: one worker per GPU (``available_accelerators=4`` sets each worker's
  ``CUDA_VISIBLE_DEVICES``), workers pinned to the cores nearest their GPU
  (``cpu_affinity`` below: worker 0 ↔ GPU 0 ↔ cores 24–31 and their hyper-threads 56–63),
  one manager per node started by ``mpiexec --cpu-bind none --depth=64 --ppn 1``.
* ``mpi``: an :class:`~parsl.executors.MPIExecutor` whose tasks run
  ``mpiexec -n R -ppn P -hosts … --depth=D --cpu-bind depth`` with ``D = 64 / P``
  hardware threads per rank; GPU stages go through ``hpc/bin/set_affinity_gpu_polaris.sh``
  (local rank r → GPU 3 − r mod 4, the GPU nearest the cores ``--cpu-bind depth`` gives r).

``site.driver = "login"``: Parsl submits its blocks with :class:`~parsl.providers.PBSProProvider`
(``-l select=N:ngpus=4``, ``filesystems``, ``place=scatter``). ``"job"``: the driver runs in
the whole-workflow batch job and the blocks are started in place over ``$PBS_NODEFILE``.
Every block's ``worker_init`` runs the site's ``setup`` (``module use/load``, ``conda
activate``), exports ``env`` and ``TMPDIR=/tmp``.
"""
from __future__ import annotations

import shlex
from pathlib import Path

from ..config import WorkflowConfig
from ..rundir import RunDir
from ..stages import REPO, Stage

SCHEDULER = "pbs"
#: Worker k ↔ GPU k ↔ the cores PCIe-closest to it (ALCF's Parsl page for Polaris).
CPU_AFFINITY = "list:24-31,56-63:16-23,48-55:8-15,40-47:0-7,32-39"


def _depth(cfg: WorkflowConfig, ranks_per_node: int) -> int:
    return max(1, cfg.site.cpus_per_node // ranks_per_node)


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
            account=site.account, queue=site.queue, walltime=site.walltime,
            select_options=f"ngpus={site.gpus_per_node}", scheduler_options=_scheduler_options(cfg),
            worker_init=init, launcher=launcher, nodes_per_block=nodes, cpus_per_node=site.cpus_per_node,
            init_blocks=0, min_blocks=0, max_blocks=1,
        )

    return cluster_config(cfg, run, address, provider, htex_launcher, "mpiexec", CPU_AFFINITY)


def launcher_options(cfg: WorkflowConfig, stage: Stage) -> str:
    """Appended by Parsl to ``mpiexec -n R -ppn P -hosts …``."""
    return f"--depth={_depth(cfg, stage.ranks_per_node)} --cpu-bind depth"


def wrapper(cfg: WorkflowConfig, stage: Stage, repo: Path = REPO) -> list[str]:
    return [str(repo / "hpc" / "bin" / "set_affinity_gpu_polaris.sh")] if stage.gpu and stage.mpi else []


def launch(cfg: WorkflowConfig, stage: Stage, repo: Path = REPO) -> str:
    """The ALCF-style line: ``mpiexec -n N --ppn P --depth=D --cpu-bind depth [affinity] cmd``."""
    if not stage.mpi:
        return stage.command
    argv = ["mpiexec", "-n", str(stage.ranks), "--ppn", str(stage.ranks_per_node),
            f"--depth={_depth(cfg, stage.ranks_per_node)}", "--cpu-bind", "depth"]
    if stage.threads:
        argv += ["--env", f"OMP_NUM_THREADS={stage.threads}"]
    return shlex.join([*argv, *wrapper(cfg, stage, repo)]) + " " + stage.command


def batch_header(cfg: WorkflowConfig, job: str, nodes: int, ranks_per_node: int | None = None) -> list[str]:
    site = cfg.site
    lines = ["#!/bin/bash -l",
             f"#PBS -N {job}",
             f"#PBS -A {site.account}",
             f"#PBS -q {site.queue}",
             f"#PBS -l select={nodes}:system=polaris",
             f"#PBS -l walltime={site.walltime}",
             *_scheduler_options(cfg).splitlines(),
             "#PBS -j oe",
             "#PBS -r y"]
    return lines


def batch_env(cfg: WorkflowConfig, stage: Stage | None) -> list[str]:
    """Job-side lines: go to the submission directory, count the nodes PBS gave us."""
    return ['cd "${PBS_O_WORKDIR}"',
            'NNODES=$(wc -l < "${PBS_NODEFILE}")',
            'echo "job ${PBS_JOBID}: ${NNODES} nodes"']
