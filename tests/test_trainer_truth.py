"""Training never opens ground truth: train on real simulated shards with every truth path booby-trapped."""
from __future__ import annotations

import h5py
import pytest

import autophase.data.truth as truth_mod
from autophase.cli import main
from autophase.data.shards import TRUTH_GROUP


@pytest.mark.slow
def test_training_on_shards_never_reads_truth(tmp_path, monkeypatch):
    run = tmp_path / "sim"
    assert main(["simulate", "--n-crystals", "6", "--out", str(run), "--seed", "5", "--no-progress"]) == 0

    opened = []

    def forbidden(*args, **kwargs):
        opened.append(args)
        raise AssertionError("ground truth read during training")

    # 1) the data module's single point of truth access
    monkeypatch.setattr(truth_mod, "_read_truth_rows", forbidden)
    # 2) any h5py access to a path inside the truth group, whoever makes it
    real_getitem = h5py.Group.__getitem__

    def guarded(self, name):
        full = name if isinstance(name, str) and name.startswith("/") else f"{self.name.rstrip('/')}/{name}"
        if isinstance(name, (str, bytes)) and TRUTH_GROUP in str(full).strip("/").split("/")[:1]:
            forbidden(full)
        return real_getitem(self, name)

    monkeypatch.setattr(h5py.Group, "__getitem__", guarded)
    rc = main(["train", "--data", str(run), "--out", str(tmp_path / "t"), "--width", "2", "--depth", "2",
               "--batch-size", "2", "--epochs", "1", "--steps-per-epoch", "2", "--no-progress"])
    assert rc == 0 and not opened
    assert (tmp_path / "t" / "checkpoint.pt").exists()
    # the traps are live: reading the truth now fails, through the data module or h5py directly
    with pytest.raises(AssertionError):
        truth_mod.read_truth(run, 0)
    shard = next(run.glob("shard-*.h5"))
    with h5py.File(shard, "r") as f:
        with pytest.raises(AssertionError):
            f[TRUTH_GROUP]
        with pytest.raises(AssertionError):
            f[f"/{TRUTH_GROUP}/object"]
    assert len(opened) == 3
