"""The physics-aware loss separates the truth from trivial answers, and gradients flow."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from autophase.model import AutoPhaseNet, NetworkConfig
from autophase.physics.metrics import chi2 as np_chi2
from autophase.physics.forward import magnitude
from autophase.physics.synthetic import faceted_crystal, noisy_pattern
from autophase.train.loss import (complex_object, fitted_scale, loss_from_magnitudes, magnitude_of, physics_loss,
                                  ramp)
from autophase.train.trivial import TrivialAnswers, trivial_amplitudes


def _sample(seed: int, photons: float):
    obj = faceted_crystal(32, seed=seed)
    counts, rho = noisy_pattern(obj, photons=photons, seed=seed)
    meas = torch.from_numpy(np.sqrt(counts))[None]
    t = torch.from_numpy(rho)[None]
    return meas, t


@pytest.mark.parametrize("photons", [1e6, 1e8])
def test_truth_beats_every_trivial_answer_by_far_in_chi2(photons):
    triv = TrivialAnswers()
    for seed in range(3):
        meas, t = _sample(seed, photons)
        truth = float(physics_loss(t.abs(), t.angle(), meas, "chi2", 0.1))
        others = {k: float(v) for k, v in triv.losses(meas, "chi2").items()}
        assert others["no_signal"] == pytest.approx(1.0)
        # the fitted-scale χ² separates right from wrong by more than 5× at 1e6 photons
        assert truth * 5 < min(others.values()), (truth, others)


def test_truth_beats_trivial_answers_in_mae_at_high_photons():
    triv = TrivialAnswers()
    meas, t = _sample(4, 1e9)
    truth = float(physics_loss(t.abs(), t.angle(), meas, "mae", 0.1))
    for k, v in triv.losses(meas, "mae").items():
        assert truth < float(v), k
    assert float(triv.losses(meas, "mae")["no_signal"]) == pytest.approx(1.0)


def test_mae_prefers_darkness_at_low_photons():
    """Why L1 on √counts collapses on weak data: its optimum per voxel is the median count,
    which is 0 where fewer than ln 2 photons are expected, so predicting nothing beats the truth."""
    meas, t = _sample(5, 1e5)
    truth = float(physics_loss(t.abs(), t.angle(), meas, "mae", 0.1))
    assert truth > 1.0  # worse than no signal (exactly 1)
    assert float(physics_loss(t.abs(), t.angle(), meas, "chi2", 0.1)) < 0.2  # χ² still ranks it right


def test_loss_is_invariant_to_the_ambiguities_of_phase_retrieval():
    meas, t = _sample(6, 1e8)
    base = physics_loss(t.abs(), t.angle(), meas, "chi2", 0.0)
    # global phase and scale of the object
    t2 = t * 3.7 * torch.exp(torch.tensor(1j * 0.9, dtype=torch.complex64))
    assert physics_loss(t2.abs(), t2.angle(), meas, "chi2", 0.0) == pytest.approx(float(base), rel=1e-4)
    # the twin: conj(ρ(−r)) about the centre voxel
    tw = torch.conj(torch.roll(torch.flip(t, (1, 2, 3)), (1, 1, 1), (1, 2, 3)))
    assert physics_loss(tw.abs(), tw.angle(), meas, "chi2", 0.0) == pytest.approx(float(base), rel=1e-4)
    # integer translation inside the box
    ts = torch.roll(t, (2, -3, 1), (1, 2, 3))
    assert physics_loss(ts.abs(), ts.angle(), meas, "chi2", 0.0) == pytest.approx(float(base), rel=1e-4)


def test_chi2_matches_the_physics_metric_and_the_cosine_identity():
    meas, t = _sample(7, 1e7)
    est = magnitude_of(t.abs() * 0.5, t.angle() + 0.3 * torch.rand_like(t.real), 0.1)
    ours = float(loss_from_magnitudes(est, meas, "chi2"))
    ref = np_chi2(est[0].numpy().astype(np.float64), meas[0].numpy().astype(np.float64), fit_scale=True)
    assert ours == pytest.approx(ref, rel=1e-5)
    e, m = est.double(), meas.double()
    cos2 = (e * m).sum() ** 2 / ((e * e).sum() * (m * m).sum())
    assert ours == pytest.approx(float(1 - cos2), rel=1e-4, abs=1e-7)
    s = fitted_scale(est, meas)
    assert float(loss_from_magnitudes(est * 10, meas, "chi2")) == pytest.approx(ours, rel=1e-5)
    assert float(fitted_scale(est * 10, meas)) == pytest.approx(float(s) / 10, rel=1e-5)


def test_magnitude_agrees_with_numpy_physics():
    obj = faceted_crystal(32, seed=8)
    from autophase.physics.forward import pad_object

    rho = pad_object(obj)
    t = torch.from_numpy(rho)[None]
    ours = magnitude_of(t.abs(), t.angle(), 0.0)[0].numpy()
    assert np.allclose(ours, magnitude(rho), atol=1e-4 * np.abs(magnitude(rho)).max())


def test_support_threshold_cuts_weak_voxels_and_their_gradient():
    amp = torch.full((1, 64, 64, 64), 0.05)
    amp[:, 28:36, 28:36, 28:36] = 1.0
    amp.requires_grad_(True)
    phase = torch.zeros_like(amp)
    rho = complex_object(amp, phase, 0.1)
    assert int((rho.abs() > 0).sum()) == 8 ** 3
    meas = magnitude_of(amp.detach() * 0 + (amp.detach() > 0.5).float(), phase, 0.0)
    physics_loss(amp, phase, meas + 0.1, "chi2", 0.1).sum().backward()
    assert float(amp.grad[0, 0, 0, 0]) == 0.0 and float(amp.grad[0, 30, 30, 30].abs()) > 0


@pytest.mark.parametrize("kind", ["chi2", "mae", "mae_max"])
def test_gradient_reaches_every_layer_of_the_network(kind):
    torch.manual_seed(0)
    net = AutoPhaseNet(NetworkConfig(width=4, depth=3))
    meas, _ = _sample(9, 1e8)
    amp, phase = net(meas[:, None].repeat(2, 1, 1, 1, 1))
    loss = physics_loss(amp, phase, meas.repeat(2, 1, 1, 1), kind, 0.05).mean()
    loss.backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert float(p.grad.abs().sum()) > 0, name


def test_trivial_answers_and_ramp():
    a = trivial_amplitudes(64)
    assert float(a["box"].sum()) == 32 ** 3 and float(a["no_signal"].sum()) == 0
    assert 4000 < float(a["sphere"].sum()) < 4300  # 4/3 π 10³ ≈ 4189
    assert float(a["blob"].max()) == 1.0
    assert ramp(0, 0.0, 0.1, 150) == 0.0 and ramp(75, 0.0, 0.1, 150) == pytest.approx(0.05)
    assert ramp(150, 0.0, 0.1, 150) == ramp(10 ** 6, 0.0, 0.1, 150) == 0.1
    assert ramp(5, 0.07, 0.1, 0) == 0.1
    with pytest.raises(ValueError):
        loss_from_magnitudes(torch.ones(1, 4, 4, 4), torch.ones(1, 4, 4, 4), "l3")


def test_unmeasured_voxels_are_left_out_of_the_loss():
    meas, t = _sample(10, 1e8)
    base = float(physics_loss(t.abs(), t.angle(), meas, "chi2", 0.1))
    gap = meas.clone()
    gap[:, 40:44, :, :] = -1.0  # a detector gap
    masked = float(physics_loss(t.abs(), t.angle(), gap, "chi2", 0.1))
    assert masked == pytest.approx(base, rel=0.2) and masked < 0.01
    wrong = meas.clone()
    wrong[:, 40:44, :, :] = 1e6  # garbage in the gap ...
    wrong_masked = wrong.clone()
    wrong_masked[:, 40:44, :, :] = -1.0  # ... is ignored once marked unmeasured
    assert float(physics_loss(t.abs(), t.angle(), wrong, "chi2", 0.1)) > 0.5
    assert float(physics_loss(t.abs(), t.angle(), wrong_masked, "chi2", 0.1)) == pytest.approx(masked, rel=1e-5)


def test_centre_offset_and_penalty():
    from autophase.train.loss import centre_offset, centre_penalty

    amp = torch.zeros(2, 64, 64, 64)
    amp[0, 28:36, 28:36, 28:36] = 1.0  # centred on voxel 31.5 → offset −0.5
    amp[1, 30:38, 25:33, 29:37] = 1.0  # shifted by (+2, −3, +1)
    off = centre_offset(amp)
    assert torch.allclose(off[0], torch.full((3,), -0.5)) and torch.allclose(off[1], torch.tensor([1.5, -3.5, 0.5]))
    pen = centre_penalty(amp)
    assert float(pen[1]) == pytest.approx((1.5 ** 2 + 3.5 ** 2 + 0.5 ** 2) / 16 ** 2)
    a = amp[1:].clone().requires_grad_(True)
    centre_penalty(a).sum().backward()
    # descending the penalty takes mass from the far side (positive gradient) to the centre side
    assert float(a.grad[0, 33, 26, 33]) > 0 > float(a.grad[0, 33, 32, 33])
