"""Averaging the network over exact symmetries of the measurement (test-time symmetrisation).

An orthogonal map g of the voxel grid that fixes the centre voxel n//2 — an axis
permutation, a flip q → −q about the centre, or both — commutes with the centred
Fourier transform: if I = |F(ρ)|² then I∘g = |F(ρ∘g)|². So the network can be shown the
pattern I∘g, and its answer ρ_g mapped back by g⁻¹ is a second estimate of the same
crystal. The network is not exactly equivariant (it learnt the 48 symmetries from
augmentation, not by construction), so the K estimates differ and their mean has less
error than any one of them:

    ρ̄ = (1/K) Σ_g  c_g · T_g(ρ_g ∘ g⁻¹)

where T_g is the inversion's own ambiguity — the twin conj(ρ(−r)), an integer
translation, a global phase — chosen to bring each estimate onto the identity's
(as :func:`autophase.physics.metrics.align_to` does against a truth), and c_g the
least-squares complex factor.

Measured (docs/training.md, "Symmetry averaging"): on 100 held-out simulated crystals
with the shipped width-16 model, the three 180° rotations plus the identity (K = 4) do
as well as all eight flips; the inversion alone (q → −q) adds nothing, because the
network's answer to I(−q) is, to within noise, the twin of its answer to I(q).

Arrays are (z, y, x): patterns float32 √counts, objects complex64, centred layout.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..physics.forward import flip_centred

__all__ = ["SYMMETRIES", "Symmetry", "apply", "undo", "average"]

# (axis permutation, axes flipped about the centre); the order is the order of use: the
# first K are the K-element average. Identity, the three 180° rotations (two flips: a
# proper rotation, so the network sees a rotated crystal, not a mirrored one), then the
# three mirrors and the inversion.
Symmetry = tuple[tuple[int, int, int], tuple[int, ...]]
SYMMETRIES: tuple[Symmetry, ...] = (
    ((0, 1, 2), ()),
    ((0, 1, 2), (0, 1)),
    ((0, 1, 2), (0, 2)),
    ((0, 1, 2), (1, 2)),
    ((0, 1, 2), (0,)),
    ((0, 1, 2), (1,)),
    ((0, 1, 2), (2,)),
    ((0, 1, 2), (0, 1, 2)),
)


def apply(x: np.ndarray, g: Symmetry) -> np.ndarray:
    """x∘g for a (z, y, x) array: permute the axes, then flip about the centre (as training augments)."""
    perm, flips = g
    return np.ascontiguousarray(flip_centred(np.transpose(x, perm), flips))


def undo(x: np.ndarray, g: Symmetry) -> np.ndarray:
    """The inverse of :func:`apply`: undo(apply(x, g), g) == x."""
    perm, flips = g
    return np.ascontiguousarray(np.transpose(flip_centred(x, flips), np.argsort(perm)))


def average(objects: Sequence[np.ndarray], group: Sequence[Symmetry]) -> np.ndarray:
    """Mean of the network's answers to the K transformed patterns, as one object.

    objects : K (z, y, x) complex arrays, objects[k] the answer to apply(pattern, group[k]);
    group[0] must be the identity (its answer is the reference the others are aligned to).
    Returns (z, y, x) complex64.
    """
    import scipy.fft as sfft

    from ..physics.forward import fft_workers
    from ..physics.metrics import align_to

    if len(objects) != len(group) or not group or tuple(group[0][0]) != (0, 1, 2) or group[0][1]:
        raise ValueError("average needs one object per symmetry, the identity first")
    ref = np.asarray(objects[0], np.complex64)
    others = [undo(np.asarray(o, np.complex64), g) for o, g in zip(objects[1:], group[1:])]
    # The answers are zero outside a central box (the network pads its (S/2)³ output): align
    # on that box with a margin, not the whole grid — the same registration (the shifts are
    # a few voxels, the margin keeps the circular correlation from wrapping), ~4× fewer FFT
    # points on the prediction path, where this runs K − 1 times per pattern
    box = _nonzero_box([ref, *others], margin=4)
    r = ref[box]
    # complex64 and the reference's transform shared: ~3× faster than the default
    # complex128 alignment
    F_ref = sfft.fftn(r, workers=fft_workers())
    acc = r.copy()
    for o in others:
        acc += align_to(o[box], r, dtype=np.complex64, truth_fft=F_ref).aligned
    out = np.zeros(ref.shape, np.complex64)
    out[box] = acc / np.float32(len(objects))
    return out


def _nonzero_box(arrays: Sequence[np.ndarray], margin: int) -> tuple[slice, ...]:
    """Slices of the smallest box holding every non-zero voxel of ``arrays``, grown by
    ``margin`` on each side and to an even length (FFT-friendly), within the grid."""
    shape = arrays[0].shape
    nz = np.zeros(shape, bool)
    for a in arrays:
        nz |= a != 0
    if not nz.any():
        return tuple(slice(0, n) for n in shape)
    box = []
    for ax, n in enumerate(shape):
        other = tuple(i for i in range(len(shape)) if i != ax)
        idx = np.flatnonzero(nz.any(axis=other))
        lo, hi = max(0, int(idx[0]) - margin), min(n, int(idx[-1]) + 1 + margin)
        if (hi - lo) % 2:
            lo, hi = (lo - 1, hi) if lo > 0 else (lo, min(n, hi + 1))
        box.append(slice(lo, hi))
    return tuple(box)
