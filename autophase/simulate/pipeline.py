"""One crystal from seed to diffraction patterns: crystal → strain → (relax) → voxelise → FFT + noise.

:func:`simulate_crystal` is a pure function of (configuration, crystal index): every
random draw comes from ``SeedSequence(entropy=seed, spawn_key=(index, stream))`` with a
fixed stream per purpose, so crystal i is the same whichever rank makes it, in whatever
order, and a pattern does not change when other options (rotations) are added. Nothing
machine-dependent (wall times, host names) goes into a sample's record, so the shard
files themselves are byte-identical whatever R:

    stream 0      facets            stream 1      strain
    stream 2 + r  sample r: its rotation (r ≥ 1), photon count and Poisson noise

Sample r = 0 is the crystal as cut (lattice axes on the grid axes, G = [111] along the
body diagonal); samples r ≥ 1 rotate the relaxed atoms by a uniformly random rotation
about the crystal's centre *before* voxelisation, carrying each atom's [111] displacement
with it. That is the paper's rotation augmentation done on the atoms: each rotated
sample is a new, correctly sampled pattern (new orientation to the grid, new facet
fringes), not a resampled copy of a pattern. (Flips and 90° turns of stored patterns are
offered separately, at training time, by :class:`autophase.data.dataset.MagnitudeDataset`.)

Example::

    >>> cfg = SimulationConfig(n_crystals=1, size_cells=12)
    >>> [s.magnitude.shape for s in simulate_crystal(cfg, 0)]
    [(64, 64, 64)]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..physics.forward import support_from_amplitude
from ..physics.synthetic import random_rotation
from .config import SimulationConfig
from .crystal import random_crystal
from .strain import G111, random_strain
from .voxelize import base_bin, diffract, voxelize

__all__ = ["STREAM_FACETS", "STREAM_STRAIN", "STREAM_SAMPLE", "crystal_rng", "Sample",
           "simulate_crystal"]

STREAM_FACETS, STREAM_STRAIN, STREAM_SAMPLE = 0, 1, 2


def crystal_rng(seed: int, crystal: int, stream: int) -> np.random.Generator:
    """The generator of ``stream`` for crystal ``crystal`` of a run seeded ``seed``."""
    ss = np.random.SeedSequence(entropy=int(seed), spawn_key=(int(crystal), int(stream)))
    return np.random.Generator(np.random.PCG64(ss))


@dataclass
class Sample:
    """One simulated pattern and its truth.

    magnitude : (64, 64, 64) float32, √counts (the only thing training sees).
    truth     : (64, 64, 64) complex64, padded object with |F(truth)|² = expected counts.
    support   : (64, 64, 64) bool, |truth| > 10 % of its maximum.
    meta      : bookkeeping for the manifest (index, crystal, rotation, seed, photons, …).
    params    : the truth's description (facets, strain, rotation, relaxation, bin).
    """

    magnitude: np.ndarray
    truth: np.ndarray
    support: np.ndarray
    meta: dict
    params: dict


def _rotate(pos: np.ndarray, centre: np.ndarray, R: np.ndarray) -> np.ndarray:
    """R (pos − centre) + centre, as column arithmetic (bit-identical whatever the BLAS threads)."""
    d = pos - centre
    out = np.empty_like(d)
    for i in range(3):
        out[:, i] = R[i, 0] * d[:, 0] + R[i, 1] * d[:, 1] + R[i, 2] * d[:, 2] + centre[i]
    return out


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    if lo == hi:
        return float(lo)
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def simulate_crystal(cfg: SimulationConfig, crystal: int) -> list[Sample]:
    """The ``1 + cfg.rotations`` samples of crystal ``crystal`` (see the module docstring)."""
    if not 0 <= crystal < cfg.n_crystals:
        raise ValueError(f"crystal index {crystal} outside [0, {cfg.n_crystals})")
    xtal = random_crystal(crystal_rng(cfg.seed, crystal, STREAM_FACETS), cfg.size_cells)
    strain = random_strain(crystal_rng(cfg.seed, crystal, STREAM_STRAIN), cfg.size_cells / 2.0,
                           cfg.max_strain)
    r0 = xtal.positions
    u = strain.displacement(r0)
    pos = r0 + u
    relax = {"method": "none", "n_atoms": xtal.n_atoms, "iterations": 0, "energy_drop_eV": None}
    if cfg.relax == "lammps":
        from .relax import relax_lammps

        res = relax_lammps(pos, cfg.relax_settings)
        pos = res.positions
        u = pos - r0
        # no wall time in the record: shard bytes must not depend on the machine's load
        relax = {"method": "lammps", **{k: v for k, v in res.stats().items() if k != "seconds"}}
    disp111 = u[:, 0] * G111[0] + u[:, 1] * G111[1] + u[:, 2] * G111[2]
    centre = 0.5 * (pos.min(axis=0) + pos.max(axis=0))

    out = []
    min_bin = base_bin(cfg.size_cells)
    for r in range(cfg.samples_per_crystal):
        rng = crystal_rng(cfg.seed, crystal, STREAM_SAMPLE + r)
        R = np.eye(3) if r == 0 else random_rotation(rng)
        p = pos if r == 0 else _rotate(pos, centre, R)
        vox = voxelize(p, disp111, min_bin)
        photons = _log_uniform(rng, cfg.photons_min, cfg.photons_max)
        d = diffract(vox.obj, photons, rng)
        support = support_from_amplitude(d.truth, 0.1)
        phase = np.angle(vox.obj)[np.abs(vox.obj) > 0.1]
        index = crystal * cfg.samples_per_crystal + r
        seed = [int(cfg.seed), int(crystal)]
        meta = {
            "index": index, "crystal": crystal, "rotation": r, "seed": seed,
            "photons": photons, "counts": d.counts, "n_atoms": xtal.n_atoms,
            "n_facets": len(xtal.normals), "bin_lu": vox.bin_lu,
            "relax": {k: relax[k] for k in ("method", "iterations", "energy_drop_eV")},
        }
        params = {
            "index": index, "crystal": crystal, "rotation": r, "seed": seed,
            "photons": photons, "crystal_params": xtal.params(), "strain": strain.params(),
            "relax": relax, "rotation_matrix": R.round(12).tolist(), "bin_lu": vox.bin_lu,
            "origin_lu": vox.origin.tolist(),
            "phase_min": float(phase.min()) if phase.size else 0.0,
            "phase_max": float(phase.max()) if phase.size else 0.0,
        }
        out.append(Sample(d.magnitude, d.truth, support, meta, params))
    return out
