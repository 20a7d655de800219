"""How a figure reads: a value in its unit, a time in s/ms/µs, a relative change, params.

One place decides (3 significant digits, "×3.3" for a ratio, "+12.5 %") so that every
section and the Markdown twin say it the same way.
"""
from __future__ import annotations

import math
from typing import Mapping

from ..compare import Change
from ..document import Cell

__all__ = ["geomean", "fmt_num", "fmt_time", "fmt_value", "fmt_rel", "fmt_params", "change_cell"]


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def geomean(values) -> float:
    """Geometric mean of positive ``values`` (exactly the value when there is one)."""
    vs = list(values)
    return vs[0] if len(vs) == 1 else math.exp(sum(map(math.log, vs)) / len(vs))


def fmt_num(v: float | None, digits: int = 3) -> str:
    if not _finite(v):
        return "—"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.{digits - 1}e}"
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:,.{max(digits - 1 - int(math.floor(math.log10(a))), 0)}f}"


def fmt_time(s: float | None) -> str:
    """Seconds with a unit a human reads at a glance (s, ms, µs)."""
    if not _finite(s):
        return "—"
    if abs(s) >= 100:
        return f"{s:,.0f} s"
    if abs(s) >= 1 or s == 0:
        return f"{s:.3g} s"
    if abs(s) >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} µs"


def fmt_value(v: float | None, unit: str) -> str:
    """``v`` in ``unit`` (the schema's unit text): "s" as a time, "x" as "×v", "1" bare."""
    if not _finite(v):
        return "—"
    if unit == "s":
        return fmt_time(v)
    if unit == "x":
        return f"×{fmt_num(v)}"
    if unit in ("", "1"):
        return fmt_num(v)
    if unit == "%":
        return f"{fmt_num(v)} %"
    return f"{fmt_num(v)} {unit}"


def fmt_rel(rel: float | None) -> str:
    return "—" if rel is None else f"{rel * 100:+.1f} %"


def fmt_params(params: Mapping[str, object], skip: tuple[str, ...] = ()) -> str:
    """``{"impl": "cohere", "batch": 8}`` → ``"impl cohere, batch 8"`` (insertion order)."""
    return ", ".join(f"{k} {v}" for k, v in params.items() if k not in skip)


def change_cell(ch: Change | None) -> Cell:
    """The Δ-vs-previous cell: red "regression", green "better", else plain; the text says
    it too (▲/▼ and a word) for the Markdown twin and colour-blind readers."""
    if ch is None or ch.prev is None or ch.now is None:
        return Cell("new" if ch is not None and ch.status == "new" else "—", "muted")
    text = fmt_rel(ch.rel)
    arrow = "▲" if (ch.rel or 0) > 0 else "▼"
    was = f"was {fmt_value(ch.prev, ch.unit)}"
    if ch.status == "regression":
        return Cell(f"{arrow} {text} regression", "regress", f"worse than the previous run beyond the threshold ({was})")
    if ch.status == "improvement":
        return Cell(f"{arrow} {text} better", "improve", was)
    return Cell(text, "num", was)
