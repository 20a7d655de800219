"""benchmarks/bench_refine_cost.py: one crystal through every setting, in-process and as whole
``autophase predict`` processes (the settings' options are real ones), and a typed record."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_refine_cost as brc  # noqa: E402


def test_one_crystal_through_every_setting_gives_a_typed_record(tmp_path, capsys):
    out = tmp_path / "refine-cost-cpu.json"
    assert brc.main(["--n", "1", "--repeats", "1", "--whole-repeats", "1", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    d = rec["details"]
    row = d["in_process"][0]
    assert set(row["settings"]) == set(brc.SETTINGS) == {"one", "two", "three", "four", "default", "every"}
    # generator 2 set 2 crystal 0: the outlines disagree, so the further starts are made
    assert not 1 / 1.5 < row["volume_ratio"] < 1.5
    assert row["settings"]["one"]["outline"] == "network"
    assert row["settings"]["two"]["start_phase"] == "network"
    llk = [row["settings"][k]["llk_free"] for k in ("four", "three", "two", "one")]
    assert llk == sorted(llk)  # each setting runs the one before's runs and more
    # the default: the same four runs (the outlines disagree), the lowest χ² of those within 10 % of the
    # lowest LLK_free kept; "four" kept that lowest LLK_free, so it was among them
    every, four = row["settings"]["default"], row["settings"]["four"]
    assert every["chi2"] <= four["chi2"] and every["llk_free"] <= 1.1 * four["llk_free"]
    assert row["settings"]["every"]["chi2"] == every["chi2"]  # the same runs here: the outlines disagree
    assert all(v["median_s"] > 0 for v in row["settings"].values())
    whole = d["whole"][0]["settings"]
    assert set(whole) == {"one", "two", "three", "four", "default", "every", "phase"}
    assert all(v["median_s"] > 1 for v in whole.values())  # a whole process imports and loads
    names = {(m["name"], m["params"]["setting"]) for m in rec["metrics"]}
    assert ("refine_cost.in_process_s", "four") in names and ("refine_cost.whole_s", "one") in names


def test_it_will_not_time_the_acceptance_set():
    with pytest.raises(SystemExit):
        brc.main(["--source", "generator2=1", "--n", "1"])
