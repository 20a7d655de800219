"""Numeric leaves of a results dict, which way is better for each, and day-over-day change.

A suite's ``results`` is free-form nested JSON. :func:`numeric_leaves` flattens it to
``{"batch_8/median_s": 0.41, …}`` (lists of numbers — repeats, per-crystal values — are
left out: they are distributions, not figures; lists of dicts become
``points/ranks=2/time_s`` when an entry carries a ``ranks``/``nodes``/``batch`` field).

:func:`direction` reads the metric's name: +1 when higher is better (``…per_s``,
``throughput``, ``gflops``, ``speedup``, ``efficiency``, ``ssim``), −1 when lower is
better (times ``…_s``/``_ms``, ``latency``, ``chi2``, ``error``, ``loss``), 0 otherwise
(counts, sizes, and the spread of repeats: ``min_s``, ``max_s``, ``std_s``), and
:data:`TOWARD_ONE` for a figure relative to the noise floor (``…_over_floor``): χ² below
the floor is not better, it is over-fitting the noise, so closest to 1 is best.

:func:`compare` classifies each metric against the previous run with the relative change
r = now/prev − 1 and worse = −direction·r: a *regression* when worse > threshold (time
up, or throughput down, by more than 10 % by default), an *improvement* when
worse < −threshold. For :data:`TOWARD_ONE` figures worse = |now − 1| − |prev − 1|.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable

__all__ = ["numeric_leaves", "list_labels", "direction", "Change", "compare", "THRESHOLD", "is_number",
           "is_ours", "is_peer", "OURS", "TOWARD_ONE", "better_key", "BETTER_WHEN"]

THRESHOLD = 0.10
# direction() of a ratio to the noise floor: neither up nor down, but toward 1
TOWARD_ONE = 2
BETTER_WHEN = {1: "higher is better", -1: "lower is better", TOWARD_ONE: "closest to 1 (the noise floor) is best"}
_FLOOR_RATIO = re.compile(r"(_over_floor|_over_noise(_floor)?|_to_floor)$")
# Longer lists of dicts are per-item records (one per test crystal): a distribution that
# the suite's own summary condenses, not figures to compare one by one.
MAX_POINTS = 16
# Bookkeeping, not performance: never compared.
_SKIP = {"repeats", "warmup", "seed", "seeds", "times_s", "git_sha", "timestamp", "created"}
# Fields that name a list entry across runs: inputs of the measurement (ranks, batch,
# pattern), never its outcomes (iterations to converge, seconds), which change nightly.
_POINT_KEYS = ("ranks", "nodes", "gpus", "world_size", "n_ranks", "num_ranks", "batch",
               "batch_size", "pattern", "crystal", "index", "size", "engine", "device", "name", "method")
_HIGHER = re.compile(
    r"(per_s(ec)?($|_)|_ps$|/s$|throughput|gflops|gflop_s|tflops|tflop_s|speedup|efficiency|ssim|"
    r"bandwidth|(mb|gb|gib|mib)_s$|fps|it_s$|rate$|_hz$|per_second|fraction_of_(sgemm|peak))")
_LOWER = re.compile(
    r"((^|_)(s|ms|us|ns|sec|secs|seconds|time|latency|wall|elapsed)($|_)|latency|"
    r"chi2|chi_2|error|loss|llk|residual|mae|rmse)")
# The spread of repeats (min_s, max_s, std_s): shown, never marked; but "max_chi2" is a figure.
_SPREAD = re.compile(r"^(min|max|std|stdev|iqr|p\d+|q\d+)(_(s|ms|us|sec|seconds|time))?$")
# Properties of the data, not of the code (the noise floor of a pattern).
_DATA = re.compile(r"(^noise|noise_floor|^n_|_count$|^count$)")
_RATIO = re.compile(r"(speedup|speed_up|ratio)", re.I)
OURS = ("ours", "autophase")
_PEERS = ("cohere", "pynx", "peer", "reference", "baseline")


def is_ours(key: str) -> bool:
    """A key naming our implementation (``ours``, ``ours_cpu``, ``autophase_torch``)."""
    return str(key).lower().startswith(OURS)


def is_peer(key: str) -> bool:
    """A key naming a peer implementation (``cohere_numpy``, ``pynx``…), not a ratio to one."""
    k = str(key).lower()
    return not is_ours(k) and not _RATIO.search(k) and any(p in k for p in _PEERS)


def is_number(v: Any) -> bool:
    """A finite int/float that is not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _point_label(entry: dict[str, Any], i: int) -> str:
    for k in _POINT_KEYS:
        if k in entry and isinstance(entry[k], (str, int, float)) and not isinstance(entry[k], bool):
            return f"{k}={entry[k]}"
    return str(i)


def list_labels(obj: list) -> list[str]:
    """Path labels of a list's entries: ``ranks=2`` where a point field names them, else
    the index (also when two entries would share a label)."""
    if obj and all(isinstance(e, dict) for e in obj):
        labels = [_point_label(e, i) for i, e in enumerate(obj)]
        if len(set(labels)) == len(labels):
            return labels
    return [str(i) for i in range(len(obj))]


def numeric_leaves(obj: Any, prefix: str = "") -> dict[str, float]:
    """Flatten nested dicts (and lists of ≤ MAX_POINTS dicts) to ``{"a/b/c": float}``."""
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            k = str(k)
            if k in _SKIP:
                continue
            path = f"{prefix}/{k}" if prefix else k
            if is_number(v):
                out[path] = float(v)
            elif isinstance(v, (dict, list)):
                out.update(numeric_leaves(v, path))
    elif isinstance(obj, list) and obj and all(isinstance(e, dict) for e in obj) and len(obj) <= MAX_POINTS:
        for lab, e in zip(list_labels(obj), obj):
            out.update(numeric_leaves(e, f"{prefix}/{lab}" if prefix else lab))
    return out


def direction(path: str) -> int:
    """+1 higher is better, −1 lower is better, TOWARD_ONE closest to 1 is best, 0 not a
    performance figure (see module doc)."""
    parts = [p.lower() for p in path.split("/") if p]
    if not parts:
        return 0
    leaf = parts[-1]
    if _SPREAD.match(leaf) or leaf in _SKIP or "=" in leaf or _DATA.search(leaf):
        return 0
    if leaf in ("median", "mean", "value", "avg") and len(parts) > 1:
        leaf = parts[-2]
    if _FLOOR_RATIO.search(leaf):
        return TOWARD_ONE
    if _HIGHER.search(leaf):
        return 1
    if _LOWER.search(leaf):
        return -1
    return 0


@dataclass(frozen=True)
class Change:
    """One metric now and in the previous run.

    ``rel`` = now/prev − 1 (None when either side is missing or prev is 0);
    ``status`` ∈ {"regression", "improvement", "same", "new", "gone", "info"}
    ("info": a figure with no better direction, shown but never marked).
    """

    suite: str
    device: str
    path: str
    now: float | None
    prev: float | None
    rel: float | None
    direction: int
    status: str


def better_key(path: str):
    """A key under which the best of several values of metric ``path`` is the largest (None: no best)."""
    d = direction(path)
    if d == TOWARD_ONE:
        return lambda x: -abs(x - 1)
    return (lambda x: x * d) if d else None


def compare(suite: str, device: str, now: dict[str, float], prev: dict[str, float] | None,
            threshold: float = THRESHOLD) -> list[Change]:
    """Changes of every metric of one (suite, device) against the previous run's leaves."""
    out: list[Change] = []
    keys: Iterable[str] = list(now) + [k for k in (prev or {}) if k not in now]
    for k in keys:
        d = direction(k)
        a = now.get(k)
        b = None if prev is None else prev.get(k)
        rel = None
        if a is not None and b is not None and b != 0:
            rel = a / b - 1.0
        if a is None:
            status = "gone"
        elif b is None:
            status = "new"
        elif d == 0 or any(is_peer(p) for p in k.split("/")):
            # A peer's own figures moving is news about the machine, not about us.
            status = "info"
        elif rel is None:
            status = "same"
        else:
            worse = abs(a - 1) - abs(b - 1) if d == TOWARD_ONE else -d * rel
            status = "regression" if worse > threshold else "improvement" if worse < -threshold else "same"
        out.append(Change(suite, device, k, a, b, rel, d, status))
    return out
