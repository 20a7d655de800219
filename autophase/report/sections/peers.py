"""Ours against the peers: metrics whose ``params["impl"]`` names the implementation.

Metrics of one suite and device with the same name and the same params apart from
``impl`` measure the same thing; ours is ``impl == "autophase"``. For each peer the
advantage of ours is

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
from ..document import Cell, Figure, Para, Table
from ..records import Record
from .fmt import change_cell, fmt_params, fmt_value

__all__ = ["peer_blocks", "advantage"]


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


def _is_speed(unit: str) -> bool:
    return unit == "s" or unit.endswith("/s")


def peer_blocks(suite: str, recs: list[Record], ctx: Context) -> list:
    rows, bars = [], {"speed": ([], []), "quality": ([], [])}
    for rec in recs:
        groups: dict[tuple, dict[str, object]] = {}
        for m in rec.result.metrics:
            impl = m.params.get("impl")
            if impl is not None:
                rest = tuple(sorted((k, v) for k, v in m.params.items() if k != "impl"))
                groups.setdefault((m.name, rest), {})[str(impl)] = m
        for (name, _), by_impl in groups.items():
            ours = by_impl.get(OURS)
            if ours is None:
                continue
            for impl, peer in by_impl.items():
                if impl == OURS:
                    continue
                adv = advantage(ours.better, ours.value, peer.value)
                kind = "speed" if _is_speed(ours.unit) else "quality"
                where = (ours.label or name) + (f" ({p})" if (p := fmt_params(ours.params, ("impl",))) else "")
                dev = rec.device.upper()
                rows.append([dev, where, impl, Cell(fmt_value(ours.value, ours.unit), "num"),
                             Cell(fmt_value(peer.value, peer.unit), "num"),
                             Cell("—" if adv is None else f"×{adv:.3g}",
                                  "muted" if adv is None else "improve" if adv >= 1 else "regress",
                                  "" if adv is None else "ours better" if adv >= 1 else "ours worse"),
                             kind, change_cell(ctx.change(rec, ours))])
                if adv is not None:
                    bars[kind][0].append(f"{dev} {where} vs {impl}")
                    bars[kind][1].append(adv)
                    if kind == "speed":
                        ctx.find("peer", suite, f"{where} vs {impl} ({dev})", adv,
                                 f"{fmt_value(ours.value, ours.unit)} vs {fmt_value(peer.value, peer.unit)}")
    if not rows:
        return []
    blocks: list = []
    speed = bars["speed"][1]
    if speed:
        gm = math.exp(sum(map(math.log, speed)) / len(speed))
        blocks.append(Para(f"Geometric mean speed-up of ours over the peers: ×{gm:.3g} "
                           f"({len(speed)} comparison{'s' * (len(speed) != 1)}).", "ok" if gm >= 1 else "warn"))
    blocks.append(Table(["Device", "Figure", "Peer", "Ours", "Peer's", "Ours better by", "Kind", "Δ ours vs previous"],
                        rows, "Same data and schedule; ×r > 1 (green): ours better — a shorter time, a higher "
                              "rate or SSIM, a lower error, χ²/floor closer to 1."))
    for kind, (labels, vals) in bars.items():
        if labels:
            xlabel = "speed-up of ours (peer time / our time)" if kind == "speed" else \
                "advantage of ours in quality (×, > 1: ours better)"
            png = figures.speedup_bars(labels, vals, f"{suite}: ours vs peers, {kind}", xlabel=xlabel)
            blocks.append(Figure(ctx.fig_name(f"{suite}-peers-{kind}"), png,
                                 f"{suite}: {kind} of ours against each peer (log scale; right of 1 = ours better)."))
    return blocks
