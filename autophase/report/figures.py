"""The report's matplotlib figures, each returned as PNG bytes (Agg, no pyplot state).

Every function takes plain numbers (read from the records by a section) and draws one
figure; none of them reads a record. Colours are fixed across figures so that a reader
learns them once: CPU blue, GPU orange; ours blue, peers grey; network green,
refinement purple, phasing red (as in the paper's Fig. 2 and Fig. 4).
"""
from __future__ import annotations

import io
import math
import textwrap
from typing import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

__all__ = ["speedup_bars", "latency_vs_batch", "histograms", "error_vs_iteration",
           "scaling_curves", "COLORS"]

COLORS = {"cpu": "#1f5fbf", "gpu": "#e8710a", "ours": "#1f5fbf", "peer": "#8a94a6",
          "nn": "#2e9e4f", "nn+er": "#7b3fbf", "refine": "#7b3fbf", "phasing": "#c0392b",
          "sphere": "#8a94a6"}
_CYCLE = ["#1f5fbf", "#e8710a", "#2e9e4f", "#c0392b", "#7b3fbf", "#8c564b", "#17becf", "#bcbd22"]
_DPI = 110


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)  # constrained layout already fits the labels
    return buf.getvalue()


def _new(w: float, h: float, ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(w, h), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    for ax in axes:
        ax.grid(True, which="major", alpha=0.3)
    return fig, axes


def _fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:.3g} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} µs"


def speedup_bars(labels: Sequence[str], ratios: Sequence[float], title: str,
                 xlabel: str = "speed-up of ours (peer time / our time)") -> bytes:
    """Horizontal bars of ratios on a log axis with the parity line at 1.

    Bars right of 1 (ours faster) are blue, left (ours slower) grey; each is labelled
    "×r" so the reader need not read the axis.
    """
    labels = [textwrap.fill(str(t), 42) for t in labels]  # long labels would squash the axes
    n = len(labels)
    lines = sum(t.count("\n") + 1 for t in labels)
    fig, (ax,) = _new(8.4, 1.0 + 0.22 * lines + 0.2 * n)
    y = np.arange(n)[::-1]
    r = np.asarray(ratios, float)
    colors = [COLORS["ours"] if v >= 1 else COLORS["peer"] for v in r]
    ax.barh(y, r, left=0, color=colors, height=0.6)
    ax.set_xscale("log")
    lo, hi = min(r.min(), 1.0), max(r.max(), 1.0)
    ax.set_xlim(lo / 1.8, hi * 2.2)
    ax.axvline(1.0, color="k", lw=1)
    for yi, v in zip(y, r):
        ax.text(v * 1.05, yi, f"×{v:.2g}", va="center", fontsize=9)
    ax.set_yticks(y, labels, fontsize=8.5)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=11)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())  # "3×10⁰4×10⁰" helps nobody
    return _png(fig)


def latency_vs_batch(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], title: str,
                     ylabel: str = "latency per pattern") -> bytes:
    """Per-pattern latency (s) against batch size, one line per series, log2/log axes.

    ``series`` maps a label ("NN, CPU") to (batch sizes, seconds per pattern). The part
    before the last comma names the series (one colour each); the device after it sets
    the style: CPU solid with circles, GPU dashed with squares.
    """
    fig, (ax,) = _new(6.4, 3.8)
    colors: dict[str, str] = {}
    for label, (b, t) in series.items():
        name, _, dev = label.rpartition(", ")
        color = colors.setdefault(name or label, _CYCLE[len(colors) % len(_CYCLE)])
        gpu = dev.startswith("GPU")
        ax.plot(b, t, marker="s" if gpu else "o", color=color, ls="--" if gpu else "-", label=label)
        for bi, ti in zip(b, t):
            ax.annotate(_fmt_time(ti), (bi, ti), textcoords="offset points", xytext=(4, 5), fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _fmt_time(v)))
    # Within one decade only minor ticks can carry labels: 2× and 5× of the decade.
    ax.yaxis.set_minor_formatter(FuncFormatter(
        lambda v, _: _fmt_time(v) if v > 0 and round(v / 10 ** math.floor(math.log10(v))) in (2, 5) else ""))
    ax.tick_params(axis="y", which="minor", labelsize=7.5)
    ax.set_xlabel("batch size (patterns)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=9)
    return _png(fig)


def histograms(data: Mapping[str, Sequence[float]], xlabel: str, title: str,
               log_x: bool = False, bins: int = 30) -> bytes:
    """Overlaid step histograms (counts per bin), one per method, on shared bins.

    ``log_x`` uses log-spaced bins — χ² spans decades (the paper's Fig. 2a).
    """
    fig, (ax,) = _new(6.0, 3.6)
    vals = {k: np.asarray([v for v in vs if math.isfinite(v)], float) for k, vs in data.items()}
    allv = np.concatenate([v for v in vals.values() if v.size] or [np.zeros(1)])
    if log_x:
        pos = allv[allv > 0]
        lo, hi = (pos.min(), pos.max()) if pos.size else (1e-3, 1.0)
        if hi <= lo:
            lo, hi = lo / 2, hi * 2
        edges = np.geomspace(lo, hi, bins + 1)
        ax.set_xscale("log")
    else:
        lo, hi = float(allv.min()), float(allv.max())
        if hi <= lo:
            lo, hi = lo - 0.05, hi + 0.05
        edges = np.linspace(lo, hi, bins + 1)
    for i, (label, v) in enumerate(vals.items()):
        if not v.size:
            continue
        color = COLORS.get(label, _CYCLE[i % len(_CYCLE)])
        ax.hist(v, bins=edges, histtype="step", lw=1.8, color=color,
                label=f"{label} (n={v.size}, median {np.median(v):.3g})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("crystals")
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8.5)
    return _png(fig)


def error_vs_iteration(curves: Sequence[tuple[str, Sequence[float], Sequence[float], str]],
                       title: str, ylabel: str = "χ²", xlabel: str = "iteration") -> bytes:
    """y against x, one colour per curve (the paper's Fig. 4): dashed when the curve's
    method is "phasing" (phasing alone), solid otherwise (refinement from the network).

    ``curves`` holds (label, x, y, method); a positive y is drawn on a log axis.
    """
    fig, (ax,) = _new(6.8, 4.0)
    for i, (label, x, y, method) in enumerate(curves):
        e = np.asarray(y, float)
        ok = e > 0
        ax.plot(np.asarray(x, float)[ok], e[ok], ls="--" if method == "phasing" else "-",
                color=_CYCLE[i % len(_CYCLE)], lw=1.4, label=label)
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8, ncol=2 if len(curves) > 6 else 1)
    return _png(fig)


def scaling_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float], Sequence[float]]],
                   xlabel: str, title: str) -> bytes:
    """Speed-up and efficiency against N (log2 x), each with its ideal line.

    ``curves`` maps a label to (N, speed-up, efficiency); speed-up is drawn on log2 y
    against the ideal S = N / N₀ (N₀ the smallest N of that curve), efficiency on a
    linear axis against the ideal 1.
    """
    fig, (a1, a2) = _new(9.6, 3.8, ncols=2)
    allN: list[float] = []
    for i, (label, (N, S, E)) in enumerate(curves.items()):
        color = _CYCLE[i % len(_CYCLE)]
        a1.plot(N, S, marker="o", color=color, label=label)
        a2.plot(N, E, marker="o", color=color, label=label)
        for n, e in zip(N, E):
            a2.annotate(f"{e:.0%}", (n, e), textcoords="offset points", xytext=(3, 5), fontsize=8)
        allN.extend(N)
    if allN:
        n0, n1 = min(allN), max(allN)
        ideal = np.geomspace(n0, n1, 16) if n1 > n0 else np.array([n0, n0 * 2])
        a1.plot(ideal, ideal / n0, "k--", lw=1, label="ideal")
        a2.axhline(1.0, color="k", ls="--", lw=1, label="ideal")
    for ax in (a1, a2):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel(xlabel)
    a1.set_yscale("log", base=2)
    a1.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    a1.yaxis.set_minor_formatter(NullFormatter())
    a1.yaxis.set_major_locator(LogLocator(base=2))
    a1.set_ylabel("speed-up")
    a2.set_ylabel("parallel efficiency")
    a2.set_ylim(0, max(1.15, a2.get_ylim()[1]))
    a2.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
    a1.set_title(f"{title}: speed-up", fontsize=11)
    a2.set_title(f"{title}: efficiency", fontsize=11)
    a1.legend(fontsize=8.5)
    return _png(fig)
