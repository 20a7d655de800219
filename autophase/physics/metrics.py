"""Figures of merit for BCDI reconstructions.

Against the data (no truth needed):

* :func:`chi2` — the paper's eq. 2, χ² = Σ(√I_e − √I_m)² / Σ I_m over measured voxels,
  optionally after the least-squares scale s = Σ√I_e√I_m / ΣI_e applied to √I_e.
* :func:`poisson_llk` — the mean Poisson deviance per voxel,
  LLK = (2/n) Σ [I_c − k + k ln(k / I_c)]  (k counts, I_c model intensity, 0·ln 0 = 0);
  ≈ 1 at the true model for well-exposed voxels, smaller where counts are ~0.
* :func:`free_mask` — ≈5 % of voxels, in small cubic islands away from the central peak,
  that phasing leaves unconstrained; :func:`llk_free` and :func:`chi2_free` evaluate on them
  (Favre-Nicolin et al., J. Appl. Cryst. 53, 2020): they rise when phasing overfits noise.

Against a known truth, after alignment (:func:`align_to`): twin (conj of the point-
inverted object), integer translation (peak of the complex cross-correlation), then the
least-squares complex scale c = ⟨a, t⟩ / ⟨a, a⟩ (global phase and scale):

* complex error  ‖c a − t‖² / ‖t‖²
* phase error    √(Σ_w |t| Δφ² / Σ_w |t|)  with Δφ = arg(c a · t̄), over |t| > 0.5 max|t|
* amplitude SSIM inside the true crystal's bounding box plus 3 voxels (whole-volume SSIM
  is dominated by empty background: a fixed sphere scores 0.92 there).

Inputs are numpy arrays ``(z, y, x)``; :func:`chi2` also accepts torch tensors and
leading batch axes (reducing over the last three).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from .forward import AXES, fft_workers, is_torch

__all__ = [
    "chi2",
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
    """How an estimate was brought onto the truth: ``aligned = scale * shift(twin?(a))``."""

    aligned: np.ndarray  # complex, same shape as the truth
    twin: bool
    shift: tuple[int, int, int]
    scale: complex


def _twin(a: np.ndarray) -> np.ndarray:
    return np.conj(a[::-1, ::-1, ::-1])


def _best_shift(a: np.ndarray, t: np.ndarray, t_fft: np.ndarray | None = None) -> tuple[tuple[int, int, int], float]:
    """Integer circular shift s maximising |Σ roll(a, s) · t̄|, and that peak value.

    ``t_fft``: fftn(t) when the caller already has it (one reference, many estimates).
    """
    w = fft_workers()
    T = sfft.fftn(t, workers=w) if t_fft is None else t_fft
    cc = sfft.ifftn(T * np.conj(sfft.fftn(a, workers=w)), workers=w)
    k = int(np.argmax(np.abs(cc)))
    idx = np.unravel_index(k, cc.shape)
    return tuple(int(i) for i in idx), float(np.abs(cc.flat[k]))


def align_to(estimate: np.ndarray, truth: np.ndarray, dtype=np.complex128,
             truth_fft: np.ndarray | None = None) -> Alignment:
    """Align ``estimate`` to ``truth`` over twin, integer translation, phase and scale.

    Both candidates (as is, and the twin) are shifted by the peak of their complex
    cross-correlation with the truth and scaled by c = ⟨a, t⟩/⟨a, a⟩; the one with the
    smaller complex error wins. ``dtype`` is the working precision (complex64 is ~3×
    faster, enough to align network answers to each other); ``truth_fft`` = fftn(truth)
    saves a transform per call when many estimates are aligned to one reference.
    """
    a0 = np.asarray(estimate, dtype)
    t = np.asarray(truth, dtype)
    if a0.shape != t.shape:
        raise ValueError(f"estimate {a0.shape} and truth {t.shape} differ in shape")
    best = None
    for twin in (False, True):
        a = _twin(a0) if twin else a0
        shift, _ = _best_shift(a, t, truth_fft)
        a = np.roll(a, shift, axis=(0, 1, 2))
        den = np.vdot(a, a).real
        c = np.vdot(a, t) / den if den > 0 else 0.0
        err = np.linalg.norm(c * a - t) ** 2 / np.linalg.norm(t) ** 2
        if best is None or err < best[0]:
            best = (err, Alignment(c * a, twin, shift, complex(c)))
    return best[1]


def complex_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """min over twin/shift/phase/scale of ‖c a − t‖² / ‖t‖² (0 = perfect, 1 = nothing)."""
    al = align_to(estimate, truth)
    t = np.asarray(truth, np.complex128)
    return float(np.linalg.norm(al.aligned - t) ** 2 / np.linalg.norm(t) ** 2)


def phase_error(estimate: np.ndarray, truth: np.ndarray, level: float = 0.5,
                alignment: Alignment | None = None) -> float:
    """Amplitude-weighted RMS phase difference (rad) where |t| > ``level`` × max|t|."""
    al = alignment or align_to(estimate, truth)
    t = np.asarray(truth, np.complex128)
    w = np.abs(t)
    m = w > level * w.max()
    d = np.angle(al.aligned[m] * np.conj(t[m]))
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

