"""SIGTERM inside an epoch: a checkpoint at the next step, exit 75, and ``--resume`` takes the
very steps an uninterrupted run takes (weights, Adam state, step counter, epoch losses).

Real processes and real signals: ``autophase train`` in its own session receives SIGTERM
after a given step (the trainer's test hook sends it, so that it lands mid-epoch whatever
the machine's speed) — to its whole process group with a data-loader worker, as
``scancel`` does; and on one rank of two under ``mpiexec`` (DDP), where the ranks must
agree to stop together.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autophase.model import read_checkpoint
from autophase.train.trainer import EXIT_TERMINATED, TERM_HOOK_ENV

ROOT = Path(__file__).resolve().parents[1]
MPIEXEC = Path(sys.executable).parent / "mpiexec"
ARGS = ["--data", "synthetic:20:1", "--width", "2", "--depth", "2", "--batch-size", "2", "--epochs", "2",
        "--steps-per-epoch", "3", "--max-val", "2", "--bn-recalibrate", "1", "--warmup", "2", "--seed", "3",
        "--no-progress"]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "OMPI_", "SLURM_", "MASTER_", "AUTOPHASE_"))}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""), **extra)
    return env


def _train(out: Path, *extra: str, launcher: tuple[str, ...] = (), **env) -> subprocess.CompletedProcess:
    cmd = [*launcher, sys.executable, "-m", "autophase.cli", "train", *ARGS, "--out", str(out), *extra]
    return subprocess.run(cmd, env=_env(**env), cwd=out.parent, capture_output=True, text=True, timeout=300,
                          start_new_session=True)


def _same_run(a: dict, b: dict) -> None:
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"]
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        for k in sa[i]:
            assert torch.equal(sa[i][k], sb[i][k]), (i, k)
    assert a["optimizer"]["param_groups"][0]["lr"] == b["optimizer"]["param_groups"][0]["lr"]
    assert [h["train_loss"] for h in a["history"]] == [h["train_loss"] for h in b["history"]]
    assert [h["val_loss"] for h in a["history"]] == [h["val_loss"] for h in b["history"]]


@pytest.mark.slow
def test_sigterm_mid_epoch_checkpoints_and_resumes_exactly(tmp_path):
    straight = _train(tmp_path / "straight", "--workers", "1")
    assert straight.returncode == 0, straight.stderr[-2000:]
    # SIGTERM to the process group (the trainer and its loader worker) after step 4: epoch 2, step 1 of 3
    cut = _train(tmp_path / "cut", "--workers", "1", **{TERM_HOOK_ENV: "4@group"})
    assert cut.returncode == EXIT_TERMINATED, cut.stderr[-2000:]
    assert "SIGTERM: checkpoint at step 4 (1/3 of epoch 2)" in cut.stdout
    ck = read_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert ck["step"] == 4 and ck["epoch"] == 1 and ck["partial"]["steps_done"] == 1
    assert ck["optimizer"]["state"][0]["step"] == 4  # Adam has taken exactly the steps done
    again = _train(tmp_path / "cut", "--workers", "1", "--resume", "--lr", "0.5")
    assert again.returncode == 0, again.stderr[-2000:]
    # a flag that the checkpoint overrides is named, on one line
    assert "ignoring --lr 0.5 (checkpoint: 0.001)" in again.stderr
    _same_run(read_checkpoint(tmp_path / "straight" / "checkpoint.pt"),
              read_checkpoint(tmp_path / "cut" / "checkpoint.pt"))


@pytest.mark.slow
@pytest.mark.skipif(not MPIEXEC.exists(), reason="no mpiexec beside this Python")
def test_one_signalled_rank_stops_both_ddp_ranks(tmp_path):
    mpi = (str(MPIEXEC), "-n", "2")
    straight = _train(tmp_path / "straight", "--engine", "ddp", launcher=mpi)
    assert straight.returncode == 0, straight.stderr[-2000:]
    # only rank 1 gets SIGTERM, after step 2 (epoch 1, 2 of 3): both stop there, rank 0 writes
    cut = _train(tmp_path / "cut", "--engine", "ddp", launcher=mpi, **{TERM_HOOK_ENV: "2@1"})
    assert cut.returncode != 0 and "SIGTERM: checkpoint at step 2 (2/3 of epoch 1)" in cut.stdout, cut.stderr[-2000:]
    ck = read_checkpoint(tmp_path / "cut" / "checkpoint.pt")
    assert ck["step"] == 2 and ck["partial"]["aug_states"].shape[0] == 2  # both ranks' positions
    again = _train(tmp_path / "cut", "--engine", "ddp", "--resume", launcher=mpi)
    assert again.returncode == 0, again.stderr[-2000:]
    _same_run(read_checkpoint(tmp_path / "straight" / "checkpoint.pt"),
              read_checkpoint(tmp_path / "cut" / "checkpoint.pt"))
