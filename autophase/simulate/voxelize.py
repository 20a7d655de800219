"""From atoms to a diffraction pattern: 32³ complex density, 64³ far field, Poisson counts.

Voxelisation (the paper's binning): the atoms are deposited on a 32³ grid whose bin is
``bin_lu`` lattice units: the smallest multiple of ½ that fits the run's uncut cube plus
≈5 lattice units of margin per side, i.e. ``ceil(2 (size_cells + 2·5) / 32) / 2`` —
exactly 2 for the default 49-cell (20 nm) crystal, the paper's "≈2 lattice units". A
multiple of the {100} plane spacing ½ makes the bins commensurate with the lattice, so a
perfect crystal fills every interior voxel with the same number of atoms (no moiré); a
rotated crystal that would not fit widens its own bin just enough. The crystal's
bounding-box centre sits on voxel 16, which :func:`~autophase.physics.pad_object` puts on
the 64³ array centre. With bin 2 a 49-cell crystal spans ≤ 24.5 voxels: oversampling
≥ 2.6 per axis (the paper trained at ≈3).

* amplitude = number density / its maximum, in [0, 1];
* phase     = 2π ⟨u · [111]/√3⟩ (u the displacement in lattice units, averaged over the
  atoms of each voxel), minus its density-weighted mean (a global phase is not
  measurable) — the paper's "displacement projected along [111] scaled by 2π".

Deposition is cloud-in-cell (each atom shared trilinearly among its 8 nearest voxel
centres) rather than nearest-bin counting: CIC's response vanishes at the commensurate
lattice frequencies, and for rotated crystals (incommensurate) it keeps the moiré below
1 % where nearest-bin counting gives ≈8 %. It is 8 weighted ``np.bincount`` calls on flat
voxel indices (no Python loop over atoms).

Diffraction: the 32³ object is zero-padded to 64³ and transformed by the project's
forward model (:func:`~autophase.physics.intensity`); the expected counts are that
intensity scaled to ``photons`` in total and the measurement is Poisson-distributed
counts. The truth is the padded object scaled by √(photons / ΣI), so |F(truth)|² *is*
the expected counts (the noise-free truth in data units).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..physics.forward import intensity, pad_object

__all__ = ["OBJECT_N", "ARRAY_N", "PAD_LU", "base_bin", "Voxels", "voxelize", "Diffraction",
           "diffract"]

OBJECT_N = 32   # the object grid (the square support: half the array)
ARRAY_N = 64    # the diffraction pattern
PAD_LU = 5.0    # margin around the crystal, lattice units (≈ 20 Å)


def base_bin(size_cells: int, n: int = OBJECT_N, pad: float = PAD_LU) -> float:
    """The run's bin (lattice units): the smallest multiple of ½ with cube + 2·pad ≤ n bins."""
    return float(np.ceil(2.0 * (float(size_cells) + 2.0 * pad) / n - 1e-9)) / 2.0


@dataclass(frozen=True)
class Voxels:
    """A voxelised crystal.

    obj     : (n, n, n) complex64, amplitude·e^{iφ}; amplitude in [0, 1].
    bin_lu  : edge of a voxel in lattice units.
    origin  : (3,) position (lattice units, (z, y, x)) of voxel (0, 0, 0)'s centre.
    """

    obj: np.ndarray
    bin_lu: float
    origin: np.ndarray


def voxelize(positions: np.ndarray, disp111: np.ndarray, min_bin: float, n: int = OBJECT_N,
             pad: float = PAD_LU) -> Voxels:
    """Deposit atoms on an n³ grid: amplitude from density, phase from u·[111] (see module doc).

    positions : (n_atoms, 3) float64, actual (displaced) atom positions, lattice units.
    disp111   : (n_atoms,) float64, each atom's displacement projected on [111]/√3.
    min_bin   : the run's bin (lattice units); widened if the crystal plus ``pad`` does not fit.
    """
    pos = np.asarray(positions, np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] == 0:
        raise ValueError(f"positions must be a non-empty (n, 3) array, got {pos.shape}")
    lo, hi = pos.min(axis=0), pos.max(axis=0)
    centre = 0.5 * (lo + hi)
    bin_lu = max(float(min_bin), (float((hi - lo).max()) + 2.0 * pad) / n)
    origin = centre - (n // 2) * bin_lu

    # grid coordinate g: voxel j's centre is at g = j
    g = (pos - origin) / bin_lu
    i0 = np.floor(g).astype(np.int64)
    f = g - i0
    if i0.min() < 0 or i0.max() + 1 >= n:  # cannot happen with pad ≥ 1 bin; guard the indexing
        raise ValueError("crystal does not fit in the voxel grid")
    base = (i0[:, 0] * n + i0[:, 1]) * n + i0[:, 2]
    w = (1.0 - f, f)  # per-axis weights of the lower and upper neighbour
    p = np.asarray(disp111, np.float64)
    p = p - p.mean()  # density-weighted mean phase → 0
    dens = np.zeros(n ** 3)
    disp = np.zeros(n ** 3)
    for dz in (0, 1):
        wz = w[dz][:, 0]
        for dy in (0, 1):
            wzy = wz * w[dy][:, 1]
            for dx in (0, 1):
                wt = wzy * w[dx][:, 2]
                idx = base + (dz * n * n + dy * n + dx)
                dens += np.bincount(idx, weights=wt, minlength=n ** 3)
                disp += np.bincount(idx, weights=wt * p, minlength=n ** 3)
    amp = dens / dens.max()
    with np.errstate(invalid="ignore", divide="ignore"):
        phase = np.where(dens > 0, 2.0 * np.pi * disp / dens, 0.0)
    obj = (amp * np.exp(1j * phase)).astype(np.complex64).reshape(n, n, n)
    return Voxels(obj, bin_lu, origin)


@dataclass(frozen=True)
class Diffraction:
    """One simulated measurement.

    magnitude : (M, M, M) float32, √counts, Bragg peak at the centre (M = 2n).
    truth     : (M, M, M) complex64, the padded object scaled so |F(truth)|² = expected counts.
    counts    : total detected photons (int, the sum of the Poisson draws).
    """

    magnitude: np.ndarray
    truth: np.ndarray
    counts: int


def diffract(obj: np.ndarray, photons: float, rng: np.random.Generator,
             shape: tuple[int, int, int] = (ARRAY_N,) * 3) -> Diffraction:
    """Zero-pad ``obj`` to ``shape``, I = |F|² scaled to ``photons`` expected, Poisson counts."""
    if not (np.isfinite(photons) and photons > 0):
        raise ValueError(f"photons must be a positive number, got {photons}")
    rho = pad_object(np.asarray(obj, np.complex64), shape)
    I = intensity(rho)
    total = float(I.sum(dtype=np.float64))
    if total <= 0:
        raise ValueError("empty object: the intensity is zero everywhere")
    scale = photons / total
    counts = rng.poisson(I.astype(np.float64) * scale)
    mag = np.sqrt(counts).astype(np.float32)
    truth = (rho * np.float32(np.sqrt(scale))).astype(np.complex64)
    return Diffraction(mag, truth, int(counts.sum()))
