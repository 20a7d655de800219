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
    if cfg.domain is not None:
        return simulate_domain_crystal(cfg, crystal)
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


def _relax(cfg: SimulationConfig, r0: np.ndarray, pos: np.ndarray, n_atoms: int):
    """LAMMPS relaxation where enabled: (positions, displacements, record)."""
    relax = {"method": "none", "n_atoms": n_atoms, "iterations": 0, "energy_drop_eV": None}
    if cfg.relax == "lammps":
        from .relax import relax_lammps

        res = relax_lammps(pos, cfg.relax_settings)
        pos = res.positions
        relax = {"method": "lammps", **{k: v for k, v in res.stats().items() if k != "seconds"}}
    return pos, pos - r0, relax


def simulate_domain_crystal(cfg: SimulationConfig, crystal: int) -> list[Sample]:
    """The samples of crystal ``crystal`` with every knob of ``cfg.domain`` drawn (:mod:`.domain`).

    Same record layout as :func:`simulate_crystal`; ``meta["domain"]`` holds the knobs a
    data set is filtered by (shape, per-axis oversampling, peak shift, blur, background,
    unmeasured voxels, defects) and ``params["domain"]`` every drawn value. The magnitude
    is −1 at unmeasured voxels (the training convention).
    """
    from .domain import (STREAM_DEFECTS, STREAM_MEASURE, STREAM_SHAPE, domain_shape, extra_strain, measure,
                         oversampling_of, random_defects, voxelize_phasor)

    dc = cfg.domain
    bin0 = base_bin(cfg.size_cells)
    shape = domain_shape(crystal_rng(cfg.seed, crystal, STREAM_SHAPE), dc, bin0)
    r0 = shape.positions
    half = np.asarray(shape.params["half_extent_lu"])
    srng = crystal_rng(cfg.seed, crystal, STREAM_DEFECTS)
    scale = _log_uniform(srng, *dc.strain_scale)
    budget = min(cfg.max_strain * scale, 0.19)
    strain = random_strain(srng, float(half.mean()), budget)
    u_extra, extra_params = extra_strain(srng, dc, float(half.mean()), budget)
    defects = random_defects(srng, dc, half)
    pos, u, relax = _relax(cfg, r0, r0 + strain.displacement(r0) + u_extra(r0), len(r0))
    # the phase in periods: the project's 2π u·[111]/√3, plus the defects' phase fields
    periods = u[:, 0] * G111[0] + u[:, 1] * G111[1] + u[:, 2] * G111[2] + defects.field(r0)
    periods = periods - periods.mean()
    centre = 0.5 * (pos.min(axis=0) + pos.max(axis=0))
    o_min = dc.oversampling[0]

    out = []
    for r in range(cfg.samples_per_crystal):
        rng = crystal_rng(cfg.seed, crystal, STREAM_MEASURE + r)
        R = np.eye(3) if r == 0 else random_rotation(rng)
        p = pos if r == 0 else _rotate(pos, centre, R)
        extent = float((p.max(axis=0) - p.min(axis=0)).max())
        bin_lu = max(bin0, extent / (64.0 / o_min))  # a rotated crystal widens its bin to fit
        obj, origin = voxelize_phasor(p, periods, bin_lu)
        photons = _log_uniform(rng, cfg.photons_min, cfg.photons_max)
        mag, truth, measured, counts, mparams = measure(obj, photons, rng, dc)
        support = support_from_amplitude(truth, 0.1)
        ovs = [round(v, 6) for v in oversampling_of(p, bin_lu)]
        index = crystal * cfg.samples_per_crystal + r
        seed = [int(cfg.seed), int(crystal)]
        phase_min, phase_max = float(2 * np.pi * periods.min()), float(2 * np.pi * periods.max())
        knobs = {
            "shape": shape.params["shape"], "oversampling": ovs,
            "rounded": shape.params["rounding_lu"] > 0, "substrate": shape.params["substrate"] is not None,
            "strain_scale": scale, "n_dislocations": len(defects.dislocations), "n_faults": len(defects.faults),
            "phase_range_rad": phase_max - phase_min, "peak_shift": mparams["peak_shift"],
            "coherence_sigma_vox": mparams["coherence_sigma_vox"],
            "background_per_voxel": mparams["background_per_voxel"],
            "n_gaps": len(mparams["gaps"]), "beamstop_radius_vox": mparams["beamstop_radius_vox"],
            "unmeasured_voxels": mparams["unmeasured_voxels"],
        }
        meta = {
            "index": index, "crystal": crystal, "rotation": r, "seed": seed,
            "photons": photons, "counts": counts, "n_atoms": int(len(r0)),
            "n_facets": 6 + len(shape.params["cuts"]), "bin_lu": bin_lu,
            "relax": {k: relax[k] for k in ("method", "iterations", "energy_drop_eV")},
            "domain": knobs,
        }
        params = {
            "index": index, "crystal": crystal, "rotation": r, "seed": seed, "photons": photons,
            "crystal_params": shape.params, "strain": strain.params(), "relax": relax,
            "rotation_matrix": R.round(12).tolist(), "bin_lu": bin_lu, "origin_lu": origin.tolist(),
            "phase_min": phase_min, "phase_max": phase_max,
            "domain": {**knobs, "extra_strain": extra_params, "defects": defects.params(),
                       "measurement": mparams},
        }
        out.append(Sample(mag, truth, support, meta, params))
    return out
