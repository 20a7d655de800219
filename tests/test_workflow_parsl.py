"""The workflow driver on a real local Parsl graph: HTEX + an MPIExecutor running 2-rank
``mpiexec`` tasks, checkpoint reuse on a second run, a failing stage that names itself and its
log, and an interrupted run that leaves nothing running and resumes from its checkpoint.

These start real Parsl executors (≈10–20 s each run on two cores), hence ``slow``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

from autophase.hpc import config, workflow  # noqa: E402
from autophase.hpc.apps import StageFailed  # noqa: E402
from autophase.hpc.stages import Stage  # noqa: E402
from autophase.hpc.workflow import Step  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.mpi]

RANKS = ("python", "-c", "from mpi4py import MPI; c = MPI.COMM_WORLD; "
         "print(f'rank {c.Get_rank()} of {c.Get_size()}', flush=True)")


def _cfg():
    return config.load(REPO / "jobs" / "local.toml")


def test_local_graph_runs_mpi_ranks_and_reuses_checkpoints(tmp_path):
    run_dir = tmp_path / "run"
    marker = tmp_path / "hello.txt"
    plan = [Step(Stage("ranks", RANKS, mpi=True, ranks_per_node=2, threads=1), "mpi"),
            Step(Stage("hello", ("python", "-c", f"open({str(marker)!r}, 'a').write('hi\\n')"),
                       outputs=(str(marker),)), "htex", ("ranks",))]
    lines: list[str] = []
    t0 = time.perf_counter()
    res = workflow.run(_cfg(), run_dir, echo=lines.append, plan=plan)
    first = time.perf_counter() - t0
    assert not res["ranks"]["reused"] and not res["hello"]["reused"]
    log = (run_dir / "logs" / "ranks.log").read_text()
    assert "rank 0 of 2" in log and "rank 1 of 2" in log
    assert any(line.startswith("done: ranks") for line in lines)

    # Second run of the same graph: both come back from Parsl's checkpoint, nothing runs.
    lines.clear()
    failing = Step(Stage("broken", ("python", "-c", "import sys; print('bad input'); sys.exit(3)")), "htex")
    with pytest.raises(StageFailed) as e:
        workflow.run(_cfg(), run_dir, echo=lines.append, plan=plan + [failing])
    assert "reused: ranks" in lines and "reused: hello" in lines
    assert marker.read_text() == "hi\n"                  # the htex task did not run twice
    assert log == (run_dir / "logs" / "ranks.log").read_text()
    err = e.value
    assert err.stage == "broken" and err.returncode == 3 and "bad input" in err.tail
    assert str(err) == f"stage 'broken' failed (exit status 3); log: {run_dir / 'logs' / 'broken.log'}"
    assert (run_dir / "config.toml").exists() and not (run_dir / ".lock").exists()
    assert first < 60


COUNTER = textwrap.dedent('''
    """A checkpointing 2-rank job: 8 one-second steps, rank 0 saves the step after each."""
    import json, os, sys, time
    from mpi4py import MPI
    out, resume = sys.argv[1], "--resume" in sys.argv
    comm = MPI.COMM_WORLD
    ckpt = os.path.join(out, "ckpt.json")
    start = json.load(open(ckpt))["step"] if resume else 0
    if comm.rank == 0:
        print("start", start, "resumed" if resume else "fresh", flush=True)
    for step in range(start, 8):
        time.sleep(1.0)
        comm.Barrier()
        if comm.rank == 0:
            with open(ckpt + ".tmp", "w") as f:
                json.dump({"step": step + 1}, f)
            os.replace(ckpt + ".tmp", ckpt)
    if comm.rank == 0:
        open(os.path.join(out, "done"), "w").write("ok")
''')

DRIVER = textwrap.dedent('''
    import sys
    from autophase.hpc import config, workflow
    from autophase.hpc.stages import Stage
    from autophase.hpc.workflow import Step
    out = {out!r}
    stage = Stage("count", ("python", {script!r}, out, {token!r}), mpi=True, ranks_per_node=2, threads=1,
                  resume_file=out + "/ckpt.json", outputs=(out + "/done",))
    try:
        workflow.run(config.load({cfg!r}), {run!r}, plan=[Step(stage, "mpi")])
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
''')


def _alive(token: str) -> list[str]:
    """Command lines of the live processes whose arguments contain ``token``."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                args = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if token in args:
                found.append(f"{d.name} {args}")
    return found


def test_interrupted_run_stops_everything_and_resumes(tmp_path):
    token = f"count-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "counter.py"
    script.write_text(COUNTER)
    out = tmp_path / "run" / "count"          # the stage's own folder (RunDir.out("count"))
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER.format(repo=str(REPO), out=str(out), script=str(script), token=token,
                                    cfg=str(REPO / "jobs" / "local.toml"), run=str(tmp_path / "run")))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, str(driver)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    ckpt = out / "ckpt.json"
    try:
        deadline = time.time() + 90
        while time.time() < deadline and not (ckpt.exists() and json.loads(ckpt.read_text())["step"] >= 2):
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.3)
        assert ckpt.exists(), "the job never checkpointed"
        assert _alive(token), "the 2-rank job should be running now"
        proc.send_signal(signal.SIGTERM)
        first_out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, first_out
    assert "interrupted: count" in first_out
    for _ in range(20):                       # mpiexec and both ranks are gone
        if not _alive(token):
            break
        time.sleep(0.5)
    assert not _alive(token), _alive(token)
    stopped_at = json.loads(ckpt.read_text())["step"]
    assert 2 <= stopped_at < 8 and not (out / "done").exists()

    again = subprocess.run([sys.executable, str(driver)], capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "done: count" in again.stdout and "(resumed)" in again.stdout
    log = (tmp_path / "run" / "logs" / "count.log").read_text()
    assert "start 0 fresh" in log and "interrupted: the driver stopped" in log
    resumed_from = int(log.split("start ")[2].split()[0])
    assert resumed_from >= stopped_at and "resumed" in log.split("start ")[2]
    assert (out / "done").read_text() == "ok"


STOPPING = textwrap.dedent('''
    """A checkpointing 2-rank job of 6 steps that, like a trainer stopped by SIGTERM, exits 75
    after step --stop-at; rank 0 saves the step after each."""
    import json, os, sys
    from mpi4py import MPI
    out = sys.argv[1]
    stop = int(sys.argv[sys.argv.index("--stop-at") + 1]) if "--stop-at" in sys.argv else None
    comm = MPI.COMM_WORLD
    ckpt = os.path.join(out, "ckpt.json")
    start = json.load(open(ckpt))["step"] if "--resume" in sys.argv else 0
    if comm.rank == 0:
        print("start", start, "resumed" if "--resume" in sys.argv else "fresh", flush=True)
    for step in range(start, 6):
        comm.Barrier()
        if comm.rank == 0:
            os.makedirs(out, exist_ok=True)
            with open(ckpt + ".tmp", "w") as f:
                json.dump({"step": step + 1}, f)
            os.replace(ckpt + ".tmp", ckpt)
        if stop is not None and step + 1 == stop:
            sys.exit(75)
    if comm.rank == 0:
        open(os.path.join(out, "done"), "w").write("ok")
''')


def test_kept_checkpoint_resumes_in_a_new_run_directory(tmp_path):
    """``[train] keep``: a stopped stage's checkpoint is copied out of its run directory, and a
    new run directory (a new machine: its own run folder lost) resumes from that copy."""
    script = tmp_path / "stopping.py"
    script.write_text(STOPPING)
    keep = tmp_path / "kept" / "ckpt.json"

    def plan(run: Path, *extra: str) -> list[Step]:
        out = str(run / "count")
        return [Step(Stage("count", ("python", str(script), out, *extra), mpi=True, ranks_per_node=2,
                           threads=1, resume_file=out + "/ckpt.json", keep_file=str(keep),
                           outputs=(out + "/done",)), "mpi")]

    first = tmp_path / "first"
    with pytest.raises(StageFailed) as e:
        workflow.run(_cfg(), first, echo=lambda s: None, plan=plan(first, "--stop-at", "3"))
    assert e.value.returncode == 75
    assert json.loads(keep.read_text()) == {"step": 3}
    assert "kept in" in (first / "logs" / "count.log").read_text()

    second = tmp_path / "second"                          # nothing of the first run here
    lines: list[str] = []
    workflow.run(_cfg(), second, echo=lines.append, plan=plan(second))
    log = (second / "logs" / "count.log").read_text()
    assert "copied from the kept" in log and "start 3 resumed" in log, log
    assert any(line.startswith("done: count") and "(resumed)" in line for line in lines), lines
    assert json.loads(keep.read_text()) == {"step": 6}  # the finished state is kept too
    assert [p.name for p in keep.parent.iterdir()] == ["ckpt.json"]  # no temporary left beside it


def test_independent_stages_run_side_by_side(tmp_path):
    """Parsl schedules the graph: two htex stages that only wait for the same MPI stage run at
    the same time on two workers, and a stage waiting for both starts after both ended."""
    import dataclasses

    cfg = _cfg()
    cfg = dataclasses.replace(cfg, site=dataclasses.replace(cfg.site, max_workers=2))
    nap = ("python", "-c", "import time; time.sleep(3)")
    plan = [Step(Stage("ranks", RANKS, mpi=True, ranks_per_node=2, threads=1), "mpi"),
            Step(Stage("left", nap), "htex", ("ranks",)),
            Step(Stage("right", nap), "htex", after=("ranks",)),
            Step(Stage("join", ("true",)), "htex", ("left", "right"))]
    res = workflow.run(cfg, tmp_path / "run", echo=lambda s: None, plan=plan)
    left, right, join, ranks = res["left"], res["right"], res["join"], res["ranks"]
    assert left["started"] < right["ended"] and right["started"] < left["ended"], (left, right)
    overlap = min(left["ended"], right["ended"]) - max(left["started"], right["started"])
    assert overlap > 1.5, overlap                         # most of the 3 s, not a brush
    assert min(left["started"], right["started"]) >= ranks["ended"]
    assert join["started"] >= max(left["ended"], right["ended"])


def test_graph_edges_let_evaluation_and_benchmarks_overlap(tmp_path):
    """In the real graph, evaluation and the benchmarks wait for training, not for each other;
    the scaling points (timings) wait for both; the report for every stage."""
    from autophase.hpc.rundir import RunDir

    plan = {s.stage.name: s for s in workflow.steps(_cfg(), RunDir(tmp_path / "run"))}
    assert "train" in plan["evaluate"].waits_for and "train" in plan["bench-phasing"].waits_for
    assert "bench-phasing" not in plan["evaluate"].waits_for
    assert "evaluate" not in plan["bench-phasing"].waits_for
    assert plan["train"].waits_for == ("simulate", "manifest")
    for name, step in plan.items():
        if name.startswith("scaling-"):
            assert {"evaluate", "bench-phasing"} <= set(step.waits_for)
    assert set(plan["report"].waits_for) >= set(plan) - {"manifest", "report"}
