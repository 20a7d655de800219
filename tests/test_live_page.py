"""The live page of ``autophase watch --http``: views of result files, the server, and the
page in headless Chromium updating without a reload when a new result lands."""
from __future__ import annotations

import base64
import json
import os
import socket
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

pytest.importorskip("aiohttp")

from autophase.errors import InputError  # noqa: E402
from autophase.live.page import read_events, result_view, serve  # noqa: E402
from autophase.report.browser import PageCheck, browser_tab, collect_problems, find_chromium  # noqa: E402


@pytest.fixture(scope="module")
def results(model_path, tmp_path_factory):
    """Two real result files (the tiny network on two simulated crystals), as `predict` writes them."""
    from autophase.physics.synthetic import faceted_crystal, noisy_pattern
    from autophase.predict import Predictor, write_prediction

    d = tmp_path_factory.mktemp("results")
    mags = [np.sqrt(noisy_pattern(faceted_crystal(32, radius=r, seed=s), photons=1e8, seed=s)[0])
            for r, s in ((9.0, 4), (7.0, 5))]
    preds = Predictor(model_path, symmetries=1).predict(np.stack(mags), sources=["scan-a.npy", "scan-b.npy"])
    for p, name in zip(preds, ("scan-a.npz", "scan-b.npz")):
        write_prediction(p, d / name, plot=False)
    return d, preds


def _event(out, name, pred, **kw):
    return {"event": "result", "time": time.time(), "input": str(out / "inbox" / (name[:-4] + ".npy")),
            "output": str(out / name), "model_version": pred.model["version"], "chi2": pred.chi2,
            "llk_free": pred.llk_free, "latency_s": 0.25, "seconds": {"load": 0.01, "nn": 0.2, "write": 0.04}, **kw}


def _append(path, ev):
    with open(path, "a") as f:
        f.write(json.dumps(ev) + "\n")


def test_result_view_slices_and_surface(results):
    d, preds = results
    v = result_view(d / "scan-a.npz")
    assert v["name"] == "scan-a.npz" and v["shape"] == [64, 64, 64]
    assert v["chi2"] == pytest.approx(preds[0].chi2) and v["model_version"] == preds[0].model["version"]
    sup = preds[0].support
    assert [s["axis"] for s in v["slices"]] == ["z", "y", "x"]
    for k, s in enumerate(v["slices"]):
        amp = np.frombuffer(base64.b64decode(s["amplitude"]), np.uint8).reshape(s["height"], s["width"])
        ph = np.frombuffer(base64.b64decode(s["phase"]), np.uint8)
        assert amp.max() > 100                       # the crystal is in the slice, scaled to its max
        inside = ph < 255
        assert 0 < inside.sum() < ph.size            # phase inside the support only
        # the slice passes through the support's centre of mass and is cropped to its box
        assert s["index"] == int(round(np.argwhere(sup)[:, k].mean()))
    surf = v["surface"]
    verts = np.asarray(surf["vertices"]).reshape(-1, 3)
    faces = np.asarray(surf["faces"]).reshape(-1, 3)
    assert 0 < len(faces) <= 8000 and faces.max() < len(verts) and len(surf["phase"]) == len(verts)
    assert np.all(np.abs(surf["phase"]) <= np.pi + 1e-3)
    assert np.abs(verts).max() < 40                  # centred on the crystal, inside the box
    json.dumps(v)                                     # JSON-ready as it is


def test_result_view_of_a_cxi_result(results, tmp_path):
    """`watch`'s default format: the same view from the CXI file (object, support, metrics)."""
    from autophase.predict import write_prediction

    d, preds = results
    write_prediction(preds[0], tmp_path / "scan-a.cxi", plot=False)
    v, ref = result_view(tmp_path / "scan-a.cxi"), result_view(d / "scan-a.npz")
    assert v["chi2"] == pytest.approx(preds[0].chi2) and v["model_version"] == preds[0].model["version"]
    assert v["com"] == ref["com"] and len(v["surface"]["faces"]) == len(ref["surface"]["faces"])
    assert v["slices"][0]["amplitude"] == ref["slices"][0]["amplitude"]


def test_result_view_bad_files(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="x.npz"):
        result_view(tmp_path / "x.npz")
    np.savez(tmp_path / "y.npz", other=np.zeros(3))
    with pytest.raises(InputError, match="y.npz"):
        result_view(tmp_path / "y.npz")
    with pytest.raises(InputError, match="z.png"):
        result_view(tmp_path / "z.png")


def test_read_events_leaves_a_half_written_line(tmp_path):
    p = tmp_path / "events.jsonl"
    p.write_text('{"a": 1}\nnot json\n{"b": 2')
    evs, off = read_events(p)
    assert evs[0] == {"a": 1} and evs[1]["event"] == "unreadable" and len(evs) == 2
    with open(p, "a") as f:
        f.write("}\n")
    evs2, off2 = read_events(p, off)
    assert evs2 == [{"b": 2}] and off2 == p.stat().st_size
    assert read_events(tmp_path / "missing.jsonl") == ([], 0)


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read()


def test_server_routes_and_bad_port(results, tmp_path):
    d, preds = results
    out = tmp_path / "out"
    out.mkdir()
    for name in ("scan-a.npz",):
        (out / name).write_bytes((d / name).read_bytes())
    _append(out / "events.jsonl", _event(out, "scan-a.npz", preds[0]))
    _append(out / "events.jsonl", {"event": "error", "input": "bad.npy", "error": "bad.npy: not a 3D pattern"})
    h = serve(out, 0)
    try:
        assert h.url.startswith("http://127.0.0.1:")
        st, ctype, body = _get(h.url + "api/state")
        state = json.loads(body)
        assert [e["seq"] for e in state["events"]] == [1, 2] and state["events"][1]["event"] == "error"
        st, ctype, body = _get(h.url + "api/view/scan-a.npz")
        assert st == 200 and json.loads(body)["name"] == "scan-a.npz"
        (out / "scan 54.npz").write_bytes((d / "scan-a.npz").read_bytes())    # a name with a space
        assert json.loads(_get(h.url + "api/view/scan%2054.npz")[2])["name"] == "scan 54.npz"
        st, ctype, body = _get(h.url)
        assert b"autophase watch" in body and "text/html" in ctype
        for bad in ("api/view/..%2Fevents.jsonl", "api/view/missing.npz", "api/view/events.jsonl"):
            with pytest.raises(urllib.error.HTTPError) as e:
                _get(h.url + bad)
            assert e.value.code == 404
        with pytest.raises(InputError, match="--http"):        # the port is taken
            serve(out, h.port)
        # the event stream replays what came after the client's last event, then stays open
        stream = urllib.request.urlopen(h.url + "api/stream?after=1", timeout=10)
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        lines = [stream.readline() for _ in range(5)]
        assert lines[2] == b"event: run\n" and json.loads(lines[3][6:])["seq"] == 2
    finally:
        t0 = time.perf_counter()
        h.stop()
    assert time.perf_counter() - t0 < 5                          # an open stream does not hold it up
    stream.close()
    with pytest.raises(OSError):                                 # and free again after stop()
        socket.create_connection(("127.0.0.1", h.port), timeout=2).close()
    with pytest.raises(InputError, match="--http"):
        serve(out, 70000)


CHROMIUM = find_chromium()


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                    reason="no chromium (scripts/install_chromium.sh); required on CI")
def test_page_updates_without_reload_in_headless_chromium(results, model_path, tmp_path):
    d, preds = results
    out = tmp_path / "out"
    out.mkdir()
    (out / "scan-a.npz").write_bytes((d / "scan-a.npz").read_bytes())
    _append(out / "events.jsonl", _event(out, "scan-a.npz", preds[0]))
    _append(out / "events.jsonl", {"event": "error", "time": time.time(), "input": "broken.npy",
                                   "error": "broken.npy: not a 3D pattern"})
    h = serve(out, 0, poll_s=0.1)
    try:
        with browser_tab(timeout=30) as tab:
            assert tab.navigate(h.url)
            assert tab.wait_for("document.body.dataset.view === 'scan-a.npz' && "
                                "document.getElementById('link').textContent === 'live'", 20)
            assert tab.evaluate("document.getElementById('latest-input').textContent") == "scan-a.npy"
            assert tab.evaluate("document.querySelectorAll('#history tbody tr').length") == 2
            assert tab.evaluate("document.querySelectorAll('#history tbody tr.error').length") == 1
            assert tab.evaluate("document.querySelectorAll('#slices canvas').length") == 6
            assert int(tab.evaluate("document.getElementById('surface').dataset.triangles")) > 100
            # the surface is drawn: the canvas is no longer only its background
            drawn = tab.evaluate("(function(){var c=document.getElementById('surface'),"
                                 "d=c.getContext('2d').getImageData(0,0,c.width,c.height).data,n=0;"
                                 "for(var i=0;i<d.length;i+=4){if(d[i]+d[i+1]+d[i+2]>3*17+30)n++;}return n;})()")
            assert drawn > 2000
            tab.evaluate("window.__sameDocument = 42")

            # a new result lands: the file first, then its event line (as the service does)
            (out / "scan-b.npz").write_bytes((d / "scan-b.npz").read_bytes())
            _append(out / "events.jsonl", _event(out, "scan-b.npz", preds[1], latency_s=0.5))
            assert tab.wait_for("document.body.dataset.view === 'scan-b.npz'", 15)
            assert tab.evaluate("window.__sameDocument") == 42          # no reload
            assert tab.evaluate("document.getElementById('latest-input').textContent") == "scan-b.npy"
            chi2 = float(tab.evaluate("document.getElementById('latest-chi2').textContent"))
            assert chi2 == pytest.approx(preds[1].chi2, rel=1e-3) and chi2 != pytest.approx(preds[0].chi2, rel=1e-3)
            assert tab.evaluate("document.getElementById('latest-latency').textContent") == "0.500 s"
            rows = tab.evaluate("Array.from(document.querySelectorAll('#history tbody tr'))"
                                ".map(function(r){return r.cells[2].textContent;})")
            assert rows == ["scan-b.npy", "broken.npy", "scan-a.npy"]   # newest first
            # the learner's model store appears: the page shows the current model
            from autophase.live.learn import ModelStore

            v0 = ModelStore(out).start(model_path)
            assert tab.wait_for(f"document.getElementById('model-current').textContent === '{v0}'", 15)
            assert tab.evaluate("document.querySelectorAll('#rounds tbody tr.model-start').length") == 1
            assert tab.evaluate("window.__sameDocument") == 42
            check = collect_problems(tab.events, PageCheck(h.url), local=(h.url,))
            assert check.console_errors == [] and check.exceptions == [] and check.log_errors == []
            assert check.external_requests == []                         # self-contained: no CDN
    finally:
        h.stop()
