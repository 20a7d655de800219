"""benchmarks/bench_reference_spread.py: phasing rerun from other seeds against a suite's own
answers, the fraction recounted, and a typed record."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_reference_spread as brs  # noqa: E402


def test_one_crystal_rephased_from_another_seed(model_path, tmp_path):
    from autophase.evaluate import write_results
    from autophase.external_suite import run_external

    suite = write_results(run_external(model_path, n=1, seed=1, refine=5, sources=["generator2"]),
                          tmp_path / "ext.json", suite="external")
    out = tmp_path / "reference-spread-cpu.json"
    assert brs.main(["--results", str(suite), "--seeds", "1", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    s = rec["details"]["sources"]["generator2"]
    row = s["rows"][0]
    ext = json.loads(suite.read_text())["details"]["sources"]["generator2"]["rows"][0]
    # the suite's own phasing run first, then a run from another seed: another χ²
    assert row["phasing_chi2"][0] == ext["phasing"]["chi2"] and row["refine_chi2"] == ext["refine"]["chi2"]
    assert len(row["phasing_chi2"]) == 2 and row["phasing_chi2"][1] != row["phasing_chi2"][0]
    within = [row["refine_chi2"] <= 1.2 * c for c in row["phasing_chi2"]]
    assert s["fraction_by_seed"] == [float(w) for w in within]
    assert s["phasing_chi2_max_over_min_median"] >= 1.0
    # the phase line against each seed: one crystal, so the ratio of its own phase errors
    assert row["phasing_phase_error_rad"][0] == ext["phasing"]["phase_error_rad"]
    assert s["phase_error_ratio_by_seed"] == pytest.approx(
        [row["refine_phase_error_rad"] / p for p in row["phasing_phase_error_rad"]])
    names = {(m["name"], m["params"].get("seed_index")) for m in rec["metrics"]}
    assert ("reference_spread.fraction_within", "1") in names and rec["kind"] == "evaluation"
    assert ("reference_spread.phase_error_ratio", "1") in names


def test_it_reads_only_external_suite_results(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text(json.dumps({"suite": "evaluate", "rows": []}))
    with pytest.raises(SystemExit, match="not an external-suite result"):
        brs.main(["--results", str(bad), "--out", str(tmp_path / "o.json")])
    with pytest.raises(SystemExit):
        brs.main(["--results", str(tmp_path / "missing.json")])
    with pytest.raises(SystemExit):
        brs.main(["--results", str(bad), "--seeds", "0"])
