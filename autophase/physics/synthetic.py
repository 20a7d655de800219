"""Voxel-level synthetic crystals: fast, dependency-free test objects and the bundled demo.

These are *not* the training data (that is :mod:`autophase.simulate`, atomistic fcc gold
with strain and optional LAMMPS relaxation); they are a faceted convex polyhedron drawn
directly on the voxel grid with a smooth strain-like phase, good enough to exercise
phasing, metrics and the CLI in milliseconds.

Geometry: a sphere of radius ``radius`` voxels clipped by ``n_facets`` planes whose
normals are drawn from the {100}, {110} and {111} families (randomly rotated as a
whole), at distances 0.6–1.0 × radius from the centre. Edges are anti-aliased over one
voxel. Phase: a sum of a few low-order polynomial/sinusoidal displacement terms scaled
so that its peak-to-peak value inside the crystal is ``phase_range`` radians.
"""
from __future__ import annotations

import itertools

import numpy as np

from .forward import intensity, pad_object

__all__ = ["FAMILIES", "random_rotation", "faceted_crystal", "noisy_pattern"]


def _family(v):
    out = set()
    for p in itertools.permutations(v):
        for s in itertools.product((1, -1), repeat=3):
            w = tuple(a * b for a, b in zip(p, s))
            if any(w):
                out.add(w)
    return sorted(out)


FAMILIES = {
    "100": np.array(_family((1, 0, 0)), float),
    "110": np.array(_family((1, 1, 0)), float),
    "111": np.array(_family((1, 1, 1)), float),
}
for _k, _v in FAMILIES.items():
    FAMILIES[_k] = _v / np.linalg.norm(_v, axis=1, keepdims=True)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3×3 rotation matrix (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def faceted_crystal(n: int = 32, radius: float | None = None, n_facets: int | None = None,
                    phase_range: float = 2.0, seed: int | np.random.Generator = 0) -> np.ndarray:
    """A complex (n, n, n) complex64 faceted crystal, amplitude in [0, 1], centred.

    Parameters
    ----------
    n : grid size (voxels per axis).
    radius : circumscribed radius in voxels (default 0.36 n, so the crystal fits in n).
    n_facets : number of clipping planes (default random 4–20).
    phase_range : peak-to-peak phase inside the crystal (rad).
    seed : int seed or a numpy Generator.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    radius = 0.36 * n if radius is None else float(radius)
    n_facets = int(rng.integers(4, 21)) if n_facets is None else int(n_facets)
    rot = random_rotation(rng)
    normals = np.concatenate(list(FAMILIES.values()))
    pick = rng.choice(len(normals), size=min(n_facets, len(normals)), replace=False)
    planes = normals[pick] @ rot.T
    dists = rng.uniform(0.6, 1.0, size=len(planes)) * radius

    c = (np.arange(n) - n // 2).astype(np.float32)
    z, y, x = np.meshgrid(c, c, c, indexing="ij")
    r = np.stack([z, y, x], -1)
    # signed distance to the polyhedron boundary (positive inside), then a 1-voxel ramp
    sd = radius - np.sqrt(z * z + y * y + x * x)
    for nrm, d in zip(planes, dists):
        sd = np.minimum(sd, d - r @ nrm.astype(np.float32))
    amp = np.clip(sd + 0.5, 0.0, 1.0)

    # smooth displacement field: a random quadratic form plus one long-wavelength wave
    a = rng.normal(size=(3, 3)) / radius ** 2
    k = rng.normal(size=3) * (np.pi / (2 * radius))
    phi = np.einsum("...i,ij,...j->...", r, a, r) + np.sin(r @ k + rng.uniform(0, 2 * np.pi))
    inside = amp > 0.5
    phi = phi - phi[inside].mean()
    span = np.ptp(phi[inside]) or 1.0
    phi *= phase_range / span
    return (amp * np.exp(1j * phi)).astype(np.complex64)


def noisy_pattern(obj: np.ndarray, photons: float = 1e6, seed: int | np.random.Generator = 0,
                  pad: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Poisson counts of |F(obj)|² scaled to ``photons`` in total.

    Returns ``(counts, rho)``: counts float32 (2n)³ with the Bragg peak at the centre, and
    the padded object rescaled so that |F(rho)|² has exactly the expected counts (the
    noise-free truth in the same units as the data).
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    rho = pad_object(obj) if pad else np.asarray(obj)
    I = intensity(rho.astype(np.complex128))
    scale = photons / I.sum()
    counts = rng.poisson(I * scale).astype(np.float32)
    return counts, (rho * np.sqrt(scale)).astype(np.complex64)
