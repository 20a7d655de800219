#!/bin/bash
# torch.distributed's rank variables from the ones srun gives each task, as NERSC's
# Perlmutter examples set them (one task per GPU: --ntasks-per-node=4 --gpus-per-node=4).
# MASTER_ADDR/MASTER_PORT come from the batch script (scontrol, once per job, not once per
# rank) or, when unset, from the training engine's own mpi4py rendezvous.
#
#   srun -N 2 --ntasks-per-node=4 --gpus-per-node=4 hpc/bin/slurm_ranks.sh CMD ARGS...
export RANK=${SLURM_PROCID:?not under srun} LOCAL_RANK=${SLURM_LOCALID} WORLD_SIZE=${SLURM_NTASKS}
exec "$@"
