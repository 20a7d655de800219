"""The torch phasing engine: the same iterations as :mod:`.cpu`, batched, on any device.

Used for GPUs (CUDA when present) and for phasing B patterns at once. It follows the CPU
engine step for step — unshifted layout, unnormalised transforms, √N-scaled magnitudes
with −1 marking free voxels, the same shrink-wrap filter — so that from the same start
both give the same object to float tolerance (tested).

Tensors are (B, z, y, x): complex64 objects, bool supports, float32 magnitudes.
"""
from __future__ import annotations

import numpy as np
import torch

from .support import gaussian_transfer

__all__ = ["TorchEngine", "default_device"]

_DIMS = (-3, -2, -1)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class TorchEngine:
    """Batched ER/HIO/RAAR/shrink-wrap on ``device`` for arrays of ``shape``.

    The B objects of a batch may be different starts, patterns or shrink-wrap settings:
    ``sw_threshold`` may be given per batch entry and ``sw_sigma`` per entry and per
    shrink-wrap update (see :meth:`run`).
    """

    def __init__(self, shape: tuple[int, int, int], device: str | torch.device | None = None):
        self.shape = tuple(shape)
        self.n = int(np.prod(shape))
        self.device = torch.device(device) if device is not None else default_device()
        self._transfer: dict[float, torch.Tensor] = {}

    def _G(self, sigma: float) -> torch.Tensor:
        sigma = float(sigma)
        if sigma not in self._transfer:
            self._transfer[sigma] = torch.from_numpy(gaussian_transfer(self.shape, sigma)).to(self.device)
        return self._transfer[sigma]

    def shrink_wrap(self, x: torch.Tensor, S: torch.Tensor, sigma, threshold) -> torch.Tensor:
        """Bool support (B, z, y, x): (|S·x| ∗ G_σ) > threshold · max per pattern (as the CPU engine).

        sigma : one σ or a sequence of B; threshold : a float or a (B, 1, 1, 1) tensor.
        """
        if np.isscalar(sigma):
            G = self._G(sigma)
        else:
            sig = [float(v) for v in sigma]
            G = self._G(sig[0]) if len(set(sig)) == 1 else torch.stack([self._G(v) for v in sig])
        a = torch.fft.irfftn(torch.fft.rfftn(x.abs() * S, dim=_DIMS) * G, s=self.shape, dim=_DIMS)
        peak = a.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
        return a > threshold * peak

    @torch.no_grad()
    def run(self, x0, support, mag_u, algos: list[str], beta: float = 0.9, sw_every: int = 0,
            sw_sigma=1.0, sw_threshold=0.1, callback=None):
        """Iterate; return (object, support, per-iteration Σ(|F|−M)², shape (iters, B)).

        Arguments as :meth:`autophase.phasing.cpu.CpuEngine.run`, with a leading batch axis;
        ``mag_u`` may have a batch axis of 1 (one pattern, B starts). Per batch entry:
        ``sw_threshold`` a float or B floats; ``sw_sigma`` a float, B floats (one per entry),
        or a (U, B) or (U, 1) table (row u: the σ of each entry at the u-th shrink-wrap
        update; the last row is reused past U).
        numpy inputs are moved to the engine's device, outputs are numpy.
        """
        dev = self.device
        x = torch.as_tensor(np.asarray(x0), device=dev).to(torch.complex64)
        S = torch.as_tensor(np.asarray(support), device=dev).bool()
        M = torch.as_tensor(np.asarray(mag_u), device=dev).float()
        B = x.shape[0]
        constrained = M >= 0
        M0 = M.clamp_min(0)
        thr = (float(sw_threshold) if np.isscalar(sw_threshold)
               else torch.as_tensor(np.asarray(sw_threshold, np.float32), device=dev).view(-1, 1, 1, 1))
        sig = np.asarray(sw_sigma, np.float64)
        if sig.ndim == 1:  # one σ per entry, at every update
            sig = sig[None]
        n_sw = 0
        err = torch.empty((len(algos), B), dtype=torch.float64, device=dev)
        zero = torch.zeros((), dtype=torch.complex64, device=dev)
        for i, algo in enumerate(algos):
            F = torch.fft.fftn(x, dim=_DIMS)
            a = F.abs()
            err[i] = torch.where(constrained, (a - M0) ** 2, 0).flatten(1).sum(1).double()
            unit = torch.where(a > 1e-30, F / a.clamp_min(1e-30), torch.ones_like(F))
            F = torch.where(constrained, unit * M0, F)
            y = torch.fft.ifftn(F, dim=_DIMS)  # scaled 1/N, as the CPU engine's kernel does
            if algo == "HIO":
                x = torch.where(S, y, x - beta * y)
            elif algo == "RAAR":  # Luke 2005; see kernels.raar_update for the algebra
                x = torch.where(S, y, beta * x + (1 - 2 * beta) * y)
            else:
                x = torch.where(S, y, zero)
            if sw_every and (i + 1) % sw_every == 0 and i + 1 < len(algos):
                s_now = float(sig) if sig.ndim == 0 else sig[min(n_sw, sig.shape[0] - 1)]
                S = self.shrink_wrap(x, S, s_now, thr)
                n_sw += 1
            if callback is not None:
                callback(i)
        return x.cpu().numpy(), S.cpu().numpy(), err.cpu().numpy()
