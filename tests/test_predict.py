"""``autophase predict``: batched CNN inversion, outputs like ``autophase phase``, refinement, errors."""
from __future__ import annotations

import numpy as np
import pytest

import autophase.predict as predict_mod
from autophase.cli import main
from autophase.errors import InputError
from autophase.model import file_sha256, save_checkpoint
from autophase.physics.forward import far_field
from autophase.physics.metrics import chi2
from autophase.physics.synthetic import faceted_crystal, noisy_pattern
from autophase.predict import Predictor, finish_prediction, resolve_model


@pytest.fixture(scope="module")
def patterns(tmp_path_factory):
    d = tmp_path_factory.mktemp("p")
    paths = []
    for i in range(3):
        counts, _ = noisy_pattern(faceted_crystal(32, seed=i), photons=1e7, seed=i)
        p = d / f"pat{i}.npz"
        np.savez(p, data=counts)
        paths.append(p)
    return paths


def test_predict_one_file_writes_npz_and_png(tmp_path, model_path, patterns, capsys):
    out = tmp_path / "r.npz"
    assert main(["predict", str(patterns[0]), "-o", str(out), "--model", str(model_path)]) == 0
    assert out.exists() and out.with_suffix(".png").stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.npz", "r.png"]  # no temporaries
    z = np.load(out)
    obj, sup = z["object"], z["support"]
    assert obj.shape == (64, 64, 64) and obj.dtype == np.complex64 and sup.dtype == bool
    assert str(z["model_version"]) == file_sha256(model_path)[:16] and str(z["model_path"]) == str(model_path)
    a = np.abs(obj)
    assert not a[~sup].any() and sup.any()
    # the object is in data units: its χ² without a fitted scale is the reported χ²
    mag = np.sqrt(np.load(patterns[0])["data"])
    assert float(z["chi2"]) == pytest.approx(chi2(np.abs(far_field(obj)), mag), rel=1e-4)
    assert float(z["chi2"]) == pytest.approx(chi2(np.abs(far_field(obj)) * 7.0, mag, fit_scale=True), rel=1e-4)
    assert np.isfinite(z["llk_free"]) and int(z["refine_iterations"]) == 0
    assert "model" in capsys.readouterr().out


def test_batched_prediction_equals_one_at_a_time(model_path, patterns):
    mags = np.stack([np.sqrt(np.load(p)["data"]) for p in patterns]).astype(np.float32)
    batched = Predictor(model_path, device="cpu", batch_size=3).predict(mags)
    for i in range(3):
        single = Predictor(model_path, device="cpu", batch_size=1).predict(mags[i])[0]
        assert np.allclose(batched[i].object, single.object, rtol=1e-4, atol=1e-4 * np.abs(single.object).max())
        assert batched[i].chi2 == pytest.approx(single.chi2, rel=1e-4)


def test_many_inputs_go_to_a_directory(tmp_path, model_path, patterns):
    out = tmp_path / "many"
    assert main(["predict", *map(str, patterns), "-o", str(out), "--model", str(model_path), "--no-plot"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["pat0.npz", "pat1.npz", "pat2.npz"]
    assert main(["predict", *map(str, patterns), "-o", str(tmp_path / "x.npz"), "--model", str(model_path)]) == 2


@pytest.mark.slow
def test_refinement_starts_from_the_prediction_and_lowers_chi2(tmp_path, model_path, patterns):
    mag = np.sqrt(np.load(patterns[1])["data"]).astype(np.float32)
    p = Predictor(model_path, device="cpu")
    nn = p.predict(mag)[0]
    ref = p.predict(mag, refine=10)[0]
    assert ref.refine_iterations == 10 and len(ref.history["chi2"]) == 10
    assert ref.chi2 < nn.chi2
    assert ref.seconds_refine > 0 and ref.model["version"] == nn.model["version"]
    out = tmp_path / "ref.npz"
    assert main(["predict", str(patterns[1]), "-o", str(out), "--model", str(model_path), "--refine", "5"]) == 0
    assert int(np.load(out)["refine_iterations"]) == 5


def test_refinement_options_reach_the_support_and_the_outputs(tmp_path, model_path, patterns):
    """--refine-start-threshold cuts the first support; a fixed support stays the first one."""
    from autophase.predict import Refinement, refine_prediction

    mag = np.sqrt(np.load(patterns[1])["data"]).astype(np.float32)
    nn = Predictor(model_path, device="cpu", symmetries=1).predict(mag)[0]  # one pass: a structured amplitude
    # a start at the training cut (0.1 here, also the default start) reproduces the
    # prediction's own support exactly; a higher start (0.2) lies inside it
    assert np.array_equal(Refinement(start_threshold=0.1).start_support(nn.object, nn.support), nn.support)
    assert np.array_equal(Refinement().start_support(nn.object, nn.support), nn.support)
    higher = Refinement(start_threshold=0.2).start_support(nn.object, nn.support)
    assert higher.any() and not (higher & ~nn.support).any()
    tight = Refinement(start_threshold=0.5, shrink_wrap_every=0, outline_ratio=0)  # one outline: the first
    first = tight.start_support(nn.object, nn.support)
    a = np.abs(nn.object)
    assert np.array_equal(first, nn.support & (a > 0.5 * a.max())) and first.sum() < nn.support.sum()
    fixed = refine_prediction(nn, mag, None, 5, tight)
    assert np.array_equal(fixed.support, first)       # no shrink-wrap: the support never moved
    out = tmp_path / "opt.npz"
    assert main(["predict", str(patterns[1]), "-o", str(out), "--model", str(model_path), "--refine", "5",
                 "--refine-shrink-wrap", "2", "--refine-sw-threshold", "0.12", "--no-plot"]) == 0
    z = np.load(out)
    assert float(z["refine_shrink_wrap_every"]) == 2 and float(z["refine_sw_threshold"]) == 0.12
    assert main(["predict", str(patterns[1]), "-o", str(tmp_path / "bad.npz"), "--model", str(model_path),
                 "--refine", "5", "--refine-sw-threshold", "1.5"]) == 2
    assert not (tmp_path / "bad.npz").exists()


def test_finish_prediction_scale_and_support():
    amp = np.zeros((64, 64, 64), np.float32)
    amp[28:36, 28:36, 28:36] = 0.8
    amp[20, 20, 20] = 0.05  # below 10 % of max: outside the support
    truth = (amp * (amp > 0.08) * 3.0).astype(np.complex64)
    mag = np.abs(far_field(truth)).astype(np.float32)
    obj, sup, c2, lf = finish_prediction(amp, np.zeros_like(amp), mag)
    assert int(sup.sum()) == 512 and c2 < 1e-8
    assert np.allclose(obj, truth, atol=1e-4)


def test_missing_model_and_bad_inputs_are_clear_errors(tmp_path, monkeypatch, model_path, patterns, capsys):
    monkeypatch.setattr(predict_mod, "DEFAULT_MODEL", tmp_path / "none.pt")
    with pytest.raises(InputError, match="--model"):
        resolve_model(None)
    assert main(["predict", str(patterns[0]), "-o", str(tmp_path / "a.npz")]) == 2
    assert "no shipped model" in capsys.readouterr().err
    monkeypatch.setattr(predict_mod, "DEFAULT_MODEL", model_path)
    assert resolve_model(None) == model_path  # the shipped model is the default when present
    small = tmp_path / "small.npy"
    np.save(small, np.ones((32, 32, 32), np.float32))
    assert main(["predict", str(small), "-o", str(tmp_path / "b.npz")]) == 2
    assert "64³" in capsys.readouterr().err
    bad = tmp_path / "nan.npy"
    a = np.ones((64, 64, 64), np.float32)
    a[0, 0, 0] = np.nan
    np.save(bad, a)
    assert main(["predict", str(patterns[0]), str(bad), "-o", str(tmp_path / "d")]) == 2
    assert not (tmp_path / "d").exists()  # nothing written when any input is bad
    assert main(["predict", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "c.npz")]) == 2


def test_prediction_cuts_the_support_where_training_did(tmp_path, model_path, patterns):
    from autophase.model import read_checkpoint

    ck = read_checkpoint(model_path)
    hi = save_checkpoint(tmp_path / "hi.pt", {"network": ck["network"], "model": ck["model"],
                                              "train": {"threshold_end": 0.5}})
    mag = np.sqrt(np.load(patterns[0])["data"]).astype(np.float32)
    p_hi, p_lo = Predictor(hi, device="cpu", symmetries=1), Predictor(model_path, device="cpu", symmetries=1)
    assert p_hi.threshold == 0.5 and p_lo.threshold == 0.1  # 0.1 when the checkpoint does not say
    r_hi, r_lo = p_hi.predict(mag)[0], p_lo.predict(mag)[0]
    a = np.abs(r_lo.object)
    assert r_hi.support.sum() == (a > 0.5 * a.max()).sum() < r_lo.support.sum()


def test_bf16_precision_runs_the_network_in_bfloat16_and_answers_alike():
    """The shipped model in bfloat16 (the watch service's --precision bf16): bf16 weights,
    float32 answers in the data's units, χ² near the float32 one; nonsense is refused."""
    import torch

    counts, _ = noisy_pattern(faceted_crystal(32, seed=4), photons=1e6, seed=4)
    mag = np.sqrt(counts).astype(np.float32)[None]
    p32 = Predictor(device="cpu", symmetries=1)
    p16 = Predictor(device="cpu", symmetries=1)
    p16.set_precision("bf16")
    assert next(p16.net.parameters()).dtype == torch.bfloat16 and p16.meta["precision"] == "bf16"
    r32, r16 = p32.predict(mag)[0], p16.predict(mag)[0]
    assert r16.object.dtype == np.complex64 and np.isfinite(r16.chi2)
    assert r16.chi2 == pytest.approx(r32.chi2, rel=0.15)
    assert r16.chi2 != r32.chi2  # it did run in another precision
    with pytest.raises(InputError, match="--precision"):
        p32.set_precision("fp16")
    p32.compile()
    with pytest.raises(RuntimeError):
        p32.set_precision("bf16")


def test_predict_command_uses_one_pass_alone_and_four_copies_before_er(tmp_path, model_path, patterns):
    """``autophase predict`` without ``--symmetries``: one network pass at ``--refine 0``, the
    4-copy average (for a pattern the single pass fits worse than ``--average-above``) when ER
    follows; the npz says which (``symmetries``)."""
    for refine, want in (("0", 1), ("2", 4)):
        out = tmp_path / f"r{refine}.npz"
        assert main(["predict", str(patterns[0]), "-o", str(out), "--model", str(model_path), "--refine", refine,
                     "--average-above", "0", "--no-plot"]) == 0
        with np.load(out) as z:
            assert int(z["symmetries"]) == want, refine
