"""``autophase watch``: a warm service that inverts every pattern dropped into a folder.

One process keeps everything a one-shot ``predict`` pays for at start-up warm: torch
and the model (loaded once, compiled by inductor with freezing unless ``compile=False``,
swapped when a new version is promoted), the FFTW plans of
the refinement (wisdom cached on disk, :mod:`autophase.phasing.wisdom`), the numba
kernels (``cache=True``) and oneDNN's kernels for the batch shapes it will see (a
synthetic pattern goes through the whole path before ``ready`` is printed).

Arrivals
    INBOX is polled with ``os.scandir`` every ``poll_s`` (10 ms by default: ≈20 µs a
    scan, no dependency and no inotify limits on network file systems). A writer writes
    elsewhere (or under a temporary name) and *renames* the file in; names that look
    temporary (:func:`is_temp_name`: a leading ``.``/``~``/``#``, ``.tmp``/``.part``/
    ``.partial``/``.swp``/``~`` endings, ``.tmp.`` or ``.part-`` inside) are ignored until
    renamed. The arrival time is the file's ``st_ctime``, which ``rename(2)`` sets on
    Linux, so the reported latency does not depend on the poll period. Pattern files
    (:data:`PATTERN_SUFFIXES`) are read by :func:`autophase.io.patterns.load_pattern`;
    a raw 34-ID-C scan directory (TIFF frames, dark/white/SPEC beside them, as
    ``autophase prep`` reads it) is taken once a file named :data:`SCAN_MARKER`
    (``SCAN_COMPLETE``) appears in it — the acquisition writes it last — and goes
    through :func:`autophase.beamline.prep.prepare`; the prepared pattern is kept as
    ``OUT/prepped/<name>.cxi`` (so outputs get the scan's lab-frame geometry).

Work
    Everything that arrived since the last batch (up to ``batch_size``, in arrival
    order) goes through the network in one batch (CUDA when present), then each
    pattern gets its K refinement iterations and its result file, one after the other.
    ``OUT/<stem>.npz|.cxi`` appears atomically and first; the VTK and pictures
    (:func:`autophase.outputs.write_extras`) are made by a separate low-priority
    process, so they take neither the GIL nor the first core from the next pattern.

Events
    ``OUT/events.jsonl`` gets one JSON line per input, appended as the result file
    lands::

        {"event": "result", "time": ISO-8601, "input": path, "output": path,
         "model_version": str, "model_path": str, "chi2": float, "llk_free": float,
         "latency_s": result present − arrival, "arrival": epoch s,
         "stages": {"wait": s, "prep": s, "load": s, "nn": s, "refine": s, "write": s},
         "refine": K, "symmetries": k, "batch": n, "device": str}

    and ``{"event": "error", "time", "input", "stage", "error"}`` for an input that
    could not be done (unreadable, wrong shape, …); the service goes on. A line that
    fails to land never leaves half a JSON object behind a complete one (one write).

Stopping
    SIGTERM or SIGINT: the current pattern is finished (its result file and event
    land), queued ones are left for the next start, pending pictures are finished; a
    second signal abandons the pictures. No partial file is left (every writer goes
    through a hidden temporary and a rename). A restart skips the inputs whose result
    file exists.

Models
    Every event names the model (``model_version``: the checkpoint's SHA-256 prefix, or
    the version the learner gave it). Before each batch the service asks the learner
    (``--learn``, :mod:`autophase.live.learn`) or, without one, reads
    ``OUT/models/current.json`` (``{"version", "path"}``, written by the learner or a
    rollback) and swaps models when the version changed.
"""
from __future__ import annotations

import datetime as _dt
import json
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..atomic import is_part_name
from ..errors import InputError

__all__ = ["PATTERN_SUFFIXES", "SCAN_MARKER", "WatchConfig", "WatchService", "Inbox", "Arrival", "is_temp_name",
           "EventLog"]

PATTERN_SUFFIXES = (".npy", ".npz", ".h5", ".hdf5", ".cxi", ".tif", ".tiff")
SCAN_MARKER = "SCAN_COMPLETE"
_TEMP_ENDINGS = (".tmp", ".part", ".partial", ".swp", ".crdownload", "~")


def is_temp_name(name: str) -> bool:
    """True for a name a writer uses before renaming the file into place."""
    low = name.lower()
    return (name.startswith((".", "~", "#")) or low.endswith(_TEMP_ENDINGS) or ".tmp." in low
            or ".part-" in low)


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


# ----------------------------------------------------------------------------- arrivals
@dataclass(frozen=True)
class Arrival:
    """One input: ``path``; ``arrival`` epoch seconds (ctime of the rename, or of the scan's
    marker); ``detected`` epoch seconds when the poll saw it; ``kind`` "pattern" or "scan"."""

    path: Path
    arrival: float
    detected: float
    kind: str


class Inbox:
    """New entries of a folder, in arrival order, each reported once.

    ``poll()`` → list of :class:`Arrival`. A directory is reported once ``marker`` exists
    inside it. ``skip`` names are never reported.
    """

    def __init__(self, directory: str | os.PathLike, marker: str = SCAN_MARKER):
        self.dir = Path(directory)
        self.marker = marker
        self.seen: set[str] = set()

    def poll(self) -> list[Arrival]:
        now = time.time()
        new = []
        with os.scandir(self.dir) as it:
            for e in it:
                name = e.name
                if name in self.seen or is_temp_name(name):
                    continue
                try:
                    if e.is_dir():
                        st = os.stat(os.path.join(e.path, self.marker))  # not there yet: look again later
                        kind = "scan"
                    else:
                        st = e.stat()
                        kind = "pattern"
                except FileNotFoundError:
                    continue
                self.seen.add(name)
                new.append(Arrival(Path(e.path), min(st.st_ctime, now), now, kind))
        new.sort(key=lambda a: (a.arrival, a.path.name))
        return new


# ----------------------------------------------------------------------------- events
class EventLog:
    """``events.jsonl``: one JSON object per line, each appended with a single write."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._f = open(path, "a", encoding="utf-8")

    def write(self, event: dict[str, Any]) -> None:
        line = json.dumps({"time": _now_iso(), **event}, default=_json_default, ensure_ascii=False) + "\n"
        with self._lock:
            self._f.write(line)
            self._f.flush()

    def close(self) -> None:
        with self._lock:
            self._f.close()


def _json_default(v):
    if isinstance(v, (np.floating, np.integer, np.bool_)):
        return v.item()
    if isinstance(v, Path):
        return str(v)
    return str(v)


def _finite(v: float) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


# ----------------------------------------------------------------------------- extras worker
def resolve_precision(requested: str, refine: int, backend: str, device_type: str, compiled: bool,
                      native_bf16: Callable[[], bool]) -> str:
    """The network's arithmetic for ``--precision requested``: "fp32" or "bf16".

    ``auto`` is bf16 only where the network's answer is the product (``refine`` 0): alone it
    was as good as float32 on all three sources, but after 50 ER the bf16 answers drifted
    worse on the measured scan (benchmarks/bench_precision.py, docs/watch.md); and only on a CPU
    with native bfloat16 (``native_bf16()``, asked last: it reads the CPU flags) and a
    compiled torch network (eager bfloat16 is no faster). For ``auto`` a "bf16" here is a
    candidate: the service times both compiled networks and keeps the faster
    (:func:`pick_precision`).
    """
    if requested != "auto":
        return requested
    if refine == 0 and backend == "torch" and device_type == "cpu" and compiled and native_bf16():
        return "bf16"
    return "fp32"


# ``auto`` keeps bfloat16 only where its compiled pass is at least this much faster than
# float32's, timed on the machine at start-up: the CPU flag alone did not say (a CPU with
# AVX-512 BF16 but no AMX ran the compiled bf16 pass slower than fp32, docs/watch.md);
# near a tie float32, the reference arithmetic, wins
BF16_MARGIN = 0.9


def pick_precision(seconds: dict[str, float], margin: float = BF16_MARGIN) -> str:
    """"bf16" if the compiled bfloat16 pass took ≤ ``margin`` × the float32 one
    (``seconds`` = {"fp32": s, "bf16": s}, medians of passes of one pattern), else "fp32"."""
    return "bf16" if seconds["bf16"] <= margin * seconds["fp32"] else "fp32"


def _extras_main(jobs, done, abandon) -> None:  # pragma: no cover - runs in the child process
    """The pictures/VTK process: low priority; ignores SIGINT (a Ctrl-C reaches the whole
    process group: the parent decides), but not SIGTERM, with which multiprocessing ends a
    daemon child when the parent exits any other way (ignoring it hung such an exit)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        os.nice(10)
    except OSError:
        pass
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401  (the ≈1 s import, before "ready")

    from ..beamline import postprocess  # noqa: F401
    from ..outputs import write_extras
    from ..threads import single_blas_thread

    single_blas_thread()  # its BLAS pool must not spin beside the service's next pattern either
    done.put(("ready", None, None, 0.0))
    while True:
        job = jobs.get()
        if job is None or abandon.is_set():
            break
        t0 = time.perf_counter()
        try:
            paths = write_extras(job)
            done.put(("done", job["out"], [str(p) for p in paths], time.perf_counter() - t0))
        except Exception as e:  # noqa: BLE001 - reported as an error event by the parent
            done.put(("error", job["out"], f"{type(e).__name__}: {e}", time.perf_counter() - t0))
    done.put(("exit", None, None, 0.0))


class _Extras:
    """The parent's side of the extras process (or, with ``inline``, the same work in-process)."""

    def __init__(self):
        ctx = mp.get_context("spawn")  # a fresh interpreter: no torch, no threads inherited
        self.jobs, self.done, self.abandon = ctx.Queue(), ctx.Queue(), ctx.Event()
        self.proc = ctx.Process(target=_extras_main, args=(self.jobs, self.done, self.abandon),
                                name="autophase-watch-extras", daemon=True)
        self.proc.start()
        self.pending = 0

    def wait_ready(self, timeout: float = 300.0) -> None:
        t_end = time.monotonic() + timeout
        while True:
            try:
                kind, *_ = self.done.get(timeout=0.2)
                break
            except queue.Empty:
                if not self.proc.is_alive() or time.monotonic() > t_end:
                    raise RuntimeError(f"the pictures process did not start (exit code {self.proc.exitcode}; "
                                       "a script that starts the service must guard it with "
                                       "if __name__ == '__main__')") from None
        if kind != "ready":  # pragma: no cover
            raise RuntimeError(f"the pictures process did not start ({kind})")

    def submit(self, job: dict[str, Any]) -> None:
        self.jobs.put(job)
        self.pending += 1

    def collect(self) -> list[tuple]:
        out = []
        while True:
            try:
                msg = self.done.get_nowait()
            except queue.Empty:
                return out
            if msg[0] in ("done", "error"):
                self.pending -= 1
            out.append(msg)

    def close(self, abandon: Callable[[], bool], timeout: float = 300.0) -> list[tuple]:
        """Finish the pending jobs (or abandon them when ``abandon()`` turns true); end the process."""
        self.jobs.put(None)
        msgs = []
        t_end = time.monotonic() + timeout
        while self.proc.is_alive() and time.monotonic() < t_end:
            if abandon():
                self.abandon.set()
            msgs += self.collect()
            self.proc.join(0.05)
        if self.proc.is_alive():  # pragma: no cover
            self.proc.terminate()
            self.proc.join(5)
        msgs += self.collect()
        return msgs


# ----------------------------------------------------------------------------- the service
@dataclass
class WatchConfig:
    """What ``autophase watch`` was asked (see its ``--help``)."""

    inbox: Path
    out: Path
    model: str | None = None
    refine: int = 0
    refinement: Any = None
    symmetries: int | None = None
    average_above: float | None = None
    input_kind: str = "intensity"
    dataset: str | None = None
    mask_invalid: bool = False
    device: str | None = None
    batch_size: int = 8
    fmt: str = "cxi"
    plot: bool = True
    compile: bool = False
    precision: str = "auto"
    poll_s: float = 0.01
    marker: str = SCAN_MARKER
    learn: bool = False
    http: int | None = None
    host: str = "127.0.0.1"
    extra: dict[str, Any] = field(default_factory=dict)


class WatchService:
    """The warm service: :meth:`start` (load, warm, print ``ready``), :meth:`run` (until a
    signal or :meth:`stop`), then everything is closed. ``echo`` prints progress lines."""

    def __init__(self, cfg: WatchConfig, echo: Callable[[str], None] | None = None):
        self.cfg = cfg
        self.echo = echo or (lambda s: print(s, flush=True))
        self.stopping = threading.Event()
        self.signals = 0
        self.predictor = None
        self._auto_precision: str | None = None  # --precision auto's timed choice, once per service
        self.precision_seconds: dict[str, float] = {}
        self.precision_timed = ""  # when the timings were taken, if they came from the cache
        self.model_version = ""
        self._models_stamp = None
        self.learner = None
        self.page = None
        self.extras: _Extras | None = None
        self.events: EventLog | None = None
        self.inbox = Inbox(cfg.inbox, cfg.marker)
        self.queue: list[Arrival] = []
        self._extras_info: dict[str, str] = {}
        self._old_handlers: dict[int, Any] = {}

    # ------------------------------------------------------------------ set-up
    def _load_predictor(self, path) -> None:
        from ..predict import DEFAULT_AVERAGE_ABOVE, Predictor, default_symmetries

        c = self.cfg
        p = Predictor(path, device=c.device, batch_size=c.batch_size,
                      symmetries=default_symmetries(c.refine) if c.symmetries is None else c.symmetries,
                      compile=False,  # _compile below does it (frozen, batch 1): compiling here too
                      # wrapped the network twice, and the copies ran through a non-frozen graph
                      average_above=DEFAULT_AVERAGE_ABOVE if c.average_above is None else c.average_above)
        from ..predict import native_bf16_cpu

        prec = resolve_precision(c.precision, refine=c.refine, backend=p.backend, device_type=p.device.type,
                                 compiled=c.compile, native_bf16=native_bf16_cpu)
        timed = False
        if prec == "bf16" and c.precision == "auto":
            # a candidate only: both compiled networks are timed and the faster kept, once per
            # service (a promoted model reuses the choice) and once per kind of machine and
            # network (the timings are kept on disk: autophase.live.precision_cache)
            if self._auto_precision is None:
                from . import precision_cache

                key = precision_cache.machine_text(str(p.meta.get("version", "")), p.size)
                path = precision_cache.cache_path(key)
                got = precision_cache.load(path, key)
                if got is not None:
                    self.precision_seconds, self.precision_timed = got
                    self._auto_precision = pick_precision(self.precision_seconds)
                    print(f"watch: --precision auto: {self._auto_precision}, from the timings of "
                          f"{self.precision_timed} on this kind of machine ({path}; delete it to time again)",
                          file=sys.stderr, flush=True)
                else:  # leaves p compiled in the faster one
                    self._auto_precision, timed = self._time_precisions(p), True
                    precision_cache.save(path, key, self.precision_seconds)
            prec = self._auto_precision
        if not timed:
            if prec != "fp32":
                p.set_precision(prec)
            if c.compile:
                self._compile(p)
        self.predictor = p
        self.model_version = str(p.meta.get("version", ""))

    def _precision_note(self) -> str:
        """" (auto: fp32 72 ms, bf16 92 ms a pass)" after a timed choice (", timed <when>"
        added when the timings came from the cache), else ""."""
        t = self.precision_seconds
        if not t:
            return ""
        when = f", timed {self.precision_timed}" if self.precision_timed else ""
        return f" (auto: fp32 {t['fp32'] * 1e3:.0f} ms, bf16 {t['bf16'] * 1e3:.0f} ms a pass{when})"

    def _time_precisions(self, p) -> str:
        """Compile the network in float32 and in bfloat16, time a pass of each on this
        machine (median of 5 after one untimed), keep the faster (:func:`pick_precision`)
        compiled in ``p`` and return its name. Start-up pays a second compile."""
        import copy

        x = self._synthetic(p.size)[None]
        fp32_eager = copy.deepcopy(p.net)
        seconds, kept = {}, {}
        for prec in ("fp32", "bf16"):
            if prec == "bf16":
                p.net, p.compiled, p.batch_size = fp32_eager, False, self.cfg.batch_size
                p.set_precision("bf16")
            self._compile(p)
            with self._freezing():
                p._forward(x)
                times = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    p._forward(x)
                    times.append(time.perf_counter() - t0)
            seconds[prec] = float(np.median(times))
            kept[prec] = (p.net, p.compiled, p.batch_size)
        choice = pick_precision(seconds)
        p.net, p.compiled, p.batch_size = kept[choice]
        p.precision = p.meta["precision"] = choice
        self.precision_seconds = seconds
        print(f"watch: --precision auto: a compiled pass takes {seconds['fp32'] * 1e3:.0f} ms in float32, "
              f"{seconds['bf16'] * 1e3:.0f} ms in bfloat16 on this machine: {choice}", file=sys.stderr, flush=True)
        return choice

    def _compile(self, p) -> None:
        """The network through inductor with *freezing* (weights as constants, pre-packed for
        oneDNN, LeakyReLU folded into each convolution) for one pattern at a time on a CPU
        (``batch_size`` patterns at a time on a GPU).

        Every pass then has that batch (:meth:`Predictor._forward` pads to ``batch_size``),
        so one compile serves the single pass and the symmetric copies alike; on a 2-core
        CPU batch 1 frozen was 3.2× faster than eager and near batch-8 throughput per
        pattern (benchmarks/results/inference-cpu.json). The compile happens here, before
        ``ready``; it takes about a minute on 2 quiet cores. On failure (no C++ compiler…)
        the network stays eager, with a warning.
        """
        import torch

        t0 = time.perf_counter()
        eager = p.net
        # CPU: batch 1 (a padded batch costs its full size there); GPU: the batch size, whose
        # padding is nearly free on the device and lets a queue go through in one pass
        batch = p.batch_size if p.device.type == "cuda" else 1
        try:
            # freezing as a patched config around the first calls (as benchmarks/bench_inference.py
            # does): passed as torch.compile(options=...) it compiled but ran no faster than eager
            x = self._synthetic(p.size)[None]
            # one eager pass first: compiled without it, the frozen network ran ≈4× slower
            # (0.97 s against 0.24 s a pass, measured side by side on this CPU)
            p._forward(x)
            with self._freezing():
                p.net = torch.compile(eager, dynamic=False)
                p.compiled, p.batch_size = True, batch
                p._forward(x)  # compiles here, through the service's own call
        except Exception as e:  # noqa: BLE001 - eager still works
            p.net, p.compiled, p.batch_size = eager, False, self.cfg.batch_size
            print(f"watch: torch.compile failed, the network stays eager ({type(e).__name__}: {e})",
                  file=sys.stderr, flush=True)
            return
        print(f"watch: network compiled (inductor, frozen, batch {batch}) in {time.perf_counter() - t0:.1f} s",
              file=sys.stderr, flush=True)

    def _freezing(self):
        """Inductor's freezing switched on for the block when the network is compiled."""
        import contextlib

        if not self.cfg.compile:
            return contextlib.nullcontext()
        import torch._inductor.config as icfg

        return icfg.patch(freezing=True)

    @staticmethod
    def _synthetic(n: int) -> np.ndarray:
        """√counts (n, n, n) float32 of an ellipsoidal crystal with a smooth phase, 10⁶ photons."""
        from ..physics.forward import far_field

        z, y, x = np.mgrid[:n, :n, :n] - n // 2
        r = np.sqrt(z ** 2 + 1.3 * y ** 2 + 0.8 * x ** 2)
        obj = (r < n / 8).astype(np.complex64) * np.exp(0.5j * np.sin(z / 5.0)).astype(np.complex64)
        I = np.abs(far_field(obj)) ** 2
        return np.sqrt(I * (1e6 / I.sum())).astype(np.float32)

    def _warm(self) -> float:
        """The whole path once on a synthetic crystal: oneDNN, FFTW, numba, the writer."""
        import tempfile

        from ..io import patterns  # noqa: F401
        from ..predict import refine_prediction

        t0 = time.perf_counter()
        mag = self._synthetic(self.predictor.size)
        p = self.predictor
        saved = p.average_above
        try:
            with self._freezing():  # a shape compiled here is frozen too
                p.average_above = 0.0  # every copy of the symmetry path too
                pred = p.predict(mag[None])[0]
                p.average_above = saved
                p.predict(mag[None])
        finally:
            p.average_above = saved
        if self.cfg.refine > 0:
            pred = refine_prediction(pred, mag, None, self.cfg.refine, self.cfg.refinement, **self._engine())
        with tempfile.TemporaryDirectory() as d:
            from ..outputs import write_result

            write_result(Path(d) / f"warm.{self.cfg.fmt}", pred.object, pred.support, {"chi2": pred.chi2},
                         intensity=mag ** 2, plot=False)
        if self.cfg.fmt == "cxi" or any(self.cfg.inbox.glob("*.h5")) or any(self.cfg.inbox.glob("*.cxi")):
            import h5py  # noqa: F401
            import hdf5plugin  # noqa: F401
        return time.perf_counter() - t0

    def _engine(self) -> dict[str, Any]:
        """The refinement's engine: the GPU's torch engine when the network runs on CUDA."""
        if self.predictor is not None and self.predictor.device.type == "cuda":
            return {"engine": "torch", "device": str(self.predictor.device)}
        return {}

    def start(self) -> None:
        c = self.cfg
        t0 = time.perf_counter()
        if threading.current_thread() is threading.main_thread():  # a signal during start-up ends run() at once
            self._old_handlers = {s: signal.signal(s, self.stop) for s in (signal.SIGTERM, signal.SIGINT)}
        from ..threads import single_blas_thread

        # numpy's BLAS pool spins after each dot product of χ², on the cores the next
        # network pass needs (autophase.threads): one BLAS thread, as on the command line
        single_blas_thread()
        # the refinement's FFTW plans: one thread per engine is phasing's default because it
        # runs its starts side by side; here one pattern is refined at a time, so this thread's
        # transforms get two (a user's AUTOPHASE_FFTW_THREADS still wins). Before the warm-up plans them.
        from ..phasing.cpu import fftw_threads_here
        from ..physics.forward import fft_workers

        fftw_threads_here(min(2, fft_workers()))
        c.out.mkdir(parents=True, exist_ok=True)
        self._clean_parts()
        self.extras = _Extras() if c.plot or c.fmt == "cxi" else None
        self._load_predictor(c.model)
        if c.learn:
            self._start_learner()
        else:
            self._check_models_file(initial=True)
        warm = self._warm()
        if self.extras is not None:
            self.extras.wait_ready()
        self.events = EventLog(c.out / "events.jsonl")
        if c.http is not None:
            self._start_page()
        # inputs already there: those with a result are done (a restart), the rest queued
        first = self.inbox.poll()
        done = [a for a in first if self._target(a).exists()]
        self.queue = [a for a in first if not self._target(a).exists()]
        if done:
            print(f"watch: {len(done)} input(s) in {c.inbox} already have results in {c.out}: skipped",
                  file=sys.stderr, flush=True)
        dev = self.predictor.device
        self.echo(f"ready: watching {c.inbox} -> {c.out} (model {self.model_version}, refine {c.refine}, "
                  f"format {c.fmt}, device {dev}, precision {self.predictor.precision}{self._precision_note()}, "
                  f"{len(self.queue)} queued; "
                  f"warm-up {warm:.2f} s, "
                  f"start {time.perf_counter() - t0:.2f} s)")

    def _start_page(self) -> None:
        try:
            from . import page
        except ImportError as e:
            raise InputError(f"--http: the live page is not available ({e})") from None
        self.page = page.serve(self.cfg.out, self.cfg.http, self.cfg.host)
        url = getattr(self.page, "url", f"http://{self.cfg.host}:{self.cfg.http}/")
        print(f"watch: live page at {url}", file=sys.stderr, flush=True)

    def _start_learner(self) -> None:
        try:
            from . import learn
        except ImportError as e:
            raise InputError(f"--learn: the online learner is not available ({e})") from None
        self.learner = learn.Learner(self.cfg.out, self.predictor.path, **self.cfg.extra.get("learn", {}))
        self._maybe_swap()

    # ------------------------------------------------------------------ models
    def _check_models_file(self, initial: bool = False) -> None:
        """Swap to the model ``OUT/models/current.json`` names, when it changed."""
        f = self.cfg.out / "models" / "current.json"
        try:
            st = f.stat()
        except FileNotFoundError:
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._models_stamp:
            return
        self._models_stamp = stamp
        try:
            d = json.loads(f.read_text())
            version = str(d["version"])
            path = Path(d.get("path") or d.get("checkpoint") or f"{version}.pt")
        except (OSError, ValueError, KeyError, TypeError) as e:
            self._error(f, "models", f"unreadable model pointer ({e}); keeping model {self.model_version}")
            return
        if not path.is_absolute():
            path = f.parent / path
        self._swap(version, path)

    def _maybe_swap(self) -> None:
        if self.learner is not None:
            version, path = self.learner.current()
            self._swap(str(version), Path(path))
        else:
            self._check_models_file()

    def _swap(self, version: str, path: Path) -> None:
        if version == self.model_version or (self.predictor is not None and Path(path) == self.predictor.path
                                             and version == self.predictor.meta.get("version")):
            self.model_version = version
            return
        old = self.model_version
        try:
            self._load_predictor(path)
        except (InputError, OSError, RuntimeError, KeyError, ValueError) as e:
            self._error(Path(path), "models", f"cannot load model {version} ({e}); keeping model {old}")
            return
        self.model_version = version
        print(f"watch: model {old} -> {version} ({path})", file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ the loop
    def stop(self, *_: Any) -> None:
        self.signals += 1
        self.stopping.set()

    def run(self) -> int:
        try:
            while not self.stopping.is_set():
                if not self.queue:
                    self.queue = self.inbox.poll()
                if self.queue:
                    batch, self.queue = self.queue[:self.cfg.batch_size], self.queue[self.cfg.batch_size:]
                    self._process(batch)
                    self.queue += self.inbox.poll()
                else:
                    self._collect_extras()
                    self.stopping.wait(self.cfg.poll_s)
        finally:
            self._close()
            for s, h in self._old_handlers.items():
                signal.signal(s, h)
        return 0

    def _close(self) -> None:
        if self.extras is not None:
            pending = self.extras.pending
            if pending:
                print(f"watch: finishing the pictures of {pending} result(s) (signal again to abandon)",
                      file=sys.stderr, flush=True)
            for msg in self.extras.close(abandon=lambda: self.signals > 1):
                self._extras_event(msg)
            self.extras = None
        self._clean_parts()
        if self.page is not None:
            self.page.stop()
        if self.learner is not None and hasattr(self.learner, "close"):
            self.learner.close()
        if self.events is not None:
            self.events.close()
        print(f"watch: stopped ({len(self.queue)} queued input(s) left for the next start)", file=sys.stderr,
              flush=True)

    def _clean_parts(self) -> None:
        """Hidden temporaries (``.NAME.part-PID…``) left in OUT by a killed writer."""
        for d in (self.cfg.out, self.cfg.out / "prepped"):
            if d.is_dir():
                for p in d.iterdir():
                    if is_part_name(p.name) and p.is_file():
                        p.unlink(missing_ok=True)

    def _collect_extras(self) -> None:
        if self.extras is not None:
            for msg in self.extras.collect():
                self._extras_event(msg)

    def _extras_event(self, msg: tuple) -> None:
        kind, out, info, _ = msg
        if kind == "error":
            self._error(Path(self._extras_info.pop(out, out)), "pictures", f"{out}: {info}")
        elif kind == "done":
            self._extras_info.pop(out, None)

    # ------------------------------------------------------------------ one batch
    def _target(self, a: Arrival) -> Path:
        stem = a.path.name if a.kind == "scan" else a.path.stem
        return self.cfg.out / f"{stem}.{self.cfg.fmt}"

    def _error(self, path: Path, stage: str, message: str) -> None:
        print(f"watch: error: {message}", file=sys.stderr, flush=True)
        if self.events is not None:
            self.events.write({"event": "error", "input": str(path), "stage": stage, "error": message})

    def _load(self, a: Arrival) -> tuple[Any, dict[str, float]]:
        """The pattern of one arrival (a scan through prep first) and the stage times."""
        from ..io.patterns import load_pattern

        stages: dict[str, float] = {}
        src = a.path
        if a.kind == "scan":
            t0 = time.perf_counter()
            src = self._prep(a.path)
            stages["prep"] = time.perf_counter() - t0
        elif a.path.suffix.lower() not in PATTERN_SUFFIXES:
            raise InputError(f"{a.path}: not a pattern file (expected {' '.join(PATTERN_SUFFIXES)}, "
                             f"or a scan directory with a {self.cfg.marker} marker)")
        t0 = time.perf_counter()
        pat = load_pattern(src, kind="intensity" if a.kind == "scan" else self.cfg.input_kind,
                           dataset=None if a.kind == "scan" else self.cfg.dataset,
                           allow_invalid=self.cfg.mask_invalid)
        n = self.predictor.size
        if pat.magnitude.shape != (n,) * 3:
            raise InputError(f"{a.path}: the network takes {n}³ patterns, got {pat.magnitude.shape}")
        stages["load"] = time.perf_counter() - t0
        return pat, stages

    def _prep(self, scan: Path) -> Path:
        """A raw scan directory → ``OUT/prepped/<name>.cxi`` (:mod:`autophase.beamline.prep`)."""
        from ..beamline.prep import PrepConfig, prepare
        from ..io.cxi import write_pattern_cxi
        from ..io.raw34idc import read_raw

        raw = read_raw(scan)
        res = prepare(raw, PrepConfig(size=self.predictor.size))
        out = self.cfg.out / "prepped" / f"{scan.name}.cxi"
        out.parent.mkdir(exist_ok=True)
        meta = dict(res.metadata, command=f"autophase watch (prep of {scan})")
        return write_pattern_cxi(out, res.intensity, res.mask_bits, metadata=meta)

    def _process(self, batch: list[Arrival]) -> None:
        from ..predict import refine_prediction

        self._maybe_swap()
        ready = []
        for a in batch:
            target = self._target(a)
            if target.exists():
                self._error(a.path, "output", f"{target} exists already (an input with the same name was done); "
                                              "rename the input to process it")
                continue
            try:
                pat, stages = self._load(a)
            except InputError as e:
                self._error(a.path, "load", str(e))
                continue
            except Exception as e:  # noqa: BLE001 - a bad input must not end the service
                self._error(a.path, "load", f"{a.path}: {type(e).__name__}: {e}")
                continue
            ready.append((a, pat, stages, target))
        if not ready:
            return
        p = self.predictor
        t0 = time.perf_counter()
        try:
            preds = p.predict(np.stack([r[1].magnitude for r in ready]), [r[1].measured for r in ready],
                              [str(r[0].path) for r in ready])
        except Exception as e:  # noqa: BLE001
            for a, *_ in ready:
                self._error(a.path, "network", f"{a.path}: {type(e).__name__}: {e}")
            return
        t_nn = (time.perf_counter() - t0) / len(ready)
        for k, (a, pat, stages, target) in enumerate(ready):
            if k > 0 and self.stopping.is_set():  # the rest of the batch waits for the next start
                self.queue = [r[0] for r in ready[k:]] + self.queue
                return
            stages["wait"] = max(0.0, t0 - a.arrival)  # arrival → its batch starts (behind earlier work)
            stages["nn"] = t_nn
            pred = preds[k]
            try:
                if self.cfg.refine > 0:
                    t1 = time.perf_counter()
                    pred = refine_prediction(pred, pat.magnitude, pat.measured, self.cfg.refine,
                                             self.cfg.refinement, **self._engine())
                    stages["refine"] = time.perf_counter() - t1
                t1 = time.perf_counter()
                job = self._write(pred, pat, target)
                stages["write"] = time.perf_counter() - t1
            except Exception as e:  # noqa: BLE001
                self._error(a.path, "refine/write", f"{a.path}: {type(e).__name__}: {e}")
                continue
            latency = time.time() - a.arrival
            if self.extras is not None and (job.get("plot") or "postprocessed" in job):
                self._extras_info[str(target)] = str(a.path)
                self.extras.submit(job)
            self.events.write({
                "event": "result", "input": str(a.path), "output": str(target), "kind": a.kind,
                "model_version": self.model_version, "model_path": str(p.path),
                "chi2": _finite(pred.chi2), "llk_free": _finite(pred.llk_free), "latency_s": latency,
                "arrival": a.arrival, "stages": {k2: round(v, 6) for k2, v in stages.items()},
                "refine": self.cfg.refine, "outline": pred.outline, "start_phase": pred.start_phase,
                "start_sw_threshold": _finite(pred.start_sw_threshold),
                "symmetries": pred.symmetries, "batch": len(ready),
                "device": str(p.device), "precision": p.precision})
            self.echo(f"{a.path.name} -> {target.name}: chi2 {pred.chi2:.5g}  LLK_free {pred.llk_free:.4g}  "
                      f"latency {latency:.3f} s  (model {self.model_version})")
            if self.learner is not None:
                try:
                    self.learner.submit(pat.magnitude, pat.measured, target.stem)
                except Exception as e:  # noqa: BLE001 - learning must not stop imaging
                    self._error(a.path, "learn", f"{type(e).__name__}: {e}")

    def _write(self, pred, pat, target: Path) -> dict[str, Any]:
        """The result file now (atomically); the job for the extras process back."""
        from ..outputs import write_result

        d = pred.to_npz_dict()
        scalars = {k: (v.item() if hasattr(v, "item") else v) for k, v in d.items()
                   if k not in ("object", "support", "chi2_history")}
        scalars["model_version"] = self.model_version
        how = f"NN + {pred.refine_iterations} ER" if pred.refine_iterations else "NN alone"
        _, job = write_result(target, pred.object, pred.support, {"program": "autophase watch", **scalars},
                              history=pred.history or None, arrays={"chi2_history": d["chi2_history"]},
                              input_path=pat.source, intensity=pat.intensity if self.cfg.fmt == "cxi" else None,
                              unmeasured=~pat.measured if self.cfg.fmt == "cxi" else None, plot=self.cfg.plot,
                              title=f"{Path(pat.source).name}: {how} (model {self.model_version}), "
                                    f"χ² {pred.chi2:.4g}, LLK_free {pred.llk_free:.4g}")
        return job
