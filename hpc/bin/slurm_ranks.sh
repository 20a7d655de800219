#!/bin/bash
# torch.distributed's rank variables from the ones srun gives each task, as NERSC's
# Perlmutter examples set them (one task per GPU: --ntasks-per-node=4 --gpus-per-node=4).
# WORLD_SIZE is this srun step's task count (SLURM_STEP_NUM_TASKS), not the allocation's.
# MASTER_ADDR/MASTER_PORT are not set here nor job-wide: the training engine's rank 0
# broadcasts its host and a free port over MPI, per task (autophase/distributed.py).
#
#   srun -N 2 --ntasks-per-node=4 --gpus-per-node=4 hpc/bin/slurm_ranks.sh CMD ARGS...
export RANK=${SLURM_PROCID:?not under srun} LOCAL_RANK=${SLURM_LOCALID}
export WORLD_SIZE=${SLURM_STEP_NUM_TASKS:-${SLURM_NTASKS}}
exec "$@"
