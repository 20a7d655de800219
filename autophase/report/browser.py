"""Open a report in headless Chromium and say whether it really rendered.

Speaks the DevTools protocol over ``--remote-debugging-pipe`` (JSON messages separated
by NUL bytes on file descriptors 3 and 4 of the browser), so no port, no websocket
library and no network are involved::

    check = check_page("reports/latest/index.html")
    assert check.ok, check.problems()

It records console errors (``console.error``/``assert``), uncaught exceptions, error
log entries (failed loads, blocked content), every request that left the page for
anything but ``data:``/``file:`` (a self-contained report makes none), and reads back
each ``<img>``'s ``naturalWidth`` plus the page's own ``data-images-rendered`` mark
(:data:`autophase.report.document.IMAGE_CHECK_ATTR`). Optionally it saves a full-page
screenshot.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .document import IMAGE_CHECK_ATTR

__all__ = ["find_chromium", "check_page", "browser_tab", "Tab", "collect_problems", "PageCheck", "CHROMIUM_FLAGS"]

# Quiet, offline, single-use profile: nothing phones home, nothing persists.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--mute-audio",
                  "--no-default-browser-check", "--hide-scrollbars")


def find_chromium() -> str | None:
    """/usr/bin/chromium (Debian's), else chromium/chromium-browser/google-chrome on PATH."""
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        p = shutil.which(name)
        if p:
            return p
    return None


@dataclass
class PageCheck:
    """What the browser saw. ``ok`` = loaded, no errors, every image decoded."""

    url: str
    loaded: bool = False
    title: str = ""
    images_mark: str | None = None                 # the page's own "<rendered>/<total>"
    images: list[dict[str, Any]] = field(default_factory=list)   # {alt, naturalWidth, complete}
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def broken_images(self) -> list[dict[str, Any]]:
        return [im for im in self.images if not im.get("complete") or not im.get("naturalWidth")]

    def problems(self) -> list[str]:
        out = []
        if not self.loaded:
            out.append("page did not finish loading")
        out += [f"console error: {m}" for m in self.console_errors]
        out += [f"exception: {m}" for m in self.exceptions]
        out += [f"log error: {m}" for m in self.log_errors]
        out += [f"external request: {u}" for u in self.external_requests]
        out += [f"image not rendered: {im.get('alt') or im.get('src', '')[:60]}" for im in self.broken_images]
        n = len(self.images)
        if self.images_mark != f"{n - len(self.broken_images)}/{n}":
            out.append(f"page's own image check says {self.images_mark!r} for {n} images")
        return out

    @property
    def ok(self) -> bool:
        return not self.problems()


class _Pipe:
    """DevTools protocol client over the browser's fds 3 (commands) and 4 (replies)."""

    def __init__(self, proc: subprocess.Popen, w: int, r: int):
        self.proc, self.w, self.r = proc, w, r
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from chromium")
            ready, _, _ = select.select([self.r], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed the pipe (exit {self.proc.poll()})")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 20.0) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, timeout: float) -> dict[str, Any] | None:
        for e in self.events:
            if e.get("method") == method:
                return e
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                m = self._read_message(deadline)
            except TimeoutError:
                return None
            self.events.append(m)
            if m.get("method") == method:
                return m
        return None


def _remote_text(obj: dict[str, Any]) -> str:
    if "value" in obj:
        return str(obj["value"])
    return str(obj.get("description") or obj.get("type", ""))


class Tab:
    """One page of a running headless Chromium, driven over the DevTools protocol
    (:func:`browser_tab`): send commands, evaluate JavaScript, read the events seen."""

    def __init__(self, cdp: _Pipe, session: str):
        self._cdp, self.session = cdp, session

    @property
    def events(self) -> list[dict[str, Any]]:
        return self._cdp.events

    def send(self, method: str, params: dict | None = None, timeout: float = 20.0) -> dict[str, Any]:
        return self._cdp.send(method, params, session=self.session, timeout=timeout)

    def navigate(self, url: str, timeout: float = 30.0) -> bool:
        """Open ``url``; True once its load event fired within ``timeout`` s."""
        self._cdp.events[:] = [e for e in self._cdp.events if e.get("method") != "Page.loadEventFired"]
        self.send("Page.navigate", {"url": url}, timeout=timeout)
        return self._cdp.wait_event("Page.loadEventFired", timeout) is not None

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (returned by value: JSON-able results)."""
        return self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 10.0, interval: float = 0.1) -> Any:
        """Evaluate ``expression`` until it is truthy (its value) or ``timeout`` s pass (the last value)."""
        deadline = time.monotonic() + timeout
        while True:
            v = self.evaluate(expression)
            if v or time.monotonic() > deadline:
                return v
            self._cdp.wait_event("__none__", interval)  # keeps reading the browser's events


@contextmanager
def browser_tab(chromium: str | None = None, timeout: float = 30.0, width: int = 1200) -> Iterator[Tab]:
    """Start headless Chromium with one blank tab (Page, Runtime, Log and Network events on)
    and yield it as a :class:`Tab`; the browser is closed on exit. Raises FileNotFoundError
    when there is no browser."""
    exe = chromium or find_chromium()
    if not exe:
        raise FileNotFoundError("no chromium found (run scripts/install_chromium.sh)")
    to_r, to_w = os.pipe()      # we write commands → browser reads on fd 3
    from_r, from_w = os.pipe()  # browser writes replies on fd 4 → we read

    def _fds():  # runs in the child between fork and exec
        # Move both ends above 10 first (one of them may already *be* 3 or 4), then
        # onto 3 and 4 as inheritable fds; every other fd Python opened is
        # close-on-exec (PEP 446), so close_fds=False leaks nothing else to the browser.
        a = fcntl.fcntl(to_r, fcntl.F_DUPFD, 10)
        b = fcntl.fcntl(from_w, fcntl.F_DUPFD, 10)
        os.dup2(a, 3)
        os.dup2(b, 4)
        os.set_inheritable(3, True)
        os.set_inheritable(4, True)

    with tempfile.TemporaryDirectory(prefix="autophase-chromium-") as profile:
        proc = subprocess.Popen([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                                 "--remote-debugging-pipe", f"--window-size={width},900", "about:blank"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                close_fds=False, preexec_fn=_fds, start_new_session=True)
        os.close(to_r)
        os.close(from_w)
        cdp = _Pipe(proc, to_w, from_r)
        try:
            target = cdp.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
            sid = cdp.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for dom in ("Page", "Runtime", "Log", "Network"):
                cdp.send(f"{dom}.enable", session=sid)
            yield Tab(cdp, sid)
        finally:
            try:
                cdp.send("Browser.close", timeout=5)
            except Exception:  # noqa: BLE001 - closing is best effort; we kill below
                pass
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
            os.close(to_w)
            os.close(from_r)


def check_page(path: str | os.PathLike, chromium: str | None = None, timeout: float = 30.0,
               screenshot: str | os.PathLike | None = None, width: int = 1200) -> PageCheck:
    """Load ``path`` in headless Chromium; see :class:`PageCheck`. Raises FileNotFoundError
    when there is no browser, RuntimeError/TimeoutError when the browser misbehaves."""
    url = Path(path).resolve().as_uri()
    res = PageCheck(url)
    with browser_tab(chromium, timeout, width) as tab:
        res.loaded = tab.navigate(url, timeout)
        # The page's load handler sets the mark; give it a moment after "load".
        js_imgs = ("JSON.stringify(Array.from(document.images).map(function(i){return {alt:i.alt,"
                   "src:i.src.slice(0,40),complete:i.complete,naturalWidth:i.naturalWidth};}))")
        res.images_mark = tab.wait_for(f"document.documentElement.getAttribute('{IMAGE_CHECK_ATTR}')", 5)
        res.images = json.loads(tab.evaluate(js_imgs))
        res.title = tab.evaluate("document.title") or ""
        if screenshot is not None:
            h = tab.evaluate("document.documentElement.scrollHeight")
            tab.send("Emulation.setDeviceMetricsOverride", {"width": width, "height": int(min(h, 16000)),
                                                           "deviceScaleFactor": 1, "mobile": False})
            png = tab.send("Page.captureScreenshot", {"format": "png"}, timeout=timeout)["data"]
            Path(screenshot).write_bytes(base64.b64decode(png))
            res.screenshot = Path(screenshot)
        # Late console messages: drain what has arrived.
        tab.wait_for("false", 0.3)
        collect_problems(tab.events, res)
    return res


def collect_problems(events: list[dict[str, Any]], res: PageCheck, local: tuple[str, ...] = ()) -> PageCheck:
    """Fill ``res``'s console errors, exceptions, error log entries and external requests
    from the DevTools ``events``; requests to URLs starting with one of ``local`` (besides
    data:, file:, about:) are not external."""
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            res.console_errors.append(" ".join(_remote_text(a) for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            res.exceptions.append(_remote_text(d.get("exception", {})) or d.get("text", ""))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            ent = p["entry"]
            res.log_errors.append(f"{ent.get('source')}: {ent.get('text')} {ent.get('url', '')}".strip())
        elif m == "Network.requestWillBeSent":
            u = p.get("request", {}).get("url", "")
            if not u.startswith(("data:", "file:", "about:", *local)):
                res.external_requests.append(u)
    return res
