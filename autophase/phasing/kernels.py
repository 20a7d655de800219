"""Fused element-wise kernels of the CPU phasing loop (numba, one pass each).

Why fused: on a 64³ complex64 array every numpy pass (abs, divide, where, multiply…)
costs 0.1–0.3 ms and allocates; an ER/HIO iteration written with numpy needs 6–8 of
them, as much time as its two FFTs. Each kernel below reads and writes every voxel once.

Conventions (internal to the CPU engine): arrays are flat views of the *unshifted*
layout (origin at index 0, see :mod:`autophase.phasing.cpu`), the FFTs unnormalised.
``mag_u`` holds √N·|F_meas| (the unnormalised-transform scale) where the voxel is
constrained and −1 where it is free (unmeasured or in the free-LLK mask).
"""
from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["fourier_project", "real_space_update", "raar_update", "amplitude", "threshold_support",
           "compile_loop_kernels"]

_OPTS = dict(nogil=True, cache=True, fastmath=True, boundscheck=False)


@nb.njit(**_OPTS)
def fourier_project(F, mag_u):
    """F ← mag·F/|F| where constrained (mag_u ≥ 0), unchanged where free; returns Σ(|F|−mag)².

    F : complex64 (n,), the unnormalised transform of the current object, modified in place.
    mag_u : float32 (n,), √N·measured magnitude, or −1 for a free voxel.
    A zero |F| takes the measured magnitude with phase 0 (any phase is as good).
    """
    err = 0.0
    for i in range(F.size):
        m = mag_u[i]
        if m >= 0.0:
            f = F[i]
            a = np.sqrt(f.real * f.real + f.imag * f.imag)
            d = a - m
            err += d * d
            if a > 1e-30:
                F[i] = f * (m / a)
            else:
                F[i] = m
    return err


@nb.njit(**_OPTS)
def real_space_update(x, y, support, scale, beta, hio):
    """x ← P_S(y·scale) (ER) or S·y + (1−S)·(x − β·y) (HIO), in place.

    x : complex64 (n,), the previous object (HIO needs it outside the support).
    y : complex64 (n,), the unnormalised inverse transform; ``scale`` = 1/N normalises it.
    support : bool (n,).
    """
    if hio:
        for i in range(x.size):
            v = y[i] * scale
            if support[i]:
                x[i] = v
            else:
                x[i] = x[i] - beta * v
    else:
        for i in range(x.size):
            if support[i]:
                x[i] = y[i] * scale
            else:
                x[i] = 0.0


@nb.njit(**_OPTS)
def raar_update(x, y, support, scale, beta):
    """RAAR (Luke 2005) real-space step, in place: x ← y inside S, β·x + (1 − 2β)·y outside.

    With P_M the Fourier projection (y = P_M x), P_S the support projection and
    R = 2P − I, RAAR is x ← β/2·(R_S R_M + I) x + (1 − β) P_M x. Inside S this is
    β/2·(2y − x + x) + (1 − β) y = y; outside, R_S R_M x = x − 2y, so
    β/2·(2x − 2y) + (1 − β) y = β x + (1 − 2β) y. β = 1 is HIO with β = 1.

    x : complex64 (n,), the previous object; y : complex64 (n,), the unnormalised
    inverse transform (``scale`` = 1/N); support : bool (n,).
    """
    b2 = np.float32(1.0) - np.float32(2.0) * beta  # float32 beta: stays single precision
    for i in range(x.size):
        v = y[i] * scale
        if support[i]:
            x[i] = v
        else:
            x[i] = beta * x[i] + b2 * v


@nb.njit(**_OPTS)
def amplitude(x, support, out):
    """out ← |x| inside ``support``, 0 outside (float32); returns the max."""
    mx = 0.0
    for i in range(x.size):
        if support[i]:
            v = x[i]
            a = np.sqrt(v.real * v.real + v.imag * v.imag)
            out[i] = a
            if a > mx:
                mx = a
        else:
            out[i] = 0.0
    return mx


@nb.njit(**_OPTS)
def threshold_support(blurred, level, support):
    """support ← blurred > level·max(blurred); returns the number of voxels kept."""
    mx = 0.0
    for i in range(blurred.size):
        if blurred[i] > mx:
            mx = blurred[i]
    t = level * mx
    n = 0
    for i in range(blurred.size):
        s = blurred[i] > t
        support[i] = s
        n += s
    return n


def compile_loop_kernels() -> None:
    """Compile (or load from numba's cache) the kernels every ER/HIO loop with shrink-wrap
    calls, for exactly the types :class:`~autophase.phasing.cpu.CpuEngine` calls them with:
    1-D C-contiguous complex64 / float32 / bool arrays, float32 scale and β, a Python bool
    and a Python float. Tiny arrays: the call itself costs nothing once compiled.

    ``raar_update`` is left to its first use (most runs never call it).
    """
    n = 4
    x = np.zeros(n, np.complex64)
    F = np.zeros(n, np.complex64)
    mag = np.full(n, -1.0, np.float32)
    support = np.zeros(n, np.bool_)
    amp = np.zeros(n, np.float32)
    fourier_project(F, mag)
    real_space_update(x, F, support, np.float32(1.0), np.float32(0.9), True)
    amplitude(x, support, amp)
    threshold_support(amp, 0.1, support)
