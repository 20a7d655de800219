#!/bin/bash -l
# One-time Python environment for autophase on Polaris (ALCF), on a login node, from the
# repository root:
#
#   bash jobs/polaris/setup_env.sh /eagle/YOUR_PROJECT/autophase/venvs/polaris [horovod]
#
# A venv on top of ALCF's conda module (--system-site-packages): torch with CUDA and NCCL,
# and mpi4py built on Cray MPICH, come from the module. Nothing here installs the `mpich`
# wheel (the project's [hpc]/[sim] extras would: they are for laptops and CI): its mpiexec
# would shadow PALS and mpi4py would load it instead of Cray MPICH — no Slingshot, and every
# rank a 1-rank world (autophase then stops at start: "MPI.COMM_WORLD has 1 rank(s) but N
# were asked for"). jobs/polaris.toml's setup lines activate this venv in every job.
set -eo pipefail
VENV=${1:?usage: jobs/polaris/setup_env.sh VENV_DIR [horovod]}
module use /soft/modulefiles
module load conda/2025-09-25          # pinned, as in jobs/polaris.toml (the default moves)
conda activate base
python -m venv --system-site-packages "$VENV"
source "$VENV/bin/activate"
# the project without its dependencies, then those the module lacks (never torch, mpi4py, mpich)
python -m pip install --no-deps -e .
python -m pip install "h5py>=3.9" "hdf5plugin>=4.0" "tifffile>=2023.1" "numba>=0.59" "pyFFTW>=0.13" \
  "aiohttp>=3.9" "tqdm>=4.60" "parsl>=2026.10" "tensorboard>=2.14"
export MPICH_GPU_SUPPORT_ENABLED=0    # the module sets 1: aborts an mpi4py without the GTL library
if [ "${2:-}" = horovod ]; then
  # Horovod (not in the module since conda/2025-09-25): built against this torch and the
  # site's MPI, with NCCL for the GPU collectives. Rebuild after an MPI upgrade (PE 26.03
  # renamed libmpi_gnu_123.so.12 to libmpi_gnu.so.12).
  HOROVOD_GPU_OPERATIONS=NCCL HOROVOD_NCCL_HOME=${HOROVOD_NCCL_HOME:-/soft/libraries/nccl/current} \
    bash scripts/build_horovod.sh "$VENV/bin/python"
fi
# checks: no pip MPI in the venv, mpi4py on Cray MPICH, CUDA torch
python jobs/check_site_env.py
