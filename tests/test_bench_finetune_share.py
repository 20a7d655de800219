"""benchmarks/bench_finetune_share.py: a fine-tuning run on a generator-2 crystal's photon
halves, collected with its truth scores into a typed record."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_finetune_share as bfs  # noqa: E402


def test_a_generator2_run_is_collected_with_its_truth(model_path, tmp_path):
    from autophase.beamline.finetune import FinetuneConfig, finetune, split_photons
    from autophase.io.cxi import write_pattern_cxi
    from autophase.testsets.generator import generate

    c = generate(5, photons=1e7)
    ga, gb = split_photons(c.magnitude.astype(np.float64) ** 2, seed=0)
    a = write_pattern_cxi(tmp_path / "g2s0c5-A.cxi", ga, metadata={"source": "generator2/s0/5", "half": "A"})
    b = write_pattern_cxi(tmp_path / "g2s0c5-B.cxi", gb, metadata={"source": "generator2/s0/5", "half": "B"})
    run = tmp_path / "g2s0c5-f05"
    cfg = FinetuneConfig(n_augment=16, epochs=1, refine=5, phasing_starts=0, as_measured=0.5)
    finetune([str(a)], run, holdout=str(b), model=str(model_path), config=cfg, log=lambda s: None, progress=False)
    from autophase.model.checkpoint import read_checkpoint

    # half the copies rotated: the predictor's default average stays (only a network fitted
    # in the measured frame alone asks for its single pass)
    assert "predict_symmetries" not in read_checkpoint(run / "train" / "best.pt")
    cmds = bfs.commands(tmp_path, ["0", "0.5"])
    assert len(cmds) == 2 and cmds[1].endswith("--as-measured 0.5") and f"-o {run}" in cmds[1]

    out = tmp_path / "finetune-share.json"
    assert bfs.main(["--runs", str(run), "--phasing-seeds", "1", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    row = rec["details"]["rows"][0]
    assert row["share"] == 0.5 and row["source"] == "generator2/s0/5"
    det = json.loads((run / "results.json").read_text())["details"]
    assert row["ratio"] == {} and row["nn_chi2"]["after"] == det["after"]["nn"]["chi2"]
    # the answers are made again from the two models: the same network answer the run scored
    assert row["truth"]["after_nn"]["chi2"] == pytest.approx(det["after"]["nn"]["chi2"], rel=1e-3)
    for answer in ("before_refine", "after_refine", "phasing_median"):
        assert 0 <= row["truth"][answer]["phase_error_rad"] < np.pi
    names = {(m["name"], m["params"].get("process") or m["params"].get("answer")) for m in rec["metrics"]}
    assert ("finetune_share.nn_chi2", "after") in names
    assert ("finetune_share.phase_error", "after_refine") in names and rec["kind"] == "training"


def test_an_unfinished_run_is_refused(tmp_path):
    (tmp_path / "r").mkdir()
    with pytest.raises(SystemExit):
        bfs.main(["--runs", str(tmp_path / "r")])
    with pytest.raises(SystemExit):
        bfs.main(["--commands", str(tmp_path)])
    with pytest.raises(SystemExit):
        bfs.main(["--runs", str(tmp_path / "r"), "--phasing-seeds", "0"])
    with pytest.raises(SystemExit):
        bfs.main(["--prep", str(tmp_path / "p"), "--s54-splits", "0"])
    assert not (tmp_path / "p").exists()
