"""Every MPI stage checks at start that COMM_WORLD has the ranks the launcher was asked for.

Real processes: the venv's ``mpiexec`` (the mpich wheel) starts 2 ranks where 3 were asked
for, and a lone process carries a launcher's variables for 2 ranks (what a pip mpich
mpi4py sees under a Cray or Open MPI launcher). Both end with one error line, exit 2, and
nothing written.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autophase.errors import InputError
from autophase.mpi_world import EXPECT_ENV, check_world, expected_ranks

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MPIEXEC = BIN / "mpiexec"
AUTOPHASE = [sys.executable, "-m", "autophase.cli"]

_LAUNCH_VARS = ("PMI_", "OMPI_", "PMIX_", "SLURM_", "HOROVOD_", "TORCHELASTIC", "MPI_LOCAL", "PALS_",
                EXPECT_ENV, "RANK", "WORLD_SIZE", "LOCAL_RANK")


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LAUNCH_VARS)}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""), **extra)
    return env


def test_expected_ranks_from_the_launch_lines_or_the_launcher():
    assert expected_ranks({}) == (None, "")
    assert expected_ranks({EXPECT_ENV: "8", "PMI_SIZE": "4", "PMI_RANK": "0"}) == (8, EXPECT_ENV)
    assert expected_ranks({"PMI_SIZE": "4", "PMI_RANK": "1"})[0] == 4
    assert expected_ranks({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"})[0] == 2
    assert expected_ranks({"SLURM_STEP_ID": "0", "SLURM_PROCID": "3", "SLURM_STEP_NUM_TASKS": "32"})[0] == 32
    # torchrun and a Slurm batch shell (no step) ask for no MPI world
    assert expected_ranks({"RANK": "0", "WORLD_SIZE": "4", "TORCHELASTIC_RUN_ID": "x"}) == (None, "")
    assert expected_ranks({"SLURM_PROCID": "0", "SLURM_NTASKS": "64"}) == (None, "")
    for bad in ("0", "-2", "four"):
        with pytest.raises(InputError, match=EXPECT_ENV):
            expected_ranks({EXPECT_ENV: bad})


def test_a_plain_process_is_not_checked():
    log = io.StringIO()
    assert check_world("simulate", {}, log) == 1 and log.getvalue() == ""


@pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec beside this Python")
def test_two_ranks_where_three_were_asked_for(tmp_path):
    out = tmp_path / "sim"
    r = subprocess.run([str(MPIEXEC), "-n", "2", *AUTOPHASE, "simulate", "--n-crystals", "2", "--size", "6",
                        "--out", str(out), "--no-progress"], env=_env(**{EXPECT_ENV: "3"}), cwd=tmp_path,
                       capture_output=True, text=True, timeout=180)
    assert r.returncode != 0
    errors = [ln for ln in r.stderr.splitlines() if "error:" in ln]
    assert errors and all(ln == errors[0] for ln in errors), r.stderr  # one line (per rank)
    assert "has 2 rank(s) but 3 were asked for" in errors[0] and "MPICH" in errors[0]
    assert not out.exists()


@pytest.mark.parametrize("launcher", [{"PMI_SIZE": "2", "PMI_RANK": "0"},
                                      {"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "1"}])
def test_one_rank_world_where_the_launcher_says_two(tmp_path, launcher):
    out = tmp_path / "train"
    r = subprocess.run([*AUTOPHASE, "train", "--engine", "ddp", "--data", "synthetic:16", "--out", str(out),
                        "--epochs", "1"], env=_env(**launcher), cwd=tmp_path, capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 2, r.stderr
    assert "autophase train: error: MPI.COMM_WORLD has 1 rank(s) but 2 were asked for" in r.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec beside this Python")
def test_matching_world_logs_the_library_once(tmp_path):
    code = "from autophase.mpi_world import check_world; import sys; sys.exit(0 if check_world('t') == 2 else 1)"
    r = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, "-c", code], env=_env(**{EXPECT_ENV: "2"}),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    logs = [ln for ln in r.stderr.splitlines() if ln.startswith("t: MPI: ")]
    assert len(logs) == 1 and "MPICH" in logs[0] and logs[0].endswith("2 rank(s)")


@pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec beside this Python")
def test_bench_training_uses_mpiexec_only_of_mpi4pys_mpi(tmp_path):
    """The H200's ``ddp-1: exit 1`` (4 ms): /usr/bin/mpiexec was Open MPI's, mpi4py's was not."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_training", ROOT / "benchmarks" / "bench_training.py")
    bt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bt)
    assert bt.mpiexec_problem(str(MPIEXEC)) is None  # the venv's MPICH: mpi4py's own
    other = tmp_path / "mpiexec"  # what Open MPI's launcher says of itself
    other.write_text("#!/bin/sh\necho 'mpiexec (OpenRTE) 4.1.6'\nexit 0\n")
    other.chmod(0o755)
    assert bt.mpiexec_problem(str(other)) == f"{other} belongs to openmpi but mpi4py runs on mpich"
    assert bt.mpiexec_problem(None).startswith("no mpiexec")
