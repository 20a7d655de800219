"""Manifest validation (hpc.manifest): every crystal once, files present and of the recorded size."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

from autophase.errors import InputError  # noqa: E402
from autophase.hpc.manifest import validate  # noqa: E402


def _dataset(d: Path, n_crystals=6, per=2, shard=4) -> dict:
    """A manifest in simulate's format over real (small) shard files."""
    n = n_crystals * per
    shards, samples = [], []
    for k, first in enumerate(range(0, n, shard)):
        count = min(shard, n - first)
        f = d / f"shard-{k:05d}.h5"
        f.write_bytes(b"x" * (100 + k))
        shards.append({"file": f.name, "first": first, "count": count, "bytes": f.stat().st_size})
        for row in range(count):
            i = first + row
            samples.append({"index": i, "crystal": i // per, "rotation": i % per, "shard": k, "row": row})
    (d / "magnitudes.h5").write_bytes(b"vds")
    m = {"format": "autophase-sim-manifest", "version": 1, "n_crystals": n_crystals,
         "samples_per_crystal": per, "n_samples": n, "vds": "magnitudes.h5", "shards": shards, "samples": samples}
    (d / "manifest.json").write_text(json.dumps(m))
    return m


def _write(d: Path, m: dict) -> None:
    (d / "manifest.json").write_text(json.dumps(m))


def test_valid_dataset(tmp_path):
    _dataset(tmp_path)
    info = validate(tmp_path, 6)
    assert info["n_crystals"] == 6 and info["n_samples"] == 12 and info["n_shards"] == 3
    assert info["bytes"] == 100 + 101 + 102


def test_missing_and_corrupt_manifest(tmp_path):
    with pytest.raises(InputError, match="manifest.json: missing"):
        validate(tmp_path)
    (tmp_path / "manifest.json").write_text('{"format": "autophase-sim-manifest", ')
    with pytest.raises(InputError, match="not readable JSON"):
        validate(tmp_path)


def test_wrong_crystal_count(tmp_path):
    _dataset(tmp_path)
    with pytest.raises(InputError, match="holds 6 crystals, but the run asked for 8"):
        validate(tmp_path, 8)


def test_duplicated_crystal_is_named(tmp_path):
    m = _dataset(tmp_path)
    m["samples"][4]["crystal"] = 1  # crystal 2 rotation 0 → a second crystal 1 rotation 0
    _write(tmp_path, m)
    with pytest.raises(InputError, match=r"crystal 1 \(rotation 0\) appears 2 times and crystal 2 \(rotation 0\) is missing"):
        validate(tmp_path)


def test_missing_shard_file(tmp_path):
    _dataset(tmp_path)
    (tmp_path / "shard-00001.h5").unlink()
    with pytest.raises(InputError, match="shards\\[1\\]: file shard-00001.h5 is missing"):
        validate(tmp_path)


def test_truncated_shard(tmp_path):
    _dataset(tmp_path)
    with open(tmp_path / "shard-00002.h5", "r+b") as f:
        f.truncate(10)
    with pytest.raises(InputError, match="is 10 bytes, the manifest recorded 102"):
        validate(tmp_path)


def test_gap_between_shards(tmp_path):
    m = _dataset(tmp_path)
    m["shards"][1]["first"] = 5
    _write(tmp_path, m)
    with pytest.raises(InputError, match="expected to start at 4"):
        validate(tmp_path)


def test_sample_out_of_order_and_outside_paths(tmp_path):
    m = _dataset(tmp_path)
    m["samples"][3]["index"] = 7
    _write(tmp_path, m)
    with pytest.raises(InputError, match="each index must appear once"):
        validate(tmp_path)
    m = _dataset(tmp_path)
    m["shards"][0]["file"] = "../elsewhere.h5"
    _write(tmp_path, m)
    with pytest.raises(InputError, match="lies outside"):
        validate(tmp_path)


@pytest.mark.slow
@pytest.mark.mpi
def test_real_simulation_on_two_ranks(tmp_path):
    """The manifest ``mpiexec -n 2 autophase simulate`` writes passes; a removed shard does not."""
    bindir = Path(sys.executable).parent
    mpiexec = shutil.which("mpiexec", path=str(bindir)) or shutil.which("mpiexec")
    out = tmp_path / "data"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run([mpiexec, "-n", "2", str(bindir / "autophase"), "simulate", "--n-crystals", "4", "--out", str(out),
                    "--size", "8", "--shard-size", "2", "--no-progress"], env=env, check=True, timeout=120,
                   capture_output=True)
    info = validate(out, 4)
    assert info["n_crystals"] == 4 and info["n_shards"] == 2
    (out / "shard-00001.h5").unlink()
    with pytest.raises(InputError, match="shard-00001.h5 is missing"):
        validate(out, 4)
