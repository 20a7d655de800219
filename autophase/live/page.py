"""The live page of ``autophase watch --http PORT``: the latest crystal, its figures, the history.

A small aiohttp server over the watch service's output folder OUT. It reads only what
the service writes — ``OUT/events.jsonl`` (one JSON object per line, per input or error)
and the result files ``OUT/<stem>.npz|.cxi`` — plus, with ``--learn``,
``OUT/models/current.json`` and ``OUT/models/history.jsonl`` (:mod:`autophase.live.learn`).
It never writes into OUT.

Routes::

    GET /                 the page (autophase/live/static/index.html, live.js, live.css;
                          self-contained: no CDN, no external request)
    GET /api/state        {"events": [...], "seq": N, "models": {...}}: the last
                          ``history`` events (each with its line number ``seq``), the model state
    GET /api/stream?after=N   Server-Sent Events: every event line with seq > N as it lands
                          (``event: run``), and the model state when it changes (``event: models``)
    GET /api/view/NAME    a result file's view (:func:`result_view`), cached per file version

The page draws the three central slices (through the support's centre of mass) of the
amplitude (grey) and of the phase inside the support (cyclic colours), and the amplitude
isosurface at 0.3 of its maximum coloured by the phase (a canvas, drag to rotate), from
the view's arrays — so the picture is there as soon as the result file is, for ``npz``
and ``cxi`` alike. It updates without a reload: the browser holds the event stream open.

The server runs in its own thread with its own asyncio loop (:func:`serve`), so the
service's loop and threads are not disturbed; views are computed in a worker thread.

Example::

    handle = serve(Path("OUT"), 8765)      # http://127.0.0.1:8765/
    ...
    handle.stop()
"""
from __future__ import annotations

import asyncio
import base64
import collections
import importlib.util
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["serve", "PageHandle", "result_view", "load_result", "read_events"]

STATIC = Path(__file__).resolve().parent / "static"
# a result file the page may show: a plain name inside OUT, nothing that climbs out of it
_RESULT_NAME = re.compile(r"^[^/\\.][^/\\]*\.(npz|cxi)$")
ISO_LEVEL = 0.3
MAX_TRIANGLES = 8000


# ----------------------------------------------------------------------------- views
def load_result(path: str | Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A result file (``.npz`` of ``predict``/``phase``, or ``.cxi``) → (object complex64
    (z, y, x), support bool (z, y, x), scalar metadata). InputError naming the file."""
    p = Path(path)
    if p.suffix == ".npz":
        try:
            with np.load(p, allow_pickle=False) as z:
                obj = np.asarray(z["object"], np.complex64)
                sup = np.asarray(z["support"], bool) if "support" in z.files else None
                meta = {k: z[k].item() for k in z.files if z[k].ndim == 0}
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"{p}: not a readable result file ({str(e).splitlines()[0] if str(e) else e})") from None
    elif p.suffix == ".cxi":
        from ..io.cxi import read_cxi

        d = read_cxi(p)
        if d["object"] is None:
            raise InputError(f"{p}: a CXI file without a reconstructed object")
        obj, sup = d["object"], d["support"]
        meta = {k: v for k, v in d["metadata"].items() if np.isscalar(v)}
    else:
        raise InputError(f"{p}: a result is a .npz or .cxi file")
    if obj.ndim != 3:
        raise InputError(f"{p}: the object is not 3D ({obj.shape})")
    amp = np.abs(obj)
    if sup is None or sup.shape != obj.shape:
        sup = amp > 0.1 * float(amp.max())
    return obj, sup, meta


def _crop(support: np.ndarray, margin: int = 4) -> tuple[slice, ...]:
    """The support's bounding box widened by ``margin`` voxels (the whole array if empty)."""
    if not support.any():
        return tuple(slice(None) for _ in support.shape)
    nz = np.nonzero(support)
    return tuple(slice(max(0, int(i.min()) - margin), min(n, int(i.max()) + 1 + margin))
                 for i, n in zip(nz, support.shape))


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(a, np.uint8).tobytes()).decode()


def result_view(path: str | Path, level: float = ISO_LEVEL, max_triangles: int = MAX_TRIANGLES) -> dict[str, Any]:
    """What the page draws of one result file, as JSON-ready data.

    * ``slices`` — three central slices (planes ⟂ z, y, x through the support's centre
      of mass), cropped to the support's box: ``amplitude`` uint8 (0 … 255 = 0 … max|ρ|)
      and ``phase`` uint8 (0 … 254 ↔ φ − φ₀ ∈ [−π, π), 255 = outside the support or
      below 10 % of max|ρ|), row-major ``height × width``, base64. φ₀ is the support's
      mean phase (the global phase is arbitrary).
    * ``surface`` — the isosurface |ρ| = ``level`` · max|ρ| (marching cubes, coarser
      steps until it has ≤ ``max_triangles`` triangles): ``vertices`` (n·3 floats, voxel
      units, centred on the support's centre of mass, order z, y, x), ``faces`` (m·3
      ints), ``phase`` (n floats, rad: the phase of the trilinearly interpolated complex
      object at each vertex, minus φ₀); None when scikit-image is missing.
    * ``chi2``, ``llk_free``, ``model_version``, ``input`` — from the file when it has them.
    """
    obj, sup, meta = load_result(path)
    amp = np.abs(obj).astype(np.float32)
    vmax = float(amp.max()) or 1.0
    if sup.any():
        obj = obj * np.complex64(np.exp(-1j * np.angle(obj[sup].sum())))
    com = [int(round(c)) for c in np.argwhere(sup).mean(0)] if sup.any() else [n // 2 for n in obj.shape]
    box = _crop(sup)
    shown = sup & (amp > 0.1 * vmax)
    slices = []
    for k, name in enumerate("zyx"):
        idx: list[Any] = [slice(None)] * 3
        idx[k] = com[k]
        keep = tuple(b for j, b in enumerate(box) if j != k)
        a2 = amp[tuple(idx)][keep]
        ph = np.angle(obj[tuple(idx)][keep])
        p8 = np.clip(np.floor((ph + np.pi) / (2 * np.pi) * 255), 0, 254).astype(np.uint8)
        p8[~shown[tuple(idx)][keep]] = 255
        slices.append({"axis": name, "index": com[k], "height": int(a2.shape[0]), "width": int(a2.shape[1]),
                       "amplitude": _b64(np.clip(a2 / vmax * 255, 0, 255)), "phase": _b64(p8)})
    view: dict[str, Any] = {"name": Path(path).name, "shape": list(obj.shape), "com": com, "slices": slices,
                            "surface": _surface(obj, amp, vmax * level, com, max_triangles), "level": level}
    for k in ("chi2", "llk_free", "model_version", "input"):
        v = meta.get(k)
        if isinstance(v, (np.generic, float, int, str)):
            view[k] = v.item() if isinstance(v, np.generic) else v
    return view


def _surface(obj: np.ndarray, amp: np.ndarray, level: float, com: list[int], max_triangles: int) -> dict | None:
    try:
        from skimage.measure import marching_cubes
    except ImportError:  # the page then shows the slices only
        return None
    from scipy import ndimage

    padded = np.pad(amp, 1)
    if not padded.max() > level:
        return None
    for step in (1, 2, 3, 4):
        verts, faces, _, _ = marching_cubes(padded, level, step_size=step)
        if len(faces) <= max_triangles:
            break
    verts = verts - 1.0  # undo the pad
    coords = verts.T
    re_ = ndimage.map_coordinates(obj.real.astype(np.float32), coords, order=1, mode="nearest")
    im_ = ndimage.map_coordinates(obj.imag.astype(np.float32), coords, order=1, mode="nearest")
    return {"vertices": np.round(verts - np.asarray(com, float), 2).ravel().tolist(),
            "faces": faces.astype(int).ravel().tolist(),
            "phase": np.round(np.arctan2(im_, re_), 3).tolist(), "step": step}


# ----------------------------------------------------------------------------- events
def read_events(path: Path, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Complete JSON lines of ``path`` from byte ``offset`` → (objects, new offset).

    A last line without its newline is being written: it is left for the next call.
    A line that is not a JSON object becomes ``{"event": "unreadable", "line": ...}``.
    """
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], 0
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    out = []
    for raw in data[:end].split(b"\n"):
        if not raw.strip():
            continue
        try:
            ev = json.loads(raw)
        except ValueError:
            ev = None
        if not isinstance(ev, dict):
            ev = {"event": "unreadable", "line": raw[:200].decode("utf-8", "replace")}
        out.append(ev)
    return out, offset + end + 1


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass
class _State:
    """What the server knows of OUT: events with their line numbers, the model state."""

    out: Path
    history: int = 500
    events: collections.deque = field(default_factory=collections.deque)
    seq: int = 0
    offset: int = 0
    inode: tuple = ()
    models: dict[str, Any] = field(default_factory=dict)
    models_key: tuple = ()

    def poll_events(self) -> list[dict[str, Any]]:
        """New event lines since the last call (a replaced or truncated log restarts)."""
        p = self.out / "events.jsonl"
        try:
            st = p.stat()
            key = (st.st_ino, st.st_dev)
        except FileNotFoundError:
            return []
        if key != self.inode or st.st_size < self.offset:
            self.inode, self.offset = key, 0
        if st.st_size == self.offset:
            return []
        evs, self.offset = read_events(p, self.offset)
        new = []
        for ev in evs:
            self.seq += 1
            ev = dict(ev, seq=self.seq)
            self.events.append(ev)
            new.append(ev)
        while len(self.events) > self.history:
            self.events.popleft()
        return new

    def poll_models(self) -> dict[str, Any] | None:
        """The model state when ``current.json`` or ``history.jsonl`` changed, else None."""
        d = self.out / "models"
        key = tuple((p.stat().st_mtime_ns, p.stat().st_size) if p.exists() else None
                    for p in (d / "current.json", d / "history.jsonl"))
        if key == self.models_key:
            return None
        self.models_key = key
        rounds, _ = read_events(d / "history.jsonl")
        self.models = {"current": _read_json(d / "current.json"), "rounds": rounds[-20:]}
        return self.models


# ----------------------------------------------------------------------------- server
class _Server:
    def __init__(self, out_dir: Path, poll_s: float, history: int):
        from aiohttp import web

        self.web = web
        self.state = _State(Path(out_dir), history)
        self.poll_s = poll_s
        self.subscribers: set[asyncio.Queue] = set()
        self.views: dict[str, tuple[tuple, Any]] = {}
        self.view_lock = asyncio.Lock()
        app = web.Application()
        app.router.add_get("/", self.index)
        app.router.add_get("/api/state", self.api_state)
        app.router.add_get("/api/stream", self.api_stream)
        app.router.add_get("/api/view/{name}", self.api_view)
        app.router.add_static("/static/", STATIC, show_index=False)
        app.on_shutdown.append(self._close_streams)
        self.app = app

    def _refresh(self) -> tuple[list[dict], dict | None]:
        return self.state.poll_events(), self.state.poll_models()

    async def watch(self) -> None:
        """Tail events.jsonl and the model state; hand what is new to every open stream."""
        while True:
            new, models = self._refresh()
            for q in list(self.subscribers):
                for ev in new:
                    q.put_nowait(("run", ev))
                if models is not None:
                    q.put_nowait(("models", models))
            await asyncio.sleep(self.poll_s)

    async def _close_streams(self, app) -> None:
        for q in list(self.subscribers):
            q.put_nowait(None)

    async def index(self, request):
        return self.web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def api_state(self, request):
        self._refresh()
        s = self.state
        return self.web.json_response({"out": str(s.out), "events": list(s.events), "seq": s.seq,
                                       "models": s.models}, dumps=_dumps)

    async def api_stream(self, request):
        web = self.web
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text="after: an event number") from None
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        q: asyncio.Queue = asyncio.Queue()
        self._refresh()
        for ev in self.state.events:  # what landed between the page's state and this stream
            if ev["seq"] > after:
                q.put_nowait(("run", ev))
        self.subscribers.add(q)
        try:
            await resp.write(b"retry: 1000\n\n")
            while True:
                try:
                    item = await asyncio.wait_for(q.get(), 15.0)
                except asyncio.TimeoutError:
                    await resp.write(b": keep-alive\n\n")
                    continue
                if item is None:
                    break
                kind, data = item
                await resp.write(f"event: {kind}\ndata: {_dumps(data)}\n\n".encode())
        except ConnectionResetError:  # the browser went away
            pass
        finally:
            self.subscribers.discard(q)
        return resp

    async def api_view(self, request):
        web = self.web
        name = request.match_info["name"]
        if not _RESULT_NAME.match(name):
            raise web.HTTPNotFound(text=f"{name}: not a result file name")
        path = self.state.out / name
        try:
            st = path.stat()
        except FileNotFoundError:
            raise web.HTTPNotFound(text=f"{name}: no such result in {self.state.out}") from None
        key = (st.st_mtime_ns, st.st_size)
        async with self.view_lock:  # one view at a time: the service needs the CPU more
            hit = self.views.get(name)
            if hit is None or hit[0] != key:
                try:
                    view = await asyncio.get_running_loop().run_in_executor(None, result_view, path)
                except InputError as e:
                    raise web.HTTPUnprocessableEntity(text=str(e)) from None
                if len(self.views) > 32:
                    self.views.clear()
                self.views[name] = hit = (key, view)
        return web.json_response(hit[1], dumps=_dumps)


def _dumps(obj: Any) -> str:
    """JSON with NaN/inf as null (the browser's JSON.parse rejects NaN)."""
    def clean(o):
        if isinstance(o, float):
            return o if np.isfinite(o) else None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        return o
    return json.dumps(clean(obj), separators=(",", ":"), default=str)


class PageHandle:
    """The running page: ``url``, ``port``; :meth:`stop` ends it (idempotent)."""

    def __init__(self, host: str, port: int, thread: threading.Thread, loop: asyncio.AbstractEventLoop,
                 stop_event: asyncio.Event):
        self.host, self.port, self._thread, self._loop, self._stop = host, port, thread, loop, stop_event

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def stop(self, timeout: float = 10.0) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout)


def serve(out_dir: str | Path, port: int, host: str = "127.0.0.1", poll_s: float = 0.25,
          history: int = 500) -> PageHandle:
    """Start the live page over ``out_dir`` on ``host:port`` (0: any free port) in a thread.

    Returns once the socket listens; an unusable address is an InputError naming
    ``--http``. ``poll_s``: how often events.jsonl is looked at (s); ``history``: how many
    events the page is sent on load.
    """
    if not 0 <= int(port) <= 65535:
        raise InputError(f"--http: a TCP port 0–65535, got {port}")
    if importlib.util.find_spec("aiohttp") is None:
        raise InputError("--http needs aiohttp (pip install aiohttp)")
    started = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        from aiohttp import web

        srv = _Server(Path(out_dir), poll_s, history)
        runner = web.AppRunner(srv.app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, host, int(port))
            await site.start()
        except OSError as e:
            await runner.cleanup()
            box["error"] = InputError(f"--http {port}: cannot listen on {host}:{port} ({e.strerror or e})")
            started.set()
            return
        sock = site._server.sockets[0]  # the bound port when 0 was asked for
        box["port"] = sock.getsockname()[1]
        box["stop"] = stop = asyncio.Event()
        box["loop"] = asyncio.get_running_loop()
        started.set()
        watcher = asyncio.ensure_future(srv.watch())
        try:
            await stop.wait()
        finally:
            watcher.cancel()
            await runner.cleanup()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as e:  # noqa: BLE001 - reported to serve()'s caller if before start
            box.setdefault("error", e)
            started.set()

    t = threading.Thread(target=run, name="autophase-live-page", daemon=True)
    t.start()
    started.wait(30)
    if "error" in box:
        raise box["error"]
    if "port" not in box:
        raise RuntimeError("the live page did not start within 30 s")
    return PageHandle(host, box["port"], t, box["loop"], box["stop"])
