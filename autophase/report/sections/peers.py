"""Ours against the peers (cohere-core numpy/torch, …) as ratios, same schedule and data.

A comparison is any dict in a suite's results with at least one child whose key starts
with ``ours``/``autophase`` and one whose key names a peer (``cohere…``, ``pynx…``,
``peer…``, ``reference…``, ``baseline…``). For each (ours, peer) pair the speed-up of
ours is ``t_peer / t_ours`` (> 1: ours faster); figures of quality found in both
(χ², error, SSIM) are shown side by side, since a faster solver that converges worse is
no win. Ratios the suite computed itself (keys ``speedup_vs_…``/``…_ratio``) are listed
too.
"""
from __future__ import annotations

import math
import re

from .. import figures
from ..compare import BETTER_WHEN, better_key, direction, is_number
from ..context import Context
from ..document import Cell, Figure, Para, Table
from ..records import Record
from ..compare import is_ours, is_peer
from .find import walk
from .fmt import change_cell, fmt_num, fmt_time, pretty

__all__ = ["peer_blocks", "quality_blocks"]

_QUALITY = ("chi2", "chi2_final", "final_chi2", "llk", "error", "ssim", "ssim_box")
_GIVEN_RATIO = re.compile(r"(speedup|speed_up|ratio)[_-]?(vs|over|to)?[_-]?(.*)", re.I)


def _quality(node) -> tuple[str, float] | None:
    if isinstance(node, dict):
        for k in _QUALITY:
            if is_number(node.get(k)):
                return k, float(node[k])
    return None


def _bench_time(v) -> float | None:
    """A benchmark timing: a median over repeats (or a bare number), not one run's
    ``seconds`` beside a quality figure — those are compared by :func:`quality_blocks`."""
    if isinstance(v, dict) and is_number(v.get("median_s")):
        return float(v["median_s"])
    if isinstance(v, dict) and isinstance(v.get("time"), dict):
        return _bench_time(v["time"])
    return None


def peer_blocks(suite: str, recs: list[Record], ctx: Context) -> list:
    rows, bars_l, bars_v = [], [], []
    given, given_find = [], []
    for rec in recs:
        # A GPU record's CPU-engine timings ran on the GPU's host: say "GPU host", not "GPU".
        dev = f"GPU host ({rec.gpu_name})" if rec.device == "gpu" else "CPU"
        for path, node in walk(rec.results):
            if not isinstance(node, dict):
                continue
            ours = [k for k in node if is_ours(k) and _bench_time(node[k]) is not None]
            peers = [k for k in node if is_peer(k) and _bench_time(node[k]) is not None]
            # Bare numbers named as times: {"ours_s": 1.2, "cohere_numpy_s": 3.4}.
            ours += [k for k in node if is_ours(k) and is_number(node[k]) and re.search(r"(^|_)s$", str(k))]
            peers += [k for k in node if is_peer(k) and is_number(node[k]) and re.search(r"(^|_)s$", str(k))]
            where = pretty("/".join(path)) or suite
            for o in ours:
                to = _bench_time(node[o]) if not is_number(node[o]) else float(node[o])
                for p in peers:
                    tp = _bench_time(node[p]) if not is_number(node[p]) else float(node[p])
                    if not to or not tp:
                        continue
                    r = tp / to
                    qo, qp = _quality(node[o]), _quality(node[p])
                    qtxt = (f"{fmt_num(qo[1])} vs {fmt_num(qp[1])}" if qo and qp and qo[0] == qp[0]
                            else "—")
                    node_path = "/".join(path + (o,))
                    rows.append([dev, where, pretty(o), pretty(p), Cell(fmt_time(to), "num"),
                                 Cell(fmt_time(tp), "num"),
                                 Cell(f"×{r:.3g}", "improve" if r >= 1 else "regress",
                                      "ours faster" if r >= 1 else "ours slower"),
                                 Cell(qtxt, "num", qo[0] if qo else ""),
                                 change_cell(ctx.node_change(rec, node_path))])
                    label = f"{dev} {where}: {pretty(o)} vs {pretty(p)}"
                    bars_l.append(label)
                    bars_v.append(r)
                    ctx.find("peer", suite, f"{where}: {pretty(o)} vs {pretty(p)} ({dev})", r,
                             f"{fmt_time(to)} vs {fmt_time(tp)}")
            for k, v in node.items():
                m = _GIVEN_RATIO.match(str(k))
                if m and is_number(v) and v > 0 and m.group(3):
                    given.append([dev, where, pretty(k), Cell(f"×{float(v):.3g}", "num"),
                                  change_cell(ctx.change(rec, "/".join(path + (str(k),))))])
                    if is_peer(m.group(3)):
                        given_find.append((f"{where}: {pretty(k)} ({dev})", float(v)))
    if not rows and not given:
        return []
    if not rows:  # only the suite's own ratios: they are the headline then
        for label, v in given_find:
            ctx.find("peer", suite, label, v)
    blocks: list = []
    if rows:
        cols = ["Device", "Benchmark", "Ours", "Peer", "Ours time", "Peer time", "Speed-up of ours",
                "Quality ours vs peer", "Δ ours vs previous"]
        if all(r[7].text == "—" for r in rows):  # no quality beside the timings: drop the column
            cols.pop(7)
            rows = [r[:7] + r[8:] for r in rows]
        blocks.append(Table(cols, rows,
                            "Speed-up = peer time / our time on the same data and schedule "
                            "(green: ours faster). Times are medians after warm-up."))
        png = figures.speedup_bars(bars_l, bars_v, f"{suite}: ours vs peers")
        blocks.append(Figure(ctx.fig_name(f"{suite}-peers"), png,
                             f"{suite}: speed-up of ours over each peer (log scale; right of 1 = ours faster)."))
        gm = math.exp(sum(math.log(v) for v in bars_v) / len(bars_v))
        n = len(bars_v)
        blocks.insert(0, Para(f"Geometric mean speed-up of ours over the peers: ×{gm:.3g} "
                              f"({n} comparison{'s' * (n != 1)}).", "ok" if gm >= 1 else "warn"))
    if given and not rows:  # the suite's own ratios, when there is nothing to compute them from
        blocks.append(Table(["Device", "Benchmark", "Ratio (as reported by the suite)", "Value",
                             "Δ vs previous"], given))
    return blocks


# ----------------------------------------------------------------------------- quality
_QMETRICS = ("chi2", "chi2_over_floor", "max_chi2_over_floor", "llk_free", "chi2_free", "complex_error",
             "phase_error_rad", "ssim_box", "ssim")


def _key(metric: str, metrics) -> object:
    """Ranking key of a quality metric; raw χ² is not ranked when its ratio to the noise
    floor is shown (a lower χ² than the floor is over-fitting, not better)."""
    if metric == "chi2" and "chi2_over_floor" in metrics:
        return None
    return better_key(metric)


def _qdict(v) -> dict[str, float]:
    return {k: float(v[k]) for k in _QMETRICS if isinstance(v, dict) and is_number(v.get(k))}


def _side(node: dict) -> tuple[list[str], list[str]] | None:
    ours = [k for k, v in node.items() if is_ours(k) and _qdict(v)]
    peers = [k for k, v in node.items() if is_peer(k) and _qdict(v)]
    return (ours, peers) if ours and peers else None


def quality_blocks(suite: str, recs: list[Record], ctx: Context) -> list:
    """Figures of quality of ours and the peers side by side (better one in green).

    A dict with ours/peer children holding χ², errors or SSIM becomes a table with a row
    per metric; a list of such dicts (one per test pattern) a table with a row per
    pattern. Speed without quality is no result.
    """
    blocks: list = []
    for rec in recs:
        done: list[tuple[str, ...]] = []
        for path, node in walk(rec.results):
            if any(path[:len(t)] == t for t in done):
                continue
            if isinstance(node, list) and node and all(isinstance(e, dict) and _side(e) for e in node):
                done.append(path)
                ours, peers = _side(node[0])
                metrics = [m for m in _QMETRICS if all(m in _qdict(e.get(w)) for e in node for w in ours + peers)]
                if not metrics:
                    continue
                cols = ["#"] + [f"{pretty(m)}: {pretty(w)}" for m in metrics for w in ours + peers]
                rows = []
                for i, e in enumerate(node):
                    label = next((f"{e[k]:g}" if is_number(e[k]) else str(e[k]) for k in ("pattern", "index", "crystal")
                                  if k in e), str(i))
                    row = [label]
                    for m in metrics:
                        vals = [_qdict(e[w])[m] for w in ours + peers]
                        key = _key(m, metrics)
                        best = max(vals, key=key) if key else None
                        row += [Cell(fmt_num(x), "improve" if best is not None and x == best and len(set(vals)) > 1
                                     else "num") for x in vals]
                    rows.append(row)
                blocks.append(Table(cols, rows, f"{rec.device.upper()} · {pretty('/'.join(path))}: quality "
                                                f"per pattern, ours vs peer (green = better)."))
            elif isinstance(node, dict) and _side(node):
                done.append(path)
                ours, peers = _side(node)
                who = ours + peers
                metrics = [m for m in _QMETRICS if any(m in _qdict(node[w]) for w in who)]
                rows = []
                for m in metrics:
                    vals = [_qdict(node[w]).get(m) for w in who]
                    present = [x for x in vals if x is not None]
                    key = _key(m, metrics)
                    best = max(present, key=key) if key and present else None
                    rows.append([pretty(m)] + [Cell(fmt_num(x), "improve" if best is not None and x == best
                                                    and len(set(present)) > 1 else "num") for x in vals]
                                + [BETTER_WHEN.get(direction(m), "") if key else "judged by χ²/floor"])
                blocks.append(Table(["Metric"] + [pretty(w) for w in who] + ["Better when"], rows,
                                    f"{rec.device.upper()} · {pretty('/'.join(path)) or suite}: quality, "
                                    f"ours vs peer (green = better)."))
    return blocks
