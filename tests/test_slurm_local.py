"""The workflow under a real Slurm on this machine (``scripts/slurm_local.sh up``), through
Perlmutter's code path: Parsl's SlurmProvider blocks submitted with sbatch, MPI stages started
by srun with PMI-2, ``autophase submit`` through sbatch, and sacct reading slurmdbd.

* the whole graph of ``jobs/slurm-local.toml`` finishes with its report; sacct shows every
  stage's srun step COMPLETED, simulation and training as 2-task steps;
* a training job submitted with ``autophase submit train`` is ``scancel``-ed mid-epoch: the
  trainer writes a checkpoint on SIGTERM, and the resubmitted job resumes from it and ends
  with the step count of an uninterrupted run (job COMPLETED).

On a fresh machine the first test installs Debian's packages (about a minute); it needs root
or passwordless sudo, and is skipped, saying so, where neither is there. The cluster is
stopped again at the end when this module started it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "slurm_local.sh"
sys.path.insert(0, str(REPO))

pytestmark = [pytest.mark.slow, pytest.mark.mpi]


def _privileged() -> str | None:
    """None when this process may run the script, else why not."""
    if os.geteuid() == 0:
        return None
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0:
        return None
    return "a local Slurm needs root or passwordless sudo (packages, /etc/slurm, daemons)"


def _env() -> dict:
    # Jobs inherit the submitting environment: this venv's autophase, python and MPI first.
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONPATH", None)
    return env


@pytest.fixture(scope="module")
def slurm():
    why = _privileged()
    if why:
        pytest.skip(why)
    was_up = subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True).returncode == 0
    t0 = time.perf_counter()
    up = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, up.stdout + up.stderr
    print(f"\nslurm_local.sh up: {time.perf_counter() - t0:.1f} s ({'already up' if was_up else 'started'})")
    yield
    if not was_up:
        subprocess.run(["bash", str(SCRIPT), "down"], capture_output=True, timeout=120)


def _config(tmp_path: Path, name: str, **train) -> Path:
    """jobs/slurm-local.toml with its run under ``tmp_path`` (and [train] keys replaced)."""
    text = (REPO / "jobs" / "slurm-local.toml").read_text()
    text = text.replace('name = "slurm-local"', f'name = "{name}"\nroot = "{tmp_path}"', 1)
    for key, value in train.items():
        text, n = re.subn(rf"(?m)^({key} = ).*$", rf"\g<1>{value}", text, count=1)
        assert n == 1, key
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def _sacct(*jobs: str) -> list[dict]:
    """sacct rows (job and steps) of ``jobs``: JobID, JobName, State, NTasks, ExitCode."""
    out = subprocess.run(["sacct", "-n", "-P", "-j", ",".join(jobs),
                          "--format=JobID,JobName,State,NTasks,ExitCode"],
                         capture_output=True, text=True, check=True).stdout
    return [dict(zip(("id", "name", "state", "ntasks", "exit"), line.split("|")))
            for line in out.splitlines() if line]


def _wait_gone(job: str, timeout: float) -> None:
    end = time.time() + timeout
    while time.time() < end:
        q = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True)
        if not q.stdout.strip():
            return
        time.sleep(1)
    raise AssertionError(f"job {job} still in the queue after {timeout} s")


def _accounted(job: str, state: str, timeout: float = 60) -> list[dict]:
    """Wait until slurmdbd has the job's final state (it arrives shortly after the end)."""
    end = time.time() + timeout
    while True:
        rows = _sacct(job)
        if rows and rows[0]["state"].startswith(state) or time.time() > end:
            return rows
        time.sleep(1)


@pytest.mark.timeout(1200)  # on a fresh machine the fixture's package install counts too
def test_workflow_graph_under_slurm(slurm, tmp_path):
    cfg = _config(tmp_path, "graph")
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "autophase.cli", "workflow", "--config", str(cfg)],
                         capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=900)
    took = time.perf_counter() - t0
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    print(f"\nworkflow under slurm: {took:.1f} s\n{run.stdout}")
    out = run.stdout
    for stage in ("simulate", "train", "evaluate", "bench-phasing", "scaling-simulate-strong-r1",
                  "scaling-simulate-strong-r2", "report"):
        assert re.search(rf"^done: {stage} in ", out, re.M), stage
    assert re.search(r"^report: ", out, re.M)
    root = tmp_path / "graph"
    assert any((root / "report").iterdir())

    # The blocks Parsl submitted: sbatch named each job after its submit script.
    names = {p.name for p in (root / "parsl").rglob("parsl.*.block-*")
             if p.is_file() and not p.name.endswith((".stdout", ".stderr"))}
    listed = subprocess.run(["sacct", "-n", "-P", "-X", "-S", "now-2hours", "--format=JobID,JobName"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    jobs = [line.split("|")[0] for line in listed if line.split("|")[1] in names]
    assert jobs, "no Parsl block found in sacct"
    for j in jobs:
        _wait_gone(j, 60)
    rows = _sacct(*jobs)
    print("\n".join(f"{r['id']:>12} {r['name']:<36} {r['state']:<12} {r['ntasks']}" for r in rows))
    blocks = [r for r in rows if "." not in r["id"]]
    assert {r["name"].split(".")[1] for r in blocks} >= {"htex", "mpi"}
    steps = [r for r in rows if r["name"] == "autophase"]  # the MPI stages' srun steps
    # simulate, train and the two scaling points: four srun steps, all COMPLETED
    assert len(steps) == 4 and all(r["state"] == "COMPLETED" for r in steps), rows
    assert sorted(int(r["ntasks"]) for r in steps) == [1, 2, 2, 2]
    # The blocks' own jobs are ended by Parsl (scale-in, shutdown) with scancel.
    assert all(r["state"] in ("COMPLETED", "CANCELLED") or r["state"].startswith("CANCELLED") for r in blocks)


def _submit(cfg: Path, stage: str) -> str:
    done = subprocess.run([sys.executable, "-m", "autophase.cli", "submit", stage, "--config", str(cfg)],
                          capture_output=True, text=True, cwd=REPO, env=_env(), timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    m = re.search(r"Submitted batch job (\d+)", done.stdout)
    assert m, done.stdout
    return m.group(1)


def _job_output(job: str) -> str:
    # The scripts write %x-%j.out into the submission directory (the repository root).
    path = REPO / f"autophase-train-{job}.out"
    text = path.read_text() if path.exists() else ""
    path.unlink(missing_ok=True)
    return text


@pytest.mark.timeout(1200)
def test_scancel_mid_epoch_then_resume(slurm, tmp_path):
    import torch

    # A dataset of its own (simulated through Slurm too), then training: 13 steps an epoch.
    cfg = _config(tmp_path, "resume", epochs=3, batch_size=1)
    sim = _submit(cfg, "simulate")
    _wait_gone(sim, 300)
    assert _accounted(sim, "COMPLETED")[0]["state"] == "COMPLETED", _sacct(sim)
    (REPO / f"autophase-simulate-{sim}.out").unlink(missing_ok=True)

    ckpt = tmp_path / "resume" / "train" / "checkpoint.pt"
    job = _submit(cfg, "train")
    # Wait for the end of epoch 1, then cancel a few steps later (in epoch 2, or 3 on a fast machine).
    end = time.time() + 300
    while not ckpt.exists():
        assert time.time() < end, f"no checkpoint after 300 s: {_job_output(job)}"
        q = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout
        assert q.strip() or ckpt.exists(), f"training job ended early: {_job_output(job)}"
        time.sleep(0.5)
    first = torch.load(ckpt, map_location="cpu", weights_only=False)
    per_epoch = int(first["step"])
    assert first["epoch"] == 1 and per_epoch > 4
    time.sleep(1.5)
    t_cancel = time.time()
    subprocess.run(["scancel", job], check=True)
    _wait_gone(job, 120)
    log1 = _job_output(job)
    rows = _accounted(job, "CANCELLED")
    assert rows[0]["state"].startswith("CANCELLED"), rows

    # The checkpoint the trainer wrote on SIGTERM (its ranks exit 75, EXIT_TERMINATED) at its next
    # step, after the epoch already saved and before the end.
    assert ckpt.stat().st_mtime > t_cancel, f"no checkpoint written after scancel:\n{log1}"
    assert [r["exit"] for r in rows if r["name"] == "autophase"] == ["75:0"], rows
    cut = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert per_epoch <= int(cut["step"]) < 3 * per_epoch, (cut["step"], per_epoch, log1)
    print(f"\nscancel: checkpoint at step {cut['step']} ({per_epoch} steps an epoch)")

    again = _submit(cfg, "train")
    _wait_gone(again, 300)
    log2 = _job_output(again)
    rows = _accounted(again, "COMPLETED")
    assert rows[0]["state"] == "COMPLETED", (rows, log2)
    assert "resuming from" in log2, log2
    last = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert last["epoch"] == 3 and int(last["step"]) == 3 * per_epoch, (last["epoch"], last["step"])
    train_steps = [r for r in rows if r["name"] == "autophase"]
    assert train_steps and train_steps[0]["ntasks"] == "2" and train_steps[0]["state"] == "COMPLETED", rows
