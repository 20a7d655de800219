"""The report's sections: the title each known suite gets, and the views every suite gets.

Every view reads the schema's fields by name and returns nothing when the records hold
none of what it draws: metric tables by ``group`` (:mod:`.tables`), ours vs the peers
(metrics with ``params["impl"]``, :mod:`.peers`), series by ``kind`` (scaling, batch,
curves: :mod:`.series`) and per-item distributions (:mod:`.distributions`). Known suites
are matched by a fragment of their name for their section title; any other suite is
titled by its name. A view that raises is reported on the page (and on stderr) instead of
bringing the report down: a half-new suite must never cost the morning its report.
"""
from __future__ import annotations

import sys
import traceback
from typing import Callable

from ..context import Context
from ..document import Para, Section
from ..records import Record
from .distributions import distribution_blocks
from .peers import peer_blocks
from .series import batch_blocks, curve_blocks, scaling_blocks
from .summary import summary_cards
from .tables import changes_blocks, metric_tables

__all__ = ["KNOWN", "VIEWS", "suite_section", "summary_cards", "changes_blocks", "match_suite"]

View = Callable[[str, list, Context], list]

# (name fragment, section title): the first fragment contained in a suite's name wins.
KNOWN: list[tuple[str, str]] = [
    ("scal", "Scaling across ranks and nodes"),
    ("phasing", "Iterative phasing: ours vs the peers"),
    ("refin", "Refinement: network prior + ER vs phasing alone"),
    ("infer", "Network inference: latency and throughput, CPU vs GPU"),
    ("predict", "Prediction: latency, CPU vs GPU"),
    ("simul", "Simulation throughput and scaling"),
    ("train", "Training throughput per engine and rank count"),
    ("eval", "Quality over the test set"),
]

VIEWS: list[View] = [peer_blocks, scaling_blocks, batch_blocks, distribution_blocks, curve_blocks, metric_tables]


def match_suite(name: str) -> str | None:
    low = name.lower()
    return next((title for frag, title in KNOWN if frag in low), None)


def _safe(view: View, suite: str, recs: list[Record], ctx: Context) -> list:
    try:
        return view(suite, recs, ctx)
    except Exception as e:  # noqa: BLE001 - one broken view must not sink the report
        name = getattr(view, "__name__", "view")
        print(f"autophase report: warning: {suite}: {name} failed: {e!r}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return [Para(f"{suite}: the {name.replace('_', ' ')} view could not be drawn ({type(e).__name__}: {e}).",
                     "warn")]


def suite_section(suite: str, recs: list[Record], ctx: Context) -> Section:
    """A section for one suite (all its devices): its notes, then every view."""
    title = match_suite(suite)
    anchor = "suite-" + "".join(c if c.isalnum() else "-" for c in suite.lower())
    devices = ", ".join(sorted({r.device.upper() for r in recs}))
    blocks: list = [Para(f"{r.device.upper()}: {n}", "note") for r in recs for n in r.result.notes]
    for v in VIEWS:
        blocks += _safe(v, suite, recs, ctx)
    if not any(r.result.metrics or r.result.series or r.result.distributions for r in recs):
        blocks.append(Para(f"The {suite} record holds no metrics, series or distributions.", "warn"))
    return Section(f"{title} ({suite}, {devices})" if title else f"{suite} ({devices})", anchor, blocks)
