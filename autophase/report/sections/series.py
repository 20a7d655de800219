"""Figures of :class:`~autophase.results.Series`, drawn by their ``kind``.

* ``"strong-scaling"``/``"weak-scaling"`` (x: ranks or nodes): speed-up and parallel
  efficiency against N with the ideal line (HPC-NOTES). y is a time when the series'
  ``better`` is "lower" (or, without one, its unit is "s"), else a rate:
  strong: S = T(N₀)/T(N) (or R(N)/R(N₀)), E = S/(N/N₀);
  weak (same work per rank): E = T(N₀)/T(N) (or R(N)/((N/N₀)·R(N₀))), S = E·N/N₀.
* ``"batch"`` (x: batch size, y: time per batch): seconds per item = y/x, items per
  second = x/y, CPU against GPU (a series' ``params["device"]`` when one record holds
  both, else the record's device), the GPU's speed-up over the CPU series with the same
  name and other params, and Δ against the same point of the previous run.
* ``"curve"``: y against x, one line per series (e.g. χ² over iterations: the paper's
  Fig. 4), phasing (``params["method"] == "phasing"``) dashed.
"""
from __future__ import annotations

from .. import figures
from ..context import Context
from ..document import Cell, Figure, Para, Table
from ..records import Record
from ...results import Series
from .fmt import fmt_num, fmt_params, fmt_rel, fmt_time, fmt_value

__all__ = ["scaling_blocks", "batch_blocks", "curve_blocks", "NO_GPU", "efficiency", "MAX_CURVES"]

NO_GPU = "No GPU result exists yet"
MAX_CURVES = 10


def _name(s: Series, skip: tuple[str, ...] = ()) -> str:
    p = fmt_params(s.params, skip)
    return (s.label or s.name) + (f" ({p})" if p else "")


def _points(s: Series) -> list[tuple[float, float]]:
    return [(p.x, p.y) for p in s.points if p.y is not None and p.y > 0 and p.x > 0]


def efficiency(s: Series) -> tuple[list[float], list[float], list[float], str] | None:
    """(N, speed-up, efficiency, basis) of a scaling series, relative to its smallest N."""
    pts = sorted(_points(s))
    if len(pts) < 2:
        return None
    time = s.better == "lower" or (not s.better and s.y_unit == "s")
    weak = s.kind == "weak-scaling"
    (n0, y0) = pts[0]
    N, S, E = [], [], []
    for n, y in pts:
        r = n / n0
        if weak:
            e = y0 / y if time else y / (r * y0)
            sp = e * r
        else:
            sp = y0 / y if time else y / y0
            e = sp / r
        N.append(n), S.append(sp), E.append(e)
    return N, S, E, f"{'time' if time else 'rate'}, {'weak' if weak else 'strong'}"


def scaling_blocks(suite: str, recs: list[Record], ctx: Context) -> list:
    curves, axes, rows = {}, set(), []
    for rec in recs:
        for s in rec.result.series:
            if s.kind not in ("strong-scaling", "weak-scaling"):
                continue
            eff = efficiency(s)
            if eff is None:
                continue
            N, S, E, basis = eff
            label = _name(s) + (f" ({rec.device.upper()})" if len(recs) > 1 else "")
            curves[label] = (N, S, E)
            axes.add(s.x)
            ys = {p.x: p.y for p in s.points}
            for n, sp, e in zip(N, S, E):
                low = e < 0.7
                rows.append([label, fmt_num(n), Cell(fmt_value(ys.get(n), s.y_unit), "num"), Cell(f"{sp:.3g}", "num"),
                             Cell(f"{e:.0%}", "regress" if low else "num", "below 70 % efficiency" if low else ""),
                             basis])
            ctx.find("scaling", suite, f"{_name(s)}, {fmt_num(N[-1])} {s.x}", E[-1],
                     f"speed-up {S[-1]:.3g} of ideal {N[-1] / N[0]:g}")
        for s in rec.result.series:  # points a scaling run could not measure
            bad = [f"{fmt_num(p.x)} {s.x}: {p.note}" for p in s.points if p.y is None and p.note]
            if s.kind.endswith("scaling") and bad:
                rows.append([_name(s), "—", Cell("not measured", "muted"), "—", "—", "; ".join(bad)])
    if not curves:
        return []
    xlabel = " / ".join(sorted(axes))
    return [Table(["Series", "N", "Measured", "Speed-up", "Efficiency", "Basis"], rows,
                  "Speed-up and efficiency relative to the smallest N of each series; "
                  "efficiency below 70 % is shaded."),
            Figure(ctx.fig_name(f"{suite}-scaling"), figures.scaling_curves(curves, f"{xlabel} (log₂)", suite),
                   f"{suite}: speed-up (left, log₂) and parallel efficiency (right) against {xlabel}; "
                   f"dashed = ideal.")]


def _device(rec: Record, s: Series) -> str:
    d = str(s.params.get("device", "")).lower()
    return "gpu" if d.startswith(("cuda", "gpu")) else "cpu" if d.startswith("cpu") else rec.device


def batch_blocks(suite: str, recs: list[Record], ctx: Context) -> list:
    found = [(rec, s) for rec in recs for s in rec.result.series if s.kind == "batch"]
    if not found:
        return []
    # (series name without device, batch) -> seconds per item on the CPU: the GPU's reference
    cpu_ref: dict[tuple, float] = {}
    for rec, s in found:
        if _device(rec, s) == "cpu":
            for x, y in _points(s):
                cpu_ref.setdefault((_name(s, ("device",)), x), y / x)
    rows, lines, has_gpu = [], {}, False
    for rec, s in sorted(found, key=lambda t: (_device(*t), _name(t[1]))):
        dev = _device(rec, s)
        has_gpu |= dev == "gpu"
        name = _name(s, ("device",))
        prev = ctx.previous_series(rec, s)
        prev_y = {p.x: p.y for p in prev.points} if prev else {}
        dev_label = dev.upper() + (f" ({rec.gpu_name})" if dev == "gpu" and rec.gpu_name else "")
        if dev == "cpu" and rec.device == "gpu":
            dev_label += " (GPU host)"
        for x, y in _points(s):
            lat = y / x
            speed = Cell("—", "muted")
            ref = cpu_ref.get((name, x))
            if dev == "gpu" and ref:
                speed = Cell(f"×{ref / lat:.3g}", "num", f"vs the CPU's {fmt_time(ref)} per item")
                ctx.find("gpu", suite, f"{name}, batch {fmt_num(x)}", ref / lat,
                         f"{fmt_time(lat)} vs {fmt_time(ref)} per item")
            py = prev_y.get(x)
            rel = y / py - 1 if py else None
            up_is_worse = s.better != "higher"  # y is a time per batch unless the series says otherwise
            cls = "num" if rel is None or abs(rel) <= ctx.threshold else \
                "regress" if (rel > 0) == up_is_worse else "improve"
            word = {"regress": " regression", "improve": " better"}.get(cls, "")
            rows.append([dev_label, name, fmt_num(x), Cell(fmt_time(lat), "num"), Cell(fmt_num(x / y), "num"),
                         Cell(fmt_rel(rel) + word, cls if rel is not None else "muted"), speed])
            xs, ts = lines.setdefault(f"{name}, {dev_label.split(' (')[0]}", ([], []))
            xs.append(x), ts.append(lat)
    blocks: list = []
    if not has_gpu:
        blocks.append(Para(f"{NO_GPU} for {suite}: the rows below are CPU only. Run `autophase bench {suite}` "
                           f"on a GPU machine and commit benchmarks/results/{suite}-gpu.json to add GPU rows.",
                           "warn"))
    blocks.append(Table(["Device", "Series", "Batch", "Latency per item", "Items per s", "Δ time vs previous",
                         "GPU speed-up"], rows, "Latency per item = time of one batch (median of repeats) / "
                                                "batch size."))
    blocks.append(Figure(ctx.fig_name(f"{suite}-latency"),
                         figures.latency_vs_batch(lines, f"{suite}: latency per item, CPU vs GPU",
                                                  ylabel="latency per item"),
                         f"{suite}: seconds per item against batch size (lower is better); solid = CPU, "
                         f"dashed = GPU, one colour per series."))
    return blocks


def curve_blocks(suite: str, recs: list[Record], ctx: Context) -> list:
    blocks: list = []
    for rec in recs:
        by_y: dict[tuple[str, str], list[Series]] = {}
        for s in rec.result.series:
            if s.kind == "curve":
                by_y.setdefault((s.y, s.x), []).append(s)
        for (y, x), ss in by_y.items():
            curves = [(_name(s), [p.x for p in s.points if p.y is not None],
                       [p.y for p in s.points if p.y is not None], str(s.params.get("method", "")))
                      for s in ss[:MAX_CURVES]]
            more = f"; first {MAX_CURVES} of {len(ss)} drawn" if len(ss) > MAX_CURVES else ""
            png = figures.error_vs_iteration(curves, f"{suite} ({rec.device.upper()}): {y} against {x}",
                                             ylabel=f"{y} ({ss[0].y_unit})" if ss[0].y_unit not in ("", "1") else y,
                                             xlabel=x)
            blocks.append(Figure(ctx.fig_name(f"{suite}-{rec.device}-{y}-curve"), png,
                                 f"{suite}: {y} against {x}, one line per series; dashed = phasing alone "
                                 f"(like the paper's Fig. 4){more}."))
    return blocks
