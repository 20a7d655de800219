"""The network exported to ONNX and run by ONNX Runtime (autophase.model.portable).

The two runtimes hold the same weights, so their answers must agree; the one-shot
command must not import torch on that path; a graph is never used for another
checkpoint's weights.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from autophase.model import file_sha256, portable  # noqa: E402
from autophase.predict import DEFAULT_MODEL, Predictor  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def _patterns(n=2, seed=5):
    from autophase.physics.forward import far_field

    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:64, :64, :64] - 32
    out = []
    for _ in range(n):
        a = rng.uniform(5, 9, 3)
        obj = (((z / a[0]) ** 2 + (y / a[1]) ** 2 + (x / a[2]) ** 2) < 1).astype(np.complex64)
        obj *= np.exp(1j * rng.uniform(0.2, 0.8) * np.sin(z / 4.0 + rng.uniform(0, 3))).astype(np.complex64)
        I = np.abs(far_field(obj)) ** 2
        out.append(np.sqrt(rng.poisson(I * (1e6 / I.sum()))).astype(np.float32))
    return np.stack(out)


def test_shipped_graph_is_of_the_shipped_weights():
    """default.onnx records default.pt's SHA-256: re-exporting one without the other fails here."""
    onnx_file = DEFAULT_MODEL.with_suffix(".onnx")
    assert onnx_file.is_file()
    assert portable.find_portable(DEFAULT_MODEL) == onnx_file
    assert portable.PortableNetwork(onnx_file).checkpoint_sha256 == file_sha256(DEFAULT_MODEL)


def test_onnx_and_torch_give_the_same_answers():
    mags = _patterns()
    pt = Predictor(backend="torch", device="cpu")
    ox = Predictor(backend="onnx")
    assert (pt.backend, ox.backend) == ("torch", "onnx")
    assert ox.meta["version"] == pt.meta["version"]
    a1, p1, _ = pt.network_output(mags, symmetries=1)
    a2, p2, _ = ox.network_output(mags, symmetries=1)
    assert np.abs(a1 - a2).max() < 1e-4
    inside = a1 > 0.1
    assert np.abs(np.angle(np.exp(1j * (p1 - p2)))[inside]).max() < 1e-3
    r1, r2 = pt.predict(mags), ox.predict(mags)  # the adaptive symmetry path, on both
    for x, y in zip(r1, r2):
        assert x.symmetries == y.symmetries
        assert y.chi2 == pytest.approx(x.chi2, rel=1e-3)
        assert np.abs(x.object - y.object).max() <= 1e-3 * np.abs(x.object).max()


def test_one_shot_predict_does_not_import_torch(tmp_path):
    np.save(tmp_path / "p.npy", _patterns(1)[0] ** 2)
    code = ("import sys\nfrom autophase.cli import main\n"
            f"rc = main(['predict', {str(tmp_path / 'p.npy')!r}, '-o', {str(tmp_path / 'r.npz')!r}, "
            "'--refine', '5', '--no-plot'])\n"
            "print('rc', rc, 'torch', 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "rc 0 torch False" in r.stdout
    with np.load(tmp_path / "r.npz") as z:
        assert np.isfinite(float(z["chi2"]))


def test_a_graph_serves_only_its_own_checkpoint(tmp_path, monkeypatch):
    """Another checkpoint gets its own export in the cache; a stale or corrupt graph beside it is ignored."""
    import torch

    from autophase.model.checkpoint import read_checkpoint, save_checkpoint

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ck = read_checkpoint(DEFAULT_MODEL)
    first = next(k for k, v in ck["model"].items() if v.dtype == torch.float32)
    ck["model"][first] = ck["model"][first] * 1.01
    other = tmp_path / "other.pt"
    save_checkpoint(other, ck)
    (tmp_path / "other.onnx").write_bytes(DEFAULT_MODEL.with_suffix(".onnx").read_bytes())  # stale: other weights
    assert portable.find_portable(other) is None
    made = portable.load_portable(other).path
    assert made.parent == tmp_path / "cache" / "autophase" / "onnx"
    assert portable.find_portable(other) == made
    (tmp_path / "other.onnx").write_bytes(b"not a graph")
    assert portable.find_portable(other) == made
    p = Predictor(other, backend="onnx")
    assert p.meta["sha256"] == file_sha256(other)


def test_bad_backend_choices_are_one_line(tmp_path):
    np.save(tmp_path / "p.npy", np.ones((64, 64, 64), np.float32))
    for extra, words in ((["--backend", "onnx", "--compile"], "--backend onnx"),
                         (["--backend", "tensorflow"], "--backend")):
        r = subprocess.run([sys.executable, "-m", "autophase.cli", "predict", str(tmp_path / "p.npy"),
                            "-o", str(tmp_path / "r.npz"), "--no-plot", *extra],
                           capture_output=True, text=True, cwd=REPO, timeout=120)
        assert r.returncode != 0
        assert words in r.stderr and "Traceback" not in r.stderr
        assert not (tmp_path / "r.npz").exists()


def test_adapt_switches_an_onnx_predictor_to_torch():
    p = Predictor(backend="onnx")
    out = p.predict(_patterns(1), adapt=1)
    assert p.backend == "torch" and p.net is not None
    assert np.isfinite(out[0].chi2) and out[0].history["adapt_steps"] == 1
    assert os.path.basename(p.meta["path"]) == "default.pt"
