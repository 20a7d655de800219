"""A second, independently written crystal generator ("generator2") for testing on data nobody tuned to.

It shares only the forward model (:mod:`autophase.physics.forward`: the unitary,
``fftshift``-centred far field) with the project's simulator; shapes, phase fields and
noise are drawn here, with none of :mod:`autophase.simulate` or
:mod:`autophase.physics.synthetic`.

One call, deterministic per seed::

    >>> from autophase.testsets.generator import generate
    >>> c = generate(3)
    >>> c.obj.shape, c.obj.dtype, c.counts.dtype
    ((64, 64, 64), dtype('complex64'), dtype('float32'))

**Shape** (amplitude 1 inside, a linear ramp of ``edge`` voxels across the surface,
drawn from the exact signed distance to the bounding planes):

* ``polyhedron`` — all 6 {100} or all 8 {111} planes (so it is bounded) plus random
  subsets of the other {100}/{110}/{111} planes, each at its own distance (0.75–1.25 of
  the base), the whole rotated at random;
* ``platelet`` / ``rod`` — the same polyhedron squeezed (thickness 0.3–0.6) or stretched
  (length 1.8–3) along one random direction; planes are transformed exactly, so the
  distance stays Euclidean and the edge stays ``edge`` voxels wide;
* ``rounded`` — the polyhedron with edges and corners rounded by a smooth minimum
  ``-k log Σ exp(-d_i/k)`` of the plane distances (k = 1–3 voxels);
* ``superellipsoid`` — ``(|x/a|^p + |y/b|^p + |z/c|^p)^(1/p) ≤ 1``, p = 2.5–6, rotated;
* any of them optionally cut by a substrate plane (probability ``p_substrate``).

The shape is scaled so that its largest extent along the grid axes (voxels with
amplitude ≥ 0.5) is a size drawn uniformly from ``size_range``, then translated so its
amplitude-weighted centre sits at voxel ``n // 2`` (to the nearest 0.01 voxel).

**Phase** (radians; a sum of terms, each present with its own probability, at least one):

* ``bumps`` — 1–3 Gaussians, width 0.25–0.6 h (h = half the size), height ±(0.4–1.5);
* ``saddle`` — a (u·r)(v·r)/h², u ⊥ v, |a| 0.5–2;
* ``bending`` — b (u·r)²/h² (a displacement along G growing quadratically along u), |b| 0.5–2;
* ``vortex`` — a dislocation line through a point at least 3 voxels inside the crystal,
  direction t: phase m·atan2(w·(r−p), v·(r−p)) with (v, w, t) orthonormal, m = ±1
  (winding number m around the line);
* ``jump`` — a planar fault through the crystal: a phase step of ±(0.6–2.5) rad on one side.

**Noise**: I = |F(obj)|² (the far field of the n³ array itself: the crystal fills at
most 24/64 of it, oversampling ≥ 2.6 per axis), scaled to ``photons`` expected in total,
Poisson counts. ``Crystal.truth`` is the object in the data's units,
|F(truth)|² = E[counts].

Random streams: shape, phase and noise draw from ``SeedSequence(seed, spawn_key=(k,))``
with k = 0, 1, 2, so changing the photon count does not change the crystal.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from ..physics.forward import intensity

__all__ = ["Crystal", "generate", "SHAPES", "PHASE_TERMS", "FACET_FAMILIES"]

SHAPES = ("polyhedron", "platelet", "rod", "rounded", "superellipsoid")
PHASE_TERMS = ("bumps", "saddle", "bending", "vortex", "jump")
#: probability of each phase term (at least one is always drawn)
PHASE_PROBABILITY = {"bumps": 0.7, "saddle": 0.4, "bending": 0.4, "vortex": 0.4, "jump": 0.15}


def _signed_permutations(v: tuple[int, int, int]) -> np.ndarray:
    """All distinct vectors obtained from ``v`` by permuting and sign-flipping, unit length."""
    vecs = {tuple(s * c for s, c in zip(signs, perm))
            for perm in itertools.permutations(v) for signs in itertools.product((1, -1), repeat=3)}
    arr = np.array(sorted(vecs), float)
    return arr / np.linalg.norm(arr, axis=1, keepdims=True)


FACET_FAMILIES = {"100": _signed_permutations((1, 0, 0)),   # 6
                  "110": _signed_permutations((1, 1, 0)),   # 12
                  "111": _signed_permutations((1, 1, 1))}   # 8


@dataclass
class Crystal:
    """One generated crystal and its measurement.

    obj    : (n, n, n) complex64, the true object centred at voxel n//2, amplitude ≈ 1 inside.
    counts : (n, n, n) float32, Poisson counts, Bragg peak at n//2 (fftshift-centred, as
             patterns are stored in this project).
    params : every knob that made it (JSON-able: only dicts, lists, str, float, int, bool).
    scale  : photons / Σ|F(obj)|², so E[counts] = scale·|F(obj)|².
    """

    obj: np.ndarray
    counts: np.ndarray
    params: dict
    scale: float = 1.0
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def truth(self) -> np.ndarray:
        """(n, n, n) complex64, the object in the data's units: |F(truth)|² = E[counts]."""
        return (self.obj * np.float32(np.sqrt(self.scale))).astype(np.complex64)

    @property
    def magnitude(self) -> np.ndarray:
        """(n, n, n) float32 √counts, what phasing takes."""
        return np.sqrt(self.counts).astype(np.float32)

    @property
    def support(self) -> np.ndarray:
        """(n, n, n) bool, amplitude ≥ 0.5."""
        return np.abs(self.obj) >= 0.5


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(entropy=int(seed), spawn_key=(stream,))))


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform random rotation: a random unit quaternion turned into a matrix."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _orthonormal_pair(u: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors completing ``u`` to a right-handed orthonormal frame (v, w, u)."""
    a = _unit(rng)
    v = a - (a @ u) * u
    v /= np.linalg.norm(v)
    return v, np.cross(u, v)


# ----------------------------------------------------------------------------- shapes
def _draw_shape(rng: np.random.Generator, p_substrate: float) -> dict:
    """The shape in unit-free form: planes (normals, distances) or a superellipsoid, and the cut."""
    kind = SHAPES[int(rng.integers(len(SHAPES)))]
    rot = _rotation(rng)
    shape: dict = {"kind": kind, "rotation": rot.tolist()}
    if kind == "superellipsoid":
        shape["semi_axes"] = rng.uniform(0.7, 1.0, size=3).tolist()
        shape["exponent"] = float(rng.uniform(2.5, 6.0))
    else:
        base = "100" if rng.random() < 0.5 else "111"
        normals, families = [FACET_FAMILIES[base]], [base] * len(FACET_FAMILIES[base])
        for fam, vecs in FACET_FAMILIES.items():
            if fam == base:
                continue
            keep = rng.random(len(vecs)) < rng.uniform(0.0, 1.0)
            normals.append(vecs[keep])
            families += [fam] * int(keep.sum())
        normals = np.concatenate(normals)
        # {110} and {111} cut corners of a {100} cube at ~0.8–0.9 of the cube's corner distance
        base_d = {"100": 1.0, "110": 1.15, "111": 1.3} if base == "100" else {"111": 1.0, "100": 0.85, "110": 0.95}
        dist = np.array([base_d[f] for f in families]) * rng.uniform(0.75, 1.25, size=len(families))
        shape.update(families=families, normals=normals.tolist(), distances=dist.tolist())
        if kind in ("platelet", "rod"):
            shape["stretch_axis"] = _unit(rng).tolist()
            shape["stretch"] = float(rng.uniform(0.3, 0.6) if kind == "platelet" else rng.uniform(1.8, 3.0))
        if kind == "rounded":
            shape["rounding_voxels"] = float(rng.uniform(1.0, 3.0))
    shape["substrate"] = bool(rng.random() < p_substrate)
    if shape["substrate"]:
        shape["substrate_normal"] = _unit(rng).tolist()
        # the cut plane's distance from the centre, as a fraction of the half-size
        shape["substrate_offset"] = float(rng.uniform(0.2, 0.6))
    return shape


def _planes(shape: dict) -> tuple[np.ndarray, np.ndarray]:
    """Normals (k, 3) in grid coordinates (z, y, x) and distances (k,), unit-size shape."""
    rot = np.asarray(shape["rotation"])
    nrm = np.asarray(shape["normals"]) @ rot.T
    d = np.asarray(shape["distances"], float)
    if "stretch" in shape:
        # the shape is {r : n·(M⁻¹ r) ≤ d} with M stretching by s along a; M⁻¹ is symmetric,
        # so the plane is (M⁻¹ n)·r ≤ d: renormalise to keep a Euclidean distance
        a = np.asarray(shape["stretch_axis"])
        minv = np.eye(3) + (1.0 / shape["stretch"] - 1.0) * np.outer(a, a)
        m = nrm @ minv
        length = np.linalg.norm(m, axis=1)
        nrm, d = m / length[:, None], d / length
    return nrm, d


def _signed_distance(shape: dict, r: np.ndarray, scale: float, half_size: float) -> np.ndarray:
    """Distance (voxels) to the surface, positive inside; ``r`` (..., 3) in voxels from the centre."""
    if shape["kind"] == "superellipsoid":
        rot = np.asarray(shape["rotation"])
        q = (r @ rot) / (scale * np.asarray(shape["semi_axes"]))
        p = shape["exponent"]
        f = (np.abs(q[..., 0]) ** p + np.abs(q[..., 1]) ** p + np.abs(q[..., 2]) ** p) ** (1.0 / p)
        # (1 − f)·(smallest semi-axis) is the distance near the surface, to first order
        sd = (1.0 - f) * scale * min(shape["semi_axes"])
    else:
        nrm, d = _planes(shape)
        dist = scale * d - r @ nrm.T          # (..., k): distance inside each plane
        k = shape.get("rounding_voxels")
        if k:
            # smooth minimum: equals min(dist) far from edges, rounds edges over ~k voxels
            lo = dist.min(axis=-1, keepdims=True)
            sd = lo[..., 0] - k * np.log(np.exp(-(dist - lo) / k).sum(axis=-1))
        else:
            sd = dist.min(axis=-1)
    if shape["substrate"]:
        cut = shape["substrate_offset"] * half_size - r @ np.asarray(shape["substrate_normal"])
        sd = np.minimum(sd, cut)
    return sd


def _amplitude(sd: np.ndarray, edge: float) -> np.ndarray:
    return np.clip(sd / edge + 0.5, 0.0, 1.0)


def _grid(n: int, offset: np.ndarray) -> np.ndarray:
    """(n, n, n, 3) voxel coordinates (z, y, x) relative to ``n//2 + offset``."""
    c = np.arange(n, dtype=np.float64) - n // 2
    z, y, x = np.meshgrid(c - offset[0], c - offset[1], c - offset[2], indexing="ij")
    return np.stack([z, y, x], -1)


def _extent(amp: np.ndarray) -> np.ndarray:
    """Voxels with amplitude ≥ 0.5 spanned along (z, y, x)."""
    idx = np.nonzero(amp >= 0.5)
    return np.array([int(i.max() - i.min() + 1) if i.size else 0 for i in idx])


# ----------------------------------------------------------------------------- phase
def _draw_phase(rng: np.random.Generator, probability: dict) -> list[dict]:
    """Which phase terms, with their unit-free parameters (positions in units of the half-size)."""
    terms = [t for t in PHASE_TERMS if rng.random() < probability[t]]
    if not terms:
        terms = [PHASE_TERMS[int(rng.integers(len(PHASE_TERMS)))]]
    out = []
    for t in terms:
        if t == "bumps":
            for _ in range(int(rng.integers(1, 4))):
                out.append({"term": "bump", "centre": (rng.uniform(-0.6, 0.6, 3)).tolist(),
                            "width": float(rng.uniform(0.25, 0.6)),
                            "height": float(rng.choice([-1, 1]) * rng.uniform(0.4, 1.5))})
        elif t == "saddle":
            u = _unit(rng)
            v, _ = _orthonormal_pair(u, rng)
            out.append({"term": "saddle", "u": u.tolist(), "v": v.tolist(),
                        "a": float(rng.choice([-1, 1]) * rng.uniform(0.5, 2.0))})
        elif t == "bending":
            out.append({"term": "bending", "u": _unit(rng).tolist(),
                        "b": float(rng.choice([-1, 1]) * rng.uniform(0.5, 2.0))})
        elif t == "vortex":
            out.append({"term": "vortex", "direction": _unit(rng).tolist(),
                        "charge": int(rng.choice([-1, 1])), "pick": float(rng.random())})
        elif t == "jump":
            out.append({"term": "jump", "normal": _unit(rng).tolist(), "offset": float(rng.uniform(-0.4, 0.4)),
                        "step": float(rng.choice([-1, 1]) * rng.uniform(0.6, 2.5))})
    return out


def _phase(terms: list[dict], r: np.ndarray, h: float, sd: np.ndarray, n: int) -> np.ndarray:
    """Sum of the phase terms on the grid (radians). Fills in each vortex's line point (voxels)."""
    phi = np.zeros(r.shape[:-1])
    for t in terms:
        kind = t["term"]
        if kind == "bump":
            d2 = ((r - h * np.asarray(t["centre"])) ** 2).sum(-1)
            phi += t["height"] * np.exp(-0.5 * d2 / (t["width"] * h) ** 2)
        elif kind == "saddle":
            phi += t["a"] * (r @ np.asarray(t["u"])) * (r @ np.asarray(t["v"])) / h ** 2
        elif kind == "bending":
            phi += t["b"] * (r @ np.asarray(t["u"])) ** 2 / h ** 2
        elif kind == "jump":
            phi += t["step"] * ((r @ np.asarray(t["normal"])) > t["offset"] * h)
        elif kind == "vortex":
            # the line passes through a voxel ≥ 3 voxels inside (or the deepest one)
            deep = np.argwhere(sd >= 3.0)
            if len(deep) == 0:
                deep = np.argwhere(sd >= sd.max() - 1e-9)
            p_idx = deep[min(int(t["pick"] * len(deep)), len(deep) - 1)]
            p = r[tuple(p_idx)]
            tt = np.asarray(t["direction"])
            rng_v = np.cross(tt, [1.0, 0.0, 0.0] if abs(tt[0]) < 0.9 else [0.0, 1.0, 0.0])
            v = rng_v / np.linalg.norm(rng_v)
            w = np.cross(tt, v)
            d = r - p
            phi += t["charge"] * np.arctan2(d @ w, d @ v)
            t["point_index"] = [int(i) for i in p_idx]
            t["v"], t["w"] = v.tolist(), w.tolist()
    return phi


# ----------------------------------------------------------------------------- main
def generate(seed: int, n: int = 64, size_range: tuple[float, float] = (16, 24), photons: float = 1e6, *,
             edge: float = 1.0, p_substrate: float = 0.25,
             phase_probability: dict | None = None) -> Crystal:
    """One crystal, its object and its Poisson-noisy pattern (see the module docstring).

    Parameters
    ----------
    seed : non-negative int; the same seed gives the same crystal, bit for bit.
    n : array side (voxels); the object and the pattern are (n, n, n).
    size_range : (lo, hi) largest extent along a grid axis, voxels; hi ≤ n/2 keeps the
        oversampling ≥ 2 per axis.
    photons : expected total counts.
    edge : width of the amplitude ramp across the surface (voxels).
    p_substrate : probability of a substrate cut.
    phase_probability : {term: probability} overriding :data:`PHASE_PROBABILITY`.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    lo, hi = (float(s) for s in size_range)
    if not (n >= 16 and 4 <= lo <= hi <= n / 2):
        raise ValueError(f"size_range {size_range} must satisfy 4 ≤ lo ≤ hi ≤ n/2 = {n / 2:g}")
    if not (np.isfinite(photons) and photons > 0):
        raise ValueError(f"photons must be a positive number, got {photons}")
    if not edge > 0:
        raise ValueError(f"edge must be > 0 voxels, got {edge}")
    prob = dict(PHASE_PROBABILITY, **(phase_probability or {}))
    if set(prob) != set(PHASE_TERMS) or not all(0 <= v <= 1 for v in prob.values()):
        raise ValueError(f"phase_probability needs terms {PHASE_TERMS} with values in [0, 1], got {prob}")

    rs, rp, rn = _rng(seed, 0), _rng(seed, 1), _rng(seed, 2)
    target = float(rs.uniform(lo, hi))
    shape = _draw_shape(rs, p_substrate)

    # scale to the target extent (the extent is piecewise linear in the scale: iterate),
    # then put the amplitude-weighted centroid c (shape coordinates) on voxel n//2
    centroid = np.zeros(3)
    scale = target / 2.0
    for _ in range(8):
        r = _grid(n, -centroid)
        sd = _signed_distance(shape, r, scale, scale)
        amp = _amplitude(sd, edge)
        ext = int(_extent(amp).max())
        w = amp / amp.sum()
        new_c = np.array([(w * r[..., i]).sum() for i in range(3)])
        moved = np.abs(new_c - centroid).max()
        centroid = new_c
        if ext == round(target) and moved < 0.01:
            break
        if ext != round(target):
            scale *= (target / max(ext, 1)) ** 0.9
    r = _grid(n, -centroid)
    sd = _signed_distance(shape, r, scale, scale)
    amp = _amplitude(sd, edge)
    extent = _extent(amp)
    h = 0.5 * float(extent.max())
    r = r - centroid          # the phase lives in coordinates centred on the array centre

    terms = _draw_phase(rp, prob)
    phi = _phase(terms, r, h, sd, n)
    inside = amp >= 0.5
    phi -= phi[inside].mean()
    obj = (amp * np.exp(1j * phi)).astype(np.complex64)

    I = intensity(obj.astype(np.complex128))
    s = float(photons / I.sum())
    counts = rn.poisson(I * s).astype(np.float32)

    params = {
        "generator": "autophase.testsets.generator", "version": 1,
        "seed": int(seed), "n": int(n), "size_range": [lo, hi], "photons": float(photons),
        "edge_voxels": float(edge), "p_substrate": float(p_substrate), "phase_probability": prob,
        "target_size": target, "size": int(extent.max()), "extent_zyx": [int(e) for e in extent],
        "shape_scale_voxels": float(scale), "shape_centroid_voxels": [float(o) for o in centroid],
        "shape": shape, "phase_terms": terms,
        "phase_range_rad": float(np.ptp(phi[inside])),
        "volume_voxels": float(amp.sum()), "oversampling_zyx": [float(n / max(e, 1)) for e in extent],
        "scale": s, "total_counts": float(counts.sum(dtype=np.float64)),
    }
    return Crystal(obj=obj, counts=counts, params=params, scale=s)
