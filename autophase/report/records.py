"""Benchmark records on disk → :class:`Record` objects the report can rely on.

A record is what :func:`autophase.bench.record.write_record` writes::

    {"suite": str, "created": ISO-8601, "env": {git_sha, host, cpu_model, cpu_cores, gpu, …},
     "results": {…}}

The loader also accepts

* a report bundle (``report.json`` written by :func:`autophase.report.build.build_report`):
  ``{"kind": "autophase-report", "records": [record, …]}``, so that the previous day's
  report can be compared with directly;
* a bare JSON object without ``suite``/``results`` (e.g. the output of
  ``autophase evaluate``): it becomes a record whose suite is named after the file
  (``evaluate`` when the file's name says so) and whose results are the whole object.

The device of a record ("cpu" or "gpu") comes from ``env.gpu`` (set by write_record when
CUDA was visible), falling back on a ``-gpu``/``-cpu`` suffix of the file name.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..errors import InputError

__all__ = ["Record", "load_records", "load_json_records", "newest_per_key", "BUNDLE_KIND"]

BUNDLE_KIND = "autophase-report"
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


@dataclass(frozen=True)
class Record:
    """One suite's results from one run on one device.

    ``created`` is timezone-aware UTC (the epoch when the file did not say); ``env`` and
    ``results`` are the record's own dicts, untouched; ``source`` is where it was read.
    """

    suite: str
    device: str
    created: _dt.datetime
    env: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def key(self) -> tuple[str, str]:
        """What identifies "the same benchmark" across runs: (suite, device)."""
        return (self.suite, self.device)

    @property
    def gpu_name(self) -> str | None:
        gpu = self.env.get("gpu")
        if isinstance(gpu, dict):
            return str(gpu.get("name") or "GPU")
        return str(gpu) if gpu else None

    def to_json(self) -> dict[str, Any]:
        """The record as write_record wrote it (plus the device, for bundles)."""
        return {"suite": self.suite, "device": self.device,
                "created": self.created.isoformat(timespec="seconds"),
                "env": self.env, "results": self.results, "source": self.source}


def _parse_time(value: Any) -> _dt.datetime:
    if isinstance(value, str):
        try:
            t = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return _EPOCH
        return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return _dt.datetime.fromtimestamp(value, _dt.timezone.utc)
    return _EPOCH


def _device(obj: dict[str, Any], name: str) -> str:
    if obj.get("device") in ("cpu", "gpu"):
        return obj["device"]
    env = obj.get("env") if isinstance(obj.get("env"), dict) else {}
    if env.get("gpu"):
        return "gpu"
    if "gpu" in env:  # write_record says explicitly: no GPU was visible
        return "cpu"
    m = re.search(r"-(cpu|gpu)$", name)
    return m.group(1) if m else "cpu"


def _from_obj(obj: Any, where: str, stem: str) -> list[Record]:
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if obj.get("kind") == BUNDLE_KIND:
        recs = obj.get("records")
        if not isinstance(recs, list):
            raise InputError(f"{where}: report bundle has no 'records' list")
        out: list[Record] = []
        for i, r in enumerate(recs):
            out.extend(_from_obj(r, f"{where}[records][{i}]", stem))
        return out
    if "results" in obj and isinstance(obj.get("results"), dict):
        suite = obj.get("suite") if isinstance(obj.get("suite"), str) and obj.get("suite") else stem
        env = obj.get("env") if isinstance(obj.get("env"), dict) else {}
        return [Record(suite=suite, device=_device(obj, stem), created=_parse_time(obj.get("created")),
                       env=env, results=obj["results"], source=str(obj.get("source") or where))]
    # A bare results object: `autophase evaluate` output (per-method lists, or a file
    # named so), else the file names the suite.
    looks_eval = bool({"nn", "nn_refine", "phasing", "crystals"} & set(obj)) or "chi2" in obj
    suite = "evaluate" if looks_eval or "eval" in where.lower() else re.sub(r"-(cpu|gpu)$", "", stem)
    env = obj.get("env") if isinstance(obj.get("env"), dict) else {}
    return [Record(suite=suite, device=_device(obj, stem), created=_parse_time(obj.get("created")),
                   env=env, results=obj, source=where)]


def load_json_records(path: Path) -> list[Record]:
    """Records in one JSON file (a record, a bundle, or a bare results object)."""
    try:
        text = path.read_text()
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    recs = _from_obj(obj, str(path), path.stem)
    # A file without a "created" stamp (e.g. evaluate output) dates from its last write.
    return [r if r.created != _EPOCH else
            Record(r.suite, r.device, _dt.datetime.fromtimestamp(path.stat().st_mtime, _dt.timezone.utc),
                   r.env, r.results, r.source) for r in recs]


def _json_files(directory: Path) -> list[Path]:
    """JSON files directly in ``directory`` and in its ``results/`` subfolder.

    ``*.tmp`` files (a suite still writing) and our own ``report.json`` bundle are left
    out: a report folder's bundle duplicates the records beside it.
    """
    files = sorted(p for p in directory.glob("*.json") if p.name != "report.json")
    if (directory / "results").is_dir():
        files += sorted((directory / "results").glob("*.json"))
    return files


def load_records(paths: Iterable[str | Path], *, prefer_bundle: bool = False) -> list[Record]:
    """Load every record named by ``paths`` (JSON files or folders of them).

    A folder contributes its ``*.json`` and ``results/*.json``; with ``prefer_bundle`` a
    folder holding a ``report.json`` (a past report) contributes that bundle instead.
    Raises InputError for a missing path, unreadable or invalid JSON, or a folder with
    no JSON at all.
    """
    out: list[Record] = []
    for p in map(Path, paths):
        if p.is_dir():
            if prefer_bundle and (p / "report.json").is_file():
                out.extend(load_json_records(p / "report.json"))
                continue
            files = _json_files(p)
            if not files:
                raise InputError(f"{p}: folder holds no *.json benchmark records")
            for f in files:
                out.extend(load_json_records(f))
        elif p.is_file():
            out.extend(load_json_records(p))
        else:
            raise InputError(f"{p}: no such file or folder")
    return out


def newest_per_key(records: Iterable[Record]) -> tuple[list[Record], list[Record]]:
    """Keep the newest record per (suite, device); return (kept, superseded).

    Lets a nightly run pass both today's results and the committed GPU records of
    ``benchmarks/results/`` without a suite appearing twice.
    """
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
    kept = sorted(best.values(), key=lambda r: (r.suite, r.device))
    return kept, dropped
