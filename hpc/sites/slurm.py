"""Any Slurm cluster, through Perlmutter's code path: e.g. the one-node cluster that
``scripts/slurm_local.sh up`` runs on this machine (``jobs/slurm-local.toml``).

Everything — Parsl's :class:`~parsl.providers.SlurmProvider` blocks submitted with sbatch
(``site.driver = "login"``) or started in place inside a job (``"job"``), MPI stages launched by
the :class:`~parsl.executors.MPIExecutor` with ``srun --ntasks R --ntasks-per-node P --nodelist …
-c C --cpu-bind=cores``, the ``#SBATCH`` headers of ``autophase submit`` — is
:mod:`.perlmutter`'s, called with this site's config. What differs is only what the config
leaves out: no account, QOS, constraint or GPUs means no ``-A``/``-q``/``-C``/``--gpus-per-node``,
and the workers carry no Perlmutter NUMA affinity list.

The PMI that srun offers the ranks is the cluster's ``MpiDefault`` unless the run config's
``[site.env]`` sets ``SLURM_MPI_TYPE`` (srun reads it as ``--mpi``): ``pmi2`` for MPICH.
"""
from __future__ import annotations

from ..config import WorkflowConfig
from ..rundir import RunDir
from . import perlmutter
from .perlmutter import SCHEDULER, batch_env, batch_header, launch, launcher_options, wrapper

__all__ = ["SCHEDULER", "parsl_config", "launcher_options", "wrapper", "launch", "batch_header", "batch_env"]


def parsl_config(cfg: WorkflowConfig, run: RunDir, address: str | None = None):
    """Perlmutter's config with workers bound by nothing but Slurm (``cpu_affinity="none"``)."""
    return perlmutter.parsl_config(cfg, run, address, cpu_affinity="none")
