"""Validation of a simulated dataset's ``manifest.json`` before training reads it.

``autophase simulate`` writes shards ``shard-*.h5`` (whole shards per rank), a virtual
dataset over them and, last, ``manifest.json`` (format ``autophase-sim-manifest``, see
:mod:`autophase.data.manifest`)::

    {"format": …, "n_crystals": N, "samples_per_crystal": K+1, "n_samples": N(K+1), "vds": …,
     "shards":  [{"file": "shard-00000.h5", "first": 0, "count": 64, "bytes": …}, …],
     "samples": [{"index": 0, "crystal": 0, "rotation": 0, "shard": 0, "row": 0, …}, …]}

This module checks it independently of the code that wrote it, from JSON and file sizes
alone (no h5py, no model), so that a bad dataset stops the graph before training:

* every sample index ``0 … n_samples-1`` appears exactly once, in the shard and row the
  shard table says (shards tile the indices without gap or overlap);
* every crystal index ``0 … n_crystals-1`` appears exactly once per rotation
  ``0 … K`` (so exactly ``K+1`` times), and ``n_crystals`` is the count the run asked for;
* every shard file (and the virtual dataset) exists inside the folder, and each shard has
  the size the manifest recorded — a truncated or rewritten shard is caught here.

Any failure is an :class:`~autophase.errors.InputError` naming the manifest and the problem.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from autophase.errors import InputError

__all__ = ["validate", "FORMAT"]

FORMAT = "autophase-sim-manifest"


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate(data_dir: str | Path, n_crystals: int | None = None) -> dict[str, Any]:
    """Check ``<data_dir>/manifest.json``; return ``{"n_crystals", "n_samples", "n_shards", "bytes"}``.

    A crystal index missing from the samples shows up as another one duplicated (or out of
    range), since the counts must match.

    ``n_crystals``, when given, is the count the run asked for.
    """
    data_dir = Path(data_dir)
    path = data_dir / "manifest.json"
    try:
        m = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: missing (the simulation did not finish)") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"{path}: not readable JSON ({e})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise InputError(f"{path}: not an {FORMAT} file")
    for key in ("n_crystals", "samples_per_crystal", "n_samples"):
        if not _int(m.get(key)) or m[key] < 1:
            raise InputError(f"{path}: '{key}' must be an integer ≥ 1")
    n_cry, per, n_samples = m["n_crystals"], m["samples_per_crystal"], m["n_samples"]
    if n_crystals is not None and n_cry != n_crystals:
        raise InputError(f"{path}: holds {n_cry} crystals, but the run asked for {n_crystals}")
    if n_samples != n_cry * per:
        raise InputError(f"{path}: n_samples {n_samples} ≠ n_crystals {n_cry} × samples_per_crystal {per}")
    shards, samples = m.get("shards"), m.get("samples")
    if not isinstance(shards, list) or not shards:
        raise InputError(f"{path}: no shards")
    if not isinstance(samples, list):
        raise InputError(f"{path}: no samples list")

    root = data_dir.resolve()

    def inside(name: Any, where: str) -> Path:
        if not isinstance(name, str) or not name:
            raise InputError(f"{path}: {where}: no file name")
        p = (data_dir / name).resolve()
        if root not in p.parents:
            raise InputError(f"{path}: {where}: {name!r} lies outside {data_dir}")
        if not p.is_file():
            raise InputError(f"{path}: {where}: file {name} is missing")
        return p

    # shards tile [0, n_samples) in order, and each file is the size that was recorded
    total_bytes, expect = 0, 0
    for k, sh in enumerate(shards):
        where = f"shards[{k}]"
        if not isinstance(sh, dict) or not all(_int(sh.get(key)) for key in ("first", "count", "bytes")):
            raise InputError(f"{path}: {where}: needs integer 'first', 'count' and 'bytes'")
        if sh["first"] != expect or sh["count"] < 1:
            raise InputError(f"{path}: {where}: covers samples {sh['first']}…{sh['first'] + sh['count'] - 1}, "
                             f"expected to start at {expect}")
        expect += sh["count"]
        size = inside(sh.get("file"), where).stat().st_size
        if size != sh["bytes"]:
            raise InputError(f"{path}: {where}: {sh['file']} is {size} bytes, the manifest recorded "
                             f"{sh['bytes']} (truncated or rewritten)")
        total_bytes += size
    if expect != n_samples:
        raise InputError(f"{path}: shards hold {expect} samples, n_samples is {n_samples}")
    if m.get("vds") is not None:
        inside(m["vds"], "vds")

    # every sample once, where its shard says; every crystal once per rotation
    if len(samples) != n_samples:
        raise InputError(f"{path}: {len(samples)} samples listed, n_samples is {n_samples}")
    seen: Counter[tuple[int, int]] = Counter()
    for i, s in enumerate(samples):
        if not isinstance(s, dict) or not all(_int(s.get(k)) for k in ("index", "crystal", "rotation", "shard", "row")):
            raise InputError(f"{path}: samples[{i}]: needs integer index, crystal, rotation, shard, row")
        if s["index"] != i:
            raise InputError(f"{path}: samples[{i}] has index {s['index']} (each index must appear once, in order)")
        if not 0 <= s["shard"] < len(shards):
            raise InputError(f"{path}: sample {i}: shard {s['shard']} does not exist")
        sh = shards[s["shard"]]
        if s["row"] != i - sh["first"] or not 0 <= s["row"] < sh["count"]:
            raise InputError(f"{path}: sample {i}: row {s['row']} of shard {s['shard']} does not hold it")
        if not 0 <= s["crystal"] < n_cry or not 0 <= s["rotation"] < per:
            raise InputError(f"{path}: sample {i}: crystal {s['crystal']} / rotation {s['rotation']} out of range")
        seen[(s["crystal"], s["rotation"])] += 1
    dup = [key for key, c in seen.items() if c > 1]
    if dup:
        c, r = min(dup)
        gone = [(a, b) for a in range(n_cry) for b in range(per) if (a, b) not in seen]
        raise InputError(f"{path}: crystal {c} (rotation {r}) appears {seen[(c, r)]} times"
                         + (f" and crystal {gone[0][0]} (rotation {gone[0][1]}) is missing" if gone else ""))
    # n_samples = n_crystals × samples_per_crystal distinct in-range (crystal, rotation)
    # pairs: by counting, every crystal appears exactly once per rotation.
    return {"n_crystals": n_cry, "n_samples": n_samples, "n_shards": len(shards), "bytes": total_bytes}
