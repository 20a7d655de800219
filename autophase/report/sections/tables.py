"""Metric tables (one per ``group``) and the "changes since the previous run" list.

Each row is one :class:`~autophase.results.Metric`, read by field: ``value`` in its
``unit``, the spread (min–max) and number of its ``samples``, its ``target`` (✓ met /
✗ missed, with the target's own text), and its Δ against the same metric (same name and
params) of the previous run of the same suite and device.
"""
from __future__ import annotations

from ..compare import BETTER_WHEN
from ..context import Context
from ..document import Cell, Para, Table
from ..records import Record
from .fmt import change_cell, fmt_params, fmt_value

__all__ = ["metric_tables", "changes_blocks", "target_cell"]

MAX_ROWS = 400


def target_cell(m) -> Cell:
    if m.target is None:
        return Cell("", "muted")
    t = m.target
    ok = t.passes(m.value)
    line = f"{t.op} {fmt_value(t.threshold, m.unit)}"
    text = f"{t.text} ({line})" if t.text else line
    if ok is None:
        return Cell(f"– {text}", "muted", "not measured")
    return Cell(f"{'✓' if ok else '✗'} {text}", "improve" if ok else "regress",
                "target met" if ok else "target missed")


def metric_tables(suite: str, recs: list[Record], ctx: Context) -> list:
    """One table per metric group, rows in the records' order (devices side by side)."""
    groups: dict[str, list] = {}
    for rec in recs:
        for m in rec.result.metrics:
            spread = m.spread
            value = fmt_value(m.value, m.unit) if m.value is not None else f"not measured{': ' + m.note if m.note else ''}"
            name = m.label or m.name
            params = fmt_params(m.params)
            groups.setdefault(m.group, []).append([
                rec.device.upper(), Cell(name + (f" ({params})" if params else ""), "", m.name),
                Cell(value, "num" if m.value is not None else "muted", BETTER_WHEN[m.better]),
                Cell(f"{fmt_value(spread[0], m.unit)} – {fmt_value(spread[1], m.unit)}" if spread else "—", "num"),
                Cell(str(m.n) if m.n else "—", "num"), target_cell(m), change_cell(ctx.change(rec, m))])
    blocks: list = []
    for group, rows in groups.items():
        cols = ["Device", "Metric", "Value", "Spread (min – max)", "n", "Target", "Δ vs previous"]
        if not any(r[5].text for r in rows):  # no targets in this group: no empty column
            cols.pop(5)
            rows = [r[:5] + r[6:] for r in rows]
        blocks.append(Table(cols, rows[:MAX_ROWS], group or f"{suite}: figures"))
    return blocks


def changes_blocks(ctx: Context, prev_label: str | None) -> list:
    """Every directional metric against the previous run, regressions (worst first) first."""
    if not ctx.previous:
        return [Para("No previous report to compare with: this is the first run here (or "
                     "pass --previous DIR_OR_JSON). Changes will appear from the next run on.", "note")]
    chs = [c for c in ctx.all_changes() if c.status in ("regression", "improvement", "same")]
    reg = sorted((c for c in chs if c.status == "regression"), key=lambda c: -c.severity)
    imp = sorted((c for c in chs if c.status == "improvement"), key=lambda c: c.severity)
    same = sorted((c for c in chs if c.status == "same"), key=lambda c: (c.suite, c.device, c.label))
    blocks: list = [Para(f"Compared with {prev_label}. Threshold ±{ctx.threshold:.0%}: "
                         f"{len(reg)} regressions, {len(imp)} improvements, {len(same)} within the threshold.",
                         "warn" if reg else "ok")]
    rows = [[c.suite, c.device.upper(), c.label, Cell(fmt_value(c.prev, c.unit), "num"),
             Cell(fmt_value(c.now, c.unit), "num"), change_cell(c), BETTER_WHEN[c.better]]
            for c in reg + imp + same]
    if rows:
        blocks.append(Table(["Suite", "Device", "Metric", "Previous", "Now", "Δ", "Better when"], rows[:MAX_ROWS]))
    now_keys = {r.key for r in ctx.records}
    prev_keys = {r.key for r in ctx.previous}
    if now_keys - prev_keys:
        blocks.append(Para("New since the previous run: " + ", ".join(f"{s} ({d})" for s, d in
                                                                       sorted(now_keys - prev_keys)) + ".", "note"))
    if prev_keys - now_keys:
        blocks.append(Para("In the previous run but missing now: " + ", ".join(
            f"{s} ({d})" for s, d in sorted(prev_keys - now_keys)) + ".", "warn"))
    return blocks
