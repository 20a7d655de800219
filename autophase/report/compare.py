"""Day-over-day change of every metric, matched by ``(suite, device, metric.key())``.

Which way is better is the metric's own ``better`` field (the report guesses nothing):
with r = now/prev − 1,

* ``"lower"``: worse = r; ``"higher"``: worse = −r;
* ``"closest-to-1"`` (e.g. χ² over the noise floor: below 1 is over-fitting the noise,
  not better): worse = |ln now| − |ln prev|;
* ``""``: no direction: shown, never marked.

A *regression* is worse > threshold (10 % by default), an *improvement* worse <
−threshold. A peer's own figure (``params["impl"]`` other than ``"autophase"``) moving
is news about the machine, not about us: status "info".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from ..results import Metric

__all__ = ["THRESHOLD", "OURS", "Change", "compare", "worse", "is_peer", "BETTER_WHEN"]

THRESHOLD = 0.10
OURS = "autophase"
BETTER_WHEN = {"lower": "lower is better", "higher": "higher is better",
               "closest-to-1": "closest to 1 is best", "": ""}


def is_peer(m: Metric) -> bool:
    """A figure of another implementation (``params["impl"]`` set and not ours)."""
    impl = m.params.get("impl")
    return impl is not None and impl != OURS


def _pos(v: float | None) -> bool:
    return v is not None and math.isfinite(v) and v > 0


def worse(better: str, now: float | None, prev: float | None) -> float | None:
    """How much worse ``now`` is than ``prev`` (> 0 worse, < 0 better; None: not comparable)."""
    if now is None or prev is None:
        return None
    if better == "closest-to-1":
        return abs(math.log(now)) - abs(math.log(prev)) if _pos(now) and _pos(prev) else None
    if better not in ("lower", "higher") or prev == 0:
        return None
    rel = now / prev - 1.0
    return rel if better == "lower" else -rel


@dataclass(frozen=True)
class Change:
    """One metric now and in the previous run.

    ``rel`` = now/prev − 1 (None when either side is missing or prev is 0); ``status`` ∈
    {"regression", "improvement", "same", "new", "gone", "info"}; ``severity`` the
    :func:`worse` value (None when not comparable).
    """

    suite: str
    device: str
    key: tuple
    label: str
    unit: str
    better: str
    now: float | None
    prev: float | None
    rel: float | None
    severity: float | None
    status: str


def _label(m: Metric) -> str:
    params = ", ".join(f"{k} {v}" for k, v in m.params.items())
    return f"{m.label or m.name}" + (f" ({params})" if params else "")


def compare(suite: str, device: str, now: Iterable[Metric], prev: Iterable[Metric] | None,
            threshold: float = THRESHOLD) -> list[Change]:
    """Changes of every metric of one (suite, device) against the previous run's metrics
    (``prev`` None: there was no previous record)."""
    now_by = {m.key(): m for m in now}
    prev_by = {m.key(): m for m in prev} if prev is not None else {}
    out: list[Change] = []
    for k in list(now_by) + [k for k in prev_by if k not in now_by]:
        a, b = now_by.get(k), prev_by.get(k)
        m = a or b
        va, vb = (a.value if a else None), (b.value if b else None)
        rel = va / vb - 1.0 if va is not None and vb is not None and vb != 0 else None
        sev = worse(m.better, va, vb)
        if va is None:
            status = "gone" if a is None else "info"
        elif vb is None:
            status = "new" if b is None else "info"
        elif not m.better or is_peer(m) or sev is None:
            status = "info"
        else:
            status = "regression" if sev > threshold else "improvement" if sev < -threshold else "same"
        out.append(Change(suite, device, k, _label(m), m.unit, m.better, va, vb, rel, sev, status))
    return out
