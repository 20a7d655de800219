"""benchmarks/bench_refinement.py: its truth-free rim measure, and that it will not be
pointed at issue 15's acceptance set (generator2 set 1) or take a malformed setting."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_refinement as br  # noqa: E402


def _ball(n=32, r=9.0):
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    return np.sqrt(z ** 2 + y ** 2 + x ** 2) < r, z


def test_surface_wraps_counts_a_rim_of_opposite_phase_and_not_a_smooth_ramp():
    s, z = _ball()
    smooth = s * np.exp(0.15j * z)
    assert br.surface_wraps(smooth, s) == 0.0
    from scipy import ndimage

    rim = s & ~ndimage.binary_erosion(s)
    flipped = np.where(rim & (z > 0), -smooth, smooth)  # the upper half of the surface wrapped by π
    f = br.surface_wraps(flipped, s)
    assert 0.35 < f < 0.65
    assert np.isnan(br.surface_wraps(smooth, np.zeros_like(s)))


def test_sets_refuse_the_acceptance_set_and_settings_are_validated():
    assert br.parse_sets("simulator=12,generator2=0,scan54=0") == [("simulator", 12), ("generator2", 0),
                                                                      ("scan54", 0)]
    with pytest.raises(ValueError, match="acceptance set"):
        br.parse_sets("generator2=1")
    with pytest.raises(ValueError, match="source=seed"):
        br.parse_sets("generator2")
    (key, how), = br.parse_settings("0.1/5/0.1/1")
    assert key == "0.1/5/0.1/1" and (how.start_threshold, how.shrink_wrap_every, how.sw_threshold) == (0.1, 5, 0.1)
    # a fifth field, the outline ratio, and a sixth, the start with no phase (older records: off)
    (_, five), (_, six) = br.parse_settings("0.1/5/0.1/1/1.5,0.1/5/0.1/1/1.5/1")
    assert (five.outline_ratio, five.zero_phase_start) == (1.5, False) and six.zero_phase_start is True
    assert how.outline_ratio == 0
    # a seventh, the phase-free start's second threshold (six fields: session 15's, once)
    (_, seven), = br.parse_settings("0.1/5/0.1/1/1.5/1/0.05")
    assert (six.zero_phase_sw_threshold, seven.zero_phase_sw_threshold) == (0.0, 0.05)
    with pytest.raises(ValueError, match="zero_phase_sw_threshold"):
        br.parse_settings("0.1/5/0.1/1/1.5/1/1.5")
    # an eighth, which run is kept (seven or fewer: LLK_free, as every record before session 17)
    (_, eight), (_, nine), (_, ten) = br.parse_settings(
        "0.1/5/0.1/1/1/1/0.05/chi2,0.1/5/0.1/1/1.5/1/0.05/chi2/0.05,0.1/5/0.1/1/1.5/1/0.05/chi2/0.05/0.1")
    assert (seven.keep_by, eight.keep_by, eight.outline_ratio, eight.outline_chi2) == ("llk_free", "chi2", 1.0, 0.0)
    from autophase.predict import Refinement

    # nine fields: session 17's default (the looser run as an equal); ten: predict's default
    assert nine == Refinement(loose_chi2_margin=0.0) and ten == Refinement()
    for bad in ("0.1/5/0.1", "0.1/5/0.1/1/1.5/2", "0.1/5/0.1/1/1.5/1/0/1/chi2", "0.1/5/0.1/1/1.5/2/0.05",
                "0.1/5/0.1/1/1/1/0.05/best", "0.1/5/0.1/1/1.5/1/0.05/chi2/0.05/0.1/1"):
        with pytest.raises(ValueError, match="start/every/threshold/sigma"):
            br.parse_settings(bad)
    with pytest.raises(ValueError, match="1.5/5/0.1/1"):
        br.parse_settings("1.5/5/0.1/1")
    with pytest.raises(ValueError, match="loose_chi2_margin"):
        br.parse_settings("0.1/5/0.1/1/1.5/1/0.05/chi2/0.05/1")


def test_candidate_rules_pick_by_llk_free_and_current_follows_predict():
    scored = {k: {"llk_free": v, "chi2": v} for k, v in
              dict(id=5.0, r1=4.0, r2=3.0, r3=6.0, avg4=3.5, avg8=2.0).items()}
    got = br.pick_candidates(scored, nn_chi2_id=0.02, average_above=0.008)
    assert got["current"] is scored["avg4"] and got["best-of-5"] is scored["r2"] and got["best-of-6"] is scored["avg8"]
    assert br.pick_candidates(scored, nn_chi2_id=0.005, average_above=0.008)["current"] is scored["id"]
    assert set(got) == set(br.CANDIDATE_RULES)


def test_candidate_answers_refine_every_candidate_from_the_real_network(model_path):
    from autophase.physics.forward import far_field
    from autophase.predict import Predictor

    s, z = _ball(64, 8.0)
    I = np.abs(far_field((s * np.exp(0.2j * z / 4)).astype(np.complex64))) ** 2
    mag = np.sqrt(I * 1e6 / I.sum()).astype(np.float32)
    got = br.candidate_answers(Predictor(str(model_path)), mag, None, refine=3)
    assert set(got) == {"id", "r1", "r2", "r3", "avg4", "avg8"}
    for c2, nn, r in got.values():
        assert np.isfinite(c2) and np.isfinite(r.chi2) and r.refine_iterations == 3 and r.object.shape == mag.shape
        assert nn.chi2 == c2 and nn.refine_iterations == 0  # the network's answer ER started from


def test_oracle_starts_mix_the_answer_and_the_truth_in_the_truths_frame():
    s, z = _ball()
    truth = s * (1.0 + 0.2 * (z > 0)) * np.exp(0.3j * z / 9.0)
    # the answer: the truth's twin, moved 2 voxels, with another global phase and scale, and a
    # wrong phase field (a ramp along x the truth does not have)
    x = np.mgrid[:32, :32, :32][2] - 16
    twin = np.conj(truth[::-1, ::-1, ::-1])
    answer = 3.0 * np.exp(1.1j) * np.roll(twin * np.exp(-0.4j * x[::-1, ::-1, ::-1] / 9.0), 2, axis=0)
    got = br.oracle_starts(answer, truth)
    assert set(got) == set(br.ORACLE_STARTS)
    inside = np.abs(truth) > 0.5
    # "truth" is the truth; "true-phase" carries it, whatever the answer's phase was
    assert np.allclose(got["truth"][0], np.abs(truth)) and np.allclose(got["truth"][1][inside], np.angle(truth)[inside])
    assert np.allclose(got["true-phase"][1], np.angle(truth))
    # the aligned answer's phase differs from the truth's by the x ramp alone (the shift, twin and
    # global phase undone), and "true-amplitude" keeps that phase on |truth|
    d = np.angle(np.exp(1j * (got["nn-aligned"][1] - np.angle(truth))))[inside]
    ramp = np.angle(np.exp(0.4j * x / 9.0))[inside]
    assert np.abs(np.angle(np.exp(1j * (d - ramp - np.median(d - ramp))))).max() < 0.05
    assert np.allclose(got["true-amplitude"][0], np.abs(truth))
    assert np.allclose(got["true-amplitude"][1], got["nn-aligned"][1])
    # "true-support": one flat value on the truth's outline, the answer's phase
    ts = got["true-support"][0]
    assert set(np.unique(ts)) == {0.0, float(ts.max())} and np.array_equal(ts > 0, np.abs(truth) > 0.1 * np.abs(truth).max())
    # "nn" is the answer untouched
    assert np.allclose(got["nn"][0], np.abs(answer)) and np.allclose(got["nn"][1], np.angle(answer))


def test_oracle_is_refused_without_a_truth_or_beside_candidates(capsys):
    with pytest.raises(SystemExit) as e:
        br.main(["--oracle", "--sets", "generator2=2,scan54=0"])
    assert e.value.code == 2 and "scan54 has none" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        br.main(["--oracle", "--candidates", "--sets", "generator2=2"])
    assert e.value.code == 2 and "give one" in capsys.readouterr().err


def test_keep_rules_keep_what_refine_prediction_with_that_setting_keeps(model_path):
    from autophase.physics.forward import far_field
    from autophase.predict import Predictor, Refinement, refine_prediction, refinement_runs

    # a ball with a phase the network has not seen, so the runs on the data's outline differ
    s, z = _ball(64, 8.0)
    I = np.abs(far_field((s * np.exp(1.5j * np.sin(z / 3))).astype(np.complex64))) ** 2
    mag = np.sqrt(I * 1e6 / I.sum()).astype(np.float32)
    p = Predictor(str(model_path)).predict(mag[None])[0]
    made = refinement_runs(p, mag, None, 10, Refinement(outline_ratio=1.0))
    assert len(made.results) == 4 and made.runs[0] == ("network", "network", 0.1) and np.isfinite(made.volume_ratio)
    got = br.keep_rule_answers(made, mag, None, None)
    assert set(got) == {k for k, *_ in br.KEEP_RULES} | set(br.OUTLINE_CHI2_RULES) | set(br.LOOSE_RULES) | set(
        br.ABLATIONS)
    assert len(got) == 21 and made.network_chi2 == p.chi2
    r = refine_prediction(p, mag, None, 10)  # predict's default
    assert (got["default"]["outline"], got["default"]["start_phase"]) == (r.outline, r.start_phase)
    # the ablations choose among the runs of one start phase: the network's two, the phase-free two
    assert got["network-phase-only@1"]["start_phase"] == "network" and got["network-phase-only@1"]["runs_made"] == 2
    assert got["no-network-phase@1"]["start_phase"] == "zero" and got["no-network-phase@1"]["runs_made"] == 2
    for rule, keep, ratio, margin in br.KEEP_RULES:
        r = refine_prediction(p, mag, None, 10, Refinement(outline_ratio=ratio, keep_by=keep, llk_free_margin=margin,
                                                           outline_chi2=0.0, loose_chi2_margin=0.0))
        assert (got[rule]["outline"], got[rule]["start_phase"], got[rule]["start_sw_threshold"]) == (
            r.outline, r.start_phase, r.start_sw_threshold), rule
        assert got[rule]["runs_made"] in (1, 4)
    for rule, m in br.LOOSE_RULES.items():
        r = refine_prediction(p, mag, None, 10, Refinement() if m is None else Refinement(loose_chi2_margin=m))
        assert (got[rule]["outline"], got[rule]["start_phase"], got[rule]["start_sw_threshold"]) == (
            r.outline, r.start_phase, r.start_sw_threshold), rule
    with pytest.raises(SystemExit):
        br.main(["--keep-rules", "--oracle", "--sets", "generator2=2"])
