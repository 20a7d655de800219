"""Quality over a test set: χ² and SSIM histograms per method (the paper's Fig. 2a–b).

Reads the output of ``autophase evaluate``: per-crystal lists of ``chi2``,
``complex_error``, ``phase_error_rad`` and ``ssim_box`` for each method (``nn``,
``nn_refine``, ``phasing``). Accepted layouts, method-major or metric-major or
per crystal::

    {"nn": {"chi2": [...], "ssim_box": [...]}, "phasing": {...}}
    {"chi2": {"nn": [...], "phasing": [...]}, ...}
    {"crystals": [{"nn": {"chi2": 0.01, ...}, "phasing": {...}}, ...]}

The table gives median, mean and 90th percentile per method and metric; lower is better
for χ² and the errors, higher for SSIM.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .. import figures
from ..compare import is_number
from ..context import Context
from ..document import Cell, Figure, Para, Table
from ..records import Record
from .find import walk
from .fmt import fmt_num, fmt_time

__all__ = ["per_crystal", "evaluation_blocks", "METRICS"]

METRICS = {"chi2": "χ²", "ssim_box": "SSIM (amplitude, box)", "ssim": "SSIM",
           "complex_error": "complex error", "phase_error_rad": "phase error (rad)",
           "chi2_free": "χ² free", "llk_free": "LLK free", "seconds": "time per crystal"}
_ORDER = ("nn", "nn_refine", "refine", "phasing", "sphere")


def per_crystal(results: Any) -> dict[str, dict[str, list[float]]]:
    """``{metric: {method: [value per crystal]}}`` from any of the layouts above."""
    data: dict[str, dict[str, list[float]]] = {}

    def add(metric: str, method: str, vals) -> None:
        vs = [float(v) for v in vals if is_number(v)]
        if vs:
            data.setdefault(metric, {}).setdefault(method, []).extend(vs)

    for path, node in walk(results):
        if isinstance(node, dict):
            method = next((p for p in reversed(path) if p not in METRICS and not p.isdigit()
                           and "=" not in p), "")
            for k, v in node.items():
                if k in METRICS and isinstance(v, list) and v and all(is_number(x) for x in v):
                    add(k, method or "result", v)
                elif k in METRICS and isinstance(v, dict):
                    for m, vs in v.items():
                        if isinstance(vs, list):
                            add(k, m, vs)
        elif isinstance(node, list) and node and all(isinstance(e, dict) for e in node):
            for e in node:
                for m, d in e.items():
                    if isinstance(d, dict):
                        for k in METRICS:
                            if is_number(d.get(k)):
                                add(k, m, [d[k]])
    # History lists are not per-crystal values; a time needs a method beside a quality figure.
    out = {k: {m: v for m, v in ms.items() if "history" not in m.lower()} for k, ms in data.items()}
    if "seconds" in out and len(out) == 1:
        return {}
    return out


def _ordered(methods):
    return sorted(methods, key=lambda m: (_ORDER.index(m) if m in _ORDER else len(_ORDER), m))


def evaluation_blocks(suite: str, recs: list[Record], ctx: Context) -> list:
    blocks: list = []
    for rec in recs:
        data = per_crystal(rec.results)
        if not data:
            continue
        methods = _ordered({m for ms in data.values() for m in ms})
        metrics = [k for k in METRICS if k in data]
        rows = []
        for m in methods:
            n = max((len(data[k].get(m, [])) for k in metrics), default=0)
            row = [m, str(n)]
            for k in metrics:
                v = np.asarray(data[k].get(m, []), float)
                f = fmt_time if k == "seconds" else fmt_num
                row.append(Cell("—" if not v.size else
                                f"{f(np.median(v))} / {f(v.mean())} / {f(np.percentile(v, 90))}", "num"))
            rows.append(row)
        blocks.append(Table(["Method", "Crystals"] + [METRICS[k] for k in metrics], rows,
                            "Each cell: median / mean / 90th percentile over the test set "
                            "(χ² and errors: lower is better; SSIM: higher is better)."))
        if "chi2" in data:
            png = figures.histograms({m: data["chi2"][m] for m in _ordered(data["chi2"])},
                                     "χ² (reciprocal space, eq. 2)", "χ² over the test set", log_x=True)
            blocks.append(Figure(ctx.fig_name(f"{suite}-chi2-hist"), png,
                                 "Histogram of χ² for the modulus of the diffraction pattern, per method "
                                 "(like the paper's Fig. 2a; log bins)."))
        ssim_key = "ssim_box" if "ssim_box" in data else "ssim" if "ssim" in data else None
        if ssim_key:
            png = figures.histograms({m: data[ssim_key][m] for m in _ordered(data[ssim_key])},
                                     METRICS[ssim_key], "SSIM of the amplitude over the test set")
            blocks.append(Figure(ctx.fig_name(f"{suite}-ssim-hist"), png,
                                 "Histogram of SSIM for the amplitude of the real-space image, per method "
                                 "(like the paper's Fig. 2b)."))
        if "chi2" not in data and not ssim_key:
            blocks.append(Para("The evaluation file has neither χ² nor SSIM lists.", "warn"))
    return blocks
