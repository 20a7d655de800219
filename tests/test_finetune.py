"""Fine-tuning on measured patterns: photon splitting, the before/after run, bad input."""
import json

import numpy as np
import pytest

from autophase.errors import InputError
from autophase.beamline.finetune import FinetuneConfig, finetune, split_photons
from autophase.io.cxi import write_pattern_cxi
from autophase.physics.synthetic import faceted_crystal, noisy_pattern


def test_split_photons_gives_two_independent_poisson_halves():
    lam = np.full((64, 64, 64), 20.0)
    n = np.random.default_rng(1).poisson(lam).astype(np.float32)
    a, b = split_photons(n, seed=0)
    np.testing.assert_array_equal(a + b, n)                  # every photon goes to one half
    assert a.dtype == np.float32 and (a >= 0).all() and (b >= 0).all()
    # halves of Poisson(λ) are Poisson(λ/2): mean = variance = 10, uncorrelated
    for h in (a, b):
        assert abs(h.mean() - 10) < 0.05 and abs(h.var() - 10) < 0.2
    assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.01
    a2, _ = split_photons(n, seed=0)
    np.testing.assert_array_equal(a, a2)                     # reproducible
    assert not np.array_equal(a, split_photons(n, seed=1)[0])
    with pytest.raises(InputError, match="finite"):
        split_photons(-n)


def _scan(tmp_path):
    obj = faceted_crystal(32, radius=9.0, seed=4)
    I, _ = noisy_pattern(obj, photons=1e8, seed=0)
    return write_pattern_cxi(tmp_path / "scan.cxi", I)


def test_finetune_split_run_writes_before_after(tmp_path):
    src = _scan(tmp_path)
    out = tmp_path / "ft"
    cfg = FinetuneConfig(n_augment=20, epochs=1, lr=1e-4, batch_size=8, refine=5, phasing_starts=2)
    res = finetune([str(src)], out, split=True, config=cfg, log=lambda s: None, progress=False)
    for tag in ("before", "after"):
        assert set(res[tag]) >= {"nn", "refine", "model_version"}
        assert res[tag]["nn"]["chi2"] > 0 and np.isfinite(res[tag]["refine"]["llk_free"])
        for name in ("nn", "refine"):
            assert (out / f"{tag}_{name}.cxi").is_file() and (out / f"{tag}_{name}.vti").is_file()
    assert res["before"]["model_version"] != res["after"]["model_version"]   # the weights moved
    assert res["training"]["epochs"] == 1 and len(list((out / "augmented").glob("aug-*.cxi"))) == 20
    assert (out / "holdout.cxi").is_file() and (out / "before_after.png").stat().st_size > 0
    rec = json.loads((out / "results.json").read_text())
    assert rec["suite"] == "finetune" and rec["details"]["holdout_kind"].startswith("photon split")
    from autophase.results import read_result

    typed = read_result(out / "results.json")
    assert typed.kind == "training"
    assert typed.metric("finetune.chi2", process="after", method="nn").value == pytest.approx(res["after"]["nn"]["chi2"])
    # phasing on the same held-back half, two seeds, and NN + ER against its median
    ph = res["phasing"]
    assert [r["seed"] for r in ph["runs"]] == [0, 1] and ph["chi2"] == pytest.approx(
        np.median([r["chi2"] for r in ph["runs"]]))
    for tag in ("before", "after"):
        v = res["refine_vs_phasing"][tag]
        assert v["ratio"] == pytest.approx(v["refine_chi2"] / ph["chi2"]) and v["le_phasing"] == (v["ratio"] <= 1)
        # scored as the external suite scores (every measured voxel, the free ones too), not
        # phasing's own χ² over the constrained voxels: close to it, not equal
        assert v["refine_chi2"] == pytest.approx(res[tag]["refine"]["chi2"], rel=0.2)
        m = typed.metric("finetune.refine_over_phasing", process=tag)
        assert m.value == pytest.approx(v["ratio"]) and m.target.passes(m.value) == v["le_phasing"]
    assert typed.metric("finetune.chi2", method="phasing").value == pytest.approx(ph["chi2"])


def test_finetune_bad_input_writes_nothing(tmp_path):
    src = _scan(tmp_path)
    small = write_pattern_cxi(tmp_path / "small.cxi", np.ones((32, 32, 32), np.float32))
    cfg = FinetuneConfig(n_augment=16, epochs=1)
    with pytest.raises(InputError, match="small.cxi"):
        finetune([str(src)], tmp_path / "o1", holdout=str(small), config=cfg, log=lambda s: None)
    assert not (tmp_path / "o1").exists()
    with pytest.raises(InputError, match="not both or neither"):
        finetune([str(src)], tmp_path / "o2", config=cfg, log=lambda s: None)
    with pytest.raises(InputError, match="one input"):
        finetune([str(src), str(src)], tmp_path / "o3", split=True, config=cfg, log=lambda s: None)
    with pytest.raises(InputError, match="missing.cxi"):
        finetune([str(tmp_path / "missing.cxi")], tmp_path / "o4", split=True, config=cfg, log=lambda s: None)
    with pytest.raises(InputError, match="too few"):
        FinetuneConfig(n_augment=4, batch_size=8)
    with pytest.raises(InputError, match="--phasing-starts"):
        FinetuneConfig(phasing_starts=-1)
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(InputError, match="--as-measured"):
            FinetuneConfig(as_measured=bad)


def test_finetune_cli_refuses_a_bad_share_in_one_line(tmp_path, capsys):
    from autophase.cli import main

    src = _scan(tmp_path)
    rc = main(["finetune", str(src), "--split-photons", "-o", str(tmp_path / "o"), "--as-measured", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "--as-measured" in err[0]
    assert not (tmp_path / "o").exists()


def test_copies_kept_as_measured_are_not_turned_by_the_trainer():
    from autophase.beamline.finetune import train_config

    ck = {"train": {"threshold_end": 0.12}}
    assert train_config(FinetuneConfig(as_measured=0.0), ck).augment
    t = train_config(FinetuneConfig(as_measured=0.5), ck)
    assert not t.augment and t.threshold_start == t.threshold_end == 0.12
    assert FinetuneConfig().as_measured == 0.5
