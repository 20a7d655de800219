#!/bin/bash
# One-time Python environment for autophase on Perlmutter (NERSC), on a login node, from
# the repository root:
#
#   bash jobs/perlmutter/setup_env.sh /global/common/software/YOUR_PROJECT/autophase/venvs/perlmutter [horovod]
#
# A venv on top of NERSC's pytorch module (--system-site-packages: torch with CUDA and
# NCCL), with mpi4py compiled here against Cray MPICH (NERSC's recipe: MPICC="cc -shared"
# pip install --no-binary=mpi4py mpi4py). Nothing here installs the `mpich` wheel (the
# project's [hpc]/[sim] extras would): its mpiexec would shadow srun's PMI and every rank
# would be a 1-rank world (autophase then stops at start with one error line).
# Outside a module, plain PyPI `pip install torch` pulls a CUDA build — what a GPU site wants
# (the CPU wheel is only this project's CI choice).
set -eo pipefail
VENV=${1:?usage: jobs/perlmutter/setup_env.sh VENV_DIR [horovod]}
module load pytorch
python -m venv --system-site-packages "$VENV"
source "$VENV/bin/activate"
MPICC="cc -shared" python -m pip install --force-reinstall --no-cache-dir --no-binary=mpi4py mpi4py
python -m pip install --no-deps -e .
python -m pip install "h5py>=3.9" "hdf5plugin>=4.0" "tifffile>=2023.1" "numba>=0.59" "pyFFTW>=0.13" \
  "aiohttp>=3.9" "tqdm>=4.60" "parsl>=2026.10" "tensorboard>=2.14"
export MPICH_GPU_SUPPORT_ENABLED=0    # no GPU buffers over MPI: no GTL library needed
if [ "${2:-}" = horovod ]; then
  # Horovod against this torch and Cray MPICH, NCCL for the GPU collectives
  MPICC=cc MPICXX=CC HOROVOD_GPU_OPERATIONS=NCCL bash scripts/build_horovod.sh "$VENV/bin/python"
fi
python jobs/check_site_env.py   # no pip MPI, mpi4py on Cray MPICH, CUDA torch
