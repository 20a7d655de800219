"""Symmetry averaging of the network: exact symmetries, their inverses, the aligned mean, Predictor."""
from __future__ import annotations

import numpy as np
import pytest

from autophase.errors import InputError
from autophase.model.symmetry import SYMMETRIES, apply, average, undo
from autophase.physics.forward import magnitude, pad_object
from autophase.physics.metrics import complex_error
from autophase.physics.synthetic import faceted_crystal, noisy_pattern
from autophase.predict import DEFAULT_SYMMETRIES, Predictor


def _crystal(seed: int = 0) -> np.ndarray:
    """A 64³ strained crystal (complex64), not centred exactly, so shifts and flips show."""
    rho = pad_object(faceted_crystal(32, seed=seed))
    z = np.arange(64)[:, None, None]
    return (np.roll(rho, (2, -1, 3), axis=(0, 1, 2)) * np.exp(0.4j * np.sin(z / 7.0))).astype(np.complex64)


@pytest.mark.parametrize("g", SYMMETRIES + (((1, 2, 0), (0, 2)), ((2, 0, 1), (1,))))
def test_each_symmetry_is_exact_and_undone(g):
    rho = _crystal()
    # |F(ρ∘g)| = |F(ρ)|∘g exactly: the pattern of the transformed crystal is the transformed pattern
    np.testing.assert_allclose(magnitude(apply(rho, g)), apply(magnitude(rho), g), atol=1e-4 * magnitude(rho).max())
    np.testing.assert_array_equal(undo(apply(rho, g), g), rho)


def test_average_of_exact_answers_recovers_the_object_through_twin_shift_and_phase():
    rho = _crystal(1)
    group = SYMMETRIES
    answers = []
    for k, g in enumerate(group):
        o = apply(rho, g)  # what a perfectly equivariant network would answer to apply(I, g)
        if k % 2:  # ... up to the inversion's ambiguities: the twin, a translation, a global phase
            o = np.conj(np.roll(np.flip(o), 1, axis=(0, 1, 2)))
        answers.append(np.roll(o, k - 3, axis=1) * np.exp(1j * 0.7 * k) if k else o)
    avg = average(answers, group)
    assert avg.dtype == np.complex64
    assert complex_error(avg, rho) < 1e-6
    # a plain mean without the alignment is far off
    naive = np.mean([undo(o, g) for o, g in zip(answers, group)], axis=0)
    assert complex_error(naive, rho) > 0.3


def test_average_needs_the_identity_first():
    rho = _crystal()
    with pytest.raises(ValueError, match="identity first"):
        average([rho, rho], SYMMETRIES[1:3])


def test_predictor_averages_k_symmetric_passes(model_path, monkeypatch):
    counts, _ = noisy_pattern(faceted_crystal(32, seed=3), photons=1e7, seed=3)
    mag = np.sqrt(counts).astype(np.float32)
    one = Predictor(model_path, device="cpu", symmetries=1)
    four = Predictor(model_path, device="cpu")
    assert four.symmetries == DEFAULT_SYMMETRIES == 4 and four.meta["symmetries"] == 4
    seen = []
    real = four._forward
    monkeypatch.setattr(four, "_forward", lambda x: (seen.append(x.copy()), real(x))[1])
    a4, p4, _ = four.network_output(mag)
    # the network saw the identity and the three 180° rotations of the pattern, in one batch
    assert len(seen) == 1 and seen[0].shape == (4, 64, 64, 64)
    for k in range(4):
        np.testing.assert_array_equal(seen[0][k], apply(mag, SYMMETRIES[k]))
    a1, p1, _ = one.network_output(mag)
    assert a4.shape == a1.shape == (1, 64, 64, 64) and np.isfinite(a4).all() and np.isfinite(p4).all()
    assert not np.allclose(a4, a1)  # an untrained network is not equivariant: the mean differs
    # the mean is the aligned average of the four single answers
    outs = [one.network_output(apply(mag, g)) for g in SYMMETRIES[:4]]
    rho = average([o[0][0] * np.exp(1j * o[1][0]) for o in outs], SYMMETRIES[:4])
    np.testing.assert_allclose(a4[0] * np.exp(1j * p4[0]), rho, atol=1e-5)


@pytest.mark.parametrize("k", [0, 9])
def test_predictor_rejects_a_bad_symmetry_count(model_path, k):
    with pytest.raises(InputError, match="symmetries"):
        Predictor(model_path, device="cpu", symmetries=k)


@pytest.mark.slow
def test_compiled_predictor_matches_eager_with_a_padded_last_batch(model_path):
    mags = np.stack([np.sqrt(noisy_pattern(faceted_crystal(32, seed=s), photons=1e7, seed=s)[0]) for s in range(3)])
    eager = Predictor(model_path, device="cpu", batch_size=2, symmetries=1)
    comp = Predictor(model_path, device="cpu", batch_size=2, symmetries=1, compile=True)
    assert comp.compiled and not eager.compiled
    a0, p0, _ = eager.network_output(mags)
    a1, p1, _ = comp.network_output(mags)  # batches of 2 and 1 (padded to 2): one compiled shape
    assert a1.shape == (3, 64, 64, 64)
    np.testing.assert_allclose(a1, a0, atol=1e-4)
    sup = a0 > 0.1 * a0.max()
    np.testing.assert_allclose(np.exp(1j * p1[sup]), np.exp(1j * p0[sup]), atol=1e-3)


def test_only_patterns_that_fit_badly_are_averaged(model_path, monkeypatch):
    mags = np.stack([np.sqrt(noisy_pattern(faceted_crystal(32, seed=s), photons=1e7, seed=s)[0]) for s in (4, 5)])
    mags = mags.astype(np.float32)
    single = Predictor(model_path, device="cpu", symmetries=1).predict(mags)
    always = Predictor(model_path, device="cpu", average_above=0).predict(mags)
    assert [p.symmetries for p in single] == [1, 1] and [p.symmetries for p in always] == [4, 4]
    never = Predictor(model_path, device="cpu", average_above=1e9).predict(mags)
    for a, b in zip(never, single):  # every single pass fits "well enough": nothing averaged
        assert a.symmetries == 1 and np.array_equal(a.object, b.object)
    # a threshold between the two single-pass χ²: only the worse pattern gets the other 3 copies
    lo, hi = sorted(p.chi2 for p in single)
    worse = int(np.argmax([p.chi2 for p in single]))
    adaptive = Predictor(model_path, device="cpu", average_above=(lo + hi) / 2)
    shapes = []
    real = adaptive._forward
    monkeypatch.setattr(adaptive, "_forward", lambda x: (shapes.append(x.shape[0]), real(x))[1])
    got = adaptive.predict(mags)
    assert shapes == [2, 3]  # one pass of both, then 3 more copies of one pattern
    assert [p.symmetries for p in got] == [4 if i == worse else 1 for i in range(2)]
    ref = always[worse].object
    np.testing.assert_allclose(got[worse].object, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    assert np.array_equal(got[1 - worse].object, single[1 - worse].object)
    assert got[0].seconds_nn == got[1].seconds_nn > 0  # the whole network stage, shared out
    with pytest.raises(InputError, match="average-above"):
        Predictor(model_path, device="cpu", average_above=-1)


def test_a_model_fitted_in_the_measured_frame_is_not_averaged_unless_asked(model_path, tmp_path):
    import torch

    from autophase.predict import default_symmetries

    ck = torch.load(model_path, map_location="cpu", weights_only=False)
    ck["predict_symmetries"] = 1
    own = tmp_path / "measured-frame.pt"
    torch.save(ck, own)
    assert default_symmetries(0) == 1 and default_symmetries(5) is None
    assert Predictor(own, device="cpu", symmetries=default_symmetries(5)).symmetries == 1
    assert Predictor(own, device="cpu", symmetries=4).symmetries == 4          # an explicit K wins
    assert Predictor(model_path, device="cpu", symmetries=default_symmetries(5)).symmetries == DEFAULT_SYMMETRIES
    assert Predictor(own, device="cpu").meta["symmetries"] == 1
