"""Shards on disk: the same bytes whatever the number of MPI ranks, resumable after a kill,
one run per directory, corrupt files named."""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autophase.data.manifest import load_manifest
from autophase.data.shards import MAGNITUDE
from autophase.errors import InputError
from autophase.simulate.run import KILL_ENV

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
MPIEXEC = BIN / "mpiexec"
# 5 small crystals in shards of 2 → 3 shards, the last one short
ARGS = ["--n-crystals", "5", "--size", "8", "--shard-size", "2", "--seed", "11", "--no-progress"]


def simulate(out, *extra, mpi: int | None = None, env=None, check=True):
    """``autophase simulate`` in a subprocess (alone or under mpiexec)."""
    cmd = [sys.executable, "-m", "autophase.cli", "simulate", *ARGS, "--out", str(out), *extra]
    if mpi is not None:
        cmd = [str(MPIEXEC), "-n", str(mpi), *cmd]
    e = {k: v for k, v in os.environ.items() if k != KILL_ENV}
    e.update(env or {})
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=e, timeout=120)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def simulate_here(capsys, out, *extra):
    """``autophase simulate`` in this process (the same CLI path, without the start-up cost)."""
    from autophase.cli import main

    capsys.readouterr()
    rc = main(["simulate", *ARGS, "--out", str(out), *extra])
    o = capsys.readouterr()
    return rc, o.out, o.err


def magnitude_hash(run_dir) -> str:
    """SHA-256 of all magnitudes in sample order, read shard by shard through the manifest."""
    import h5py
    import hdf5plugin  # noqa: F401

    m = load_manifest(run_dir)
    h = hashlib.sha256()
    for s in m["shards"]:
        with h5py.File(Path(run_dir) / s["file"], "r") as f:
            h.update(np.ascontiguousarray(f[MAGNITUDE][()]).tobytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted single-process run (in this process)."""
    from autophase.cli import main

    out = tmp_path_factory.mktemp("ref") / "run"
    assert main(["simulate", *ARGS, "--out", str(out)]) == 0
    return out


def test_layout_and_manifest(reference):
    import h5py
    import hdf5plugin  # noqa: F401

    names = sorted(p.name for p in reference.iterdir())
    assert names == ["magnitudes.h5", "manifest.json", "run.json", "shard-00000.h5", "shard-00001.h5",
                     "shard-00002.h5"]
    m = load_manifest(reference)
    assert m["n_samples"] == 5 and [s["crystal"] for s in m["samples"]] == [0, 1, 2, 3, 4]
    assert [(s["shard"], s["row"]) for s in m["samples"]] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0)]
    assert all(s["seed"] == [11, s["crystal"]] for s in m["samples"])
    assert all(1e7 <= s["photons"] <= 1e9 for s in m["samples"])
    with h5py.File(reference / "shard-00000.h5", "r") as f:
        d = f[MAGNITUDE]
        assert d.shape == (2, 64, 64, 64) and d.dtype == np.float32 and d.chunks == (1, 64, 64, 64)
        assert "32001" in d._filters  # Blosc
        assert f["truth/object"].dtype == np.complex64 and f.attrs["complete"]
    # the virtual dataset sees every shard, from any working directory (relative paths)
    code = ("import h5py, hdf5plugin, numpy as np; f = h5py.File('magnitudes.h5', 'r'); "
            "a = f['magnitude'][()]; print(a.shape, int(np.isnan(a).sum()), float(a.sum()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=reference, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("(5, 64, 64, 64) 0")


@pytest.mark.mpi
@pytest.mark.slow
def test_one_and_two_ranks_make_identical_data(tmp_path, reference):
    r1, r2 = tmp_path / "r1", tmp_path / "r2"
    simulate(r1, mpi=1)
    p = simulate(r2, mpi=2)
    assert "on 2 rank(s)" in p.stdout and p.stdout.count("simulate:") == 2  # rank 0 reports alone
    assert magnitude_hash(r1) == magnitude_hash(r2) == magnitude_hash(reference)
    for k in range(3):  # not only the magnitudes: the shard files are byte-identical
        name = f"shard-{k:05d}.h5"
        assert (r1 / name).read_bytes() == (r2 / name).read_bytes()
    m1, m2 = load_manifest(r1), load_manifest(r2)
    assert m1 == m2
    crystals = [s["crystal"] for s in m2["samples"]]
    assert sorted(crystals) == list(range(5)) and len(set(crystals)) == 5  # every crystal once


def test_killed_run_resumes_to_the_same_data(tmp_path, reference, capsys):
    out = tmp_path / "run"
    # SIGKILL (uncatchable) after the 3rd sample: shard 0 complete, shard 1 half written
    p = simulate(out, env={KILL_ENV: "3"}, check=False)
    assert p.returncode == -signal.SIGKILL
    names = sorted(q.name for q in out.iterdir())
    assert "shard-00000.h5" in names and "shard-00001.h5" not in names
    assert "manifest.json" not in names and "magnitudes.h5" not in names
    parts = [n for n in names if n.startswith(".shard-00001.h5.part-")]
    assert len(parts) == 1  # the partial file never carries a final name
    before = (out / "shard-00000.h5").stat().st_mtime_ns
    with pytest.raises(InputError, match="incomplete"):
        load_manifest(out)
    rc, stdout, _ = simulate_here(capsys, out)
    assert rc == 0
    assert "2 written, 1 already there" in stdout and "removed 1 partial" in stdout
    assert (out / "shard-00000.h5").stat().st_mtime_ns == before  # not redone
    assert not [q for q in out.iterdir() if ".part-" in q.name]
    assert magnitude_hash(out) == magnitude_hash(reference)
    assert load_manifest(out)["samples"] == load_manifest(reference)["samples"]
    # a third run has nothing to do
    rc, stdout, _ = simulate_here(capsys, out)
    assert rc == 0 and "0 written, 3 already there" in stdout


def test_another_runs_directory_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert simulate_here(capsys, out)[0] == 0
    rc, _, err = simulate_here(capsys, out, "--photons", "1e8")
    assert rc == 2
    assert str(out) in err and "another run" in err and "photons_min" in err
    # shards without a run.json are someone else's data too
    (out / "run.json").unlink()
    rc, _, err = simulate_here(capsys, out)
    assert rc == 2 and "no run.json" in err
    # and a file is not a directory
    rc, _, err = simulate_here(capsys, out / "shard-00000.h5")
    assert rc == 2 and "not a directory" in err


@pytest.mark.parametrize("bad, message", [
    (["--n-crystals", "0"], "n_crystals"),
    (["--n-crystals", "-2"], "n_crystals"),
    (["--size", "3"], "crystal size"),
    (["--size", "1000"], "crystal size"),
    (["--photons", "0"], "photons"),
    (["--photons", "1e9:1e7"], "photons"),
    (["--photons", "many"], "photons"),
    (["--rotations", "-1"], "rotations"),
    (["--shard-size", "0"], "shard_size"),
])
def test_impossible_options_are_input_errors(tmp_path, capsys, bad, message):
    rc, _, err = simulate_here(capsys, tmp_path / "x", *bad)
    assert rc == 2 and message in err and err.startswith("autophase simulate: error:"), err
    assert not (tmp_path / "x").exists()  # nothing written


def test_corrupt_final_shard_is_named_on_resume(tmp_path, capsys):
    out = tmp_path / "run"
    assert simulate_here(capsys, out)[0] == 0
    bad = out / "shard-00001.h5"
    bad.write_bytes(bad.read_bytes()[:1000])  # truncated
    (out / "manifest.json").unlink()
    rc, _, err = simulate_here(capsys, out)
    assert rc == 2 and "shard-00001.h5" in err and "corrupt or truncated" in err


def test_manifest_json_is_checked(tmp_path, reference):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    m = json.loads((out / "manifest.json").read_text())
    m["samples"] = m["samples"][:-1]
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(InputError, match="manifest.json"):
        load_manifest(out)
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="unreadable manifest"):
        load_manifest(out)
    with pytest.raises(InputError, match="no such run directory"):
        load_manifest(tmp_path / "nowhere")
