"""Per-item values (:class:`~autophase.results.Distribution`): histograms and a table of
medians, one line per method or data source (the paper's Fig. 2a–b: χ² and SSIM over
the test set).

Distributions of one record with the same ``name`` and data ``source`` share a figure;
each is labelled by its ``params`` (``method``, ``source``, …) or its ``label``. Bins are
log-spaced when every value is positive and they span more than two decades (χ² does).
A line of fewer than :data:`MIN_ITEMS` values is in the table only.
"""
from __future__ import annotations

import numpy as np

from .. import figures
from ..compare import BETTER_WHEN
from ..context import Context
from ..document import Cell, Figure, Table
from ..records import Record
from ...results import Distribution
from .fmt import fmt_value

__all__ = ["distribution_blocks", "MIN_ITEMS"]

MIN_ITEMS = 3


def _who(d: Distribution) -> str:
    return " · ".join(str(v) for v in d.params.values()) or d.label or d.name


def distribution_blocks(suite: str, recs: list[Record], ctx: Context) -> list:
    blocks: list = []
    for rec in recs:
        by_name: dict[tuple[str, str], list[Distribution]] = {}
        for d in rec.result.distributions:
            by_name.setdefault((d.name, str(d.params.get("source", ""))), []).append(d)
        rows, figs = [], []
        for (name, source), ds in by_name.items():
            data = {}
            for d in ds:
                v = np.asarray([x for x in d.values if x is not None], float)
                v = v[np.isfinite(v)]
                if v.size >= MIN_ITEMS:
                    data[_who(d)] = v
                missing = len(d.values) - v.size
                rows.append([d.label or name, _who(d), Cell(str(v.size) + (f" (+{missing} failed)" if missing else ""),
                                                             "num"),
                             *(Cell(fmt_value(float(f(v)) if v.size else None, d.unit), "num")
                               for f in (np.median, np.mean, lambda a: np.percentile(a, 90))),
                             BETTER_WHEN[d.better]])
            allv = np.concatenate([v for v in data.values() if v.size] or [np.zeros(0)])
            if not allv.size:
                continue
            log_x = bool(allv.min() > 0 and allv.max() / allv.min() > 100)
            unit = ds[0].unit
            xlabel = (ds[0].label or name) + (f" ({unit})" if unit not in ("", "1") else "")
            png = figures.histograms({k: list(v) for k, v in data.items()}, xlabel,
                                     f"{suite} ({rec.device.upper()}): {ds[0].label or name}"
                                     + (f", {source}" if source else ""), log_x=log_x)
            per = "/".join(sorted({k for d in ds for k in d.params})) or "series"
            figs.append(Figure(ctx.fig_name(f"{suite}-{rec.device}-{name}-{source}-hist".replace("--", "-")), png,
                               f"Histogram of {ds[0].label or name} per item, one line per {per}"
                               + (" (log bins)." if log_x else ".")))
        if rows:
            blocks.append(Table(
                ["Quantity", "Method / source", "Items", "Median", "Mean", "90th percentile", "Better when"], rows,
                f"{rec.device.upper()}: one value per item (crystal, pattern); failed items are left out."))
        blocks += figs
    return blocks
