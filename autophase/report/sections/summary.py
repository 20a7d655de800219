"""The four cards at the top of the page: the morning's questions, answered first.

1. *Since the previous run*: regressions (red) / improvements (green), worst first (the
   metric's ``better`` decides the direction; closest-to-1 figures rank by |ln value|).
2. *Against the peers*: geometric-mean speed-up of ours over every peer comparison.
3. *Scaling*: parallel efficiency at the largest N of each series.
4. *GPU*: the GPU's speed-up per item over the CPU, or plainly that no GPU result
   exists yet.
"""
from __future__ import annotations

from ..context import Context
from ..document import Card, Cards
from .fmt import geomean
from .series import NO_GPU

__all__ = ["summary_cards"]


def _top(lines: list[str], n: int = 4) -> str:
    more = f"\n… and {len(lines) - n} more" if len(lines) > n else ""
    return "\n".join(lines[:n]) + more


def summary_cards(ctx: Context, prev_label: str | None) -> Cards:
    cards = []
    if not ctx.previous:
        cards.append(Card("Since the previous run", "first run", "no earlier report to compare with", "muted"))
    else:
        chs = [c for c in ctx.all_changes() if c.status in ("regression", "improvement", "same")]
        reg = sorted((c for c in chs if c.status == "regression"), key=lambda c: -c.severity)
        imp = sorted((c for c in chs if c.status == "improvement"), key=lambda c: c.severity)
        devs = {r.device for r in ctx.records}
        lines = [f"{c.suite}{' ' + c.device.upper() if len(devs) > 1 else ''}: {c.label} "
                 f"{'' if c.rel is None else f'{c.rel * 100:+.0f} %'}".rstrip() for c in reg or imp]
        if reg:
            cards.append(Card("Since the previous run", f"{len(reg)} regression{'s' * (len(reg) != 1)}",
                              f"vs {prev_label}\n" + _top(lines), "regress"))
        elif imp:
            cards.append(Card("Since the previous run", f"{len(imp)} better, none worse",
                              f"vs {prev_label}\n" + _top(lines), "improve"))
        else:
            cards.append(Card("Since the previous run", f"no change beyond ±{ctx.threshold:.0%}",
                              f"vs {prev_label}; {len(chs)} figures compared"))
    peers = [f for f in ctx.findings if f.kind == "peer" and f.value > 0]
    if peers:
        gm = geomean([f.value for f in peers])
        lines = [f"{f.suite} {f.label}: ×{f.value:.3g}" for f in sorted(peers, key=lambda f: -f.value)]
        cards.append(Card("Against the peers", f"×{gm:.3g} faster" if gm >= 1 else f"×{1 / gm:.3g} slower",
                          f"geometric mean of {len(peers)} comparison{'s' * (len(peers) != 1)}\n" + _top(lines),
                          "improve" if gm >= 1 else "regress"))
    else:
        cards.append(Card("Against the peers", "no comparison yet", "no suite timed ours next to a peer", "muted"))
    sc = [f for f in ctx.findings if f.kind == "scaling"]
    if sc:
        worst = min(sc, key=lambda f: f.value)
        cards.append(Card("Scaling efficiency", f"{worst.value:.0%} lowest",
                          _top([f"{f.suite} {f.label}: {f.value:.0%} ({f.detail})" for f in sc]),
                          "regress" if worst.value < 0.7 else "improve"))
    else:
        cards.append(Card("Scaling efficiency", "no scaling data", "no suite reported a scaling series", "muted"))
    gpu_recs = ctx.gpu_records()
    if not gpu_recs:
        cards.append(Card("GPU", NO_GPU, "every figure in this report is from a CPU; GPU rows appear "
                          "once a *-gpu.json record is committed", "muted"))
    else:
        names = sorted({r.gpu_name or "GPU" for r in gpu_recs})
        g = [f for f in ctx.findings if f.kind == "gpu"]
        if g:
            best = max(g, key=lambda f: f.value)
            cards.append(Card("GPU vs CPU", f"×{best.value:.3g} per item",
                              f"{', '.join(names)}; best: {best.suite} {best.label}\n"
                              + _top([f"{f.suite} {f.label}: ×{f.value:.3g}" for f in g], 3)))
        else:
            cards.append(Card("GPU", ", ".join(names),
                              "GPU results: " + ", ".join(sorted({r.suite for r in gpu_recs}))))
    return Cards(cards)
