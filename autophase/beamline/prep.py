"""From raw detector frames to the network's 64³ input: ``autophase prep``.

The paper's "Pre-processing experimental data": the measured 3D pattern is corrected,
centred on the Bragg peak, binned so that the reciprocal-space oversampling ratio is
≈ 3 (what the network saw in training) and cropped to 64³. Step by step
(:func:`prepare`), each logging one line with its numbers:

1. **dark**: I ← max(I − dark, 0); pixels whose dark exceeds ``dark_hot_threshold``
   counts are hot (their counts are not photons) and masked.
2. **flat field**: I ← I · ⟨W⟩ / W with W the white field over live pixels (so counts
   stay ≈ photons); dead pixels (W = 0, or W < ⟨W⟩ − ``white_dead_sigma``·σ_W) masked.
3. **hot voxels**: an isolated spike — a voxel above ``spike_min_counts`` and more than
   ``spike_ratio`` × the median of its 3×3×3 neighbourhood — is masked. A real speckle
   is ≈ σ voxels wide (σ ≥ 2), so one bright voxel alone is not diffraction.
4. **peak**: the Bragg peak at the maximum of the slightly smoothed intensity
   (``centre="max"``) or at the centre of mass of the region above 10 % of it (``"com"``).
5. **oversampling** per axis (:func:`estimate_oversampling`): the autocorrelation
   |F⁻¹(I)| of the object is supported on twice the object's extent L, and σ = N / L.
6. **aliens** (:func:`find_aliens`): islands of signal not connected to the Bragg
   peak's own pattern that break the Friedel symmetry I(q) ≈ I(−q) (brighter than
   ``alien_ratio`` × their mirror through the peak) are masked; σ is then re-estimated.
7. **binning** (:func:`choose_binning`): integer b per axis bringing σ/b closest to
   ``oversampling`` (in log ratio) with σ/b ≥ ``min_oversampling``.
8. **crop/pad** (:func:`crop_and_bin`): a box of ``size``·b voxels centred on the peak is
   cut (outside the measurement: zeros, masked as missing) and summed in b-blocks;
   a block with more than half of its voxels masked is masked, else its sum is scaled
   by (b_z b_y b_x)/n_measured. The peak lands at index ``size // 2`` on each axis.
9. **geometry** (with a SPEC header): energy, distance, binned pixel size, δ, γ, the
   rocking motor and its binned step and the sample circles θ, χ, φ are stored with the
   pattern, and the log gives the real-space steps of the size³ array in the lab frame
   (:mod:`autophase.beamline.geometry`), which ``phase``/``predict`` use to write
   their outputs on an orthonormal lab grid.

Masks are CXI uint32 bits (:mod:`autophase.io.cxi`): 0 = measured; any bit =
unmeasured (hot 0x4, dead 0x8, missing 0x200, alien 0x01000000, each with 0x1).

Example (scan 54 of the shipped 34-ID-C data)::

    autophase prep ../shared/data/aps34idc-scan54/frames -o scan54.cxi
    # writes scan54.cxi and scan54_prep.png (central slices, log scale, before/after)
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from ..errors import InputError
from ..io.cxi import (MASK_ALIEN, MASK_DEAD, MASK_HOT, MASK_INVALID, MASK_MISSING)
from ..io.raw34idc import sample_circles
from ..physics.forward import fft_workers

__all__ = [
    "PrepConfig",
    "PrepResult",
    "prepare",
    "correct_frames",
    "mask_spikes",
    "find_peak",
    "estimate_oversampling",
    "find_aliens",
    "choose_binning",
    "crop_and_bin",
    "plot_prep",
]


@dataclass(frozen=True)
class PrepConfig:
    """Parameters of :func:`prepare` (see the module docstring for what each does)."""

    size: int = 64
    oversampling: float = 3.0
    min_oversampling: float = 2.0
    binning: tuple | None = None          # (bz, by, bx) to force instead of choosing
    centre: str = "max"                    # "max" | "com"
    dark_hot_threshold: float = 1.0        # counts
    white_dead_sigma: float = 3.0
    spike_ratio: float = 10.0
    spike_min_counts: float = 5.0
    remove_aliens: bool = True
    alien_level: float = 0.5               # counts (smoothed) defining islands of signal
    alien_ratio: float = 3.0
    alien_min_fringes: float = 3.0
    alien_min_counts: float = 200.0
    autocorr_threshold: float = 0.1

    def __post_init__(self):
        if self.size < 16 or self.size % 2:
            raise InputError(f"--size must be even and ≥ 16, got {self.size}")
        if not self.oversampling >= self.min_oversampling > 1:
            raise InputError(f"--oversampling {self.oversampling} must be ≥ the minimum {self.min_oversampling} > 1")
        if self.centre not in ("max", "com"):
            raise InputError(f"--centre must be 'max' or 'com', not {self.centre!r}")
        if self.binning is not None and (len(self.binning) != 3 or min(self.binning) < 1):
            raise InputError(f"--binning needs three positive integers, got {self.binning}")


@dataclass
class PrepResult:
    """What :func:`prepare` returns.

    intensity : (size, size, size) float32 counts, peak at index size//2, 0 where masked.
    mask_bits : same shape, uint32 CXI bits, 0 = measured.
    stack, stack_bits : the corrected full-size stack before binning (for the picture).
    peak : (z, y, x) of the Bragg peak in ``stack``. oversampling_raw, oversampling :
    σ per axis before/after binning. binning : (bz, by, bx). box_start : first voxel of
    the cropped box in ``stack`` (may be negative = padded).
    counts_raw / counts_corrected / counts_kept : sums of the frames as read, after the
    corrections (measured voxels only), and in the output.
    log : one line per step. metadata : for the CXI file (SI units in the names).
    """

    intensity: np.ndarray
    mask_bits: np.ndarray
    stack: np.ndarray
    stack_bits: np.ndarray
    peak: tuple
    oversampling_raw: tuple
    oversampling: tuple
    binning: tuple
    box_start: tuple
    counts_raw: float
    counts_corrected: float
    counts_kept: float
    log: list = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    @property
    def mask(self) -> np.ndarray:
        """(size³) bool, True = unmeasured."""
        return self.mask_bits != 0


def _fmt3(v, f="{:.2f}") -> str:
    return ", ".join(f"{a} {f.format(x)}" for a, x in zip("zyx", v))


# --------------------------------------------------------------------------- steps


def correct_frames(frames: np.ndarray, dark: np.ndarray | None, white: np.ndarray | None,
                   mask: np.ndarray | None = None, *, dark_hot_threshold: float = 1.0,
                   white_dead_sigma: float = 3.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Dark subtraction and flat field. Returns (I float32, bits uint32, stats).

    frames : (n, rows, cols) counts. dark, white : (rows, cols) or None. mask : optional
    (n, rows, cols) bool of voxels already known bad (True = bad).
    """
    I = np.asarray(frames, np.float32).copy()
    pix_bits = np.zeros(I.shape[1:], np.uint32)
    stats: dict = {}
    if dark is not None:
        d = np.asarray(dark, np.float32)
        stats["dark_counts_per_frame"] = float(np.clip(d, 0, None).sum())
        I -= d[None]
        np.clip(I, 0, None, out=I)
        hot = d > dark_hot_threshold
        pix_bits[hot] |= MASK_HOT | MASK_INVALID
        stats["dark_hot_pixels"] = int(hot.sum())
    if white is not None:
        w = np.asarray(white, np.float64)
        live = w > 0
        if not live.any():
            raise InputError("white field: no pixel above 0")
        mean, sd = w[live].mean(), w[live].std()
        weak = live & (w < mean - white_dead_sigma * sd)
        dead = ~live | weak
        stats.update(white_mean=float(mean), white_zero=int((~live).sum()), white_weak=int(weak.sum()))
        gain = np.where(dead, 0.0, mean / np.where(live, w, 1.0)).astype(np.float32)
        I *= gain[None]
        pix_bits[dead] |= MASK_DEAD | MASK_INVALID
    bits = np.broadcast_to(pix_bits, I.shape).copy()
    if mask is not None:
        bits[np.asarray(mask, bool)] |= MASK_INVALID
    I[bits != 0] = 0.0
    return I, bits, stats


def mask_spikes(I: np.ndarray, bits: np.ndarray, ratio: float = 10.0, min_counts: float = 5.0) -> int:
    """Mask (in place) isolated voxels > ``ratio`` × their 3×3×3 median and > ``min_counts``.

    Only candidates above ``min_counts`` are examined (the data are sparse), each against
    the median of its 26 neighbours. Returns the number of voxels masked.
    """
    cand = np.argwhere((I > min_counts) & (bits == 0))
    if cand.size == 0:
        return 0
    P = np.pad(I, 1, mode="edge")
    offs = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)
                     if (a, b, c) != (0, 0, 0)])
    n_spikes = 0
    for chunk in np.array_split(cand, max(1, len(cand) // 200_000)):
        idx = chunk[:, None, :] + 1 + offs[None]
        neigh = P[idx[..., 0], idx[..., 1], idx[..., 2]]
        med = np.median(neigh, axis=1)
        v = I[chunk[:, 0], chunk[:, 1], chunk[:, 2]]
        spike = v > ratio * np.maximum(med, 1.0)
        sp = chunk[spike]
        I[sp[:, 0], sp[:, 1], sp[:, 2]] = 0.0
        bits[sp[:, 0], sp[:, 1], sp[:, 2]] |= MASK_HOT | MASK_INVALID
        n_spikes += int(spike.sum())
    return n_spikes


def find_peak(I: np.ndarray, method: str = "max") -> tuple[int, int, int]:
    """The Bragg peak (z, y, x): max of I smoothed by a σ = 1 voxel Gaussian, or the
    centre of mass of the connected region above 10 % of that max (``method="com"``)."""
    S = ndimage.gaussian_filter(np.asarray(I, np.float32), 1.0, mode="constant")
    k = np.unravel_index(int(np.argmax(S)), S.shape)
    if S[k] <= 0:
        raise InputError("pattern: no positive counts, no Bragg peak to centre on")
    if method == "max":
        return tuple(int(i) for i in k)
    lab, _ = ndimage.label(S > 0.1 * S[k])
    region = lab == lab[k]
    com = ndimage.center_of_mass(np.where(region, I, 0))
    return tuple(int(round(c)) for c in com)


def _sphere_fraction(t: float) -> float:
    """x with 1 − 1.5x + 0.5x³ = t: where a ball's normalised autocorrelation (overlap of
    two balls of diameter D at distance xD) falls to t."""
    roots = np.roots([0.5, 0.0, -1.5, 1.0 - t])
    real = [r.real for r in roots if abs(r.imag) < 1e-9 and 0 <= r.real <= 1]
    return float(real[0])


def estimate_oversampling(I: np.ndarray, threshold: float = 0.1, centre: Sequence[int] | None = None
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Oversampling ratio σ per axis from the autocorrelation of the intensity.

    The autocorrelation A = |F⁻¹(I)| (I Hann-windowed per axis to avoid truncation
    ringing) of an object of extent L is supported on 2L. Its region above
    ``threshold`` × max (the connected part around the origin) spans E voxels along each
    axis; for a compact (ball-like) crystal A falls to t at a lag x_t·L (x_t = 0.73 for
    t = 0.1, see :func:`_sphere_fraction`), so L = E / (2 x_t) and σ = N / L.
    Faceted crystals land between a ball and a cube: ±10 % on simulated crystals.

    Returns (sigma (3,) float, extent E (3,) int voxels).
    """
    A = np.asarray(I, np.float64)
    if centre is not None:
        # put the peak at the array centre so the window is centred on it
        A = np.roll(A, [s // 2 - int(c) for s, c in zip(A.shape, centre)], axis=(0, 1, 2))
    for ax, n in enumerate(A.shape):
        w = np.hanning(n + 2)[1:-1]
        sh = [1, 1, 1]
        sh[ax] = n
        A = A * w.reshape(sh)
    ac = np.abs(np.fft.fftshift(sfft.ifftn(A, workers=fft_workers())))
    m = ac.max()
    if not m > 0:
        raise InputError("pattern: all zeros, cannot estimate the oversampling")
    c = tuple(s // 2 for s in ac.shape)
    lab, _ = ndimage.label(ac > threshold * m)
    region = lab == lab[c]
    ext = np.array([np.ptp(np.flatnonzero(region.any(axis=tuple(i for i in range(3) if i != ax)))) + 1
                    for ax in range(3)])
    L = ext / (2 * _sphere_fraction(threshold))
    return np.asarray(A.shape, float) / L, ext


def find_aliens(I: np.ndarray, bits: np.ndarray, peak: Sequence[int], sigma: Sequence[float], *,
                level: float = 0.5, ratio: float = 3.0, min_fringes: float = 3.0, min_voxels: int = 8,
                min_counts: float = 200.0, tolerance: int = 5, grow: int = 2) -> tuple[np.ndarray, int]:
    """Voxels of parasitic scattering (aliens): islands of signal that break Friedel symmetry.

    The intensity is smoothed by a σ = 1 voxel Gaussian (S) and cut at ``level`` counts;
    the connected region holding the Bragg peak — the crystal's own pattern with its
    fringes and facet streaks — is kept whole. Every *other* island of ≥ ``min_voxels``
    voxels and ≥ ``min_counts`` counts, more than ``min_fringes`` fringes from the peak
    (distance √Σ((q − p)/σ)² in speckle sizes σ per axis), is compared with its mirror
    through the peak: a crystal's pattern obeys I(q) ≈ I(−q) (Friedel), an alien does not.
    The mirror is read through a ``tolerance``-voxel maximum filter, because in detector
    coordinates the mirror of a far-out feature is displaced by the Ewald-sphere
    curvature. An island is an alien when ΣS > ``ratio`` × Σ mirror; it is masked
    grown by ``grow`` voxels (its tails lie below ``level``). Where the mirror falls
    outside the array or on masked voxels, nothing is judged (the island is kept).

    Returns (bool mask of alien voxels, number of alien islands).
    """
    S = ndimage.gaussian_filter(np.asarray(I, np.float32), 1.0)
    shape = np.array(I.shape)
    p = np.asarray(peak, int)
    lab, n = ndimage.label(S > level)
    if n <= 1:
        return np.zeros(I.shape, bool), 0
    main = lab[tuple(p)]
    idx = np.arange(1, n + 1)
    sizes = ndimage.sum_labels(np.ones(I.shape, np.float32), lab, idx)
    counts = ndimage.sum_labels(I, lab, idx)
    cands = [i for i in idx if i != main and sizes[i - 1] >= min_voxels and counts[i - 1] >= min_counts]
    if not cands:
        return np.zeros(I.shape, bool), 0
    Smax = ndimage.maximum_filter(S, size=tolerance)
    found = []
    objs = ndimage.find_objects(lab)
    for i in cands:
        sl = objs[i - 1]
        q = np.argwhere(lab[sl] == i) + np.array([s.start for s in sl])
        com = q.mean(axis=0)
        if np.sqrt(np.sum(((com - p) / np.asarray(sigma)) ** 2)) <= min_fringes:
            continue
        mir = 2 * p - q
        inside = np.all((mir >= 0) & (mir < shape), axis=1)
        if inside.mean() < 0.5 or (bits[tuple(mir[inside].T)] != 0).mean() > 0.5:
            continue
        s_here = float(S[tuple(q[inside].T)].sum())
        s_mirror = float(Smax[tuple(mir[inside].T)].sum())
        if s_here > ratio * s_mirror:
            found.append(i)
    if not found:
        return np.zeros(I.shape, bool), 0
    aliens = np.isin(lab, found)
    if grow:
        aliens = ndimage.binary_dilation(aliens, iterations=grow)
    return aliens, len(found)


def choose_binning(sigma: Sequence[float], target: float = 3.0, minimum: float = 2.0) -> tuple[int, int, int]:
    """Integer b per axis minimising |log(σ/b / target)| subject to σ/b ≥ ``minimum`` (b ≥ 1)."""
    out = []
    for s in sigma:
        cands = [b for b in range(1, max(1, int(s // minimum)) + 1) if s / b >= minimum] or [1]
        out.append(min(cands, key=lambda b: abs(np.log(s / b / target))))
    return tuple(int(b) for b in out)


def crop_and_bin(I: np.ndarray, bits: np.ndarray, peak: Sequence[int], binning: Sequence[int],
                 size: int = 64) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Cut a (size·b)³ box centred on ``peak`` (padding outside the data) and sum b-blocks.

    The box starts at p − (size/2)·b − b//2 on each axis, so the block holding the peak
    is block size/2 (the project's zero-frequency index n//2). Returns (binned float32,
    bits uint32, box start (z, y, x)).
    """
    b = np.asarray(binning, int)
    n_box = size * b
    start = np.asarray(peak, int) - (size // 2) * b - b // 2
    box = np.zeros(tuple(n_box), np.float32)
    box_bits = np.full(tuple(n_box), MASK_MISSING | MASK_INVALID, np.uint32)
    src = tuple(slice(max(0, s), min(n, s + m)) for s, m, n in zip(start, n_box, I.shape))
    dst = tuple(slice(sl.start - s, sl.stop - s) for sl, s in zip(src, start))
    box[dst] = I[src]
    box_bits[dst] = bits[src]
    shp = (size, b[0], size, b[1], size, b[2])
    ok = (box_bits == 0).reshape(shp)
    n_ok = ok.sum(axis=(1, 3, 5))
    total = np.where(box_bits == 0, box, 0).reshape(shp).sum(axis=(1, 3, 5), dtype=np.float64)
    per_block = int(np.prod(b))
    measured = n_ok * 2 > per_block
    out = np.where(measured, total * per_block / np.maximum(n_ok, 1), 0.0).astype(np.float32)
    out_bits = np.bitwise_or.reduce(np.bitwise_or.reduce(np.bitwise_or.reduce(
        box_bits.reshape(shp), axis=5), axis=3), axis=1)
    out_bits = np.where(measured, 0, out_bits | MASK_INVALID).astype(np.uint32)
    return out, out_bits, tuple(int(s) for s in start)


# --------------------------------------------------------------------------- driver


def prepare(raw, config: PrepConfig | None = None, echo: Callable[[str], None] | None = None) -> PrepResult:
    """Run all steps on a :class:`~autophase.io.raw34idc.RawScan`; see the module docstring."""
    cfg = config or PrepConfig()
    lines: list[str] = []

    def log(msg: str) -> None:
        lines.append(msg)
        if echo:
            echo(msg)

    frames = raw.frames
    n, rows, cols = frames.shape
    if min(frames.shape) < 2:
        raise InputError(f"{raw.source}: stack shape {frames.shape} is too small")
    counts_raw = float(frames.sum(dtype=np.float64))
    if not counts_raw > 0:
        raise InputError(f"{raw.source}: all frames are empty (0 counts)")
    desc = f"read: {n} frames {rows}×{cols} from {raw.source}, {counts_raw:.6g} counts"
    if raw.spec is not None:
        g = raw.geometry
        desc += (f"; scan {raw.spec.number} '{raw.spec.command}', E {g.energy_eV:.0f} eV, "
                 f"D {g.detector_distance_m:.3f} m, 2θ {g.two_theta_deg:.3f}°, d {g.d_spacing_m * 1e10:.4f} Å")
    log(desc)

    I, bits, st = correct_frames(frames, raw.dark, raw.white, raw.mask,
                                 dark_hot_threshold=cfg.dark_hot_threshold, white_dead_sigma=cfg.white_dead_sigma)
    if raw.dark is not None:
        log(f"dark: subtracted {Path(raw.dark_file).name if raw.dark_file else 'dark field'} "
            f"({st['dark_counts_per_frame']:.6g} counts/frame); {st['dark_hot_pixels']} pixel(s) with dark > "
            f"{cfg.dark_hot_threshold:g} masked as hot")
    else:
        log("dark: none given, no subtraction")
    if raw.white is not None:
        log(f"flat field: {Path(raw.white_file).name if raw.white_file else 'white field'} normalised to its mean "
            f"{st['white_mean']:.6g}; {st['white_zero']} dead (0) + {st['white_weak']} weak (< mean − "
            f"{cfg.white_dead_sigma:g}σ) pixel(s) masked")
    else:
        log("flat field: none given, no correction")

    n_sp = mask_spikes(I, bits, cfg.spike_ratio, cfg.spike_min_counts)
    log(f"hot voxels: {n_sp} isolated spike(s) > {cfg.spike_ratio:g}× their 3×3×3 median and > "
        f"{cfg.spike_min_counts:g} counts masked")

    peak = find_peak(I, cfg.centre)
    log(f"peak ({cfg.centre}): (z, y, x) = {peak}, {float(I[peak]):.6g} counts")

    sigma, ext = estimate_oversampling(I, cfg.autocorr_threshold, peak)
    if cfg.remove_aliens:
        aliens, n_al = find_aliens(I, bits, peak, sigma, level=cfg.alien_level, ratio=cfg.alien_ratio,
                                   min_fringes=cfg.alien_min_fringes, min_counts=cfg.alien_min_counts)
        al_counts = float(I[aliens].sum(dtype=np.float64))
        I[aliens] = 0.0
        bits[aliens] |= MASK_ALIEN | MASK_INVALID
        log(f"aliens: {n_al} region(s), {int(aliens.sum())} voxels, {al_counts:.6g} counts masked "
            f"(islands > {cfg.alien_level:g} counts apart from the peak's, > {cfg.alien_ratio:g}× their Friedel "
            f"mirror, > {cfg.alien_min_fringes:g} fringes out)")
        if n_al:
            sigma, ext = estimate_oversampling(I, cfg.autocorr_threshold, peak)
    else:
        log("aliens: removal off")
    log(f"oversampling (autocorrelation > {cfg.autocorr_threshold:g} of max, extent {tuple(int(e) for e in ext)} "
        f"voxels): {_fmt3(sigma)}")

    counts_corr = float(I.sum(dtype=np.float64))
    binning = tuple(cfg.binning) if cfg.binning else choose_binning(sigma, cfg.oversampling, cfg.min_oversampling)
    sig_b = tuple(float(s / b) for s, b in zip(sigma, binning))
    log(f"binning: {binning} ({'given' if cfg.binning else f'toward σ ≈ {cfg.oversampling:g}'}) → oversampling "
        f"{_fmt3(sig_b)}")

    out, out_bits, start = crop_and_bin(I, bits, peak, binning, cfg.size)
    kept = float(out.sum(dtype=np.float64))
    stop = tuple(s + cfg.size * b for s, b in zip(start, binning))
    pad = any(s < 0 or e > nn for s, e, nn in zip(start, stop, I.shape))
    box = ", ".join(f"{a} {s}:{e}" for a, s, e in zip("zyx", start, stop))
    log(f"crop: box {box} of {I.shape} ({'padded' if pad else 'inside'}) → {cfg.size}³; kept {kept:.6g} of "
        f"{counts_corr:.6g} counts ({100 * kept / counts_corr:.1f} %)")
    fpk = np.unravel_index(int(np.argmax(ndimage.gaussian_filter(out, 0.5))), out.shape)
    n_mask = int((out_bits != 0).sum())
    log(f"result: {cfg.size}³, max {float(out.max()):.6g} counts, smoothed peak at {tuple(int(i) for i in fpk)} "
        f"(centre {cfg.size // 2}), {n_mask} unmeasured voxel(s) ({100 * n_mask / out.size:.2f} %)")

    meta: dict = {
        "program": "autophase prep",
        "source": str(raw.source),
        "binning": np.array(binning, np.int32),
        "oversampling_raw": np.array(sigma, float),
        "oversampling": np.array(sig_b, float),
        "peak_raw_zyx": np.array(peak, np.int32),
        "box_start_zyx": np.array(start, np.int32),
        "counts_raw": counts_raw,
        "counts_corrected": counts_corr,
        "counts_kept": kept,
        "unmeasured_voxels": n_mask,
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        "notes": {"prep log": "\n".join(lines)},
    }
    if raw.geometry is not None:
        g = raw.geometry
        meta.update(energy_eV=g.energy_eV, detector_distance_m=g.detector_distance_m,
                    pixel_size_m=(g.pixel_size_m * binning[1], g.pixel_size_m * binning[2]),
                    voxel_size_m=g.voxel_size_m((cfg.size,) * 3, binning),
                    d_spacing_m=g.d_spacing_m, two_theta_deg=g.two_theta_deg,
                    rocking_step_deg=g.step_deg * binning[0], scan_motor=g.scan_motor,
                    delta_deg=g.delta_deg, gamma_deg=g.gamma_deg, instrument="APS 34-ID-C")
    if raw.spec is not None:
        meta.update(scan=raw.spec.number, scan_command=raw.spec.command, spec_file=raw.spec.source)
        meta.update(sample_circles(raw.spec))
    if raw.geometry is not None:
        _log_lab_geometry(meta, cfg.size, log)
        meta["notes"] = {"prep log": "\n".join(lines)}
    return PrepResult(intensity=out, mask_bits=out_bits, stack=I, stack_bits=bits, peak=peak,
                      oversampling_raw=tuple(float(s) for s in sigma), oversampling=sig_b, binning=binning,
                      box_start=start, counts_raw=counts_raw, counts_corrected=counts_corr, counts_kept=kept,
                      log=lines, metadata=meta)


def _log_lab_geometry(meta: dict, size: int, log: Callable[[str], None]) -> None:
    """One log line with the real-space steps of the size³ array in the lab frame.

    A geometry that cannot be oriented (δ = γ = 0, rocking in the detector plane) is not
    an error of the pattern: its angles are dropped from ``meta`` so that phasing keeps
    the detector frame, and the log says why.
    """
    from .geometry import ScanGeometry, basis_angles, why_no_geometry

    try:
        geo = ScanGeometry.from_metadata(meta)
    except InputError as e:
        for k in ("delta_deg", "gamma_deg"):
            meta.pop(k, None)
        log(f"geometry: {e}; outputs will stay in the detector frame")
        return
    if geo is None:
        log(f"geometry: the scan {why_no_geometry(meta)}; outputs will stay in the detector frame")
        return
    B = geo.real_basis((size,) * 3)
    steps = np.linalg.norm(B, axis=0)
    ang = basis_angles(B)
    log(f"geometry: |Q| {geo.q_nm:.4f} nm⁻¹, d {geo.d_spacing_nm:.5f} nm; real-space steps (rocking, rows, "
        f"columns) {steps[0]:.2f}, {steps[1]:.2f}, {steps[2]:.2f} nm at {ang[0]:.1f}°/{ang[1]:.1f}°/{ang[2]:.1f}° "
        f"(lab-frame outputs on a {steps.min():.2f} nm grid)")


def plot_prep(result: PrepResult, path: str | os.PathLike, title: str = "") -> Path:
    """Central slices (log₁₀(1 + I)) through the peak: corrected stack (top), 64³ output (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_path

    fig, axes = plt.subplots(2, 3, figsize=(13, 9))
    fig.subplots_adjust(hspace=0.4)
    for row, (vol, c, label) in enumerate([
        (result.stack, result.peak, f"before: corrected stack {result.stack.shape}, peak {result.peak}"),
        (result.intensity, (result.intensity.shape[0] // 2,) * 3,
         f"after: binning {result.binning}, {result.intensity.shape}, σ ≈ "
         + "/".join(f"{s:.2f}" for s in result.oversampling)),
    ]):
        vmax = np.log10(1 + float(vol.max()))
        cuts = [(vol[c[0]], "y", "x", f"z = {c[0]}"), (vol[:, c[1]], "z", "x", f"y = {c[1]}"),
                (vol[:, :, c[2]], "z", "y", f"x = {c[2]}")]
        for k, (img, ylab, xlab, where) in enumerate(cuts):
            ax = axes[row, k]
            im = ax.imshow(np.log10(1 + img), cmap="magma", vmin=0, vmax=vmax, origin="lower",
                           aspect="auto", interpolation="nearest")
            ax.set_xlabel(xlab)
            ax.set_ylabel(ylab)
            ax.set_title(f"{label}\n{where}" if k == 1 else f"\n{where}", fontsize=9)
        fig.colorbar(im, ax=axes[row, :].tolist(), shrink=0.85, label="log₁₀(1 + counts)")
    fig.suptitle(title or "prep", fontsize=11)
    p = Path(path)
    with atomic_path(p.with_suffix(".png")) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return p.with_suffix(".png")
