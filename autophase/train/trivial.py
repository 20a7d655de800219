"""Fixed "trivial" answers whose loss a trained network must beat: the collapse yardstick.

A network that has collapsed answers every input with the same object; its loss then
sits at (or above) the loss of the best *fixed* object. Logging these beside the
validation loss every epoch shows at a glance whether the network learned anything
input-specific (TRAINING-NOTES, "Habits that made collapse visible").

All answers are zero-phase, centred, inside the central (S/2)³ of the S³ array:

* ``no_signal`` — ρ = 0 (F̂ = 0: χ² = 1 and MAE = 1 exactly with the fitted scale);
* ``box`` — the whole (S/2)³ square support filled with amplitude 1;
* ``sphere`` — a ball of radius S·10/64 voxels (10 for 64³: a typical crystal);
* ``blob`` — a Gaussian of σ = S·5/64 voxels, cut at 10 % of its peak.
"""
from __future__ import annotations

from functools import lru_cache

import torch

from ..physics.forward import far_field
from .loss import loss_from_magnitudes

__all__ = ["TRIVIAL_ANSWERS", "trivial_amplitudes", "TrivialAnswers"]

TRIVIAL_ANSWERS = ("no_signal", "box", "sphere", "blob")


def trivial_amplitudes(size: int = 64) -> dict[str, torch.Tensor]:
    """Each fixed answer's amplitude, float32 ``(size, size, size)``, zero phase."""
    c = torch.arange(size, dtype=torch.float32) - size // 2
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")
    r2 = z * z + y * y + x * x
    h = size // 4
    box = torch.zeros(size, size, size)
    box[size // 2 - h:size // 2 + h, size // 2 - h:size // 2 + h, size // 2 - h:size // 2 + h] = 1.0
    sphere = (r2 <= (10.0 * size / 64) ** 2).float()
    blob = torch.exp(-r2 / (2 * (5.0 * size / 64) ** 2))
    blob = blob * (blob > 0.1) * box
    return {"no_signal": torch.zeros(size, size, size), "box": box, "sphere": sphere, "blob": blob}


class TrivialAnswers:
    """Precomputed |far_field| of the fixed answers; :meth:`losses` scores them on a batch."""

    def __init__(self, size: int = 64, device: torch.device | str = "cpu"):
        self.magnitudes = {k: m.to(device) for k, m in _magnitudes(size).items()}

    def losses(self, meas: torch.Tensor, kind: str = "chi2") -> dict[str, torch.Tensor]:
        """``{answer: (B,) per-sample loss}`` against measured magnitudes ``(B[, 1], z, y, x)``."""
        if meas.ndim == 5:
            meas = meas[:, 0]
        out = {}
        for k, m in self.magnitudes.items():
            est = m.to(meas.device).expand_as(meas)
            out[k] = loss_from_magnitudes(est, meas, kind)
        return out


@lru_cache(maxsize=4)
def _magnitudes(size: int) -> dict[str, torch.Tensor]:
    # computed once per process: every Trainer and every test reuses them
    return {k: far_field(a.to(torch.complex64)).abs() for k, a in trivial_amplitudes(size).items()}
