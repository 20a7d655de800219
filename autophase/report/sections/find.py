"""Finding structure in free-form results: the report's sections search, never index.

Suites write free-form ``results`` dicts, so a section never reads a fixed path; it
*searches* for the structure it can draw — timings, batch points, scaling series — with
the finders below, and whatever it cannot find simply does not appear. Every finder
returns plain floats and tolerates missing fields; paths use the same labels as
:func:`autophase.report.compare.numeric_leaves` so that a node's Δ can be looked up.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterator

from ..compare import is_number, list_labels
from .fmt import pretty

__all__ = ["timing", "find_number", "walk", "batch_points", "BatchGroup", "per_pattern_latency", "throughput_of",
           "Series", "scaling_series", "TIME_KEYS"]

TIME_KEYS = ("median_s", "time_s", "seconds", "wall_s", "elapsed_s", "mean_s", "median", "t_s")


def timing(v: Any) -> float | None:
    """Seconds from a number or a median_time-style dict (``median_s`` first)."""
    if is_number(v):
        return float(v)
    if isinstance(v, dict):
        for k in TIME_KEYS:
            if is_number(v.get(k)):
                return float(v[k])
        for k, x in v.items():  # e.g. {"s_per_crystal": …} or {"latency_s": …}
            if isinstance(k, str) and re.search(r"(^|_)s$", k) and not re.match(r"(min|max|std)_", k) \
                    and is_number(x):
                return float(x)
    return None


def find_number(node: Any, *names: str) -> float | None:
    """The first of ``names`` that is a number directly in dict ``node``."""
    if isinstance(node, dict):
        for n in names:
            if is_number(node.get(n)):
                return float(node[n])
    return None


def walk(obj: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every dict and list node with its key path, depth first (the root included)."""
    yield path, obj
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)):
                yield from walk(v, path + (str(k),))
    elif isinstance(obj, list):
        # Same labels as numeric_leaves ("ranks=2"), so that a node's path prefixes the
        # paths of its leaves and the Δ-vs-previous of a node can be looked up.
        for lab, v in zip(list_labels(obj), obj):
            if isinstance(v, (dict, list)):
                yield from walk(v, path + (lab,))


# ------------------------------------------------------------------ batch sizes
_BATCH_KEY = re.compile(r"^(?:batch|b|bs|batch_size|n)?[_=\-]?(\d+)$", re.I)
_GROUP_FIELDS = ("model", "engine", "backend", "device", "dtype", "precision", "name")


@dataclass(frozen=True)
class BatchGroup:
    """Points of one series over batch sizes: ``{batch: (node, node_path)}``.

    ``device`` is "cpu"/"gpu" when the points say so (a ``device`` field, or ``cuda``/
    ``cpu`` in the path), else None (the record's device applies).
    """

    label: str
    device: str | None
    points: dict[int, tuple[Any, str]]


def _device_word(s: str) -> str | None:
    s = s.lower()
    if s.startswith(("cuda", "gpu")) or s in ("mps", "xpu"):
        return "gpu"
    if s.startswith("cpu"):
        return "cpu"
    return None


def _path_device(path: tuple[str, ...]) -> str | None:
    for p in path:
        d = _device_word(p)
        if d and (p.lower() in ("cpu", "gpu", "cuda") or re.match(r"^(cpu|cuda|gpu)(:\d+)?$", p.lower())):
            return d
    return None


_CONTAINERS = {"models", "batches", "batch", "batched", "results", "runs", "points", "configs"}


def _series_base(path: tuple[str, ...]) -> str:
    """A series' name from its key path without container words (models/paper/batches → paper)."""
    return " ".join(pretty(p) for p in path if p.lower() not in _CONTAINERS)


def _shape_suffix(results: Any, path: tuple[str, ...]) -> str:
    """" (width 16)" when the series' parent records a network width, else "".

    A model called "default" is whatever was shipped when its record was made: the
    width keeps a CPU record of one shipped model from pairing with a GPU record of another.
    """
    node = results
    for k in path[:-1]:
        node = node.get(k) if isinstance(node, dict) else None
    w = node.get("width") if isinstance(node, dict) else None
    return f" (width {w})" if isinstance(w, int) and not isinstance(w, bool) else ""


def batch_points(results: Any) -> list[BatchGroup]:
    """Groups of batch-size points found anywhere in ``results``.

    Recognised: children keyed ``batch_8``/``b8``/``"8"``; lists of dicts with a
    ``batch``/``batch_size`` field; and dicts of dicts with such a field (e.g.
    ``{"torch_cuda_B8": {"engine": "torch", "device": "cuda", "batch": 8, …}}``), split
    into one series per combination of their ``engine``/``device``/``model`` fields.
    """
    out: list[BatchGroup] = []
    for path, node in walk(results):
        base = "/".join(path)
        if isinstance(node, dict):
            keyed = {}
            for k, v in node.items():
                m = _BATCH_KEY.match(str(k))
                if m and int(m.group(1)) >= 1 and (isinstance(v, dict) or is_number(v)):
                    keyed[int(m.group(1))] = (v, f"{base}/{k}" if base else str(k))
            n_dicts = sum(isinstance(v, dict) for v in node.values())
            # {"1": {"ranks": 1, …}, "2": {"ranks": 2, …}} is a scaling series, not batches.
            counted = any(isinstance(v, dict) and any(is_number(v.get(c)) for c in _COUNT_KEYS)
                          and not is_number(v.get("batch")) for v, _ in keyed.values())
            if keyed and len(keyed) >= n_dicts / 2 and not counted:
                out.append(BatchGroup(_series_base(path) + _shape_suffix(results, path), _path_device(path),
                                      dict(sorted(keyed.items()))))
                continue
            children = [(str(k), v) for k, v in node.items() if isinstance(v, dict)]
        elif isinstance(node, list):
            children = list(zip(list_labels(node), node))
            children = [(k, v) for k, v in children if isinstance(v, dict)]
        else:
            continue
        fielded = [(k, v) for k, v in children if find_number(v, "batch", "batch_size") is not None]
        if not fielded or len(fielded) < len(children) / 2:
            continue
        groups: dict[tuple[tuple[str, str], ...], dict[int, tuple[Any, str]]] = {}
        for k, v in fielded:
            b = int(find_number(v, "batch", "batch_size"))
            if b < 1:
                continue
            g = tuple((f, str(v[f])) for f in _GROUP_FIELDS if isinstance(v.get(f), str))
            groups.setdefault(g, {})[b] = (v, f"{base}/{k}" if base else k)
        for g, pts in groups.items():
            dev = next((_device_word(x) for f, x in g if f == "device" and _device_word(x)), None) \
                or _path_device(path)
            label = " ".join([_series_base(path)] + [f"{f}={x}" for f, x in g if f != "device"]).strip()
            out.append(BatchGroup(label, dev, dict(sorted(pts.items()))))
    return out


def per_pattern_latency(batch: int, node: Any) -> float | None:
    """Seconds per pattern: an explicit per-pattern figure, else the batch's time / batch."""
    direct = find_number(node, "per_pattern_s", "latency_per_pattern_s", "s_per_pattern",
                         "per_sample_s", "latency_s_per_pattern")
    if direct is not None:
        return direct
    ms = find_number(node, "per_pattern_ms", "latency_per_pattern_ms")
    if ms is not None:
        return ms / 1e3
    t = timing(node)
    return t / batch if t is not None and batch > 0 else None


def throughput_of(batch: int, node: Any) -> float | None:
    """Patterns (samples) per second: explicit, else batch / time."""
    direct = find_number(node, "patterns_per_s", "samples_per_s", "throughput", "throughput_per_s",
                         "items_per_s")
    if direct is not None:
        return direct
    t = timing(node)
    return batch / t if t else None




# ------------------------------------------------------------------ scaling
@dataclass(frozen=True)
class Series:
    """One scaling series: N (ranks/nodes) with speed-up and efficiency against N₀.

    ``basis`` says how they were obtained ("given", "time, strong", "time, weak",
    "throughput"); ``raw`` holds the measured figure per N (time s or items/s).
    """

    label: str
    axis: str
    N: tuple[float, ...]
    speedup: tuple[float, ...]
    efficiency: tuple[float, ...]
    basis: str
    raw: tuple[float | None, ...]
    raw_name: str


_COUNT_KEYS = ("ranks", "nodes", "gpus", "world_size", "n_ranks", "num_ranks", "n_nodes",
               "num_nodes", "workers", "n_gpus", "np", "procs")
_THRU_KEYS = ("samples_per_s", "crystals_per_s", "patterns_per_s", "throughput", "items_per_s",
              "throughput_per_s", "crystals_per_s_total")
_COUNT_IN_KEY = re.compile(r"^(?:(?:ranks?|nodes?|gpus?|np|n)[_=\-]?(\d+)|(\d+)[_\-]?(?:ranks?|nodes?|gpus?))$",
                           re.I)


def _weak(path: tuple[str, ...], node: Any) -> bool:
    if any("weak" in p.lower() for p in path):
        return True
    if isinstance(node, dict):
        for k in ("mode", "scaling", "kind", "type"):
            if isinstance(node.get(k), str) and "weak" in node[k].lower():
                return True
    return False


def _measured(e: Any) -> bool:
    """A point that carries something to scale: a ratio, a throughput or a time."""
    if is_number(e):
        return True
    if isinstance(e, dict) and (e.get("error") or e.get("failed") or e.get("ok") is False):
        return False  # a configuration that did not run; its wall time is of the failure
    return find_number(e, "speedup", "speed_up", "efficiency", "weak_efficiency", *_THRU_KEYS) is not None \
        or timing(e) is not None


def _series_from_points(label: str, axis: str, pts: list[tuple[float, Any]], weak: bool) -> Series | None:
    # A failed configuration ({"ranks": 2, "error": "…"}) is not a point of the curve.
    pts = sorted((p for p in pts if _measured(p[1])), key=lambda p: p[0])
    if len(pts) < 2:
        return None
    N = [p[0] for p in pts]
    n0 = N[0]
    S = [find_number(e, "speedup", "speed_up") for _, e in pts]
    E = [find_number(e, "efficiency", "parallel_efficiency", "eff") for _, e in pts]
    thr = [find_number(e, *_THRU_KEYS) for _, e in pts]
    tim = [timing(e) if not isinstance(e, (int, float)) else float(e) for _, e in pts]
    WE = [find_number(e, "weak_efficiency") for _, e in pts]
    if weak and all(w is not None for w in WE):
        # hpc/scaling.py gives both ratios for every point; in weak mode the headline is
        # the weak efficiency, and the matching "speed-up" is the throughput ratio.
        E = WE
        S = [w * n / n0 for w, n in zip(WE, N)]
        good = [t for t in thr if t is not None]
        raw, raw_name = (tuple(thr), "items/s") if len(good) == len(thr) else (tuple(tim), "s")
        return Series(label, axis, tuple(N), tuple(float(x) for x in S), tuple(float(x) for x in E),
                      "given (weak)", raw, raw_name)
    if all(s is not None for s in S):
        E = [e if e is not None else s / (n / n0) for s, e, n in zip(S, E, N)]
        basis, raw, raw_name = "given", tuple(thr if all(t is not None for t in thr) else tim), ""
    elif all(e is not None for e in E):
        S = [e * n / n0 for e, n in zip(E, N)]
        basis, raw, raw_name = "given", tuple(tim), ""
    elif all(t is not None and t > 0 for t in thr):
        S = [t / thr[0] for t in thr]
        E = [s / (n / n0) for s, n in zip(S, N)]
        key = next((k for k in _THRU_KEYS if isinstance(pts[0][1], dict) and k in pts[0][1]), "")
        unit = key.split("_per_s")[0] + "/s" if "_per_s" in key else "items/s"
        basis, raw, raw_name = "throughput", tuple(thr), unit
    elif all(t is not None and t > 0 for t in tim):
        if weak:  # same work per rank: ideal is constant time
            E = [tim[0] / t for t in tim]
            S = [e * n / n0 for e, n in zip(E, N)]
            basis = "time, weak"
        else:
            S = [tim[0] / t for t in tim]
            E = [s / (n / n0) for s, n in zip(S, N)]
            basis = "time, strong"
        raw, raw_name = tuple(tim), "s"
    else:
        return None
    return Series(label, axis, tuple(N), tuple(float(s) for s in S), tuple(float(e) for e in E),
                  basis, tuple(raw), raw_name if basis != "given" else "")


def _ancestor_weak(results: Any, path: tuple[str, ...]) -> bool:
    """Whether a dict on the way from the root to ``path`` declares weak scaling."""
    node = results
    if _weak((), node):
        return True
    for p in path:
        if not isinstance(node, dict) or p not in node:
            return False
        node = node[p]
        if _weak((p,), node):
            return True
    return False


_GROUP_KEYS = ("engine", "mode", "device", "name", "backend")


def _group_points(label: str, axis: str, entries: list[tuple[str, dict]], count_key: str,
                  weak: bool) -> list[Series]:
    """One series per engine/mode: from the entries' string fields, else from their keys
    with the count removed (``"ddp-2"`` → ``ddp``). Singletons (``none-1``) are no series."""
    groups: dict[str, list[tuple[float, Any]]] = {}
    for key, e in entries:
        g = " ".join(str(e[k]) for k in _GROUP_KEYS if isinstance(e.get(k), str))
        if not g and not key.isdigit() and "=" not in key:
            g = re.sub(r"[-_=]?(ranks?|nodes?|gpus?|np|n)?[-_=]?\d+$", "", key)
        groups.setdefault(g, []).append((float(e[count_key]), e))
    out = []
    for g, pts in groups.items():
        s = _series_from_points(f"{label} {g}".strip(), axis, pts, weak or "weak" in g.lower())
        if s:
            out.append(s)
    return out


def scaling_series(results: Any, prefix: str = "", weak_hint: bool = False) -> list[Series]:
    """Every scaling series found in ``results`` (see module doc of :mod:`.scaling`).

    Recognised: lists or dicts of dicts carrying a count field (``ranks``, ``nodes``,
    ``gpus``, ``world_size``…), split by engine/mode, and dicts keyed
    ``ranks_2``/``2_ranks``/``nodes_4``. Each point needs ``speedup`` or ``efficiency``,
    or a throughput (``…per_s``), or a time; points without one are left out.
    """
    out: list[Series] = []
    for path, node in walk(results):
        label = " ".join(([prefix] if prefix else []) + [_series_base(path)]).strip()
        weak = weak_hint or _weak(path, node) or _ancestor_weak(results, path)
        if isinstance(node, list) and len(node) >= 2 and all(isinstance(e, dict) for e in node):
            entries = list(zip(list_labels(node), node))
        elif isinstance(node, dict):
            entries = [(str(k), v) for k, v in node.items() if isinstance(v, dict)]
        else:
            continue
        done = False
        for ck in _COUNT_KEYS:
            if len(entries) >= 2 and all(is_number(e.get(ck)) for _, e in entries):
                out += _group_points(label, ck, entries, ck, weak)
                done = True
                break
        if done or not isinstance(node, dict):
            continue
        pts = []
        axis = "ranks"
        for k, v in node.items():
            m = _COUNT_IN_KEY.match(str(k))
            if m and (isinstance(v, dict) or is_number(v)):
                pts.append((float(m.group(1) or m.group(2)), v))
                axis = re.sub(r"[\d_=\-]", "", str(k)) or "ranks"
        if len(pts) >= 2:
            s = _series_from_points(label, axis.rstrip("s") + "s", pts, weak)
            if s:
                out.append(s)
    return out
