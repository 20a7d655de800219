"""Reading simulated runs: MagnitudeDataset (magnitudes only), read_truth, shard_indices, inspect."""
from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import torch

from autophase.data import truth as truth_module
from autophase.data.dataset import MagnitudeDataset, augment_pattern, read_truth, shard_indices
from autophase.errors import InputError
from autophase.physics.forward import intensity, magnitude
from autophase.physics.metrics import chi2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """7 crystals + 1 rotation each = 14 patterns in shards of 3 crystals (6, 6, 2 rows)."""
    from autophase.cli import main

    out = tmp_path_factory.mktemp("ds") / "run"
    assert main(["simulate", "--n-crystals", "7", "--size", "8", "--shard-size", "3", "--rotations", "1",
                 "--seed", "4", "--no-progress", "--out", str(out)]) == 0
    return out


def _vds(run):
    import h5py
    import hdf5plugin  # noqa: F401

    with h5py.File(run / "magnitudes.h5", "r") as f:
        return f["magnitude"][()]


def test_items_are_magnitudes_only(run):
    ds = MagnitudeDataset(run)
    assert len(ds) == 14
    x = ds[5]
    assert isinstance(x, torch.Tensor) and x.shape == (1, 64, 64, 64) and x.dtype == torch.float32
    all_mag = _vds(run)
    for i in range(len(ds)):
        assert np.array_equal(ds[i][0].numpy(), all_mag[i])
    assert np.unravel_index(int(np.argmax(all_mag[0])), (64,) * 3) == (32, 32, 32)  # Bragg peak centred
    sub = MagnitudeDataset(run, indices=[13, 2])
    assert len(sub) == 2 and np.array_equal(sub[0][0].numpy(), all_mag[13])
    assert np.isclose(sub.photons(1), ds.photons(2))
    with pytest.raises(InputError):
        MagnitudeDataset(run, indices=[14])
    with pytest.raises(IndexError):
        ds[14]


def test_training_never_touches_the_truth(run, monkeypatch):
    """Every h5py lookup the dataset makes is recorded; none may reach /truth, and the one
    function that reads truth is made to fail."""
    import h5py

    seen = []
    orig = h5py.Group.__getitem__

    def spy(self, name):
        seen.append(f"{self.name}/{name}" if isinstance(name, str) else repr(name))
        return orig(self, name)

    def forbidden(*a, **k):
        raise AssertionError("truth was read")

    monkeypatch.setattr(h5py.Group, "__getitem__", spy)
    monkeypatch.setattr(truth_module, "_read_truth_rows", forbidden)
    ds = MagnitudeDataset(run, augment=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, shuffle=True, num_workers=0)
    n = sum(b.shape[0] for b in loader)
    assert n == 14 and seen
    assert not [s for s in seen if "truth" in s], seen
    with pytest.raises(AssertionError, match="truth was read"):
        read_truth(run, 0)


def test_workers_and_pickling(run):
    ds = MagnitudeDataset(run, augment=True, seed=3)
    _ = ds[0]  # opens a handle …
    clone = pickle.loads(pickle.dumps(ds))  # … which is dropped on pickling
    assert clone._handles == {} and np.array_equal(clone[0].numpy(), ds[0].numpy())
    serial = torch.stack([ds[i] for i in range(len(ds))])
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2, shuffle=False)
    parallel = torch.cat(list(loader))
    assert torch.equal(serial, parallel)  # augmentation depends on (seed, epoch, index) only
    ds.set_epoch(1)
    assert not torch.equal(serial, torch.stack([ds[i] for i in range(len(ds))]))


def test_augmentation_is_a_centred_cube_symmetry():
    rng = np.random.default_rng(0)
    a = rng.random((64, 64, 64)).astype(np.float32)
    a[32, 32, 32] = 10.0
    a[40, 32, 32] = 5.0  # off-axis marker: q = (+8, 0, 0)
    seen = set()
    sorted_a = np.sort(a.ravel())
    for s in range(40):
        b = augment_pattern(a, np.random.default_rng(s))
        assert b[32, 32, 32] == 10.0  # the zero frequency stays at the centre
        if s < 6:  # a permutation of the voxels (no resampling)
            assert np.array_equal(np.sort(b.ravel()), sorted_a)
        k = np.argwhere(b == 5.0)[0] - 32
        assert sorted(np.abs(k)) == [0, 0, 8]  # ±8 along some axis: a centred flip/turn
        seen.add(tuple(k))
    assert len(seen) == 6  # all six directions reached


def test_read_truth_is_the_noise_free_data(run):
    mags = _vds(run)
    for i in (0, 7, 13):
        t = read_truth(run, i)
        obj = t["object"]
        assert obj.shape == (64, 64, 64) and obj.dtype == np.complex64
        assert t["support"].dtype == bool and t["support"].sum() > 50
        assert np.abs(obj[:16]).max() == 0 and np.abs(obj[48:]).max() == 0  # central 32³ only
        assert np.isclose(intensity(obj.astype(np.complex128)).sum(), t["photons"], rtol=1e-4)
        # the truth fits the noisy magnitudes at the Poisson noise level
        fresh = np.sqrt(np.random.default_rng(i).poisson(intensity(obj.astype(np.complex128))))
        ratio = chi2(magnitude(obj), mags[i]) / chi2(magnitude(obj), fresh.astype(np.float32))
        assert 0.9 < ratio < 1.1
        assert t["params"]["index"] == i and t["seed"] == (4, i // 2)
        assert {"crystal_params", "strain", "relax", "rotation_matrix"} <= set(t["params"])
    with pytest.raises(InputError, match="outside"):
        read_truth(run, 14)


def test_shard_indices_partition_the_samples(run):
    parts = shard_indices(run)
    assert [p.tolist() for p in parts] == [list(range(0, 6)), list(range(6, 12)), [12, 13]]
    assert all(p.dtype == np.int64 for p in parts)


def test_truncated_and_corrupt_shards_are_named(run, tmp_path):
    bad = tmp_path / "trunc"
    shutil.copytree(run, bad)
    f = bad / "shard-00001.h5"
    f.write_bytes(f.read_bytes()[:-4096])
    with pytest.raises(InputError, match=r"shard-00001\.h5: truncated"):
        MagnitudeDataset(bad)
    # same size, garbage inside a compressed chunk: caught when the item is read
    bad2 = tmp_path / "garbage"
    shutil.copytree(run, bad2)
    f = bad2 / "shard-00002.h5"
    raw = bytearray(f.read_bytes())
    mid = len(raw) // 4  # inside the magnitude chunks (the first datasets written)
    raw[mid:mid + 20000] = bytes(20000)
    f.write_bytes(bytes(raw))
    ds = MagnitudeDataset(bad2)
    with pytest.raises(InputError, match=r"shard-00002\.h5"):
        for i in range(12, 14):
            ds[i]
    (bad2 / "shard-00000.h5").unlink()
    with pytest.raises(InputError, match=r"shard-00000\.h5: shard file missing"):
        MagnitudeDataset(bad2)


def test_inspect_prints_and_draws(run, capsys):
    from autophase.cli import main

    png = run.parent / "montage.png"
    assert main(["inspect", str(run), "--png", str(png), "-n", "3"]) == 0
    out = capsys.readouterr().out
    assert "crystals   7   patterns 14 (2 per crystal)" in out and "64×64×64" in out
    assert "photons" in out and "median" in out
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert main(["inspect", str(run.parent / "nothing")]) == 2


def test_several_runs_train_as_one(run, tmp_path):
    """--data RUN1 RUN2: one dataset, run 1's items then run 2's; mixing in a file is refused."""
    from autophase.train.data import SimulatedRuns, describe, open_dataset

    ds = open_dataset([str(run), str(run)])
    assert isinstance(ds, SimulatedRuns) and len(ds) == 28
    one = MagnitudeDataset(run)
    assert torch.equal(ds[3], one[3]) and torch.equal(ds[14 + 5], one[5])
    assert describe(ds).startswith("SimulatedRuns(") and describe(ds).endswith("n=28")
    f = tmp_path / "p.npz"
    np.savez(f, data=np.ones((64, 64, 64), np.float32))
    with pytest.raises(InputError, match="p.npz: simulated run directories and pattern files cannot be mixed"):
        open_dataset([str(run), str(f)])
