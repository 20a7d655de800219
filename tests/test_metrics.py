"""Figures of merit: χ², LLK, free mask, and alignment-invariant truth comparisons."""
import numpy as np
import pytest
import scipy.fft as sfft
import torch
from scipy import ndimage

from autophase.physics import (chi2, compare_to_truth, complex_error, free_mask, magnitude, pad_object,
                               phase_error, poisson_llk)
from autophase.physics.metrics import align_to
from autophase.physics.synthetic import faceted_crystal, noisy_pattern


@pytest.fixture(scope="module")
def crystal():
    counts, rho = noisy_pattern(faceted_crystal(16, seed=4), photons=1e6, seed=4)
    return counts, rho


def test_chi2_definition_and_scale():
    m = np.array([1.0, 2.0, 3.0]).reshape(1, 1, 3)
    e = 2 * m
    assert np.isclose(chi2(e, m), np.sum((e - m) ** 2) / np.sum(m ** 2))
    assert chi2(e, m, fit_scale=True) < 1e-12
    assert chi2(m, m) == 0.0
    # torch, batched, same numbers
    t = chi2(torch.tensor(np.stack([e, m])), torch.tensor(np.stack([m, m])))
    np.testing.assert_allclose(t.numpy(), [chi2(e, m), 0.0])


def test_chi2_mask_ignores_unmeasured():
    m = np.ones((4, 4, 4))
    e = m.copy()
    e[0, 0, 0] = 100
    mask = np.ones_like(m, bool)
    mask[0, 0, 0] = False
    assert chi2(e, m, mask) == 0.0
    assert chi2(e, m) > 0


def test_truth_beats_trivial_answers(crystal):
    counts, rho = crystal
    M = np.sqrt(counts)
    truth = chi2(magnitude(rho), M)
    box = pad_object(np.ones((16, 16, 16), np.complex64))
    assert truth < 0.2 * chi2(magnitude(box), M, fit_scale=True)
    assert truth < 0.2 * chi2(np.zeros_like(M), M)


@pytest.mark.parametrize("photons", [1e5, 1e7])
def test_noise_floor_estimated_from_the_counts_alone(photons):
    from autophase.physics.metrics import _poisson_sqrt_mse_table, chi2_noise_floor

    counts, rho = noisy_pattern(faceted_crystal(32, seed=3), photons=photons, seed=1)
    gap = np.ones(counts.shape, bool)
    gap[:, 40:43, :] = False  # a detector gap: no zeros may leak into its neighbours
    mag = np.where(gap, np.sqrt(counts), 0).astype(np.float32)
    exact = chi2(magnitude(rho.astype(np.complex128)), mag.astype(np.float64), gap)
    est = chi2_noise_floor(mag, gap)
    assert 0.9 < est / exact < 1.12, (est, exact)
    # unsmoothed counts miss it by half: g at the observed k is not the mean of g over k
    assert chi2_noise_floor(mag, gap, sigma=0) < 0.75 * exact
    lam, g = _poisson_sqrt_mse_table()
    assert g[0] == 0 and abs(g[-1] - 0.25) < 1e-3 and np.all(np.diff(lam) > 0)
    assert np.isnan(chi2_noise_floor(np.zeros((4, 4, 4), np.float32)))


def test_poisson_llk_minimal_at_truth(crystal):
    counts, rho = crystal
    I = np.abs(magnitude(rho)) ** 2
    at_truth = poisson_llk(I, counts)
    assert at_truth < poisson_llk(I * 1.5, counts)
    assert at_truth < poisson_llk(np.roll(I, 2, 0), counts)
    assert poisson_llk(counts, counts) < 1e-9  # 0 up to the 1e-12 floor on I_c


def test_free_mask_fraction_islands_centre():
    shape = (64, 64, 64)
    f = free_mask(shape, 0.05, seed=1)
    assert 0.03 < f.mean() < 0.06
    assert not f[32 - 6:32 + 7, 32 - 6:32 + 7, 32 - 6:32 + 7].any() or f[32, 32, 32] == 0
    assert not f[32, 32, 32]
    # islands, not isolated voxels: most free voxels have a free neighbour
    nb = np.roll(f, 1, 0) | np.roll(f, -1, 0) | np.roll(f, 1, 1) | np.roll(f, -1, 1)
    assert (f & nb).sum() > 0.9 * f.sum()
    np.testing.assert_array_equal(f, free_mask(shape, 0.05, seed=1))
    measured = np.ones(shape, bool)
    measured[:, :, :10] = False
    assert not (free_mask(shape, 0.05, measured=measured, seed=2) & ~measured).any()


def test_alignment_twin_shift_phase_scale(crystal):
    _, rho = crystal
    rho = rho.astype(np.complex128)
    twin = np.conj(rho[::-1, ::-1, ::-1])
    est = 3.0 * np.exp(1j * 1.1) * np.roll(twin, (2, -3, 1), axis=(0, 1, 2))
    al = align_to(est, rho)
    assert al.twin
    assert complex_error(est, rho) < 1e-20
    assert phase_error(est, rho) < 1e-8
    m = compare_to_truth(est, rho)
    assert m["ssim_box"] > 0.999


def test_errors_grow_with_damage(crystal):
    _, rho = crystal
    rng = np.random.default_rng(0)
    amp = np.abs(rho)
    noisy_phase = rho * np.exp(1j * rng.normal(0, 0.3, rho.shape)) * (amp > 0)
    sphere_zero_phase = amp.astype(np.complex128)  # right shape, no phase
    e1 = compare_to_truth(noisy_phase, rho)
    e2 = compare_to_truth(sphere_zero_phase, rho)
    assert 0.2 < e1["phase_error_rad"] < 0.4
    assert e2["phase_error_rad"] > e1["phase_error_rad"] * 0.5
    assert e1["complex_error"] > 0.01


@pytest.fixture(scope="module")
def strained():
    """A faceted crystal with a 3-rad strain phase, centred in 64³ (the evaluation's size)."""
    return pad_object(faceted_crystal(32, phase_range=3.0, seed=7)).astype(np.complex128)


def _fourier_shift(a, shift):
    # scipy's own shift theorem (not the code under test)
    return sfft.ifftn(ndimage.fourier_shift(sfft.fftn(a), shift))


def _err(aligned, t):
    return float(np.linalg.norm(aligned - t) ** 2 / np.linalg.norm(t) ** 2)


def test_subvoxel_alignment_fractional_shift_twin_phase(strained):
    rho = strained
    shift = (0.5, 0.25, 1.37)
    est = 0.7 * np.exp(-2.3j) * np.conj(_fourier_shift(rho, shift)[::-1, ::-1, ::-1])
    m = compare_to_truth(est, rho)
    assert m["twin"]
    assert m["complex_error"] < 1e-3
    assert m["phase_error_rad"] < 0.01
    whole = align_to(est, rho, upsample=1)  # the alignment before issue 14
    assert np.allclose(whole.shift, np.round(whole.shift))
    e_whole = _err(whole.aligned, rho)
    assert e_whole > 1e-2 > 10 * m["complex_error"]
    w = np.abs(rho)
    sel = w > 0.5 * w.max()
    d = np.angle(whole.aligned[sel] * np.conj(rho[sel]))
    assert np.sqrt(np.sum(w[sel] * d * d) / np.sum(w[sel])) > 2 * m["phase_error_rad"]
    # the working precision of the prediction path gives the same answer
    al32 = align_to(est.astype(np.complex64), rho.astype(np.complex64), dtype=np.complex64)
    assert al32.aligned.dtype == np.complex64 and al32.twin
    assert _err(al32.aligned.astype(np.complex128), rho) < 1e-3


def test_subvoxel_shift_matches_skimage(strained):
    skr = pytest.importorskip("skimage.registration")
    moved = _fourier_shift(strained, (-0.75, 2.3, 0.4))
    ours = align_to(moved, strained, upsample=16)
    assert not ours.twin
    ref, _, _ = skr.phase_cross_correlation(strained, moved, upsample_factor=16, normalization=None)
    np.testing.assert_allclose(ours.shift, ref, atol=1 / 16 + 1e-9)
    np.testing.assert_allclose(ours.shift, (0.75, -2.3, -0.4), atol=1 / 32 + 1e-9)


def test_alignment_cannot_make_a_different_object_good(strained):
    other = pad_object(faceted_crystal(32, phase_range=3.0, seed=8))
    m = compare_to_truth(other, strained)
    assert m["complex_error"] > 0.3
    assert m["phase_error_rad"] > 0.3
    noise = np.random.default_rng(1).normal(size=strained.shape) * (np.abs(strained) > 0)
    assert compare_to_truth(noise.astype(np.complex128), strained)["complex_error"] > 0.5


def test_alignment_rejects_bad_input(strained):
    with pytest.raises(ValueError, match="upsample"):
        align_to(strained, strained, upsample=0)
    with pytest.raises(ValueError, match="shape"):
        align_to(strained[:-1], strained)


def test_phase_error_ignores_what_the_answer_leaves_empty(strained):
    # a right answer with a hard-edged hole where the crystal is strong, shifted by a
    # fraction of a voxel: the ringing inside the hole has no phase to score, the hole
    # itself is complex error
    rho = strained
    holed = rho.copy()
    holed[30:34] = 0
    est = np.exp(0.4j) * _fourier_shift(holed, (0.5, -0.3, 0.2))
    m = compare_to_truth(est, rho)
    assert m["phase_error_rad"] < 0.01
    assert m["complex_error"] > 0.02
    assert phase_error(np.zeros_like(rho), rho) > 1.5  # no answer, no phase
