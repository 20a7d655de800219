"""The typed result records (autophase.results): the committed JSON Schema, every committed
record against it, refusals that name the field, `autophase results validate|migrate`, and
one real writer end to end."""
import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from autophase.cli import main
from autophase.errors import InputError
from autophase.results import (Metric, Result, SchemaError, Target, from_dict, json_schema, new_result, read_result,
                               write_result)
from autophase.results.migrate import layout, migrate_dict

REPO = Path(__file__).resolve().parents[1]
SCHEMA_FILE = REPO / "autophase" / "results" / "result.schema.json"


def _committed_records() -> list[Path]:
    """Every committed result record: benchmarks/results/*.json (and runs/**/*.json if any are tracked)."""
    try:
        out = subprocess.run(["git", "ls-files", "benchmarks/results/*.json", "runs/*.json"], cwd=REPO,
                             capture_output=True, text=True, timeout=30, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError):
        out = []
    files = [REPO / f for f in out] or sorted((REPO / "benchmarks" / "results").glob("*.json"))
    return [f for f in files if f.is_file()]


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_committed_json_schema_is_generated_from_the_classes():
    assert json.loads(SCHEMA_FILE.read_text()) == json_schema(), \
        "result.schema.json is stale: regenerate it from autophase.results.json_schema()"


def test_every_committed_record_validates_and_loads(validator):
    files = _committed_records()
    assert len(files) >= 22
    for f in files:
        d = json.loads(f.read_text())
        errors = sorted(validator.iter_errors(d), key=lambda e: list(e.absolute_path))
        assert not errors, f"{f.name}: {'/'.join(map(str, errors[0].absolute_path))}: {errors[0].message}"
        res = read_result(f)
        assert res.metrics, f"{f.name}: no metrics"
        assert res.device in f.name or f.name.startswith("heldout"), f.name


def _rec(name: str) -> tuple[Result, dict]:
    res = read_result(REPO / "benchmarks" / "results" / name)
    return res, res.details


def test_migrated_figures_equal_the_old_ones():
    live, raw = _rec("live-cpu.json")
    m = live.metric("watch.latency_s", refine=50, symmetries=4)
    assert m.value == raw["watch_refine50"]["latency"]["median_s"]
    assert m.samples == raw["watch_refine50"]["latency"]["values_s"] and m.target.passes(m.value) is True
    assert live.metric("watch.latency_s", refine=0, symmetries=4).target.threshold == 0.3
    ph, raw = _rec("phasing-cpu.json")
    assert ph.metric("phasing.speedup_vs_cohere", engine="numpy").value == raw["single"]["speedup_vs_cohere"]
    assert ph.metric("phasing.time_s", impl="autophase").samples == raw["single"]["ours_cpu"]["times_s"]
    inf, raw = _rec("inference-cpu.json")
    b1 = raw["models"]["default"]["batches"]["1"]
    assert inf.metric("latency_s", model="default", batch=1).value == b1["latency_s"]
    batch = next(s for s in inf.series if s.kind == "batch" and s.params == {"model": "default"})
    assert [p.x for p in batch.points] == [1, 8, 64]
    ev, raw = _rec("heldout14-subvoxel.json")
    d = next(x for x in ev.distributions if x.name == "eval.phase_error" and x.params == {"method": "nn"})
    assert len(d.items) == len(d.values) == raw["n"] == 100
    assert d.values[0] == raw["crystals"][0]["nn"]["phase_error_rad"]
    sp, raw = _rec("sources-speed-cpu.json")
    assert sp.metric("speed.speedup_vs_cohere", process="warm").value == raw["speed"]["warm"]["speedup_median"]


def test_an_old_envelope_migrates_to_the_committed_figures():
    """Rebuild the pre-schema envelope of a committed record; migrating it gives the same
    figures, date and host (the converters are the ones the committed files went through)."""
    for name in ("live-cpu.json", "training-cpu.json", "inference-gpu.json"):
        res = read_result(REPO / "benchmarks" / "results" / name)
        e = res.env
        old = {"suite": res.suite, "created": res.created, "results": res.details,
               "env": {"git_sha": e.git_sha, "host": e.host, "platform": e.platform, "python": e.python,
                       "cpu_model": e.cpu_model, "cpu_cores": e.cpu_cores, "versions": e.versions,
                       "gpu": None if e.gpu is None else {"name": e.gpu.name, "count": e.gpu.count,
                                                          "memory_GiB": e.gpu.memory_GiB}}}
        assert layout(old) == "envelope"
        new = migrate_dict(old)
        assert new.metrics == res.metrics and new.series == res.series and new.device == res.device
        assert new.created == res.created and new.env.host == res.env.host


def _good() -> dict:
    res = new_result("unit", command="pytest")
    res = replace(res, metrics=[Metric("t_s", 0.5, "s", "lower", params={"batch": 1}, samples=[0.4, 0.5, 0.6],
                                       target=Target("<=", 1.0, "test"))])
    return res.to_dict()


@pytest.mark.parametrize("mutate, path", [
    (lambda d: d["metrics"][0].__setitem__("value", "fast"), "metrics[0].value"),
    (lambda d: d["metrics"][0].__setitem__("colour", "red"), "metrics[0]"),
    (lambda d: d["metrics"][0].__setitem__("value", float("nan")), "metrics[0].value"),
    (lambda d: d["metrics"][0]["samples"].__setitem__(1, float("inf")), "metrics[0].samples[1]"),
    (lambda d: d["env"].__setitem__("cpu_cores", "two"), "env.cpu_cores"),
    (lambda d: d.__setitem__("kind", "opinion"), "kind"),
])
def test_a_bad_record_is_refused_naming_the_field(tmp_path, validator, mutate, path):
    d = _good()
    mutate(d)
    with pytest.raises(SchemaError, match=r"record\." + path.replace("[", r"\[").replace("]", r"\]")):
        from_dict(Result, d)
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(d))  # json.dumps writes NaN/Infinity literally, as a careless writer would
    with pytest.raises(InputError, match=r"bad\.json: bad\.json\." + path.split("[")[0]):
        read_result(f)
    if not any(isinstance(x, float) and not math.isfinite(x) for x in [d["metrics"][0]["value"],
                                                                       *d["metrics"][0]["samples"]]):
        assert list(validator.iter_errors(d))  # the JSON Schema refuses it too (NaN is a JSON number to it)


def test_the_writer_refuses_a_bad_record_and_writes_nothing(tmp_path):
    res = new_result("unit")
    bad = replace(res, metrics=[Metric("t", "slow", "s")])  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match=r"metrics\[0\]\.value"):
        write_result(bad, tmp_path / "x.json")
    assert not list(tmp_path.iterdir())
    # NaN is written as null (JSON has no NaN), and reads back as "not measured"
    p = write_result(replace(res, metrics=[Metric("t", float("nan"), "s")]), tmp_path / "y.json")
    assert json.loads(p.read_text())["metrics"][0]["value"] is None and read_result(p).metrics[0].value is None


def test_cli_validate_names_each_bad_file_in_one_line(tmp_path, capsys):
    good = write_result(new_result("unit"), tmp_path / "good.json")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"suite": "x", ')
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"suite": "live", "created": "2026-11-30T00:00:00+00:00", "env": {"host": "h"},
                               "results": {"whole_phase": {"median_s": 2.0, "values_s": [2.0]}}}))
    wrong = tmp_path / "wrong.json"
    d = json.loads(good.read_text())
    d["metrics"] = [{"name": "x", "value": 1.0}]  # no unit
    wrong.write_text(json.dumps(d))
    assert main(["results", "validate", str(good)]) == 0
    assert main(["results", "validate", str(REPO / "benchmarks" / "results")]) == 0  # a folder: all its records
    n = len(list((REPO / "benchmarks" / "results").glob("*.json")))
    assert f"{n} valid, 0 invalid" in capsys.readouterr().err
    assert main(["results", "validate", str(good), str(corrupt), str(old), str(wrong)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(str(corrupt)) and "not readable JSON" in lines[0]
    assert lines[1].startswith(str(old)) and "old-format" in lines[1] and "migrate" in lines[1]
    assert lines[2].startswith(str(wrong)) and "metrics[0]" in lines[2] and "unit" in lines[2]


def test_cli_migrate_rewrites_old_records_in_place_and_leaves_new_ones(tmp_path, capsys):
    old = tmp_path / "live-cpu.json"
    old.write_text(json.dumps({"suite": "live", "created": "2026-11-30T00:00:00+00:00", "env": {"host": "h"},
                               "results": {"whole_phase": {"median_s": 2.0, "values_s": [1.9, 2.0, 2.5]},
                                           "watch_refine50": {"ready_s": 3.0, "latency": {"median_s": 0.41,
                                                                                          "values_s": [0.4, 0.41]}}}}))
    good = write_result(new_result("unit"), tmp_path / "good.json")
    before = good.read_bytes()
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text("[1, 2]")
    old_text = old.read_text()
    assert main(["results", "migrate", str(old), str(good), str(corrupt)]) == 1  # one bad file: nothing written
    assert old.read_text() == old_text and "corrupt.json" in capsys.readouterr().out
    assert main(["results", "migrate", str(old), str(good)]) == 0
    assert good.read_bytes() == before
    res = read_result(old)
    assert res.suite == "live" and res.created == "2026-11-30T00:00:00+00:00" and res.env.host == "h"
    assert res.env.platform == "unknown" and res.env.cpu_cores == 0
    assert res.metric("watch.latency_s", refine=50).value == 0.41
    assert res.metric("whole.phase_s").samples == [1.9, 2.0, 2.5]
    assert res.details["whole_phase"]["median_s"] == 2.0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_a_real_writer_end_to_end(tmp_path, validator):
    """benchmarks/bench_metrics.py, smallest options, writes a record that validates."""
    out = tmp_path / "metrics-cpu.json"
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_metrics.py"), "--repeats", "3",
                        "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads(out.read_text())
    assert not list(validator.iter_errors(d))
    res = read_result(out)
    assert res.suite == "metrics" and res.kind == "benchmark" and "bench_metrics.py" in res.command
    fine = res.metric("align.complex_error", size=64, method="upsample_16")
    coarse = res.metric("align.complex_error", size=64, method="whole_voxel_before")
    assert fine.value < 1e-3 < coarse.value  # sub-voxel alignment recovers the fractional shift
    assert len(res.metric("align.cpu_ms", size=32, method="upsample_1").samples) == 3


def test_every_converter_takes_a_partial_or_odd_dict():
    """A run that skipped sections (--quick, --no-cohere, a failed launch) or a malformed
    field gives fewer figures, never a crash or a record that does not validate."""
    from autophase.results.suites import CONVERTERS, build

    odd = {"single": 3, "models": {"default": {"batches": {"x": {}, "2": {"latency_s": "n/a"}}}},
           "configs": {"ddp-2": {"skipped": "no GPU", "ranks": 2}}, "sources": {"s": {"summary": []}},
           "points": [{"ranks": 1, "time_s": float("nan")}], "summary": {"nn": {"chi2": {"median": None}}},
           "crystals": [{"index": 0, "nn": {"chi2": float("inf")}}], "sizes": {"64": {"a": {}}}}
    for suite in [*CONVERTERS, "scaling-train-weak", "unknown-suite"]:
        for raw in ({}, odd):
            res = build(suite, raw, command="pytest")
            back = from_dict(Result, json.loads(json.dumps(res.to_dict())))
            assert back.suite == suite
    t = build("training", odd)
    assert t.metric("samples_per_s", engine="ddp", ranks=2).value is None
    assert t.metric("samples_per_s", engine="ddp", ranks=2).note == "no GPU"


def test_scaling_over_whole_nodes_is_drawn_over_nodes():
    from autophase.results.suites import build

    pts = [{"ranks": n, "nodes": n // 4, "time_s": t, "speedup": 100.0 / t, "efficiency": 100.0 / t / (n // 4)}
           for n, t in ((4, 100.0), (8, 55.0), (16, 30.0))]
    res = build("scaling-train-strong", {"mode": "strong", "stage": "train", "ranks_per_node": 4, "points": pts})
    sp = next(s for s in res.series if s.name == "scaling.speedup")
    assert sp.kind == "strong-scaling" and sp.x == "nodes" and [p.x for p in sp.points] == [1, 2, 4]
    eff = res.metric("scaling.efficiency")
    assert eff.params["nodes"] == 4 and eff.value == pytest.approx(100 / 30 / 4)
