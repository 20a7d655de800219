"""Iterative phasing: schedules, ER/HIO/shrink-wrap, engines agree, free voxels, starts, batches."""
import numpy as np
import pytest

from autophase.phasing import PhasingParams, parse_schedule, phase, phase_batch, total_iterations
from autophase.phasing.api import prepare
from autophase.phasing.cpu import CpuEngine
from autophase.phasing.schedule import expand
from autophase.phasing.support import autocorrelation_support, box_support
from autophase.phasing.torch_engine import TorchEngine
from autophase.physics import chi2, compare_to_truth, magnitude
from autophase.physics.synthetic import faceted_crystal, noisy_pattern


@pytest.fixture(scope="module")
def data32():
    counts, rho = noisy_pattern(faceted_crystal(16, seed=7), photons=1e6, seed=7)
    return np.sqrt(counts), rho


def test_schedule_parsing():
    assert parse_schedule("3*(20*ER+160*HIO+20*ER)") == [("ER", 20), ("HIO", 160), ("ER", 40), ("HIO", 160),
                                                          ("ER", 40), ("HIO", 160), ("ER", 20)]
    assert total_iterations("3*(20*ER+160*HIO+20*ER)") == 600
    assert parse_schedule("50*ER") == [("ER", 50)]
    assert parse_schedule(" hio + 2*( ER ) ") == [("HIO", 1), ("ER", 2)]
    assert expand([("ER", 2), ("HIO", 1)]) == ["ER", "ER", "HIO"]
    assert parse_schedule("3*(20*ER+160*RAAR+20*ER)")[:2] == [("ER", 20), ("RAAR", 160)]
    for bad in ["", "3*", "20*FOO", "3*(ER", "ER)", "2 ER", "0*ER"]:
        with pytest.raises(ValueError):
            parse_schedule(bad)


def test_supports():
    s = box_support((32, 32, 32), 0.5)
    assert s.sum() == 16 ** 3 and s[16, 16, 16]
    counts, rho = noisy_pattern(faceted_crystal(16, seed=1), 1e8, seed=1)
    a = autocorrelation_support(counts)
    truth = np.abs(rho) > 0.1 * np.abs(rho).max()
    assert a[truth].mean() > 0.95         # covers the crystal
    assert a.sum() < 3 * truth.sum()      # and is not the whole box


def test_phasing_converges_to_noise_floor(data32):
    M, rho = data32
    floor = chi2(magnitude(rho), M)
    r = phase(M, schedule="2*(20*ER+80*HIO+20*ER)", seed=1)
    assert r.object.dtype == np.complex64 and r.support.dtype == bool
    assert r.chi2 < 1.2 * floor
    assert len(r.history["chi2"]) == 240
    m = compare_to_truth(r.object, rho)
    assert m["complex_error"] < 0.2 and m["phase_error_rad"] < 0.35


def test_er_from_truth_stays(data32):
    M, rho = data32
    r = phase(M, init=rho, schedule="20*ER", shrink_wrap_every=0)
    assert compare_to_truth(r.object, rho)["complex_error"] < 0.02


def test_cpu_and_torch_engines_agree(data32):
    M, _ = data32
    p = prepare(M, None, 0.05, 0)
    rng = np.random.default_rng(0)
    x0 = (rng.normal(size=M.shape) + 1j * rng.normal(size=M.shape)).astype(np.complex64)
    S0 = np.fft.ifftshift(box_support(M.shape, 0.5))
    x0 *= S0
    algos = expand(parse_schedule("5*ER+10*HIO+5*ER"))
    kw = dict(beta=0.9, sw_every=10, sw_sigma=1.0, sw_threshold=0.2)
    xc, Sc, ec = CpuEngine(M.shape).run(x0, S0.copy(), p.mag_u, algos, **kw)
    xt, St, et = TorchEngine(M.shape, "cpu").run(x0[None], S0[None], p.mag_u[None], algos, **kw)
    scale = np.abs(xc).max()
    assert np.abs(xc - xt[0]).max() < 1e-3 * scale
    np.testing.assert_allclose(ec, et[:, 0], rtol=1e-3)
    assert (Sc != St[0]).mean() < 1e-3


def test_unmeasured_voxels_are_free(data32):
    M, rho = data32
    Mgap = M.copy()
    Mgap[:, :, 15:17] = np.nan        # a detector gap through the peak (at 16)
    Mgap[0:4] = -1                    # and a masked region
    r = phase(Mgap, schedule="2*(20*ER+80*HIO+20*ER)", seed=2)
    assert np.isfinite(r.chi2)
    m = compare_to_truth(r.object, rho)
    assert m["complex_error"] < 0.3
    # the reconstruction predicts the missing intensity
    pred = np.abs(magnitude(r.object))[:, :, 15:17]
    true = np.abs(magnitude(rho))[:, :, 15:17]
    assert np.corrcoef(pred.ravel(), true.ravel())[0, 1] > 0.9


def test_starts_keep_best_llk_free(data32):
    M, _ = data32
    sched = "20*ER+40*HIO+20*ER"
    singles = [phase(M, schedule=sched, seed=0, starts=1)]
    multi = phase(M, schedule=sched, seed=0, starts=3)
    assert multi.llk_free <= singles[0].llk_free + 1e-9
    assert 0 <= multi.start < 3


def test_batch_matches_single(data32):
    M, _ = data32
    B = np.stack([M, M[::-1].copy()])
    params = PhasingParams(schedule="10*ER+20*HIO+10*ER", seed=3)
    rb = phase_batch(B, params=params)
    r0 = phase(M, params=params)
    assert len(rb) == 2
    np.testing.assert_allclose(rb[0].chi2, r0.chi2, rtol=1e-5)
    rt = phase_batch(B, params=params, engine="torch", device="cpu")
    np.testing.assert_allclose(rt[0].chi2, r0.chi2, rtol=2e-2)


def test_bad_arguments(data32):
    M, _ = data32
    with pytest.raises(ValueError):
        phase(M[0], schedule="10*ER")
    with pytest.raises(TypeError):
        phase(M, nonsense=1)
    with pytest.raises(ValueError):
        phase(M, init=np.zeros((8, 8, 8), np.complex64))
