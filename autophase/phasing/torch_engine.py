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
    """Batched ER/HIO/shrink-wrap on ``device`` for arrays of ``shape``."""

    def __init__(self, shape: tuple[int, int, int], device: str | torch.device | None = None):
        self.shape = tuple(shape)
        self.n = int(np.prod(shape))
        self.device = torch.device(device) if device is not None else default_device()
        self._transfer: dict[float, torch.Tensor] = {}

    def _G(self, sigma: float) -> torch.Tensor:
        if sigma not in self._transfer:
            self._transfer[sigma] = torch.from_numpy(gaussian_transfer(self.shape, sigma)).to(self.device)
        return self._transfer[sigma]

    def shrink_wrap(self, x: torch.Tensor, S: torch.Tensor, sigma: float, threshold: float) -> torch.Tensor:
        """Bool support (B, z, y, x): (|S·x| ∗ G_σ) > threshold · max per pattern (as the CPU engine)."""
        a = torch.fft.irfftn(torch.fft.rfftn(x.abs() * S, dim=_DIMS) * self._G(sigma), s=self.shape, dim=_DIMS)
        peak = a.flatten(1).amax(dim=1).view(-1, 1, 1, 1)
        return a > threshold * peak

    @torch.no_grad()
    def run(self, x0, support, mag_u, algos: list[str], beta: float = 0.9, sw_every: int = 0,
            sw_sigma: float = 1.0, sw_threshold: float = 0.1, callback=None):
        """Iterate; return (object, support, per-iteration Σ(|F|−M)², shape (iters, B)).

        Arguments as :meth:`autophase.phasing.cpu.CpuEngine.run`, with a leading batch axis;
        numpy inputs are moved to the engine's device, outputs are numpy.
        """
        dev = self.device
        x = torch.as_tensor(np.asarray(x0), device=dev).to(torch.complex64)
        S = torch.as_tensor(np.asarray(support), device=dev).bool()
        M = torch.as_tensor(np.asarray(mag_u), device=dev).float()
        constrained = M >= 0
        M0 = M.clamp_min(0)
        err = torch.empty((len(algos), x.shape[0]), dtype=torch.float64, device=dev)
        for i, algo in enumerate(algos):
            F = torch.fft.fftn(x, dim=_DIMS)
            a = F.abs()
            err[i] = torch.where(constrained, (a - M0) ** 2, 0).flatten(1).sum(1).double()
            unit = torch.where(a > 1e-30, F / a.clamp_min(1e-30), torch.ones_like(F))
            F = torch.where(constrained, unit * M0, F)
            y = torch.fft.ifftn(F, dim=_DIMS)  # scaled 1/N, as the CPU engine's kernel does
            if algo == "HIO":
                x = torch.where(S, y, x - beta * y)
            else:
                x = torch.where(S, y, torch.zeros((), dtype=y.dtype, device=dev))
            if sw_every and (i + 1) % sw_every == 0 and i + 1 < len(algos):
                S = self.shrink_wrap(x, S, sw_sigma, sw_threshold)
            if callback is not None:
                callback(i)
        return x.cpu().numpy(), S.cpu().numpy(), err.cpu().numpy()
