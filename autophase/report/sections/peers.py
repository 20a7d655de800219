"""Ours against the peers: metrics whose ``params["impl"]`` names the implementation.

Ours is ``impl == "autophase"``. A metric of ours and one of a peer (same record, same
name) measure the same thing when they agree on every *workload* param either carries
(:data:`WORKLOAD`: the data source and split, device, batch, ranks, nodes, dtype, cold or
warm process); every other param (``engine``, ``method``, a setting) describes that
side's variant and is shown in its label. For each such pair the advantage of ours is

* better ``"lower"`` (a time, an error): peer / ours;
* better ``"higher"`` (a rate, SSIM): ours / peer;
* better ``"closest-to-1"``: |ln peer| / |ln ours|;

so that > 1 always means ours is better. A metric in seconds or per second is a *speed*
comparison (its bars: "speed-up of ours"), anything else *quality* (a faster solver that
converges worse is no win, so both are shown).
"""
from __future__ import annotations

import math

from .. import figures
from ..compare import OURS
from ..context import Context
from ..document import Cell, Details, Figure, Para, Table
from ..records import Record
from .fmt import change_cell, fmt_params, fmt_value, geomean

__all__ = ["peer_blocks", "advantage", "WORKLOAD", "pairs"]

# Params that say what was measured (the workload), not whose code or which variant ran.
WORKLOAD = ("source", "split", "device", "batch", "ranks", "nodes", "dtype", "process")
MAX_BARS = 30


def advantage(better: str, ours: float | None, peer: float | None) -> float | None:
    """How many times better ours is than the peer (> 1: ours better; None: no direction)."""
    if ours is None or peer is None or ours <= 0 or peer <= 0:
        return None
    if better == "lower":
        return peer / ours
    if better == "higher":
        return ours / peer
    if better == "closest-to-1" and ours != 1:
        return abs(math.log(peer)) / abs(math.log(ours))
    return None


def pairs(metrics) -> list[tuple[object, object]]:
    """(ours, peer) metric pairs of one record: same name, same workload (see module doc)."""
    ours = [m for m in metrics if m.params.get("impl") == OURS]
    peers = [m for m in metrics if m.params.get("impl") not in (None, OURS)]
    out = []
    for o in ours:
        for p in peers:
            if p.name == o.name and all(o.params[k] == p.params[k] for k in WORKLOAD
                                        if k in o.params and k in p.params):
                out.append((o, p))
    return out


def _variant(m, skip=("impl",)) -> str:
    return fmt_params({k: v for k, v in m.params.items() if k not in WORKLOAD}, skip)


def _is_speed(unit: str) -> bool:
    return unit == "s" or unit.endswith("/s")


def peer_blocks(suite: str, recs: list[Record], ctx: Context) -> list:
    rows, bars = [], {"speed": ([], []), "quality": ([], [])}
    for rec in recs:
        dev = rec.device.upper()
        for ours, peer in pairs(rec.result.metrics):
            adv = advantage(ours.better, ours.value, peer.value)
            kind = "speed" if _is_speed(ours.unit) else "quality"
            work = fmt_params({k: v for k, v in {**peer.params, **ours.params}.items() if k in WORKLOAD})
            what = (ours.label or ours.name) + (f" ({work})" if work else "")
            mine = "ours" + (f" ({v})" if (v := _variant(ours)) else "")
            theirs = str(peer.params["impl"]) + (f" ({v})" if (v := _variant(peer)) else "")
            rows.append([dev, what, mine, theirs, Cell(fmt_value(ours.value, ours.unit), "num"),
                         Cell(fmt_value(peer.value, peer.unit), "num"),
                         Cell("—" if adv is None else f"×{adv:.3g}",
                              "muted" if adv is None else "improve" if adv >= 1 else "regress",
                              "" if adv is None else "ours better" if adv >= 1 else "ours worse"),
                         kind, change_cell(ctx.change(rec, ours))])
            if adv is not None:
                bars[kind][0].append(f"{what}: {mine} vs {theirs}" + (f" ({dev})" if len(recs) > 1 else ""))
                bars[kind][1].append(adv)
                if kind == "speed":
                    ctx.find("peer", suite, f"{what}: {mine} vs {theirs} ({dev})", adv,
                             f"{fmt_value(ours.value, ours.unit)} vs {fmt_value(peer.value, peer.unit)}")
    if not rows:
        return []
    blocks: list = []
    speed = bars["speed"][1]
    if speed:
        gm = geomean(speed)
        blocks.append(Para(f"Geometric mean speed-up of ours over the peers: ×{gm:.3g} "
                           f"({len(speed)} comparison{'s' * (len(speed) != 1)}).", "ok" if gm >= 1 else "warn"))
    table = Table(["Device", "Figure (workload)", "Ours", "Peer", "Ours'", "Peer's", "Ours better by", "Kind",
                   "Δ ours vs previous"], rows, "Same data and workload; ×r > 1 (green): ours better — a shorter "
                                                "time, a higher rate or SSIM, a lower error, χ²/floor closer to 1.")
    blocks.append(table if len(rows) <= MAX_BARS else Details(f"All {len(rows)} comparisons of ours with the peers",
                                                              [table]))
    for kind, (labels, vals) in bars.items():
        if len(labels) > MAX_BARS:  # keep the figure readable: the widest margins either way
            order = sorted(range(len(vals)), key=lambda i: -abs(math.log(vals[i])))[:MAX_BARS]
            labels, vals = [labels[i] for i in sorted(order)], [vals[i] for i in sorted(order)]
            blocks.append(Para(f"{kind.capitalize()} figure: the {MAX_BARS} comparisons with the widest margin "
                               f"either way; all are in the table.", "note"))
        if labels:
            xlabel = "speed-up of ours (peer time / our time)" if kind == "speed" else \
                "advantage of ours in quality (×, > 1: ours better)"
            png = figures.speedup_bars(labels, vals, f"{suite}: ours vs peers, {kind}", xlabel=xlabel)
            blocks.append(Figure(ctx.fig_name(f"{suite}-peers-{kind}"), png,
                                 f"{suite}: {kind} of ours against each peer (log scale; right of 1 = ours better)."))
    return blocks
