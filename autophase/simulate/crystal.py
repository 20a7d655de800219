"""Faceted fcc gold nanocrystals as atom positions (the paper's "Simulated data generation").

A crystal starts as a cube of ``size_cells`` fcc unit cells (lattice constant 1: every
length here is in *lattice units*, 1 = a_Au = 4.078 Å), holding every lattice site
``p`` with ``0 ≤ p ≤ size_cells`` along each axis, so the cube is closed on all six
faces and symmetric about its centre. The default 49 cells is a ≈20 nm cube
(49 × 4.078 Å = 19.98 nm, 4·49³ + … ≈ 485 k atoms).

It is then cut by 4–20 planes drawn without replacement from the 26 high-symmetry
normals ({100}: 6, {110}: 12, {111}: 8). A plane with unit normal n at distance d from
the cube centre keeps the atoms with ``r · n ≤ d``. ``d`` is uniform in
``[0.55 h, h·‖n‖₁]`` where h is the cube's half-width and ``h·‖n‖₁`` is the cube's own
extent along n (its support function: h for {100}, √2 h for {110}, √3 h for {111}), so a
plane may shave a cube face down to 55 % of the half-width (a platelet), cut a corner
or an edge deep enough to make an octahedron or a rhombic dodecahedron, or just touch
the cube and cut nothing. Random distances on random families give the spread of sizes
and habits (truncated cubes and octahedra, platelets, wedges) of the paper's data.

Positions are ``(n_atoms, 3)`` float64 with columns in the ``(z, y, x)`` order of every
array in this project, centred on the cube centre (the origin). The lattice is not
rotated: the crystal axes [100], [010], [001] are the grid axes, so the Bragg vector
G = [111] is the array's body diagonal (the paper's convention).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..physics.synthetic import FAMILIES

__all__ = ["LATTICE_A", "MIN_CELLS", "MAX_CELLS", "DEFAULT_CELLS", "Crystal", "fcc_cube",
           "random_crystal", "check_size"]

LATTICE_A = 4.078  # Å, gold at room temperature: converts lattice units to Å for LAMMPS
DEFAULT_CELLS = 49  # ≈ 20 nm
MIN_CELLS = 6       # below this the 32³ grid samples less than one atom per voxel
MAX_CELLS = 128     # 8.4 M atoms: ≈ 0.6 GiB of positions, the most one rank should hold

_NORMALS = np.concatenate([FAMILIES["100"], FAMILIES["110"], FAMILIES["111"]])
_MILLER = np.rint(_NORMALS / np.abs(_NORMALS).max(axis=1, keepdims=True)).astype(np.int64)
_FAMILY_OF = ["100"] * len(FAMILIES["100"]) + ["110"] * len(FAMILIES["110"]) + ["111"] * len(FAMILIES["111"])
_D_MIN = 0.55


def check_size(size_cells: int) -> int:
    """Return ``size_cells`` as an int or raise ValueError naming the allowed range."""
    if int(size_cells) != size_cells or not MIN_CELLS <= int(size_cells) <= MAX_CELLS:
        raise ValueError(f"crystal size must be an integer number of unit cells in "
                         f"[{MIN_CELLS}, {MAX_CELLS}], got {size_cells}")
    return int(size_cells)


@functools.lru_cache(maxsize=4)
def _cube_sites(size_cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Doubled integer coordinates (3, n) int16 and centred positions (n, 3) float64, read-only.

    fcc sites are the points of the half-integer grid whose doubled coordinates have an
    even sum (corners (0,0,0) and face centres (0,½,½), …). Cached: every crystal of a
    run starts from the same cube. The doubled coordinates, centred (−L … L), make every
    plane test exact integer arithmetic (see :func:`random_crystal`).
    """
    m = 2 * check_size(size_cells) + 1
    i = np.arange(m, dtype=np.int16) - size_cells
    iz, iy, ix = np.meshgrid(i, i, i, indexing="ij")
    keep = ((iz + iy + ix) % 2 == 0).ravel()
    doubled = np.stack([iz.ravel()[keep], iy.ravel()[keep], ix.ravel()[keep]])
    pos = np.ascontiguousarray(doubled.T, dtype=np.float64) * 0.5
    doubled.setflags(write=False)
    pos.setflags(write=False)
    return doubled, pos


def fcc_cube(size_cells: int) -> np.ndarray:
    """All fcc sites of a closed cube of ``size_cells`` cells, centred: (n, 3) float64, read-only."""
    return _cube_sites(size_cells)[1]


@dataclass(frozen=True)
class Crystal:
    """A faceted crystal: ideal lattice sites (no strain yet) and the planes that cut it.

    positions : (n_atoms, 3) float64, lattice units, (z, y, x) columns, cube centre at 0.
    normals   : (n_facets, 3) float64 unit normals of the cutting planes.
    distances : (n_facets,) float64, plane distances from the centre (lattice units).
    families  : the family ("100", "110", "111") of each plane.
    size_cells: the edge of the cube it was cut from, in unit cells.
    """

    positions: np.ndarray
    normals: np.ndarray
    distances: np.ndarray
    families: tuple[str, ...]
    size_cells: int

    @property
    def n_atoms(self) -> int:
        return int(self.positions.shape[0])

    def params(self) -> dict:
        """JSON-ready description (kept with the truth of every sample)."""
        return {
            "size_cells": self.size_cells,
            "n_atoms_ideal": self.n_atoms,
            "facets": [{"family": f, "normal": [round(float(v), 6) for v in n], "distance": float(d)}
                       for f, n, d in zip(self.families, self.normals, self.distances)],
        }


def random_crystal(rng: np.random.Generator, size_cells: int = DEFAULT_CELLS,
                   n_facets: int | None = None) -> Crystal:
    """Cut the ``size_cells`` fcc cube by ``n_facets`` random high-symmetry planes (default 4–20).

    Raises ValueError for an impossible size or facet count. The crystal always keeps at
    least the central atom (every plane passes at ≥ 0.55 h from the centre).
    """
    size_cells = check_size(size_cells)
    n_facets = int(rng.integers(4, 21)) if n_facets is None else int(n_facets)
    if not 0 <= n_facets <= len(_NORMALS):
        raise ValueError(f"n_facets must be in [0, {len(_NORMALS)}], got {n_facets}")
    pick = np.sort(rng.choice(len(_NORMALS), size=n_facets, replace=False))
    normals = _NORMALS[pick]
    h = size_cells / 2.0
    reach = h * np.abs(normals).sum(axis=1)  # the cube's extent along each normal
    distances = rng.uniform(_D_MIN * h, reach)

    # Exact plane tests on doubled integer coordinates D = 2r: with n = m/|m| for an
    # integer Miller vector m (entries −1, 0, 1), r·n ≤ d ⇔ D·m ≤ 2 d |m|, and D·m is an
    # integer, so the test is D·m ≤ floor(2 d |m|) — no rounding, hence no dependence on
    # the machine, and ~10× faster than float products over 485 k atoms.
    D, pos = _cube_sites(size_cells)
    keep = np.ones(D.shape[1], bool)
    for k, d in zip(pick, distances):
        m = _MILLER[k]
        s = np.zeros(D.shape[1], np.int16)
        for axis in range(3):
            if m[axis] > 0:
                s += D[axis]
            elif m[axis] < 0:
                s -= D[axis]
        keep &= s <= int(np.floor(2.0 * d * np.sqrt((m * m).sum())))
    pos = pos[keep]
    return Crystal(np.ascontiguousarray(pos), normals, distances,
                   tuple(_FAMILY_OF[k] for k in pick), size_cells)
