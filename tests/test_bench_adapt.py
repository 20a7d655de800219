"""benchmarks/bench_adapt.py on a measured pattern file: phasing as the yardstick, every answer
scored as the external suite scores it, and the ratio issue 15's measured line asks for."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_adapt  # noqa: E402


@pytest.fixture(scope="module")
def held_back(tmp_path_factory):
    """A 64³ pattern file with a detector gap, as ``finetune --split-photons`` writes its held-back half."""
    from autophase.io.cxi import write_pattern_cxi
    from autophase.physics.synthetic import faceted_crystal, noisy_pattern

    counts, _ = noisy_pattern(faceted_crystal(32, seed=5), photons=1e6, seed=6)
    gap = np.zeros(counts.shape, bool)
    gap[:, 40:42, :] = True
    return write_pattern_cxi(tmp_path_factory.mktemp("p") / "holdout.cxi", counts, gap)


def test_a_pattern_file_is_judged_against_phasing(model_path, held_back, tmp_path):
    out = tmp_path / "adapt.json"
    assert bench_adapt.main(["--sources", "--pattern", str(held_back), "--steps", "1", "--phasing-starts", "2",
                             "--model", str(model_path), "--threads", "1", "--out", str(out)]) == 0
    rec = json.loads(out.read_text())
    src = rec["details"]["sources"][f"file:{held_back}"]
    row = src["rows"][0]
    assert row["name"] == "file/holdout.cxi" and len(row["phasing"]["runs"]) == 2
    assert [r["seed"] for r in row["phasing"]["runs"]] == [0, 1]
    assert row["phasing"]["chi2"] == pytest.approx(np.median([r["chi2"] for r in row["phasing"]["runs"]]))
    for K in ("0", "1"):
        nn50 = row["K"][K]["nn_50er"]
        assert np.isfinite(nn50["scored_chi2"]) and np.isfinite(nn50["scored_llk_free"])
        assert src["summary"][K]["median_ratio_nn_50er_over_phasing"] == pytest.approx(
            nn50["scored_chi2"] / row["phasing"]["chi2"])
        assert src["summary"][K]["fraction_nn_50er_le_phasing"] == float(nn50["scored_chi2"] <= row["phasing"]["chi2"])
    assert "phase_error_rad" not in row["K"]["0"]["nn"]  # no truth, no truth metrics


def test_bad_options_name_themselves(tmp_path, capsys):
    for argv, word in ((["--sources", "--pattern", str(tmp_path / "missing.cxi")], "--pattern"),
                       (["--sources"], "nothing to run"), (["--phasing-starts", "-1"], "--phasing-starts")):
        with pytest.raises(SystemExit) as e:
            bench_adapt.main([*argv, "--out", str(tmp_path / "x.json")])
        assert e.value.code == 2 and word in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
