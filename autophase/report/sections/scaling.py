"""Scaling: speed-up and parallel efficiency against ranks/nodes, with the ideal line.

Definitions (HPC-NOTES): strong scaling S = T(N₀)/T(N), E = S/(N/N₀); weak scaling with
a throughput, E = thru(N)/((N/N₀)·thru(N₀)), and with a time (same work per rank),
E = T(N₀)/T(N). When the suite reports ``speedup``/``efficiency`` itself those are used
as given. The x axis is log₂ so that doubling steps are evenly spaced.
"""
from __future__ import annotations

from .. import figures
from ..context import Context
from ..document import Cell, Figure, Table
from ..records import Record
from .find import Series, scaling_series
from .fmt import fmt_num, fmt_time

__all__ = ["scaling_blocks"]


def _measured(s: Series, v: float | None) -> str:
    if v is None:
        return "—"
    return fmt_time(v) if s.raw_name == "s" else fmt_num(v) + (f" {s.raw_name}" if s.raw_name else "")


def scaling_blocks(suite: str, recs: list[Record], ctx: Context) -> list:
    blocks: list = []
    curves, axes, rows = {}, set(), []
    for rec in recs:
        for s in scaling_series(rec.results, weak_hint="weak" in suite.lower()):
            label = s.label if s.label not in ("points", "series", "") else suite
            label = f"{label} ({rec.device.upper()})" if len(recs) > 1 else label
            curves[label] = (list(s.N), list(s.speedup), list(s.efficiency))
            axes.add(s.axis)
            for n, sp, e, raw in zip(s.N, s.speedup, s.efficiency, s.raw + (None,) * len(s.N)):
                cls = "num" if e >= 0.7 else "regress"
                rows.append([label, fmt_num(n), Cell(_measured(s, raw), "num"), Cell(f"{sp:.3g}", "num"),
                             Cell(f"{e:.0%}", cls, "below 70 % efficiency" if cls == "regress" else ""),
                             s.basis])
            short = label.replace(suite, "").strip(" /")
            ctx.find("scaling", suite, f"{short + ', ' if short else ''}{fmt_num(s.N[-1])} {s.axis}",
                     s.efficiency[-1],
                     f"speed-up {s.speedup[-1]:.3g} of ideal {s.N[-1] / s.N[0]:g}")
    if not curves:
        return []
    blocks.append(Table(["Series", "N", "Measured", "Speed-up", "Efficiency", "Basis"], rows,
                        "Speed-up and efficiency relative to the smallest N of each series; "
                        "efficiency below 70 % is shaded."))
    xlabel = " / ".join(sorted(axes))
    png = figures.scaling_curves(curves, f"{xlabel} (log₂)", suite)
    blocks.append(Figure(ctx.fig_name(f"{suite}-scaling"), png,
                         f"{suite}: speed-up (left, log₂) and parallel efficiency (right) against "
                         f"{xlabel}; dashed = ideal."))
    return blocks
