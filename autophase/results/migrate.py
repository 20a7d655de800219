"""Records written before the schema → :class:`~.schema.Result` (``autophase.result/1``).

Three old layouts existed, each converted by its own function (fields read by name):

* the benchmark envelope of ``write_record`` —
  ``{"suite", "created", "env": {git_sha, host, platform, python, cpu_model, cpu_cores,
  gpu, versions}, "results": {...}}`` — used by every ``benchmarks/bench_*.py``,
  ``hpc/scaling.py`` and fine-tuning (:func:`from_envelope`);
* ``autophase evaluate``'s bare results — ``{"data", "n", "model", "summary",
  "crystals", ...}``, with no suite, date or environment (:func:`from_evaluate`);
* ``autophase evaluate --suite external``'s bare results — ``{"suite": "external",
  "model", "settings", "sources", "command"}`` (:func:`from_external`).

The old dict goes to ``details`` whole; the figures come from the suite's converter in
:mod:`.suites` (the one the writers use now), so a migrated record and a fresh one of the
same run carry the same metrics. ``created`` and ``env`` are carried over; a field the old
record lacked is ``"unknown"`` (``cpu_cores`` 0), and a record with no date at all takes
the date git first saw the file (else the file's modification time).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import subprocess
from pathlib import Path
from typing import Any

from ..errors import InputError
from .schema import SCHEMA, Env, Gpu, Result, SchemaError, from_dict
from .suites import build

__all__ = ["is_current", "layout", "migrate_dict", "migrate_file", "from_envelope", "from_evaluate",
           "from_external", "old_env"]

UNKNOWN = "unknown"


def is_current(d: Any) -> bool:
    """True for a dict that claims the current schema (it may still fail validation)."""
    return isinstance(d, dict) and d.get("schema") == SCHEMA


def layout(d: Any) -> str | None:
    """``"current"``, ``"envelope"``, ``"evaluate"``, ``"external"``, or None (not a record)."""
    if not isinstance(d, dict):
        return None
    if "schema" in d:
        return "current" if d["schema"] == SCHEMA else None
    if isinstance(d.get("suite"), str) and isinstance(d.get("results"), dict):
        return "envelope"
    if d.get("suite") == "external" and isinstance(d.get("sources"), dict):
        return "external"
    if isinstance(d.get("summary"), dict) and isinstance(d.get("crystals"), list):
        return "evaluate"
    return None


def old_env(env: Any, load_average: Any = None) -> Env:
    """The old ``environment()`` dict as :class:`Env`; what it lacks is ``"unknown"``."""
    e = env if isinstance(env, dict) else {}

    def text(k: str) -> str:
        v = e.get(k)
        return str(v) if v not in (None, "") else UNKNOWN

    gpu = e.get("gpu")
    g = None
    if isinstance(gpu, dict) and gpu.get("name"):
        mem = gpu.get("memory_GiB")
        g = Gpu(name=str(gpu["name"]), count=int(gpu.get("count") or 1),
                memory_GiB=float(mem) if isinstance(mem, (int, float)) else None)
    cores = e.get("cpu_cores")
    versions = e.get("versions") if isinstance(e.get("versions"), dict) else {}
    load = None
    if isinstance(load_average, list) and len(load_average) == 3 and all(isinstance(x, (int, float))
                                                                            for x in load_average):
        load = [round(float(x), 2) for x in load_average]
    return Env(host=text("host"), platform=text("platform"), python=text("python"), cpu_model=text("cpu_model"),
               cpu_cores=int(cores) if isinstance(cores, int) and not isinstance(cores, bool) else 0,
               git_sha=e.get("git_sha") if isinstance(e.get("git_sha"), str) else None, gpu=g,
               versions={str(k): (str(v) if v is not None else None) for k, v in versions.items()},
               load_average=load)


def _command(raw: dict[str, Any]) -> str:
    c = raw.get("command")
    if isinstance(c, list):
        return " ".join(map(str, c))
    return c if isinstance(c, str) else ""


def _file_date(path: Path | None) -> str:
    """When git first recorded ``path`` (ISO 8601), else its modification time, else "unknown"."""
    if path is None:
        return UNKNOWN
    try:
        out = subprocess.run(["git", "log", "--format=%cI", "--", path.name], cwd=path.parent, capture_output=True,
                             text=True, timeout=10).stdout.split()
        if out:
            return _dt.datetime.fromisoformat(out[-1]).astimezone(_dt.timezone.utc).isoformat(timespec="seconds")
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    try:
        t = path.stat().st_mtime
    except OSError:
        return UNKNOWN
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="seconds")


def from_envelope(d: dict[str, Any], path: Path | None = None) -> Result:
    """``{"suite", "created", "env", "results"}`` → Result (device from ``env.gpu``)."""
    raw = d["results"]
    load = raw.get("load_average_start", raw.get("load_avg_start"))
    env = old_env(d.get("env"), load)
    created = d.get("created") if isinstance(d.get("created"), str) else _file_date(path)
    return build(d["suite"], raw, command=_command(raw), env=env, created=created,
                 device="gpu" if env.gpu else "cpu")


def from_evaluate(d: dict[str, Any], path: Path | None = None) -> Result:
    """``autophase evaluate``'s bare results → suite ``evaluate`` (host from ``machine`` if any)."""
    machine = d.get("machine") if isinstance(d.get("machine"), dict) else {}
    env = old_env({"host": machine.get("host")})
    notes = [str(machine["note"])] if machine.get("note") else []
    return build("evaluate", d, command=_command(d), env=env, created=_file_date(path), device="cpu", notes=notes)


def from_external(d: dict[str, Any], path: Path | None = None) -> Result:
    """``autophase evaluate --suite external``'s bare results → suite ``external``."""
    return build("external", d, command=_command(d), env=old_env(None), created=_file_date(path), device="cpu")


_CONVERT = {"envelope": from_envelope, "evaluate": from_evaluate, "external": from_external}


def migrate_dict(d: Any, path: Path | None = None, where: str = "record") -> Result:
    """Any known layout → a checked Result; SchemaError (naming ``where``) otherwise."""
    kind = layout(d)
    if kind is None:
        if isinstance(d, dict) and "schema" in d:
            raise SchemaError(f"{where}.schema: {d['schema']!r} is not {SCHEMA!r} and no migration knows it")
        raise SchemaError(f"{where}: not a result record in any known layout "
                          "(no 'schema', no suite+results envelope, no evaluate summary+crystals)")
    if kind == "current":
        return from_dict(Result, d, where)
    res = _CONVERT[kind](d, path)
    return from_dict(Result, json.loads(json.dumps(res.to_dict())), where)  # as it will read back


def _load(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not readable JSON ({e})") from None


def migrate_file(path: str | os.PathLike) -> Result | None:
    """The migrated record of ``path``, or None when it is already current (and valid).
    Raises InputError naming the file (and the field) when it cannot be migrated."""
    p = Path(path)
    d = _load(p)
    try:
        res = migrate_dict(d, p, p.name)
    except SchemaError as e:
        raise InputError(f"{p}: {e}") from None
    return None if layout(d) == "current" else res
