"""The one writer and the one reader of :class:`~.schema.Result` records.

    from autophase.results import Metric, new_result, write_result
    res = new_result("live", command=" ".join(sys.argv))
    res.metrics.append(Metric("watch.latency_s", 0.41, "s", better="lower", samples=[...]))
    write_result(res)            # benchmarks/results/live-cpu.json in a checkout

Writing checks the record against the schema first (a record that would not load is
never written) and replaces the file atomically.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

from ..atomic import write_json
from ..errors import InputError
from .schema import Env, Gpu, Result, SchemaError, from_dict

__all__ = ["environment", "new_result", "write_result", "read_result", "results_dir", "default_path"]


def environment() -> Env:
    """Where this process runs (git SHA, host, CPU, GPU, library versions, load)."""
    from ..bench.record import environment as _env  # the probing lives there

    d = _env()
    gpu = d.get("gpu")
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        load = None
    return Env(host=d["host"], platform=d["platform"], python=d["python"], cpu_model=d["cpu_model"],
               cpu_cores=int(d["cpu_cores"] or 0), git_sha=d.get("git_sha"),
               gpu=Gpu(**gpu) if isinstance(gpu, dict) else None, versions=dict(d.get("versions") or {}),
               load_average=load)


def new_result(suite: str, kind: str = "benchmark", *, command: str = "", env: Env | None = None,
               **fields: Any) -> Result:
    """An empty record for ``suite``, stamped now (UTC) with this machine's environment;
    ``device`` is "gpu" when CUDA is visible unless given."""
    env = env if env is not None else environment()
    device = fields.pop("device", "gpu" if env.gpu else "cpu")
    created = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return Result(suite=suite, kind=kind, created=created, device=device, env=env, command=command, **fields)


def results_dir() -> Path:
    """benchmarks/results in a source checkout; ./benchmark-results from an installed wheel."""
    from ..paths import checkout_root

    root = checkout_root()
    return root / "benchmarks" / "results" if root is not None else Path.cwd() / "benchmark-results"


def default_path(result: Result) -> Path:
    return results_dir() / f"{result.suite}-{result.device}.json"


def write_result(result: Result, path: str | os.PathLike | None = None) -> Path:
    """Check ``result`` against the schema, then write it atomically as JSON; the path."""
    d = result.to_dict()
    from_dict(Result, json.loads(json.dumps(d)), f"result {result.suite}")  # raises SchemaError
    return write_json(Path(path) if path is not None else default_path(result), d, indent=1)


def read_result(path: str | os.PathLike) -> Result:
    """A record from disk; an unreadable file or one that does not match the schema is an
    :class:`~autophase.errors.InputError` naming the file and the field."""
    p = Path(path)
    try:
        d = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except (OSError, ValueError) as e:
        raise InputError(f"{p}: not readable JSON ({e})") from None
    try:
        return from_dict(Result, d, p.name)
    except SchemaError as e:
        raise InputError(f"{p}: {e}") from None

