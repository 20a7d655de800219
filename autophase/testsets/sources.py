"""Three sources of test patterns behind one interface: ``load_source(name, n_items, seed)``.

* ``"simulator"`` — the project's own simulator
  (:func:`autophase.simulate.pipeline.simulate_crystal`, unrelaxed, the held-out sets'
  code path), crystal i of ``SimulationConfig(seed=seed)``, ``photons`` per pattern;
* ``"generator2"`` — the independent generator (:func:`autophase.testsets.generator.generate`),
  crystal i of set ``seed`` is ``generate(seed * 1_000_000 + i)``;
* ``"scan54"`` — the measured APS 34-ID-C scan 54, prepared once with ``autophase prep``
  (the command itself, run as a subprocess) and cached as ``runs/testsets/scan54.cxi``;
  there is one pattern and no truth, so its ``n_items`` items are that pattern with
  phasing seeds ``seed, seed + 1, …``.

Every item carries the seed a phasing run on it should use (``Item.seed``), so a table
over a source is reproducible from (name, n_items, seed) alone.
"""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..paths import cache_dir, checkout_root
from ..physics import metrics
from ..physics.forward import magnitude as far_field_magnitude

__all__ = ["Item", "SOURCES", "ACCEPTANCE_SETS", "load_source", "noise_floor_chi2", "prep_scan54", "SCAN54_RAW", "CACHE_DIR"]

SOURCES = ("simulator", "generator2", "scan54")
#: (source, set seed) pairs nothing may be chosen on: issue 15's acceptance set
ACCEPTANCE_SETS = frozenset({("generator2", 1)})
# runs/testsets in a checkout, the user's cache from a wheel; the measured scan in the shared
# data beside the checkout (as CI lays it) unless AUTOPHASE_SCAN54 names it
CACHE_DIR = (checkout_root() / "runs" / "testsets") if checkout_root() is not None else cache_dir("testsets")
SCAN54_RAW = Path(os.environ.get("AUTOPHASE_SCAN54")
                  or Path(__file__).resolve().parents[3] / "shared" / "data" / "aps34idc-scan54") / "frames"


@dataclass
class Item:
    """One test pattern.

    name      : unique within its source, e.g. ``generator2/s0/3``.
    magnitude : (z, y, x) float32, √counts, Bragg peak at the centre, 0 where unmeasured.
    measured  : (z, y, x) bool, False where the detector did not measure.
    truth     : (z, y, x) complex64 in the data's units (|F(truth)|² = expected counts), or None.
    noise_floor_chi2 : χ² (eq. 2, over measured voxels) of |F(truth)| against the noisy
        magnitude — what a perfect reconstruction scores; None without truth.
    seed      : the seed a phasing run on this item uses.
    params    : how the item was made (JSON-able).
    """

    name: str
    magnitude: np.ndarray
    measured: np.ndarray
    truth: np.ndarray | None
    noise_floor_chi2: float | None
    seed: int
    params: dict = field(default_factory=dict)

    @property
    def counts(self) -> np.ndarray:
        return self.magnitude.astype(np.float32) ** 2


def noise_floor_chi2(truth: np.ndarray, mag: np.ndarray, measured: np.ndarray | None = None) -> float:
    """χ² of the exact object against its own noisy data: |F(truth)| vs ``mag`` on ``measured``."""
    return float(metrics.chi2(far_field_magnitude(truth.astype(np.complex128)), mag.astype(np.float64), measured))


def _simulator(n_items: int, seed: int, photons: float) -> list[Item]:
    from ..simulate.config import SimulationConfig
    from ..simulate.pipeline import simulate_crystal

    cfg = SimulationConfig(n_crystals=n_items, seed=seed, photons_min=photons, photons_max=photons, relax="none")
    out = []
    for i in range(n_items):
        s = simulate_crystal(cfg, i)[0]
        mag = np.asarray(s.magnitude, np.float32)
        truth = np.asarray(s.truth, np.complex64)
        meas = np.ones(mag.shape, bool)
        out.append(Item(f"simulator/s{seed}/{i}", mag, meas, truth, noise_floor_chi2(truth, mag, meas),
                        seed=seed * 1000 + i,
                        params={"source": "simulator", "config": {"n_crystals": n_items, "seed": seed,
                                                                  "photons": photons, "relax": "none"},
                                "crystal": i, "n_facets": s.meta.get("n_facets"), "counts": s.meta.get("counts")}))
    return out


def _generator2(n_items: int, seed: int, photons: float) -> list[Item]:
    from .generator import generate

    out = []
    for i in range(n_items):
        c = generate(seed * 1_000_000 + i, photons=photons)
        mag, truth = c.magnitude, c.truth
        meas = np.ones(mag.shape, bool)
        out.append(Item(f"generator2/s{seed}/{i}", mag, meas, truth, noise_floor_chi2(truth, mag, meas),
                        seed=seed * 1000 + i, params={"source": "generator2", **c.params}))
    return out


def prep_scan54(raw: str | os.PathLike = SCAN54_RAW, cache: str | os.PathLike | None = None) -> Path:
    """Run ``autophase prep RAW -o runs/testsets/scan54.cxi --no-plot`` once; return the .cxi path."""
    path = Path(cache) if cache else CACHE_DIR / "scan54.cxi"
    if path.exists():
        return path
    if not Path(raw).exists():
        raise FileNotFoundError(f"scan 54 frames not found at {raw} (set AUTOPHASE_SCAN54)")
    path.parent.mkdir(parents=True, exist_ok=True)
    # prep writes its .cxi atomically: the cache holds a whole pattern or none
    cmd = [sys.executable, "-m", "autophase.cli", "prep", str(raw), "-o", str(path), "--no-plot"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0 or not path.exists():
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RuntimeError(f"autophase prep failed on {raw}: {tail[0]}")
    (path.with_suffix(".prep.log")).write_text(" ".join(cmd) + "\n" + r.stdout)
    return path


def _scan54(n_items: int, seed: int) -> list[Item]:
    from ..io.patterns import load_pattern

    path = prep_scan54()
    pat = load_pattern(path)
    return [Item(f"scan54/seed{seed + k}", pat.magnitude, pat.measured, None, None, seed=seed + k,
                 params={"source": "scan54", "file": str(path), "raw": str(SCAN54_RAW),
                         "counts": float((pat.magnitude.astype(np.float64) ** 2).sum()),
                         "unmeasured_voxels": int((~pat.measured).sum())})
            for k in range(n_items)]


def load_source(name: str, n_items: int, seed: int, photons: float = 1e6) -> list[Item]:
    """``n_items`` items of source ``name`` ("simulator", "generator2", "scan54"), set ``seed``.

    ``photons`` (expected total counts per simulated pattern) is ignored for "scan54".
    Different ``seed`` values give disjoint crystals (use one for choosing, another for reporting).
    """
    if name not in SOURCES:
        raise ValueError(f"unknown source {name!r} (one of {', '.join(SOURCES)})")
    if isinstance(n_items, bool) or not isinstance(n_items, (int, np.integer)) or n_items < 1:
        raise ValueError(f"n_items must be a positive integer, got {n_items!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if name == "simulator":
        return _simulator(int(n_items), int(seed), float(photons))
    if name == "generator2":
        return _generator2(int(n_items), int(seed), float(photons))
    return _scan54(int(n_items), int(seed))
