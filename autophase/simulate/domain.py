"""Domain randomisation: crystals and measurements spanning what beamlines record (issue 15, item 1).

Off by default: a :class:`~autophase.simulate.config.SimulationConfig` without a
``domain`` section makes exactly the data it always made (the shipped model's data can be
regenerated). With ``domain=DomainConfig(...)`` (``autophase simulate --domain``) every
crystal draws, and records in its shard row's ``params["domain"]`` (and a summary in
``meta["domain"]``), the following knobs. Every draw comes from
``crystal_rng(seed, crystal, stream)`` with the streams below, so a crystal is the same
whichever rank makes it and a resumed run continues the same data set.

    stream 2000        shape: class, per-axis oversampling, facets, rounding, substrate
    stream 2001        strain scale, bumps, saddle, dislocations, planar faults
    stream 3000 + r    sample r: rotation, photons, Bragg-peak offset, blur, background,
                       detector gaps, beamstop, Poisson noise

**Sizes.** Oversampling along axis a is o_a = 64 / (crystal extent along a, in voxels); a
crystal is built in a box of extents E_a = 64 / o_a voxels with o_a drawn in
``oversampling`` (2.5–5) *per axis*: "polyhedron" draws each axis uniformly, "platelet"
one thin axis in the top 40 % of the range and two wide ones in the bottom 40 %, "rod" the
reverse. The voxel is the run's bin (``base_bin(size_cells)`` lattice units: 2 for the
default 49 cells), so ``size_cells`` sets the physical scale.

**Shapes.** The box gives the six {100} facets at per-axis distances; 4–20 {110}/{111}
planes then cut edges and corners at random distances d in [max over the box's face
centres of n·c, the box's extent along n]: every face keeps its centre, so the extents —
hence the oversampling — stay those drawn (rounding can trim a voxel). With probability
``p_round`` the edges are rounded with radius ρ (a fraction ``round_fraction`` of the
smallest half-extent): an atom at r is kept when √Σ_k max(0, n_k·r − d_k + ρ)² ≤ ρ over
every plane k — exactly the distance to the polytope shrunk by ρ where at most two
orthogonal planes meet, slightly more rounding elsewhere. With probability
``p_substrate`` the crystal is substrate-truncated: along a random ±axis the corner cuts
are drawn for a box extended by a fraction ``substrate_depth`` beyond its face, which is
then cut flat (a Winterbottom-like shape with a large flat base).

**Strain** (lattice units; the phase is 2π u·[111]/√3, the project's convention,
:mod:`.voxelize`). The existing smooth field (:mod:`.strain`) with its budget scaled by a
log-uniform factor in ``strain_scale`` (0.3–2.5: phase spans from a fraction of a radian to
several, wrapping beyond ±π), plus 0–``max_bumps`` further Gaussian centres of
dilatation (bumps) and, with probability ``p_saddle``, a saddle
u = ½ κ ((r·e₁)² − (r·e₂)²) ê in a random frame (κ h = the strain budget). LAMMPS
relaxation, where enabled, sees these displacements as before.

Defects are added to the projected displacement after relaxation, as phase fields:

* dislocations (``p_dislocation`` each, up to ``max_dislocations``): a line through a point
  in the crystal along a random direction; the phase winds by 2π m (m = ±1: the Burgers
  vector's component the reflection sees is one lattice period) around it — a phase
  vortex. ``edge`` character adds the bounded edge term m·sin 2θ / (4π(1 − ν)), ν = 0.44
  (gold); ``screw`` is the pure winding;
* planar faults (``p_fault``): a {111} plane through a point in the crystal; the atoms
  beyond it are shifted by ±1/3 of a period (a stacking fault: phase jump ±2π/3) or by a
  random fraction (a twin boundary seen by this reflection: jump uniform in (−π, π]).

Voxelisation averages the phasor e^{iφ} per voxel (not φ), so wraps and vortex cores
stay correct.

**Measurement** (per sample; the truth keeps |F(truth)|² = the *coherent* expected
counts, before blur and background):

* photons log-uniform in the config's range (``--domain`` sets 1e5:1e10 unless
  ``--photons`` is given);
* Bragg peak off-centre (``p_shift``): an integer offset s (each axis in −2…2, the
  largest |s_a| in ``peak_shift``) — the intensity is rolled by s and the truth carries
  the ramp e^{2πi s·x/64}, which moves its far field by s;
* partial-coherence blur (``p_blur``): the intensity convolved with a normalised Gaussian
  of σ voxels (σ in ``coherence_sigma``), done as the product of its Fourier transform —
  the autocorrelation of the object — with exp(−2π²σ²|k|²/64²);
* background (``p_background``): a uniform mean of b counts per voxel, b log-uniform in
  ``background``;
* unmeasured voxels, stored as −1 in the magnitude — the training convention
  (:func:`autophase.train.loss.loss_from_magnitudes` leaves them out, the network sees 0,
  :func:`autophase.train.data.thin_counts` keeps them): 0–``max_gaps`` detector gaps
  (``p_gap`` each; slabs ``gap_width`` voxels wide across the whole rocking axis z, along
  detector axis y or x, starting 3–24 voxels from the peak) and a beamstop / saturated
  peak (``p_beamstop``: a ball of radius in ``beamstop_radius`` voxels on the peak).

Measured per sample and recorded: per-axis oversampling of the atoms (64·bin / extent),
the phase range before wrapping, the number of unmeasured voxels.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from ..physics.forward import intensity, pad_object
from ..strict import strict_from_dict
from ..physics.synthetic import FAMILIES

__all__ = ["DomainConfig", "STREAM_SHAPE", "STREAM_DEFECTS", "STREAM_MEASURE", "SHAPES",
           "DomainShape", "domain_shape", "Defects", "random_defects", "extra_strain",
           "measure", "voxelize_phasor", "oversampling_of"]

STREAM_SHAPE, STREAM_DEFECTS, STREAM_MEASURE = 2000, 2001, 3000
SHAPES = ("polyhedron", "platelet", "rod")
NU_GOLD = 0.44
ARRAY_N = 64
_CUT_NORMALS = np.concatenate([FAMILIES["110"], FAMILIES["111"]])
_CUT_FAMILY = ["110"] * len(FAMILIES["110"]) + ["111"] * len(FAMILIES["111"])


def _range(v) -> tuple[float, float]:
    return (float(v[0]), float(v[1]))


@dataclass(frozen=True)
class DomainConfig:
    """The ranges of the randomised knobs (see the module docstring). Ranges are [lo, hi]."""

    oversampling: tuple[float, float] = (2.5, 5.0)
    shapes: tuple[str, ...] = SHAPES
    p_round: float = 0.5
    round_fraction: tuple[float, float] = (0.1, 0.4)
    p_substrate: float = 0.3
    substrate_depth: tuple[float, float] = (0.2, 0.6)
    strain_scale: tuple[float, float] = (0.3, 2.5)
    max_bumps: int = 3
    p_saddle: float = 0.5
    p_dislocation: float = 0.25
    max_dislocations: int = 2
    p_fault: float = 0.2
    p_shift: float = 0.5
    peak_shift: tuple[int, int] = (1, 2)
    p_blur: float = 0.5
    coherence_sigma: tuple[float, float] = (0.2, 1.0)
    p_background: float = 0.7
    background: tuple[float, float] = (1e-3, 0.3)
    p_gap: float = 0.4
    max_gaps: int = 2
    gap_width: tuple[int, int] = (1, 4)
    p_beamstop: float = 0.2
    beamstop_radius: tuple[float, float] = (1.0, 2.5)

    def __post_init__(self):
        for f in fields(self):  # JSON gives lists: keep tuples so configs compare equal
            v = getattr(self, f.name)
            if isinstance(v, list):
                object.__setattr__(self, f.name, tuple(v))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first impossible field."""
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name.startswith("p_") and not (isinstance(v, (int, float)) and 0 <= v <= 1):
                raise ValueError(f"domain.{f.name} must be a probability in [0, 1], got {v!r}")
            if isinstance(v, tuple) and f.name != "shapes":
                if len(v) != 2 or not all(isinstance(x, (int, float)) and math.isfinite(x) for x in v) \
                        or not 0 <= v[0] <= v[1]:
                    raise ValueError(f"domain.{f.name} must be a range [lo, hi] with 0 ≤ lo ≤ hi, got {v!r}")
        lo, hi = self.oversampling
        if not 2.0 <= lo <= hi <= 8.0:
            raise ValueError(f"domain.oversampling must lie in [2, 8] (the object fills at most half "
                             f"the array), got {self.oversampling}")
        if not self.shapes or any(s not in SHAPES for s in self.shapes):
            raise ValueError(f"domain.shapes must be a non-empty subset of {SHAPES}, got {self.shapes!r}")
        if self.round_fraction[1] >= 1 or self.substrate_depth[1] > 2:
            raise ValueError("domain.round_fraction must stay below 1 and domain.substrate_depth at most 2")
        if self.strain_scale[0] <= 0:
            raise ValueError("domain.strain_scale must be positive")
        for name, top in (("max_bumps", 10), ("max_dislocations", 5), ("max_gaps", 6)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= top:
                raise ValueError(f"domain.{name} must be an integer in [0, {top}], got {v!r}")
        if not (1 <= self.peak_shift[0] <= self.peak_shift[1] <= 4 and all(float(x).is_integer() for x in self.peak_shift)):
            raise ValueError(f"domain.peak_shift must be integers 1 ≤ lo ≤ hi ≤ 4, got {self.peak_shift}")
        if not (1 <= self.gap_width[0] <= self.gap_width[1] <= 8 and all(float(x).is_integer() for x in self.gap_width)):
            raise ValueError(f"domain.gap_width must be integers 1 ≤ lo ≤ hi ≤ 8, got {self.gap_width}")
        if self.coherence_sigma[1] > 4 or self.beamstop_radius[1] > 6 or self.background[0] <= 0:
            raise ValueError("domain.coherence_sigma ≤ 4 voxels, beamstop_radius ≤ 6 voxels, background > 0")

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "DomainConfig":
        """Strict: unknown keys are errors."""
        return strict_from_dict(cls, d, "domain")


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(lo) if lo == hi else float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


# --- shape ------------------------------------------------------------------------------

@dataclass(frozen=True)
class DomainShape:
    """A randomised crystal: ideal sites and how they were cut.

    positions : (n_atoms, 3) float64 lattice units, (z, y, x), box centre at 0.
    params    : JSON-ready record of every shape knob.
    """

    positions: np.ndarray
    params: dict


def _sites(half: np.ndarray) -> np.ndarray:
    """fcc sites (n, 3) float64 with |r_a| ≤ half_a + 1 (a centred cube big enough), lattice units."""
    from .crystal import _cube_sites

    cells = int(2 * math.ceil(float(half.max()) + 1.0))
    cells = max(cells, 6)
    if cells > 128:
        raise ValueError(f"a domain crystal needs a {cells}-cell cube (max 128): lower size_cells")
    return _cube_sites(cells)[1]


def _plane_dot(pos: np.ndarray, n: np.ndarray) -> np.ndarray:
    return pos[:, 0] * n[0] + pos[:, 1] * n[1] + pos[:, 2] * n[2]


def domain_shape(rng: np.random.Generator, dc: DomainConfig, bin_lu: float) -> DomainShape:
    """Draw the shape knobs and cut the crystal (see the module docstring)."""
    shape = str(dc.shapes[int(rng.integers(len(dc.shapes)))])
    lo, hi = dc.oversampling
    span = hi - lo
    if shape == "polyhedron":
        o = rng.uniform(lo, hi, size=3)
    else:
        thin = rng.uniform(lo + 0.6 * span, hi, size=3)
        wide = rng.uniform(lo, lo + 0.4 * span, size=3)
        special = int(rng.integers(3))
        is_thin = np.zeros(3, bool)
        is_thin[special] = True
        if shape == "rod":  # two thin axes, one long
            is_thin = ~is_thin
        o = np.where(is_thin, thin, wide)
    half = 0.5 * (ARRAY_N / o) * bin_lu  # half-extents, lattice units
    # sites lie on multiples of ½: bounds at ±(h + ¼) keep the extent within ½ of 2h
    box_lo, box_hi = -half - 0.25, half + 0.25

    substrate = None
    vlo, vhi = box_lo.copy(), box_hi.copy()  # the box the corner cuts are drawn for
    if rng.random() < dc.p_substrate:
        axis = int(rng.integers(3))
        side = int(rng.choice((-1, 1)))
        depth = float(rng.uniform(*dc.substrate_depth))
        if side < 0:
            vlo[axis] -= depth * 2 * half[axis]
        else:
            vhi[axis] += depth * 2 * half[axis]
        substrate = {"axis": axis, "side": side, "depth": depth}

    n_cuts = int(rng.integers(4, 21))
    pick = np.sort(rng.choice(len(_CUT_NORMALS), size=n_cuts, replace=False))
    normals = _CUT_NORMALS[pick]
    corners = np.array([[a, b, c] for a in (vlo[0], vhi[0]) for b in (vlo[1], vhi[1]) for c in (vlo[2], vhi[2])])
    faces = np.concatenate([np.diag(box_lo), np.diag(box_hi)])  # the real box's face centres
    d_min = (faces @ normals.T).max(axis=0)
    d_max = (corners @ normals.T).max(axis=0)
    distances = rng.uniform(d_min, np.maximum(d_min, d_max))

    rounding = float(rng.uniform(*dc.round_fraction) * half.min()) if rng.random() < dc.p_round else 0.0

    pos = _sites(half)
    # every plane as n·r ≤ d: the six box faces and the cuts
    box_n = np.concatenate([np.eye(3), -np.eye(3)])
    box_d = np.concatenate([box_hi, -box_lo])
    all_n = np.concatenate([box_n, normals])
    all_d = np.concatenate([box_d, distances])
    if rounding > 0:
        excess = np.zeros(len(pos))
        for n, d in zip(all_n, all_d):
            e = _plane_dot(pos, n) - (d - rounding)
            excess += np.square(np.maximum(e, 0.0))
        keep = excess <= rounding * rounding + 1e-9
    else:
        keep = np.ones(len(pos), bool)
        for n, d in zip(all_n, all_d):
            keep &= _plane_dot(pos, n) <= d + 1e-9
    pos = np.ascontiguousarray(pos[keep])
    if len(pos) == 0:  # cannot happen: the centre is kept by every plane
        raise ValueError("empty crystal")
    params = {
        "shape": shape, "oversampling_target": [round(float(v), 6) for v in o],
        "half_extent_lu": [round(float(v), 6) for v in half], "bin_lu": float(bin_lu),
        "cuts": [{"family": _CUT_FAMILY[k], "normal": [round(float(v), 6) for v in n], "distance": float(d)}
                 for k, n, d in zip(pick, normals, distances)],
        "rounding_lu": rounding, "substrate": substrate, "n_atoms_ideal": int(len(pos)),
    }
    return DomainShape(pos, params)


# --- strain and defects ----------------------------------------------------------------

def extra_strain(rng: np.random.Generator, dc: DomainConfig, half_width: float, budget: float):
    """Bumps and a saddle: (u(r) function, params). ``budget`` is the strain scale (dimensionless)."""
    h = float(half_width)
    n_bumps = int(rng.integers(0, dc.max_bumps + 1))
    bumps = []
    for _ in range(n_bumps):
        bumps.append((rng.uniform(-0.6, 0.6, size=3) * h, float(rng.uniform(0.15, 0.5) * h),
                      float(budget * rng.uniform(0.3, 1.0) * rng.choice((-1.0, 1.0)))))
    saddle = None
    if rng.random() < dc.p_saddle:
        from ..physics.synthetic import random_rotation

        R = random_rotation(rng)
        saddle = (R, float(budget * rng.uniform(0.3, 1.0) / h))

    def u(r: np.ndarray) -> np.ndarray:
        out = np.zeros_like(r)
        for c, s, a in bumps:
            d = r - c
            g = a * np.exp(-(d[:, 0] ** 2 + d[:, 1] ** 2 + d[:, 2] ** 2) / (2.0 * s * s))
            out += d * g[:, None]
        if saddle is not None:
            R, k = saddle
            e1, e2, e3 = R[:, 0], R[:, 1], R[:, 2]
            val = 0.5 * k * (_plane_dot(r, e1) ** 2 - _plane_dot(r, e2) ** 2)
            for i in range(3):
                out[:, i] += e3[i] * val
        return out

    params = {"bumps": [{"center": c.round(6).tolist(), "width": s, "amp": a} for c, s, a in bumps],
              "saddle": None if saddle is None else {"frame": saddle[0].round(8).tolist(), "curvature": saddle[1]}}
    return u, params


@dataclass(frozen=True)
class Defects:
    """Phase-field defects, in periods of the reflection (the phase is 2π × the returned field).

    dislocations : list of (point (3,), direction (3,), winding ±1, character "screw"/"edge").
    faults       : list of (point (3,), unit normal (3,), jump in periods, kind).
    """

    dislocations: list
    faults: list

    def field(self, r: np.ndarray) -> np.ndarray:
        """(n,) float64 field (periods) at positions r (n, 3), to add to u·[111]/√3."""
        out = np.zeros(len(r))
        for p, xi, m, kind in self.dislocations:
            # an orthonormal frame (e1, e2, xi) about the line
            a = np.array([1.0, 0.0, 0.0]) if abs(xi[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
            e1 = np.cross(xi, a)
            e1 /= np.linalg.norm(e1)
            e2 = np.cross(xi, e1)
            d = r - p
            x1, x2 = _plane_dot(d, e1), _plane_dot(d, e2)
            theta = np.arctan2(x2, x1)
            out += m * theta / (2 * np.pi)
            if kind == "edge":
                out += m * np.sin(2 * theta) / (4 * np.pi * (1 - NU_GOLD))
        for p, n, jump, _ in self.faults:
            out += np.where(_plane_dot(r - p, n) > 0, jump, 0.0)
        return out

    def params(self) -> dict:
        return {"dislocations": [{"point": p.round(6).tolist(), "direction": xi.round(8).tolist(), "winding": int(m),
                                  "character": k} for p, xi, m, k in self.dislocations],
                "faults": [{"point": p.round(6).tolist(), "normal": n.round(8).tolist(), "jump_periods": float(j),
                            "kind": k} for p, n, j, k in self.faults]}


def random_defects(rng: np.random.Generator, dc: DomainConfig, half: np.ndarray) -> Defects:
    """Dislocations and planar faults through points inside the crystal's box (half-extents ``half``)."""
    dis = []
    for _ in range(dc.max_dislocations):
        if rng.random() < dc.p_dislocation:
            xi = rng.normal(size=3)
            xi /= np.linalg.norm(xi)
            dis.append((rng.uniform(-0.5, 0.5, size=3) * half, xi, int(rng.choice((-1, 1))),
                        str(rng.choice(("screw", "edge")))))
    faults = []
    if rng.random() < dc.p_fault:
        n = FAMILIES["111"][int(rng.integers(len(FAMILIES["111"])))]
        if rng.random() < 0.5:
            jump, kind = float(rng.choice((-1.0, 1.0))) / 3.0, "stacking_fault"
        else:
            jump, kind = float(rng.uniform(-0.5, 0.5)), "twin_boundary"
        faults.append((rng.uniform(-0.5, 0.5, size=3) * half, n.copy(), jump, kind))
    return Defects(dis, faults)


# --- voxelisation and measurement ------------------------------------------------------

def voxelize_phasor(positions: np.ndarray, phase_periods: np.ndarray, bin_lu: float, n: int = 32,
                    pad_vox: float = 2.0):
    """Cloud-in-cell deposit of density and of the phasor e^{2πi p}: (obj complex64 (n,n,n), origin).

    positions (n_atoms, 3) lattice units; phase_periods (n_atoms,) the phase / 2π (mean
    removed). The voxel is ``bin_lu``; raises ValueError if the crystal plus ``pad_vox``
    voxels per side does not fit. Amplitude = density / max; phase = arg Σ w e^{2πi p}.
    """
    pos = np.asarray(positions, np.float64)
    lo, hi = pos.min(axis=0), pos.max(axis=0)
    if float((hi - lo).max()) / bin_lu + 2 * pad_vox > n:
        raise ValueError("crystal does not fit in the voxel grid")
    centre = 0.5 * (lo + hi)
    origin = centre - (n // 2) * bin_lu
    g = (pos - origin) / bin_lu
    i0 = np.floor(g).astype(np.int64)
    f = g - i0
    base = (i0[:, 0] * n + i0[:, 1]) * n + i0[:, 2]
    w = (1.0 - f, f)
    ph = 2 * np.pi * (phase_periods - phase_periods.mean())
    c, s = np.cos(ph), np.sin(ph)
    dens = np.zeros(n ** 3)
    re = np.zeros(n ** 3)
    im = np.zeros(n ** 3)
    for dz in (0, 1):
        for dy in (0, 1):
            wzy = w[dz][:, 0] * w[dy][:, 1]
            for dx in (0, 1):
                wt = wzy * w[dx][:, 2]
                idx = base + (dz * n * n + dy * n + dx)
                dens += np.bincount(idx, weights=wt, minlength=n ** 3)
                re += np.bincount(idx, weights=wt * c, minlength=n ** 3)
                im += np.bincount(idx, weights=wt * s, minlength=n ** 3)
    amp = dens / dens.max()
    phase = np.arctan2(im, re)
    obj = (amp * np.exp(1j * phase)).astype(np.complex64).reshape(n, n, n)
    return obj, origin


def oversampling_of(positions: np.ndarray, bin_lu: float) -> list[float]:
    """Per-axis oversampling 64 / (extent of the atoms in voxels)."""
    ext = (positions.max(axis=0) - positions.min(axis=0)) / bin_lu
    return [float(ARRAY_N / max(e, 1e-9)) for e in ext]


def _blur(I: np.ndarray, sigma: float) -> np.ndarray:
    """I ⊛ G_σ on the periodic grid: the autocorrelation FFT(I) times exp(−2π²σ²|k|²/N²)."""
    import scipy.fft as sfft

    k = [np.fft.fftfreq(s) for s in I.shape]  # cycles per voxel
    g = np.exp(-2 * np.pi ** 2 * sigma ** 2 * (k[0][:, None, None] ** 2 + k[1][None, :, None] ** 2
                                               + k[2][None, None, :] ** 2))
    out = sfft.irfftn(sfft.rfftn(I) * g[..., : I.shape[2] // 2 + 1], s=I.shape)
    return np.maximum(out, 0.0)


def measure(obj: np.ndarray, photons: float, rng: np.random.Generator, dc: DomainConfig):
    """(magnitude float32 with −1 unmeasured, truth complex64, measured bool, counts, params) of one sample."""
    N = ARRAY_N
    rho = pad_object(np.asarray(obj, np.complex64), (N, N, N))
    I = intensity(rho).astype(np.float64)
    scale = photons / float(I.sum())
    params: dict = {"photons": float(photons)}

    shift = [0, 0, 0]
    if rng.random() < dc.p_shift:
        m = int(rng.integers(int(dc.peak_shift[0]), int(dc.peak_shift[1]) + 1))
        shift = [int(v) for v in rng.integers(-m, m + 1, size=3)]
        shift[int(rng.integers(3))] = m * int(rng.choice((-1, 1)))  # the largest offset is m
    params["peak_shift"] = shift
    truth = rho * np.float32(np.sqrt(scale))
    if any(shift):
        x = np.arange(N) - N // 2
        ramp = np.exp(2j * np.pi * (shift[0] * x[:, None, None] + shift[1] * x[None, :, None]
                                    + shift[2] * x[None, None, :]) / N)
        truth = truth * ramp
        I = np.roll(I, shift, axis=(0, 1, 2))
    truth = truth.astype(np.complex64)

    # every knob is drawn before the Poisson noise (whose draws depend on the values)
    sigma = float(rng.uniform(*dc.coherence_sigma)) if rng.random() < dc.p_blur else 0.0
    params["coherence_sigma_vox"] = sigma
    bg = _log_uniform(rng, *dc.background) if rng.random() < dc.p_background else 0.0
    params["background_per_voxel"] = bg
    measured = np.ones((N, N, N), bool)
    peak = [N // 2 + s for s in shift]
    gaps = []
    for _ in range(dc.max_gaps):
        if rng.random() < dc.p_gap:
            axis = int(rng.integers(1, 3))  # detector axes y, x; z is the rocking angle
            width = int(rng.integers(int(dc.gap_width[0]), int(dc.gap_width[1]) + 1))
            off = int(rng.integers(3, 25)) * int(rng.choice((-1, 1)))
            start = peak[axis] + off if off > 0 else peak[axis] + off - width + 1
            start = int(np.clip(start, 0, N - width))
            sl = [slice(None)] * 3
            sl[axis] = slice(start, start + width)
            measured[tuple(sl)] = False
            gaps.append({"axis": axis, "start": start, "width": width})
    params["gaps"] = gaps
    radius = float(rng.uniform(*dc.beamstop_radius)) if rng.random() < dc.p_beamstop else 0.0
    if radius > 0:
        g = np.indices((N, N, N))
        r2 = sum((g[a] - peak[a]) ** 2 for a in range(3))
        measured &= r2 > radius * radius
    params["beamstop_radius_vox"] = radius
    params["unmeasured_voxels"] = int((~measured).sum())

    expected = (_blur(I, sigma) if sigma > 0 else I) * scale + bg
    counts = rng.poisson(expected)
    mag = np.where(measured, np.sqrt(counts), -1.0).astype(np.float32)
    total = int(counts[measured].sum())
    return mag, truth, measured, total, params
