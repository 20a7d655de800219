"""What each suite measured, as typed figures: one converter per suite from its raw dict.

Every benchmark, evaluation and scaling writer builds its own dict of what it measured
(the ``results`` of the old records; see each writer for its fields). The converter of
its suite reads that dict *by field name* and returns the typed parts of a
:class:`~.schema.Result`: headline :class:`~.schema.Metric` values, :class:`~.schema.Series`
and per-crystal :class:`~.schema.Distribution` values. The same converter serves the
writer (:func:`build`, called through :func:`autophase.bench.record.write_record`) and the
migration of records written before the schema (:mod:`.migrate`), so a figure is defined
once. A section a run skipped (``--quick``, ``--no-cohere``, a failed launch) is simply
absent; a converter never searches the dict for names that look right.

Conventions (see :mod:`.schema` for ``params``): times in seconds (``"s"``), ratios
``"x"``, fractions ``"1"``; ``samples`` are the repeats a median was taken over. Method
names: ``"nn"`` (network alone), ``"nn+er"`` (network then ER refinement), ``"phasing"``
(full iterative phasing), ``"sphere"`` (the sphere baseline).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from .schema import Distribution, Env, Metric, Point, Result, Scalar, Series, Target

__all__ = ["Parts", "CONVERTERS", "convert", "kind_of", "build"]

#: evaluate/external method keys → the ``method`` param
METHOD = {"nn": "nn", "refine": "nn+er", "phasing": "phasing", "sphere": "sphere"}


def _num(v: Any) -> float | None:
    """A finite float, or None (missing, NaN, ±inf, not a number). Booleans count 1/0."""
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if isinstance(v, (int, float)) and math.isfinite(v):
        return float(v)
    return None


def _nums(vs: Any) -> list[float]:
    """The finite numbers of a list (repeats never hold NaN; a malformed list gives [])."""
    if not isinstance(vs, list):
        return []
    return [x for x in (_num(v) for v in vs) if x is not None]


def _params(**kw: Any) -> dict[str, Scalar]:
    return {k: v for k, v in kw.items() if v is not None}


@dataclass
class Parts:
    """The typed figures of one run, filled by a converter."""

    metrics: list[Metric] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    distributions: list[Distribution] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def metric(self, name: str, value: Any, unit: str, better: str = "", *, label: str = "", group: str = "",
               params: dict[str, Scalar] | None = None, samples: Any = None, target: Target | None = None,
               note: str = "") -> None:
        v = _num(value)
        if v is None and not note:
            note = "not measured" if value is None else f"not a finite number ({value!r})"
        self.metrics.append(Metric(name, v, unit, better, label=label, group=group, params=dict(params or {}),
                                   samples=_nums(samples), target=target, note=note))

    def timing(self, name: str, t: Any, *, group: str = "", label: str = "", params: dict | None = None,
               target: Target | None = None) -> None:
        """A :func:`~autophase.bench.record.median_time` dict (``median_s``, ``times_s``) as a metric."""
        if isinstance(t, dict):
            self.metric(name, t.get("median_s"), "s", "lower", group=group, label=label, params=params,
                        samples=t.get("times_s"), target=target)

    def series_of(self, name: str, kind: str, x: str, x_unit: str, y: str, y_unit: str,
                  points: list[tuple[Any, Any, Any]], better: str = "", *, label: str = "", group: str = "",
                  params: dict[str, Scalar] | None = None) -> None:
        """``points``: (x, y, samples) triples; a point without a numeric x is dropped."""
        pts = [Point(float(px), _num(py), _nums(ps)) for px, py, ps in points if _num(px) is not None]
        if pts:
            self.series.append(Series(name, kind, x, x_unit, y, y_unit, pts, better, label=label, group=group,
                                      params=dict(params or {})))

    def distribution(self, name: str, unit: str, values: list[Any], items: list[str], better: str = "", *,
                     label: str = "", group: str = "", params: dict[str, Scalar] | None = None) -> None:
        if values:
            self.distributions.append(Distribution(name, unit, [_num(v) for v in values], better, label=label,
                                                   group=group, params=dict(params or {}), items=list(items)))


def _d(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def _l(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


# ---------------------------------------------------------------------------- phasing
def _phasing(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_phasing.py: one pattern timed against cohere-core, quality, batches."""
    s = _d(r.get("single"))
    g = "phasing-speed"
    p.timing("phasing.time_s", s.get("ours_cpu"), group=g, label="autophase phase (CPU engine), one pattern",
             params={"impl": "autophase", "engine": "cpu"},
             target=Target("<=", 2.0, "bench_phasing target: ≤ 2 s on the CPU"))
    p.timing("phasing.time_s", s.get("cohere_numpy"), group=g, label="cohere-core (numpy), same settings",
             params={"impl": "cohere", "engine": "numpy"})
    for dev in ("cpu", "gpu"):
        p.timing("phasing.time_s", s.get(f"cohere_torch_{dev}"), group=g,
                 label=f"cohere-core (torch, {dev.upper()}), same settings",
                 params={"impl": "cohere", "engine": "torch", "device": dev})
    if "speedup_vs_cohere" in s:
        p.metric("phasing.speedup_vs_cohere", s["speedup_vs_cohere"], "x", "higher", group=g,
                 label="cohere-core numpy time / ours", params={"engine": "numpy"},
                 target=Target(">=", 3.0, "bench_phasing target: ≥ 3× cohere-core"))
    for dev in ("cpu", "gpu"):
        if f"speedup_vs_cohere_torch_{dev}" in s:
            p.metric("phasing.speedup_vs_cohere", s[f"speedup_vs_cohere_torch_{dev}"], "x", "higher", group=g,
                     label=f"cohere-core torch ({dev.upper()}) time / ours", params={"engine": "torch", "device": dev})
    peers = {"ours": {"impl": "autophase"}, "cohere_numpy": {"impl": "cohere", "method": "same-settings"},
             "cohere_numpy_recommended": {"impl": "cohere", "method": "recommended"}}
    med = _d(_d(r.get("quality")).get("median"))
    for key, params in peers.items():
        q = _d(med.get(key))
        if not q:
            continue
        p.metric("quality.chi2_over_floor", q.get("chi2_over_floor"), "1", "closest-to-1", group="phasing-quality",
                 label="χ² / noise floor (median over patterns)", params=params)
        p.metric("quality.complex_error", q.get("complex_error"), "1", "lower", group="phasing-quality",
                 label="complex error (median)", params=params)
        p.metric("quality.phase_error", q.get("phase_error_rad"), "rad", "lower", group="phasing-quality",
                 label="phase error (median)", params=params)
    ref = _d(r.get("refinement_from_degraded_truth"))
    if ref:
        g = "refinement"
        p.timing("refine.time_s", ref.get("time"), group=g, label="ER refinement from a degraded truth",
                 target=Target("<=", 0.25, "bench_phasing target: refinement ≤ 0.25 s"))
        p.metric("refine.chi2", ref.get("chi2"), "1", "lower", group=g, label="χ² after refinement")
        p.metric("refine.chi2_over_floor", ref.get("chi2_over_floor"), "1", "closest-to-1", group=g,
                 label="χ² / noise floor after refinement")
        p.metric("refine.complex_error", ref.get("complex_error"), "1", "lower", group=g)
        p.metric("refine.phase_error", ref.get("phase_error_rad"), "rad", "lower", group=g)
    for key, label in (("phasing", "full phasing"), ("refinement_from_degraded_truth", "refinement")):
        h = _l(_d(_d(r.get("histories")).get(key)).get("chi2"))
        p.series_of(f"history.{key}.chi2", "curve", "iteration", "1", "chi2", "1",
                    [(i, v, None) for i, v in enumerate(h)], "lower", label=f"χ² over iterations, {label}",
                    group="phasing-history")
    by_engine: dict[tuple[str, str], list[tuple[Any, Any, Any]]] = {}
    for b in _d(r.get("batched")).values():
        b = _d(b)
        params = _params(engine=b.get("engine"), device=b.get("device"), batch=b.get("batch"))
        p.timing("batched.time_s", b, group="phasing-batched", label="one batch of patterns", params=params)
        p.metric("batched.patterns_per_s", b.get("patterns_per_s"), "patterns/s", "higher", group="phasing-batched",
                 params=params)
        by_engine.setdefault((str(b.get("engine")), str(b.get("device"))), []).append(
            (b.get("batch"), b.get("median_s"), b.get("times_s")))
    for (engine, device), pts in by_engine.items():
        p.series_of("batched.time_s", "batch", "batch", "patterns", "time_s", "s", sorted(pts, key=lambda t: t[0]),
                    "lower", group="phasing-batched", params={"engine": engine, "device": device})


# ---------------------------------------------------------------------------- inference
def _inference(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_inference.py: forward latency per model and batch, against an SGEMM."""
    for key, label in (("sgemm", "at the start"), ("sgemm_end", "at the end")):
        sg = _d(r.get(key))
        if sg:
            p.metric("sgemm.gflops", sg.get("gflops"), "GFLOP/s", "higher", group="inference-machine",
                     label=f"SGEMM n={sg.get('n')} {label}", params={"when": "start" if key == "sgemm" else "end"})
    for model, m in _d(r.get("models")).items():
        m = _d(m)
        pts = []
        for batch, b in _d(m.get("batches")).items():
            b = _d(b)
            try:
                bn = int(batch)
            except ValueError:
                continue
            params = {"model": model, "batch": bn}
            g = "inference-latency"
            p.metric("latency_s", b.get("latency_s"), "s", "lower", group=g, params=params, samples=b.get("times_s"),
                     label=f"forward, width {m.get('width')} ({b.get('memory_format', 'default format')})")
            p.metric("patterns_per_s", b.get("patterns_per_s"), "patterns/s", "higher", group=g, params=params)
            p.metric("conv_gflops", b.get("conv_gflops"), "GFLOP/s", "higher", group=g, params=params)
            p.metric("fraction_of_sgemm", b.get("fraction_of_sgemm"), "1", "higher", group=g, params=params)
            if "compile_s" in b:
                p.metric("compile_s", b.get("compile_s"), "s", "lower", group=g, params=params)
            for fmt, f in _d(b.get("formats")).items():
                f = _d(f)
                p.metric("latency_s", f.get("latency_s"), "s", "lower", group="inference-formats",
                         params={**params, "format": fmt}, samples=f.get("times_s"))
            pts.append((bn, b.get("latency_s"), b.get("times_s")))
        p.series_of("latency_s", "batch", "batch", "patterns", "latency_s", "s", sorted(pts, key=lambda t: t[0]),
                    "lower", label=f"forward latency, {model} (width {m.get('width')})", group="inference-latency",
                    params={"model": model})
        p.metric("parameters", m.get("parameters"), "1", group="inference-models", params={"model": model})
        p.metric("forward_gflop", m.get("forward_gflop"), "GFLOP", group="inference-models", params={"model": model})


# ---------------------------------------------------------------------------- training
def _training(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_training.py: samples/s per data-parallel engine and rank count."""
    curves: dict[str, list[tuple[Any, Any, Any]]] = {}
    for key, c in _d(r.get("configs")).items():
        c = _d(c)
        engine, _, ranks = key.rpartition("-")
        params = _params(engine=engine, ranks=int(ranks) if ranks.isdigit() else None)
        note = str(c.get("skipped") or c.get("error") or "")
        p.metric("samples_per_s", c.get("samples_per_s"), "samples/s", "higher", group="training-throughput",
                 label=f"{engine}, {ranks} rank(s)", params=params, note=note)
        if "speedup_over_1" in c:
            p.metric("speedup_over_1", c["speedup_over_1"], "x", "higher", group="training-throughput", params=params)
        if _num(c.get("samples_per_s")) is not None:
            curves.setdefault(engine, []).append((c.get("ranks"), c.get("samples_per_s"), None))
    for engine, pts in curves.items():
        if len(pts) > 1:
            p.series_of("samples_per_s", "weak-scaling", "ranks", "1", "samples_per_s", "samples/s",
                        sorted(pts, key=lambda t: t[0]), "higher", group="training-throughput",
                        params={"engine": engine}, label=f"{engine}: fixed batch per rank")


# ---------------------------------------------------------------------------- simulate
def _simulate(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_simulate.py: crystals per second (no relaxation), LAMMPS, 2-rank weak scaling."""
    nd = _d(r.get("none_default"))
    if nd:
        g = "simulate"
        tgt = _num(nd.get("target_crystals_per_s_per_core"))
        p.metric("crystals_per_s_per_core", nd.get("crystals_per_s_per_core"), "crystals/s", "higher", group=g,
                 label=f"no relaxation, {nd.get('size_cells')} cells",
                 target=Target(">=", tgt, f"bench_simulate target: ≥ {tgt:g} crystals/s per core")
                 if tgt is not None else None)
        p.metric("seconds_per_crystal", nd.get("seconds_per_crystal_median"), "s", "lower", group=g,
                 samples=nd.get("seconds_per_crystal"))
        for stage, v in _d(nd.get("stages_median_s")).items():
            p.metric("stage_s", v, "s", "lower", group="simulate-stages", params={"process": stage})
        p.metric("shard_write_s_per_sample", nd.get("shard_write_s_per_sample"), "s", "lower", group=g)
    for size, lm in _d(r.get("lammps")).items():
        lm = _d(lm)
        params = {"engine": "lammps", "size": str(size)}
        p.metric("seconds_per_crystal", lm.get("seconds_per_crystal_median"), "s", "lower", group="simulate-lammps",
                 params=params, samples=[_d(x).get("seconds") for x in _l(lm.get("runs"))],
                 label=f"LAMMPS relaxation, {lm.get('size_cells')} cells")
        p.metric("us_per_atom_iteration", lm.get("us_per_atom_iteration"), "µs", "lower", group="simulate-lammps",
                 params=params)
    ws = _d(r.get("weak_scaling"))
    pts = [(_d(v).get("ranks"), _d(v).get("crystals_per_s"), None) for k, v in ws.items() if isinstance(v, dict)]
    p.series_of("crystals_per_s", "weak-scaling", "ranks", "1", "crystals_per_s", "crystals/s",
                sorted(pts, key=lambda t: t[0]), "higher", group="simulate-scaling", label="MPI ranks, work ∝ ranks")
    if "weak_efficiency" in ws:
        p.metric("weak_efficiency", ws["weak_efficiency"], "1", "higher", group="simulate-scaling",
                 params={"ranks": max((int(x) for x, _, _ in pts if _num(x) is not None), default=0)})


# ---------------------------------------------------------------------------- live
# row → (refine, K) for records that do not say their K: until the refine-0 default became
# one pass, both default rows ran 4 copies; newer records carry "symmetries" in each row
_WATCH = {"watch_refine50": (50, 4), "watch_refine0": (0, 4), "watch_refine50_sym1": (50, 1),
          "watch_refine0_sym1": (0, 1), "watch_refine0_sym4": (0, 4)}


def _live(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_live.py: the watch service's per-pattern latency, the whole commands."""
    if r.get("gpu"):
        targets = {k: Target("<=", 0.05, "issue 16: on a GPU ≤ 50 ms") for k in (50, 0)}
    else:
        targets = {50: Target("<=", 1.0, "issue 16: median ≤ 1.0 s (2-core CPU, --refine 50)"),
                   0: Target("<=", 0.3, "issue 16: --refine 0 median ≤ 0.3 s")}
    for key, (refine, sym) in _WATCH.items():
        w = _d(r.get(key))
        if not w:
            continue
        sym = int(w.get("symmetries", sym))
        default_row = "_sym" not in key  # the service's defaults: the rows the lines judge
        lat = _d(w.get("latency"))
        params = {"refine": refine, "symmetries": sym}
        p.metric("watch.latency_s", lat.get("median_s"), "s", "lower", group="live",
                 label=f"watch: pattern in → result out, {refine} ER, {sym} symmetric cop{'ies' if sym > 1 else 'y'}",
                 params=params, samples=lat.get("values_s"), target=targets.get(refine) if default_row else None)
        p.metric("watch.ready_s", w.get("ready_s"), "s", "lower", group="live-startup", params=params,
                 label="service start → ready")
    # bench_live --cold: the page cache dropped before each process (the schema's process param)
    cold = {"process": "cold"} if r.get("cold") else {}
    for key, label in (("whole_phase", "autophase phase (whole process)"),
                       ("whole_predict", "autophase predict --refine 50 (whole process)")):
        w = _d(r.get(key))
        if w:
            p.metric(f"{key}_s".replace("_", ".", 1), w.get("median_s"), "s", "lower", group="live",
                     label=label + (", cold" if cold else ""), params=cold, samples=w.get("values_s"))
    if "whole_phase_over_watch_refine50" in r:
        p.metric("ratio.whole_phase_over_watch", r["whole_phase_over_watch_refine50"], "x", "higher", group="live",
                 params={"refine": 50}, target=Target(">=", 5.0, "issue 16: watch ≥ 5× below a whole phase process"))
    if "whole_predict_over_whole_phase" in r:
        p.metric("ratio.whole_predict_over_whole_phase", r["whole_predict_over_whole_phase"], "x", "lower",
                 group="live", params=cold, target=Target("<=", 1.0, "whole predict ≤ whole phase"))


def _observer(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_observer.py: the service's predictor with and without a poll loop beside it."""
    for key, label in (("nothing_beside", "nothing beside"), ("poll_beside", "a 0.5 ms poll loop beside")):
        w = _d(r.get(key))
        if w:
            p.metric("observer.predict_s", w.get("median_s"), "s", "lower", group="live",
                     label=f"predict, refine 0, 4 copies, {label}", params={"beside": key.split("_")[0]},
                     samples=w.get("values_s"))
    p.metric("observer.ratio_poll_over_nothing", r.get("median_ratio_poll_over_nothing"), "x", "lower",
             group="live", label="median with the poll loop ÷ without")


def _live_page(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_live_page.py: result written → shown on the live page."""
    p.metric("page.seconds_to_shown", r.get("median_seconds_to_shown"), "s", "lower", group="live-page",
             label="result written → shown on the page", samples=r.get("seconds_to_shown"),
             params=_params(poll_s=_num(r.get("poll_s"))))
    p.metric("page.seconds_view", r.get("seconds_view"), "s", "lower", group="live-page", label="view JSON built")
    p.metric("page.view_json_bytes", r.get("view_json_bytes"), "B", "lower", group="live-page")
    p.metric("page.triangles", r.get("triangles"), "1", group="live-page")


# ---------------------------------------------------------------------------- learn / adapt / finetune
def _learn(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_learn.py: does the continual learner promote a better model?"""
    source = r.get("source") if isinstance(r.get("source"), str) else None
    for split, key in (("held-back", "held_back"), ("unseen", "unseen_test")):
        s = _d(r.get(key))
        if not s:
            continue
        for who in ("current", "candidate"):
            params = _params(split=split, source=source, method=who)
            p.metric("learn.score", s.get(f"score_{who}"), "1", "lower", group="learn",
                     label=f"median χ², {who} model", params=params)
            p.distribution("chi2", "1", _l(s.get(f"chi2_{who}")), [], "lower", group="learn", params=params)
        if "decision" in s:
            p.notes.append(f"{split}: {s['decision']} (wins {s.get('wins')})")
    if "decision_right" in r:
        p.metric("learn.decision_right", r["decision_right"], "1", "higher", group="learn",
                 label="the decision agrees with the unseen test (1 yes, 0 no)")
    for k, v in _d(r.get("seconds")).items():
        p.metric("learn.seconds", v, "s", "lower", group="learn-time", params={"process": k})


def _adapt(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_adapt.py: χ² after K test-time adaptation steps, per source."""
    for source, s in _d(r.get("sources")).items():
        summ = _d(_d(s).get("summary"))
        curves: dict[str, list[tuple[Any, Any, Any]]] = {"nn": [], "nn+er": []}
        for k, v in summ.items():
            if not k.isdigit():
                continue
            v = _d(v)
            for method, field_ in (("nn", "median_chi2_nn"), ("nn+er", "median_chi2_nn_50er")):
                params = {"source": source, "method": method, "steps": int(k)}
                if method == "nn+er":
                    params["iterations"] = 50
                p.metric("adapt.chi2", v.get(field_), "1", "lower", group="adapt", params=params,
                         label=f"median χ² after {k} adaptation steps")
                curves[method].append((int(k), v.get(field_), None))
            if "median_ratio_nn_50er_over_phasing" in v:
                p.metric("adapt.chi2_over_phasing", v["median_ratio_nn_50er_over_phasing"], "x", "lower",
                         group="adapt", params={"source": source, "steps": int(k), "iterations": 50},
                         label="NN + 50 ER χ² over phasing's median run (issue 15's measured line: ≤ 1)")
        if "median_ratio_nn_100er_over_phasing" in summ:
            p.metric("adapt.chi2_over_phasing", summ["median_ratio_nn_100er_over_phasing"], "x", "lower",
                     group="adapt", params={"source": source, "steps": 0, "iterations": 100},
                     label="NN + 100 ER χ² over phasing's median run (50 more ER in place of adaptation)")
        if "median_chi2_nn_100er" in summ:
            p.metric("adapt.chi2", summ["median_chi2_nn_100er"], "1", "lower", group="adapt",
                     params={"source": source, "method": "nn+er", "steps": 0, "iterations": 100})
        for method, pts in curves.items():
            p.series_of("adapt.chi2", "curve", "steps", "1", "chi2", "1", sorted(pts), "lower", group="adapt",
                        params={"source": source, "method": method})
        p.metric("adapt.seconds_per_step", summ.get("median_seconds_per_step"), "s", "lower", group="adapt-time",
                 params={"source": source})
        p.metric("adapt.seconds_50_er", summ.get("median_seconds_50_er"), "s", "lower", group="adapt-time",
                 params={"source": source})


def _finetune(r: dict[str, Any], p: Parts) -> None:
    """autophase.beamline.finetune: the held-back pattern's χ² before and after fine-tuning."""
    for stage in ("before", "after"):
        for key, res in _d(r.get(stage)).items():
            if isinstance(res, dict) and "chi2" in res:
                p.metric("finetune.chi2", res["chi2"], "1", "lower", group="finetune",
                         params={"process": stage, "method": METHOD.get(key, key)})
    ph = _d(r.get("phasing"))
    if ph:
        p.metric("finetune.chi2", ph.get("chi2"), "1", "lower", group="finetune", params={"method": "phasing"},
                 label=f"phasing on the held-back pattern, median of {len(_l(ph.get('runs')))} seeds")
    for stage, v in _d(r.get("refine_vs_phasing")).items():
        p.metric("finetune.refine_over_phasing", _d(v).get("ratio"), "x", "lower", group="finetune",
                 params={"process": stage, "method": "nn+er"},
                 target=Target("<=", 1.0, "issue 15: NN + 50 ER χ² ≤ phasing's on held-back photons"))
    t = _d(r.get("training"))
    p.metric("finetune.train_s", t.get("seconds"), "s", "lower", group="finetune-time")
    p.metric("finetune.total_s", r.get("seconds_total"), "s", "lower", group="finetune-time")
    val = _l(t.get("val_chi2"))
    p.series_of("finetune.val_chi2", "curve", "epoch", "1", "val_chi2", "1",
                [(i + 1, v, None) for i, v in enumerate(val)], "lower", group="finetune")


def _finetune_share(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_finetune_share.py: fine-tuning runs per choice set and share of copies
    kept as measured — NN + 50 ER χ² over phasing's, and against the truth where there is one."""
    for row in _l(r.get("rows")):
        row = _d(row)
        base = {"set": str(row.get("run", "")).rsplit("-", 1)[0], "share": _num(row.get("share"))}
        for stage, v in _d(row.get("ratio")).items():
            p.metric("finetune_share.refine_over_phasing", v, "x", "lower", group="finetune-share",
                     params={**base, "process": stage},
                     label="NN + 50 ER χ² over phasing's median on the held-back half")
        for stage, v in _d(row.get("nn_chi2")).items():
            p.metric("finetune_share.nn_chi2", v, "1", "lower", group="finetune-share",
                     params={**base, "process": stage})
        for k, e in _d(row.get("after_by_symmetries")).items():
            e = _d(e)
            p.metric("finetune_share.refine_over_phasing_by_k", e.get("ratio"), "x", "lower", group="finetune-share",
                     params={**base, "symmetries": str(k)},
                     label="fine-tuned NN + 50 ER χ² over phasing's, the network averaged over K copies")
        truth = _d(row.get("truth"))
        for answer, v in truth.items():
            p.metric("finetune_share.phase_error", _d(v).get("phase_error_rad"), "rad", "lower",
                     group="finetune-share", params={**base, "answer": str(answer)})


def _selection(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_selection.py: checkpoints scored as ``train --select-on`` scores them."""
    for m in _l(r.get("models")):
        m = _d(m)
        model = str(m.get("sha256", ""))
        p.metric("selection.score", m.get("select_score"), "x", "lower", group="selection",
                 label=f"{m.get('path')}: geometric mean over sources of median χ²(NN + ER) ÷ χ²(phasing)",
                 params={"model": model})
        for k, v in m.items():
            for stat, unit in (("_median_ratio", "x"), ("_within_1.2", "1")):
                if k.startswith("select_") and k.endswith(stat):
                    better = "lower" if stat == "_median_ratio" else "higher"
                    p.metric(f"selection{stat.replace('_', '.', 1)}", v, unit, better, group="selection",
                             params={"model": model, "source": k[len("select_"):-len(stat)], "method": "nn+er"})
        p.metric("selection.seconds", m.get("select_s"), "s", "lower", group="selection-time", params={"model": model})
    p.metric("selection.references_s", r.get("references_s"), "s", "lower", group="selection-time")


# ---------------------------------------------------------------------------- metrics
def _metrics(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_metrics.py: cost and accuracy of the sub-voxel alignment."""
    for size, s in _d(r.get("sizes")).items():
        for variant, v in _d(s).items():
            if not isinstance(v, dict):
                continue
            params = {"size": int(size) if str(size).isdigit() else str(size), "method": variant}
            p.metric("align.wall_ms", v.get("wall_ms_median"), "ms", "lower", group="metrics", params=params,
                     samples=v.get("wall_ms"))
            p.metric("align.cpu_ms", v.get("cpu_ms_median"), "ms", "lower", group="metrics", params=params,
                     samples=v.get("cpu_ms"))
            p.metric("align.complex_error", v.get("complex_error"), "1", "lower", group="metrics-accuracy",
                     params=params, label="complex error of a known shift")
        if "cpu_ratio_upsample_16_over_before" in _d(s):
            p.metric("align.cpu_ratio", s["cpu_ratio_upsample_16_over_before"], "x", "lower", group="metrics",
                     params={"size": int(size) if str(size).isdigit() else str(size)},
                     label="CPU time, 16× upsampled / whole-voxel")


# ---------------------------------------------------------------------------- sources
def _source_method(key: str) -> dict[str, Scalar] | None:
    """bench_sources' answer keys → params (None: not an answer)."""
    fixed = {"llk_select": {"impl": "autophase", "method": "llk-select"},
             "chosen": {"impl": "autophase", "method": "chosen"},
             "cohere_recommended": {"impl": "cohere", "method": "recommended"},
             "cohere_ours": {"impl": "cohere", "method": "our-settings"}}
    if key in fixed:
        return fixed[key]
    if key.startswith("ours_t"):
        try:
            return {"impl": "autophase", "method": "threshold", "sw_threshold": float(key[len("ours_t"):])}
        except ValueError:
            return None
    return None


def _sources(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_sources.py: phasing vs cohere-core on three data sources, and speed."""
    for split in ("tune", "held_out"):
        for source, s in _d(r.get(split)).items():
            s = _d(s)
            g = f"sources-{split.replace('_', '-')}"
            for key, summ in _d(s.get("summary")).items():
                base = _source_method(key)
                if base is None or not isinstance(summ, dict):
                    continue
                params = {"split": split, "source": source, **base}
                for name, field_, unit, better in (("chi2", "median_chi2", "1", "lower"),
                                                   ("chi2_over_floor", "median_chi2_over_floor", "1", "closest-to-1"),
                                                   ("fraction_in_band", "fraction_in_band", "1", "higher"),
                                                   ("complex_error", "median_complex_error", "1", "lower"),
                                                   ("phase_error", "median_phase_error_rad", "rad", "lower"),
                                                   ("time_s", "median_seconds", "s", "lower")):
                    if field_ in summ:
                        p.metric(f"sources.{name}", summ[field_], unit, better, group=g, params=params)
            items = _l(s.get("items"))
            names = [str(_d(it).get("name")) for it in items]
            keys = [k for k in (items[0] if items and isinstance(items[0], dict) else {})
                    if _source_method(k) is not None]
            for key in keys:
                params = {"split": split, "source": source, **_source_method(key)}
                for name, field_, unit in (("chi2", "chi2", "1"), ("complex_error", "complex_error", "1"),
                                           ("phase_error", "phase_error_rad", "rad")):
                    vals = [_d(_d(it).get(key)).get(field_) for it in items]
                    if any(v is not None for v in vals):
                        p.distribution(f"sources.{name}", unit, vals, names, "lower", group=g, params=params)
    ch = _d(r.get("chosen"))
    if "sw_threshold" in ch:
        p.metric("sources.chosen_sw_threshold", ch["sw_threshold"], "1", group="sources-tune",
                 note=str(ch.get("rule", "")))
    sp = _d(r.get("speed"))
    for process in ("cold", "warm"):
        s = _d(sp.get(process))
        if not s:
            continue
        g = "sources-speed"
        p.metric("speed.time_s", s.get("ours_median_s"), "s", "lower", group=g, samples=s.get("ours_s"),
                 params={"impl": "autophase", "process": process}, label=f"autophase phase, {process} process")
        p.metric("speed.time_s", s.get("cohere_median_s"), "s", "lower", group=g, samples=s.get("cohere_s"),
                 params={"impl": "cohere", "process": process}, label=f"cohere-core, {process} process")
        p.metric("speed.speedup_vs_cohere", s.get("speedup_median"), "x", "higher", group=g,
                 samples=s.get("speedup_pairs"), params={"process": process},
                 target=Target(">=", 3.0, "issue 14: whole phase process ≥ 3× faster than cohere-core numpy"))


def _phasing_runs(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_phasing_runs.py: selecting and averaging among several random starts."""
    variants = ("selected", "best_k_2", "best_k_3", "best_k_6", "best_k_6_all", "truth_best", "median_single")
    for key, s in _d(r.get("summary")).items():
        source, _, algorithm = key.partition("/")
        s = _d(s)
        for v in variants:
            params = {"source": source, "method": algorithm, "selection": v}
            for name, unit, better in (("complex_error", "1", "lower"), ("phase_error_rad", "rad", "lower"),
                                       ("chi2_over_floor", "1", "closest-to-1")):
                field_ = f"{v}_{name}_median"
                if field_ in s:
                    p.metric(f"runs.{name.replace('_rad', '')}", s[field_], unit, better, group="phasing-runs",
                             params=params)
    for k, v in _d(r.get("speed_seconds")).items():
        threads = {"cpu_1_thread": 1, "cpu_2_threads": 2}.get(k)
        p.metric("runs.time_s", v, "s", "lower", group="phasing-runs-speed",
                 params=_params(device="cpu", threads=threads, process=None if threads else k))


# ---------------------------------------------------------------------------- evaluation
_EVAL_METRICS = (("chi2", "chi2", "1"), ("phase_error", "phase_error_rad", "rad"),
                 ("complex_error", "complex_error", "1"))


def _method_summary(summary: dict[str, Any], p: Parts, group: str, extra: dict[str, Scalar]) -> None:
    """summary[method][metric] = {median, q1, q3, mean} → one metric per method × metric (the median)."""
    for key, method in METHOD.items():
        s = _d(summary.get(key))
        for name, field_, unit in (*_EVAL_METRICS, ("llk_free", "llk_free", "1"), ("ssim", "ssim_box", "1"),
                                   ("time_s", "seconds", "s")):
            st = _d(s.get(field_))
            if "median" in st:
                p.metric(f"eval.{name}", st["median"], unit, "higher" if name == "ssim" else "lower", group=group,
                         params={"method": method, **extra},
                         note=f"q1 {st.get('q1'):.4g}, q3 {st.get('q3'):.4g}" if _num(st.get("q1")) is not None
                         and _num(st.get("q3")) is not None else "")


def _distributions(rows: list[Any], items: list[str], p: Parts, group: str, extra: dict[str, Scalar]) -> None:
    for key, method in METHOD.items():
        if not any(isinstance(_d(r).get(key), dict) for r in rows):
            continue
        for name, field_, unit in _EVAL_METRICS:
            vals = [_d(_d(r).get(key)).get(field_) for r in rows]
            if any(v is not None for v in vals):
                p.distribution(f"eval.{name}", unit, vals, items, "lower", group=group,
                               params={"method": method, **extra})


def _evaluate(r: dict[str, Any], p: Parts) -> None:
    """autophase evaluate (autophase.evaluate.evaluate): NN, NN+ER, phasing and sphere on held-out crystals."""
    summary = _d(r.get("summary"))
    _method_summary(summary, p, "evaluate", {})
    acc = _d(summary.get("acceptance"))
    g = "evaluate-acceptance"
    for name, field_, unit, better, target in (
            ("eval.fraction_refine_chi2_within_1.2x_phasing", "fraction_refine_chi2_within_1.2x_phasing", "1", "higher",
             Target(">=", 0.8, "issue 4: NN+ER χ² within 1.2× of phasing on ≥ 80 %")),
            ("eval.phase_error_ratio_refine_over_phasing", "median_phase_error_ratio_refine_over_phasing", "x", "lower",
             Target("<=", 1.5, "issue 4: phase error ≤ 1.5× phasing's")),
            ("eval.speedup_phasing_over_refine", "speedup_phasing_over_refine", "x", "higher",
             Target(">=", 3.0, "issue 4: NN+ER ≥ 3× faster than phasing")),
            ("eval.speedup_phasing_over_nn", "speedup_phasing_over_nn", "x", "higher", None),
            ("eval.nn_beats_sphere_phase_error", "nn_beats_sphere_phase_error", "1", "higher", None),
            ("eval.nn_beats_sphere_complex_error", "nn_beats_sphere_complex_error", "1", "higher", None),
            ("eval.passes_issue4", "passes_issue4", "1", "higher", None)):
        if field_ in acc:
            p.metric(name, acc[field_], unit, better, group=g, target=target)
    if _num(_d(summary.get("nn")).get("averaged_fraction")) is not None:
        p.metric("eval.nn_averaged_fraction", summary["nn"]["averaged_fraction"], "1", group="evaluate",
                 label="fraction of crystals whose NN answer averaged symmetric copies")
    _outline_fraction(summary, p, "evaluate", {})
    rows = _l(r.get("crystals"))
    _distributions(rows, [str(_d(c).get("index")) for c in rows], p, "evaluate", {})
    wv = _d(r.get("whole_voxel"))
    if wv:
        _method_summary(_d(wv.get("summary")), p, "evaluate-whole-voxel", {"alignment": "whole-voxel"})
        if wv.get("note"):
            p.notes.append(f"whole_voxel: {wv['note']}")


def _outline_fraction(summary: dict[str, Any], p: Parts, group: str, params: dict[str, Scalar]) -> None:
    """The fractions of refinements that kept the autocorrelation outline, and the start with
    no phase on it, where recorded."""
    v = _d(summary.get("refine")).get("autocorrelation_outline_fraction")
    if _num(v) is not None:
        p.metric("eval.refine_autocorrelation_outline_fraction", v, "1", "", group=group, params=params,
                 label="fraction of NN + ER answers that kept the autocorrelation outline")
    v = _d(summary.get("refine")).get("zero_phase_start_fraction")
    if _num(v) is not None:
        p.metric("eval.refine_zero_phase_start_fraction", v, "1", "", group=group, params=params,
                 label="fraction of NN + ER answers that kept the start with no phase")


def _external(r: dict[str, Any], p: Parts) -> None:
    """autophase evaluate --suite external (autophase.external_suite): sources with no training overlap."""
    for source, s in _d(r.get("sources")).items():
        s = _d(s)
        summary = _d(s.get("summary"))
        _method_summary(summary, p, "external", {"source": source})
        acc = _d(summary.get("acceptance"))
        g = "external-acceptance"
        for name, field_, unit, better, target in (
                ("eval.fraction_refine_chi2_within_1.2x_phasing", "fraction_refine_chi2_within_1.2x_phasing", "1",
                 "higher", Target(">=", 0.85, "issue 15: NN+ER χ² within 1.2× of phasing on ≥ 85 %")),
                ("eval.fraction_refine_chi2_le_phasing", "fraction_refine_chi2_le_phasing", "1", "higher", None),
                ("eval.phase_error_ratio_nn_over_phasing", "median_phase_error_ratio_nn_over_phasing", "x", "lower",
                 Target("<=", 2.0, "issue 15: NN phase error ≤ 2× phasing's")),
                ("eval.phase_error_ratio_refine_over_phasing", "median_phase_error_ratio_refine_over_phasing", "x",
                 "lower", Target("<=", 1.2, "issue 15: NN+ER phase error ≤ 1.2× phasing's")),
                ("eval.phase_error_ratio_sphere_over_phasing", "median_phase_error_ratio_sphere_over_phasing", "x",
                 "lower", None),
                ("eval.nn_beats_sphere_phase_error", "nn_beats_sphere_phase_error", "1", "higher", None),
                ("eval.speedup_phasing_over_refine", "speedup_phasing_over_refine", "x", "higher", None)):
            if field_ in acc:
                p.metric(name, acc[field_], unit, better, group=g, params={"source": source}, target=target)
        _outline_fraction(summary, p, "external", {"source": source})
        rows = _l(s.get("rows"))
        _distributions(rows, [str(_d(x).get("name")) for x in rows], p, "external", {"source": source})


# ---------------------------------------------------------------------------- scaling
def _scaling(r: dict[str, Any], p: Parts) -> None:
    """hpc/scaling.py: time, speedup and efficiencies over rank counts."""
    mode = r.get("mode")
    kind = "weak-scaling" if mode == "weak" else "strong-scaling"
    pts = [_d(x) for x in _l(r.get("points"))]
    params = _params(process=r.get("stage"))
    g = f"scaling-{r.get('stage')}"
    rpn = r.get("ranks_per_node")
    # over nodes when every point fills whole nodes of several ranks (a site's 4-GPU nodes)
    whole = isinstance(rpn, int) and rpn > 1 and all(isinstance(q.get("ranks"), int) and q["ranks"] % rpn == 0
                                                     for q in pts)
    x = "nodes" if whole else "ranks"
    for y, unit, better in (("time_s", "s", "lower"), ("throughput", f"{r.get('work_unit', 'work')}/s", "higher"),
                            ("speedup", "x", "higher"), ("efficiency", "1", "higher"),
                            ("weak_efficiency", "1", "higher")):
        p.series_of(f"scaling.{y}", kind, x, "1", y, unit, [(q.get(x), q.get(y), None) for q in pts],
                    better, group=g, params=params)
    if pts:
        last = max(pts, key=lambda q: _num(q.get("ranks")) or 0)
        head = "weak_efficiency" if mode == "weak" else "efficiency"
        p.metric(f"scaling.{head}", last.get(head), "1", "higher", group=g,
                 params=_params(process=r.get("stage"), ranks=last.get("ranks"), nodes=last.get("nodes")),
                 label=f"{mode} scaling efficiency at the largest count")


_SCAN54 = {"phasing": "phasing", "nn": "nn", "nn_refine50": "nn+er"}


def _scan54(r: dict[str, Any], p: Parts) -> None:
    """scripts/scan54.sh: phasing, NN and NN + 50 ER on the measured scan 54 (no truth: χ², LLK_free)."""
    for key, method in _SCAN54.items():
        m = _d(_d(r.get("methods")).get(key))
        if not m:
            continue
        params = {"source": "scan54", "method": method}
        p.metric("scan54.chi2", m.get("chi2"), "1", "lower", group="scan54", params=params)
        p.metric("scan54.llk_free", m.get("llk_free"), "1", "lower", group="scan54", params=params)
        p.metric("scan54.time_s", m.get("seconds"), "s", "lower", group="scan54", params=params)
    ft = _d(r.get("finetune"))
    for stage in ("before", "after"):
        for key, res in _d(ft.get(stage)).items():
            if isinstance(res, dict) and "chi2" in res:
                p.metric("finetune.chi2", res["chi2"], "1", "lower", group="scan54-finetune",
                         params={"source": "scan54", "process": stage, "method": METHOD.get(key, key)})


def _precision(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_precision.py: the watch network in bfloat16 against float32, paired."""
    for prec, t in _d(r.get("pass_seconds")).items():
        p.timing("precision.pass_s", t, group="precision-speed", label=f"one compiled batch-1 pass, {prec}",
                 params={"dtype": prec})
    for src, body in _d(r.get("sources")).items():
        for key, s in _d(_d(body).get("summary")).items():
            stage, _, metric = key.partition(".")
            params = {"source": src, "method": "nn" if stage == "nn" else "nn+er"}
            s = _d(s)
            p.metric(f"precision.{metric}.ratio", s.get("paired_ratio_median"), "x", "closest-to-1",
                     group="precision", label=f"{metric}: median paired ratio bf16 / fp32", params=params)
            for prec in ("fp32", "bf16"):
                p.metric(f"precision.{metric}", s.get(f"median_{prec}"), "1", "lower", group="precision",
                         label=f"{metric}: median, {prec}", params={**params, "dtype": prec})
            p.metric(f"precision.{metric}.worse_5pct", s.get("fraction_bf16_worse_by_5pct"), "1", "lower",
                     group="precision", label=f"{metric}: fraction of items bf16 worse by > 5 %", params=params)


def _refinement(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_refinement.py: NN + 50 ER under several support settings, per source."""
    for set_key, body in _d(r.get("sets")).items():
        source, _, seed = str(set_key).partition("=")
        for setting, s in _d(_d(body).get("summary")).items():
            s = _d(s)
            params = {"source": source, "set": seed, "setting": setting}
            p.metric("refinement.within_1.2x", s.get("fraction_chi2_within_1.2x_phasing"), "1", "higher",
                     group="refinement", label="fraction with χ² ≤ 1.2 × phasing's", params=params)
            p.metric("refinement.chi2_ratio", s.get("median_chi2_ratio"), "x", "lower", group="refinement",
                     label="median χ² / phasing's", params=params)
            if "median_phase_error_rad" in s:
                p.metric("refinement.phase_error", s.get("median_phase_error_rad"), "rad", "lower",
                         group="refinement", label="median phase error", params=params)


def _refine_cost(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_refine_cost.py: the refinement with one to four runs, in-process
    and in a whole ``autophase predict``, median over the patterns."""
    for part, label in (("in_process", "in-process refinement"), ("whole", "whole predict --refine 50 process")):
        for setting, v in _d(r.get(f"{part}_median_s")).items():
            p.metric(f"refine_cost.{part}_s", v, "s", "lower", group="refine-cost",
                     label="whole phase --no-plot process" if setting == "phase" else label,
                     params={"source": str(r.get("source", "")), "setting": str(setting)})


def _noise_floor(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_noise_floor.py: the truth-free χ² floor against the truth's, and the
    network's χ² above it, per source and photon count."""
    for cell in _l(r.get("cells")):
        cell = _d(cell)
        params = {"source": str(cell.get("source", "")), "photons": _num(cell.get("photons"))}
        for sigma, v in _d(cell.get("median_estimate_over_floor")).items():
            p.metric("noise_floor.estimate_over_floor", v, "x", "closest-to-1", group="noise-floor",
                     params={**params, "sigma": str(sigma)},
                     label="estimated χ² floor over the truth's (1 = exact)")
        p.metric("noise_floor.network_excess", cell.get("median_network_excess"), "1", "lower",
                 group="noise-floor", params=params, label="network χ² minus the estimated floor, median")
        p.metric("noise_floor.triggered", cell.get("fraction_triggered"), "1", "lower", group="noise-floor",
                 params=params, label="share whose network χ² fires the refinement's outline_chi2 trigger")


def _reference_spread(r: dict[str, Any], p: Parts) -> None:
    """benchmarks/bench_reference_spread.py: issue 15's fraction against phasing rerun from
    other seeds (the suite's own run first), and phasing's per-crystal χ² spread."""
    for name, s in _d(r.get("sources")).items():
        for k, v in enumerate(s.get("fraction_by_seed") or []):
            p.metric("reference_spread.fraction_within", v, "1", "higher", group="reference-spread",
                     label="NN + 50 ER χ² within 1.2× of phasing's, phasing from seed k (0: the suite's run)",
                     params={"source": str(name), "seed_index": str(k)})
        for k, v in enumerate(s.get("phase_error_ratio_by_seed") or []):
            p.metric("reference_spread.phase_error_ratio", v, "x", "lower", group="reference-spread",
                     label="NN + 50 ER median phase error over phasing's, phasing from seed k (0: the suite's run)",
                     params={"source": str(name), "seed_index": str(k)})
        p.metric("reference_spread.fraction_vs_best_run", s.get("fraction_vs_best_phasing_run"), "1", "higher",
                 group="reference-spread", label="against each crystal's best phasing run",
                 params={"source": str(name)})
        p.metric("reference_spread.phasing_chi2_spread", s.get("phasing_chi2_max_over_min_median"), "x", "lower",
                 group="reference-spread", label="phasing χ² max/min over seeds, median over crystals",
                 params={"source": str(name)})


CONVERTERS: dict[str, Callable[[dict[str, Any], Parts], None]] = {
    "phasing": _phasing, "inference": _inference, "training": _training, "simulate": _simulate,
    "live": _live, "live-page": _live_page, "observer": _observer, "selection": _selection, "learn": _learn, "adapt": _adapt, "finetune": _finetune,
    "finetune-share": _finetune_share,
    "metrics": _metrics, "sources": _sources, "phasing-runs": _phasing_runs, "evaluate": _evaluate,
    "external": _external, "scan54": _scan54, "precision": _precision, "refinement": _refinement,
    "refine-cost": _refine_cost, "reference-spread": _reference_spread, "noise-floor": _noise_floor,
}


def _converter(suite: str) -> Callable[[dict[str, Any], Parts], None] | None:
    if suite.startswith("scaling-"):
        return _scaling
    return CONVERTERS.get(suite)


def kind_of(suite: str) -> str:
    """The record kind of a suite: scaling, evaluation, training or benchmark."""
    if suite.startswith("scaling-"):
        return "scaling"
    if suite in ("evaluate", "external", "scan54", "precision", "refinement", "reference-spread"):
        return "evaluation"
    if suite in ("learn", "finetune", "finetune-share"):
        return "training"
    return "benchmark"


def convert(suite: str, raw: dict[str, Any]) -> Parts:
    """The typed figures of ``raw`` (the suite's own dict); a suite without a converter
    (a test suite, an ad-hoc script) gives none: its dict rides in ``details`` only."""
    parts = Parts()
    fn = _converter(suite)
    if fn is not None:
        fn(raw, parts)
    return parts


def build(suite: str, raw: dict[str, Any], *, command: str = "", env: Env | None = None,
          created: str | None = None, device: str | None = None, kind: str | None = None,
          notes: list[str] | None = None) -> Result:
    """A :class:`Result` for ``suite`` from its raw dict (kept in ``details``): stamped now
    with this machine's environment unless ``created``/``env`` are given (a migration)."""
    from dataclasses import replace

    from .io import new_result

    parts = convert(suite, raw)
    # the suites' own free-text remarks ("2-core machine shared: timings noisy") become notes
    said = [raw[k] for k in ("note", "machine_note") if isinstance(raw.get(k), str) and raw[k]]
    extra = {"device": device} if device else {}
    res = new_result(suite, kind or kind_of(suite), command=command, env=env, **extra)
    if created:
        res = replace(res, created=created)
    return replace(res, metrics=parts.metrics, series=parts.series, distributions=parts.distributions,
                   notes=[*(notes or []), *said, *parts.notes], details=plain(raw))


def _scalar(o: Any) -> Any:
    item = getattr(o, "item", None)  # numpy scalars and 0-d arrays
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    tolist = getattr(o, "tolist", None)
    return tolist() if callable(tolist) else str(o)


def plain(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` as plain JSON values: numpy scalars/arrays as numbers/lists, paths as text,
    non-finite floats as null (JSON has no NaN)."""
    import json

    from .schema import _to_jsonable

    return _to_jsonable(json.loads(json.dumps(raw, default=_scalar)))
