"""Keeping best.pt by NN + K ER against phasing on held-back patterns (autophase.train.selection)."""
from __future__ import annotations

import csv
import json

import pytest

from autophase.cli import main
from autophase.errors import InputError
from autophase.model import NetworkConfig, read_checkpoint
from autophase.train.data import SyntheticCrystals
from autophase.train.selection import REFERENCE_FILE, PanelEntry, SelectionPanel, parse_panel
from autophase.train.trainer import TrainConfig, Trainer

SYNTH = SyntheticCrystals(10, seed=1)
NET = NetworkConfig(width=2, depth=2)


def _cfg(**kw):
    base = dict(epochs=3, batch_size=2, steps_per_epoch=1, max_val=2, bn_recalibrate=1, seed=3, warmup_steps=2,
                threshold_steps=3)
    base.update(kw)
    return TrainConfig(**base)


def test_panel_spec_parses_and_refuses_in_one_line(tmp_path, monkeypatch):
    from autophase.testsets import sources

    monkeypatch.setattr(sources, "SCAN54_RAW", tmp_path)  # the scan's frames "present" (a clone has none)
    assert parse_panel("generator2:8:2, simulator:4:22,scan54:3") == [
        PanelEntry("generator2", 8, 2), PanelEntry("simulator", 4, 22), PanelEntry("scan54", 3, 0)]
    for bad, says in (("generator2:8:1", "acceptance set"), ("nosuch:2:2", "unknown source 'nosuch'"),
                      ("generator2:8", "should read generator2:N:SEED"), ("scan54:3:1", "should read scan54:N"),
                      ("simulator:x:2", "whole numbers"), ("simulator:0:2", "N in 1–200"),
                      ("simulator:2:5,simulator:3:5", "twice")):
        with pytest.raises(InputError) as e:
            parse_panel(bad)
        assert str(e.value).startswith("--select-on: ") and says in str(e.value) and "\n" not in str(e.value)


def test_bad_panel_is_refused_before_training(tmp_path, capsys):
    rc = main(["train", "--data", "synthetic:4", "--out", str(tmp_path / "t"), "--epochs", "1",
               "--select-on", "generator2:4:1"])
    assert rc == 2 and "acceptance set" in capsys.readouterr().err
    rc = main(["train", "--data", "synthetic:4", "--out", str(tmp_path / "t"), "--epochs", "1",
               "--select-refine", "20"])
    assert rc == 2 and "--select-refine 20: only with --select-on" in capsys.readouterr().err
    assert not (tmp_path / "t").exists() or not any((tmp_path / "t").iterdir())


@pytest.mark.slow
def test_real_scores_are_recorded_and_the_references_kept(tmp_path, monkeypatch):
    """The real path: phasing references for a two-crystal panel, NN + 3 ER of each epoch's
    weights; the figures land in metrics.csv and the checkpoint; a resumed run reads the
    references instead of phasing again, and keeps comparing against the same yardstick."""
    t = Trainer(NET, _cfg(epochs=1, select_on="simulator:2:22", select_refine=3), SYNTH, tmp_path, progress=False)
    t.fit()
    ref = json.loads((tmp_path / REFERENCE_FILE).read_text())
    assert ref["spec"] == "simulator:2:22" and len(ref["reference_chi2"]) == 2
    assert all(v > 0 for v in ref["reference_chi2"].values())
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    score = float(rows[0]["select_score"])
    assert score > 0 and float(rows[0]["select_simulator_median_ratio"]) == pytest.approx(score)
    assert 0 <= float(rows[0]["select_simulator_within_1.2"]) <= 1
    ck = read_checkpoint(tmp_path / "best.pt")
    assert ck["best"] == pytest.approx(score) and ck["best_on"] == "select simulator:2:22 K3"
    assert not (tmp_path / ".select-candidate.pt").exists()

    monkeypatch.setattr(SelectionPanel, "reference_chi2", staticmethod(lambda items: pytest.fail("phased again")))
    t2 = Trainer(NET, _cfg(epochs=2, select_on="simulator:2:22", select_refine=3), SYNTH, tmp_path,
                 resume=tmp_path / "checkpoint.pt", progress=False)
    assert t2.best == pytest.approx(score)
    t2.fit()
    assert len(list(csv.DictReader((tmp_path / "metrics.csv").open()))) == 2


@pytest.mark.slow
def test_best_follows_the_selection_score_not_the_validation_loss(tmp_path, monkeypatch):
    """With a panel, best.pt is the epoch with the lowest selection score, whatever the
    validation loss did; resuming with the validation loss as yardstick starts its best afresh."""
    scores = iter([2.0, 1.0, 3.0])
    monkeypatch.setattr(SelectionPanel, "_load", lambda self, cache: [])
    monkeypatch.setattr(SelectionPanel, "score",
                        lambda self, ck, device=None: {"select_score": next(scores), "select_s": 0.0})
    hist = Trainer(NET, _cfg(epochs=3, select_on="simulator:2:22"), SYNTH, tmp_path, progress=False).fit()
    assert [h["select_score"] for h in hist] == [2.0, 1.0, 3.0]
    best = read_checkpoint(tmp_path / "best.pt")
    assert best["epoch"] == 2 and best["best"] == 1.0
    t = Trainer(NET, _cfg(epochs=4), SYNTH, tmp_path, resume=tmp_path / "checkpoint.pt", progress=False)
    assert t.best_on == "val_loss" and t.best == float("inf")
    t.fit()
    assert read_checkpoint(tmp_path / "best.pt")["epoch"] == 4  # the first epoch judged by the loss



def test_a_measured_scan_without_its_frames_is_refused_up_front(tmp_path, monkeypatch):
    from autophase.testsets import sources

    monkeypatch.setattr(sources, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(sources, "SCAN54_RAW", tmp_path / "nowhere" / "frames")
    with pytest.raises(InputError, match=r"--select-on: scan54: its frames are not at .*nowhere"):
        parse_panel("simulator:2:22,scan54:3")
    assert parse_panel("simulator:2:22") == [PanelEntry("simulator", 2, 22)]


def test_references_are_kept_per_panel_and_phasing_defaults(tmp_path, monkeypatch):
    """The kept references serve the same panel under the same phasing defaults only."""
    calls = []
    monkeypatch.setattr(SelectionPanel, "reference_chi2", staticmethod(lambda items: calls.append(1) or 0.5))
    SelectionPanel("simulator:1:22", out_dir=tmp_path, log=lambda m: None)
    SelectionPanel("simulator:1:22", out_dir=tmp_path, log=lambda m: None)
    assert len(calls) == 1
    d = json.loads((tmp_path / REFERENCE_FILE).read_text())
    (tmp_path / REFERENCE_FILE).write_text(json.dumps({**d, "phasing_defaults": {**d["phasing_defaults"],
                                                                                   "beta": 0.5}}))
    SelectionPanel("simulator:1:22", out_dir=tmp_path, log=lambda m: None)
    (tmp_path / REFERENCE_FILE).write_text("{damaged")
    SelectionPanel("simulator:1:22", out_dir=tmp_path, log=lambda m: None)
    assert len(calls) == 3
