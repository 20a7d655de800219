"""Adaptation to the measurement itself: K gradient steps of the network on one pattern.

Training needed no truth — its loss compares the diffraction of the network's answer with
the measured pattern (:func:`autophase.train.loss.physics_loss`) — so the same loss can be
minimised on the one pattern to be inverted, before predicting it (``predict --adapt K``):

    θ₀ = the trained weights (a deep copy: the loaded model is never touched)
    θ_{k+1} = Adam(θ_k, ∇_θ χ²(|F(A_θ(M) · 1[A > t·max A] · e^{iφ_θ(M)})|, M)),  k < K

with M the measured √counts (1, 1, S, S, S) float32 (−1 at unmeasured voxels, which the
loss leaves out and the network reads as 0), t the support threshold the model was trained
with, χ² the fitted-scale loss (``chi2``), Adam at ``lr`` with gradient clipping at 1
(as in training). BatchNorm stays in eval mode — its running statistics, gathered on many
patterns, are not re-estimated from one — so only the weights move.

The cost per step is one forward and one backward pass at batch 1 (≈3× a forward pass);
see benchmarks/bench_adapt.py and docs/training.md ("Adaptation") for the measured cost and
when it pays off against more ER iterations.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..errors import InputError

__all__ = ["DEFAULT_ADAPT_LR", "MAX_ADAPT_STEPS", "check_adapt", "Adapted", "adapt_network"]

DEFAULT_ADAPT_LR = 1e-4
MAX_ADAPT_STEPS = 10_000


def check_adapt(steps, lr) -> tuple[int, float]:
    """(K, lr) checked; InputError naming ``--adapt`` / ``--adapt-lr`` otherwise."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or not 0 <= steps <= MAX_ADAPT_STEPS:
        raise InputError(f"--adapt: the number of gradient steps must be an integer in [0, {MAX_ADAPT_STEPS}], "
                         f"got {steps!r}")
    try:
        lr = float(lr)
    except (TypeError, ValueError):
        raise InputError(f"--adapt-lr: a learning rate in (0, 1], got {lr!r}") from None
    if not (math.isfinite(lr) and 0 < lr <= 1):
        raise InputError(f"--adapt-lr: a learning rate in (0, 1], got {lr!r}")
    return int(steps), lr


@dataclass
class Adapted:
    """The adapted copy of a network and how it got there.

    net      : the copy (eval mode), ready for inference.
    losses   : χ² on the pattern before step 1, 2, …, K and after step K (K + 1 values).
    seconds  : wall time of the K steps (copy included).
    """

    net: object
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {"steps": len(self.losses) - 1, "chi2_before": self.losses[0], "chi2_after": self.losses[-1],
                "seconds": self.seconds}


def adapt_network(net, magnitude: np.ndarray, measured: np.ndarray | None = None, steps: int = 20,
                  lr: float = DEFAULT_ADAPT_LR, threshold: float = 0.1, loss: str = "chi2",
                  device=None, on_step: Callable[[int, object], None] | None = None) -> Adapted:
    """K Adam steps of a copy of ``net`` on one pattern with the physics loss (module docstring).

    net       : an :class:`~autophase.model.network.AutoPhaseNet` (or its ``torch.compile`` wrapper).
    magnitude : (S, S, S) float √counts; ``measured`` (S, S, S) bool, False = unmeasured
                (also: negative magnitudes are unmeasured).
    on_step   : called as ``on_step(k, net)`` after step k (k = 1…K), e.g. to predict from snapshots.
    """
    import torch

    from ..train.loss import physics_loss

    steps, lr = check_adapt(steps, lr)
    t0 = time.perf_counter()
    base = getattr(net, "_orig_mod", net)  # a compiled network's eager module
    dev = device or next(base.parameters()).device
    model = copy.deepcopy(base).to(dev)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    m = np.asarray(magnitude, np.float32)
    if measured is not None:
        m = np.where(np.asarray(measured, bool), m, -1.0).astype(np.float32)
    x = torch.from_numpy(np.ascontiguousarray(m))[None, None].to(dev)
    x = x.contiguous(memory_format=torch.channels_last_3d)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for k in range(steps):
        amp, phase = model(x)
        value = physics_loss(amp, phase, x, loss, threshold).mean()
        losses.append(float(value.detach()))
        opt.zero_grad(set_to_none=True)
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if on_step is not None:
            on_step(k + 1, model)
    with torch.no_grad():
        amp, phase = model(x)
        losses.append(float(physics_loss(amp, phase, x, loss, threshold).mean()))
    for p in model.parameters():
        p.requires_grad_(False)
    return Adapted(model, losses, time.perf_counter() - t0)
