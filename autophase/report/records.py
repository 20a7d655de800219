"""Result records on disk → :class:`Record` (a :class:`~autophase.results.Result` and
where it was read), with one warning per file that is not a valid record.

Inputs are record files (``autophase.results.write_result``), folders of them, and
report bundles (``report.json`` written by :func:`autophase.report.build.build_report`:
``{"kind": "autophase-report", "records": [Result.to_dict(), …]}``), so that the
previous day's report can be compared with directly. A file that does not load (bad
JSON, an old-format record, a field of the wrong type) is skipped with a warning that
names the file and the field; the rest of the report still renders.
"""
from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..errors import InputError
from ..results import Result, SchemaError, from_dict, read_result

__all__ = ["Record", "Loaded", "load_records", "newest_per_key", "BUNDLE_KIND"]

BUNDLE_KIND = "autophase-report"
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


@dataclass(frozen=True)
class Record:
    """One suite's result from one run on one device, and the file it came from."""

    result: Result
    source: str

    @property
    def suite(self) -> str:
        return self.result.suite

    @property
    def device(self) -> str:
        return self.result.device

    @property
    def key(self) -> tuple[str, str]:
        """What identifies "the same benchmark" across runs: (suite, device)."""
        return (self.result.suite, self.result.device)

    @property
    def created(self) -> _dt.datetime:
        """``created`` as an aware UTC time (the epoch when it is not ISO 8601)."""
        try:
            t = _dt.datetime.fromisoformat(self.result.created.replace("Z", "+00:00"))
        except ValueError:
            return _EPOCH
        return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)

    @property
    def gpu_name(self) -> str | None:
        return self.result.env.gpu.name if self.result.env.gpu else None


@dataclass
class Loaded:
    records: list[Record]
    warnings: list[str]     # one line each: "FILE: field path: problem"


def _load_file(path: Path, out: Loaded) -> None:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        obj = None  # read_result below says what is wrong, in its words
    if isinstance(obj, dict) and obj.get("kind") == BUNDLE_KIND:
        recs = obj.get("records")
        if not isinstance(recs, list):
            out.warnings.append(f"{path}: report bundle has no 'records' list")
            return
        for i, d in enumerate(recs):
            try:
                out.records.append(Record(from_dict(Result, d, f"records[{i}]"), f"{path} [records][{i}]"))
            except SchemaError as e:
                out.warnings.append(f"{path}: {e}")
        return
    try:
        out.records.append(Record(read_result(path), str(path)))
    except InputError as e:
        out.warnings.append(str(e))


def _json_files(directory: Path) -> list[Path]:
    """``*.json`` directly in ``directory`` and in its ``results/``; a report folder's own
    ``report.json`` is left out (it duplicates the records beside it)."""
    files = sorted(p for p in directory.glob("*.json") if p.name != "report.json")
    if (directory / "results").is_dir():
        files += sorted((directory / "results").glob("*.json"))
    return files


def load_records(paths: Iterable[str | Path], *, prefer_bundle: bool = False) -> Loaded:
    """Every record named by ``paths`` (files, folders, bundles) and a warning per file
    that is not a valid record. A missing path or a folder without JSON is an InputError
    (a mistyped argument, not a bad record); with ``prefer_bundle`` a folder holding a
    ``report.json`` (a past report) contributes that bundle instead of its files."""
    out = Loaded([], [])
    for p in map(Path, paths):
        if p.is_dir():
            if prefer_bundle and (p / "report.json").is_file():
                _load_file(p / "report.json", out)
                continue
            files = _json_files(p)
            if not files:
                raise InputError(f"{p}: folder holds no *.json result records")
            for f in files:
                _load_file(f, out)
        elif p.is_file():
            _load_file(p, out)
        else:
            raise InputError(f"{p}: no such file or folder")
    return out


def newest_per_key(records: Iterable[Record]) -> tuple[list[Record], list[Record]]:
    """The newest record per (suite, device), and the superseded ones: a nightly run
    passes tonight's records and the committed GPU ones without a suite appearing twice."""
    best: dict[tuple[str, str], Record] = {}
    dropped: list[Record] = []
    for r in records:
        old = best.get(r.key)
        if old is None:
            best[r.key] = r
        elif r.created > old.created:
            dropped.append(old)
            best[r.key] = r
        else:
            dropped.append(r)
    return sorted(best.values(), key=lambda r: r.key), dropped
