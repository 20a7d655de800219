"""Side-by-side methods: refinement (NN + 50 ER) against phasing alone (600 iterations).

Finds dicts whose key path mentions refinement (``refine``, ``refinement``,
``nn_refine``) and whose children are methods — dicts carrying a time and/or a figure of
merit — and tabulates them: time, iterations, χ², SSIM, with the change of the time
against the previous run. This is the paper's claim in numbers: the learned prior plus
50 ER reaches an equal or lower χ² in a fraction of the time.
"""
from __future__ import annotations

import re

from ..compare import is_number
from ..context import Context
from ..document import Cell, Para, Table
from ..records import Record
from ..compare import is_ours
from .find import find_number, timing, walk
from .fmt import change_cell, fmt_num, fmt_time, pretty

__all__ = ["method_blocks", "refinement_blocks"]

_COLS = (("iterations", ("iterations", "n_iter", "iters", "n_iterations")),
         ("χ²", ("chi2", "chi2_final", "final_chi2", "chi2_median", "median_chi2")),
         ("SSIM", ("ssim_box", "ssim", "ssim_median")),
         ("phase error (rad)", ("phase_error_rad", "phase_error")))


def method_blocks(suite: str, recs: list[Record], ctx: Context) -> list:
    blocks: list = []
    for rec in recs:
        done: list[tuple[str, ...]] = []
        for path, node in walk(rec.results):
            if not isinstance(node, dict) or not any("refin" in p.lower() for p in (suite,) + path):
                continue
            methods = {k: v for k, v in node.items() if isinstance(v, dict)
                       and (timing(v) is not None or any(find_number(v, *ks) is not None for _, ks in _COLS))}
            if len(methods) < 2:
                continue
            if any(path[:len(t)] == t for t in done):
                continue  # a method inside a refinement node already tabulated
            done.append(path)
            cols = [c for c, ks in _COLS if any(find_number(v, *ks) is not None for v in methods.values())]
            rows = []
            for k, v in methods.items():
                row = [pretty(k), Cell(fmt_time(timing(v)), "num")]
                for c, ks in _COLS:
                    if c in cols:
                        row.append(Cell(fmt_num(find_number(v, *ks)), "num"))
                row.append(change_cell(ctx.node_change(rec, "/".join(path + (k,)))))
                rows.append(row)
            scalars = {k: v for k, v in node.items() if is_number(v)}
            cap = "; ".join(f"{pretty(k)} = {fmt_num(v)}" for k, v in scalars.items())
            blocks.append(Table(["Method", "Time"] + cols + ["Δ time vs previous"], rows,
                                f"{rec.device.upper()} · {pretty('/'.join(path))}" + (f" · {cap}" if cap else "")))
    return blocks


_FULL_CHI2 = re.compile(r"^chi2_(\d+)_?(iter|iterations|it)?$|^chi2_(phasing|full|baseline)$", re.I)


def _ours_median(results) -> tuple[str, float] | None:
    for path, node in walk(results):
        if isinstance(node, dict):
            for k, v in node.items():
                if is_ours(k) and isinstance(v, dict) and is_number(v.get("median_s")):
                    return "/".join(path + (k,)), float(v["median_s"])
    return None


def refinement_blocks(suite: str, recs: list[Record], ctx: Context) -> list:
    """A refinement node that is one run (not a dict of methods): against phasing alone.

    Reads ``time`` (or a median), ``chi2``, ``chi2_start`` and the full run's χ²
    (``chi2_600_iterations``, ``chi2_phasing``…); the full run's time is our median in
    the same record (the single-pattern timing of the same schedule).
    """
    blocks: list = []
    for rec in recs:
        for path, node in walk(rec.results):
            if not (path and "refin" in path[-1].lower() and isinstance(node, dict)):
                continue
            t_ref = timing(node.get("time")) if isinstance(node.get("time"), dict) else timing(node)
            c_ref = find_number(node, "chi2", "chi2_final")
            if t_ref is None and c_ref is None:
                continue
            full_key = next((k for k in node if _FULL_CHI2.match(str(k)) and is_number(node[k])), None)
            m = _FULL_CHI2.match(full_key) if full_key else None
            iters = m.group(1) if m and m.group(1) else None
            full = _ours_median(rec.results)
            node_path = "/".join(path)
            rows = []
            if is_number(node.get("chi2_start")):
                rows.append(["Start: the prior (network prediction or degraded truth)", Cell("—", "muted"),
                             Cell(fmt_num(node["chi2_start"]), "num"), Cell("", "muted")])
            rows.append([f"Refinement from the prior ({find_number(node, 'iterations') and int(find_number(node, 'iterations')) or 50} ER)",
                         Cell(fmt_time(t_ref), "num"), Cell(fmt_num(c_ref), "num"),
                         change_cell(ctx.node_change(rec, f"{node_path}/time") or ctx.node_change(rec, node_path))])
            if full_key or full:
                rows.append([f"Phasing alone ({iters + ' iterations' if iters else 'full schedule'})",
                             Cell(fmt_time(full[1]) if full else "—", "num"),
                             Cell(fmt_num(node[full_key]) if full_key else "—", "num"),
                             change_cell(ctx.node_change(rec, full[0])) if full else Cell("—", "muted")])
            truth = {k: node[k] for k in ("complex_error", "phase_error_rad", "ssim_box") if is_number(node.get(k))}
            cap = (f"{rec.device.upper()} · {pretty(node_path)}"
                   + ("; refined vs truth: " + ", ".join(f"{pretty(k)} {fmt_num(v)}" for k, v in truth.items())
                      if truth else ""))
            blocks.append(Table(["Run", "Time", "χ²", "Δ time vs previous"], rows, cap))
            if t_ref and full and c_ref is not None and full_key:
                better = c_ref <= node[full_key]
                # a χ² below the noise floor's band is over-fitting, not a win (issue 14)
                band = str(node.get("chi2_band", ""))
                start = f" Start: {node['start']}." if isinstance(node.get("start"), str) else ""
                blocks.insert(len(blocks) - 1, Para(
                    f"Refinement reaches χ² {fmt_num(c_ref)} ({'≤' if better else '>'} {fmt_num(node[full_key])} "
                    f"after phasing alone) in {fmt_time(t_ref)} instead of {fmt_time(full[1])}: "
                    f"×{full[1] / t_ref:.3g} faster." + (f" Against the noise floor: {band}." if band else "") + start,
                    "ok" if better and not band.startswith(("below", "above")) else "warn"))
    return blocks
