"""The trainer: outputs, exact resume, fine-tuning start, augmentation, collapse detector, CLI errors."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from autophase.cli import main
from autophase.model import NetworkConfig, read_checkpoint, save_checkpoint
from autophase.physics.forward import magnitude, pad_object
from autophase.physics.synthetic import faceted_crystal
from autophase.train.data import SyntheticCrystals, augment_batch, open_dataset, thin_counts
from autophase.train.trainer import TrainConfig, Trainer, prediction_spread

SYNTH = SyntheticCrystals(10, seed=1)  # cached in memory: shared by the tests
NET = NetworkConfig(width=2, depth=2)  # tiny: these tests exercise bookkeeping, not learning


def _cfg(**kw):
    base = dict(epochs=2, batch_size=2, steps_per_epoch=1, max_val=2, bn_recalibrate=1, seed=3, warmup_steps=2,
                threshold_steps=3)
    base.update(kw)
    return TrainConfig(**base)


def _trainer(out, ds=None, **kw):
    return Trainer(NET, _cfg(**{k: v for k, v in kw.items() if k not in ("resume", "init")}),
                   ds or SYNTH, out, resume=kw.get("resume"), init=kw.get("init"),
                   progress=False)


@pytest.mark.slow
def test_fit_writes_checkpoints_metrics_tensorboard_and_config(tmp_path):
    hist = _trainer(tmp_path).fit()
    assert len(hist) == 2 and hist[-1]["epoch"] == 2 and hist[-1]["step"] == 2
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["best.pt", "checkpoint.pt", "config.json", "metrics.csv", "tb"]  # no *.tmp left
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    for key in ("train_loss", "val_loss", "val_chi2", "val_mae", "trivial_no_signal", "trivial_box",
                "trivial_sphere", "trivial_blob", "pred_spread", "bn_gap", "lr", "samples_per_s"):
        assert np.isfinite(float(rows[-1][key])), key
    assert float(rows[-1]["trivial_no_signal"]) == pytest.approx(1.0)
    assert any(p.name.startswith("events.") for p in (tmp_path / "tb").iterdir())
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["network"]["width"] == 2 and cfg["train"]["batch_size"] == 2 and cfg["n_val"] + cfg["n_train"] == 10
    ck = read_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["epoch"] == 2 and len(ck["history"]) == 2 and len(ck["val_indices"]) == 2


@pytest.mark.slow
def test_resume_continues_exactly_where_it_stopped(tmp_path):
    straight = _trainer(tmp_path / "a", epochs=2)
    straight.fit()
    first = _trainer(tmp_path / "b", epochs=1)
    first.fit()
    resumed = _trainer(tmp_path / "b", epochs=2, resume=tmp_path / "b" / "checkpoint.pt")
    assert (resumed.epoch, resumed.step) == (1, 1) and len(resumed.history) == 1
    resumed.fit()
    assert (resumed.epoch, resumed.step) == (straight.epoch, straight.step) == (2, 2)
    for (k, a), b in zip(straight.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), rtol=1e-5, atol=1e-6), k
    sa, sb = straight.opt.state_dict(), resumed.opt.state_dict()
    assert sa["param_groups"][0]["lr"] == sb["param_groups"][0]["lr"]
    for i in sa["state"]:
        assert torch.allclose(sa["state"][i]["exp_avg_sq"], sb["state"][i]["exp_avg_sq"], rtol=1e-4, atol=1e-12)
        assert float(sa["state"][i]["step"]) == float(sb["state"][i]["step"]) == 2
    assert straight.scheduler.state_dict() == resumed.scheduler.state_dict()
    rows = list(csv.DictReader((tmp_path / "b" / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    a_rows = list(csv.DictReader((tmp_path / "a" / "metrics.csv").open()))
    assert float(rows[-1]["val_loss"]) == pytest.approx(float(a_rows[-1]["val_loss"]), rel=1e-4)


@pytest.mark.slow
def test_init_takes_weights_only(tmp_path):
    t = _trainer(tmp_path / "pre", epochs=1)
    t.fit()
    ft = _trainer(tmp_path / "ft", epochs=1, lr=1e-6, freeze_bn=True, init=tmp_path / "pre" / "checkpoint.pt")
    assert (ft.epoch, ft.step) == (0, 0) and len(ft.opt.state_dict()["state"]) == 0
    for a, b in zip(t.net.state_dict().values(), ft.net.state_dict().values()):
        assert torch.equal(a, b)
    ft.fit()
    # frozen BatchNorm: running statistics are exactly the pre-trained ones
    bn = [k for k in t.net.state_dict() if k.endswith("running_mean")]
    for k in bn:
        assert torch.equal(t.net.state_dict()[k], ft.net.state_dict()[k])


def test_prediction_spread():
    a = torch.zeros(4, 8, 8, 8)
    a[:, 2:6, 2:6, 2:6] = 1.0
    assert prediction_spread(a.sum(0), (a * a).sum(0), 4) == 0.0  # identical answers: collapse
    b = a.clone()
    b[2:] = 0
    b[2:, 0:2, 0:2, 0:2] = 1.0  # two different shapes, half the inputs each
    # per voxel where exactly half the answers are 1: var = 1/4, E[a²] = 1/2
    assert prediction_spread(b.sum(0), (b * b).sum(0), 4) == pytest.approx(np.sqrt(0.25 / 0.5))


def test_collapse_detector_reads_zero_for_an_input_independent_network(tmp_path):
    t = _trainer(tmp_path, epochs=1)
    for dec in (t.net.amplitude_decoder, t.net.phase_decoder):
        torch.nn.init.zeros_(dec[-1].weight)  # output = activation(bias): the same for every input
    v = t.validate()
    assert v["pred_spread"] < 1e-9
    assert v["val_over_best_trivial"] > 1  # and it is no better than a fixed answer


def test_augmentation_is_an_exact_symmetry_of_the_measurement():
    obj = pad_object(faceted_crystal(32, seed=2, n_facets=6))
    m = torch.from_numpy(magnitude(obj).astype(np.float32))[None, None]
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        state = gen.get_state()
        y = augment_batch(m, gen)[0, 0].numpy()
        # replay the same draws on the object: the permuted/flipped crystal must give the same |F|
        gen2 = torch.Generator()
        gen2.set_state(state)
        perm = torch.randperm(3, generator=gen2).tolist()
        flips = torch.randint(0, 2, (3,), generator=gen2).tolist()
        o = np.transpose(obj, perm)
        for ax, f in enumerate(flips):
            if f:
                o = np.roll(np.flip(o, ax), 1, ax)
        assert np.allclose(y, magnitude(o), atol=1e-3 * float(m.max()))


def test_thinning_is_binomial_with_the_right_mean():
    gen = torch.Generator().manual_seed(1)
    counts = torch.full((2, 1, 16, 16, 16), 100.0)
    y = thin_counts(counts.sqrt(), torch.tensor([0.5, 1.0]), gen) ** 2
    assert float(y[0].mean()) == pytest.approx(50, rel=0.02) and torch.equal(y[1], counts[1])
    assert torch.allclose(y, y.round(), atol=1e-3)  # whole counts (up to float rounding of √)


def test_open_dataset_specs(tmp_path):
    ds = open_dataset(["synthetic:5:2:1e6:1e7"])
    assert len(ds) == 5 and ds.n == 5 and ds[0].shape == (1, 64, 64, 64) and ds[0].dtype == torch.float32
    assert 1e6 <= float((ds[3] ** 2).sum()) <= 1.1e7
    assert torch.equal(ds[2], open_dataset(["synthetic:5:2:1e6:1e7"])[2])  # reproducible
    f = tmp_path / "p.npz"
    np.savez(f, data=(ds[1][0] ** 2).numpy())
    pf = open_dataset([str(f)], repeat=3)
    assert len(pf) == 3 and torch.allclose(pf[2], ds[1], rtol=1e-5)
    mask = np.zeros((64, 64, 64), bool)
    mask[10, :, :] = True  # CXI convention: True = unmeasured
    np.savez(tmp_path / "m.npz", data=(ds[1][0] ** 2).numpy(), mask=mask)
    pm = open_dataset([str(tmp_path / "m.npz")])[0][0]
    assert bool((pm[10] == -1).all()) and bool((pm[11] >= 0).all())  # marked for the loss to skip
    from autophase.errors import InputError

    with pytest.raises(InputError):
        open_dataset(["synthetic:x"])
    with pytest.raises(InputError):
        open_dataset([str(tmp_path / "missing.npz")])


def test_cli_rejects_bad_resume_and_conflicting_flags(tmp_path, capsys):
    assert main(["train", "--data", "synthetic:8", "--out", str(tmp_path), "--resume", str(tmp_path / "no.pt")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    ck = save_checkpoint(tmp_path / "c.pt", {"network": NET.to_dict(), "model": {}})
    assert main(["train", "--data", "synthetic:8", "--out", str(tmp_path), "--resume", str(ck), "--init", str(ck)]) == 2
    assert "exclude each other" in capsys.readouterr().err
    assert main(["train", "--data", "synthetic:3", "--out", str(tmp_path / "x"), "--batch-size", "8"]) == 2
    assert "cannot fill one batch" in capsys.readouterr().err
    assert not (tmp_path / "x" / "checkpoint.pt").exists()


@pytest.mark.slow
def test_cli_trains_one_small_epoch(tmp_path, capsys):
    rc = main(["train", "--data", "synthetic:6:4", "--out", str(tmp_path), "--width", "2", "--depth", "2",
               "--batch-size", "2", "--epochs", "1", "--steps-per-epoch", "1", "--max-val", "2", "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "epoch 1/1" in out and "no_signal 1" in out
    ck = read_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["command"].startswith("autophase") and ck["network"]["depth"] == 2


@pytest.mark.slow
def test_no_validation_set_falls_back_to_the_training_loss(tmp_path):
    hist = _trainer(tmp_path, epochs=1, val_fraction=0.0).fit()
    assert np.isnan(hist[-1]["val_loss"]) and np.isfinite(hist[-1]["train_loss"])
    assert read_checkpoint(tmp_path / "checkpoint.pt")["best"] == pytest.approx(hist[-1]["train_loss"])
    assert (tmp_path / "best.pt").exists()


@pytest.mark.slow
def test_init_with_auto_resume_starts_from_init_then_resumes(tmp_path, capsys):
    # a workflow's fine-tuning stage: `--init X` always, `--resume` appended once a checkpoint exists
    base = ["train", "--data", "synthetic:6:4", "--width", "2", "--depth", "2", "--batch-size", "2",
            "--steps-per-epoch", "1", "--max-val", "2", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "init"), "--epochs", "1"]) == 0
    init = tmp_path / "init" / "checkpoint.pt"
    out = tmp_path / "ft"
    assert main([*base, "--out", str(out), "--epochs", "1", "--init", str(init), "--resume"]) == 0
    assert "resuming" not in capsys.readouterr().out  # nothing to resume yet: started from init
    assert read_checkpoint(out / "checkpoint.pt")["epoch"] == 1
    assert main([*base, "--out", str(out), "--epochs", "2", "--init", str(init), "--resume"]) == 0
    assert "resuming it (--init" in capsys.readouterr().out
    assert read_checkpoint(out / "checkpoint.pt")["epoch"] == 2  # continued, not restarted
