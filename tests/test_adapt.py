"""predict --adapt K: gradient steps of a copy of the network on the one pattern, physics loss only."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from autophase.errors import InputError
from autophase.model.adapt import adapt_network, check_adapt
from autophase.physics.synthetic import faceted_crystal, noisy_pattern
from autophase.predict import Predictor


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine more threads only contend (≈3× slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def pattern():
    obj = faceted_crystal(32, seed=3)
    counts, _ = noisy_pattern(obj, photons=1e8, seed=4)
    return np.sqrt(counts).astype(np.float32)


def test_adapt_lowers_the_loss_and_leaves_the_model_alone(model_path, pattern):
    p = Predictor(model_path, device="cpu", symmetries=1)
    before = {k: v.clone() for k, v in p.net.state_dict().items()}
    measured = np.ones(pattern.shape, bool)
    measured[:, 40:43, :] = False  # a detector gap
    ad = adapt_network(p.net, pattern, measured, steps=4, lr=3e-3, threshold=p.threshold)
    assert len(ad.losses) == 5 and all(b < a for a, b in zip(ad.losses, ad.losses[1:])), ad.losses
    assert ad.losses[-1] < 0.98 * ad.losses[0]
    for k, v in p.net.state_dict().items():
        assert torch.equal(v, before[k]), k  # the loaded model is untouched
    moved = [k for k, v in ad.net.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert moved and all("running" not in k for k in moved)  # weights move, BatchNorm statistics do not

    plain = p.predict(pattern[None], [measured])[0]
    adapted = p.predict(pattern[None], [measured], adapt=4, adapt_lr=3e-3)[0]
    assert adapted.chi2 < plain.chi2  # the prediction from the adapted copy fits the pattern better
    assert adapted.history["adapt_steps"] == 4 and len(adapted.history["adapt_chi2"]) == 5
    assert adapted.seconds_nn >= adapted.history["adapt_seconds"]
    again = p.predict(pattern[None], [measured])[0]
    assert again.chi2 == plain.chi2  # and the predictor still uses the loaded weights
    d = adapted.to_npz_dict()
    assert int(d["adapt_steps"]) == 4 and d["adapt_chi2"].shape == (5,)


@pytest.mark.parametrize("steps, lr, option", [(-1, 1e-4, "--adapt"), (2.5, 1e-4, "--adapt"), (True, 1e-4, "--adapt"),
                                               (5, 0.0, "--adapt-lr"), (5, float("nan"), "--adapt-lr"),
                                               (5, 2.0, "--adapt-lr")])
def test_bad_adapt_options_are_rejected(steps, lr, option):
    with pytest.raises(InputError, match=option):
        check_adapt(steps, lr)


def test_cli_rejects_bad_adapt_before_anything_runs(tmp_path, pattern, model_path):
    src = tmp_path / "p.npy"
    np.save(src, pattern.astype(np.float64) ** 2)
    out = tmp_path / "o.npz"
    r = subprocess.run([sys.executable, "-m", "autophase.cli", "predict", str(src), "-o", str(out), "--model",
                        str(model_path), "--adapt", "3", "--adapt-lr", "-1", "--no-plot"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "--adapt-lr" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists()
    r = subprocess.run([sys.executable, "-m", "autophase.cli", "predict", str(src), "-o", str(out), "--model",
                        str(model_path), "--adapt", "2", "--adapt-lr", "3e-3", "--no-plot", "--symmetries", "1"],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert "adapted (2 steps" in r.stdout
    with np.load(out) as z:
        assert int(z["adapt_steps"]) == 2
