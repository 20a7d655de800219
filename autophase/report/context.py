"""What every section of one report needs: the records, the previous run, the changes.

Built once by :func:`autophase.report.build.build_report`; sections read it and add
*findings* (peer speed-ups, scaling efficiencies, GPU speed-ups) that the summary cards
at the top of the page condense into "faster than yesterday / than the peers / how it
scales".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .compare import THRESHOLD, Change, compare, numeric_leaves
from .records import Record

__all__ = ["Context", "Finding"]


@dataclass(frozen=True)
class Finding:
    """One headline number a section found: kind ∈ {"peer", "scaling", "gpu"}."""

    kind: str
    suite: str
    label: str
    value: float
    detail: str = ""


@dataclass
class Context:
    records: list[Record]
    previous: list[Record]
    threshold: float = THRESHOLD
    changes: dict[tuple[str, str], dict[str, Change]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    _fig_names: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        prev = {r.key: r for r in self.previous}
        for r in self.records:
            p = prev.get(r.key)
            chs = compare(r.suite, r.device, numeric_leaves(r.results),
                          numeric_leaves(p.results) if p else None, self.threshold)
            self.changes[r.key] = {c.path: c for c in chs}

    def change(self, rec: Record, path: str) -> Change | None:
        return self.changes.get(rec.key, {}).get(path)

    def node_change(self, rec: Record, node_path: str,
                    prefer: tuple[str, ...] = ("median_s", "time_s", "seconds")) -> Change | None:
        """The Δ of a node's headline leaf: a preferred name, else its first directional leaf."""
        chs = self.changes.get(rec.key, {})
        base = f"{node_path}/" if node_path else ""
        if node_path in chs:
            return chs[node_path]
        for name in prefer:
            if base + name in chs:
                return chs[base + name]
        for p, c in chs.items():
            if p.startswith(base) and "/" not in p[len(base):] and c.direction != 0:
                return c
        return None

    def all_changes(self) -> list[Change]:
        return [c for d in self.changes.values() for c in d.values()]

    def fig_name(self, stem: str) -> str:
        """A figure file name unique within the report."""
        base = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in stem).strip("-") or "figure"
        name, i = base, 2
        while name in self._fig_names:
            name, i = f"{base}-{i}", i + 1
        self._fig_names.add(name)
        return name

    def find(self, kind: str, suite: str, label: str, value: float, detail: str = "") -> None:
        self.findings.append(Finding(kind, suite, label, float(value), detail))

    def gpu_records(self) -> list[Record]:
        return [r for r in self.records if r.device == "gpu"]

    def env_summary(self) -> dict[str, Any]:
        """The run's environment from its newest CPU record (else any record)."""
        cpu = [r for r in self.records if r.device == "cpu" and r.env]
        pool = cpu or [r for r in self.records if r.env]
        return max(pool, key=lambda r: r.created).env if pool else {}
