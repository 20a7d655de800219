"""Formatting for the report's tables: numbers, times, relative changes, labels.

One place decides how a figure reads (3 significant digits, a time in s/ms/µs, "+12.5 %",
"χ²" for ``chi2``) so that every section and the Markdown twin say it the same way.
"""
from __future__ import annotations

import math

from ..compare import Change, is_number
from ..document import Cell

__all__ = ["pretty", "fmt_num", "fmt_time", "fmt_rel", "change_cell"]


_LABELS = {"chi2": "χ²", "chi2_over_floor": "χ²/floor", "max_chi2_over_floor": "max χ²/floor",
           "ssim_box": "SSIM (box)", "ssim": "SSIM", "complex_error": "complex error",
           "phase_error_rad": "phase error (rad)", "llk_free": "LLK free", "chi2_free": "χ² free"}


def pretty(key: str) -> str:
    """``"cohere_numpy"`` → ``"cohere numpy"``, ``"chi2"`` → ``"χ²"``: readable, recognisable."""
    return _LABELS.get(str(key), str(key).replace("_", " ").strip())


def fmt_num(v: float | None, digits: int = 3) -> str:
    if v is None or not is_number(v):
        return "—"
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.{digits - 1}e}"
    if float(v).is_integer() and a < 1e5:
        return f"{int(v):,}"
    return f"{v:,.{max(digits - 1 - int(math.floor(math.log10(a))), 0)}f}"


def fmt_time(s: float | None) -> str:
    """Seconds with a unit a human reads at a glance (s, ms, µs)."""
    if s is None or not is_number(s):
        return "—"
    if s >= 100:
        return f"{s:,.0f} s"
    if s >= 1:
        return f"{s:.3g} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} µs"


def fmt_rel(rel: float | None) -> str:
    if rel is None:
        return "—"
    return f"{rel * 100:+.1f} %"


def change_cell(ch: Change | None) -> Cell:
    """The Δ-vs-previous cell: red ▲/▼ "regression", green "improvement", else plain."""
    if ch is None or ch.prev is None or ch.now is None:
        return Cell("new" if ch is not None and ch.status == "new" else "—", "muted")
    text = fmt_rel(ch.rel)
    if ch.status == "regression":
        arrow = "▲" if (ch.rel or 0) > 0 else "▼"
        return Cell(f"{arrow} {text} regression", "regress",
                    f"worse than the previous run beyond the threshold (was {fmt_num(ch.prev)})")
    if ch.status == "improvement":
        arrow = "▲" if (ch.rel or 0) > 0 else "▼"
        return Cell(f"{arrow} {text} better", "improve", f"was {fmt_num(ch.prev)}")
    return Cell(text, "num", f"was {fmt_num(ch.prev)}")
