"""``autophase bench``: run the benchmark suites and collect their JSON records.

    autophase bench                      # every benchmarks/bench_*.py, full size
    autophase bench phasing inference --quick --out reports/2026-11-25/results
    autophase bench --list

Each suite ``benchmarks/bench_<name>.py`` runs as its own process with the repository's
Python (``.venv/bin/python`` when it exists, else this interpreter), so that one suite's
crash, leak or thread settings cannot touch another's figures. A suite writes its record
with :func:`autophase.bench.record.write_record` (a :class:`autophase.results.Result`); the records it wrote or rewrote during
its run (``benchmarks/results/*.json`` newer than its start, or any JSON it wrote under
``$AUTOPHASE_BENCH_OUT``) are copied into ``--out``, with the suite's log beside them in
``logs/<name>.log``, and how each suite went (ok, failed, timeout, no-json; seconds) in
``logs/bench-status.json``, which ``autophase report`` shows. Suites run one after
another: they time things, and two at once would time each other.

Exit status: 0 when every suite succeeded and wrote a record, 1 otherwise (the others
still run).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from autophase.atomic import copy_file, write_json
from autophase.errors import InputError
from autophase.paths import checkout_root

NAME = "bench"
HELP = "run benchmark suites (benchmarks/bench_*.py) and collect their JSON records"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("suites", nargs="*", metavar="SUITE",
                   help="suite names (bench_<SUITE>.py); default: all")
    p.add_argument("--quick", action="store_true", help="pass --quick: small sizes, few repeats (minutes)")
    p.add_argument("--out", metavar="DIR",
                   help="collect the records (and logs/) here (default: benchmarks/results in a checkout, "
                        "./benchmark-results from an installed wheel)")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="stop a suite after S seconds (it then counts as failed)")
    p.add_argument("--list", action="store_true", help="list the suites and exit")
    p.add_argument("--bench-dir", metavar="DIR", help=argparse.SUPPRESS)  # tests point it elsewhere


def benchmarks_dir() -> Path:
    """The suites: ``autophase.benchmarks`` (the checkout's benchmarks/, or inside a wheel).

    Looked up when asked, not at import: the CLI imports every command module at start-up.
    """
    import importlib.util

    spec = importlib.util.find_spec("autophase.benchmarks")  # None: a checkout on PYTHONPATH, not installed
    return Path(spec.origin).parent if spec else Path(__file__).resolve().parents[2] / "benchmarks"


#: where suites run (and the repository's .venv): the checkout, else the current directory
REPO = checkout_root()
OUT_ENV = "AUTOPHASE_BENCH_OUT"
STATUS_FILE = "bench-status.json"


@dataclass
class SuiteRun:
    """How one suite went: ``status`` ∈ {"ok", "failed", "timeout", "no-json"}."""

    name: str
    status: str = "failed"
    returncode: int | None = None
    seconds: float = 0.0
    records: list[Path] = field(default_factory=list)
    log: Path | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def list_suites(bench_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """``{name: path}`` of ``bench_<name>.py`` in the benchmarks folder, sorted by name."""
    d = Path(bench_dir) if bench_dir else benchmarks_dir()
    if not d.is_dir():
        raise InputError(f"{d}: no benchmarks folder (run from a source checkout of autophase)")
    return {p.stem[len("bench_"):]: p for p in sorted(d.glob("bench_*.py"))}


def repo_python() -> str:
    """The repository's virtual environment's Python if there is one, else this one."""
    venv = REPO / ".venv" / "bin" / "python" if REPO is not None else None
    return str(venv) if venv is not None and venv.exists() else sys.executable


def _json_mtimes(dirs: list[Path]) -> dict[Path, float]:
    out = {}
    for d in dirs:
        for p in d.glob("*.json"):
            try:
                out[p.resolve()] = p.stat().st_mtime
            except OSError:
                pass
    return out


def _is_record(p: Path) -> bool:
    """A result record that reads back against the schema (:func:`autophase.results.read_result`)."""
    from autophase.results import read_result

    try:
        read_result(p)
    except InputError:
        return False
    return True


def _takes_out(script: Path) -> bool:
    """Whether the suite accepts ``--out PATH`` (the convention hpc/stages.py relies on)."""
    try:
        return re.search(r"""add_argument\(\s*["']--out["']""", script.read_text()) is not None
    except OSError:
        return False


def _device_of(path: Path) -> str:
    """The record's ``device`` ("cpu" or "gpu"); "cpu" when it cannot be read."""
    try:
        dev = json.loads(path.read_text()).get("device")
    except (OSError, ValueError, AttributeError):
        return "cpu"
    return dev if dev in ("cpu", "gpu") else "cpu"


def _run_one(name: str, script: Path, quick: bool, out: Path, timeout_s: float | None,
             bench_dir: Path) -> SuiteRun:
    res = SuiteRun(name)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    res.log = logs / f"{name}.log"
    cmd = [repo_python(), str(script)] + (["--quick"] if quick else [])
    # A suite that takes --out writes straight into the collection (named after its
    # device once we know it); one that does not writes to benchmarks/results/, which
    # is watched for records newer than its start.
    staged = out / f".{name}.partial.json" if _takes_out(script) else None
    if staged is not None:
        staged.unlink(missing_ok=True)
        cmd += ["--out", str(staged)]
    watch = [bench_dir / "results", out]
    before = _json_mtimes(watch)
    env = dict(os.environ, PYTHONUNBUFFERED="1", **{OUT_ENV: str(out)})
    print(f"bench: {name}: {' '.join(cmd)}", flush=True)
    t0 = time.monotonic()
    # Own session, so a timeout ends the suite and every process it started (mpiexec
    # ranks, LAMMPS) by its process-group id, and nothing else.
    with open(res.log, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=REPO or Path.cwd(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = None if timeout_s is None else t0 + timeout_s
        try:
            assert proc.stdout is not None
            os.set_blocking(proc.stdout.fileno(), False)
            while True:
                chunk = proc.stdout.read(65536)
                if chunk:
                    log.write(chunk)
                    sys.stdout.buffer.write(chunk)
                    sys.stdout.flush()
                elif proc.poll() is not None:
                    break
                else:
                    time.sleep(0.05)
                if deadline is not None and time.monotonic() > deadline and proc.poll() is None:
                    _stop(proc)
                    res.status = "timeout"
                    break
        except BaseException:
            _stop(proc)
            raise
    res.returncode = proc.returncode
    res.seconds = time.monotonic() - t0
    if staged is not None and staged.is_file() and _is_record(staged):
        dest = out / f"{name}-{_device_of(staged)}.json"
        os.replace(staged, dest)
        res.records.append(dest)
    else:
        after = _json_mtimes(watch)
        fresh = sorted(p for p, m in after.items()
                       if m > before.get(p, 0.0) and not p.name.startswith(".") and _is_record(p))
        for p in fresh:
            dest = out / p.name
            if p != dest.resolve():
                copy_file(p, dest)
            res.records.append(dest)
    if staged is not None:
        staged.unlink(missing_ok=True)
    if res.status != "timeout":
        res.status = "failed" if proc.returncode else ("ok" if res.records else "no-json")
    print(f"bench: {name}: {res.status} in {res.seconds:.1f} s"
          + (f" (exit {proc.returncode}; log {res.log})" if res.status != "ok" else ""), flush=True)
    return res


def _stop(proc: subprocess.Popen) -> None:
    """End the suite's process group (TERM, then KILL after 10 s)."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


def run_suites(names: list[str], quick: bool = False, out: str | os.PathLike | None = None,
               timeout_s: float | None = None, bench_dir: str | os.PathLike | None = None) -> list[SuiteRun]:
    """Run the named suites one after another; collect their records into ``out``."""
    suites = list_suites(bench_dir)
    unknown = [n for n in names if n not in suites]
    if unknown:
        raise InputError(f"unknown suite(s) {', '.join(unknown)}; available: {', '.join(suites) or 'none'}")
    if not names:
        raise InputError(f"{bench_dir or benchmarks_dir()}: no bench_*.py suites found")
    bdir = Path(bench_dir) if bench_dir else benchmarks_dir()
    if out:
        out_dir = Path(out)
    elif bench_dir:
        out_dir = bdir / "results"
    else:
        from autophase.results import results_dir

        out_dir = results_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for n in names:
        runs.append(_run_one(n, suites[n], quick, out_dir, timeout_s, bdir))
        _write_status(out_dir, runs, quick, timeout_s)  # after each suite: a killed run still tells
    return runs


def _write_status(out: Path, runs: list[SuiteRun], quick: bool, timeout_s: float | None) -> Path:
    """``logs/bench-status.json``: how each suite went, for the report's "did not finish" note.

    Merged with an existing file so that separate ``autophase bench`` calls into one
    folder add up; written atomically.
    """
    path = out / "logs" / STATUS_FILE
    try:
        old = json.loads(path.read_text()).get("suites", {})
    except (OSError, ValueError, AttributeError):
        old = {}
    for r in runs:
        old[r.name] = {"status": r.status, "seconds": round(r.seconds, 2), "returncode": r.returncode,
                       "log": str(r.log.relative_to(out)) if r.log else None,
                       "records": [p.name for p in r.records], "quick": quick, "timeout_s": timeout_s}
    doc = {"kind": "autophase-bench-status", "updated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "suites": old}
    return write_json(path, doc, indent=1)


def run(args: argparse.Namespace) -> int:
    suites = list_suites(args.bench_dir)
    if args.list:
        for name, path in suites.items():
            print(f"{name:16s} {path}")
        return 0
    results = run_suites(args.suites or list(suites), quick=args.quick, out=args.out,
                         timeout_s=args.timeout, bench_dir=args.bench_dir)
    width = max(len(r.name) for r in results)
    print("\nbench: summary")
    for r in results:
        files = ", ".join(p.name for p in r.records) or "no record"
        print(f"  {r.name:{width}s}  {r.status:8s} {r.seconds:7.1f} s  {files}")
    return 0 if all(r.ok for r in results) else 1
