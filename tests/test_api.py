"""The top-level Python API: autophase.phase / Predictor / simulate / load_pattern / prep."""
import subprocess
import sys

import numpy as np
import pytest

import autophase
from autophase.errors import InputError
from autophase.physics.synthetic import faceted_crystal, noisy_pattern


def test_import_is_light():
    # a notebook's `import autophase` must not pay for torch (≈2 s cold) or matplotlib
    code = "import sys, autophase; autophase.phase; print(sorted(m for m in ('torch', 'matplotlib', 'h5py') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.fixture(scope="module")
def pattern():
    counts, rho = noisy_pattern(faceted_crystal(16, seed=3), photons=1e6, seed=3)
    return counts, rho


def test_phase_takes_counts_like_the_cli(pattern, tmp_path):
    counts, _ = pattern
    res = autophase.phase(counts, schedule="20*ER+40*HIO+20*ER", seed=1)
    # counts in: the object is in the data's units, so its far field carries the photons
    assert res.object.shape == counts.shape and res.object.dtype == np.complex64
    assert res.chi2 < 0.1
    same = autophase.phase(np.sqrt(counts), kind="magnitude", schedule="20*ER+40*HIO+20*ER", seed=1)
    np.testing.assert_allclose(same.object, res.object, rtol=1e-4, atol=1e-4 * np.abs(res.object).max())
    # a file path and a loaded Pattern give the same answer as the array
    np.save(tmp_path / "p.npy", counts)
    pat = autophase.load_pattern(tmp_path / "p.npy")
    assert isinstance(pat, autophase.io.patterns.Pattern)
    from_file = autophase.phase(tmp_path / "p.npy", schedule="20*ER+40*HIO+20*ER", seed=1)
    np.testing.assert_array_equal(from_file.object, autophase.phase(pat, schedule="20*ER+40*HIO+20*ER", seed=1).object)


def test_phase_rejects_bad_input_and_options(pattern):
    counts, _ = pattern
    with pytest.raises(InputError, match="kind"):
        autophase.phase(counts, kind="amplitudes")
    with pytest.raises(InputError, match="data"):
        autophase.phase(np.full((4, 4, 4), np.nan))
    with pytest.raises(InputError, match="measured"):
        autophase.phase(counts, measured=np.ones((2, 2, 2), bool))
    with pytest.raises(TypeError, match="unknown phasing parameter"):
        autophase.phase(counts, sw_treshold=0.1)


def test_simulate_is_callable_and_still_the_package(tmp_path):
    import autophase.simulate.config  # noqa: F401  (importing a submodule must not hide the call)

    summary = autophase.simulate(2, tmp_path / "sim", seed=4, shard_size=2)
    assert summary["n_crystals"] == 2 and summary["crystals_made"] == 2
    assert (tmp_path / "sim" / "manifest.json").is_file()
    assert autophase.simulate.config.SimulationConfig is not None
    with pytest.raises(ValueError):
        autophase.simulate(0, tmp_path / "none")
    assert not (tmp_path / "none").exists()


def test_predictor_is_the_network(model_path):
    net = autophase.Predictor(model_path, symmetries=1)
    assert autophase.Predictor is autophase.predict.Predictor
    counts, _ = noisy_pattern(faceted_crystal(32, seed=5), photons=1e6, seed=5)
    out = net.predict(np.sqrt(counts)[None])
    assert len(out) == 1 and out[0].object.shape == counts.shape and np.isfinite(out[0].chi2)


def test_unknown_attribute():
    with pytest.raises(AttributeError):
        autophase.no_such_thing
