"""Error against iteration, phasing alone (dashed) vs refinement from the NN (solid).

The paper's Fig. 4. A history is a list of numbers (one error per iteration) found
under a key that says so (``history``, ``chi2_history``, ``errors``, ``curve``,
``per_iteration``), or a list of such lists (one per crystal), or a dict
``{"iteration": [...], "chi2": [...]}`` under such a key. The method of a curve is read
from its key path: ``refin`` → refinement (solid), anything else → phasing (dashed).
At most :data:`MAX_CURVES` curves per method are drawn so that the figure stays
readable (the paper shows five crystals).
"""
from __future__ import annotations

import re
from typing import Any

from .. import figures
from ..compare import is_number
from ..context import Context
from ..document import Figure
from ..records import Record
from .find import walk
from .fmt import pretty

__all__ = ["history_curves", "history_blocks", "MAX_CURVES"]

MAX_CURVES = 5
_HIST = re.compile(r"(history|histories|per_iter|curve|^errors$|trace)", re.I)


def _numlist(v: Any) -> bool:
    return isinstance(v, list) and len(v) >= 2 and all(is_number(x) for x in v)


def _kind(path: tuple[str, ...]) -> str:
    low = [p.lower() for p in path]
    return "nn_refine" if any("refin" in p for p in low) else "phasing"


def _crystal(path: tuple[str, ...]) -> str:
    for p in path:
        if p.isdigit() or re.match(r"^(crystal|index|id)=?\d+$", p):
            return f"#{re.sub(r'[^0-9]', '', p)}"
    return ""


def history_curves(results: Any) -> list[tuple[str, list[float], list[float], str]]:
    """(label "crystal:method", iterations, errors, kind) for every history found."""
    curves: list[tuple[str, list[float], list[float], str]] = []
    seen: set[int] = set()
    for path, node in walk(results):
        if not path or not any(_HIST.search(p) for p in path):
            continue
        if id(node) in seen:
            continue
        kind = _kind(path)
        method = ("refinement from degraded truth" if any("degraded" in p.lower() for p in path) else
                  "refinement") if kind == "nn_refine" else \
            next((pretty(p) for p in path if not _HIST.search(p) and not p.isdigit()
                  and "=" not in p), "phasing")
        if isinstance(node, dict):
            it = next((node[k] for k in ("iteration", "iterations", "iter", "x") if _numlist(node.get(k))), None)
            for k, v in node.items():
                if _numlist(v) and v is not it and k not in ("iteration", "iterations", "iter", "x"):
                    x = it if it is not None and len(it) == len(v) else list(range(len(v)))
                    seen.add(id(v))
                    crystal = _crystal(path)
                    curves.append((f"{crystal}:{method}", list(x), list(v), kind))
                elif isinstance(v, list) and v and all(_numlist(e) for e in v):
                    seen.add(id(v))
                    for i, e in enumerate(v):
                        curves.append((f"#{i}:{method}", list(range(len(e))), list(e), kind))
        elif isinstance(node, list):
            if _numlist(node):
                curves.append((f"{_crystal(path)}:{method}", list(range(len(node))), list(node), kind))
            elif node and all(_numlist(e) for e in node):
                seen.add(id(node))
                for i, e in enumerate(node):
                    curves.append((f"#{i}:{method}", list(range(len(e))), list(e), kind))
    # numeric lists inside dicts are reached twice (as a dict's value and as a node)
    out, keys = [], set()
    for c in curves:
        k = (c[0], tuple(c[2]))
        if k not in keys:
            keys.add(k)
            out.append(c)
    return out


def history_blocks(suite: str, recs: list[Record], ctx: Context) -> list:
    blocks: list = []
    for rec in recs:
        curves = history_curves(rec.results)
        if not curves:
            continue
        kept, count = [], {}
        for c in curves:
            count[c[3]] = count.get(c[3], 0) + 1
            if count[c[3]] <= MAX_CURVES:
                kept.append(c)
        ylabel = "LLK" if any("llk" in c[0].lower() for c in kept) else "χ²"
        png = figures.error_vs_iteration(kept, f"{suite} ({rec.device.upper()}): error against iteration",
                                         ylabel=ylabel)
        shown = ", ".join(f"{n} {k}" for k, n in count.items())
        blocks.append(Figure(ctx.fig_name(f"{suite}-{rec.device}-history"), png,
                             f"{ylabel} against iteration: dashed = phasing from a random start, solid = "
                             f"refinement from the network's prediction, or from a degraded truth where the curve says so "
                             f"(like the paper's Fig. 4); "
                             f"curves found: {shown}" + (f", first {MAX_CURVES} of each drawn." if
                                                         max(count.values()) > MAX_CURVES else ".")))
    return blocks
