"""Phasing schedules written the way beamline users write them.

Grammar (whitespace ignored, case-insensitive algorithm names)::

    schedule := term ('+' term)*
    term     := [INT '*'] (ALGO | '(' schedule ')')
    ALGO     := ER | HIO | RAAR

Examples: ``3*(20*ER+160*HIO+20*ER)`` (600 iterations), ``3*(20*ER+160*RAAR+20*ER)``,
``50*ER``, ``HIO+ER``.

:func:`parse_schedule` returns the run-length list ``[("ER", 20), ("HIO", 160), …]``
with neighbouring runs of one algorithm merged; :func:`expand` the per-iteration list.
"""
from __future__ import annotations

import re

__all__ = ["ALGORITHMS", "parse_schedule", "expand", "total_iterations"]

ALGORITHMS = ("ER", "HIO", "RAAR")
_TOKEN = re.compile(r"\s*(\d+|[A-Za-z]+|[()*+])")


def _tokens(text: str) -> list[str]:
    pos, out = 0, []
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"schedule {text!r}: unexpected character at position {pos}: {text[pos]!r}")
        out.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def parse_schedule(text: str) -> list[tuple[str, int]]:
    """Parse a schedule string into merged (algorithm, count) runs; ValueError if malformed."""
    toks = _tokens(text)
    if not toks:
        raise ValueError("schedule is empty")
    i = 0

    def parse_sum() -> list[tuple[str, int]]:
        nonlocal i
        runs = parse_term()
        while i < len(toks) and toks[i] == "+":
            i += 1
            runs += parse_term()
        return runs

    def parse_term() -> list[tuple[str, int]]:
        nonlocal i
        count = 1
        if i < len(toks) and toks[i].isdigit():
            count = int(toks[i])
            i += 1
            if i >= len(toks) or toks[i] != "*":
                raise ValueError(f"schedule {text!r}: expected '*' after {count}")
            i += 1
        if i >= len(toks):
            raise ValueError(f"schedule {text!r}: ends after '*'")
        t = toks[i]
        if t == "(":
            i += 1
            inner = parse_sum()
            if i >= len(toks) or toks[i] != ")":
                raise ValueError(f"schedule {text!r}: missing ')'")
            i += 1
            return inner * count
        if t.upper() in ALGORITHMS:
            i += 1
            return [(t.upper(), count)]
        raise ValueError(f"schedule {text!r}: unknown algorithm {t!r} (known: {', '.join(ALGORITHMS)})")

    runs = parse_sum()
    if i != len(toks):
        raise ValueError(f"schedule {text!r}: unexpected {toks[i]!r}")
    merged: list[tuple[str, int]] = []
    for algo, n in runs:
        if n <= 0:
            continue
        if merged and merged[-1][0] == algo:
            merged[-1] = (algo, merged[-1][1] + n)
        else:
            merged.append((algo, n))
    if not merged:
        raise ValueError(f"schedule {text!r} has no iterations")
    return merged


def expand(runs: list[tuple[str, int]]) -> list[str]:
    """One algorithm name per iteration."""
    return [a for a, n in runs for _ in range(n)]


def total_iterations(text_or_runs) -> int:
    runs = parse_schedule(text_or_runs) if isinstance(text_or_runs, str) else text_or_runs
    return sum(n for _, n in runs)
