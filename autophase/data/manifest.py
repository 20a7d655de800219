"""A run directory: its configuration, its manifest and the virtual dataset over its shards.

::

    DIR/run.json        the resolved configuration (written first; identifies the run)
    DIR/shard-*.h5      the shards (:mod:`autophase.data.shards`)
    DIR/manifest.json   written last: every sample once, with its shard and row
    DIR/magnitudes.h5   HDF5 virtual dataset /magnitude (N, 64, 64, 64) over all shards'
                        /magnitude/data, with paths relative to DIR (the directory can move)

``manifest.json``::

    {"format": "autophase-sim-manifest", "version": 1, "run_id": "…", "config": {…},
     "n_crystals": N, "samples_per_crystal": K + 1, "n_samples": N (K + 1),
     "shape": [64, 64, 64], "magnitude": "magnitude/data", "vds": "magnitudes.h5",
     "shards": [{"file": "shard-00000.h5", "first": 0, "count": 64, "bytes": …}, …],
     "samples": [{"index": 0, "crystal": 0, "rotation": 0, "shard": 0, "row": 0,
                  "seed": [seed, crystal], "photons": …, "counts": …, "n_atoms": …,
                  "n_facets": …, "bin_lu": …, "relax": {…}, "seconds": …}, …]}

A run's identity is the SHA-256 of its canonical configuration JSON (``run_id``); a
directory whose ``run.json`` differs — or that holds shards or a manifest without one —
holds another run's data and is refused with an :class:`~autophase.errors.InputError`
naming it.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..atomic import PART, atomic_path, is_part_name, write_json
from ..errors import InputError
from .shards import MAGNITUDE, SHAPE, is_part_file, read_meta, shard_name, shard_number

__all__ = ["RUN_CONFIG", "MANIFEST", "VDS", "FORMAT", "run_id", "prepare_run_dir",
           "remove_part_files", "build_manifest", "load_manifest"]

RUN_CONFIG = "run.json"
MANIFEST = "manifest.json"
VDS = "magnitudes.h5"
FORMAT = "autophase-sim-manifest"
VERSION = 1


def run_id(config: dict) -> str:
    """SHA-256 (hex, 16 chars) of the canonical JSON of ``config``."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def prepare_run_dir(run_dir: str | os.PathLike, config: dict) -> str:
    """Create ``run_dir`` or check that it holds this run; write ``run.json``; return the run id.

    Raises InputError if the directory is a file, holds a different run's ``run.json``,
    or holds shards/manifest but no ``run.json``.
    """
    d = Path(run_dir)
    if d.exists() and not d.is_dir():
        raise InputError(f"{d}: output exists and is not a directory")
    d.mkdir(parents=True, exist_ok=True)
    cfg_path = d / RUN_CONFIG
    if cfg_path.exists():
        try:
            old = json.loads(cfg_path.read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"{cfg_path}: unreadable run configuration ({e})") from None
        if old != config:
            keys = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
            diffs = ", ".join(f"{k}: {old.get(k)!r} → {config.get(k)!r}" for k in keys[:4])
            raise InputError(f"{d}: holds another run's data ({RUN_CONFIG} differs: {diffs}); "
                             "use a new --out directory")
    else:
        ours = [p.name for p in d.iterdir()
                if shard_number(p.name) is not None or p.name in (MANIFEST, VDS)]
        if ours:
            raise InputError(f"{d}: holds simulation data ({', '.join(sorted(ours)[:3])}) but no "
                             f"{RUN_CONFIG}: another run's data; use a new --out directory")
        write_json(cfg_path, config, indent=1)
    return run_id(config)


def remove_part_files(run_dir: str | os.PathLike) -> list[str]:
    """Delete partial files left by a killed run (hidden ``.shard-*.part-PID``); return their names."""
    gone = []
    for p in Path(run_dir).iterdir():
        if is_part_file(p.name) or (is_part_name(p.name)
                                    and p.name[1:].split(PART)[0] in (MANIFEST, VDS, RUN_CONFIG)):
            p.unlink(missing_ok=True)
            gone.append(p.name)
    return gone


def _write_vds(run_dir: Path, shards: list[dict], n_samples: int) -> None:
    """The virtual dataset /magnitude over all shards (relative source paths)."""
    import h5py
    import numpy as np

    layout = h5py.VirtualLayout(shape=(n_samples,) + SHAPE, dtype=np.float32)
    for s in shards:
        src = h5py.VirtualSource(s["file"], MAGNITUDE, shape=(s["count"],) + SHAPE)
        layout[s["first"]:s["first"] + s["count"]] = src
    with atomic_path(run_dir / VDS) as tmp, h5py.File(tmp, "w") as f:
        f.create_virtual_dataset("magnitude", layout, fillvalue=np.nan)
        f.attrs["description"] = ("virtual view of every shard's /magnitude/data; read it with "
                                  "'import hdf5plugin' (Blosc) from any working directory")


def build_manifest(run_dir: str | os.PathLike, config: dict, n_shards: int,
                   samples_per_crystal: int) -> dict:
    """Read every shard's bookkeeping and write ``manifest.json`` and ``magnitudes.h5``."""
    d = Path(run_dir)
    shards, samples = [], []
    for k in range(n_shards):
        path = d / shard_name(k)
        meta = read_meta(path)
        first = meta[0]["index"] if meta else 0
        shards.append({"file": path.name, "first": first, "count": len(meta),
                       "bytes": path.stat().st_size})
        for row, m in enumerate(meta):
            samples.append({"index": m["index"], "crystal": m["crystal"], "rotation": m["rotation"],
                            "shard": k, "row": row, **{key: v for key, v in m.items()
                                                       if key not in ("index", "crystal", "rotation")}})
    idx = [s["index"] for s in samples]
    if idx != list(range(len(samples))):
        raise InputError(f"{d}: shards do not hold samples 0…{len(samples) - 1} in order")
    manifest = {
        "format": FORMAT, "version": VERSION, "run_id": run_id(config), "config": config,
        "n_crystals": config["n_crystals"], "samples_per_crystal": samples_per_crystal,
        "n_samples": len(samples), "shape": list(SHAPE), "magnitude": MAGNITUDE, "vds": VDS,
        "shards": shards, "samples": samples,
    }
    _write_vds(d, shards, len(samples))
    # a large manifest compact: its indentation would be most of the file
    write_json(d / MANIFEST, manifest, **({"separators": (",", ":")} if len(samples) > 1000 else {"indent": 1}))
    return manifest


def load_manifest(run_dir: str | os.PathLike) -> dict:
    """Read and check ``manifest.json``; InputError naming the problem (incomplete run, …)."""
    d = Path(run_dir)
    p = d / MANIFEST
    if not d.is_dir():
        raise InputError(f"{d}: no such run directory")
    if not p.is_file():
        hint = " (the run is incomplete: re-run the same 'autophase simulate' command to finish it)" \
            if (d / RUN_CONFIG).exists() else ""
        raise InputError(f"{p}: no manifest{hint}")
    try:
        m = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"{p}: unreadable manifest ({e})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise InputError(f"{p}: not an autophase simulation manifest")
    try:
        n = int(m["n_samples"])
        if len(m["samples"]) != n or [s["index"] for s in m["samples"]] != list(range(n)):
            raise InputError(f"{p}: samples list does not hold indices 0…{n - 1} once each")
        for s in m["shards"]:
            if not isinstance(s["file"], str) or "/" in s["file"] or s["file"].startswith("."):
                raise InputError(f"{p}: bad shard file name {s['file']!r}")
    except (KeyError, TypeError) as e:
        raise InputError(f"{p}: malformed manifest (missing {e})") from None
    return m
