"""The second crystal generator and the three test sources (autophase.testsets)."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from autophase.testsets import generator as g2
from autophase.testsets.generator import PHASE_TERMS, generate
from autophase.testsets.sources import SCAN54_RAW, load_source, noise_floor_chi2

SEEDS = range(6)


@pytest.fixture(scope="module")
def crystals():
    return {s: generate(s) for s in SEEDS}


def test_deterministic_per_seed(crystals):
    again = generate(3)
    c = crystals[3]
    assert np.array_equal(again.obj, c.obj) and np.array_equal(again.counts, c.counts)
    assert json.dumps(again.params, sort_keys=True) == json.dumps(c.params, sort_keys=True)
    assert not np.array_equal(crystals[4].obj, c.obj)


def test_photons_do_not_change_the_crystal(crystals):
    c = generate(2, photons=1e8)
    assert np.array_equal(c.obj, crystals[2].obj)
    assert abs(c.counts.sum() / 1e8 - 1) < 1e-3


def test_shapes_dtypes_and_centring(crystals):
    for c in crystals.values():
        assert c.obj.shape == c.counts.shape == (64, 64, 64)
        assert c.obj.dtype == np.complex64 and c.counts.dtype == np.float32
        assert np.all(c.counts >= 0) and np.array_equal(c.counts, np.round(c.counts))
        amp = np.abs(c.obj)
        assert amp.max() <= 1.0 + 1e-6 and np.isclose(np.median(amp[amp >= 0.5]), 1.0)
        centroid = [float((amp * i).sum() / amp.sum()) for i in np.indices(amp.shape)]
        assert np.allclose(centroid, 32, atol=0.2), centroid


def test_sizes_in_range(crystals):
    for c in crystals.values():
        ext = c.params["extent_zyx"]
        idx = np.nonzero(np.abs(c.obj) >= 0.5)
        assert ext == [int(i.max() - i.min() + 1) for i in idx]
        assert 16 <= max(ext) <= 24, ext
    small = generate(0, n=32, size_range=(8, 10))
    assert small.obj.shape == (32, 32, 32) and 8 <= small.params["size"] <= 10


def test_counts_follow_the_far_field_of_the_object(crystals):
    """E[counts] = scale·|F(obj)|², F the centred unitary FFT (written out here with numpy)."""
    for c in list(crystals.values())[:3]:
        o = c.obj.astype(np.complex128)
        F = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(o))) / np.sqrt(o.size)
        lam = c.scale * np.abs(F) ** 2
        assert np.isclose(lam.sum(), 1e6, rtol=1e-9)
        assert abs(c.counts.sum() - 1e6) < 5 * 1e3          # Poisson: σ = √1e6
        bright = lam > 20
        z = (c.counts[bright] - lam[bright]) ** 2 / lam[bright]
        assert 0.9 < z.mean() < 1.1                          # Poisson variance = mean
        assert np.allclose(np.abs(c.truth) ** 2, c.scale * np.abs(c.obj) ** 2, rtol=1e-5)


def _winding(obj: np.ndarray, term: dict, radius: float = 2.0, n: int = 72) -> float:
    p = np.asarray(term["point_index"], float)
    v, w = np.asarray(term["v"]), np.asarray(term["w"])
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    pts = p[:, None] + radius * (np.outer(v, np.cos(t)) + np.outer(w, np.sin(t)))
    z = (ndimage.map_coordinates(obj.real, pts, order=1) + 1j * ndimage.map_coordinates(obj.imag, pts, order=1))
    assert np.abs(z).min() > 0.5  # the loop runs inside the crystal
    d = np.angle(np.roll(z, -1) / z)
    return float(d.sum() / (2 * np.pi))


@pytest.mark.parametrize("others", [0.0, 1.0])
def test_vortex_winds_once_around_its_line(others):
    prob = {t: others for t in PHASE_TERMS}
    prob["vortex"] = 1.0
    prob["jump"] = 0.0  # a fault plane through the loop would add its step, not a winding
    for seed in (1, 7):
        c = generate(seed, phase_probability=prob)
        (term,) = [t for t in c.params["phase_terms"] if t["term"] == "vortex"]
        assert round(_winding(c.obj, term), 6) == term["charge"] in (-1, 1)
        # away from the line, deep inside the crystal, a loop sees no net winding
        p0, tdir = np.asarray(term["point_index"], float), np.asarray(term["direction"])
        deep = np.argwhere(ndimage.minimum_filter(np.abs(c.obj), size=5) > 0.99)
        rel = deep - p0
        dist = np.linalg.norm(rel - np.outer(rel @ tdir, tdir), axis=1)
        far = deep[dist > 2.5]
        assert len(far)
        assert abs(_winding(c.obj, dict(term, point_index=far[0].tolist()), radius=1.0)) < 1e-6


def test_every_knob_recorded_and_replays(crystals):
    c = crystals[5]
    p = json.loads(json.dumps(c.params))
    for key in ("seed", "n", "size_range", "photons", "edge_voxels", "p_substrate", "phase_probability",
                "shape", "phase_terms", "target_size", "shape_scale_voxels", "shape_centroid_voxels", "scale"):
        assert key in p, key
    assert p["shape"]["kind"] in g2.SHAPES and p["phase_terms"]
    again = generate(p["seed"], n=p["n"], size_range=tuple(p["size_range"]), photons=p["photons"],
                     edge=p["edge_voxels"], p_substrate=p["p_substrate"], phase_probability=p["phase_probability"])
    assert np.array_equal(again.obj, c.obj)
    kinds = {x.params["shape"]["kind"] for x in crystals.values()}
    assert len(kinds) >= 4, kinds  # seeds 0–5 already draw polyhedron, rod, rounded, superellipsoid


def test_independent_of_the_project_simulator():
    tree = ast.parse(Path(g2.__file__).read_text())
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert mods <= {"__future__", "itertools", "dataclasses", "numpy", "physics.forward"}, mods


@pytest.mark.parametrize("kw", [dict(seed=-1), dict(seed=0, size_range=(20, 40)), dict(seed=0, photons=0),
                                dict(seed=0, phase_probability={"vortex": 2.0}), dict(seed=0, edge=0)])
def test_bad_knobs_are_refused(kw):
    with pytest.raises(ValueError):
        generate(**kw)


def test_sources_share_one_interface():
    sim = load_source("simulator", 1, 0)
    gen = load_source("generator2", 2, 1)
    assert [i.name for i in gen] == ["generator2/s1/0", "generator2/s1/1"]
    assert not np.array_equal(gen[0].magnitude, load_source("generator2", 1, 0)[0].magnitude)
    for it in sim + gen:
        assert it.magnitude.shape == it.measured.shape == it.truth.shape == (64, 64, 64)
        assert it.magnitude.dtype == np.float32 and it.truth.dtype == np.complex64
        # the truth explains the data down to Poisson noise; a blurred truth does worse
        assert 0 < it.noise_floor_chi2 < 0.05
        blurred = ndimage.gaussian_filter(it.truth.real, 1.5) + 1j * ndimage.gaussian_filter(it.truth.imag, 1.5)
        assert noise_floor_chi2(blurred, it.magnitude) > 1.5 * it.noise_floor_chi2
    clean = np.abs(np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(gen[0].truth), norm="ortho")))
    assert noise_floor_chi2(gen[0].truth, clean.astype(np.float32)) < 1e-10
    with pytest.raises(ValueError, match="unknown source"):
        load_source("nope", 1, 0)
    with pytest.raises(ValueError, match="n_items"):
        load_source("generator2", 0, 0)


@pytest.mark.skipif(not SCAN54_RAW.exists(), reason="scan 54 frames not present")
def test_scan54_source_is_the_prepared_measurement():
    items = load_source("scan54", 2, 5)
    assert [i.seed for i in items] == [5, 6] and items[0].truth is None and items[0].noise_floor_chi2 is None
    a = items[0]
    assert a.magnitude.shape == (64, 64, 64) and (~a.measured).sum() > 0
    assert np.all(a.magnitude[~a.measured] == 0)
    assert np.unravel_index(np.argmax(ndimage.gaussian_filter(a.counts, 0.5)), a.counts.shape) == (32, 32, 32)
