"""``autophase evaluate``: held-out selection, the four answers scored alike, the truth read only here."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from autophase.cli import main
from autophase.evaluate import held_out_indices, phasing_schedule, score, sphere_baseline
from autophase.model import AutoPhaseNet, NetworkConfig, save_checkpoint
from autophase.phasing import total_iterations
from autophase.physics.synthetic import faceted_crystal, noisy_pattern
from autophase.train.data import SyntheticCrystals, describe


def _model(path, data_desc=None, val=None):
    torch.manual_seed(0)
    cfg = NetworkConfig(width=2, depth=2)
    net = AutoPhaseNet(cfg)
    with torch.no_grad():
        net.amplitude_decoder[-1].weight.mul_(20)
    st = {"network": cfg.to_dict(), "model": net.state_dict(), "history": [{"epoch": 1, "val_chi2": 0.5}]}
    if data_desc:
        st.update(data=data_desc, val_indices=val)
    return save_checkpoint(path, st)


def test_phasing_schedule_counts():
    assert phasing_schedule(600) == "3*(20*ER+160*HIO+20*ER)"
    for n in (600, 250, 50, 1):
        assert total_iterations(phasing_schedule(n)) == n
    with pytest.raises(ValueError):
        phasing_schedule(0)


def test_sphere_baseline_has_the_crystal_volume_and_no_phase():
    obj = faceted_crystal(32, seed=3)
    from autophase.physics.forward import pad_object

    t = pad_object(obj)
    s = sphere_baseline(t)
    vol = (np.abs(t) > 0.1 * np.abs(t).max()).sum()
    assert abs(float(np.abs(s).sum()) / vol - 1) < 0.1
    assert not np.angle(s).any()


def test_truth_scores_perfectly_and_sphere_does_not():
    counts, rho = noisy_pattern(faceted_crystal(32, seed=4), photons=1e8, seed=4)
    mag = np.sqrt(counts)
    s_truth = score(rho, mag, rho)
    assert s_truth["complex_error"] < 1e-6 and s_truth["phase_error_rad"] < 1e-3 and s_truth["ssim_box"] > 0.999
    assert s_truth["chi2"] < 0.01
    s_sph = score(sphere_baseline(rho), mag, rho)
    assert s_sph["complex_error"] > 10 * s_truth["complex_error"] and s_sph["chi2"] > 10 * s_truth["chi2"]


def test_held_out_uses_the_validation_split_of_the_training_data():
    ds = SyntheticCrystals(10, seed=1)
    ck = {"data": describe(ds), "val_indices": [7, 2]}
    idx, where = held_out_indices(10, ck, describe(ds), 5)
    assert idx == [7, 2] and "validation" in where
    idx, where = held_out_indices(10, ck, describe(SyntheticCrystals(10, seed=2)), 3)
    assert idx == [0, 1, 2] and "not trained" in where


@pytest.mark.slow
def test_evaluate_on_simulated_shards(tmp_path, capsys):
    run = tmp_path / "sim"
    assert main(["simulate", "--n-crystals", "4", "--out", str(run), "--seed", "9", "--no-progress"]) == 0
    from autophase.data.dataset import MagnitudeDataset

    ck = _model(tmp_path / "m.pt", describe(MagnitudeDataset(run)), [3, 1])
    out = tmp_path / "res.json"
    assert main(["evaluate", "--data", str(run), "--model", str(ck), "--out", str(out), "--n", "5",
                 "--refine", "5", "--phasing", "30", "--compile"]) == 0
    from autophase.results import read_result

    typed = read_result(out)  # a typed record; the evaluation's own dict is its details
    r = json.loads(out.read_text())["details"]
    assert typed.suite == "evaluate" and typed.kind == "evaluation"
    chi2 = next(d for d in typed.distributions if d.name == "eval.chi2" and d.params == {"method": "nn+er"})
    assert chi2.items == ["3", "1"] and chi2.values == [c["refine"]["chi2"] for c in r["crystals"]]
    assert typed.metric("eval.chi2", method="phasing").value == r["summary"]["phasing"]["chi2"]["median"]
    assert r["n"] == 2 and [c["index"] for c in r["crystals"]] == [3, 1]  # held out only
    assert r["phasing_schedule"] == "30*ER" and r["refine_iterations"] == 5
    assert r["symmetries"] == 4 and r["compiled"] is True  # 4 symmetric copies (the default), compiled on request
    for c in r["crystals"]:
        for m in ("nn", "refine", "phasing", "sphere"):
            assert {"chi2", "llk_free", "complex_error", "phase_error_rad", "ssim_box"} <= set(c[m]), m
        assert c["refine"]["chi2"] < c["nn"]["chi2"]  # ER from the prediction lowers χ²
        assert c["refine"]["seconds"] > c["nn"]["seconds"] > 0
    acc = r["summary"]["acceptance"]
    for k in ("nn_beats_sphere_phase_error", "fraction_refine_chi2_within_1.2x_phasing",
              "median_phase_error_ratio_refine_over_phasing", "speedup_phasing_over_refine", "passes_issue4"):
        assert k in acc
    assert r["training_last_epoch"]["val_chi2"] == 0.5
    text = capsys.readouterr().out
    assert "sphere" in text and "phase error" in text
    assert not list(tmp_path.glob("*.tmp"))


def test_evaluate_rejects_bad_arguments(tmp_path):
    ck = _model(tmp_path / "m.pt")
    assert main(["evaluate", "--data", "synthetic:3", "--model", str(ck), "--out", str(tmp_path / "r.txt")]) == 2
    assert main(["evaluate", "--data", "synthetic:3", "--model", str(ck), "--out", str(tmp_path / "r.json"),
                 "--n", "0"]) == 2
    assert main(["evaluate", "--data", str(tmp_path / "nothing"), "--model", str(ck),
                 "--out", str(tmp_path / "r.json")]) == 2


def _without_timings(x):
    if isinstance(x, dict):
        return {k: _without_timings(v) for k, v in x.items()
                if k not in ("seconds", "compiled") and not k.startswith("speedup")}
    if isinstance(x, list):
        return [_without_timings(v) for v in x]
    return x


@pytest.mark.slow
def test_evaluate_killed_midway_resumes_to_the_same_figures(tmp_path):
    """SIGKILL after 2 of 5 crystals: no results JSON, 2 durable rows; the same command again
    scores only the other 3, and every figure (timings aside) equals an uninterrupted run's."""
    import os
    import subprocess
    import sys

    from autophase.evaluate import BLOCK, KILL_ENV

    ck = _model(tmp_path / "m.pt")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(out, **extra):
        cmd = [sys.executable, "-m", "autophase.cli", "evaluate", "--data", "synthetic:5:3", "--model", str(ck),
               "--out", str(out), "--n", "5", "--refine", "3", "--phasing", "10", "--no-compile"]
        return subprocess.run(cmd, env={**env, **extra}, capture_output=True, text=True, timeout=300)

    assert BLOCK >= 5  # one network call for all five, interrupted or not
    straight = run(tmp_path / "a.json")
    assert straight.returncode == 0, straight.stderr[-2000:]
    cut = run(tmp_path / "b.json", **{KILL_ENV: "2"})
    assert cut.returncode == -9  # SIGKILL: nothing could be tidied up
    assert not (tmp_path / "b.json").exists()
    lines = (tmp_path / "b.rows.jsonl").read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[0])["settings"]["indices"] == [0, 1, 2, 3, 4]
    with open(tmp_path / "b.rows.jsonl", "a") as f:  # a row torn by the kill is dropped, not fatal
        f.write('{"index": 2, "nn": {"chi2"')
    again = run(tmp_path / "b.json")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "continuing from the rows" in again.stderr
    assert "evaluate: 1/5" not in again.stderr and "evaluate: 3/5" in again.stderr  # only 3 scored
    assert not (tmp_path / "b.rows.jsonl").exists()
    a, b = (json.loads((tmp_path / f"{x}.json").read_text())["details"] for x in "ab")
    assert [c["index"] for c in b["crystals"]] == [0, 1, 2, 3, 4]
    assert _without_timings(a) == _without_timings(b)


def test_rows_of_other_settings_are_refused(tmp_path):
    from autophase.errors import InputError
    from autophase.evaluate import RowJournal

    j = RowJournal(tmp_path / "r.rows.jsonl", {"refine": 50, "indices": [1, 2]})
    j.append({"index": 2, "nn": {"chi2": 0.5}})
    assert RowJournal(tmp_path / "r.rows.jsonl", {"refine": 50, "indices": [1, 2]}).rows == {2: {"index": 2, "nn": {"chi2": 0.5}}}
    with pytest.raises(InputError, match=r"other settings \(refine\)"):
        RowJournal(tmp_path / "r.rows.jsonl", {"refine": 20, "indices": [1, 2]})
