"""scripts/gpu_run.sh (how the shipped model was made) and bench_training's per-row decisions.

The script runs here as its own CPU dry run, at toy size: it must leave two exported
models that ``predict`` can load, with their metrics and logs, and no benchmark files
when BENCH=0.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench_training():
    spec = importlib.util.spec_from_file_location("bench_training", ROOT / "benchmarks" / "bench_training.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_training_says_why_a_row_cannot_run(monkeypatch):
    bt = _bench_training()
    monkeypatch.setattr(bt.importlib.util, "find_spec", lambda name: object())  # horovod "built"
    monkeypatch.setattr(bt, "find_mpiexec", lambda: "/usr/bin/mpiexec")
    assert bt.cannot_run("none", 1, "torchrun", gpus=1) is None
    assert bt.cannot_run("ddp", 1, "torchrun", gpus=1) is None
    assert bt.cannot_run("ddp", 2, "mpiexec", gpus=0) is None
    assert bt.cannot_run("ddp", 2, "torchrun", gpus=1) == "needs 2 GPUs (one rank per GPU), 1 here"
    assert bt.cannot_run("horovod", 1, "torchrun", gpus=0) == "horovod runs under mpiexec or horovodrun, not torchrun"
    monkeypatch.setattr(bt, "find_mpiexec", lambda: None)
    assert bt.cannot_run("ddp", 2, "mpiexec", gpus=0) == "no mpiexec on the PATH (pip install mpich)"
    monkeypatch.setattr(bt.importlib.util, "find_spec", lambda name: None)
    assert bt.cannot_run("horovod", 1, "mpiexec", gpus=0).startswith("horovod is not built")
    cmd = bt.launcher_command("torchrun", 2)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"] and cmd[-2:] == ["-m", "autophase.cli"]


@pytest.mark.slow
def test_gpu_run_dry_run_exports_two_models(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    env = dict(os.environ, PYTHON=sys.executable, WORK=str(work), NSIM="2", PER="10", BENCH="0", LIVE="0",
               TRAIN_EXTRA="--steps-per-epoch 1 --max-val 2 --batch-size 4 --width 2 --depth 2 --workers 0")
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_run.sh"), str(out), "0.01"], capture_output=True,
                       text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "data: 2 runs" in r.stdout and "gpu_run: done" in r.stdout
    assert not (out / "inference-gpu.json").exists() and not (out / "live-gpu.json").exists()  # BENCH=0 LIVE=0
    from autophase.model.checkpoint import load_model, read_checkpoint

    for name in ("A", "B"):
        with tarfile.open(out / f"{name}.tar") as t:
            assert sorted(t.getnames()) == ["config.json", "metrics.csv", "model.json", "model.pt", "train.log"]
            t.extractall(tmp_path / name)
        net, _ = load_model(tmp_path / name / "model.pt")
        ck = read_checkpoint(tmp_path / name / "model.pt")
        assert net.config.width == 2 and ck["last_epoch"]["epoch"] == 1 and "optimizer" not in ck
        assert ck["data"].startswith("SimulatedRuns(") and ck["data"].endswith("n=20")
    with tarfile.open(out / "logs.tar") as t:
        assert {"./A.log", "./B.log", "./sim-0.log", "./sim-1.log"} <= set(t.getnames())

    # INIT: both candidates start from given weights (how the next lease goes on from the
    # shipped model), with the full support threshold from the first step
    # (the simulated runs in WORK are complete, so simulate reuses them)
    env["INIT"] = str(tmp_path / "A" / "model.pt")
    shutil.rmtree(work / "A")
    shutil.rmtree(work / "B")
    r = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_run.sh"), str(tmp_path / "out2"), "0.01"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"from {env['INIT']}" in r.stdout and "data: 2 runs" in r.stdout
    with tarfile.open(tmp_path / "out2" / "A.tar") as t:
        t.extractall(tmp_path / "A2")
    ck = read_checkpoint(tmp_path / "A2" / "model.pt")
    assert ck["train"]["threshold_start"] == 0.1 and ck["train"]["lr"] == 2.5e-4 and "--init" in ck["command"]
