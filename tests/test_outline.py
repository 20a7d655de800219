"""autophase.outline and the refinement's second outline (Refinement.outline_ratio): where the
network gets a crystal's shape wrong, ER from the data's autocorrelation outline recovers it."""
from __future__ import annotations

import numpy as np
import pytest

from autophase.outline import autocorrelation_start, placed_on
from autophase.physics.forward import far_field
from autophase.predict import Prediction, Refinement, finish_prediction, refine_prediction


def _crystal(n=48, r=(9.0, 7.0, 6.0), seed=0):
    """A noisy pattern of an ellipsoid with a smooth phase → (magnitude, truth, grid z, y, x)."""
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    inside = (z / r[0]) ** 2 + (y / r[1]) ** 2 + (x / r[2]) ** 2 < 1
    truth = (inside * np.exp(0.8j * np.sin(z / 5.0) + 0.4j * y / 7.0)).astype(np.complex64)
    rng = np.random.default_rng(seed)
    intensity = np.abs(far_field(truth)) ** 2
    counts = rng.poisson(intensity * 1e7 / intensity.sum())
    return np.sqrt(counts).astype(np.float32), truth, (z, y, x)


def test_placed_on_puts_the_amplitude_deepest_inside_even_when_it_is_small():
    n = 32
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    outline = z ** 2 + y ** 2 + x ** 2 < 8 ** 2                       # centred on voxel 16
    blob = ((z - 5) ** 2 + (y + 3) ** 2 + x ** 2 < 2 ** 2).astype(np.float32)  # small, off-centre
    got = placed_on(outline, blob)
    assert got.sum() == outline.sum()
    cz, cy, cx = (np.argwhere(got).mean(axis=0) - n // 2).round(6)
    assert (cz, cy, cx) == (5, -3, 0)  # the outline's centre on the blob's, not just any shift covering it
    with pytest.raises(ValueError, match="one shape"):
        placed_on(outline, blob[:-1])


def test_the_autocorrelation_outline_covers_a_crystal_the_network_half_missed():
    mag, truth, (z, y, x) = _crystal()
    true_outline = np.abs(truth) > 0
    half = np.where(z > 0, truth, 0)  # a network answer that left out half of the crystal
    start = autocorrelation_start(half * 30.0, np.abs(half) > 0, mag)
    # centred on the half it was given, the outline still covers far more of the crystal than
    # the network did (half)
    assert (start.support & true_outline).sum() >= 0.75 * true_outline.sum()
    assert 1.5 < start.ratio < 5            # the two outlines disagree by more than 1.5×
    assert start.init.dtype == np.complex64 and not start.init[~start.support].any()
    # the network's phase where it had one, one flat amplitude, in the data's units
    both = start.support & (np.abs(half) > 0)
    assert np.allclose(np.angle(start.init[both] * np.conj(half[both])), 0, atol=1e-5)
    assert np.ptp(np.abs(start.init[start.support])) < 1e-3 * np.abs(start.init).max()
    F = np.abs(far_field(start.init))
    assert 0.3 < (F * mag).sum() / (F * F).sum() < 3  # the least-squares scale is ≈ 1
    # unmeasured voxels are left out, NaN magnitudes too: the outline does not blow up
    measured = np.ones(mag.shape, bool)
    measured[:, 23:25, :] = False
    bad = mag.copy()
    bad[0, 0, :4] = np.nan
    gapped = autocorrelation_start(half * 30.0, np.abs(half) > 0, bad, measured)
    assert (gapped.support & true_outline).sum() >= 0.75 * true_outline.sum() and np.isfinite(gapped.init).all()


def _network_like(obj, mag, measured=None):
    o, s, c2, lf = finish_prediction(np.abs(obj), np.angle(obj), mag, measured)
    return Prediction(o, s, c2, lf)


def test_refinement_keeps_the_autocorrelation_outline_only_where_it_fits_better():
    mag, truth, (z, y, x) = _crystal()
    half = _network_like(np.where(z > 0, truth, 0), mag)
    alone = refine_prediction(half, mag, None, 30, Refinement(outline_ratio=0))
    both = refine_prediction(half, mag, None, 30, Refinement(outline_ratio=1.5, keep_by="llk_free"))  # session 16's
    assert alone.outline == "network" and both.outline == "autocorrelation"
    assert both.llk_free < alone.llk_free and both.chi2 < 0.5 * alone.chi2
    assert str(both.to_npz_dict()["refine_outline"]) == "autocorrelation"
    assert float(both.to_npz_dict()["refine_outline_ratio"]) == 1.5
    # a right answer: the outlines agree within 1.5×, the second run is not made (same answer
    # as the network's outline alone, bit for bit); with R = 1 it is, and loses on LLK_free
    right = _network_like(truth, mag)
    a = refine_prediction(right, mag, None, 30, Refinement(outline_ratio=1.5))
    b = refine_prediction(right, mag, None, 30, Refinement(outline_ratio=0))
    assert a.outline == "network" and np.array_equal(a.object, b.object)
    assert refine_prediction(right, mag, None, 30, Refinement(outline_ratio=1.0, keep_by="llk_free")).outline == "network"


def test_outline_ratio_is_checked():
    from autophase.phasing import ParamError

    for ok in (0, 0.0, 1, 1.5, 4):
        Refinement(outline_ratio=ok).validate()
    for bad in (0.5, -1.0, float("nan"), float("inf"), True, "2"):
        with pytest.raises(ParamError) as e:
            Refinement(outline_ratio=bad).validate()
        assert e.value.field == "outline_ratio"
    r = Refinement(outline_ratio=2.0)
    assert Refinement().outline_ratio == 1.5 and not Refinement(outline_ratio=0).wants_second_outline(10.0)
    assert r.wants_second_outline(2.5) and r.wants_second_outline(0.3) and not r.wants_second_outline(1.9)
    assert r.wants_second_outline(float("inf")) and Refinement(outline_ratio=1).wants_second_outline(1.0)


def test_evaluate_and_external_summaries_count_the_outlines_kept():
    from autophase import evaluate, external_suite

    rows = [{"refine": {"chi2": 1.0, "outline": o}} for o in ("autocorrelation", "network", "network", "network")]
    assert evaluate.summarise(rows)["refine"]["autocorrelation_outline_fraction"] == 0.25
    assert external_suite.summarise(rows)["refine"]["autocorrelation_outline_fraction"] == 0.25
    # records written before the option existed have no outline: none kept
    assert evaluate.autocorrelation_fraction([{"refine": {"chi2": 1.0}}]) == 0.0


def test_the_starts_on_the_data_outline_share_one_placement_and_each_has_its_own_scale():
    from autophase.outline import START_PHASES, autocorrelation_starts

    mag, truth, (z, y, x) = _crystal()
    half = np.where(z > 0, truth, 0) * 30.0
    net, zero = autocorrelation_starts(half, np.abs(half) > 0, mag)
    assert (net.phase, zero.phase) == START_PHASES and np.array_equal(net.support, zero.support)
    assert net.ratio == zero.ratio
    # the network-phase start is autocorrelation_start's, bit for bit
    assert np.array_equal(net.init, autocorrelation_start(half, np.abs(half) > 0, mag).init)
    # no phase: real, one positive amplitude on the outline, nothing outside
    assert zero.init.dtype == np.complex64 and not zero.init.imag.any() and not zero.init[~zero.support].any()
    assert np.ptp(zero.init.real[zero.support]) == 0 and zero.init.real[zero.support].min() > 0
    # each start at its own least-squares scale: moving either by 2 % fits the data worse
    for st in (net, zero):
        F = np.abs(far_field(st.init)).astype(np.float64)
        misfit = [float(((k * F - mag) ** 2).sum()) for k in (0.98, 1.0, 1.02)]
        assert misfit[1] < misfit[0] and misfit[1] < misfit[2]
    assert not np.isclose(np.abs(net.init).max(), np.abs(zero.init).max(), rtol=1e-3)  # not one scale for both
    for bad in ((), ("network", "random"), ("flat",)):
        with pytest.raises(ValueError, match="phases"):
            autocorrelation_starts(half, np.abs(half) > 0, mag, phases=bad)


def test_the_start_with_no_phase_wins_where_the_network_phase_is_wrong():
    n = 48
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    truth = ((z / 9.0) ** 2 + (y / 7.0) ** 2 + (x / 6.0) ** 2 < 1).astype(np.complex64)  # no strain
    intensity = np.abs(far_field(truth)) ** 2
    mag = np.sqrt(np.random.default_rng(0).poisson(intensity * 1e7 / intensity.sum())).astype(np.float32)
    # half the crystal, with a double vortex the crystal does not have
    wrong = np.where(z > 0, np.exp(2j * np.arctan2(y, x)), 0).astype(np.complex64)
    p = _network_like(wrong, mag)
    without = refine_prediction(p, mag, None, 30, Refinement(zero_phase_start=False, keep_by="llk_free"))
    with_ = refine_prediction(p, mag, None, 30, Refinement(keep_by="llk_free"))  # the start with no phase: on
    assert (with_.outline, with_.start_phase) == ("autocorrelation", "zero")
    assert without.start_phase == "network" and with_.llk_free < 0.8 * without.llk_free
    d = with_.to_npz_dict()
    assert str(d["refine_start_phase"]) == "zero" and bool(d["refine_zero_phase_start"])
    # a superset of starts: never a higher LLK_free than the first two alone (the same runs)
    mag2, truth2, (z2, _, _) = _crystal()
    half = _network_like(np.where(z2 > 0, truth2, 0), mag2)
    assert (refine_prediction(half, mag2, None, 30, Refinement(keep_by="llk_free")).llk_free
            <= refine_prediction(half, mag2, None, 30, Refinement(zero_phase_start=False, keep_by="llk_free")).llk_free)
    # the network's outline alone: no start on the data's outline is made, whatever the flag
    one = refine_prediction(p, mag, None, 30, Refinement(outline_ratio=0))
    assert (one.outline, one.start_phase) == ("network", "network")


def test_zero_phase_start_is_checked_and_has_an_option():
    import argparse

    from autophase.phasing import ParamError
    from autophase.predict import add_refinement_arguments, refinement_from_args

    for bad in ("yes", 1, None):
        with pytest.raises(ParamError) as e:
            Refinement(zero_phase_start=bad).validate()
        assert e.value.field == "zero_phase_start"
    ap = argparse.ArgumentParser()
    add_refinement_arguments(ap)
    assert refinement_from_args(ap.parse_args([])).zero_phase_start is True
    off = refinement_from_args(ap.parse_args(["--no-refine-zero-phase"]))
    assert off.zero_phase_start is False and off.outline_phases() == ("network",)
    assert Refinement().outline_phases() == ("network", "zero")


def test_the_start_with_no_phase_runs_at_a_second_threshold():
    import argparse

    from autophase.phasing import ParamError
    from autophase.predict import add_refinement_arguments, refinement_from_args

    d = Refinement()
    assert d.zero_phase_sw_threshold == 0.05
    assert d.outline_runs() == [("network", 0.1), ("zero", 0.1), ("zero", 0.05)]
    assert Refinement(zero_phase_sw_threshold=0).outline_runs() == [("network", 0.1), ("zero", 0.1)]
    assert Refinement(zero_phase_sw_threshold=0.1).outline_runs() == [("network", 0.1), ("zero", 0.1)]  # no twin run
    assert Refinement(zero_phase_start=False).outline_runs() == [("network", 0.1)]
    for bad in (-0.1, 1.0, float("nan"), "0.05"):
        with pytest.raises(ParamError) as e:
            Refinement(zero_phase_sw_threshold=bad).validate()
        assert e.value.field == "zero_phase_sw_threshold"
    ap = argparse.ArgumentParser()
    add_refinement_arguments(ap)
    assert refinement_from_args(ap.parse_args([])).zero_phase_sw_threshold == 0.05
    assert refinement_from_args(ap.parse_args(["--refine-zero-phase-threshold", "0"])).outline_runs()[-1] == ("zero", 0.1)
    from autophase.errors import InputError

    with pytest.raises(InputError, match="--refine-zero-phase-threshold"):
        refinement_from_args(ap.parse_args(["--refine-zero-phase-threshold", "2"]))
    # the same runs plus one: never a higher LLK_free, and the kept run's threshold is recorded
    n = 48
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    truth = ((z / 9.0) ** 2 + (y / 7.0) ** 2 + (x / 6.0) ** 2 < 1).astype(np.complex64)
    intensity = np.abs(far_field(truth)) ** 2
    mag = np.sqrt(np.random.default_rng(0).poisson(intensity * 1e7 / intensity.sum())).astype(np.float32)
    p = _network_like(np.where(z > 0, np.exp(2j * np.arctan2(y, x)), 0).astype(np.complex64), mag)
    four = refine_prediction(p, mag, None, 30)
    three = refine_prediction(p, mag, None, 30, Refinement(zero_phase_sw_threshold=0))
    assert four.llk_free <= three.llk_free and three.start_sw_threshold == 0.1
    assert four.start_sw_threshold in (0.1, 0.05)
    assert float(four.to_npz_dict()["refine_start_sw_threshold"]) == four.start_sw_threshold
    assert four.kept_start() == {"outline": four.outline, "start_phase": four.start_phase,
                                 "start_sw_threshold": four.start_sw_threshold}  # as result rows record it
    assert np.isnan(Prediction(p.object, p.support, 1.0, 1.0).start_sw_threshold)  # before any refinement


def test_summaries_count_the_starts_with_no_phase_kept():
    from autophase import evaluate, external_suite

    rows = [{"refine": {"chi2": 1.0, "outline": o, "start_phase": s}}
            for o, s in (("autocorrelation", "zero"), ("autocorrelation", "network"), ("network", "network"),
                         ("network", "network"))]
    assert evaluate.summarise(rows)["refine"]["zero_phase_start_fraction"] == 0.25
    assert external_suite.summarise(rows)["refine"]["zero_phase_start_fraction"] == 0.25
    assert evaluate.zero_phase_fraction([{"refine": {"chi2": 1.0}}]) == 0.0  # older records: none


def test_networks_are_judged_with_every_start_carrying_their_phase():
    from autophase.predict import judging_refinement

    j = judging_refinement().validate()
    assert j.zero_phase_start is False and j.outline_phases() == ("network",)
    assert j.outline_runs() == [("network", 0.1)]
    # session 14's refinement, pinned: the judge of checkpoints does not move with predict's default
    assert j == Refinement(outline_ratio=1.5, zero_phase_start=False, zero_phase_sw_threshold=0.0, keep_by="llk_free",
                           outline_chi2=0.0)


def test_the_kept_run_is_the_lowest_chi2_by_default_or_the_lowest_llk_free_when_asked():
    import argparse
    from types import SimpleNamespace

    from autophase.errors import InputError
    from autophase.phasing import ParamError
    from autophase.predict import KEEP_BY, add_refinement_arguments, refinement_from_args

    d = Refinement()
    assert (d.outline_ratio, d.keep_by, d.outline_chi2) == (1.5, "chi2", 0.05) and KEEP_BY == ("chi2", "llk_free")
    # the network's χ² is a second trigger: above 0.05 the runs are made whatever the volumes say
    assert not d.wants_second_outline(1.2, 0.04) and d.wants_second_outline(1.2, 0.06)
    assert not d.wants_second_outline(1.2) and d.wants_second_outline(1.6, 0.01)
    assert not Refinement(outline_chi2=0).wants_second_outline(1.2, 0.9)
    assert not Refinement(outline_ratio=0).wants_second_outline(10.0, 0.9)  # the paper's refinement: never
    runs = [SimpleNamespace(chi2=0.3, llk_free=1.0), SimpleNamespace(chi2=0.1, llk_free=2.0),
            SimpleNamespace(chi2=float("nan"), llk_free=0.1), SimpleNamespace(chi2=0.1, llk_free=0.5)]
    # LLK_free within 10 % of the lowest of the runs that did not fail (0.5): run 3 alone
    assert d.llk_free_margin == 0.1 and d.kept(runs) == 3
    # a wide margin: every run competes on χ²; a tie keeps the earlier, a NaN never wins
    assert Refinement(llk_free_margin=10.0).kept(runs) == 1 and Refinement(llk_free_margin=10.0).kept(runs[2:3]) == 0
    assert Refinement(keep_by="llk_free").kept(runs) == 2 and Refinement(keep_by="llk_free").kept(runs[:2]) == 0
    nofree = [SimpleNamespace(chi2=0.3, llk_free=float("nan")), SimpleNamespace(chi2=0.2, llk_free=float("nan"))]
    assert d.kept(nofree) == 1  # no free voxels: χ² alone
    # the run on a looser support (shrink-wrapped below sw_threshold) must beat the others' choice
    # by loose_chi2_margin (default 0.1): 5 % lower χ² is not enough, 15 % is
    ts = [0.1, 0.1, 0.1, 0.05]
    close = [SimpleNamespace(chi2=c, llk_free=1.0) for c in (0.10, 0.30, 0.20, 0.095)]
    far = [SimpleNamespace(chi2=c, llk_free=1.0) for c in (0.10, 0.30, 0.20, 0.085)]
    assert d.loose_chi2_margin == 0.1 and d.kept(close, ts) == 0 and d.kept(far, ts) == 3
    assert d.kept(close) == 3 and Refinement(loose_chi2_margin=0.0).kept(close, ts) == 3  # as an equal
    assert Refinement(keep_by="llk_free").kept(close, ts) == 0  # LLK_free ties: the earlier
    assert d.kept(close[3:], ts[3:]) == 0  # alone, it is kept
    for bad in (-0.1, 1.0, float("nan"), "0.1", None):
        with pytest.raises(ParamError) as e:
            Refinement(loose_chi2_margin=bad).validate()
        assert e.value.field == "loose_chi2_margin"
    for bad in (-0.1, float("nan"), float("inf"), "0.1", None):
        with pytest.raises(ParamError) as e:
            Refinement(llk_free_margin=bad).validate()
        assert e.value.field == "llk_free_margin"
    for bad in ("chi", "", None, "LLK_free"):
        with pytest.raises(ParamError) as e:
            Refinement(keep_by=bad).validate()
        assert e.value.field == "keep_by"
    ap = argparse.ArgumentParser()
    add_refinement_arguments(ap)
    assert refinement_from_args(ap.parse_args([])).keep_by == "chi2"
    assert refinement_from_args(ap.parse_args(["--refine-keep-by", "llk_free"])).keep_by == "llk_free"
    with pytest.raises(SystemExit):
        ap.parse_args(["--refine-keep-by", "best"])
    assert refinement_from_args(ap.parse_args(["--refine-outline-chi2", "0"])).outline_chi2 == 0
    assert refinement_from_args(ap.parse_args(["--refine-loose-chi2-margin", "0"])).loose_chi2_margin == 0
    with pytest.raises(InputError, match="--refine-loose-chi2-margin"):
        refinement_from_args(ap.parse_args(["--refine-loose-chi2-margin", "1"]))
    with pytest.raises(InputError, match="--refine-outline-chi2"):
        refinement_from_args(ap.parse_args(["--refine-outline-chi2", "nan"]))
    for bad in (-0.1, float("inf"), "0.05"):
        with pytest.raises(ParamError) as e:
            Refinement(outline_chi2=bad).validate()
        assert e.value.field == "outline_chi2"
    # on a real pattern whose outlines disagree: every run is made, and the kept answer's χ² is
    # no higher than that of the run LLK_free keeps, nor than the network's outline alone
    mag, truth, (z, y, x) = _crystal()
    p = _network_like(np.where(z > 0, truth, 0), mag)
    kept = refine_prediction(p, mag, None, 30)
    assert kept.outline == "autocorrelation"
    for how in (Refinement(keep_by="llk_free"), Refinement(outline_ratio=0)):
        assert kept.chi2 <= refine_prediction(p, mag, None, 30, how).chi2
    assert str(kept.to_npz_dict()["refine_keep_by"]) == "chi2"
    assert refinement_from_args(ap.parse_args(["--refine-llk-free-margin", "0.5"])).llk_free_margin == 0.5
    with pytest.raises(InputError, match="--refine-llk-free-margin"):
        refinement_from_args(ap.parse_args(["--refine-llk-free-margin", "-1"]))
    with pytest.raises(InputError, match="--refine-keep-by"):
        refinement_from_args(SimpleNamespace(**{**vars(ap.parse_args([])), "refine_keep_by": "nope"}))
