"""Fixtures shared by the prediction tests."""
from __future__ import annotations

import os

import pytest
import torch

from autophase.model import AutoPhaseNet, NetworkConfig, save_checkpoint

# `watch --precision auto` keeps its timings in the user's cache; tests time afresh unless a
# test points the cache somewhere itself (the child processes of CLI tests inherit this)
os.environ.setdefault("AUTOPHASE_PRECISION_CACHE", "off")


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
