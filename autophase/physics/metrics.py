"""Figures of merit for BCDI reconstructions.

Against the data (no truth needed):

* :func:`chi2` — the paper's eq. 2, χ² = Σ(√I_e − √I_m)² / Σ I_m over measured voxels,
  optionally after the least-squares scale s = Σ√I_e√I_m / ΣI_e applied to √I_e.
* :func:`poisson_llk` — the mean Poisson deviance per voxel,
  LLK = (2/n) Σ [I_c − k + k ln(k / I_c)]  (k counts, I_c model intensity, 0·ln 0 = 0);
  ≈ 1 at the true model for well-exposed voxels, smaller where counts are ~0.
* :func:`chi2_noise_floor` — the χ² the exact object would score against these noisy counts,
  estimated from the counts alone: Σ g(λ̂) / Σ I over measured voxels, with λ̂ the counts
  smoothed by a Gaussian of σ voxels (each voxel's expected count) and
  g(λ) = E_{k∼Poisson(λ)}[(√k − √λ)²] (≈ λ for λ ≪ 1, → 1/4 for λ ≫ 1).
* :func:`free_mask` — ≈5 % of voxels, in small cubic islands away from the central peak,
  that phasing leaves unconstrained; :func:`llk_free` and :func:`chi2_free` evaluate on them
  (Favre-Nicolin et al., J. Appl. Cryst. 53, 2020): they rise when phasing overfits noise.

Against a known truth, after alignment (:func:`align_to`): twin (conj of the point-
inverted object), sub-voxel translation (peak of the complex cross-correlation, refined
to 1/16 voxel by an upsampled local DFT, Guizar-Sicairos et al. 2008, and applied as a
Fourier phase ramp), then the least-squares complex scale c = ⟨a, t⟩ / ⟨a, a⟩ (global
phase and scale):

* complex error  ‖c a − t‖² / ‖t‖²
* phase error    √(Σ_w |t| Δφ² / Σ_w |t|)  with Δφ = arg(c a · t̄), over |t| > 0.5 max|t|
  where the answer has an amplitude (|c a| > 0.1 max|c a|)
* amplitude SSIM inside the true crystal's bounding box plus 3 voxels (whole-volume SSIM
  is dominated by empty background: a fixed sphere scores 0.92 there).

Inputs are numpy arrays ``(z, y, x)``; :func:`chi2` also accepts torch tensors and
leading batch axes (reducing over the last three).
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from .forward import AXES, fft_workers, is_torch

__all__ = [
    "chi2",
    "chi2_noise_floor",
    "poisson_llk",
    "free_mask",
    "llk_free",
    "chi2_free",
    "Alignment",
    "align_to",
    "complex_error",
    "phase_error",
    "ssim_in_box",
    "compare_to_truth",
]


def _sum3(x):
    return x.sum(dim=AXES) if is_torch(x) else x.sum(axis=AXES)


def chi2(mag_est, mag_meas, mask=None, fit_scale: bool = False):
    """χ² = Σ(s·√I_e − √I_m)² / Σ I_m (eq. 2) over the voxels where ``mask`` is True.

    Parameters
    ----------
    mag_est, mag_meas : (..., z, y, x) float, magnitudes √I (not intensities).
    mask : bool array broadcastable to them; True = measured (default: all).
    fit_scale : multiply ``mag_est`` by the least-squares s = Σ√I_e√I_m / ΣI_e first
        (the network's output has no absolute intensity scale).

    Returns a float (numpy, no batch) or an array/tensor of shape ``(...)``.
    """
    if mask is not None:
        mag_est = mag_est * mask
        mag_meas = mag_meas * mask
    if fit_scale:
        num = _sum3(mag_est * mag_meas)
        den = _sum3(mag_est * mag_est)
        s = num / (den + 1e-30)
        mag_est = mag_est * s[(...,) + (None,) * 3]
    r = _sum3((mag_est - mag_meas) ** 2) / (_sum3(mag_meas ** 2) + 1e-30)
    return float(r) if not is_torch(r) and np.ndim(r) == 0 else r


@functools.lru_cache(maxsize=1)
def _poisson_sqrt_mse_table() -> tuple[np.ndarray, np.ndarray]:
    """(λ, g(λ)) with g(λ) = E_{k∼Poisson(λ)}[(√k − √λ)²], λ in [0, 400] (float64).

    Summed over k < 700 (≥ λ + 14√λ everywhere on the grid, so the tail is < 1e-40); above
    λ = 400, g is 1/4 to better than 0.1 %."""
    from scipy import stats

    lam = np.concatenate([np.linspace(0.0, 20.0, 2001), np.geomspace(20.01, 400.0, 600)])
    k = np.arange(700, dtype=np.float64)
    pmf = stats.poisson.pmf(k[None, :], lam[:, None])
    g = (pmf * (np.sqrt(k)[None, :] - np.sqrt(lam)[:, None]) ** 2).sum(axis=1)
    return lam, g


def chi2_noise_floor(mag: np.ndarray, measured: np.ndarray | None = None, sigma: float = 0.7) -> float:
    """The χ² (eq. 2) that the exact object would score against these Poisson counts,
    estimated from the counts alone (no truth, no model).

    mag : (z, y, x) float, √counts (0 where unmeasured).
    measured : (z, y, x) bool, True where the detector measured (default: all).
    sigma : Gaussian smoothing of the counts, voxels.

    E[χ²] of the exact model is Σ_v g(λ_v) / Σ_v I_v with λ_v the expected counts and
    g(λ) = E_{k∼Poisson(λ)}[(√k − √λ)²]. λ is estimated by the counts smoothed over
    ``sigma`` voxels, a normalised convolution over the measured voxels only (a detector gap
    pulls no zeros in). The raw counts would not do: where λ ~ 1, g(k) evaluated at the
    observed k is half the mean g(λ), and most of a BCDI pattern's floor comes from there.
    Speckles span several voxels at the oversampling BCDI measures at, so a sub-voxel σ
    leaves λ's structure and averages its noise (docs/training.md, "The pattern's own noise
    floor", says on which patterns σ was chosen and how close the estimate came).
    """
    I = np.asarray(mag, np.float64) ** 2
    m = np.ones(I.shape, bool) if measured is None else np.asarray(measured, bool)
    total = float(I[m].sum())
    if total <= 0:
        return float("nan")
    w = m.astype(np.float64)
    if sigma > 0:
        num = ndimage.gaussian_filter(I * w, sigma, mode="constant")
        den = ndimage.gaussian_filter(w, sigma, mode="constant")
        lam_hat = np.where(den > 1e-6, num / np.maximum(den, 1e-6), 0.0)
    else:
        lam_hat = I
    lam, g = _poisson_sqrt_mse_table()
    return float(np.interp(lam_hat[m], lam, g, right=0.25).sum() / total)


def poisson_llk(I_model: np.ndarray, counts: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean Poisson deviance (2/n) Σ[I_c − k + k ln(k/I_c)] over ``mask`` (default all)."""
    I_c = np.maximum(np.asarray(I_model, np.float64), 1e-12)
    k = np.maximum(np.asarray(counts, np.float64), 0.0)
    if mask is not None:
        I_c, k = I_c[mask], k[mask]
    with np.errstate(divide="ignore", invalid="ignore"):
        klog = np.where(k > 0, k * np.log(k / I_c), 0.0)
    return float(2.0 * np.mean(I_c - k + klog))


def free_mask(shape: tuple[int, int, int], fraction: float = 0.05, island: int = 3,
              center_exclusion: float = 0.1, measured: np.ndarray | None = None,
              seed: int = 0) -> np.ndarray:
    """Boolean mask of ≈``fraction`` of voxels in ``island``³ cubes, off the centre.

    Islands (not single voxels) because the intensity is correlated over a speckle
    (≈ the oversampling ratio, 2–3 voxels): a lone free voxel would be predicted by its
    constrained neighbours and tell nothing about overfitting. The central sphere of
    radius ``center_exclusion`` × the smallest dimension is kept constrained: it holds
    most of the signal and phasing needs it. Deterministic for a given ``seed``.
    """
    # every voxel measured (no mask, or an all-True one: the usual case) gives the same mask
    # every time: drawn once per process (≈13 ms a draw at 64³)
    if measured is None or np.all(measured):
        return _free_mask_all_measured(tuple(int(n) for n in shape), float(fraction), int(island),
                                       float(center_exclusion), int(seed)).copy()
    return _draw_free_mask(shape, fraction, island, center_exclusion, measured, seed)


@functools.lru_cache(maxsize=8)
def _free_mask_all_measured(shape, fraction, island, center_exclusion, seed) -> np.ndarray:
    # ≈9 ms a draw at 64³; a watched pattern needed it three times (χ², LLK_free, refinement)
    m = _draw_free_mask(shape, fraction, island, center_exclusion, None, seed)
    m.flags.writeable = False
    return m


def _draw_free_mask(shape, fraction, island, center_exclusion, measured, seed) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    grid = np.indices(shape, dtype=np.float32)
    r2 = sum((g - s // 2) ** 2 for g, s in zip(grid, shape))
    allowed = r2 > (center_exclusion * min(shape)) ** 2
    if measured is not None:
        allowed &= measured
    n_islands = int(round(fraction * np.prod(shape) / island ** 3))
    seeds = np.zeros(shape, bool)
    cand = np.flatnonzero(allowed)
    if cand.size == 0 or n_islands == 0:
        return seeds
    idx = rng.choice(cand, size=min(n_islands, cand.size), replace=False)
    seeds.flat[idx] = True
    mask = ndimage.binary_dilation(seeds, structure=np.ones((island,) * 3, bool))
    return mask & allowed


def llk_free(I_model, counts, free) -> float:
    """Poisson deviance on the free voxels only (see :func:`free_mask`)."""
    return poisson_llk(I_model, counts, free)


def chi2_free(mag_est, mag_meas, free) -> float:
    """χ² (eq. 2) on the free voxels only."""
    return chi2(mag_est, mag_meas, free)


# --------------------------------------------------------------------------- truth


@dataclass(frozen=True)
class Alignment:
    """How an estimate was brought onto the truth: ``aligned = scale * shift(twin?(a))``.

    ``shift`` is the translation (z, y, x) in voxels, a float per axis in (−N/2, N/2],
    applied to ``twin?(a)`` as the Fourier phase ramp exp(−2πi k·s/N) (so an integer
    shift equals ``np.roll(a, shift)``); ``scale`` is the complex c = ⟨a_s, t⟩/⟨a_s, a_s⟩.
    """

    aligned: np.ndarray  # complex, same shape as the truth
    twin: bool
    shift: tuple[float, float, float]
    scale: complex


def _twin(a: np.ndarray) -> np.ndarray:
    return np.conj(a[::-1, ::-1, ::-1])


def _freqs(shape: tuple[int, ...]) -> list[np.ndarray]:
    """Signed integer frequencies k_d ∈ [−N/2, N/2) per axis (numpy's fftfreq · N), float64."""
    return [np.fft.fftfreq(n, 1.0 / n) for n in shape]


def _ramp(shape, shift, cdtype) -> np.ndarray:
    """exp(−2πi Σ_d k_d s_d / N_d) on the (z, y, x) FFT grid: a shift by ``shift`` voxels."""
    f = [np.exp((-2j * np.pi * s / n) * k).astype(cdtype) for k, s, n in zip(_freqs(shape), shift, shape)]
    return f[0][:, None, None] * f[1][None, :, None] * f[2][None, None, :]


@functools.lru_cache(maxsize=1)
def _blas_controller():
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # optional: only the speed on a loaded machine depends on it
        return None
    return ThreadpoolController()


def _one_blas_thread():
    """Run the small matrix products below on one BLAS thread when threadpoolctl is present.

    They are ~1 ms on one core; OpenBLAS's own thread pool gains nothing at this size
    and, on a machine whose cores are busy, its spinning workers make them ~40× slower.
    """
    c = _blas_controller()
    return c.limit(limits=1, user_api="blas") if c is not None else contextlib.nullcontext()


@functools.lru_cache(maxsize=4)
def _unit_ramp(shape: tuple[int, int, int], cdtype: np.dtype) -> np.ndarray:
    """:func:`_ramp` for a shift of (−1, −1, −1), cached (the twin's transform uses it)."""
    r = _ramp(shape, (-1.0, -1.0, -1.0), cdtype)
    r.setflags(write=False)
    return r


def _upsampled_cc(X: np.ndarray, centre, upsample: int, half_width: float = 0.75):
    """The cross-correlation ifftn(X) evaluated on a fine grid around ``centre``.

    cc(s) = (1/N) Σ_k X(k) exp(+2πi k·s/N) at s = centre + j/u for |j/u| ≤ ``half_width``
    (Guizar-Sicairos, Thurman & Fienup, Opt. Lett. 33, 156, 2008): a matrix-product DFT
    over m = 2⌈half_width·u⌉+1 points per axis, O(N³m) instead of an (uN)³ FFT.
    Returns (|cc| maximum, its shift (z, y, x) as floats).
    """
    h = int(np.ceil(half_width * upsample))
    offs = np.arange(-h, h + 1, dtype=np.float64) / upsample
    kern = [np.exp((2j * np.pi / n) * np.outer(c + offs, k)).astype(X.dtype)  # (m, N_d)
            for k, c, n in zip(_freqs(X.shape), centre, X.shape)]
    m = offs.size
    nz, ny, nx = X.shape
    with _one_blas_thread():
        y = X.reshape(nz * ny, nx) @ kern[2].T                              # (z·y, m_x)
        y = np.matmul(kern[1], y.reshape(nz, ny, m))                        # (z, m_y, m_x)
        y = (kern[0] @ y.reshape(nz, m * m)).reshape(m, m, m)               # (m_z, m_y, m_x)
    mag = np.abs(y)
    j = np.unravel_index(int(np.argmax(mag)), mag.shape)
    shift = tuple(float(c + offs[i]) for c, i in zip(centre, j))
    return float(mag[j]) / X.size, shift


def align_to(estimate: np.ndarray, truth: np.ndarray, dtype=np.complex128,
             truth_fft: np.ndarray | None = None, upsample: int = 16) -> Alignment:
    """Align ``estimate`` to ``truth`` over twin, sub-voxel translation, phase and scale.

    For a = estimate and its twin ã = conj(a(−r)) (whose transform is derived from
    A = fftn(a) as e^{2πik/N}·conj(A), no second FFT), the translation s maximising
    |cc(s)| = |⟨a(· − s), t⟩| is found in two steps: the integer peak of
    ifftn(T·conj(A)), then the peak of the same cross-correlation evaluated by a local
    DFT on a 1/``upsample`` voxel grid within ±0.75 voxel of it (Guizar-Sicairos et al.
    2008), so the shift is accurate to 1/(2·upsample) voxel. Since the complex error
    after the best scale is 1 − |cc(s)|²/(‖a‖²‖t‖²), the candidate (as is or twin) with
    the larger refined peak wins; it is shifted by the phase ramp exp(−2πi k·s/N) (shift
    theorem) and scaled by c = ⟨a_s, t⟩/⟨a_s, a_s⟩ (global phase and scale).

    ``upsample=1`` is whole-voxel alignment only (the metric before issue 14).
    ``dtype`` is the working precision (complex64 is ~2× faster, enough to align network
    answers to each other); ``truth_fft`` = fftn(truth) saves a transform per call when
    many estimates are aligned to one reference. Arrays are (z, y, x); the result has
    the working dtype.
    """
    a0 = np.asarray(estimate, dtype)
    t = np.asarray(truth, dtype)
    if a0.shape != t.shape or a0.ndim != 3:
        raise ValueError(f"estimate {a0.shape} and truth {t.shape} must be 3-D arrays of one shape")
    if int(upsample) < 1:
        raise ValueError(f"upsample must be >= 1, got {upsample}")
    upsample = int(upsample)
    w = fft_workers()
    T = sfft.fftn(t, workers=w) if truth_fft is None else np.asarray(truth_fft, dtype)
    A = sfft.fftn(a0, workers=w)
    # fftn(conj(a[::-1, ::-1, ::-1])) = conj(A) · Π_d exp(2πi k_d / N_d)
    unit = _unit_ramp(a0.shape, np.dtype(dtype))
    cands = []
    for twin in (False, True):
        S = unit * np.conj(A) if twin else A
        X = T * np.conj(S)                          # cross-power spectrum: cc = ifftn(X)
        cc = sfft.ifftn(X, workers=w)
        k = int(np.argmax(np.abs(cc)))
        idx = np.unravel_index(k, cc.shape)
        shift = tuple(float(i - n if i > n // 2 else i) for i, n in zip(idx, cc.shape))
        cands.append([float(np.abs(cc.flat[k])), twin, shift, S, X])
    if upsample > 1:
        top = max(c[0] for c in cands)
        for c in cands:
            # sub-voxel refinement raises a peak by the loss of a ≤ ½-voxel misregistration,
            # far less than 2× unless most of the signal sits near the Nyquist frequency
            if c[0] >= 0.5 * top:
                p, s = _upsampled_cc(c[4], c[2], upsample)
                if p > c[0]:
                    c[0], c[2] = p, s
    _, twin, shift, S, _ = max(cands, key=lambda c: c[0])
    if all(float(s).is_integer() for s in shift):  # whole voxels: a roll, exact and cheaper
        a = np.roll(_twin(a0) if twin else a0, tuple(int(s) for s in shift), axis=(0, 1, 2))
    else:
        a = sfft.ifftn(S * _ramp(a0.shape, shift, dtype), workers=w)
    den = np.vdot(a, a).real
    c = np.vdot(a, t) / den if den > 0 else 0.0
    return Alignment((c * a).astype(dtype, copy=False), twin, shift, complex(c))


def complex_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """min over twin/sub-voxel shift/phase/scale of ‖c a − t‖² / ‖t‖² (0 = perfect, 1 = nothing)."""
    al = align_to(estimate, truth)
    t = np.asarray(truth, np.complex128)
    return float(np.linalg.norm(al.aligned - t) ** 2 / np.linalg.norm(t) ** 2)


def phase_error(estimate: np.ndarray, truth: np.ndarray, level: float = 0.5,
                alignment: Alignment | None = None, answer_level: float = 0.1) -> float:
    """|t|-weighted RMS phase difference (rad) where |t| > ``level`` × max|t| and the aligned
    answer has an amplitude, |a| > ``answer_level`` × max|a|.

    The second condition: the phase of a voxel the answer leaves (nearly) empty means
    nothing. Whole-voxel alignment scored such voxels as perfect (arg 0 = 0); a sub-voxel
    shift turns the answer's hard support edge into faint ringing of arbitrary phase, which
    would score them as random. Missing amplitude is what complex error and SSIM measure.
    An answer with no amplitude there scores π/√3, the RMS of a uniformly random phase.
    """
    al = alignment or align_to(estimate, truth)
    t = np.asarray(truth, np.complex128)
    a = np.asarray(al.aligned)
    w = np.abs(t)
    aa = np.abs(a)
    m = (w > level * w.max()) & (aa > answer_level * aa.max())
    if not m.any():
        return float(np.pi / np.sqrt(3.0))
    d = np.angle(a[m] * np.conj(t[m]))
    return float(np.sqrt(np.sum(w[m] * d * d) / np.sum(w[m])))


def _ssim(x: np.ndarray, y: np.ndarray, data_range: float, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004) with a Gaussian window of ``sigma`` voxels."""
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    f = lambda z: ndimage.gaussian_filter(z, sigma, mode="reflect", truncate=3.5)  # noqa: E731
    mx, my = f(x), f(y)
    vx = f(x * x) - mx * mx
    vy = f(y * y) - my * my
    cxy = f(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def ssim_in_box(estimate: np.ndarray, truth: np.ndarray, margin: int = 3,
                threshold: float = 0.1, alignment: Alignment | None = None) -> float:
    """Amplitude SSIM inside the truth's support bounding box grown by ``margin`` voxels."""
    al = alignment or align_to(estimate, truth)
    t = np.abs(np.asarray(truth))
    sup = t > threshold * t.max()
    lo = [max(0, int(i.min()) - margin) for i in np.nonzero(sup)]
    hi = [min(n, int(i.max()) + 1 + margin) for i, n in zip(np.nonzero(sup), t.shape)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    return _ssim(np.abs(al.aligned)[box], t[box], data_range=float(t.max()))


def compare_to_truth(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """All truth-based figures at once (one alignment): complex/phase error, SSIM, twin."""
    al = align_to(estimate, truth)
    t = np.asarray(truth, np.complex128)
    return {
        "complex_error": float(np.linalg.norm(al.aligned - t) ** 2 / np.linalg.norm(t) ** 2),
        "phase_error_rad": phase_error(estimate, truth, alignment=al),
        "ssim_box": ssim_in_box(estimate, truth, alignment=al),
        "twin": bool(al.twin),
    }

