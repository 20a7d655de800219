"""The report's sections: which views each known suite gets, and the generic fallback.

A *view* is a function ``(suite, records, ctx) -> [blocks]`` that searches the records
for the structure it draws and returns nothing when it finds none (see
:mod:`.find`). Known suites are matched by name (``phasing``, ``inference``,
``simulate``, ``training``, ``scaling``, ``evaluate``/``evaluation``, ``refine…``); any
other suite gets the generic table of its numeric leaves. A view that raises is
reported on the page (and on stderr) instead of bringing the report down: a half-new
suite must never cost the morning its report.
"""
from __future__ import annotations

import sys
import traceback
from typing import Callable

from ..context import Context
from ..document import Details, Para, Section, Table
from ..records import Record
from .evaluation import evaluation_blocks
from .history import history_blocks
from .latency import gflops_blocks, latency_blocks
from .leaves import changes_blocks, error_notes, key_figures, leaf_table
from .methods import method_blocks
from .methods import refinement_blocks
from .peers import peer_blocks, quality_blocks
from .scaling import scaling_blocks
from .summary import summary_cards

__all__ = ["KNOWN", "suite_section", "summary_cards", "changes_blocks", "match_suite"]

View = Callable[[str, list, Context], list]


def _pattern_latency(suite, recs, ctx):
    return latency_blocks(suite, recs, ctx, what="pattern")


# (name fragment, section title, views): the first fragment contained in a suite's name wins.
KNOWN: list[tuple[str, str, list[View]]] = [
    ("scal", "Scaling across ranks and nodes", [scaling_blocks]),
    ("phasing", "Iterative phasing: ours vs the peers", [peer_blocks, quality_blocks, refinement_blocks,
                                                         method_blocks, _pattern_latency, history_blocks]),
    ("refin", "Refinement: network prior + ER vs phasing alone", [refinement_blocks, method_blocks, peer_blocks,
                                                                  quality_blocks, history_blocks]),
    ("infer", "Network inference: latency and throughput, CPU vs GPU", [_pattern_latency, gflops_blocks, peer_blocks,
                                                                        quality_blocks, scaling_blocks]),
    ("predict", "Prediction: latency, CPU vs GPU", [_pattern_latency, peer_blocks]),
    ("simul", "Simulation throughput and scaling", [key_figures, scaling_blocks, peer_blocks]),
    ("train", "Training throughput per engine and rank count", [key_figures, scaling_blocks, _pattern_latency]),
    ("eval", "Quality over the test set", [evaluation_blocks, history_blocks]),
]


def match_suite(name: str) -> tuple[str, list[View]] | None:
    low = name.lower()
    for frag, title, views in KNOWN:
        if frag in low:
            return title, views
    return None


def _safe(view: View, suite: str, recs: list[Record], ctx: Context) -> list:
    try:
        return view(suite, recs, ctx)
    except Exception as e:  # noqa: BLE001 - one broken view must not sink the report
        name = getattr(view, "__name__", "view")
        print(f"autophase report: warning: {suite}: {name} failed: {e!r}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return [Para(f"{suite}: the {name.replace('_', ' ')} view could not be drawn ({type(e).__name__}: {e}); "
                     f"the figures are in the table below.", "warn")]


def suite_section(suite: str, recs: list[Record], ctx: Context) -> Section:
    """A section for one suite (all its devices): its views, then every figure it holds."""
    known = match_suite(suite)
    anchor = "suite-" + "".join(c if c.isalnum() else "-" for c in suite.lower())
    devices = ", ".join(sorted({r.device.upper() for r in recs}))
    errors = _safe(error_notes, suite, recs, ctx)
    if known is None:
        blocks = errors + [Para(f"Suite '{suite}' ({devices}) has no dedicated view yet; its numeric results:",
                                "note")]
        blocks += _safe(leaf_table, suite, recs, ctx)
        return Section(f"{suite} ({devices})", anchor, blocks)
    title, views = known
    blocks: list = list(errors)
    for v in views:
        blocks += _safe(v, suite, recs, ctx)
    leaves = _safe(leaf_table, suite, recs, ctx)
    if len(blocks) == len(errors):
        blocks.append(Para(f"No structure this section knows how to draw was found in the {suite} "
                           f"record; its numeric results follow.", "note"))
    if not (len(leaves) == 1 and isinstance(leaves[0], Para)):
        n = sum(len(b.rows) for b in leaves if isinstance(b, Table))
        blocks.append(Details(f"All {n} numbers of {suite}, with the previous run", leaves))
    return Section(f"{title} ({suite}, {devices})", anchor, blocks)
