"""Latency of the warm ``autophase watch`` service against whole one-shot processes (issue 16).

    .venv/bin/python benchmarks/bench_live.py              # 5 patterns, ≈3 min on a quiet 2-core CPU
    .venv/bin/python benchmarks/bench_live.py --n 7 --out benchmarks/results/live-cpu.json

Data: ``--n`` 64³ patterns of simulated strained gold crystals with 10⁶ photons
(the same as ``bench_phasing.py``), written as .npy counts to a staging folder on the
same file system as the INBOX.

Sections (one JSON record, ``benchmarks/results/live-<cpu|gpu>.json``):

* ``watch_refine50`` / ``watch_refine0`` — a service ``autophase watch INBOX -o OUT
  --format npz --refine 50|0`` (default options otherwise, so 4 symmetric copies before ER
  and one network pass at ``--refine 0``; ``--other-k`` adds ``watch_refine50_sym1`` and
  ``watch_refine0_sym4``, each row records its K as ``symmetries``; pictures on, made by its
  background process) is started as a subprocess; after its ``ready`` line each pattern
  is renamed into INBOX one at a time, ``--gap`` seconds after the previous result, and
  the latency is the wall time from the ``rename`` to the result file being present.
  The harness waits for that file in a blocking ``inotify`` read (:class:`ResultWait`),
  not a poll: a Python loop waking every 0.5 ms took enough of a 2-core machine to slow
  the service's 2-thread network passes it was timing (docs/watch.md, "The observer").
  The service's own event line (stage times, χ²) is kept beside each latency. On a GPU the network and the refinement run on it.
* ``whole_phase`` / ``whole_predict`` — whole processes ``autophase phase P -o y.npz
  --no-plot`` and ``autophase predict P -o x.npz --refine 50 --no-plot`` on the same
  patterns, alternated pattern by pattern so that a drifting machine load hits both.
  With ``--cold`` the page cache is dropped before each one (``sync``; 3 to
  ``/proc/sys/vm/drop_caches``, root only): every import and model file comes from disk,
  as for the first command after a while. ``--no-watch`` leaves the service rows out.

Acceptance (issue 16): refine-50 median ≤ 1.0 s and ≥ 5× below the whole phase process;
refine-0 median ≤ 0.3 s (≤ 50 ms on a GPU); whole predict ≤ whole phase.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from autophase.bench.record import write_record  # noqa: E402
from autophase.predict import DEFAULT_SYMMETRIES, default_symmetries  # noqa: E402

AUTOPHASE = [sys.executable, "-m", "autophase.cli"]


def _stats(xs: list[float]) -> dict:
    xs = [float(x) for x in xs]
    q = np.percentile(xs, [25, 75]) if len(xs) > 1 else [xs[0], xs[0]]
    return {"median_s": statistics.median(xs), "min_s": min(xs), "max_s": max(xs), "q25_s": float(q[0]),
            "q75_s": float(q[1]), "n": len(xs), "values_s": [round(x, 5) for x in xs]}


class _Service:
    """``autophase watch`` as a subprocess; stdout lines collected by a thread."""

    def __init__(self, inbox: Path, out: Path, options: list[str]):
        self.cmd = [*AUTOPHASE, "watch", str(inbox), "-o", str(out), *options]
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.lines: list[str] = []
        self.t_start = time.perf_counter()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_ready(self, timeout: float = 600) -> float:
        t_end = time.monotonic() + timeout
        while not any(s.startswith("ready") for s in self.lines):
            if self.proc.poll() is not None or time.monotonic() > t_end:
                self.proc.kill()
                raise RuntimeError(f"watch did not become ready: {self.proc.stderr.read()[-2000:]}")
            time.sleep(0.01)
        return time.perf_counter() - self.t_start

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(300)


class ResultWait:
    """Blocks until a named file appears in a directory: Linux ``inotify`` through ctypes
    (``IN_MOVED_TO | IN_CLOSE_WRITE``: the service renames its result into place), so the
    waiting process uses no CPU. Elsewhere, or if inotify is unavailable, a 0.5 ms poll
    (``self.kind`` says which).

    Use: ``w = ResultWait(out)`` *before* the input is renamed (so no event can be missed),
    then ``w.wait(name, alive)``; ``alive()`` False ends the wait with RuntimeError.
    """

    IN_MOVED_TO, IN_CLOSE_WRITE = 0x80, 0x8

    def __init__(self, directory: Path):
        import ctypes
        import ctypes.util

        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fd, self.kind = -1, "poll 0.5 ms"
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fd = libc.inotify_init1(os.O_CLOEXEC)
            if fd >= 0 and libc.inotify_add_watch(fd, str(self.dir).encode(),
                                                  self.IN_MOVED_TO | self.IN_CLOSE_WRITE) >= 0:
                self.fd, self.kind = fd, "inotify"
            elif fd >= 0:
                os.close(fd)
        except (OSError, AttributeError):
            pass

    def wait(self, name: str, alive, timeout: float = 600.0) -> None:
        import select
        import struct

        target, t_end = self.dir / name, time.monotonic() + timeout
        while not target.exists():
            if not alive():
                raise RuntimeError("the service ended while a result was awaited")
            if time.monotonic() > t_end:
                raise RuntimeError(f"no {name} after {timeout:.0f} s")
            if self.fd < 0:
                time.sleep(0.0005)
                continue
            # a blocking read of the events, woken at least every 0.5 s to check the service
            if select.select([self.fd], [], [], 0.5)[0]:
                buf, i = os.read(self.fd, 65536), 0
                while i + 16 <= len(buf):  # struct inotify_event: wd, mask, cookie, len, name
                    _, _, _, n = struct.unpack_from("iIII", buf, i)
                    if buf[i + 16:i + 16 + n].rstrip(b"\0").decode(errors="replace") == name:
                        return
                    i += 16 + n

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def watch_latency(name: str, patterns: list[Path], options: list[str], gap: float, work: Path,
                  symmetries: int) -> dict:
    """One service row; ``symmetries``: the K the service runs with (``options`` say it, or
    its default for the row's ``--refine``), recorded as ``"symmetries"``."""
    inbox, out, stage = work / f"{name}-in", work / f"{name}-out", work / f"{name}-stage"
    for d in (inbox, stage):
        d.mkdir()
    for p in patterns:
        os.link(p, stage / p.name) if hasattr(os, "link") else stage.joinpath(p.name).write_bytes(p.read_bytes())
    svc = _Service(inbox, out, options)
    ready_s = svc.wait_ready()
    waiter = ResultWait(out)
    print(f"{name}: ready after {ready_s:.1f} s ({svc.lines[0].strip()})", flush=True)
    lat = []
    try:
        for p in patterns:
            time.sleep(gap)
            target = out / (p.stem + ".npz")
            t0 = time.perf_counter()
            os.rename(stage / p.name, inbox / p.name)
            try:
                waiter.wait(target.name, lambda: svc.proc.poll() is None)
            except RuntimeError as e:
                raise RuntimeError(f"{e}: {svc.proc.stderr.read()[-2000:]}") from None
            lat.append(time.perf_counter() - t0)
            print(f"{name}: {p.name} {lat[-1] * 1e3:.0f} ms", flush=True)
        time.sleep(0.2)
    finally:
        waiter.close()
        rc = svc.stop()
    events = [json.loads(s) for s in (out / "events.jsonl").read_text().splitlines()]
    res = {"command": " ".join(["autophase", *svc.cmd[3:]]), "symmetries": symmetries, "ready_s": ready_s,
           "exit_code": rc,
           "ready_line": svc.lines[0].strip(), "gap_s": gap, "wait": waiter.kind, "latency": _stats(lat),
           "events": [{k: e.get(k) for k in ("input", "event", "latency_s", "chi2", "llk_free", "stages",
                                             "symmetries", "outline", "start_phase",
                                             "start_sw_threshold", "model_version", "device", "error")} for e in events]}
    return res


def drop_page_cache() -> None:
    """Write dirty pages out and drop the clean ones (root only), so a process starts cold."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as e:
        raise SystemExit(f"bench_live: --cold: cannot drop the page cache ({e.strerror}); run as root") from None


def whole_processes(patterns: list[Path], work: Path, refine: int, cold: bool = False) -> tuple[dict, dict]:
    ph, pr = [], []
    env = dict(os.environ)
    for k, p in enumerate(patterns):
        runs = [("phase", [*AUTOPHASE, "phase", str(p), "-o", str(work / "y.npz"), "--no-plot"], ph),
                ("predict", [*AUTOPHASE, "predict", str(p), "-o", str(work / "x.npz"), "--refine", str(refine),
                             "--no-plot"], pr)]
        if k % 2:
            runs.reverse()
        for name, cmd, acc in runs:
            if cold:
                drop_page_cache()
            t0 = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
            dt = time.perf_counter() - t0
            if r.returncode:
                raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr[-2000:]}")
            acc.append(dt)
            print(f"whole {name}: {p.name} {dt:.2f} s", flush=True)
    return ({"command": "autophase phase P -o y.npz --no-plot", **_stats(ph)},
            {"command": f"autophase predict P -o x.npz --refine {refine} --no-plot", **_stats(pr)})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=5, help="patterns (default 5)")
    ap.add_argument("--gap", type=float, default=1.0, help="seconds between a result and the next rename (default 1)")
    ap.add_argument("--no-whole", action="store_true", help="skip the whole-process rows")
    ap.add_argument("--no-watch", action="store_true", help="skip the service rows (whole processes only)")
    ap.add_argument("--cold", action="store_true",
                    help="drop the page cache before every whole process (root only)")
    ap.add_argument("--other-k", action="store_true",
                    help="also the two service rows at the other number of symmetric copies: --refine 50 "
                         "--symmetries 1 and --refine 0 --symmetries 4")
    ap.add_argument("--no-plot", action="store_true",
                    help="services without pictures (a node whose Python has no matplotlib)")
    ap.add_argument("--note", default="", help="a note stored with the record (e.g. 'machine shared')")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/live-<cpu|gpu>.json)")
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error("--n must be ≥ 1")
    from bench_phasing import make_patterns

    import torch

    gpu = torch.cuda.is_available()
    print(f"simulating {args.n} crystals …", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_live.") as d:
        work = Path(d)
        src = work / "patterns"
        src.mkdir()
        patterns = []
        for i, (mag, _) in enumerate(make_patterns(args.n, seed=21)):
            p = src / f"pattern{i:02d}.npy"
            np.save(p, (mag.astype(np.float32) ** 2))
            patterns.append(p)
        results: dict = {"n_patterns": args.n, "shape": [64, 64, 64], "photons": 1e6, "gpu": gpu,
                         "note": args.note, "load_average_start": os.getloadavg()}
        nop = ["--no-plot"] if args.no_plot else []
        results["plot"] = not args.no_plot
        results["cold"] = args.cold
        if not args.no_watch:
            # the service's defaults first (the acceptance rows), then the other K for each
            for k in (50, 0):
                results[f"watch_refine{k}"] = watch_latency(
                    f"refine{k}", patterns, ["--refine", str(k), "--format", "npz", *nop], args.gap, work,
                    default_symmetries(k))
            if args.other_k:
                for k in (50, 0):
                    other = 1 if default_symmetries(k) > 1 else DEFAULT_SYMMETRIES
                    results[f"watch_refine{k}_sym{other}"] = watch_latency(
                        f"refine{k}sym{other}", patterns,
                        ["--refine", str(k), "--format", "npz", "--symmetries", str(other), *nop], args.gap, work, other)
        if not args.no_whole:
            results["whole_phase"], results["whole_predict"] = whole_processes(patterns, work, 50, cold=args.cold)
        results["load_average_end"] = os.getloadavg()
    acc, r50, r0 = {}, None, None
    if not args.no_watch:
        r50 = results["watch_refine50"]["latency"]["median_s"]
        r0 = results["watch_refine0"]["latency"]["median_s"]
        acc = {"refine50_median_le_1s": r50 <= 1.0, "refine0_median_le_0.3s": r0 <= 0.3}
        if gpu:  # the line sits under the --refine 50 measurement; --refine 0 must meet it a fortiori
            acc["refine50_median_le_50ms_gpu"] = r50 <= 0.05
            acc["refine0_median_le_50ms_gpu"] = r0 <= 0.05
    if not args.no_whole:
        ph = results["whole_phase"]["median_s"]
        results["whole_predict_over_whole_phase"] = results["whole_predict"]["median_s"] / ph
        acc["whole_predict_le_whole_phase"] = results["whole_predict"]["median_s"] <= ph
        if r50 is not None:
            results["whole_phase_over_watch_refine50"] = ph / r50
            acc["refine50_5x_below_whole_phase"] = ph / r50 >= 5
    results["acceptance"] = acc
    path = write_record("live", results, args.out)
    print(json.dumps({"watch_refine50_median_s": r50, "watch_refine0_median_s": r0,
                      **{k: results[k] for k in ("whole_phase_over_watch_refine50",
                                                 "whole_predict_over_whole_phase") if k in results},
                      "acceptance": acc}, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
