"""Ground truth of simulated samples — for evaluation only, never for training.

This module is the *only* code that opens a shard's ``/truth`` group, and every read goes
through :func:`_read_truth_rows`. That makes "training never touches the truth" provable:
a test replaces ``_read_truth_rows`` with a function that fails, runs training, and sees
it pass (the training engineer's test), and :class:`~autophase.data.dataset.MagnitudeDataset`
is tested on shards whose ``/truth`` group has been deleted.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from .manifest import load_manifest
from .shards import TRUTH_GROUP, open_shard

__all__ = ["read_truth"]


def _read_truth_rows(path: Path, row: int) -> dict:
    """Read row ``row`` of ``path``'s /truth group (the single point of truth access)."""
    f = open_shard(path)
    try:
        if TRUTH_GROUP not in f:
            raise InputError(f"{path}: shard holds no /{TRUTH_GROUP} group")
        g = f[TRUTH_GROUP]
        obj = np.asarray(g["object"][row], np.complex64)
        support = np.asarray(g["support"][row]).astype(bool)
        photons = float(g["photons"][row])
        seed = tuple(int(v) for v in g["seed"][row])
        raw = g["params"][row]
        params = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except InputError:
        raise
    except (OSError, KeyError, ValueError, IndexError) as e:
        raise InputError(f"{path}: corrupt truth at row {row} ({str(e).splitlines()[0]})") from None
    finally:
        f.close()
    return {"object": obj, "support": support, "photons": photons, "seed": seed, "params": params}


_INDEX_CACHE: dict = {}


def _sample_locations(run_dir: Path) -> list[tuple[str, int]]:
    """(shard file, row) per sample, cached per manifest version (path, mtime, size):
    evaluation reads many truths, and a 100 k-sample manifest takes a second to parse."""
    p = run_dir / "manifest.json"
    try:
        st = p.stat()
        key = (str(p.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        key = None
    if key is not None and key in _INDEX_CACHE:
        return _INDEX_CACHE[key]
    m = load_manifest(run_dir)
    locs = [(m["shards"][s["shard"]]["file"], int(s["row"])) for s in m["samples"]]
    if key is not None:
        _INDEX_CACHE.clear()  # one run at a time is the common case; keep memory bounded
        _INDEX_CACHE[key] = locs
    return locs


def read_truth(run_dir: str | os.PathLike, index: int) -> dict:
    """The truth of sample ``index`` of the run in ``run_dir``.

    Returns ``{"object": (64, 64, 64) complex64, "support": (64, 64, 64) bool,
    "photons": float, "seed": (run seed, crystal), "params": dict}`` where ``object`` is
    scaled so that ``autophase.physics.intensity(object)`` is the expected counts of the
    pattern (the noise-free data), and ``params`` describes facets, strain, rotation and
    relaxation. InputError for an unknown index or a corrupt shard.
    """
    d = Path(run_dir)
    locs = _sample_locations(d)
    n = len(locs)
    if isinstance(index, bool) or not (isinstance(index, (int, np.integer)) and 0 <= int(index) < n):
        raise InputError(f"{run_dir}: sample index {index!r} outside [0, {n})")
    file, row = locs[int(index)]
    return _read_truth_rows(d / file, row)
