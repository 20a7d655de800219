"""Fixtures shared by the prediction tests."""
from __future__ import annotations

import pytest
import torch

from autophase.model import AutoPhaseNet, NetworkConfig, save_checkpoint


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A tiny untrained network (width 2, depth 2) saved as a checkpoint."""
    torch.manual_seed(0)
    cfg = NetworkConfig(width=2, depth=2)
    net = AutoPhaseNet(cfg)
    # a non-trivial amplitude: bias the amplitude head so part of the box is above 10 % of max
    with torch.no_grad():
        net.amplitude_decoder[-1].weight.mul_(20)
    return save_checkpoint(tmp_path_factory.mktemp("m") / "m.pt", {"network": cfg.to_dict(), "model": net.state_dict()})
