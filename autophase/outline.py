"""A second outline for the refinement, from the data: the pattern's autocorrelation support.

The refinement (:func:`autophase.predict.refine_prediction`) starts 50 ER from the
network's answer inside the network's outline, |ρ_NN| > t·max. ER only trims that outline
(shrink-wrap on the current iterate), so where the network gets the crystal's shape wrong
— half of a crystal with a vortex left out, a small rod smeared over a blob eight times
its volume — ER cannot recover it in 50 iterations. The pattern itself says how large the
crystal is: the inverse transform of the intensity is the object's autocorrelation, whose
support is S − S, and half of it, thresholded and grown a little
(:func:`autophase.phasing.support.autocorrelation_support`, phasing's own estimate), is
an outline at least as large as a convex crystal, with no network involved.

:func:`autocorrelation_start` builds the second start: that outline moved onto the
network's answer (the whole-voxel shift that puts |ρ_NN| deepest inside it), filled
with one flat amplitude (scaled to the data) and the network's phase.
:func:`autocorrelation_starts` builds it and its twin with no phase at all (the network's
phase adds little on crystals unlike its training set, and where it is wrong it is a worse
start than none). The refinement builds them only where the two outlines disagree in
volume (:class:`autophase.predict.Refinement`, ``outline_ratio``) and keeps the result with
the lowest free log-likelihood.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["AutocorrelationStart", "START_PHASES", "autocorrelation_outline", "autocorrelation_start",
           "autocorrelation_starts", "placed_on", "volume_ratio"]

#: the phases a start on the data's outline can carry: the network's, or none (0 everywhere)
START_PHASES = ("network", "zero")


@dataclass(frozen=True)
class AutocorrelationStart:
    """The refinement's second start.

    init : (z, y, x) complex64, flat amplitude on ``support`` (the least-squares scale of its
        far field to the measured magnitudes) times exp(i·φ): φ the network's phase (0 where
        it has none) when ``phase`` is "network", 0 when it is "zero".
    support : (z, y, x) bool, the autocorrelation outline placed on the network's answer.
    ratio : :func:`volume_ratio` of ``support`` to the network's outline.
    phase : one of :data:`START_PHASES`.
    """

    init: np.ndarray
    support: np.ndarray
    ratio: float
    phase: str = "network"


def placed_on(support: np.ndarray, amplitude: np.ndarray) -> np.ndarray:
    """``support`` rolled (whole voxels, circularly) to the shift s that puts ``amplitude``
    deepest inside it: the maximum over s of Σ amplitude · D(· − s), D the Euclidean
    distance from each voxel of ``support`` to its outside (a cross-correlation, by FFT).
    Both (z, y, x); ``support`` bool, ``amplitude`` real ≥ 0.

    The autocorrelation knows the crystal's extent but not where it sits in the grid; the
    network's answer does. Plain overlap Σ amplitude · support(· − s) would not do: where
    the network's answer is much smaller than the outline (the case this is for) every
    shift that keeps it inside ties, and the FFT's rounding picks one of them.
    """
    from scipy import fft as sfft
    from scipy import ndimage

    from .physics.forward import fft_workers

    s = np.asarray(support, bool)
    a = np.asarray(amplitude, np.float32)
    if s.shape != a.shape:
        raise ValueError(f"support {s.shape} and amplitude {a.shape} must have one shape")
    # the distance transform on the outline's bounding box (padded by one voxel of outside)
    # alone: the outline fills a few % of the grid, and the transform of the whole grid was
    # most of this function's time
    depth = np.zeros(s.shape, np.float32)
    idx = np.argwhere(s)
    if len(idx):
        lo, hi = np.maximum(idx.min(axis=0) - 1, 0), np.minimum(idx.max(axis=0) + 2, s.shape)
        box = tuple(slice(l0, h0) for l0, h0 in zip(lo, hi))
        depth[box] = ndimage.distance_transform_edt(np.pad(s[box], 1))[1:-1, 1:-1, 1:-1]
    w = fft_workers()
    cc = sfft.irfftn(sfft.rfftn(a, workers=w) * np.conj(sfft.rfftn(depth, workers=w)), s=a.shape, workers=w)
    k = np.unravel_index(int(np.argmax(cc)), cc.shape)
    return np.roll(s, tuple(int(i) for i in k), axis=(0, 1, 2))


def volume_ratio(data_outline: np.ndarray, outline: np.ndarray) -> float:
    """|data_outline| / |outline| (voxel counts; ∞ when ``outline`` is empty): how much the
    data's outline and the network's disagree, > 1 where the data say the crystal is larger."""
    n = int(np.count_nonzero(outline))
    return float(np.count_nonzero(data_outline)) / n if n else float("inf")


def autocorrelation_outline(magnitude: np.ndarray, measured: np.ndarray | None = None) -> np.ndarray:
    """The outline the pattern alone gives, centred on the grid: bool (z, y, x)
    (:func:`autophase.phasing.support.autocorrelation_support` of the measured intensity,
    its defaults). ``magnitude`` √counts; ``measured`` False where unmeasured (left out, as
    are NaN or negative magnitudes)."""
    from .phasing.api import usable_magnitudes
    from .phasing.support import autocorrelation_support

    mag, ok = usable_magnitudes(magnitude, measured)
    return autocorrelation_support(mag.astype(np.float64) ** 2, measured=ok)


def autocorrelation_start(obj: np.ndarray, outline: np.ndarray, magnitude: np.ndarray,
                          measured: np.ndarray | None = None,
                          data_outline: np.ndarray | None = None) -> AutocorrelationStart:
    """The second start for a network answer ``obj`` (complex (z, y, x), data units) whose
    outline is ``outline`` (bool); ``magnitude`` √counts, ``measured`` the mask of measured
    voxels (False = unmeasured; NaN or negative magnitudes count as unmeasured too);
    ``data_outline`` the :func:`autocorrelation_outline` if already computed.

    The amplitude is flat because the network's own amplitude is what was wrong where the
    outlines disagree; the phase is the network's (0 where its answer is empty).
    """
    return autocorrelation_starts(obj, outline, magnitude, measured, data_outline, ("network",))[0]


def autocorrelation_starts(obj: np.ndarray, outline: np.ndarray, magnitude: np.ndarray,
                           measured: np.ndarray | None = None, data_outline: np.ndarray | None = None,
                           phases: tuple[str, ...] = START_PHASES) -> list[AutocorrelationStart]:
    """One start on the data's outline per entry of ``phases`` (:data:`START_PHASES`), in that
    order, all on one placement (arguments as :func:`autocorrelation_start`).

    Each start is scaled on its own: a flat, phase-free object concentrates its far field
    at the centre, so the network-phase start's scale would not fit it.
    """
    from .phasing.api import usable_magnitudes
    from .physics.forward import far_field

    bad = [ph for ph in phases if ph not in START_PHASES]
    if bad or not phases:
        raise ValueError(f"phases must be a non-empty choice of {START_PHASES}, not {phases!r}")
    mag, ok = usable_magnitudes(magnitude, measured)
    net = np.asarray(outline, bool)
    data = autocorrelation_outline(magnitude, measured) if data_outline is None else np.asarray(data_outline, bool)
    s = placed_on(data, np.abs(obj))
    ratio = volume_ratio(s, net)
    target = mag[ok].astype(np.float64)
    out = []
    for ph in phases:
        # the network's phase where it gave one, 0 where it left the crystal empty: continuing
        # its phase from the nearest voxel instead fitted χ² a little better and the phase
        # worse on all four sets tried (docs/training.md, "A second outline from the data")
        init = (np.where(s, np.exp(1j * np.angle(obj)), 0) if ph == "network" else s).astype(np.complex64)
        # in the data's units, like the network's answer (least squares of |F(init)| on the
        # measured magnitudes): ER keeps the model's own values on the free voxels, so a start
        # at another scale would carry that scale into them and into LLK_free
        F = np.abs(far_field(init)).astype(np.float64)[ok]
        den = float(F @ F)
        init *= np.float32(float(F @ target) / den if den > 0 else 0.0)
        out.append(AutocorrelationStart(init, s, ratio, ph))
    return out
