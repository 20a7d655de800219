#!/bin/bash
# One GPU per MPI rank on a Polaris node (4 x A100), in the manner of ALCF's
# set_affinity_gpu_polaris.sh. Ranks bound with `--depth=8 --cpu-bind core` get cores
# 8r..8r+7 (and their hyper-thread twins), and GPU 3 is the one attached to cores 0-7
# (GPU 0 to cores 24-31), so local rank r takes GPU 3 - r % 4, the GPU nearest its cores.
# Inside the rank that GPU is the only one visible: cuda:0 (autophase.distributed.cuda_device).
# CUDA_VISIBLE_DEVICES must be set before the program initialises CUDA or imports mpi4py.
#
#   mpiexec -n 8 --ppn 4 --depth=8 --cpu-bind core hpc/bin/set_affinity_gpu_polaris.sh CMD ARGS...
num_gpus=${AUTOPHASE_GPUS_PER_NODE:-4}
local_rank=${PMI_LOCAL_RANK:-${PALS_LOCAL_RANKID:-0}}
gpu=$(( num_gpus - 1 - local_rank % num_gpus ))
export CUDA_VISIBLE_DEVICES=$gpu
exec "$@"
