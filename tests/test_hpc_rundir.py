"""Run directories (hpc.rundir) and scaling arithmetic/plans (hpc.scaling)."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

from autophase.errors import InputError  # noqa: E402
from autophase.hpc import config, scaling, stages  # noqa: E402
from autophase.hpc.rundir import RunDir  # noqa: E402


def test_prepare_writes_resolved_config(tmp_path):
    cfg = config.load(REPO / "jobs" / "local.toml")
    run = RunDir(tmp_path / "r")
    run.prepare(cfg)
    assert config.load(run.config) == cfg
    assert (run.root / "logs").is_dir() and run.parsl.is_dir()


def test_token_kept_while_params_and_outputs_stay(tmp_path):
    run = RunDir(tmp_path)
    a = run.stamp("train", {"epochs": 3})
    assert run.out("train").is_dir()
    assert run.stamp("train", {"epochs": 3}).token == a.token          # same run: reuse / resume
    b = run.stamp("train", {"epochs": 5})                              # new parameters
    assert b.token != a.token
    moved = run.root / "previous" / f"train-{a.token}"
    assert moved.is_dir() and run.out("train").is_dir()               # old outputs kept aside
    (run.out("train") / "x").write_text("1")
    import shutil
    shutil.rmtree(run.out("train"))                                    # outputs deleted by hand
    assert run.stamp("train", {"epochs": 5}).token != b.token
    stamp = json.loads(run.stamp_path("train").read_text())
    assert stamp["params"] == {"epochs": 5}


def test_shared_folder_stage_moves_nothing(tmp_path):
    run = RunDir(tmp_path)
    a = run.stamp("bench-phasing", {"argv": ["a"]}, exclusive=False)
    (run.out("bench-phasing") / "other.json").write_text("{}")
    b = run.stamp("bench-phasing", {"argv": ["b"]}, exclusive=False)
    assert a.token != b.token and (run.root / "bench" / "other.json").exists()
    assert not (run.root / "previous").exists()


def test_lock_refuses_a_live_driver_and_takes_a_stale_one(tmp_path):
    run = RunDir(tmp_path)
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        (tmp_path / ".lock").write_text(f"{sleeper.pid}\n")
        with pytest.raises(InputError, match=f"pid {sleeper.pid}"):
            run.lock()
    finally:
        sleeper.kill()
        sleeper.wait()
    run.lock()                                  # its process is gone: stale, taken over
    assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
    run.unlock()
    assert not (tmp_path / ".lock").exists()


# ------------------------------------------------------------------ scaling

def test_summarize_strong_and_weak():
    strong = scaling.summarize("strong", [(2, 16, 6.0), (1, 16, 10.0), (4, 16, 4.0)])
    p = {q["ranks"]: q for q in strong["points"]}
    assert strong["base_ranks"] == 1
    assert p[2]["speedup"] == pytest.approx(10 / 6) and p[2]["efficiency"] == pytest.approx(10 / 12)
    assert p[4]["speedup"] == pytest.approx(2.5) and p[4]["efficiency"] == pytest.approx(0.625)
    weak = scaling.summarize("weak", [(1, 16, 10.0), (2, 32, 12.5)])
    w = weak["points"][1]
    # thru(2) = 32/12.5 = 2.56, thru(1) = 1.6: weak efficiency 2.56 / (2 · 1.6) = 0.8
    assert w["throughput"] == pytest.approx(2.56) and w["weak_efficiency"] == pytest.approx(0.8)
    with pytest.raises(ValueError):
        scaling.summarize("strong", [(1, 16, 0.0)])


def test_summarize_relative_to_one_node_base():
    res = scaling.summarize("strong", [(4, 1, 100.0), (8, 1, 55.0), (16, 1, 30.0)], ranks_per_node=4)
    p = res["points"]
    assert [q["nodes"] for q in p] == [1, 2, 4]
    assert p[2]["relative_ranks"] == 4 and p[2]["efficiency"] == pytest.approx(100 / 30 / 4)


def test_local_scaling_plan():
    cfg = config.load(REPO / "jobs" / "local.toml")
    run = RunDir("runs/local")
    pts = scaling.plan(cfg, run)
    got = [(p.mode, p.ranks, p.work, p.stage.nodes, p.stage.ranks_per_node) for p in pts]
    assert got == [("strong", 1, 32, 1, 1), ("strong", 2, 32, 1, 2), ("weak", 1, 32, 1, 1), ("weak", 2, 64, 1, 2)]
    argv = pts[1].stage.argv
    assert argv[argv.index("--shard-size") + 1] == "16"         # strong: both ranks get a shard
    assert argv[argv.index("--size") + 1] == "49"
    assert argv[argv.index("--out") + 1].endswith("scaling/simulate-strong-r2")
    assert scaling.study_files(cfg, run) == ["runs/local/scaling/scaling-simulate-strong.json",
                                             "runs/local/scaling/scaling-simulate-weak.json"]


def test_train_scaling_plan_on_polaris():
    cfg = config.load(REPO / "jobs" / "polaris.toml")
    pts = scaling.plan(cfg, RunDir("runs/polaris"))
    strong = [p for p in pts if p.mode == "strong"]
    weak = [p for p in pts if p.mode == "weak"]
    # strong: global batch 16 × 4 kept, split over the ranks; weak: per-rank batch and steps kept
    assert [p.stage.argv[p.stage.argv.index("--batch-size") + 1] for p in strong] == ["16", "8", "4", "2"]
    assert [p.stage.nodes for p in weak] == [1, 2, 4, 8]
    assert all("--steps-per-epoch" in p.stage.argv and p.stage.resume_file is None for p in weak)
    assert [p.work for p in weak] == [2 * 10 * 16 * n for n in (4, 8, 16, 32)]


def test_scaling_record_is_written(tmp_path):
    cfg = config.load(REPO / "jobs" / "local.toml")
    path = scaling.write(cfg, RunDir(tmp_path), "strong", [(1, 16, 8.0), (2, 16, 5.0)])
    rec = json.loads(path.read_text())
    assert rec["suite"] == "scaling-simulate-strong" and rec["details"]["work_unit"] == "crystals"
    from autophase.results import read_result

    res = read_result(path)
    assert res.kind == "scaling"
    sp = next(s for s in res.series if s.name == "scaling.speedup")
    assert sp.kind == "strong-scaling" and sp.x == "ranks" and [p.x for p in sp.points] == [1, 2]
    assert sp.points[1].y == pytest.approx(1.6)
    assert res.metric("scaling.efficiency").value == pytest.approx(0.8)


def test_pipeline_commands_match_cli_interfaces():
    cfg = config.load(REPO / "jobs" / "local.toml")
    run = RunDir("/r")
    sim, train, ev, bench, rep = stages.pipeline(cfg, run, repo=Path("/repo"))
    assert sim.argv[:6] == ("autophase", "simulate", "--n-crystals", "64", "--out", "/r/data")
    assert sim.mpi and sim.ranks == 2 and sim.threads == 1
    assert train.argv[:4] == ("autophase", "train", "--data", "/r/data")
    assert "--engine" in train.argv and train.resume_file == "/r/train/checkpoint.pt"
    assert ev.argv[:2] == ("autophase", "evaluate") and "/r/train/checkpoint.pt" in ev.argv
    assert bench.argv == ("python", "/repo/benchmarks/bench_phasing.py", "--quick", "--out", "/r/bench/phasing.json")
    assert rep.argv[:3] == ("autophase", "report", "/r/eval/results.json") and rep.argv[-2:] == ("-o", "/r/report")


def test_simulation_outputs_survive_a_new_rank_count(tmp_path):
    """The dataset does not depend on the rank count; a trained model does."""
    text = (REPO / "jobs" / "local.toml").read_text()
    run = RunDir(tmp_path)
    tokens = {}
    for ranks in (2, 1):
        cfg = config.loads(text.replace("ranks = 2\nsize", f"ranks = {ranks}\nsize")
                           .replace("ranks_per_node = 2\nepochs", f"ranks_per_node = {ranks}\nepochs"), "t.toml")
        sim, train = stages.simulate(cfg, run), stages.train(cfg, run)
        tokens[ranks] = (run.stamp("simulate", sim.params()).token, run.stamp("train", train.params()).token)
    assert tokens[1][0] == tokens[2][0] and tokens[1][1] != tokens[2][1]
