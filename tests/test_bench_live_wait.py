"""bench_live's result wait: a blocking inotify read that sees a file renamed into place."""
from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_live  # noqa: E402


def test_result_wait_returns_when_the_file_is_renamed_in(tmp_path):
    out = tmp_path / "out"
    w = bench_live.ResultWait(out)
    if sys.platform.startswith("linux"):
        assert w.kind == "inotify"
    try:
        def write():
            time.sleep(0.2)
            (out / ".x.npz.part").write_bytes(b"1")  # a temporary first, as the service writes
            (out / "other.npz").write_bytes(b"2")  # an event for another name does not end the wait
            os.rename(out / ".x.npz.part", out / "x.npz")

        t = threading.Thread(target=write)
        t0 = time.perf_counter()
        t.start()
        w.wait("x.npz", lambda: True, timeout=30)
        waited = time.perf_counter() - t0
        t.join()
        assert (out / "x.npz").exists() and 0.15 < waited < 10
        w.wait("x.npz", lambda: True, timeout=1)  # already there: returns at once
    finally:
        w.close()


def test_result_wait_ends_when_the_service_is_gone(tmp_path):
    w = bench_live.ResultWait(tmp_path / "out")
    try:
        with pytest.raises(RuntimeError, match="ended"):
            w.wait("never.npz", lambda: False, timeout=30)
        with pytest.raises(RuntimeError, match="no never.npz"):
            w.wait("never.npz", lambda: True, timeout=0.6)
    finally:
        w.close()
