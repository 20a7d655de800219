"""Batch scripts and ``--dry-run`` output for Polaris (PBS Pro) and Perlmutter (Slurm):
directives, launcher lines and environment, as the sites document them. No scheduler needed."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

from autophase.cli import main  # noqa: E402
from autophase.errors import InputError  # noqa: E402
from autophase.hpc import batch, config  # noqa: E402


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # the configs name jobs/… relative to the repository root


def _dry(site: str, capsys) -> str:
    assert main(["workflow", "--config", f"jobs/{site}.toml", "--dry-run"]) == 0
    return capsys.readouterr().out


def test_polaris_dry_run(capsys):
    out = _dry("polaris", capsys)
    for directive in ("#!/bin/bash -l", "#PBS -A YOUR_PROJECT", "#PBS -q debug-scaling",
                      "#PBS -l select=8:system=polaris", "#PBS -l walltime=01:00:00",
                      "#PBS -l filesystems=home:eagle", "#PBS -l place=scatter"):
        assert directive in out
    # environment: the pinned conda module, the aws-ofi-nccl plugin, NCCL/libfabric as ALCF's NCCL
    # page lists them, MPICH_GPU_SUPPORT_ENABLED=0, TMPDIR, then the driver inside the job
    plugin = ("export LD_LIBRARY_PATH=/soft/libraries/aws-ofi-nccl/v1.9.1-aws/lib:/soft/libraries/hwloc/lib:"
              "$LD_LIBRARY_PATH")
    for line in ("module use /soft/modulefiles", "module load conda/2025-09-25", "conda activate base", plugin,
                 "export NCCL_NET_GDR_LEVEL=PHB", "export NCCL_CROSS_NIC=1",
                 "export NCCL_COLLNET_ENABLE=1", "export NCCL_NET='AWS Libfabric'", "export NCCL_SOCKET_IFNAME=hsn",
                 "export FI_CXI_DISABLE_HOST_REGISTER=1", "export FI_MR_CACHE_MONITOR=userfaultfd",
                 "export FI_CXI_DEFAULT_CQ_SIZE=131072", "export FI_CXI_RDZV_PROTO=alt_read",
                 "export FI_CXI_RX_MATCH_MODE=software", "export MPICH_GPU_SUPPORT_ENABLED=0",
                 "export TMPDIR=/tmp", 'cd "${PBS_O_WORKDIR}"',
                 "autophase workflow --config jobs/polaris.toml"):
        assert line in out, line
    # never NCCL_NET without the plugin on the library path first
    assert out.index(plugin) < out.index("export NCCL_NET='AWS Libfabric'")
    assert "# run directory /eagle/YOUR_PROJECT/autophase/runs/polaris" in out
    # the exact launcher lines: ALCF's mpiexec form (--depth counts cores with --cpu-bind core),
    # the expected rank count, the GPU affinity wrapper, one rank per GPU
    assert ("batch: mpiexec -n 32 --ppn 4 --depth=8 --cpu-bind core --env AUTOPHASE_EXPECT_RANKS=32 "
            f"--env OMP_NUM_THREADS=16 {REPO}/hpc/bin/set_affinity_gpu_polaris.sh autophase train ") in out
    nodes = ",".join(f"<node-{i}>" for i in range(8))
    assert (f"$PARSL_MPI_PREFIX = mpiexec -n 32 -ppn 4 -hosts {nodes} --depth=8 --cpu-bind core "
            "--env AUTOPHASE_EXPECT_RANKS=32") in out
    # simulation: one core per rank
    assert (f"$PARSL_MPI_PREFIX = mpiexec -n 256 -ppn 32 -hosts {nodes} --depth=1 --cpu-bind core "
            "--env AUTOPHASE_EXPECT_RANKS=256") in out
    assert "--cpu-bind depth" not in out and "--depth=16" not in out


def test_dry_run_writes_nothing(capsys, tmp_path):
    run_dir = tmp_path / "never"
    assert main(["workflow", "--config", "jobs/perlmutter.toml", "--dry-run", "--run-dir", str(run_dir)]) == 0
    assert str(run_dir) in capsys.readouterr().out
    assert not run_dir.exists()


def test_perlmutter_dry_run(capsys):
    out = _dry("perlmutter", capsys)
    for directive in ("#SBATCH -A YOUR_PROJECT_g", "#SBATCH -C gpu", "#SBATCH -q regular",
                      "#SBATCH -t 01:00:00", "#SBATCH -N 8", "#SBATCH --ntasks-per-node=4",
                      "#SBATCH --gpus-per-node=4", "#SBATCH -L scratch,cfs"):
        assert directive in out
    # no job-wide rendezvous (Parsl's MPI tasks would inherit it): each task does its own
    assert "MASTER_ADDR" not in out and "MASTER_PORT" not in out
    assert 'cd "${SLURM_SUBMIT_DIR}"' in out and "module load pytorch" in out
    assert "export MPICH_GPU_SUPPORT_ENABLED=0" in out and "# run directory /pscratch/sd/" in out
    assert "#SBATCH --signal=TERM@120" in out  # the workflow job: to every step's tasks
    assert ("batch: srun -N 8 --ntasks-per-node=4 --gpus-per-node=4 -c 32 --cpu-bind=cores "
            f"--export=ALL,AUTOPHASE_EXPECT_RANKS=32 {REPO}/hpc/bin/slurm_ranks.sh autophase train ") in out
    nodes = ",".join(f"<node-{i}>" for i in range(8))
    assert (f"$PARSL_MPI_PREFIX = srun --ntasks 32 --ntasks-per-node 4 --nodelist {nodes} --nodes 8 "
            "--gpus-per-node=4 -c 32 --cpu-bind=cores --export=ALL,AUTOPHASE_EXPECT_RANKS=32 --overlap") in out


def test_local_dry_run_shows_local_mpiexec(capsys):
    out = _dry("local", capsys)
    assert "$PARSL_MPI_PREFIX = mpiexec -n 2 -ppn 2 -hosts localhost" in out
    assert "batch: mpiexec -n 2 -ppn 2 -hosts localhost autophase simulate --n-crystals 64" in out
    assert "resumes with --resume when" in out and "#PBS" not in out and "#SBATCH" not in out


@pytest.mark.parametrize("site,suffix", [("polaris", ".pbs"), ("perlmutter", ".sbatch")])
def test_scripts_parse_and_match_the_committed_ones(site, suffix):
    cfg = config.load(f"jobs/{site}.toml")
    scripts = batch.all_scripts(cfg)
    assert set(scripts) == {f"{n}{suffix}" for n in
                            ("simulate", "train", "evaluate", "bench-phasing", "report", "workflow")}
    for name, text in scripts.items():
        subprocess.run(["bash", "-n"], input=text, text=True, check=True)  # valid shell
        committed = REPO / "jobs" / site / name
        assert committed.read_text() == text, (
            f"{committed} is stale: autophase submit all --config jobs/{site}.toml --write jobs/{site}")


def test_stage_script_resumes_training_and_sets_threads():
    cfg = config.load("jobs/polaris.toml")
    train = next(s for s in batch.relative_stages(cfg) if s.name == "train")
    text = batch.stage_script(cfg, train)
    assert "export OMP_NUM_THREADS=16" in text
    root = "/eagle/YOUR_PROJECT/autophase/runs/polaris"
    assert f"RESUME=; [ -e {root}/train/checkpoint.pt ] && RESUME=--resume" in text
    assert f"hpc/bin/set_affinity_gpu_polaris.sh autophase train --data {root}/data" in text
    assert " $RESUME &\npid=$!\n( sleep 3480; kill -TERM $$ ) &" in text  # SIGTERM 120 s before 1 h
    assert text.rstrip().endswith('exit "$rc"')


def test_queues_and_signal_lead_time():
    cfg = config.load("jobs/polaris.toml")
    scripts = batch.all_scripts(cfg)
    # debug-scaling allows one job per user: 1-2 node stages go to debug, the 8-node ones stay
    for name in ("evaluate.pbs", "bench-phasing.pbs", "report.pbs"):
        assert "#PBS -q debug\n" in scripts[name], name
    for name in ("train.pbs", "simulate.pbs", "workflow.pbs"):
        assert "#PBS -q debug-scaling\n" in scripts[name], name
    for name, text in batch.all_scripts(config.load("jobs/perlmutter.toml")).items():
        lead = "#SBATCH --signal=TERM@120" if name == "workflow.sbatch" else "#SBATCH --signal=B:TERM@120"
        assert lead in text and "MASTER_ADDR" not in text, name


@pytest.mark.parametrize("timer", [[], ["( sleep 1; kill -TERM $$ ) &", "timer=$!"]])
def test_batch_script_passes_sigterm_on_to_the_launcher(tmp_path, timer):
    """The lines every stage script ends with, run by bash: SIGTERM to the script (Slurm's
    B:TERM, scancel; or the PBS timer) reaches the program, and its exit status (75, the
    trainer's checkpoint-and-stop) is the script's."""
    import signal
    import time

    prog = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(75))\n"
            "open(sys.argv[1], 'w').close()\n"
            "time.sleep(60)\n")
    ready = tmp_path / "ready"
    launch = f"{sys.executable} -c {shlex.quote(prog)} {ready}"
    script = tmp_path / "job.sh"
    script.write_text("\n".join(["set -e", *batch.forward_sigterm(launch, timer)]) + "\n")
    p = subprocess.Popen(["bash", str(script)])
    t0 = time.monotonic()
    while not ready.exists() and time.monotonic() - t0 < 60:
        time.sleep(0.05)
    if not timer:
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 75
    assert time.monotonic() - t0 < 30  # not the program's 60 s sleep


@pytest.mark.parametrize("site", ["polaris", "perlmutter"])
def test_site_recipes_never_install_the_mpich_wheel(site):
    text = (REPO / "jobs" / site / "setup_env.sh").read_text()
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)
    installs = [ln for ln in text.splitlines() if "pip install" in ln and not ln.lstrip().startswith("#")]
    assert installs and not any("mpich" in ln or "[hpc]" in ln or "[sim]" in ln for ln in installs)
    assert "--system-site-packages" in text and "MPICH_GPU_SUPPORT_ENABLED=0" in text
    assert "HOROVOD_GPU_OPERATIONS=NCCL" in text
    if site == "polaris":
        assert "module load conda/2025-09-25" in text
    else:
        assert 'MPICC="cc -shared" python -m pip install --force-reinstall --no-cache-dir --no-binary=mpi4py mpi4py' in text


def test_submit_dry_run_and_errors(capsys):
    assert main(["submit", "train", "--config", "jobs/perlmutter.toml", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH -J autophase-train" in out and "hpc/bin/slurm_ranks.sh autophase train" in out
    assert main(["submit", "trian", "--config", "jobs/polaris.toml", "--dry-run"]) == 2
    assert "no stage 'trian'" in capsys.readouterr().err
    assert main(["submit", "train", "--config", "jobs/local.toml", "--dry-run"]) == 2
    assert "no batch scheduler" in capsys.readouterr().err


def test_workflow_script_refused_when_driver_on_login_node():
    text = Path("jobs/polaris.toml").read_text().replace('driver = "job"', 'driver = "login"')
    cfg = config.loads(text, "jobs/polaris.toml")
    with pytest.raises(InputError, match="login node"):
        batch.workflow_script(cfg)
    assert "workflow.pbs" not in batch.all_scripts(cfg)


@pytest.mark.parametrize("local_rank,gpu", [(0, 3), (1, 2), (2, 1), (3, 0), (5, 2)])
def test_polaris_gpu_affinity(local_rank, gpu):
    env = {**os.environ, "PMI_LOCAL_RANK": str(local_rank)}
    out = subprocess.run([str(REPO / "hpc/bin/set_affinity_gpu_polaris.sh"), "bash", "-c",
                          "echo $CUDA_VISIBLE_DEVICES"], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(gpu)


def test_slurm_rank_variables():
    env = {**os.environ, "SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NTASKS": "8"}
    out = subprocess.run([str(REPO / "hpc/bin/slurm_ranks.sh"), "bash", "-c", "echo $RANK $LOCAL_RANK $WORLD_SIZE"],
                         env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["5", "1", "8"]
    env.pop("SLURM_PROCID")
    bad = subprocess.run([str(REPO / "hpc/bin/slurm_ranks.sh"), "true"], env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "not under srun" in bad.stderr


def test_workflow_command_imports_no_model():
    """The driver drives the CLI: neither it nor hpc/ may import torch, h5py or the model."""
    code = ("import sys\n"
            "from autophase.cli import main\n"
            "main(['workflow', '--config', 'jobs/polaris.toml', '--dry-run'])\n"
            "import autophase.hpc.workflow, autophase.hpc.apps, autophase.hpc.scaling, autophase.hpc.batch, autophase.hpc.manifest, autophase.hpc.sites.local\n"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'h5py', 'numba')\n"
            "       or m.startswith(('autophase.model', 'autophase.train'))]\n"
            "assert not bad, bad\n")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, timeout=60)
