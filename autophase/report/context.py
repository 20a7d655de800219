"""What every section of one report needs: the records, the previous run, the changes.

Built once by :func:`autophase.report.build.build_report`; sections read it and add
*findings* (peer speed-ups, scaling efficiencies, GPU speed-ups) that the summary cards
at the top of the page condense into "faster than yesterday / than the peers / how it
scales".
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..results import Env, Metric, Series
from .compare import THRESHOLD, Change, compare
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
    changes: dict[tuple[str, str], dict[tuple, Change]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    _fig_names: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._prev = {r.key: r for r in self.previous}
        for r in self.records:
            p = self._prev.get(r.key)
            chs = compare(r.suite, r.device, r.result.metrics, p.result.metrics if p else None, self.threshold)
            self.changes[r.key] = {c.key: c for c in chs}

    def change(self, rec: Record, m: Metric) -> Change | None:
        return self.changes.get(rec.key, {}).get(m.key())

    def previous_series(self, rec: Record, s: Series) -> Series | None:
        """The same series (name and params) in the previous run of the same suite and device."""
        p = self._prev.get(rec.key)
        return next((x for x in p.result.series if x.key() == s.key()), None) if p else None

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

    def env_summary(self) -> Env | None:
        """The run's environment from its newest CPU record (else any record)."""
        pool = [r for r in self.records if r.device == "cpu"] or self.records
        return max(pool, key=lambda r: r.created).result.env if pool else None
