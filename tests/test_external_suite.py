"""autophase evaluate --suite external: the network on the independent generator and measured scans."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from autophase.errors import InputError
from autophase.external_suite import external_sources, run_external, score_no_truth, summarise


def test_sources_are_the_generator_and_the_measured_scans():
    sim, measured = external_sources()
    assert sim == ["generator2"] and "scan54" in measured and "simulator" not in sim + measured


def _row(nn, refine, phasing, sphere, truth=True):
    def m(c, pe):
        d = {"chi2": c, "llk_free": 10 * c, "seconds": 1.0}
        if truth:
            d.update(phase_error_rad=pe, complex_error=pe / 2, ssim_box=0.5)
        return d
    return {"nn": m(*nn), "refine": m(*refine), "phasing": m(*phasing), "sphere": {k: v for k, v in m(*sphere).items()
                                                                                   if k != "seconds"}}


def test_summary_figures():
    rows = [_row((0.1, 0.6), (0.011, 0.3), (0.01, 0.2), (0.5, 0.9)),   # refine 1.1× phasing: within 1.2×
            _row((0.2, 0.8), (0.02, 0.5), (0.01, 0.3), (0.5, 1.0)),    # 2×: not
            _row((0.1, 0.4), (0.005, 0.2), (0.01, 0.25), (0.4, 0.8))]  # better than phasing
    s = summarise(rows)
    a = s["acceptance"]
    assert a["n"] == 3
    assert a["fraction_refine_chi2_within_1.2x_phasing"] == pytest.approx(2 / 3)
    assert a["fraction_refine_chi2_le_phasing"] == pytest.approx(1 / 3)
    assert a["median_phase_error_ratio_nn_over_phasing"] == pytest.approx(0.6 / 0.25)
    assert a["median_phase_error_ratio_refine_over_phasing"] == pytest.approx(0.3 / 0.25)
    assert a["issue15_nn_phase_le_2x"] is False and a["issue15_refine_phase_le_1.2x"] is True
    assert a["issue15_refine_chi2_within_1.2x_on_85pct"] is False and a["nn_beats_sphere_phase_error"]
    # a measured scan: no truth, only χ² and LLK_free figures
    s = summarise([_row((0.1, 0), (0.008, 0), (0.01, 0), (0.5, 0), truth=False)])
    assert "phase_error_rad" not in s["nn"] and s["acceptance"]["fraction_refine_chi2_le_phasing"] == 1.0


def test_score_without_truth_leaves_unmeasured_voxels_out():
    from autophase.physics.forward import magnitude, pad_object
    from autophase.physics.synthetic import faceted_crystal

    obj = pad_object(faceted_crystal(32, seed=1))
    mag = np.abs(magnitude(obj)).astype(np.float32) * 3
    meas = np.ones(mag.shape, bool)
    assert score_no_truth(obj, mag, meas)["chi2"] < 1e-8
    bad = mag.copy()
    bad[:, 40:42] = 1e3  # garbage where the detector did not measure
    meas[:, 40:42] = False
    assert score_no_truth(obj, bad, meas)["chi2"] < 1e-8
    assert score_no_truth(obj, bad, None)["chi2"] > 0.1


def test_run_on_one_generator_crystal(model_path, tmp_path):
    r = run_external(model_path, n=1, seed=1, refine=5, sources=["generator2"])
    d = r["sources"]["generator2"]
    row = d["rows"][0]
    assert d["simulated"] and row["name"] == "generator2/s1/0"
    for m in ("nn", "refine", "phasing", "sphere"):
        assert np.isfinite(row[m]["chi2"]) and "phase_error_rad" in row[m]
    assert row["refine"]["chi2"] < row["nn"]["chi2"]  # 5 ER from an untrained network's answer improve the fit
    assert d["summary"]["acceptance"]["n"] == 1
    from autophase.evaluate import write_results
    from autophase.results import read_result

    typed = read_result(write_results(r, tmp_path / "ext.json", suite="external"))
    assert typed.suite == "external" and typed.kind == "evaluation"
    pe = next(x for x in typed.distributions if x.name == "eval.phase_error"
              and x.params == {"method": "nn", "source": "generator2"})
    assert pe.items == ["generator2/s1/0"] and pe.values == [row["nn"]["phase_error_rad"]]
    ratio = typed.metric("eval.phase_error_ratio_nn_over_phasing", source="generator2")
    assert ratio.target is not None and ratio.target.threshold == 2.0
    assert row["nn"]["symmetries"] == 4 and r["settings"]["symmetries"] == 4  # χ² > 0.008: averaged
    # the network and refinement options are honoured and recorded (they were once ignored)
    from autophase.predict import Refinement

    r1 = run_external(model_path, n=1, seed=1, refine=5, sources=["generator2"], symmetries=1,
                      refinement=Refinement(shrink_wrap_every=0))
    assert r1["settings"]["symmetries"] == 1 and r1["settings"]["refinement"]["shrink_wrap_every"] == 0
    assert r1["sources"]["generator2"]["rows"][0]["nn"]["symmetries"] == 1
    assert r1["settings"]["backend"] == "torch"
    # the network in ONNX Runtime, as `predict` runs it on a CPU: the same network to rounding
    ro = run_external(model_path, n=1, seed=1, refine=5, sources=["generator2"], symmetries=1,
                      refinement=Refinement(shrink_wrap_every=0), backend="onnx")
    assert ro["settings"]["backend"] == "onnx"
    assert ro["sources"]["generator2"]["rows"][0]["nn"]["chi2"] == pytest.approx(
        r1["sources"]["generator2"]["rows"][0]["nn"]["chi2"], rel=1e-3)
    with pytest.raises(InputError, match="--sources"):
        run_external(model_path, n=1, sources=["simulator"])
    with pytest.raises(InputError, match="--n"):
        run_external(model_path, n=0)


def test_cli_rejects_data_with_the_external_suite(tmp_path):
    out = tmp_path / "x.json"
    r = subprocess.run([sys.executable, "-m", "autophase.cli", "evaluate", "--suite", "external", "--data", "runs/x",
                        "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--data" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()
    r = subprocess.run([sys.executable, "-m", "autophase.cli", "evaluate", "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--data" in r.stderr and not out.exists()


def test_cli_sources_and_phasing_starts_are_checked_in_one_line(tmp_path):
    out = tmp_path / "x.json"
    for extra, word in ((["--sources", "nosuch"], "--sources"), (["--sources", ","], "--sources"),
                        (["--phasing-starts", "0"], "--phasing-starts"), (["--phasing", "100"], "--phasing"),
                        (["--compile"], "--compile")):
        r = subprocess.run([sys.executable, "-m", "autophase.cli", "evaluate", "--suite", "external", "--n", "1",
                            "--out", str(out), *extra], capture_output=True, text=True, timeout=120)
        assert r.returncode != 0 and word in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not out.exists()


def test_cli_external_only_options_are_refused_with_the_heldout_suite(tmp_path):
    out = tmp_path / "x.json"
    for extra, word in ((["--sources", "generator2"], "--sources"), (["--phasing-starts", "5"], "--phasing-starts"),
                        (["--backend", "onnx"], "--backend")):
        r = subprocess.run([sys.executable, "-m", "autophase.cli", "evaluate", "--data", "synthetic:2:1", "--n", "1",
                            "--refine", "1", "--phasing", "0", "--out", str(out), *extra],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode != 0 and word in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not out.exists()
