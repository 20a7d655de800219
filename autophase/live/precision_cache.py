"""``watch --precision auto``'s timings kept on disk, so that a restart compiles once.

Where the CPU flags allow bfloat16, ``--precision auto`` compiles the network twice
(float32 and bfloat16), times a pass of each and keeps the faster
(:meth:`autophase.live.service.WatchService._time_precisions`): the flags alone did not
say which is faster. The second compile is most of the service's start-up for
``--refine 0``. The answer depends on the machine, the torch build and the network, not
on the day, so it is kept: the next start on the same kind of machine reads it and
compiles only the chosen arithmetic.

The file is ``$AUTOPHASE_PRECISION_CACHE`` when set (an empty value or ``off`` turns the
cache off), else ``~/.cache/autophase/precision-<key>.json`` with ``key`` a hash of the
CPU (model name, family/model numbers, widest vector ISA), the core count, torch's
version and intra-op threads, the model version and the pattern size. Contents: JSON
``{"key": text, "seconds": {"fp32": s, "bf16": s}, "timed": ISO time}``, written
atomically. A missing, unreadable or foreign file (its ``key`` text differs) is ignored,
and the service times again. Delete the file to have it timed again.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
from pathlib import Path

from ..atomic import write_json
from ..paths import cache_file

__all__ = ["ENV", "machine_text", "cache_path", "load", "save"]

ENV = "AUTOPHASE_PRECISION_CACHE"


def machine_text(model_version: str, size: int) -> str:
    """What the timings depend on, as one line (hashed into the file name, kept in the file)."""
    import torch

    from ..bench.record import _cpu_model

    return (f"{_cpu_model()}|cores {os.cpu_count()}|torch {torch.__version__} threads {torch.get_num_threads()}"
            f"|model {model_version}|size {int(size)}")


def cache_path(key: str) -> Path | None:
    """The file for ``key`` (:func:`machine_text`), or None when the cache is off."""
    return cache_file(ENV, lambda: f"precision-{hashlib.sha256(key.encode()).hexdigest()[:12]}.json")


def load(path: Path | None, key: str) -> tuple[dict[str, float], str] | None:
    """(``{"fp32": s, "bf16": s}``, when timed) from ``path`` if it holds timings for ``key``, else None."""
    if path is None or not path.is_file():
        return None
    try:
        d = json.loads(path.read_text())
        if d.get("key") != key:
            return None
        seconds = {k: float(d["seconds"][k]) for k in ("fp32", "bf16")}
        timed = str(d.get("timed", ""))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not all(math.isfinite(s) and s > 0 for s in seconds.values()):
        return None
    return seconds, timed


def save(path: Path | None, key: str, seconds: dict[str, float]) -> bool:
    """Write the timings (atomically); False when the cache is off or the write failed."""
    if path is None:
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"key": key, "seconds": {k: float(seconds[k]) for k in ("fp32", "bf16")},
                          "timed": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")})
    except OSError:
        return False
    return True
