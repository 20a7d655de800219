"""The benchmark report: records → HTML/Markdown with tables, figures and regression marks.

The records are written here in the shapes the suites write (benchmarks/bench_*.py via
autophase.bench.record.write_record, hpc/scaling.py, `autophase evaluate`), on two
dates: yesterday's and today's with known changes — phasing 25 % slower (a
regression), inference throughput up (an improvement), simulation within 10 % (no mark).
"""
from __future__ import annotations

import base64
import json
import math
import os
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from autophase.cli import main
from autophase.errors import InputError
from autophase.report import build_report, find_previous, load_records
from autophase.report.browser import check_page, find_chromium
from autophase.report.compare import TOWARD_ONE, better_key, compare, direction, numeric_leaves
from autophase.report.sections.find import scaling_series

ENV = {"git_sha": "0123456789abcdef", "host": "ws1", "platform": "Linux", "python": "3.11.2",
       "cpu_model": "AMD EPYC 7B13", "cpu_cores": 2, "gpu": None,
       "versions": {"autophase": "0.1.0", "torch": "2.13.0", "numpy": "2.1.0"}}
GPU_ENV = dict(ENV, host="gpu1", gpu={"name": "NVIDIA H100 80GB HBM3", "count": 1, "memory_GiB": 79.1})


def _t(m: float) -> dict:
    return {"median_s": m, "min_s": 0.97 * m, "times_s": [m, 0.97 * m, 1.02 * m], "repeats": 3, "warmup": 1}


def phasing(ours_s: float) -> dict:
    """The shape of benchmarks/bench_phasing.py's results."""
    return {
        "schedule": "3*(20*ER+160*HIO+20*ER)", "shrink_wrap_every": 20, "photons": 1e6, "shape": [64, 64, 64],
        "single": {"ours_cpu": _t(ours_s), "cohere_numpy": {"median_s": 31.1, "times_s": [31.1, 31.2],
                                                              "repeats": 2, "warmup": 1},
                   "speedup_vs_cohere": 31.1 / ours_s},
        "quality": {"patterns": [{"pattern": k, "noise_floor_chi2": 0.008,
                                  "ours": {"chi2": 0.0059, "chi2_over_floor": 0.74, "seconds": ours_s,
                                           "complex_error": 0.016, "phase_error_rad": 0.06, "ssim_box": 0.97},
                                  "cohere_numpy": {"chi2": 0.0057, "chi2_over_floor": 0.72, "seconds": 31.0,
                                                   "complex_error": 0.033, "phase_error_rad": 0.08,
                                                   "ssim_box": 0.95}} for k in range(2)],
                    "median": {"ours": {"chi2_over_floor": 0.74, "ssim_box": 0.97},
                               "cohere_numpy": {"chi2_over_floor": 0.72, "ssim_box": 0.95}}},
        "refinement": {"time": _t(0.42), "chi2": 0.0060, "chi2_start": 0.0993, "chi2_600_iterations": 0.0059,
                       "complex_error": 0.01, "phase_error_rad": 0.05, "ssim_box": 0.98},
        "histories": {"phasing": {"chi2": [0.5 * math.exp(-i / 100) + 0.006 for i in range(600)]},
                      "refinement": {"chi2": [0.1 * math.exp(-i / 8) + 0.006 for i in range(50)]}},
        "batched": {f"cpu_cpu_B{b}": {"engine": "cpu", "device": "cpu", "batch": b, **_t(ours_s * b / 2),
                                      "patterns_per_s": 2 / ours_s} for b in (1, 8)},
    }


def inference(scale: float, device: str = "cpu") -> dict:
    """The shape of benchmarks/bench_inference.py's results; time per batch ∝ scale."""
    sgemm = 120.0 if device == "cpu" else 40000.0
    models = {}
    for name, gflop in (("default", 2.0), ("paper", 30.0)):
        batches = {}
        for b in (1, 8):
            t = scale * gflop / 40 * (0.3 + b)
            batches[str(b)] = {"latency_s": t, "patterns_per_s": b / t, "conv_gflops": gflop * b / t, **_t(t),
                               "fraction_of_sgemm": gflop * b / t / sgemm}
        models[name] = {"width": 8, "depth": 4, "parameters": 123456, "forward_gflop": gflop, "batches": batches}
    return {"device": device, "threads": 2, "sgemm": {"n": 2048, "gflops": sgemm, **_t(0.1)}, "models": models}


def training() -> dict:
    """The shape of benchmarks/bench_training.py's results (horovod 2 ranks failed)."""
    cfg = {"none-1": (1, 5.0), "ddp-1": (1, 4.8), "ddp-2": (2, 8.64), "horovod-1": (1, 4.7)}
    out = {k: {"samples_per_s": v, "train_s": 10.0, "steps": 8, "batch_per_rank": 4, "ranks": r, "wall_s": 30.0}
           for k, (r, v) in cfg.items()}
    out["ddp-2"]["speedup_over_1"] = 8.64 / 4.8
    out["horovod-2"] = {"ranks": 2, "wall_s": 3.0, "error": "mpiexec exited 1"}
    return {"quick": True, "configs": out}


def simulate(cps: float) -> dict:
    return {"crystals_per_s_per_core": cps, "lammps": {"s_per_crystal": 0.9},
            "weak_scaling": [{"ranks": 1, "crystals_per_s": 2 * cps}, {"ranks": 2, "crystals_per_s": 3.7 * cps}]}


def scaling_record() -> dict:
    """hpc/scaling.py's summarize() shape (weak mode)."""
    pts = []
    for n, t in ((1, 10.0), (2, 10.8), (4, 12.5)):
        thru = 8 * n / t
        pts.append({"ranks": n, "nodes": 1, "work": 8 * n, "time_s": t, "throughput": thru, "relative_ranks": n,
                    "speedup": 10.0 / t, "efficiency": 10.0 / t / n, "weak_efficiency": thru / (n * 0.8)})
    return {"mode": "weak", "base_ranks": 1, "points": pts, "stage": "simulate", "site": "local",
            "ranks_per_node": 4, "work_unit": "crystals", "ideal": "weak_efficiency = 1"}


def evaluation(n: int = 60) -> dict:
    """The shape of `autophase evaluate` (autophase/evaluate.py): per-crystal rows."""
    rng = np.random.default_rng(0)
    centres = {"nn": (0.05, 0.85, 0.2), "refine": (0.01, 0.93, 0.6), "phasing": (0.015, 0.90, 25.0),
               "sphere": (0.5, 0.6, None)}
    rows = []
    for i in range(n):
        row = {"index": 1000 + i, "photons": 1e6}
        for m, (c, s, t) in centres.items():
            row[m] = {"chi2": float(np.exp(rng.normal(math.log(c), 0.4))), "llk_free": 0.3,
                      "complex_error": float(rng.uniform(0, 0.2)), "phase_error_rad": float(rng.uniform(0, 0.3)),
                      "ssim_box": float(np.clip(rng.normal(s, 0.03), 0, 1)), "twin": False}
            if t is not None:
                row[m]["seconds"] = t * float(rng.uniform(0.9, 1.1))
        rows.append(row)
    summary = {m: {"chi2": {"median": float(np.median([r[m]["chi2"] for r in rows])), "q1": 0.0, "q3": 0.0,
                            "mean": 0.0}} for m in centres}
    summary["acceptance"] = {"speedup_phasing_over_refine": 41.0, "passes_issue4": True}
    return {"data": "synthetic:60", "held_out": "a dataset the model was not trained on", "n": n,
            "model": {"name": "autophasenn-test"}, "refine_iterations": 50, "phasing_iterations": 600,
            "summary": summary, "crystals": rows}


def write(path: Path, suite: str, results: dict, created: str, env: dict = ENV) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"suite": suite, "created": created, "env": env, "results": results}))
    return path


@pytest.fixture
def nightly_root(tmp_path: Path) -> Path:
    """<root>/2026-11-24/results (yesterday) and <root>/2026-11-25/results (today)."""
    root = tmp_path / "nightly"
    y, t = root / "2026-11-24" / "results", root / "2026-11-25" / "results"
    write(y / "phasing-cpu.json", "phasing", phasing(1.60), "2026-11-24T02:30:00+00:00", dict(ENV, git_sha="aaaa1111"))
    write(y / "inference-cpu.json", "inference", inference(1.0), "2026-11-24T02:40:00+00:00")
    write(y / "simulate-cpu.json", "simulate", simulate(3.0), "2026-11-24T02:50:00+00:00")
    write(t / "phasing-cpu.json", "phasing", phasing(2.00), "2026-11-25T02:30:00+00:00", dict(ENV, git_sha="bbbb2222"))
    write(t / "inference-cpu.json", "inference", inference(0.8), "2026-11-25T02:40:00+00:00")
    write(t / "simulate-cpu.json", "simulate", simulate(3.1), "2026-11-25T02:50:00+00:00")
    write(t / "training-cpu.json", "training", training(), "2026-11-25T02:55:00+00:00")
    write(t / "scaling-simulate-weak.json", "scaling-simulate-weak", scaling_record(), "2026-11-25T03:00:00+00:00")
    (t / "evaluation.json").write_text(json.dumps(evaluation()))
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


def row_with(tables, *texts):
    for t in tables:
        for r in t:
            cells = [c[0] for c in r]
            if all(any(x == c for c in cells) for x in texts):
                return r
    raise AssertionError(f"no table row with {texts}")


def test_regression_and_improvement_are_marked(nightly_root):
    out = nightly_root / "2026-11-25"
    files = build_report([out / "results"], out)
    assert find_previous(out) == nightly_root / "2026-11-24"
    page = parse(files.html.read_text())
    # Phasing 1.6 s → 2.0 s is +25 %: red, in the changes table and in the peers table.
    r = row_with(page.tables, "phasing", "CPU", "single/ours_cpu/median_s")
    delta = [c for c in r if "%" in c[0]][0]
    assert delta[1] == "regress" and "+25.0 %" in delta[0] and "regression" in delta[0]
    # Inference 0.8× the time: −20 %, green.
    r = row_with(page.tables, "inference", "CPU", "models/default/batches/8/median_s")
    delta = [c for c in r if "%" in c[0]][0]
    assert delta[1] == "improve" and "-20.0 %" in delta[0]
    # GFLOP/s went up (higher is better): an improvement, not a regression.
    r = row_with(page.tables, "inference", "CPU", "models/paper/batches/1/conv_gflops")
    assert [c for c in r if "%" in c[0]][0][1] == "improve"
    # Simulation +3.3 % throughput: inside the threshold, unmarked.
    r = row_with(page.tables, "simulate", "CPU", "crystals_per_s_per_core")
    assert [c for c in r if "%" in c[0]][0][1] not in ("regress", "improve")
    # The bundle for tomorrow lists exactly what the page marks.
    bundle = json.loads(files.bundle.read_text())
    regs = {(x["suite"], x["metric"]) for x in bundle["regressions"]}
    assert ("phasing", "single/ours_cpu/median_s") in regs
    assert ("phasing", "batched/cpu_cpu_B8/median_s") in regs
    assert not any(s == "inference" for s, _ in regs)
    assert files.regressions == len(bundle["regressions"]) and files.improvements >= 4
    # The summary card says it in words, and the Markdown twin carries the same marks.
    assert "regressions" in page.text[page.text.index("Since the previous run") + 1]
    md = files.markdown.read_text()
    assert re.search(r"🔴 ▲ \+25\.0 % regression", md) and "🟢" in md
    assert "the run of 2026-11-24 02:50 UTC" in md  # "compared with" names yesterday's newest record


def test_peer_ratio_refinement_scaling_and_evaluation(nightly_root):
    out = nightly_root / "2026-11-25"
    files = build_report([out / "results"], out)
    page = parse(files.html.read_text())
    # Ours vs cohere-core: 31.1 s / 2.0 s.
    r = row_with(page.tables, "ours cpu", "cohere numpy")
    assert ("×15.6", "improve") in r
    # Per-pattern quality side by side, the better value green (ours has the lower error).
    r = row_with(page.tables, "0")
    assert ("0.0160", "improve") in r and ("0.0330", "num") in r
    # Refinement against phasing alone: 0.42 s vs our 2.0 s median.
    r = row_with(page.tables, "Phasing alone (600 iterations)")
    assert ("2 s", "num") in r or ("2.00 s", "num") in r
    text = " ".join(page.text)
    assert "×4.76 faster" in text
    # Weak scaling of hpc/scaling.py: the given weak efficiency, e.g. 8·4/12.5/(4·0.8) = 80 %.
    r = row_with(page.tables, "scaling-simulate-weak", "4")
    assert ("80%", "num") in r
    # Training per engine: ddp 8.64 / (2 · 4.8) = 90 %; the failed horovod point is left out.
    r = row_with(page.tables, "configs ddp", "2") if any(
        c[0] == "configs ddp" for t in page.tables for row in t for c in row) else row_with(page.tables, "ddp", "2")
    assert ("90%", "num") in r
    assert not any(c[0].startswith("horovod") for t in page.tables for row in t for c in row[:1])
    assert "training: 1 configuration failed — configs/horovod-2: mpiexec exited 1" in " ".join(page.text)
    # Achieved GFLOP/s against sgemm: paper model, batch 8 at scale 0.8: 30·8/(0.8·30/40·8.3)/120.
    r = row_with(page.tables, "paper · batch 8")
    assert r[4][0] == f"{30 * 8 / (0.8 * 30 / 40 * 8.3) / 120:.0%}"
    # Simulate's own 1 → 2 ranks: 3.7/2 / 2 = 92 %.
    r = row_with(page.tables, "weak scaling", "2")
    assert ("92%", "num") in r
    # Evaluation: medians per method as computed from the file.
    ev = evaluation()
    r = row_with(page.tables, "refine", "60")
    med = float(np.median([c["refine"]["chi2"] for c in ev["crystals"]]))
    assert r[2][0].split(" / ")[0] == f"{med:.3g}" or abs(float(r[2][0].split(" / ")[0]) / med - 1) < 5e-3
    assert row_with(page.tables, "phasing", "60")[-1][0].startswith("2")  # ≈ 25 s per crystal
    # Per-crystal rows are a distribution: only the summary's figures enter the comparison.
    leaves = numeric_leaves(ev)
    assert "summary/refine/chi2/median" in leaves and not any(k.startswith("crystals/") for k in leaves)
    # Every figure the sections promise exists, is embedded, and is a PNG.
    names = {p.name for p in files.figures}
    for want in ("phasing-peers.png", "phasing-latency.png", "inference-latency.png", "evaluate-chi2-hist.png",
                 "evaluate-ssim-hist.png", "phasing-cpu-history.png", "scaling-simulate-weak-scaling.png",
                 "simulate-scaling.png"):
        assert want in names, names
    assert len(page.imgs) == len(files.figures)
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    md = files.markdown.read_text()
    for p in files.figures:
        assert f"](figures/{p.name})" in md and p.read_bytes()[:4] == b"\x89PNG"


def test_page_is_self_contained(nightly_root):
    out = nightly_root / "2026-11-25"
    html = build_report([out / "results"], out).html.read_text()
    # No URL to fetch: no http(s), no protocol-relative links, no external src/href at all.
    assert not re.search(r"(src|href)\s*=\s*\"(https?:)?//", html)
    assert "@import" not in html and "url(http" not in html
    assert html.count("<style>") == 1 and "<link rel=\"stylesheet\"" not in html


def test_gpu_rows_appear_only_with_a_gpu_record(nightly_root, tmp_path):
    out = nightly_root / "2026-11-25"
    files = build_report([out / "results"], tmp_path / "cpu_only")
    html = files.html.read_text()
    assert "No GPU result exists yet" in html and "No GPU result exists yet" in files.markdown.read_text()
    gpu = write(tmp_path / "committed" / "inference-gpu.json", "inference", inference(0.05, "cuda"),
                "2026-11-20T10:00:00+00:00", GPU_ENV)
    files = build_report([out / "results", gpu], tmp_path / "with_gpu")
    page = parse(files.html.read_text())
    r = row_with(page.tables, "GPU (NVIDIA H100 80GB HBM3)", "default (width 8)", "8")
    # CPU 0.8·t vs GPU 0.05·t per batch: ×16 per pattern.
    assert ("×16", "num") in r
    text = " ".join(page.text)
    assert "No GPU result exists yet for inference" not in text  # inference has GPU rows now …
    assert "No GPU result exists yet for phasing" in text        # … phasing still has none
    glance = page.text[page.text.index("At a glance"):page.text.index("At a glance") + 40]
    assert "GPU vs CPU" in glance and not any("No GPU result" in t for t in glance)
    # A "default" model of another width (a newer shipped model) is another series: its
    # GPU row is not paired with the old model's CPU row as if they were the same network.
    rec = inference(0.05, "cuda")
    rec["models"]["default"]["width"] = 16
    gpu16 = write(tmp_path / "committed16" / "inference-gpu.json", "inference", rec, "2026-11-20T10:00:00+00:00",
                  GPU_ENV)
    page = parse(build_report([out / "results", gpu16], tmp_path / "with_gpu16").html.read_text())
    assert row_with(page.tables, "GPU (NVIDIA H100 80GB HBM3)", "default (width 16)", "8")
    assert row_with(page.tables, "CPU", "default (width 8)", "8")


def test_unknown_and_broken_suites_do_not_crash(tmp_path):
    d = tmp_path / "r"
    write(d / "io-cpu.json", "io", {"write": {"MB_per_s": 580.0, "files": 3}, "read_volumes_per_s": 1190,
                                    "label": "lz4", "nested": [{"name": "a", "t_s": 0.1}, {"name": "b", "t_s": 0.2}]},
          "2026-11-25T01:00:00+00:00")
    # Known suite names with missing, odd or empty fields.
    write(d / "phasing-cpu.json", "phasing", {"single": {"ours_cpu": "n/a", "cohere_numpy": None},
                                              "batched": {"x": {"batch": 0}}, "refinement": {}},
          "2026-11-25T01:00:00+00:00")
    write(d / "inference-cpu.json", "inference", {}, "2026-11-25T01:00:00+00:00")
    write(d / "training-cpu.json", "training", {"runs": [{"engine": "ddp", "ranks": 1}],
                                                "configs": {"ddp-1": {"ranks": 1, "error": "x"},
                                                            "ddp-2": {"ranks": 2, "error": "y"}}},
          "2026-11-25T01:00:00+00:00")
    (d / "evaluation.json").write_text(json.dumps({"nn": {"chi2": []}, "phasing": {"ssim_box": [float("nan")]}}))
    (d / "bare.json").write_text(json.dumps({"x": 1.5}))  # no env, no created, no suite
    files = build_report([d], tmp_path / "out")
    page = parse(files.html.read_text())
    r = row_with(page.tables, "CPU", "write/MB_per_s")
    assert r[2][0] == "580"
    row_with(page.tables, "CPU", "nested/name=b/t_s")
    assert "Suite 'io' (CPU) has no dedicated view yet" in " ".join(page.text)
    assert "No GPU result exists yet" in files.html.read_text()


def test_bad_input_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"suite": "x", "results": {')
    with pytest.raises(InputError, match=r"bad\.json: not valid JSON"):
        build_report([bad], tmp_path / "o")
    assert not (tmp_path / "o" / "index.html").exists()
    with pytest.raises(InputError, match="no such file"):
        load_records([tmp_path / "missing.json"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no"):
        load_records([tmp_path / "empty"])
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="expected a JSON object"):
        load_records([tmp_path / "list.json"])
    assert main(["report", str(bad), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("autophase report: error:") and "\n" not in err


def test_cli_previous_and_fail_on_regression(nightly_root, tmp_path, capsys):
    today = nightly_root / "2026-11-25" / "results" / "phasing-cpu.json"
    prev = nightly_root / "2026-11-24"
    build_report([prev / "results" / "phasing-cpu.json"], prev)  # yesterday's report and its bundle
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
    old = write(tmp_path / "old" / "phasing-cpu.json", "phasing", phasing(9.0), "2026-01-01T00:00:00+00:00")
    files = build_report([old, today], tmp_path / "o")
    bundle = json.loads(files.bundle.read_text())
    ph = [r for r in bundle["records"] if r["suite"] == "phasing"]
    assert len(ph) == 1 and ph[0]["results"]["single"]["ours_cpu"]["median_s"] == 2.0
    assert "Superseded" in files.html.read_text()


def test_direction_and_leaves():
    assert direction("single/ours_cpu/median_s") == -1
    assert direction("batched/x/patterns_per_s") == 1
    assert direction("crystals_per_s_per_core") == 1 and direction("lammps/s_per_crystal") == -1
    assert direction("points/ranks=2/weak_efficiency") == 1 and direction("x/chi2_over_floor") == TOWARD_ONE
    assert direction("single/ours_cpu/min_s") == 0 and direction("points/ranks=2/ranks") == 0
    assert direction("quality/median/ours/max_chi2_over_floor") == TOWARD_ONE
    assert direction("quality/patterns/0/noise_floor_chi2") == 0 and direction("write_MB_s") == 1
    leaves = numeric_leaves(scaling_record())
    assert leaves["points/ranks=4/time_s"] == 12.5 and "points/ranks=4/times_s" not in leaves
    s = scaling_series({"runs": [{"engine": "ddp", "ranks": 1, "samples_per_s": 10.0},
                                 {"engine": "ddp", "ranks": 2, "samples_per_s": 18.0},
                                 {"engine": "horovod", "ranks": 1, "samples_per_s": 9.0},
                                 {"engine": "horovod", "ranks": 2, "samples_per_s": 15.3}]})
    assert {x.label: x.efficiency[-1] for x in s} == pytest.approx({"ddp": 0.9, "horovod": 0.85})
    # A peer's own time moving is not our regression; a ratio to the peer is ours.
    (c,) = compare("phasing", "cpu", {"single/cohere_numpy/median_s": 40.0}, {"single/cohere_numpy/median_s": 31.0})
    assert c.status == "info" and c.rel == pytest.approx(40 / 31 - 1)
    (c,) = compare("phasing", "cpu", {"single/speedup_vs_cohere": 10.0}, {"single/speedup_vs_cohere": 14.0})
    assert c.status == "regression"
    strong = scaling_series({"strong": [{"nodes": 1, "time_s": 100.0}, {"nodes": 4, "time_s": 40.0}]})[0]
    assert strong.speedup == pytest.approx((1.0, 2.5)) and strong.efficiency == pytest.approx((1.0, 0.625))


# ----------------------------------------------------------------------------- browser
CHROMIUM = find_chromium()
needs_browser = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"),
                                   reason="no chromium (scripts/install_chromium.sh); required on CI")


@needs_browser
def test_report_renders_in_headless_chromium(nightly_root, tmp_path):
    out = nightly_root / "2026-11-25"
    files = build_report([out / "results"], out)
    check = check_page(files.html, screenshot=tmp_path / "page.png")
    assert check.loaded and check.title.startswith("autophase benchmarks")
    assert check.problems() == []
    n = len(files.figures)
    assert n >= 8 and len(check.images) == n and check.images_mark == f"{n}/{n}"
    assert all(im["naturalWidth"] >= 400 for im in check.images)  # decoded at their real size
    assert check.external_requests == []
    assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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


def test_chi2_over_the_noise_floor_is_best_near_one():
    # below the floor is over-fitting the noise, not better: 0.81 is worse than 0.98
    key = better_key("quality/median/ours/chi2_over_floor")
    assert max([0.81, 0.98, 1.3], key=key) == 0.98
    ch = {c.path: c.status for c in compare("phasing", "cpu", {"q/chi2_over_floor": 0.8, "q/chi2": 0.8},
                                          {"q/chi2_over_floor": 1.0, "q/chi2": 1.0})}
    assert ch == {"q/chi2_over_floor": "regression", "q/chi2": "improvement"}
    ch = compare("phasing", "cpu", {"q/chi2_over_floor": 1.02}, {"q/chi2_over_floor": 1.3})
    assert ch[0].status == "improvement"
