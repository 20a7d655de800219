"""The AutoPhaseNN network and its checkpoints."""
from __future__ import annotations

import math

import pytest
import torch

from autophase.errors import InputError
from autophase.model import (AutoPhaseNet, NetworkConfig, forward_flops, load_model, parameter_count,
                             read_checkpoint, save_checkpoint)

SMALL = NetworkConfig(width=4, depth=3)


def test_output_shapes_ranges_and_square_support():
    torch.manual_seed(0)
    net = AutoPhaseNet(SMALL).eval()
    x = torch.rand(2, 1, 64, 64, 64) * 50
    with torch.no_grad():
        amp, phase = net(x)
    assert amp.shape == phase.shape == (2, 64, 64, 64) and amp.dtype == torch.float32
    inner = (slice(None), slice(16, 48), slice(16, 48), slice(16, 48))
    mask = torch.zeros(64, 64, 64, dtype=torch.bool)
    mask[16:48, 16:48, 16:48] = True
    assert float(amp[:, ~mask].abs().max()) == 0.0 and float(phase[:, ~mask].abs().max()) == 0.0
    assert 0 < float(amp[inner].min()) and float(amp[inner].max()) < 1
    assert -math.pi < float(phase[inner].min()) and float(phase[inner].max()) < math.pi


@pytest.mark.parametrize("norm", ["max", "log"])
@torch.no_grad()
def test_prediction_does_not_depend_on_photon_scale(norm):
    torch.manual_seed(1)
    net = AutoPhaseNet(NetworkConfig(width=4, depth=3, input_norm=norm)).eval()
    x = torch.rand(1, 1, 64, 64, 64)
    a1, p1 = net(x)
    if norm == "max":  # max-normalisation makes the input exactly scale-free
        a2, p2 = net(x * 1e4)
        assert torch.allclose(a1, a2, atol=1e-6) and torch.allclose(p1, p2, atol=1e-5)
    else:  # log(1 + I) is not scale-free, but must stay finite at any photon level
        a2, _ = net(x * 1e5)
        assert torch.isfinite(a2).all()


def test_default_size_matches_the_documented_figures():
    net = AutoPhaseNet()
    # documented in autophase/model/network.py and docs/training.md
    assert parameter_count(net) == 439_226
    assert forward_flops(net) == 2_385_248_256
    paper = AutoPhaseNet(NetworkConfig(width=32, depth=4))
    assert parameter_count(paper) == 7_003_106
    assert forward_flops(paper) == 36_465_278_976


def test_depth_and_width_change_the_network():
    a = AutoPhaseNet(NetworkConfig(width=4, depth=2))
    b = AutoPhaseNet(NetworkConfig(width=4, depth=4))
    assert parameter_count(b) > parameter_count(a)
    amp, _ = a.eval()(torch.rand(1, 1, 64, 64, 64))
    assert amp.shape == (1, 64, 64, 64)


def test_bad_inputs_and_configs():
    net = AutoPhaseNet(SMALL)
    with pytest.raises(ValueError, match="expected input"):
        net(torch.rand(1, 64, 64, 64))
    with pytest.raises(ValueError):
        NetworkConfig(width=0)
    with pytest.raises(ValueError):
        NetworkConfig(size=60, depth=4)
    with pytest.raises(ValueError, match="unknown"):
        NetworkConfig.from_dict({"width": 8, "colour": "red"})
    assert NetworkConfig.from_dict(SMALL.to_dict()) == SMALL


def test_checkpoint_round_trip_is_atomic_and_versioned(tmp_path):
    torch.manual_seed(2)
    net = AutoPhaseNet(SMALL)
    p = save_checkpoint(tmp_path / "m.pt", {"network": SMALL.to_dict(), "model": net.state_dict(), "epoch": 3})
    assert [f.name for f in tmp_path.iterdir()] == ["m.pt"]  # no temporary left behind
    loaded, meta = load_model(p)
    assert meta["epoch"] == 3 and len(meta["version"]) == 16 and meta["sha256"].startswith(meta["version"])
    x = torch.rand(1, 1, 64, 64, 64)
    with torch.no_grad():
        assert torch.equal(net.eval()(x)[0], loaded(x)[0])
    assert not loaded.training


def test_bad_checkpoints_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such checkpoint"):
        read_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(InputError, match="bad.pt"):
        read_checkpoint(bad)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(InputError, match="not an autophase checkpoint"):
        read_checkpoint(other)
    wrong = save_checkpoint(tmp_path / "wrong.pt", {"network": NetworkConfig(width=8).to_dict(),
                                                    "model": AutoPhaseNet(SMALL).state_dict()})
    with pytest.raises(InputError, match="does not match"):
        load_model(wrong)


def test_export_drops_optimiser_state_and_records_provenance(tmp_path):
    import json

    from autophase.model.export import export_model

    net = AutoPhaseNet(SMALL)
    opt = torch.optim.Adam(net.parameters())
    net(torch.rand(2, 1, 64, 64, 64))[0].mean().backward()
    opt.step()
    ck = save_checkpoint(tmp_path / "ck.pt", {"network": SMALL.to_dict(), "model": net.state_dict(),
                                              "optimizer": opt.state_dict(), "epoch": 4, "step": 40,
                                              "command": "autophase train --data X", "data": "synthetic:9:0:1e8:1e9",
                                              "history": [{"epoch": 4, "val_chi2": 0.01}]})
    res = tmp_path / "res.json"
    res.write_text(json.dumps({"n": 3, "summary": {"nn": {}}, "crystals": [1, 2, 3]}))
    pt, js = export_model(ck, tmp_path / "models" / "default.pt", res)
    assert pt.stat().st_size < ck.stat().st_size
    slim = read_checkpoint(pt)
    assert "optimizer" not in slim and slim["epoch"] == 4 and slim["last_epoch"]["val_chi2"] == 0.01
    info = json.loads(js.read_text())
    assert info["command"] == "autophase train --data X" and info["evaluation"]["n"] == 3
    assert "crystals" not in info["evaluation"] and info["sha256"] == load_model(pt)[1]["sha256"]
    # a shipped file exported again (as one brought back from a GPU node is) keeps its record
    pt2, js2 = export_model(pt, tmp_path / "again" / "default.pt", res, commands=["a", "b"], note="gpu")
    assert read_checkpoint(pt2)["last_epoch"]["val_chi2"] == 0.01
    info2 = json.loads(js2.read_text())
    assert info2["last_epoch"]["val_chi2"] == 0.01 and info2["commands"] == ["a", "b"] and info2["note"] == "gpu"
