"""The CUDA device of a rank is chosen among the GPUs it can see (issue 17, item 1).

No GPU needed: :func:`choose_device` is a pure function of the launcher's environment and
the device count CUDA reports (which already reflects ``CUDA_VISIBLE_DEVICES``). The
Polaris case goes through the real ``hpc/bin/set_affinity_gpu_polaris.sh``.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autophase.distributed import Engine, choose_device, cuda_device, rendezvous_choice

ROOT = Path(__file__).resolve().parents[1]

POLARIS = {"PMI_RANK": "7", "PMI_SIZE": "8", "PMI_LOCAL_RANK": "3", "PMI_LOCAL_SIZE": "4"}
PERLMUTTER = {"SLURM_STEP_ID": "0", "SLURM_PROCID": "6", "SLURM_STEP_NUM_TASKS": "8", "SLURM_LOCALID": "2",
              "SLURM_NTASKS": "8"}


@pytest.mark.parametrize("env,count,device", [
    (POLARIS, 1, "cuda:0"),            # ALCF's affinity script: one GPU visible per rank, local rank 3
    (POLARIS, 4, "cuda:3"),            # no affinity script: all four visible
    (PERLMUTTER, 4, "cuda:2"),         # srun --gpus-per-node=4: all visible, SLURM_LOCALID 2
    (PERLMUTTER, 1, "cuda:0"),         # srun --gpus-per-task=1: Slurm leaves one visible
    ({**POLARIS, "PMI_LOCAL_RANK": "5"}, 4, "cuda:1"),  # more ranks than GPUs: wrap around
    ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "TORCHELASTIC_RUN_ID": "x"}, 2, "cuda:1"),
    ({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "3"}, 1, "cuda:0"),
    ({}, 1, "cuda:0"),                 # a single process
    (POLARIS, 0, "cpu"),               # no GPU at all
])
def test_device_among_the_visible_ones(env, count, device):
    assert choose_device(env, count) == device


def test_never_an_ordinal_beyond_the_visible_count():
    for count in range(1, 9):
        for local in range(0, 16):
            d = cuda_device(local, count)
            assert d.startswith("cuda:") and int(d[5:]) < count


def test_polaris_affinity_script_then_device_choice():
    """The real wrapper: local rank 3 sees GPU 0 only, and inside the rank that is cuda:0."""
    code = ("import os; from autophase.distributed import choose_device; "
            "n = len(os.environ['CUDA_VISIBLE_DEVICES'].split(',')); "
            "print(os.environ['CUDA_VISIBLE_DEVICES'], choose_device(device_count=n))")
    for local, gpu in ((0, "3"), (3, "0")):
        env = {**os.environ, **POLARIS, "PMI_LOCAL_RANK": str(local)}
        r = subprocess.run([str(ROOT / "hpc/bin/set_affinity_gpu_polaris.sh"), sys.executable, "-c", code],
                           env=env, capture_output=True, text=True, check=True, timeout=120)
        assert r.stdout.split() == [gpu, "cuda:0"]


def test_engine_on_a_cpu_machine_is_cpu():
    if choose_device(device_count=None) != "cpu":
        pytest.skip("a GPU is visible here")
    assert str(Engine(local_rank=3).device) == "cpu"


def test_rendezvous_keeps_only_an_address_on_rank0s_node():
    hosts = ["nid002", "nid002", "nid003", "nid003"]
    # a job-wide MASTER_ADDR naming a node outside this task (Perlmutter, Parsl MPI task)
    addr, port, note = rendezvous_choice(("nid001", "29500"), hosts, "", 41000)
    assert (addr, port) == ("nid002", 41000) and "nid001" in note
    # one naming rank 0's node is kept (full or short name)
    assert rendezvous_choice(("nid002.chn", "29500"), hosts, "", 41000)[:2] == ("nid002.chn", 29500)
    # localhost is only good when every rank is on rank 0's node
    assert rendezvous_choice(("localhost", "29500"), hosts, "", 41000)[:2] == ("nid002", 41000)
    assert rendezvous_choice(("localhost", "29500"), ["a", "a"], "", 41000)[:2] == ("localhost", 29500)
    # nothing inherited: rank 0's host on the high-speed network, the free port
    assert rendezvous_choice(("", ""), ["x3004c0s7b0n0"] * 2 + ["x3004c0s7b1n0"], ".hsn.cm.polaris.alcf.anl.gov",
                             5555) == ("x3004c0s7b0n0.hsn.cm.polaris.alcf.anl.gov", 5555, "")
    # one rank: loopback
    assert rendezvous_choice(("nid001", "29500"), ["nid009"], "", 5)[:2] == ("127.0.0.1", 5)
