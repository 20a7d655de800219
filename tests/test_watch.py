"""`autophase watch`: a real service process over a real INBOX (tiny network, CPU).

One service run checks arrivals by rename, a corrupt and a wrong-shaped file between good
ones (error events naming them, the next good file still done), that every result file is
complete whenever its name exists, and SIGTERM (exit 0, no temporaries); a second run over
the same folders checks that a restart skips the inputs already done.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from autophase.live.service import Inbox, is_temp_name
from autophase.physics.forward import far_field

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 240  # a shared 2-core machine can take long to import torch


def _pattern(seed: int, n: int = 64) -> np.ndarray:
    """Counts of a random blob's far field, float32 (n, n, n)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.mgrid[:n, :n, :n] - n // 2
    r = np.sqrt(z ** 2 + y ** 2 + x ** 2)
    obj = (r < 6 + rng.uniform(0, 4)) * np.exp(1j * rng.normal(0, 0.3) * z / 4)
    I = np.abs(far_field(obj.astype(np.complex64))) ** 2
    return rng.poisson(I * 1e6 / I.sum()).astype(np.float32)


def _drop(inbox: Path, name: str, write) -> None:
    """Write under a temporary name in INBOX, then rename into place (how writers deliver)."""
    tmp = inbox / f".{name}.tmp"
    write(tmp)
    os.replace(tmp, inbox / name)


def _save_npy(arr):
    def w(p):
        with open(p, "wb") as f:
            np.save(f, arr)
    return w


class Service:
    def __init__(self, inbox: Path, out: Path, model: Path):
        cmd = [sys.executable, "-m", "autophase.cli", "watch", str(inbox), "-o", str(out), "--model", str(model),
               "--format", "npz", "--no-plot", "--refine", "3", "--symmetries", "1", "--poll-ms", "5", "--no-compile"]
        env = dict(os.environ, AUTOPHASE_FFTW_THREADS="1")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_ready(self):
        t_end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < t_end:
            if any(line.startswith("ready") for line in self.lines):
                return
            if self.proc.poll() is not None:
                pytest.fail(f"watch exited {self.proc.returncode}: {self.proc.stderr.read()}")
            time.sleep(0.05)
        self.proc.kill()
        pytest.fail("watch did not print ready")

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(120)
        self._t.join(5)
        return rc, self.proc.stderr.read()


def _wait_for(path: Path, timeout: float = 120) -> None:
    t_end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < t_end, f"{path} did not appear"
        time.sleep(0.01)


def _events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def _other_model(path: Path) -> str:
    """A second tiny network saved at ``path``; its version (SHA-256 prefix)."""
    import torch

    from autophase.model import AutoPhaseNet, NetworkConfig, save_checkpoint
    from autophase.model.checkpoint import file_sha256

    torch.manual_seed(1)
    cfg = NetworkConfig(width=2, depth=2)
    save_checkpoint(path, {"network": cfg.to_dict(), "model": AutoPhaseNet(cfg).state_dict()})
    return file_sha256(path)[:16]


def _no_temporaries(out: Path) -> list[str]:
    return [p.name for p in out.iterdir() if p.name.startswith(".") or ".part" in p.name or ".tmp" in p.name]


def test_temp_names_and_arrival_order(tmp_path):
    assert is_temp_name(".a.npy.tmp") and is_temp_name("a.npy.part") and is_temp_name("a.tmp.npy")
    assert is_temp_name(".a.npy.part-123.npy") and is_temp_name("a.npy~")
    assert not is_temp_name("scan_0007.npy") and not is_temp_name("a.h5")
    inbox = Inbox(tmp_path)
    for name in ("b.npy", "a.npy"):  # b renamed in first
        (tmp_path / ".x").write_bytes(b"1")
        os.replace(tmp_path / ".x", tmp_path / name)
        time.sleep(0.02)
    (tmp_path / "scan1").mkdir()
    (tmp_path / "partial.npy.part").write_bytes(b"")
    assert [a.path.name for a in inbox.poll()] == ["b.npy", "a.npy"]  # the scan has no marker yet
    (tmp_path / "scan1" / "SCAN_COMPLETE").write_text("")
    assert [(a.path.name, a.kind) for a in inbox.poll()] == [("scan1", "scan")]
    assert inbox.poll() == []


def test_watch_service(tmp_path, model_path):
    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    svc = Service(inbox, out, model_path)
    svc.wait_ready()

    # a reader that opens every result the moment its name appears: it must always be whole
    torn, seen, watching = [], set(), threading.Event()

    def reader():
        while not watching.is_set():
            for p in out.glob("*.npz"):
                if not p.name.startswith(".") and p.name not in seen:  # hidden: a temporary being written
                    try:
                        with np.load(p) as z:
                            assert z["object"].shape == (64, 64, 64)
                            float(z["chi2"])
                    except Exception as e:  # noqa: BLE001
                        torn.append(f"{p.name}: {e}")
                    seen.add(p.name)
            time.sleep(0.001)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    _drop(inbox, "a.npy", _save_npy(_pattern(1)))
    _wait_for(out / "a.npz")
    _drop(inbox, "broken.npy", lambda p: p.write_bytes(b"\x93NUMPY garbage, not an array"))
    _drop(inbox, "small.npy", _save_npy(_pattern(2, n=32)))
    _drop(inbox, "b.npy", _save_npy(_pattern(3)))
    _wait_for(out / "b.npz")
    # a promoted model (OUT/models/current.json, as the learner or a rollback writes it) is used from the next input
    models = out / "models"
    models.mkdir()
    v2 = _other_model(models / "m2.pt")
    (models / ".current.json.tmp").write_text(json.dumps({"version": v2, "path": "m2.pt"}))
    os.replace(models / ".current.json.tmp", models / "current.json")
    _drop(inbox, "e.npy", _save_npy(_pattern(6)))
    _wait_for(out / "e.npz")
    # a raw scan directory is taken once its completion marker appears, through prep
    from test_prep import write_scan

    write_scan(tmp_path / "stage" / "scan7")
    os.replace(tmp_path / "stage" / "scan7", inbox / "scan7")
    time.sleep(0.3)
    assert not (out / "scan7.npz").exists() and "scan7" not in (out / "events.jsonl").read_text()
    (inbox / "scan7" / "SCAN_COMPLETE").write_text("")
    _wait_for(out / "scan7.npz")
    watching.set()
    t.join(5)
    rc, err = svc.stop()
    assert rc == 0, err
    assert "stopped" in err
    assert not torn, torn
    ev = _events(out)
    kinds = [(Path(e["input"]).name, e["event"]) for e in ev]
    assert kinds.count(("a.npy", "result")) == 1 and kinds.count(("b.npy", "result")) == 1
    by_name = {Path(e["input"]).name: e for e in ev if e["event"] == "result"}
    assert by_name["e.npy"]["model_version"] == v2 != by_name["b.npy"]["model_version"]
    assert by_name["e.npy"]["model_path"].endswith("m2.pt")
    assert by_name["scan7"]["kind"] == "scan" and by_name["scan7"]["stages"]["prep"] > 0
    assert (out / "prepped" / "scan7.cxi").is_file()
    errors = {Path(e["input"]).name: e["error"] for e in ev if e["event"] == "error"}
    assert set(errors) == {"broken.npy", "small.npy"}
    assert "broken.npy" in errors["broken.npy"] and "32" in errors["small.npy"]
    res = [e for e in ev if e["event"] == "result"]
    for e in res:
        assert e["model_version"] and e["latency_s"] > 0 and np.isfinite(e["chi2"])
        assert {"load", "nn", "refine", "write"} <= set(e["stages"])
        assert e["outline"] in ("network", "autocorrelation")  # which outline the kept ER started from
        assert e["start_phase"] in ("network", "zero")  # ... and with which phase
    assert not (out / "broken.npz").exists() and not (out / "small.npz").exists()
    assert _no_temporaries(out) == []
    with np.load(out / "b.npz") as z:
        assert str(z["model_version"]) == by_name["b.npy"]["model_version"] and int(z["refine_iterations"]) == 3

    # restart: a and b are done, c is new; a file renamed in just before SIGTERM is done or left whole
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("[!.]*.npz")}
    _drop(inbox, "c.npy", _save_npy(_pattern(4)))
    svc = Service(inbox, out, model_path)
    svc.wait_ready()
    _wait_for(out / "c.npz")
    _drop(inbox, "d.npy", _save_npy(_pattern(5)))
    time.sleep(0.05)
    rc, err = svc.stop()
    assert rc == 0, err
    assert "already have results" in err
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("[!.]*.npz") if p.name in mtimes} == mtimes
    new = [Path(e["input"]).name for e in _events(out)[len(ev):] if e["event"] == "result"]
    assert new[0] == "c.npy" and set(new) <= {"c.npy", "d.npy"}
    if (out / "d.npz").exists():
        with np.load(out / "d.npz") as z:
            assert z["object"].shape == (64, 64, 64)
    assert _no_temporaries(out) == []


def test_bad_options_write_nothing(tmp_path, model_path):
    from autophase.cli import main

    out = tmp_path / "out"
    assert main(["watch", str(tmp_path / "nope"), "-o", str(out), "--model", str(model_path)]) == 2
    (tmp_path / "in").mkdir()
    assert main(["watch", str(tmp_path / "in"), "-o", str(out), "--model", str(model_path), "--refine", "-1"]) == 2
    assert main(["watch", str(tmp_path / "in"), "-o", str(tmp_path / "in" / "o"), "--model", str(model_path)]) == 2
    assert not out.exists() and not (tmp_path / "in" / "o").exists()


def test_precision_auto_is_bf16_only_where_the_network_answer_is_the_product():
    from autophase.live.service import resolve_precision

    asked = []

    def native():
        asked.append(1)
        return True

    kw = dict(backend="torch", device_type="cpu", compiled=True, native_bf16=native)
    assert resolve_precision("auto", refine=0, **kw) == "bf16"
    assert resolve_precision("auto", refine=50, **kw) == "fp32"  # ER after bf16 drifted on scan 54
    assert resolve_precision("auto", refine=0, **{**kw, "compiled": False}) == "fp32"
    assert resolve_precision("auto", refine=0, **{**kw, "device_type": "cuda"}) == "fp32"
    assert resolve_precision("auto", refine=0, **{**kw, "native_bf16": lambda: False}) == "fp32"
    # an explicit choice is kept as given
    assert resolve_precision("bf16", refine=50, **kw) == "bf16"
    assert resolve_precision("fp32", refine=0, **kw) == "fp32"


def test_pick_precision_keeps_bf16_only_when_clearly_faster():
    from autophase.live.service import BF16_MARGIN, pick_precision

    assert pick_precision({"fp32": 0.072, "bf16": 0.092}) == "fp32"  # AVX-512 BF16 without AMX
    assert pick_precision({"fp32": 0.034, "bf16": 0.023}) == "bf16"
    assert pick_precision({"fp32": 0.050, "bf16": 0.050 * (BF16_MARGIN + 0.02)}) == "fp32"  # a near tie: fp32


def test_precision_auto_timings_are_kept_and_a_restart_compiles_once(tmp_path, model_path, monkeypatch):
    """The first service times both compiled networks and keeps the timings on disk; the next
    one on the same machine and network reads them, compiles once (the chosen arithmetic)
    and says so in ``ready``; a file for another machine or network, or a corrupt one, is
    ignored and the timing runs again."""
    import json

    import autophase.predict as predict_mod
    from autophase.live import precision_cache
    from autophase.live.service import WatchConfig, WatchService, pick_precision

    monkeypatch.setattr(predict_mod, "native_bf16_cpu", lambda: True)
    cache = tmp_path / "precision.json"
    monkeypatch.setenv(precision_cache.ENV, str(cache))
    (tmp_path / "in").mkdir()
    cfg = WatchConfig(inbox=tmp_path / "in", out=tmp_path / "out", model=str(model_path), refine=0,
                      compile=True, precision="auto", plot=False)
    first = WatchService(cfg)
    first._load_predictor(model_path)
    d = json.loads(cache.read_text())
    assert d["seconds"] == first.precision_seconds and d["key"].endswith(f"|size {first.predictor.size}")

    compiles = []
    monkeypatch.setattr(WatchService, "_time_precisions", lambda self, p: pytest.fail("timed again"))
    orig = WatchService._compile
    monkeypatch.setattr(WatchService, "_compile", lambda self, p: (compiles.append(p.precision), orig(self, p)))
    second = WatchService(cfg)
    second._load_predictor(model_path)
    choice = pick_precision(first.precision_seconds)
    assert compiles == [choice] and second.predictor.precision == choice and second.predictor.compiled
    assert second.precision_seconds == first.precision_seconds and f"timed {d['timed']}" in second._precision_note()

    for bad in ({**d, "key": d["key"].replace("size", "size 0")}, {**d, "seconds": {"fp32": -1, "bf16": 1}}):
        cache.write_text(json.dumps(bad))
        assert precision_cache.load(cache, d["key"]) is None
    cache.write_text("{not json")
    assert precision_cache.load(cache, d["key"]) is None
    monkeypatch.setenv(precision_cache.ENV, "off")
    assert precision_cache.cache_path(d["key"]) is None


def test_precision_auto_times_both_compiled_networks_and_keeps_the_faster(tmp_path, model_path, monkeypatch):
    """The real compile and timing, on the tiny network, with the CPU-flag question answered
    yes (so that the timing runs on any CPU): the kept network is compiled, in the chosen
    arithmetic, and a reload (a promoted model) reuses the choice without timing again."""
    import torch

    import autophase.predict as predict_mod
    from autophase.live.service import WatchConfig, WatchService, pick_precision

    monkeypatch.setattr(predict_mod, "native_bf16_cpu", lambda: True)
    (tmp_path / "in").mkdir()
    svc = WatchService(WatchConfig(inbox=tmp_path / "in", out=tmp_path / "out", model=str(model_path), refine=0,
                                   compile=True, precision="auto", plot=False))
    svc._load_predictor(model_path)
    p = svc.predictor
    assert set(svc.precision_seconds) == {"fp32", "bf16"} and all(s > 0 for s in svc.precision_seconds.values())
    choice = pick_precision(svc.precision_seconds)
    assert p.precision == choice and p.compiled and p.batch_size == 1
    want = torch.bfloat16 if choice == "bf16" else torch.float32
    assert next(p.net.parameters()).dtype == want
    amp, ph = p._forward(_pattern(1)[None] ** 0.5)
    assert amp.dtype == np.float32 and np.isfinite(amp).all() and np.isfinite(ph).all()

    assert svc._precision_note().startswith(" (auto: fp32 ") and "bf16" in svc._precision_note()  # in `ready`
    timed = dict(svc.precision_seconds)
    svc._load_predictor(model_path)  # as after a promotion
    assert svc.predictor is not p and svc.predictor.precision == choice and svc.predictor.compiled
    assert svc.precision_seconds == timed


def test_refine_zero_defaults_to_one_network_pass(tmp_path, model_path):
    """Without ``--symmetries`` the service averages 4 copies when ER follows and runs one
    pass when the network's answer is the product (``--refine 0``); an explicit K wins."""
    from autophase.live.service import WatchConfig, WatchService
    from autophase.predict import DEFAULT_SYMMETRIES, DEFAULT_SYMMETRIES_ALONE

    (tmp_path / "in").mkdir()
    for refine, sym, want in ((0, None, DEFAULT_SYMMETRIES_ALONE), (5, None, DEFAULT_SYMMETRIES), (0, 4, 4)):
        svc = WatchService(WatchConfig(inbox=tmp_path / "in", out=tmp_path / "out", model=str(model_path),
                                       refine=refine, symmetries=sym, compile=False, plot=False))
        svc._load_predictor(model_path)
        assert svc.predictor.symmetries == want, (refine, sym)
    assert DEFAULT_SYMMETRIES_ALONE == 1 < DEFAULT_SYMMETRIES
