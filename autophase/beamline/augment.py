"""A few prepared experimental patterns → a fine-tuning set: rotation, resampling, flipping.

The paper fine-tunes the network pre-trained on simulations with 3200 patterns made from
10 measured ones by "rotation, resampling and flipping". Each is a valid diffraction
pattern of a transformed crystal, because the Fourier transform commutes with linear
maps: for ρ'(r) = ρ(M r) the far field is F'(q) ∝ F(M^{-T} q). So the intensity
resampled on q' = A q about the Bragg peak (index n//2 on each axis) is the pattern of
the crystal transformed by Aᵀ:

* **rotation** R (uniformly random, or within ``max_angle_deg`` of the identity) —
  a rotated crystal;
* **resampling** by per-axis factors s ∈ ``scale_range`` — the same crystal measured
  with a different oversampling ratio σ·s (detector distance, rocking step);
* **flipping** q_i → −q_i — a mirrored crystal;
* **photon thinning** (a share ``as_measured`` of the copies, in place of the three above)
  — each photon kept with probability f ~ U(``thin_low``, 1): for counts n ~ P(λ),
  Binomial(n, f) ~ P(fλ), an exact pattern of the *same* crystal, in the orientation and
  at the oversampling it was measured with, at a lower dose.

Output voxel o reads input c + A⁻¹(o − c), A = diag(s)·R·diag(±1), trilinear. Counts
are divided by s_z s_y s_x (the same photons spread over more voxels), so the total is
kept up to what leaves the 64³ box; voxels that come from outside the input or from
masked voxels are masked (and 0).

:func:`write_augmented` stores the set as HDF5 in the magnitude layout of the
simulation shards (``/magnitude/data`` (n, 64, 64, 64) float32 √counts, one volume per
chunk, Blosc-LZ4; ``/mask/data`` uint8; ``/meta/json`` one JSON per row) — no
``/truth`` group, there is none for measured data. :func:`write_augmented_cxi` writes
one pattern CXI per row instead, which ``autophase train --data DIR/*.cxi`` reads today.

Example::

    >>> import numpy as np
    >>> I = np.zeros((64, 64, 64), np.float32); I[30:35, 30:35, 30:35] = 1
    >>> augment_patterns([I], n_out=4, seed=0).shape
    (4, 64, 64, 64)
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy import ndimage

from ..errors import InputError

__all__ = ["random_transform", "apply_transform", "thin_photons", "augment_patterns", "write_augmented", "write_augmented_cxi"]


def _rotation(rng: np.random.Generator, max_angle_deg: float) -> np.ndarray:
    """A random rotation: uniform on SO(3) when ``max_angle_deg`` ≥ 180, else an axis
    uniform on the sphere and an angle uniform in [−max, max]."""
    if max_angle_deg >= 180:
        from ..physics.synthetic import random_rotation

        return random_rotation(rng)
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    a = np.radians(rng.uniform(-max_angle_deg, max_angle_deg))
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K   # Rodrigues


def random_transform(rng: np.random.Generator, max_angle_deg: float = 180.0,
                     scale_range: tuple[float, float] = (0.85, 1.2), flip: bool = True) -> dict:
    """Draw one transform: {"rotation" (3,3), "scale" (3,), "flip" (3,) ±1, "matrix" A (3,3)}."""
    R = _rotation(rng, max_angle_deg)
    lo, hi = scale_range
    s = np.exp(rng.uniform(np.log(lo), np.log(hi), 3)) if hi > lo else np.full(3, float(lo))
    f = rng.choice([-1.0, 1.0], 3) if flip else np.ones(3)
    A = np.diag(s) @ R @ np.diag(f)
    return {"rotation": R, "scale": s, "flip": f, "matrix": A}


def apply_transform(pattern: np.ndarray, A: np.ndarray, mask: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Resample ``pattern`` (z, y, x) on q' = A q about the centre; returns (I', unmeasured mask)."""
    n = np.asarray(pattern.shape)
    c = (n // 2).astype(float)
    Ainv = np.linalg.inv(A)
    offset = c - Ainv @ c
    src = np.asarray(pattern, np.float32)
    m = np.zeros(pattern.shape, np.float32) if mask is None else np.asarray(mask, np.float32)
    src = np.where(m > 0, 0, src)
    out = ndimage.affine_transform(src, Ainv, offset=offset, order=1, mode="constant", cval=0.0)
    out_m = ndimage.affine_transform(m, Ainv, offset=offset, order=1, mode="constant", cval=1.0) > 0.5
    out = np.where(out_m, 0.0, np.clip(out, 0, None) / abs(np.linalg.det(A)))
    return out.astype(np.float32), out_m


def thin_photons(counts: np.ndarray, f: float, rng: np.random.Generator) -> np.ndarray:
    """Keep each photon with probability ``f``: Binomial(rint(counts), f), float32 (z, y, x).

    For n ~ Poisson(λ) the result is Poisson(fλ): a measurement of the same crystal with a
    fraction f of the dose (counts are rounded first; after dark subtraction and flat-field
    they are not exact integers)."""
    if not 0 < f <= 1:
        raise InputError(f"thin_photons: the kept fraction must be in (0, 1], got {f}")
    return rng.binomial(np.rint(np.asarray(counts)).astype(np.int64), f).astype(np.float32)


def augment_patterns(patterns: Sequence[np.ndarray] | np.ndarray, n_out: int, seed: int = 0, *,
                     masks: Sequence[np.ndarray] | None = None, max_angle_deg: float = 180.0,
                     scale_range: tuple[float, float] = (0.85, 1.2), flip: bool = True,
                     as_measured: float = 0.0, thin_low: float = 0.5,
                     return_masks: bool = False, return_params: bool = False):
    """``n_out`` augmented copies of the given patterns, cycling through them.

    patterns : k arrays (64, 64, 64) (or one (k, 64, 64, 64) array) of counts, peak at
        index 32; the same shape for all. masks : k bool arrays, True = unmeasured.
    as_measured : the probability that a copy keeps the pattern's orientation and sampling
        and is photon-thinned instead (:func:`thin_photons`, f ~ U(``thin_low``, 1)); its
        mask is the input's. 0: every copy rotated, resampled and flipped.
    Returns (n_out, 64, 64, 64) float32 counts; with ``return_masks`` also the
    (n_out, …) bool masks, with ``return_params`` also the list of transforms.
    Reproducible: row i depends only on (seed, i) (and with ``as_measured`` 0 is what it
    was before the share existed: the share draws from a stream of its own).
    """
    pats = [np.asarray(p) for p in (list(patterns) if not isinstance(patterns, np.ndarray) or patterns.ndim == 4
                                    else [patterns])]
    if not pats:
        raise InputError("augment: no patterns given")
    shape = pats[0].shape
    for i, p in enumerate(pats):
        if p.ndim != 3 or p.shape != shape:
            raise InputError(f"augment: pattern {i} has shape {p.shape}, expected 3D {shape}")
        if not np.all(np.isfinite(p)) or (p < 0).any():
            raise InputError(f"augment: pattern {i} holds NaN, inf or negative values")
    if masks is not None and len(masks) != len(pats):
        raise InputError(f"augment: {len(masks)} masks for {len(pats)} patterns")
    if n_out < 1:
        raise InputError(f"augment: n_out must be ≥ 1, got {n_out}")
    if not 0 < scale_range[0] <= scale_range[1]:
        raise InputError(f"augment: bad scale range {scale_range}")
    if not (np.isfinite(as_measured) and 0 <= as_measured <= 1):
        raise InputError(f"augment: as_measured is a probability in [0, 1], got {as_measured}")
    if not (np.isfinite(thin_low) and 0 < thin_low <= 1):
        raise InputError(f"augment: thin_low must be in (0, 1], got {thin_low}")
    out = np.empty((n_out,) + shape, np.float32)
    out_m = np.empty((n_out,) + shape, bool)
    params = []
    for i in range(n_out):
        rng = np.random.default_rng([seed, i])
        k = i % len(pats)
        if as_measured > 0:
            keep = np.random.default_rng([seed, i, 0xA5])
            if keep.uniform() < as_measured:
                f = float(keep.uniform(thin_low, 1.0))
                m = np.zeros(shape, bool) if masks is None else np.asarray(masks[k], bool)
                out[i], out_m[i] = np.where(m, 0.0, thin_photons(pats[k], f, keep)), m
                params.append({"source": k, "as_measured": True, "thin": f})
                continue
        t = random_transform(rng, max_angle_deg, scale_range, flip)
        out[i], out_m[i] = apply_transform(pats[k], t["matrix"], None if masks is None else masks[k])
        params.append({"source": k, "scale": t["scale"].tolist(), "flip": t["flip"].tolist(),
                       "rotation": t["rotation"].round(6).tolist()})
    res = [out]
    if return_masks:
        res.append(out_m)
    if return_params:
        res.append(params)
    return res[0] if len(res) == 1 else tuple(res)


def write_augmented(path: str | os.PathLike, patterns: np.ndarray, masks: np.ndarray | None = None,
                    params: Sequence[dict] | None = None, sources: Sequence[str] = ()) -> Path:
    """Write counts (n, 64, 64, 64) as √counts in the shards' ``/magnitude/data`` layout (atomic)."""
    import h5py

    from ..data.shards import MAGNITUDE, META, compression
    from ..atomic import atomic_path

    pats = np.asarray(patterns, np.float32)
    if pats.ndim != 4:
        raise InputError(f"{path}: expected (n, z, y, x) patterns, got {pats.shape}")
    n = pats.shape[0]
    chunk = (1,) + pats.shape[1:]
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs.update(format="autophase-augmented-experimental", version=1, n_rows=n, complete=True,
                       sources=json.dumps(list(map(str, sources))))
        d = f.create_dataset(MAGNITUDE, data=np.sqrt(pats), chunks=chunk, **compression())
        d.attrs["description"] = "sqrt(counts), float32, zero frequency at index n//2; augmented measured data"
        if masks is not None:
            f.create_dataset("mask/data", data=np.asarray(masks).astype(np.uint8), chunks=chunk, **compression())
        rows = [json.dumps(p, separators=(",", ":")) for p in (params or [{}] * n)]
        f.create_dataset(META, data=np.array(rows, object), dtype=h5py.string_dtype("utf-8"))
    return Path(path)


def write_augmented_cxi(directory: str | os.PathLike, patterns: np.ndarray, masks: np.ndarray | None = None,
                        metadata: dict | None = None, prefix: str = "aug") -> list[Path]:
    """One pattern CXI per row (``DIR/aug-00000.cxi`` …), as ``autophase prep`` writes them."""
    from ..io.cxi import write_pattern_cxi

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, p in enumerate(np.asarray(patterns)):
        paths.append(write_pattern_cxi(d / f"{prefix}-{i:05d}.cxi", p, None if masks is None else masks[i],
                                       metadata=dict(metadata or {}, augmented_row=i)))
    return paths
