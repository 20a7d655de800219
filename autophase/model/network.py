"""The AutoPhaseNN convolutional network: diffraction magnitude in, amplitude and phase out.

Architecture (Yao et al., npj Comput. Mater. 8, 124 (2022), Fig. 1 and Methods)::

    |F| (B,1,64,64,64) ─ normalise per sample ─► encoder: `depth` blocks, each
        [3³ conv → LeakyReLU → BatchNorm] × 2 → max-pool 2³      (64³ → 4³ for depth 4)
    two decoders (same shape, separate weights), each `depth − 1` blocks
        [3³ conv → LeakyReLU → BatchNorm] × 2 → trilinear upsample 2³   (4³ → 32³)
        then a 3³ conv to one channel and
          amplitude: sigmoid           ∈ (0, 1)
          phase:     π · tanh          ∈ (−π, π)
    zero-pad 32³ → 64³: the object lives in the central half of the array along each
    axis — the square support that enforces the oversampling condition.

Channels: block k of the encoder has ``width · 2**k``; the decoders mirror it. Convs
run at the low resolutions of the decoders (upsampling comes last in each block), so
almost all the compute is in the first encoder block at 64³.

The model knows nothing about physics or distribution: it maps magnitudes to
(amplitude, phase); :mod:`autophase.train.loss` turns these into a diffraction
pattern, and :mod:`autophase.distributed` wraps the model for many ranks.

Default (width 8, depth 4) — measured by ``tests/test_model.py`` and
``benchmarks/bench_inference.py`` with :func:`parameter_count` / :func:`forward_flops`:
**439,226 parameters, 2.39 GFLOP per 64³ forward** (conv multiply-adds × 2).
The shipped model (``autophase/models/default.pt``, trained on a GPU) is width 16,
depth 4: 1.75 M parameters, 9.26 GFLOP. The paper-size model (width 32, depth 4) has
7.00 M parameters and 36.5 GFLOP.

Example::

    >>> import torch
    >>> net = AutoPhaseNet(NetworkConfig(width=4, depth=3)).eval()
    >>> amp, phase = net(torch.rand(2, 1, 64, 64, 64))
    >>> amp.shape, float(amp[:, :16].abs().max())      # zero outside the central 32³
    (torch.Size([2, 64, 64, 64]), 0.0)
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
import torch.nn.functional as F

from ..strict import strict_from_dict

__all__ = ["NetworkConfig", "AutoPhaseNet", "normalize_input", "parameter_count", "forward_flops"]

INPUT_NORMS = ("max", "log")




@dataclass(frozen=True)
class NetworkConfig:
    """Shape of the network; saved in every checkpoint so a model can be rebuilt from it.

    width : channels of the first encoder block (doubles per block).
    depth : encoder blocks (max-pools); the bottleneck is ``size / 2**depth`` per side.
    size : input side in voxels (the object occupies ``size / 2``).
    input_norm : ``"max"`` — |F| / max|F| per sample (the paper's input);
        ``"log"`` — log(1 + |F|²) / max log(1 + |F|²): the same information, with the
        weak high-q fringes that carry the shape lifted off zero.
    negative_slope : of the LeakyReLU.
    """

    width: int = 8
    depth: int = 4
    size: int = 64
    input_norm: str = "max"
    negative_slope: float = 0.01

    def __post_init__(self):
        if self.width < 1 or self.depth < 1:
            raise ValueError(f"width and depth must be ≥ 1, got {self.width}, {self.depth}")
        if self.size % (2 ** self.depth):
            raise ValueError(f"size {self.size} is not divisible by 2**depth = {2 ** self.depth}")
        if self.input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {INPUT_NORMS}, not {self.input_norm!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "NetworkConfig":
        return strict_from_dict(cls, d, "network")


def normalize_input(mag: torch.Tensor, kind: str = "max") -> torch.Tensor:
    """Per-sample input scaling of magnitudes ``(B, 1, z, y, x)`` (any photon scale) to [0, 1].

    The network must not depend on the absolute photon count (it varies by orders of
    magnitude between scans), so each sample is divided by its own maximum.
    """
    mag = mag.clamp_min(0)  # negative = unmeasured voxel (a training-data convention): no signal
    if kind == "log":
        mag = torch.log1p(mag.float() ** 2)
    peak = mag.amax(dim=(-3, -2, -1), keepdim=True)
    return mag / peak.clamp_min(1e-12)


def _conv_block(cin: int, cout: int, slope: float) -> list[nn.Module]:
    """[3³ conv → LeakyReLU → BatchNorm] × 2, as in the paper (activation before BN)."""
    return [
        nn.Conv3d(cin, cout, 3, padding=1), nn.LeakyReLU(slope), nn.BatchNorm3d(cout),
        nn.Conv3d(cout, cout, 3, padding=1), nn.LeakyReLU(slope), nn.BatchNorm3d(cout),
    ]


class AutoPhaseNet(nn.Module):
    """Magnitudes ``(B, 1, S, S, S)`` float → amplitude, phase ``(B, S, S, S)`` float32.

    Amplitude is in [0, 1) and phase in (−π, π) inside the central (S/2)³ and exactly 0
    outside. The input may be raw √counts: it is normalised per sample inside
    (:func:`normalize_input`), so training and prediction cannot disagree on it.
    """

    def __init__(self, config: NetworkConfig | None = None):
        super().__init__()
        self.config = c = config or NetworkConfig()
        enc: list[nn.Module] = []
        cin = 1
        for k in range(c.depth):
            cout = c.width * 2 ** k
            enc += _conv_block(cin, cout, c.negative_slope) + [nn.MaxPool3d(2)]
            cin = cout
        self.encoder = nn.Sequential(*enc)
        self.amplitude_decoder = self._decoder(cin)
        self.phase_decoder = self._decoder(cin)

    def _decoder(self, cin: int) -> nn.Sequential:
        c = self.config
        layers: list[nn.Module] = []
        for k in range(c.depth - 2, -1, -1):
            cout = c.width * 2 ** k
            layers += _conv_block(cin, cout, c.negative_slope)
            layers.append(nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False))
            cin = cout
        layers.append(nn.Conv3d(cin, 1, 3, padding=1))
        return nn.Sequential(*layers)

    def forward(self, mag: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        if mag.ndim != 5 or mag.shape[1] != 1 or tuple(mag.shape[-3:]) != (c.size,) * 3:
            raise ValueError(f"expected input (B, 1, {c.size}, {c.size}, {c.size}), got {tuple(mag.shape)}")
        x = normalize_input(mag, c.input_norm)
        z = self.encoder(x)
        # Final activations in float32 even under autocast: the loss's FFT needs it.
        amp = torch.sigmoid(self.amplitude_decoder(z).float())
        phase = math.pi * torch.tanh(self.phase_decoder(z).float())
        p = c.size // 4  # (S/2)³ → S³: S/4 zeros on each side
        pad = (p, p, p, p, p, p)
        amp = F.pad(amp[:, 0], pad)
        phase = F.pad(phase[:, 0], pad)
        return amp, phase


def parameter_count(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def forward_flops(model: AutoPhaseNet, batch: int = 1) -> int:
    """Floating-point operations of one forward pass, counted by hooks on the 3D convs.

    Each conv output voxel costs Cin·k³ multiply-adds per output channel: FLOP =
    2 · Cout · Cin · k³ · voxels (bias, activations, BN, pooling and upsampling are
    < 1 % and left out). This is the figure benchmarks divide by time to get GFLOP/s.
    """
    total = 0

    def hook(mod: nn.Conv3d, _inp, out):
        nonlocal total
        k = math.prod(mod.kernel_size)
        total += 2 * out.numel() * (mod.in_channels // mod.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv3d)]
    try:
        was = model.training
        model.eval()
        with torch.no_grad():
            s = model.config.size
            model(torch.rand(batch, 1, s, s, s))
        model.train(was)
    finally:
        for h in handles:
            h.remove()
    return total
