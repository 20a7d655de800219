"""Plain tables of numeric leaves: the generic view of an unknown suite, and the
"changes since the previous run" table over every suite.

A leaf's value is shown with the unit its name implies (``…_s`` as a time); the Δ cell
is red when the run got worse than the previous one by more than the threshold (time up
or throughput down), green when it got better by as much.
"""
from __future__ import annotations

import re

from ..compare import Change, direction
from ..context import Context
from ..document import Cell, Para, Table
from ..records import Record
from .find import walk
from .fmt import change_cell, fmt_num, fmt_time

__all__ = ["leaf_table", "changes_blocks", "fmt_leaf", "key_figures", "error_notes", "MAX_ROWS"]

MAX_ROWS = 400


def fmt_leaf(path: str, v: float | None) -> str:
    """A leaf's value, as a time when its name (or its parent's, e.g. ``stages_median_s/fft``)
    carries a time unit: ``…_s``, ``seconds_…``, ``…_ms``, ``us_per_…``."""
    if v is None:
        return "—"
    if direction(path) == 1:  # a rate (…per_s, MB_s), never a time
        return fmt_num(v)
    parts = path.lower().split("/")
    # The leaf's own unit first; a unit-less leaf inherits its parent's (stages_median_s/fft).
    for name in (parts[-1],) + ((parts[-2],) if len(parts) > 1 else ()):
        name = name.replace("per_s", "")
        if re.search(r"(^|_)(s|sec|secs|seconds)(_|$)", name):
            return fmt_time(v)
        if re.search(r"(^|_)ms(_|$)", name):
            return fmt_time(v / 1e3)
        if re.search(r"(^|_)us(_|$)", name):
            return fmt_time(v / 1e6)
    return fmt_num(v)


def _dir_text(d: int) -> str:
    return {1: "higher is better", -1: "lower is better"}.get(d, "")


def leaf_table(suite: str, recs: list[Record], ctx: Context) -> list:
    rows = []
    for rec in recs:
        for path, ch in ctx.changes.get(rec.key, {}).items():
            if ch.now is None:
                continue
            rows.append([rec.device.upper(), path, Cell(fmt_leaf(path, ch.now), "num", _dir_text(ch.direction)),
                         Cell(fmt_leaf(path, ch.prev), "num muted" if ch.prev is not None else "muted"),
                         change_cell(ch)])
    if not rows:
        return [Para(f"{suite}: the record holds no numeric results.", "warn")]
    blocks: list = []
    if len(rows) > MAX_ROWS:
        blocks.append(Para(f"{len(rows)} figures; the first {MAX_ROWS} are shown (all are in report.json).",
                           "note"))
        rows = rows[:MAX_ROWS]
    blocks.append(Table(["Device", "Metric", "Now", "Previous", "Δ"], rows))
    return blocks


def _severity(c: Change) -> float:
    return -c.direction * (c.rel or 0.0)


def changes_blocks(ctx: Context, prev_label: str | None) -> list:
    """Every directional figure against the previous run, regressions first."""
    if not ctx.previous:
        return [Para("No previous report to compare with: this is the first run here (or "
                     "pass --previous DIR_OR_JSON). Changes will appear from the next run on.", "note")]
    chs = [c for c in ctx.all_changes() if c.direction != 0 and c.now is not None and c.prev is not None]
    reg = sorted((c for c in chs if c.status == "regression"), key=_severity, reverse=True)
    imp = sorted((c for c in chs if c.status == "improvement"), key=_severity)
    same = sorted((c for c in chs if c.status == "same"), key=lambda c: (c.suite, c.device, c.path))
    blocks: list = [Para(f"Compared with {prev_label}. Threshold ±{ctx.threshold:.0%}: "
                         f"{len(reg)} regressions, {len(imp)} improvements, {len(same)} within the threshold.",
                         "warn" if reg else "ok")]
    rows = []
    for c in reg + imp + same:
        rows.append([c.suite, c.device.upper(), c.path, Cell(fmt_leaf(c.path, c.prev), "num"),
                     Cell(fmt_leaf(c.path, c.now), "num"), change_cell(c), _dir_text(c.direction)])
    if rows:
        blocks.append(Table(["Suite", "Device", "Metric", "Previous", "Now", "Δ", "Better when"],
                            rows[:MAX_ROWS]))
    now_keys = {r.key for r in ctx.records}
    prev_keys = {r.key for r in ctx.previous}
    new = sorted(now_keys - prev_keys)
    gone = sorted(prev_keys - now_keys)
    if new:
        blocks.append(Para("New since the previous run: " + ", ".join(f"{s} ({d})" for s, d in new) + ".", "note"))
    if gone:
        blocks.append(Para("In the previous run but missing now: " + ", ".join(f"{s} ({d})" for s, d in gone)
                           + ".", "warn"))

    return blocks


_HEADLINE = re.compile(r"(median|per_s|per_core|per_crystal|per_sample|per_pattern|speedup|speed_up|efficiency|"
                       r"gflop|tflop|throughput|latency)", re.I)


def key_figures(suite: str, recs: list[Record], ctx: Context) -> list:
    """The suite's headline numbers in one short table, with a target where the suite set one.

    Headline = a figure with a better direction whose name says it is a median, a rate,
    a per-item cost, a speed-up or an efficiency (not the spread of repeats, not per-item
    lists). A sibling ``target_<name>`` becomes the Target column (✓ met / ✗ missed).
    """
    rows = []
    for rec in recs:
        leaves = {p: c for p, c in ctx.changes.get(rec.key, {}).items() if c.now is not None}
        for path, ch in leaves.items():
            parent, _, leaf = path.rpartition("/")
            if ch.direction == 0 or not _HEADLINE.search(leaf) or leaf.startswith("target_"):
                continue
            tgt_path = f"{parent}/target_{leaf}" if parent else f"target_{leaf}"
            tgt = leaves.get(tgt_path)
            if tgt is not None:
                met = (ch.now - tgt.now) * ch.direction >= 0
                tcell = Cell(f"{'✓' if met else '✗'} {fmt_leaf(path, tgt.now)}", "improve" if met else "regress",
                             "target met" if met else "target missed")
            else:
                tcell = Cell("", "muted")
            rows.append([rec.device.upper(), path, Cell(fmt_leaf(path, ch.now), "num", _dir_text(ch.direction)),
                         tcell, change_cell(ch)])
    if not rows:
        return []
    has_target = any(r[3].text for r in rows)
    if not has_target:
        rows = [r[:3] + r[4:] for r in rows]
    cols = ["Device", "Figure", "Now"] + (["Target"] if has_target else []) + ["Δ vs previous"]
    return [Table(cols, rows[:40], "Headline figures (medians, rates, per-item costs, efficiencies); "
                                   "all numbers are in the folded table below.")]


def error_notes(suite: str, recs: list[Record], ctx: Context) -> list:
    """Configurations the suite reports as failed (an ``error`` string anywhere), said
    plainly: a missing point in a curve must not pass for a quiet night."""
    notes = []
    for rec in recs:
        for path, node in walk(rec.results):
            if isinstance(node, dict):
                for k in ("error", "errors", "failure"):
                    v = node.get(k)
                    if isinstance(v, str) and v.strip():
                        where = "/".join(path) or "(top level)"
                        notes.append(f"{where}: {v.strip().splitlines()[0][:200]}")
    if not notes:
        return []
    more = f" … and {len(notes) - 8} more" if len(notes) > 8 else ""
    return [Para(f"{suite}: {len(notes)} configuration{'s' * (len(notes) != 1)} failed — "
                 + "; ".join(notes[:8]) + more, "warn")]
