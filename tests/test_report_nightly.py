"""jobs/nightly/nightly.sh on two consecutive days: dated folders, `latest`, comparison.

The suite is a small real script in a temporary benchmarks folder (NIGHTLY_BENCH_DIR)
that writes a typed result record (autophase.results);
its timing is set per day through the environment so that day two regresses by 50 %.
A committed GPU record in that folder's results/ must join the report.
"""
from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from autophase.results import Env, Gpu, Metric, Result, write_result

REPO = Path(__file__).resolve().parents[1]
NIGHTLY = REPO / "jobs" / "nightly" / "nightly.sh"

SUITE = '''
import argparse, dataclasses, os
from autophase.results import Env, Metric, new_result, write_result
ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true")
ap.add_argument("--out", required=True)
a = ap.parse_args()
m = float(os.environ["TINY_MEDIAN_S"])
env = Env(host="ws", platform="linux", python="3", cpu_model="test cpu", cpu_cores=2, git_sha="cafe")
rec = new_result("tiny", env=env, details={"quick": a.quick})
rec = dataclasses.replace(rec, metrics=[Metric("work", m, "s", "lower", samples=[m, m])])
write_result(rec, a.out)
'''


def _run(env_extra: dict, root: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NIGHTLY_ROOT=str(root), **env_extra)
    return subprocess.run(["bash", str(NIGHTLY), "--quick"], env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
def test_two_nights_publish_and_compare(tmp_path):
    bench = tmp_path / "benchmarks"
    (bench / "results").mkdir(parents=True)
    (bench / "bench_tiny.py").write_text(textwrap.dedent(SUITE))
    gpu = Result("tiny", "benchmark", "2026-11-01T00:00:00+00:00", "gpu",
                 Env(host="polaris", platform="linux", python="3", cpu_model="x", cpu_cores=32,
                     gpu=Gpu("NVIDIA A100-SXM4-40GB", 4)), metrics=[Metric("work", 0.01, "s", "lower")])
    write_result(gpu, bench / "results" / "tiny-gpu.json")
    root = tmp_path / "nightly"
    # NIGHTLY_EVAL_N=0: the shipped model's held-out evaluation is covered by
    # tests/test_evaluate.py; here it would only add a minute of phasing
    common = {"NIGHTLY_BENCH_DIR": str(bench), "NIGHTLY_FAIL_ON_REGRESSION": "1", "NIGHTLY_EVAL_N": "0"}

    p1 = _run(dict(common, NIGHTLY_DATE="2026-11-24", TINY_MEDIAN_S="1.0"), root)
    assert p1.returncode == 0, p1.stdout + p1.stderr
    day1 = root / "2026-11-24"
    assert (day1 / "results" / "tiny-cpu.json").is_file() and (day1 / "index.html").is_file()
    assert os.readlink(root / "latest") == "2026-11-24"
    assert json.loads((day1 / "report.json").read_text())["previous"] is None

    p2 = _run(dict(common, NIGHTLY_DATE="2026-11-25", TINY_MEDIAN_S="1.5"), root)
    assert p2.returncode == 3, p2.stdout + p2.stderr      # published, but the regression is reported
    day2 = root / "2026-11-25"
    assert os.readlink(root / "latest") == "2026-11-25"
    bundle = json.loads((day2 / "report.json").read_text())
    assert bundle["previous"].startswith("the run of")
    assert [(r["suite"], r["metric"]) for r in bundle["regressions"]] == [("tiny", "work")]
    assert bundle["regressions"][0]["rel"] == pytest.approx(0.5)
    assert {(r["suite"], r["device"]) for r in bundle["records"]} == {("tiny", "cpu"), ("tiny", "gpu")}
    html = (root / "latest" / "index.html").read_text()
    assert "NVIDIA A100-SXM4-40GB" in html and "+50.0 % regression" in html
    log = (day2 / "nightly.log").read_text()
    assert "published" in log and "mode=quick" in log
    # Yesterday's records stay for the comparison.
    assert (day1 / "results" / "tiny-cpu.json").is_file() and (day1 / "report.json").is_file()


def test_bad_arguments_are_refused(tmp_path):
    env = dict(os.environ, NIGHTLY_ROOT=str(tmp_path))
    p = subprocess.run(["bash", str(NIGHTLY), "--date", "25/11/2026"], env=env, capture_output=True, text=True,
                       timeout=30)
    assert p.returncode == 2 and "YYYY-MM-DD" in p.stderr
    p = subprocess.run(["bash", str(NIGHTLY), "--bogus"], env=env, capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "unknown argument --bogus" in p.stderr
    assert not any(tmp_path.iterdir())
