"""The physics-aware unsupervised loss: network output → diffraction → compare with the data.

For each sample (shapes ``(B, z, y, x)``, float32; ``B`` may be 1)::

    ρ̂   = A · 1[A > t · max A] · e^{iφ}        shape support at a fraction t of the
                                              sample's own amplitude maximum (the mask is
                                              not differentiated, A inside it is)
    F̂   = |far_field(ρ̂)|                      autophase.physics, unitary FFT, centred
    M   = √I_measured                         the network's input, in √photons

The network's amplitude is in [0, 1): it has no photon scale, so the scale between
F̂ and M is **fitted per sample by least squares** — s = ⟨F̂, M⟩ / ⟨F̂, F̂⟩ — and the
losses compare s·F̂ with M. With the exact truth and noise-free data s·F̂ = M. Because
s minimises Σ(sF̂ − M)² the gradient through s vanishes for χ² (envelope theorem), so it
is kept in the graph without changing the χ² gradient; for MAE it is a small extra term.

Losses (per sample, shape ``(B,)``):

* ``chi2`` — the paper's quality metric (eq. 2) with the fitted scale:
  χ² = Σ(sF̂ − M)² / Σ M² = 1 − ⟨F̂, M⟩² / (‖F̂‖² ‖M‖²)  ∈ [0, 1].
  No signal scores exactly 1. Poisson noise puts a floor under the truth: about
  (number of lit voxels / 4 + number of dark voxels with counts) / photons.
  TRAINING-NOTES measured it to separate the truth from every trivial answer by
  orders of magnitude; this is the default.
* ``mae`` — eq. 1, mean |sF̂ − M|, divided by mean M so that it is dimensionless
  and comparable across photon levels (no signal scores exactly 1).
* ``mae_max`` — eq. 1 as the reference implementation computes it: both patterns
  divided by their own maximum, mean |F̂/max F̂ − M/max M|. Kept for comparison: on
  weak data it barely separates right from wrong (the truth ≈ 0.84 × a blob).

**Centring.** |F| is blind to where the object sits, but the square support is not:
an object placed off-centre is cut by the walls of the (S/2)³ box. Left alone, a network
trained 120 steps put every crystal ≈ (−5, −5, +5) voxels off-centre, with ~2,000 support
voxels on the box walls. :func:`centre_penalty` — the squared distance of the amplitude's
centre of mass from the array centre, in units of the half box (S/4) — added with a
small weight (``centre_weight``) removes that freedom; a translation costs no χ², so the
penalty can go to zero without fighting the data.

The support threshold ``t`` is ramped during training (:func:`ramp`): a hard support
cut at 10 % from the first step, when the amplitude is still ≈ 0.5 everywhere, cuts
nothing useful and only adds noise to the gradient.

Example::

    >>> amp = torch.zeros(1, 64, 64, 64); amp[:, 24:40, 24:40, 24:40] = 1
    >>> M = magnitude_of(amp, torch.zeros_like(amp), threshold=0.1) * 30
    >>> float(physics_loss(amp, torch.zeros_like(amp), M, "chi2", 0.1)) < 1e-10
    True
"""
from __future__ import annotations

import torch

from ..physics.forward import far_field
from ..physics.metrics import chi2 as _chi2

__all__ = ["LOSSES", "ramp", "complex_object", "magnitude_of", "fitted_scale", "loss_from_magnitudes",
           "physics_loss", "centre_offset", "centre_penalty"]

LOSSES = ("chi2", "mae", "mae_max")
_DIMS = (-3, -2, -1)


def ramp(step: int, start: float, end: float, steps: int) -> float:
    """Linear ramp from ``start`` (step 0) to ``end`` (step ≥ ``steps``)."""
    if steps <= 0 or step >= steps:
        return float(end)
    return float(start + (end - start) * step / steps)


def complex_object(amp: torch.Tensor, phase: torch.Tensor, threshold: float) -> torch.Tensor:
    """ρ̂ = A · 1[A > t·max A] · e^{iφ}: complex64 ``(B, z, y, x)`` from float ``(B, z, y, x)``.

    ``threshold`` t is a fraction of each sample's own amplitude maximum; t = 0 keeps
    every voxel. The support mask is computed without gradient (it is a hard cut).
    """
    amp = amp.float()
    phase = phase.float()
    if threshold > 0:
        with torch.no_grad():
            keep = amp > threshold * amp.amax(dim=_DIMS, keepdim=True)
        amp = amp * keep
    return torch.polar(amp, phase)


def magnitude_of(amp: torch.Tensor, phase: torch.Tensor, threshold: float) -> torch.Tensor:
    """|far_field(ρ̂)|: the predicted diffraction magnitude, float32 ``(B, z, y, x)``."""
    return far_field(complex_object(amp, phase, threshold)).abs()


def fitted_scale(est: torch.Tensor, meas: torch.Tensor) -> torch.Tensor:
    """Least-squares s = ⟨F̂, M⟩ / ⟨F̂, F̂⟩ per sample, shape ``(B,)`` (0 when F̂ = 0)."""
    return (est * meas).sum(dim=_DIMS) / (est.square().sum(dim=_DIMS) + 1e-30)


def loss_from_magnitudes(est: torch.Tensor, meas: torch.Tensor, kind: str = "chi2") -> torch.Tensor:
    """Per-sample loss ``(B,)`` between predicted F̂ and measured M (both ``(B, z, y, x)``).

    Voxels where M < 0 are *unmeasured* (detector gaps, masked pixels; see
    :class:`autophase.train.data.PatternFiles`): both sides are zeroed there, so they
    neither count in the loss nor in the fitted scale.
    """
    est = est.float()
    meas = meas.float()
    if bool((meas < 0).any()):
        valid = meas >= 0
        est, meas = est * valid, meas * valid
    if kind == "chi2":
        return _chi2(est, meas, fit_scale=True)
    if kind == "mae":
        s = fitted_scale(est, meas)[:, None, None, None]
        return (s * est - meas).abs().mean(dim=_DIMS) / (meas.mean(dim=_DIMS) + 1e-30)
    if kind == "mae_max":
        e = est / (est.amax(dim=_DIMS, keepdim=True) + 1e-12)
        m = meas / (meas.amax(dim=_DIMS, keepdim=True) + 1e-12)
        return (e - m).abs().mean(dim=_DIMS)
    raise ValueError(f"unknown loss {kind!r}; choose one of {LOSSES}")


def physics_loss(amp: torch.Tensor, phase: torch.Tensor, meas: torch.Tensor, kind: str = "chi2",
                 threshold: float = 0.1) -> torch.Tensor:
    """Per-sample loss ``(B,)`` of the network output against measured magnitudes.

    amp, phase : (B, z, y, x) float, the network's output (amplitude in [0, 1], phase in rad).
    meas : (B, z, y, x) or (B, 1, z, y, x) float, √counts with the Bragg peak at the centre.
    """
    if meas.ndim == amp.ndim + 1:
        meas = meas[:, 0]
    return loss_from_magnitudes(magnitude_of(amp, phase, threshold), meas, kind)


def centre_offset(amp: torch.Tensor) -> torch.Tensor:
    """Centre of mass of the amplitude ``(B, z, y, x)`` minus the array centre, ``(B, 3)`` voxels."""
    amp = amp.float()
    w = amp.sum(dim=_DIMS).clamp_min(1e-12)
    out = []
    for k, d in enumerate(_DIMS):
        n = amp.shape[d]
        c = torch.arange(n, dtype=amp.dtype, device=amp.device) - n // 2
        other = tuple(x for x in _DIMS if x != d)
        out.append((amp.sum(dim=other) * c).sum(-1) / w)
    return torch.stack(out, -1)


def centre_penalty(amp: torch.Tensor) -> torch.Tensor:
    """‖centre of mass − centre‖² / (S/4)² per sample ``(B,)``: 1 = a quarter-array off."""
    quarter = amp.shape[-1] / 4
    return centre_offset(amp).square().sum(-1) / quarter ** 2
