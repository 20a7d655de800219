"""The benchmark report on typed result records (autophase.results): tables, figures,
peers, scaling, GPU rows, Δ vs the previous run, bad files, the headless-browser check.

Every record here is built with the schema's API (Result, Metric, Series, Distribution,
Target) and written by the one writer (write_result), on two dates: yesterday's and
today's with known changes — phasing 25 % slower (a regression), inference latency 20 %
lower (an improvement), simulation within 10 % (no mark).
"""
from __future__ import annotations

import base64
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from autophase.cli import main
from autophase.errors import InputError
from autophase.report import build_report, find_previous, load_records
from autophase.report.browser import check_page, find_chromium
from autophase.report.compare import compare
from autophase.report.sections.peers import advantage
from autophase.report.sections.series import efficiency
from autophase.results import (Distribution, Env, Gpu, Metric, Point, Result, Series, Target, read_result,
                               write_result)

REPO = Path(__file__).resolve().parents[1]
ENV = Env(host="ws1", platform="Linux", python="3.11.2", cpu_model="AMD EPYC 7B13", cpu_cores=2,
          git_sha="0123456789abcdef", versions={"autophase": "0.1.0", "torch": "2.13.0", "numpy": "2.1.0"},
          load_average=[0.31, 0.52, 0.75])
GPU_ENV = replace(ENV, host="gpu1", gpu=Gpu("NVIDIA H100 80GB HBM3", 1, 79.1))


def _rep(m: float) -> list[float]:
    return [m, 0.97 * m, 1.02 * m]


def phasing(ours_s: float, created: str, sha: str = "bbbb2222", cohere_s: float = 31.1) -> Result:
    ms = [
        Metric("phasing.time_s", ours_s, "s", "lower", "whole phase", "Single pattern", {"impl": "autophase"},
               _rep(ours_s)),
        Metric("phasing.time_s", cohere_s, "s", "lower", "whole phase", "Single pattern", {"impl": "cohere"},
               [cohere_s, cohere_s * 1.01]),
        # a similar name with a different figure: never mixed with phasing.time_s
        Metric("phasing.time_s_cold", 9.0, "s", "lower", "whole phase, cold process", "Single pattern",
               {"impl": "autophase"}, [9.0, 9.5]),
        Metric("phasing.chi2_over_floor", 0.98, "1", "closest-to-1", "χ²/floor", "Quality", {"impl": "autophase"}),
        Metric("phasing.chi2_over_floor", 0.72, "1", "closest-to-1", "χ²/floor", "Quality", {"impl": "cohere"}),
        Metric("phasing.ssim", 0.97, "1", "higher", "SSIM", "Quality", {"impl": "autophase"}),
        Metric("phasing.ssim", 0.95, "1", "higher", "SSIM", "Quality", {"impl": "cohere"}),
        Metric("phasing.speedup_vs_cohere", cohere_s / ours_s, "x", "higher", "speed-up vs cohere", "Targets",
               target=Target(">=", 3.0, "issue 16: ≥ 3× cohere")),
        Metric("phasing.refine0_s", 0.42, "s", "lower", "refine 0", "Targets", target=Target("<=", 0.3, "issue 16")),
        Metric("phasing.gpu_s", None, "s", "lower", "on the GPU", "Targets", note="no GPU on this host"),
    ]
    it = range(0, 600, 10)
    series = [
        Series("chi2", "curve", "iteration", "", "χ²", "1",
               [Point(i, 0.5 * math.exp(-i / 100) + 0.006) for i in it], "lower", params={"method": "phasing"}),
        Series("chi2", "curve", "iteration", "", "χ²", "1",
               [Point(i, 0.1 * math.exp(-i / 8) + 0.006) for i in range(50)], "lower", params={"method": "nn+er"}),
        Series("phasing.batch_time_s", "batch", "batch", "", "time per batch", "s",
               [Point(b, ours_s * b / 2, _rep(ours_s * b / 2)) for b in (1, 8)], "lower", "batched phasing"),
    ]
    return Result("phasing", "benchmark", created, "cpu", replace(ENV, git_sha=sha), "bench_phasing.py",
                  ms, series, notes=["shrink-wrap threshold 0.1"])


def inference(scale: float, created: str, device: str = "cpu", width: int = 8) -> Result:
    series, ms = [], []
    for model, gflop in (("default", 2.0), ("paper", 30.0)):
        pts = [Point(b, scale * gflop / 40 * (0.3 + b)) for b in (1, 8)]
        series.append(Series("inference.batch_time_s", "batch", "batch", "", "time per batch", "s", pts, "lower",
                             "forward pass", params={"model": model, "width": width}))
        ms.append(Metric("inference.latency_s", pts[0].y, "s", "lower", "batch 1 latency", "Latency",
                         {"model": model, "width": width}, _rep(pts[0].y)))
    return Result("inference", "benchmark", created, device, GPU_ENV if device == "gpu" else ENV, "", ms, series)


def training(created: str) -> Result:
    ddp = Series("training.samples_per_s", "strong-scaling", "ranks", "", "samples per s", "samples/s",
                 [Point(1, 4.8), Point(2, 8.64)], "higher", params={"engine": "ddp"})
    hvd = Series("training.samples_per_s", "strong-scaling", "ranks", "", "samples per s", "samples/s",
                 [Point(1, 4.7), Point(2, None, note="mpiexec exited 1")], "higher", params={"engine": "horovod"})
    return Result("training", "training", created, "cpu", ENV, "", [], [ddp, hvd])


def simulate(cps: float, created: str) -> Result:
    return Result("simulate", "benchmark", created, "cpu", ENV, "",
                  [Metric("simulate.crystals_per_s_per_core", cps, "crystals/s", "higher", "crystals per s per core")],
                  [Series("simulate.crystals_per_s", "weak-scaling", "ranks", "", "crystals per s", "crystals/s",
                          [Point(1, 2 * cps), Point(2, 3.7 * cps)], "higher")])


def scaling(created: str) -> Result:
    pts = [Point(n, t) for n, t in ((1, 10.0), (2, 10.8), (4, 12.5))]
    return Result("scaling-simulate-weak", "scaling", created, "cpu", ENV, "",
                  series=[Series("simulate.time_s", "weak-scaling", "ranks", "", "time", "s", pts, "lower")])


def evaluation(created: str, n: int = 60) -> Result:
    rng = np.random.default_rng(0)
    ds = []
    for method, c, s in (("nn", 0.05, 0.85), ("nn+er", 0.01, 0.93), ("phasing", 0.015, 0.90)):
        ds.append(Distribution("chi2", "1", [float(np.exp(rng.normal(math.log(c), 1.2))) for _ in range(n)],
                               "lower", "χ²", params={"method": method}, items=[str(i) for i in range(n)]))
        ds.append(Distribution("ssim", "1", [float(np.clip(rng.normal(s, 0.03), 0, 1)) for _ in range(n - 1)] + [None],
                               "higher", "SSIM", params={"method": method}))
    return Result("evaluate", "evaluation", created, "cpu", ENV, "", distributions=ds)


@pytest.fixture
def nightly_root(tmp_path: Path) -> Path:
    """<root>/2026-11-24/results (yesterday) and <root>/2026-11-25/results (today)."""
    root = tmp_path / "nightly"
    y, t = root / "2026-11-24" / "results", root / "2026-11-25" / "results"
    for d in (y, t):
        d.mkdir(parents=True)
    write_result(phasing(1.60, "2026-11-24T02:30:00+00:00", "aaaa1111", cohere_s=25.0), y / "phasing-cpu.json")
    write_result(inference(1.0, "2026-11-24T02:40:00+00:00"), y / "inference-cpu.json")
    write_result(simulate(3.0, "2026-11-24T02:50:00+00:00"), y / "simulate-cpu.json")
    write_result(phasing(2.00, "2026-11-25T02:30:00+00:00"), t / "phasing-cpu.json")
    write_result(inference(0.8, "2026-11-25T02:40:00+00:00"), t / "inference-cpu.json")
    write_result(simulate(3.1, "2026-11-25T02:50:00+00:00"), t / "simulate-cpu.json")
    write_result(training("2026-11-25T02:55:00+00:00"), t / "training-cpu.json")
    write_result(scaling("2026-11-25T03:00:00+00:00"), t / "scaling-simulate-weak-cpu.json")
    write_result(evaluation("2026-11-25T03:10:00+00:00"), t / "evaluate-cpu.json")
    return root


class _Tables(HTMLParser):
    """Every <table> as rows of (text, class) cells; every <img> src; the body text."""

    def __init__(self):
        super().__init__()
        self.tables, self.imgs, self.text = [], [], []
        self._cell = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = [a.get("class") or "", ""]
        elif tag == "img":
            self.imgs.append(a.get("src", ""))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append((self._cell[1].strip(), self._cell[0]))
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell[1] += data


def parse(html: str) -> _Tables:
    p = _Tables()
    p.feed(html)
    return p


def rows_with(tables, *texts):
    return [r for t in tables for r in t if all(any(x == c[0] for c in r) for x in texts)]


def row_with(tables, *texts):
    rows = rows_with(tables, *texts)
    assert rows, f"no table row with {texts}"
    return rows[0]


def delta(row):
    return next(c for c in row if "%" in c[0])


def test_regression_and_improvement_are_marked(nightly_root):
    out = nightly_root / "2026-11-25"
    files = build_report([out / "results"], out)
    assert find_previous(out) == nightly_root / "2026-11-24"
    page = parse(files.html.read_text())
    # Phasing 1.6 s → 2.0 s is +25 %: red in the changes table and in the metric table.
    r = row_with(page.tables, "phasing", "CPU", "whole phase (impl autophase)")
    assert delta(r)[1] == "regress" and "+25.0 %" in delta(r)[0] and "regression" in delta(r)[0]
    r = row_with(page.tables, "CPU", "whole phase (impl autophase)", "2 s")
    assert delta(r)[1] == "regress"
    # cohere 25 s → 31.1 s: a peer's own time moving is not our regression (no mark).
    r = row_with(page.tables, "CPU", "whole phase (impl cohere)")
    assert delta(r)[1] not in ("regress", "improve")
    # Inference 0.8× the time: −20 %, green.
    r = row_with(page.tables, "inference", "CPU", "batch 1 latency (model default, width 8)")
    assert delta(r)[1] == "improve" and "-20.0 %" in delta(r)[0]
    # Simulation +3.3 % throughput: inside the threshold, unmarked.
    r = row_with(page.tables, "simulate", "CPU", "crystals per s per core")
    assert delta(r)[1] not in ("regress", "improve")
    # The bundle: the records as Result.to_dict(), and exactly what the page marks.
    bundle = json.loads(files.bundle.read_text())
    assert bundle["kind"] == "autophase-report"
    assert {r["suite"] for r in bundle["records"]} == {"phasing", "inference", "simulate", "training",
                                                       "scaling-simulate-weak", "evaluate"}
    regs = {(x["suite"], x["metric"], tuple(sorted(x["params"].items()))) for x in bundle["regressions"]}
    assert ("phasing", "phasing.time_s", (("impl", "autophase"),)) in regs
    assert not any(s == "inference" for s, _, _ in regs)
    assert files.regressions == len(bundle["regressions"]) and files.improvements >= 2
    # Batched phasing +25 % per batch point (series Δ against the previous run's same point).
    r = row_with(page.tables, "CPU", "batched phasing", "8")
    assert delta(r)[1] == "regress"
    # The summary card says it in words, and the Markdown twin carries the same marks.
    assert page.text[page.text.index("Since the previous run") + 1] == "1 regression"
    md = files.markdown.read_text()
    assert re.search(r"🔴 ▲ \+25\.0 % regression", md) and "🟢" in md
    assert "the run of 2026-11-24 02:50 UTC" in md  # "compared with" names yesterday's newest record


def test_every_view_is_drawn_from_its_fields(nightly_root):
    out = nightly_root / "2026-11-25"
    files = build_report([out / "results"], out)
    page = parse(files.html.read_text())
    text = " ".join(page.text)
    # Ours vs cohere: speed 31.1 s / 2.0 s, quality χ²/floor by |ln|, SSIM by ratio.
    assert ("×15.6", "improve") in row_with(page.tables, "whole phase", "cohere")
    assert ("×" + f"{math.log(0.72) / math.log(0.98):.3g}", "improve") in row_with(page.tables, "χ²/floor", "cohere")
    assert ("×1.02", "improve") in row_with(page.tables, "SSIM", "cohere")
    assert "Geometric mean speed-up of ours over the peers: ×15.6 (1 comparison)" in text
    # Value, spread min–max and n from the samples; targets with their own text.
    r = row_with(page.tables, "CPU", "whole phase (impl autophase)")
    assert ("1.94 s – 2.04 s", "num") in r and ("3", "num") in r
    assert ("✓ issue 16: ≥ 3× cohere (>= ×3)", "improve") in row_with(page.tables, "speed-up vs cohere")
    assert ("✗ issue 16 (<= 300 ms)", "regress") in row_with(page.tables, "refine 0")
    assert ("not measured: no GPU on this host", "muted") in row_with(page.tables, "on the GPU")
    assert "CPU: shrink-wrap threshold 0.1" in text  # the record's notes
    # Strong scaling of a rate: ddp 8.64 / (2 · 4.8) = 90 %; horovod's failed point is said.
    assert ("90%", "num") in row_with(page.tables, "training.samples_per_s (engine ddp)", "2")
    assert any("mpiexec exited 1" in c[0] for c in row_with(page.tables, "training.samples_per_s (engine horovod)"))
    # Weak scaling of a time: 10 / 12.5 = 80 %; of a rate: 3.7 / (2 · 2) = 92 %.
    assert ("80%", "num") in row_with(page.tables, "simulate.time_s", "4")
    assert ("92%", "num") in row_with(page.tables, "simulate.crystals_per_s", "2")
    # Batch latency per item = time per batch / batch: paper, batch 8 at scale 0.8.
    r = row_with(page.tables, "CPU", "forward pass (model paper, width 8)", "8")
    assert r[3][0] == f"{0.8 * 30 / 40 * 8.3 / 8 * 1e3:.3g} ms"
    # Distributions: median per method as computed from the values; failed items left out.
    ev = evaluation("x")
    d = next(x for x in ev.distributions if x.name == "chi2" and x.params["method"] == "nn+er")
    r = row_with(page.tables, "χ²", "nn+er")
    assert r[2][0] == "60" and float(r[3][0]) == pytest.approx(np.median(d.values), rel=5e-3)
    assert row_with(page.tables, "SSIM", "phasing")[2][0] == "59 (+1 failed)"
    # Every figure the sections promise exists, is embedded, and is a PNG.
    names = {p.name for p in files.figures}
    for want in ("phasing-peers-speed.png", "phasing-peers-quality.png", "phasing-latency.png",
                 "inference-latency.png", "evaluate-cpu-chi2-hist.png", "evaluate-cpu-ssim-hist.png",
                 "phasing-cpu-χ²-curve.png", "scaling-simulate-weak-scaling.png", "simulate-scaling.png",
                 "training-scaling.png"):
        assert want in names, names
    assert len(page.imgs) == len(files.figures)
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    md = files.markdown.read_text()
    for p in files.figures:
        assert f"](figures/{p.name})" in md and p.read_bytes()[:4] == b"\x89PNG"
    # Load average and git SHA of each record are in the records table.
    assert row_with(page.tables, "phasing", "benchmark", "CPU", "ws1", "bbbb2222", "0.31 / 0.52 / 0.75")


def test_a_figure_is_read_from_the_field_it_names(tmp_path):
    """Similar names, same name with other params: each row shows its own value and its Δ
    is against its own previous value — never a neighbour's."""
    def rec(created, a, b, c, d):
        return Result("io", "benchmark", created, "cpu", ENV, metrics=[
            Metric("io.read_s", a, "s", "lower", group="IO"),
            Metric("io.read_s_max", b, "s", "lower", group="IO"),
            Metric("io.read_s", c, "s", "lower", group="IO", params={"batch": 8}),
            Metric("io.read_MB_s", d, "MB/s", "higher", group="IO")])
    write_result(rec("2026-11-24T00:00:00+00:00", 1.0, 5.0, 2.0, 100.0), tmp_path / "prev" / "io-cpu.json")
    write_result(rec("2026-11-25T00:00:00+00:00", 1.5, 5.0, 1.0, 100.0), tmp_path / "now" / "io-cpu.json")
    files = build_report([tmp_path / "now"], tmp_path / "out", [tmp_path / "prev"])
    page = parse(files.html.read_text())
    r = row_with(page.tables, "CPU", "io.read_s", "1.5 s")
    assert delta(r) == ("▲ +50.0 % regression", "regress")
    r = row_with(page.tables, "CPU", "io.read_s_max", "5 s")
    assert delta(r)[0] == "+0.0 %"
    r = row_with(page.tables, "CPU", "io.read_s (batch 8)", "1 s")
    assert delta(r) == ("▼ -50.0 % better", "improve")
    assert row_with(page.tables, "CPU", "io.read_MB_s", "100 MB/s")
    # an unknown suite gets its name as title and the same views
    assert "io (CPU)" in files.html.read_text()


def test_better_direction_comes_from_the_metric():
    def m(v, better, name="q"):
        return Metric(name, v, "1", better)
    # closest-to-1: below the floor is over-fitting, ranked by |ln value|
    (c,) = compare("s", "cpu", [m(0.8, "closest-to-1")], [m(1.0, "closest-to-1")])
    assert c.status == "regression" and c.severity == pytest.approx(abs(math.log(0.8)))
    (c,) = compare("s", "cpu", [m(1.02, "closest-to-1")], [m(1.3, "closest-to-1")])
    assert c.status == "improvement"
    (c,) = compare("s", "cpu", [m(0.8, "lower")], [m(1.0, "lower")])
    assert c.status == "improvement"
    (c,) = compare("s", "cpu", [m(0.8, "higher")], [m(1.0, "higher")])
    assert c.status == "regression"
    (c,) = compare("s", "cpu", [m(0.5, "")], [m(1.0, "")])
    assert c.status == "info" and c.rel == pytest.approx(-0.5)
    assert [x.status for x in compare("s", "cpu", [m(1.0, "lower", "a")], [m(1.0, "lower", "b")])] == ["new", "gone"]
    assert advantage("lower", 2.0, 31.1) == pytest.approx(15.55) and advantage("higher", 0.9, 0.95) < 1
    s = Series("t", "strong-scaling", "nodes", "", "t", "s", [Point(1, 100.0), Point(4, 40.0)])
    N, S, E, basis = efficiency(s)
    assert S == pytest.approx([1.0, 2.5]) and E == pytest.approx([1.0, 0.625]) and basis == "time, strong"


def test_gpu_rows_appear_only_with_a_gpu_record(nightly_root, tmp_path):
    out = nightly_root / "2026-11-25"
    files = build_report([out / "results"], tmp_path / "cpu_only")
    assert "No GPU result exists yet" in files.html.read_text()
    assert "No GPU result exists yet" in files.markdown.read_text()
    gpu = write_result(inference(0.05, "2026-11-20T10:00:00+00:00", "gpu"), tmp_path / "committed" / "inference-gpu.json")
    page = parse(build_report([out / "results", gpu], tmp_path / "with_gpu").html.read_text())
    r = row_with(page.tables, "GPU (NVIDIA H100 80GB HBM3)", "forward pass (model default, width 8)", "8")
    assert ("×16", "num") in r  # CPU 0.8·t vs GPU 0.05·t per batch: ×16 per item
    text = " ".join(page.text)
    assert "No GPU result exists yet for inference" not in text
    assert "No GPU result exists yet for phasing" in text
    glance = page.text[page.text.index("At a glance"):page.text.index("At a glance") + 40]
    assert "GPU vs CPU" in glance and not any("No GPU result" in t for t in glance)
    # A model of another width is another series: never paired with the old model's CPU row.
    gpu16 = write_result(inference(0.05, "2026-11-20T10:00:00+00:00", "gpu", width=16),
                         tmp_path / "committed16" / "inference-gpu.json")
    page = parse(build_report([out / "results", gpu16], tmp_path / "with_gpu16").html.read_text())
    assert row_with(page.tables, "GPU (NVIDIA H100 80GB HBM3)", "forward pass (model default, width 16)", "8")[-1] \
        == ("—", "muted")


def test_invalid_files_are_named_and_the_rest_renders(nightly_root, tmp_path, capsys):
    d = tmp_path / "r"
    d.mkdir()
    shutil.copy(nightly_root / "2026-11-25" / "results" / "simulate-cpu.json", d)
    (d / "old-cpu.json").write_text(json.dumps({"suite": "old", "created": "2026-11-25", "env": {},
                                                "results": {"x": 1}}))
    (d / "corrupt.json").write_text('{"suite": "x", "metrics": [')
    bad = json.loads((d / "simulate-cpu.json").read_text())
    bad["suite"] = "typo"
    bad["metrics"][0]["unit"] = 3
    (d / "typo-cpu.json").write_text(json.dumps(bad))
    write_result(Result("empty", "benchmark", "2026-11-25T00:00:00+00:00", "cpu", ENV), d / "empty-cpu.json")
    assert main(["report", str(d), "-o", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert re.search(r"warning: .*old-cpu\.json: old-cpu\.json: unknown field\(s\) results", err)
    assert re.search(r"warning: .*corrupt\.json: not readable JSON", err)
    assert re.search(r"warning: .*typo-cpu\.json: .*metrics\[0\]\.unit: expected a string", err)
    page = parse((tmp_path / "o" / "index.html").read_text())
    assert row_with(page.tables, str(d / "corrupt.json"))[0][1] == "regress"
    assert any("metrics[0].unit" in c[0] for c in row_with(page.tables, str(d / "typo-cpu.json")))
    assert row_with(page.tables, "simulate", "benchmark", "CPU")  # the valid records render
    assert "The empty record holds no metrics, series or distributions." in " ".join(page.text)
    # No record loads at all: one line, exit != 0, nothing written.
    assert main(["report", str(d / "old-cpu.json"), str(d / "corrupt.json"), "-o", str(tmp_path / "o2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("autophase report: error:") and "no valid result record" in err[-1]
    assert not (tmp_path / "o2").exists()
    with pytest.raises(InputError, match="no such file"):
        load_records([tmp_path / "missing.json"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no"):
        load_records([tmp_path / "empty"])


def test_cli_previous_and_fail_on_regression(nightly_root, tmp_path, capsys):
    today = nightly_root / "2026-11-25" / "results" / "phasing-cpu.json"
    prev = nightly_root / "2026-11-24"
    build_report([prev / "results" / "phasing-cpu.json"], prev)  # yesterday's report and its bundle
    loaded = load_records([prev], prefer_bundle=True)
    assert [r.suite for r in loaded.records] == ["phasing"] and loaded.records[0].source.endswith("[records][0]")
    out = tmp_path / "not-dated"
    assert main(["report", str(today), "-o", str(out)]) == 0
    assert "no previous report" in capsys.readouterr().out
    assert "No previous report to compare with" in (out / "index.html").read_text()
    # A past report folder (its report.json bundle is read) → the +25 % fails the run.
    assert main(["report", str(today), "-o", str(out), "--previous", str(prev), "--fail-on-regression"]) == 3
    assert re.search(r"vs the run of 2026-11-24 02:30 UTC \(git aaaa1111, ws1\): [1-9]\d* regressions",
                     capsys.readouterr().out)
    # A looser threshold (30 %) leaves the +25 % unmarked.
    assert main(["report", str(today), "-o", str(out), "--previous", str(prev / "report.json"),
                 "--threshold", "0.3", "--fail-on-regression"]) == 0


def test_newest_record_per_suite_and_device_wins(nightly_root, tmp_path):
    today = nightly_root / "2026-11-25" / "results"
    old = write_result(phasing(9.0, "2026-01-01T00:00:00+00:00"), tmp_path / "old" / "phasing-cpu.json")
    files = build_report([old, today], tmp_path / "o")
    bundle = json.loads(files.bundle.read_text())
    (ph,) = [r for r in bundle["records"] if r["suite"] == "phasing"]
    assert read_result(today / "phasing-cpu.json").to_dict() == ph
    assert "Superseded" in files.html.read_text()


def test_page_is_self_contained(nightly_root):
    out = nightly_root / "2026-11-25"
    html = build_report([out / "results"], out).html.read_text()
    assert not re.search(r"(src|href)\s*=\s*\"(https?:)?//", html)
    assert "@import" not in html and "url(http" not in html
    assert html.count("<style>") == 1 and "<link rel=\"stylesheet\"" not in html


# ----------------------------------------------------------------------------- browser
CHROMIUM = find_chromium()
needs_browser = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                   reason="no chromium (scripts/install_chromium.sh); required on CI")


def _check(files, tmp_path, min_figures):
    check = check_page(files.html, screenshot=tmp_path / "page.png")
    assert check.loaded and check.title.startswith("autophase benchmarks")
    assert check.problems() == []
    n = len(files.figures)
    assert n >= min_figures and len(check.images) == n and check.images_mark == f"{n}/{n}"
    assert all(im["naturalWidth"] >= 400 for im in check.images)  # decoded at their real size
    assert check.external_requests == []
    assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_browser
def test_report_renders_in_headless_chromium(nightly_root, tmp_path):
    out = nightly_root / "2026-11-25"
    _check(build_report([out / "results"], out), tmp_path, 10)


def _committed_results(tmp_path: Path) -> tuple[Path, list[str]]:
    """A copy of benchmarks/results as committed, and the files that were still in the old
    format there (migrated on the copy with `autophase results migrate` when that command
    exists; left as they are otherwise)."""
    files = subprocess.run(["git", "ls-files", "benchmarks/results/*.json"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    d = tmp_path / "committed"
    d.mkdir()
    for f in files:
        shutil.copy(REPO / f, d)
    old = []
    for p in sorted(d.glob("*.json")):
        try:
            read_result(p)
        except InputError:
            old.append(str(p))
    if old and importlib.util.find_spec("autophase.commands.results") is not None:
        subprocess.run([sys.executable, "-m", "autophase.cli", "results", "migrate", *old], capture_output=True,
                       text=True, timeout=120)
    return d, old


@needs_browser
def test_committed_results_render_in_headless_chromium(tmp_path):
    d, was_old = _committed_results(tmp_path)
    files = build_report([d], tmp_path / "report")
    bundle = json.loads(files.bundle.read_text())
    # every committed record loads (after migration of any still in the old format)
    assert bundle["not_loaded"] == [] and len(bundle["records"]) >= 1, (was_old, bundle["not_loaded"])
    _check(files, tmp_path, 1)


@needs_browser
def test_browser_check_catches_a_broken_page(tmp_path):
    """The check above can fail: a truncated PNG, a remote image, console.error and an
    uncaught exception are each reported."""
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><head><title>bad</title></head><body>"
        '<img alt="truncated" src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB">'
        '<img alt="remote" src="http://192.0.2.1/x.png">'
        '<script>console.error("boom"); window.addEventListener("load", function () { nope(); });</script>'
        "</body></html>")
    check = check_page(page, timeout=20)
    assert not check.ok
    probs = "\n".join(check.problems())
    assert "console error: boom" in probs and "ReferenceError" in probs
    assert "image not rendered: truncated" in probs and "image not rendered: remote" in probs
    assert "external request: http://192.0.2.1/x.png" in probs
