"""The simulation's physics, piece by piece: lattice, facets, strain, voxels, diffraction, LAMMPS."""
from __future__ import annotations

import numpy as np
import pytest

from autophase.physics.forward import intensity, magnitude
from autophase.physics.metrics import chi2
from autophase.simulate.config import SimulationConfig, parse_photons
from autophase.simulate.crystal import fcc_cube, random_crystal
from autophase.simulate.pipeline import crystal_rng, simulate_crystal
from autophase.simulate.strain import G111, random_strain
from autophase.simulate.voxelize import base_bin, diffract, voxelize


def test_fcc_cube_is_a_closed_centred_fcc_lattice():
    L = 6
    pos = fcc_cube(L)
    assert pos.shape == (((2 * L + 1) ** 3 + 1) // 2, 3)
    assert np.allclose(pos.mean(axis=0), 0) and np.allclose(pos.max(axis=0), L / 2)
    # nearest-neighbour distance of fcc with a = 1 is 1/√2, with 12 neighbours in the bulk
    d = np.linalg.norm(pos - pos[np.argmin(np.linalg.norm(pos, axis=1))], axis=1)
    d = np.sort(d)[1:]
    assert np.isclose(d[0], 1 / np.sqrt(2)) and np.sum(np.isclose(d, 1 / np.sqrt(2))) == 12


def test_random_crystal_respects_its_facets_and_is_reproducible():
    for seed in range(5):
        c = random_crystal(np.random.default_rng(seed), 12)
        assert 4 <= len(c.normals) <= 20 and len(set(map(tuple, c.normals))) == len(c.normals)
        assert set(c.families) <= {"100", "110", "111"}
        proj = c.positions @ c.normals.T
        assert (proj <= c.distances + 1e-9).all()
        # the crystal is not empty and each plane lies at least 0.55 h from the centre
        assert c.n_atoms > 100 and (c.distances >= 0.55 * 6 - 1e-12).all()
        c2 = random_crystal(np.random.default_rng(seed), 12)
        assert np.array_equal(c.positions, c2.positions)
    with pytest.raises(ValueError):
        random_crystal(np.random.default_rng(0), 5)


def test_strain_is_bounded_and_smooth():
    rng = np.random.default_rng(3)
    h = 10.0
    pts = rng.uniform(-h, h, size=(2000, 3))
    for s in range(20):
        f = random_strain(np.random.default_rng(s), h, max_strain=0.01)
        assert np.abs(f.principal_strains()).max() <= 0.01 + 1e-12
        # numerical displacement gradient: the homogeneous ≤ 1 % plus the smooth field ≤ ~1 %
        eps = 1e-3
        grads = np.stack([(f.displacement(pts + eps * e) - f.displacement(pts - eps * e)) / (2 * eps)
                          for e in np.eye(3)], axis=-1)
        assert np.linalg.norm(grads, ord=2, axis=(1, 2)).max() < 0.025
    # column arithmetic equals the matrix formula for the homogeneous part
    f = random_strain(np.random.default_rng(1), h)
    z = np.zeros
    from autophase.simulate.strain import StrainField
    hom = StrainField(f.gradient, z((0, 3)), z((0, 3)), z(0), z((3, 3, 3)), f.incl_center, 1.0, 0.0)
    assert np.allclose(hom.displacement(pts), pts @ f.gradient.T)


def test_voxelize_uniform_density_and_linear_phase():
    L = 16
    pos = np.array(fcc_cube(L))
    b = base_bin(L)
    assert b == 1.0  # (16 + 10) / 32 → the next multiple of ½
    alpha = 0.004
    disp = np.zeros_like(pos)
    disp[:, 2] = alpha * pos[:, 2]  # u = (0, 0, α x): u·[111]/√3 = α x / √3
    v = voxelize(pos + disp, disp @ G111, b)
    amp, ph = np.abs(v.obj), np.angle(v.obj)
    assert v.obj.shape == (32, 32, 32) and v.obj.dtype == np.complex64
    assert np.isclose(amp.max(), 1.0)
    inner = amp[10:22, 10:22, 10:22]
    assert inner.std() < 0.01  # commensurate bins + CIC: no moiré inside the crystal
    # phase slope along x: 2π α bin / √3 per voxel (an atom at x sits at x' = (1 + α) x)
    slope = np.diff(ph[16, 16, 10:22]).mean()
    assert np.isclose(slope, 2 * np.pi * alpha * b / ((1 + alpha) * np.sqrt(3)), rtol=0.01)
    assert abs(np.sum(amp * ph) / np.sum(amp)) < 1e-3  # mean phase removed


def test_diffract_scaling_noise_and_chi2_at_the_noise_level():
    obj = np.zeros((32, 32, 32), np.complex64)
    obj[8:24, 10:22, 9:23] = np.exp(1j * np.linspace(0, 1, 14))[None, None, :]
    rng = np.random.default_rng(0)
    d = diffract(obj, 1e8, rng)
    assert d.magnitude.shape == (64, 64, 64) and d.magnitude.dtype == np.float32
    assert d.truth.dtype == np.complex64
    expected = intensity(d.truth.astype(np.complex128))
    assert np.isclose(expected.sum(), 1e8, rtol=1e-5)
    assert abs(d.counts - 1e8) < 6 * np.sqrt(1e8)
    assert np.allclose(np.round(d.magnitude.astype(np.float64) ** 2), d.magnitude.astype(np.float64) ** 2,
                       atol=1e-3)
    # |F(truth)| fits the noisy data exactly as well as the truth fits a fresh Poisson draw
    fit = chi2(magnitude(d.truth), d.magnitude)
    fresh = chi2(magnitude(d.truth), np.sqrt(np.random.default_rng(1).poisson(expected)).astype(np.float32))
    assert 0.9 < fit / fresh < 1.1
    assert chi2(magnitude(d.truth), d.magnitude) < 0.01
    with pytest.raises(ValueError):
        diffract(obj, 0.0, rng)


def test_simulate_crystal_is_a_pure_function_of_seed_and_index():
    cfg = SimulationConfig(n_crystals=3, size_cells=8, seed=5)
    a = simulate_crystal(cfg, 1)[0]
    b = simulate_crystal(cfg, 1)[0]
    assert a.magnitude.tobytes() == b.magnitude.tobytes()
    assert a.truth.tobytes() == b.truth.tobytes()
    c = simulate_crystal(cfg, 2)[0]
    assert a.magnitude.tobytes() != c.magnitude.tobytes()
    # adding rotations leaves sample 0 of every crystal unchanged and adds new patterns
    cfg_rot = SimulationConfig(n_crystals=3, size_cells=8, seed=5, rotations=2)
    rot = simulate_crystal(cfg_rot, 1)
    assert len(rot) == 3 and [s.meta["index"] for s in rot] == [3, 4, 5]
    assert rot[0].magnitude.tobytes() == a.magnitude.tobytes()
    assert rot[1].magnitude.tobytes() != a.magnitude.tobytes()
    # a rotated crystal has (about) the same number of atoms in its voxels: total density
    assert np.isclose(np.abs(rot[1].truth).sum() / np.abs(rot[1].truth).max(),
                      np.abs(a.truth).sum() / np.abs(a.truth).max(), rtol=0.2)
    assert a.support.dtype == bool and a.support.sum() > 100
    # streams are independent: a different seed gives a different crystal
    assert crystal_rng(5, 1, 0).integers(1 << 30) != crystal_rng(6, 1, 0).integers(1 << 30)


def test_default_size_is_twenty_nanometres_in_a_32_cube():
    cfg = SimulationConfig(n_crystals=1)
    assert cfg.size_cells == 49 and np.isclose(49 * 4.078, 199.8, atol=0.1)
    s = simulate_crystal(cfg, 0)[0]
    sup = s.support[16:48, 16:48, 16:48]
    assert sup.any() and not s.support[:16].any()  # the object lives in the central 32³
    extent = max(np.ptp(np.nonzero(sup)[k]) + 1 for k in range(3))
    assert 10 <= extent <= 27  # ≤ 49/2 + a voxel of density edge at bin = 2
    assert s.params["bin_lu"] == 2.0


@pytest.mark.parametrize("bad", [dict(n_crystals=0), dict(n_crystals=-3), dict(n_crystals=2, size_cells=5),
                                 dict(n_crystals=2, size_cells=129), dict(n_crystals=2, photons_min=0.0),
                                 dict(n_crystals=2, photons_min=1e9, photons_max=1e7),
                                 dict(n_crystals=2, relax="md"), dict(n_crystals=2, rotations=-1)])
def test_config_rejects_impossible_values(bad):
    with pytest.raises(ValueError):
        SimulationConfig(**bad)


def test_config_round_trip_is_strict():
    cfg = SimulationConfig(n_crystals=4, seed=2, photons_min=1e7, photons_max=1e8)
    assert SimulationConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        SimulationConfig.from_dict({**cfg.to_dict(), "n_crystal": 3})
    assert parse_photons("1e8") == (1e8, 1e8) and parse_photons("1e7:1e9") == (1e7, 1e9)
    with pytest.raises(ValueError):
        parse_photons("lots")


def test_lammps_relaxation_lowers_the_energy_and_keeps_atom_order():
    from autophase.simulate.relax import RelaxSettings, potential_path, relax_lammps

    assert potential_path().name == "Au_u3.eam"
    c = random_crystal(np.random.default_rng(0), 6, n_facets=4)
    f = random_strain(np.random.default_rng(1), 3.0)
    pos = c.positions + f.displacement(c.positions)
    res = relax_lammps(pos, RelaxSettings(maxiter=200))
    assert res.positions.shape == pos.shape and res.n_atoms == len(pos)
    assert 0 < res.iterations <= 200
    assert res.energy_final_eV < res.energy_initial_eV
    # EAM gold binds ≈3.9 eV per atom in the bulk, less at the surface of a tiny crystal
    assert -3.93 < res.energy_final_eV / res.n_atoms < -3.3
    # atoms come back in input order (relaxation moves them by a fraction of a lattice unit)
    moved = np.linalg.norm(res.positions - pos, axis=1)
    assert np.median(moved) < 0.1 and moved.max() < 0.5


# --- domain randomisation (autophase.simulate.domain) ------------------------------------

def _domain_cfg(n=24, **over):
    from autophase.simulate.domain import DomainConfig

    return SimulationConfig(n_crystals=n, size_cells=8, seed=5, photons_min=1e5, photons_max=1e10,
                            domain=DomainConfig(**over))


def test_domain_is_off_by_default_and_round_trips():
    plain = SimulationConfig(n_crystals=2)
    assert "domain" not in plain.to_dict()  # runs made before it existed resume unchanged
    cfg = _domain_cfg(p_gap=0.0)
    d = cfg.to_dict()
    assert d["domain"]["p_gap"] == 0.0 and d["domain"]["oversampling"] == [2.5, 5.0]
    assert SimulationConfig.from_dict(d) == cfg
    with pytest.raises(ValueError, match="domain.oversampling"):
        _domain_cfg(oversampling=(1.5, 5.0))
    with pytest.raises(ValueError, match="unknown domain"):
        SimulationConfig.from_dict({**d, "domain": {**d["domain"], "p_gaps": 0.1}})


def test_domain_knobs_are_recorded_and_in_range():
    cfg = _domain_cfg()
    seen = {"shape": set(), "rounded": set(), "substrate": set(), "dis": 0, "fault": 0, "shift": 0,
            "blur": 0, "bg": 0, "gap": 0, "stop": 0}
    for c in range(cfg.n_crystals):
        s = simulate_crystal(cfg, c)[0]
        k, p = s.meta["domain"], s.params["domain"]
        assert p["shape"] == k["shape"] and p["measurement"]["peak_shift"] == k["peak_shift"]
        assert all(2.5 * 0.98 <= o <= 5.0 * 1.02 for o in k["oversampling"]), k["oversampling"]
        if k["shape"] == "platelet":
            assert sorted(k["oversampling"])[1] < sorted(k["oversampling"])[2] - 0.4  # one thin axis
        assert 1e5 <= s.meta["photons"] <= 1e10
        assert 0.3 <= k["strain_scale"] <= 2.5
        shift = np.abs(k["peak_shift"])
        assert shift.max() == 0 or 1 <= shift.max() <= 2
        assert k["coherence_sigma_vox"] == 0 or 0.2 <= k["coherence_sigma_vox"] <= 1.0
        assert k["background_per_voxel"] == 0 or 1e-3 <= k["background_per_voxel"] <= 0.3
        # unmeasured voxels are −1 in the magnitude (the training convention), and only they
        assert int((s.magnitude < 0).sum()) == k["unmeasured_voxels"]
        assert np.all(s.magnitude[s.magnitude < 0] == -1)
        for g in p["measurement"]["gaps"]:
            sl = [slice(None)] * 3
            sl[g["axis"]] = slice(g["start"], g["start"] + g["width"])
            assert np.all(s.magnitude[tuple(sl)] == -1) and 1 <= g["width"] <= 4
        seen["shape"].add(k["shape"])
        seen["rounded"].add(k["rounded"])
        seen["substrate"].add(k["substrate"])
        seen["dis"] += k["n_dislocations"] > 0
        seen["fault"] += k["n_faults"] > 0
        seen["shift"] += bool(shift.max())
        seen["blur"] += k["coherence_sigma_vox"] > 0
        seen["bg"] += k["background_per_voxel"] > 0
        seen["gap"] += k["n_gaps"] > 0
        seen["stop"] += k["beamstop_radius_vox"] > 0
    assert seen["shape"] == {"polyhedron", "platelet", "rod"}
    assert seen["rounded"] == {True, False} and seen["substrate"] == {True, False}
    assert all(seen[k] > 0 for k in ("dis", "fault", "shift", "blur", "bg", "gap", "stop")), seen
    assert all(seen[k] < cfg.n_crystals for k in ("dis", "fault", "shift", "blur", "bg", "gap", "stop")), seen


def test_domain_measurement_physics():
    from autophase.physics.forward import far_field
    from autophase.simulate.domain import DomainConfig, _blur, measure
    from scipy import ndimage

    obj = np.zeros((32, 32, 32), np.complex64)
    obj[10:22, 12:20, 9:23] = np.exp(1j * np.linspace(0, 2, 8))[None, :, None]
    dc = DomainConfig(p_shift=1, p_blur=0, p_background=0, p_gap=0, p_beamstop=0)
    mag, truth, measured, counts, p = measure(obj, 1e12, np.random.default_rng(3), dc)
    s = p["peak_shift"]
    assert 1 <= max(abs(v) for v in s) <= 2 and measured.all()
    # the truth carries the ramp: its far field is the centred one moved by s, and it is the data
    I0 = np.abs(far_field(np.pad(obj, 16))) ** 2
    I1 = np.abs(far_field(truth)) ** 2
    np.testing.assert_allclose(I1 / I1.sum(), np.roll(I0, s, (0, 1, 2)) / I0.sum(), rtol=1e-4, atol=1e-8)
    assert chi2(np.sqrt(I1), mag, fit_scale=True) < 1e-5
    # partial coherence: the Fourier-domain product is a periodic Gaussian convolution (equal
    # to a sampled kernel's once σ ≳ 1 voxel, where the kernel's spectrum is not aliased)
    I = np.random.default_rng(0).random((64, 64, 64))
    np.testing.assert_allclose(_blur(I, 1.2), ndimage.gaussian_filter(I, 1.2, mode="wrap", truncate=8),
                               atol=2e-3)
    assert abs(_blur(I, 0.5).sum() - I.sum()) < 1e-6 * I.sum() and _blur(I, 0.5).std() < I.std()
    # background raises the dark voxels; gaps/beamstop are −1
    dc = DomainConfig(p_shift=0, p_blur=0, p_background=1, background=(0.2, 0.2), p_gap=1, max_gaps=1,
                      p_beamstop=1, beamstop_radius=(2.0, 2.0))
    mag, _, measured, _, p = measure(obj, 1e6, np.random.default_rng(4), dc)
    assert p["background_per_voxel"] == 0.2 and not measured[32, 32, 32] and measured[32, 32, 35]
    assert abs(float((mag[measured][:] ** 2)[I0[measured] < 1e-9 * I0.max()].mean()) - 0.2) < 0.02


def test_domain_training_loss_ignores_unmeasured_voxels():
    import torch

    from autophase.train.loss import loss_from_magnitudes

    cfg = _domain_cfg(n=1, p_blur=0, p_background=0, p_gap=1, max_gaps=2, p_beamstop=1)
    s = simulate_crystal(cfg, 0)[0]
    assert (s.magnitude < 0).sum() > 0
    F = torch.from_numpy(np.abs(magnitude(s.truth)).astype(np.float32))[None]
    M = torch.from_numpy(s.magnitude)[None]
    c_masked = float(loss_from_magnitudes(F, M))
    # the truth fits the measured voxels to the noise level; reading −1 as data would not
    assert c_masked < 0.05
    assert float(loss_from_magnitudes(F, M.clamp_min(0) + 0 * M)) > c_masked


def test_domain_crystal_is_a_pure_function_of_seed_and_index():
    cfg = _domain_cfg(n=3)
    a = simulate_crystal(cfg, 2)
    b = simulate_crystal(SimulationConfig.from_dict(cfg.to_dict()), 2)
    assert np.array_equal(a[0].magnitude, b[0].magnitude) and a[0].params == b[0].params
    assert not np.array_equal(simulate_crystal(cfg, 1)[0].magnitude, a[0].magnitude)


def test_domain_run_is_rank_invariant_and_resumes(tmp_path):
    """Two MPI ranks write the same shards (magnitudes, masks, every recorded knob) as one."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from autophase.data.shards import MAGNITUDE, META, open_shard

    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        pytest.skip("no mpiexec beside the interpreter")
    args = ["--n-crystals", "3", "--size", "8", "--shard-size", "1", "--seed", "3", "--domain",
            '{"p_gap": 0.7, "p_beamstop": 0.5}', "--no-progress"]

    def sim(out, ranks):
        cmd = [sys.executable, "-m", "autophase.cli", "simulate", *args, "--out", str(out)]
        if ranks > 1:
            cmd = [str(mpiexec), "-n", str(ranks), *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        return r.stdout

    sim(tmp_path / "one", 1)
    sim(tmp_path / "two", 2)
    for k in range(3):
        name = f"shard-{k:05d}.h5"
        with open_shard(tmp_path / "one" / name) as a, open_shard(tmp_path / "two" / name) as b:
            assert np.array_equal(a[MAGNITUDE][()], b[MAGNITUDE][()])
            ma, mb = [json.loads(x) for x in a[META][()]], [json.loads(x) for x in b[META][()]]
            assert ma == mb and "domain" in ma[0]
            assert (a[MAGNITUDE][()] < 0).sum() == sum(m["domain"]["unmeasured_voxels"] for m in ma)
    (tmp_path / "two" / "shard-00002.h5").unlink()  # a lost shard is made again, identical
    assert "1 written, 2 already there" in sim(tmp_path / "two", 1)
    with open_shard(tmp_path / "one" / "shard-00002.h5") as a, open_shard(tmp_path / "two" / "shard-00002.h5") as b:
        assert np.array_equal(a[MAGNITUDE][()], b[MAGNITUDE][()])
