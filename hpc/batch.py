"""PBS and Slurm batch scripts, per stage and for the whole workflow, from a run config.

A stage script runs one stage without Parsl (to debug it, or to run it alone)::

    #!/bin/bash -l                       ← the site's header (#PBS / #SBATCH directives)
    #PBS -l select=2:system=polaris
    ...
    cd "${PBS_O_WORKDIR}"                ← the site's job-side lines
    module use …; conda activate …       ← site.setup
    export NCCL_NET_GDR_LEVEL=PHB …      ← site.env, TMPDIR
    export OMP_NUM_THREADS=16            ← the stage's threads per rank
    RESUME=; [ -e runs/…/last.pt ] && RESUME=--resume
    mpiexec -n 8 --ppn 4 --depth=16 --cpu-bind depth hpc/bin/set_affinity_gpu_polaris.sh \\
        autophase train … $RESUME

The workflow script holds the whole allocation and runs the Parsl driver inside it
(``autophase workflow --config …``); Parsl then starts its workers over the job's nodes.
Scripts use paths relative to the submission directory, which must be the repository root.
"""
from __future__ import annotations

import shlex
from pathlib import Path

from autophase.errors import InputError

from . import sites, stages
from .config import WorkflowConfig
from .rundir import RunDir
from .stages import Stage

__all__ = ["relative_stages", "stage_script", "workflow_script", "all_scripts", "SUFFIX", "parsl_prefix"]

SUFFIX = {"pbs": ".pbs", "slurm": ".sbatch"}


def relative_stages(cfg: WorkflowConfig) -> list[Stage]:
    """The pipeline's stages with paths relative to the repository root."""
    return stages.pipeline(cfg, RunDir(Path(cfg.run.root) / cfg.run.name), repo=Path("."))


def _require_scheduler(cfg: WorkflowConfig):
    mod = sites.site_module(cfg)
    if mod.SCHEDULER is None:
        raise InputError(f"{cfg.source}: site '{cfg.site.name}' has no batch scheduler; "
                         f"run `autophase workflow --config {cfg.source}` directly")
    return mod


def _environment(cfg: WorkflowConfig) -> list[str]:
    lines = ["# environment (site.setup, site.env)", *cfg.site.setup]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in cfg.site.env.items()]
    lines.append("export TMPDIR=/tmp")
    return lines


def stage_script(cfg: WorkflowConfig, stage: Stage) -> str:
    """The batch script that runs ``stage`` alone on ``stage.nodes`` nodes."""
    mod = _require_scheduler(cfg)
    rpn = stage.ranks_per_node if stage.mpi else cfg.site.gpus_per_node or 1
    lines = mod.batch_header(cfg, f"autophase-{stage.name}", stage.nodes if stage.mpi else 1, rpn)
    lines += ["", *mod.batch_env(cfg, stage), "", *_environment(cfg), "set -e", ""]
    lines += sites.stage_exports(stage)
    launch = mod.launch(cfg, stage, Path("."))
    if stage.resume_file:
        lines.append(f"RESUME=; [ -e {shlex.quote(stage.resume_file)} ] && RESUME={stage.resume_flag}")
        launch += " $RESUME"
    lines += forward_sigterm(launch, getattr(mod, "signal_timer", lambda c: [])(cfg))
    return "\n".join(lines) + "\n"


def forward_sigterm(launch: str, timer: list[str] = ()) -> list[str]:
    """Run ``launch`` in the background and pass SIGTERM on to it (a walltime warning,
    ``scancel``/``qdel``): training then checkpoints at its next step and exits 75. ``timer``:
    lines that start a SIGTERM timer (PBS) and set ``$timer``. The script exits with the
    launcher's status."""
    return ["# SIGTERM (walltime warning, scancel/qdel) goes on to the ranks: training checkpoints and exits 75",
            f"{launch} &", "pid=$!", *timer,
            "trap 'kill -TERM \"$pid\" 2>/dev/null' TERM",
            'rc=0; wait "$pid" || rc=$?',
            'if [ "$rc" -gt 128 ] && kill -0 "$pid" 2>/dev/null; then rc=0; wait "$pid" || rc=$?; fi',
            '[ -z "${timer:-}" ] || kill "$timer" 2>/dev/null || true',
            'exit "$rc"']


def workflow_script(cfg: WorkflowConfig) -> str:
    """The batch script that holds ``site.nodes`` nodes and runs the Parsl driver inside them."""
    mod = _require_scheduler(cfg)
    if cfg.site.driver != "job":
        raise InputError(f"{cfg.source}: site.driver is 'login': run `autophase workflow --config "
                         f"{cfg.source}` on a login node (Parsl submits its own jobs)")
    config = cfg.source or f"jobs/{cfg.site.name}.toml"
    lines = mod.batch_header(cfg, f"autophase-{cfg.run.name}", cfg.site.nodes, None)
    lines += ["", *mod.batch_env(cfg, None), "", *_environment(cfg), "set -e", "",
              "# The Parsl driver runs on the job's first node and starts its workers over the",
              "# job's nodes; finished stages are reused when the job is submitted again.",
              f"autophase workflow --config {shlex.quote(str(config))}"]
    return "\n".join(lines) + "\n"


def all_scripts(cfg: WorkflowConfig) -> dict[str, str]:
    """``{file name: script}`` for every stage and for the workflow."""
    mod = _require_scheduler(cfg)
    suffix = SUFFIX[mod.SCHEDULER]
    out = {f"{s.name}{suffix}": stage_script(cfg, s) for s in relative_stages(cfg)}
    if cfg.site.driver == "job":
        out[f"workflow{suffix}"] = workflow_script(cfg)
    return out


def parsl_prefix(cfg: WorkflowConfig, stage: Stage) -> str:
    """What ``$PARSL_MPI_PREFIX`` becomes for ``stage`` (Parsl's own composer, with
    placeholder host names ``<node-0>`` … for the nodes the executor will hand out)."""
    from parsl.executors.high_throughput.mpi_prefix_composer import compose_all, validate_resource_spec

    spec = sites.resource_spec(cfg, stage)
    validate_resource_spec(spec)
    launcher = "srun" if sites.site_module(cfg).SCHEDULER == "slurm" else "mpiexec"
    hosts = ["localhost"] if cfg.site.name == "local" else [f"<node-{i}>" for i in range(stage.nodes)]
    return compose_all(launcher, spec, hosts)["PARSL_MPI_PREFIX"].strip()
