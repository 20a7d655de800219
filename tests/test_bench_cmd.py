"""`autophase bench`: runs bench_<suite>.py scripts as processes and collects their records.

The suites here are small real scripts written into a temporary benchmarks folder: one
that takes ``--out`` and writes through autophase.bench.record.write_record, one that
only writes to its folder's results/ (the older convention), one that fails, one that
hangs past the timeout.
"""
from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

import pytest

from autophase.cli import main
from autophase.commands.bench import list_suites, run_suites
from autophase.errors import InputError
from autophase.report import build_report

TINY = '''
import argparse, sys, time
from autophase.bench.record import median_time, write_record
ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true")
ap.add_argument("--out", default=None)
a = ap.parse_args()
t = median_time(lambda: sum(range(20000)), repeats=3 if a.quick else 9)
print("tiny: progress line", flush=True)
write_record("tiny", {"quick": a.quick, "sum": t}, a.out)
'''

LEGACY = '''
import json, pathlib, sys
from autophase.bench.record import write_record
d = pathlib.Path(__file__).parent / "results"
d.mkdir(exist_ok=True)
write_record("legacy", {"argv": sys.argv[1:], "x_per_s": 3.0}, d / "legacy-cpu.json")
(d / "notes.json").write_text("[]")   # not a record: never collected
old = {"suite": "old", "created": "2026-11-25T00:00:00+00:00", "env": {"gpu": None}, "results": {"x": 1}}
(d / "old-cpu.json").write_text(json.dumps(old))   # a record from before the schema: not collected
'''

FAIL = '''
import sys
print("fail: something broke", file=sys.stderr)
sys.exit(3)
'''

HANG = '''
import os, pathlib, subprocess, sys, time
d = pathlib.Path(__file__).parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
(d / "hang.pids").write_text(f"{os.getpid()} {child.pid}")
time.sleep(120)
'''


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    d = tmp_path / "benchmarks"
    d.mkdir()
    for name, src in (("tiny", TINY), ("legacy", LEGACY), ("fail", FAIL), ("hang", HANG)):
        (d / f"bench_{name}.py").write_text(textwrap.dedent(src))
    (d / "helpers.py").write_text("# not a suite\n")
    return d


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is not running.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_list_and_collect(bench_dir, tmp_path, capsys):
    assert list(list_suites(bench_dir)) == ["fail", "hang", "legacy", "tiny"]
    out = tmp_path / "out"
    rc = main(["bench", "tiny", "legacy", "--quick", "--out", str(out), "--bench-dir", str(bench_dir)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "tiny: progress line" in text and "bench: summary" in text
    tiny = json.loads((out / "tiny-cpu.json").read_text())
    assert tiny["suite"] == "tiny" and tiny["schema"] == "autophase.result/1" and tiny["details"]["quick"] is True
    assert tiny["details"]["sum"]["repeats"] == 3 and tiny["env"]["cpu_cores"] >= 1 and tiny["device"] == "cpu"
    legacy = json.loads((out / "legacy-cpu.json").read_text())
    assert legacy["details"]["argv"] == ["--quick"]           # no --out for a suite without one
    assert not (out / "notes.json").exists()                   # not a record
    assert not (out / "old-cpu.json").exists()                 # an old-format record is not collected
    assert not list(out.glob(".*"))                            # no staging leftovers
    assert "tiny: progress line" in (out / "logs" / "tiny.log").read_text()


def test_failure_and_timeout_are_reported_and_cleaned_up(bench_dir, tmp_path):
    out = tmp_path / "out"
    t0 = time.monotonic()
    # 15 s: enough for `legacy` (a record's environment imports torch) on two loaded cores,
    # where 3 s once timed it out too
    runs = run_suites(["fail", "hang", "legacy"], quick=True, out=out, timeout_s=15, bench_dir=bench_dir)
    status = {r.name: r.status for r in runs}
    assert status == {"fail": "failed", "hang": "timeout", "legacy": "ok"}  # the others still ran
    assert runs[0].returncode == 3 and "something broke" in runs[0].log.read_text()
    assert time.monotonic() - t0 < 60
    # The hung suite and the process it started are both gone (process-group kill).
    pids = [int(p) for p in (bench_dir / "hang.pids").read_text().split()]
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids)
    assert main(["bench", "fail", "--out", str(out), "--bench-dir", str(bench_dir)]) == 1
    # The report says which suites did not finish (from logs/bench-status.json).
    status = json.loads((out / "logs" / "bench-status.json").read_text())["suites"]
    assert {k: v["status"] for k, v in status.items()} == {"fail": "failed", "hang": "timeout", "legacy": "ok"}
    html = build_report([out], tmp_path / "report").html.read_text()
    assert "2 suites did not finish: fail (exit 3; log logs/fail.log); hang (stopped after 15" in html


def test_unknown_suite_is_an_input_error(bench_dir, tmp_path, capsys):
    with pytest.raises(InputError, match="unknown suite.*nope.*available: fail, hang, legacy, tiny"):
        run_suites(["nope"], bench_dir=bench_dir, out=tmp_path)
    assert main(["bench", "nope", "--bench-dir", str(bench_dir)]) == 2
    assert "autophase bench: error: unknown suite" in capsys.readouterr().err
    with pytest.raises(InputError, match="no benchmarks folder"):
        list_suites(tmp_path / "missing")
