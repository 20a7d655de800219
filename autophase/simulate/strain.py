"""Random strain for a crystal: a homogeneous mix of compression, tension and shear plus
smooth inhomogeneous displacement fields, all in lattice units.

The displacement of an atom at ideal site r (lattice units, crystal centre at 0) is

    u(r) = E r                                     homogeneous: compression/tension/shear
         + Σ_m a_m ê_m sin(k_m·r + ψ_m)            1–3 long-wavelength waves (λ = 1–4 h)
         + ½ B : (r ⊗ r)                           bending (a linearly varying strain)
         + A (r − r₀) exp(−|r − r₀|² / 2s²)        a Gaussian centre of dilatation
                                                    (an inclusion or a void: A ≷ 0)

with h the crystal's half-width. Two strain amplitudes are drawn: ε_hom ~ U(0.2, 1) × 1 %
for the homogeneous mix and ε_inh ~ U(0.2, 1) × 1 % for the smooth field, the latter
split among its three terms by Dirichlet(1, 1, 1) weights w; each term is scaled so that
its largest displacement gradient over the crystal is about its share:

* E: a Gaussian 3×3 matrix scaled to spectral norm ε_hom. Its symmetric part's
  eigenvalues are the principal strains (negative: compression, positive: tension); its
  off-diagonal symmetric part is shear; its antisymmetric part a small rigid rotation.
* waves: a_m |k_m| = w ε_inh / n_waves, so each wave's strain amplitude is bounded.
* bending: ‖B‖_F · h = w ε_inh (the strain at a face centre).
* inclusion: |A| = w ε_inh (the dilatation at its centre; |A(r − r₀) exp(…)| peaks at
  A s e^{-½} ≈ 0.6 A s), centre within ±h/2, width s = 0.2–0.6 h.

So the applied homogeneous strain is at most 1 % and the local strain at most ≈2 %
before relaxation, and the [111] phase 2π u·[111]/√3 spans from a few tenths of a
radian to ≈3 rad over a 20 nm crystal (median ≈1 rad) — the range seen in measured gold
crystals. The field is smooth on the scale of the 2-lattice-unit voxels, so
voxelisation does not alias it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MAX_STRAIN", "G111", "StrainField", "random_strain"]

MAX_STRAIN = 0.01
G111 = np.full(3, 1.0 / np.sqrt(3.0))  # unit vector along the Bragg vector [111]


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class StrainField:
    """A displacement field u(r) (lattice units → lattice units); see the module docstring.

    gradient   : (3, 3) E, the homogeneous displacement gradient (dimensionless).
    wave_amp   : (m, 3) a_m ê_m, wave amplitudes × polarisations (lattice units).
    wave_k     : (m, 3) wave vectors (rad per lattice unit).
    wave_phase : (m,) phase offsets ψ_m (rad).
    bend       : (3, 3, 3) B_ijk, symmetric in j, k (per lattice unit).
    incl_center, incl_width, incl_amp : r₀ (3,), s and A of the centre of dilatation.
    """

    gradient: np.ndarray
    wave_amp: np.ndarray
    wave_k: np.ndarray
    wave_phase: np.ndarray
    bend: np.ndarray
    incl_center: np.ndarray
    incl_width: float
    incl_amp: float

    def displacement(self, r: np.ndarray) -> np.ndarray:
        """u(r) for positions r of shape (n, 3) float64 (lattice units) → (n, 3) float64.

        Written as column arithmetic rather than matrix products: the operation order is
        then fixed, so the result is bit-identical whatever BLAS threads are available
        (the data must not depend on how many ranks or cores made them).
        """
        r = np.asarray(r, np.float64)
        z, y, x = r[:, 0], r[:, 1], r[:, 2]
        cols = (z, y, x)
        E = self.gradient
        u = np.empty_like(r)
        for i in range(3):
            u[:, i] = E[i, 0] * z + E[i, 1] * y + E[i, 2] * x
        for amp, k, psi in zip(self.wave_amp, self.wave_k, self.wave_phase):
            s = np.sin(k[0] * z + k[1] * y + k[2] * x + psi)
            for i in range(3):
                u[:, i] += amp[i] * s
        # ½ B_ijk r_j r_k over the 6 distinct monomials (B is symmetric in j, k)
        B = self.bend
        for j in range(3):
            for k in range(j, 3):
                m = cols[j] * cols[k]
                f = 0.5 if j == k else 1.0
                for i in range(3):
                    if B[i, j, k] != 0.0:
                        u[:, i] += (f * B[i, j, k]) * m
        if self.incl_amp != 0.0:
            d = r - self.incl_center
            g = self.incl_amp * np.exp(-(d[:, 0] ** 2 + d[:, 1] ** 2 + d[:, 2] ** 2)
                                       / (2.0 * self.incl_width ** 2))
            u += d * g[:, None]
        return u

    def principal_strains(self) -> np.ndarray:
        """Eigenvalues of sym(E), ascending (negative = compression, positive = tension)."""
        return np.linalg.eigvalsh(0.5 * (self.gradient + self.gradient.T))

    def params(self) -> dict:
        """JSON-ready description (kept with the truth of every sample)."""
        sym = 0.5 * (self.gradient + self.gradient.T)
        return {
            "gradient": self.gradient.round(8).tolist(),
            "principal_strains": self.principal_strains().round(8).tolist(),
            "max_shear": float(np.abs(sym - np.diag(np.diag(sym))).max()),
            "waves": [{"amp": a.round(8).tolist(), "k": k.round(8).tolist(), "phase": float(p)}
                      for a, k, p in zip(self.wave_amp, self.wave_k, self.wave_phase)],
            "bend_norm": float(np.linalg.norm(self.bend)),
            "inclusion": {"center": self.incl_center.round(6).tolist(),
                          "width": float(self.incl_width), "amp": float(self.incl_amp)},
        }


def random_strain(rng: np.random.Generator, half_width: float,
                  max_strain: float = MAX_STRAIN) -> StrainField:
    """Draw a StrainField for a crystal of half-width ``half_width`` (lattice units)."""
    if not (half_width > 0 and 0 <= max_strain < 0.2):
        raise ValueError(f"need half_width > 0 and 0 ≤ max_strain < 0.2, got {half_width}, {max_strain}")
    h = float(half_width)
    eps_hom = rng.uniform(0.2, 1.0) * max_strain
    eps_inh = rng.uniform(0.2, 1.0) * max_strain
    w_wave, w_bend, w_incl = rng.dirichlet(np.ones(3)) * eps_inh

    E = rng.normal(size=(3, 3))
    E *= eps_hom / np.linalg.norm(E, 2)

    n_waves = int(rng.integers(1, 4))
    wave_amp = np.empty((n_waves, 3))
    wave_k = np.empty((n_waves, 3))
    for m in range(n_waves):
        k = 2.0 * np.pi / (rng.uniform(1.0, 4.0) * h)
        wave_k[m] = k * _unit(rng)
        wave_amp[m] = (w_wave / n_waves / k) * _unit(rng)
    wave_phase = rng.uniform(0.0, 2.0 * np.pi, size=n_waves)

    B = rng.normal(size=(3, 3, 3))
    B = 0.5 * (B + B.transpose(0, 2, 1))
    B *= w_bend / (np.linalg.norm(B) * h)

    center = rng.uniform(-0.5, 0.5, size=3) * h
    width = rng.uniform(0.2, 0.6) * h
    amp = w_incl * rng.choice((-1.0, 1.0))
    return StrainField(E, wave_amp, wave_k, wave_phase, B, center, float(width), float(amp))
