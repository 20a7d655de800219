"""Is the network's answer in bfloat16 as good as in float32? Paired, on crystals with truth.

For each item of each source (:func:`autophase.testsets.sources.load_source`: the project's
simulator and the independent second generator, sets never used to tune anything), the
watch service's network — compiled with inductor freezing at batch 1, exactly as
``autophase watch`` compiles it — answers in float32 and in bfloat16, with the default
symmetry averaging; each answer is scored alone and after 50 ER iterations (the service's
``--refine 50``): χ² against the data, and complex and phase error against the truth
(sub-voxel aligned); the measured scan 54 has no truth and is judged by χ² alone. The
record holds the paired ratios bf16 / fp32 and the pass times.

    .venv/bin/python benchmarks/bench_precision.py --n 50 \\
        [--out benchmarks/results/precision-cpu.json]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autophase.bench.record import RESULTS_DIR, write_record  # noqa: E402


def _service_predictor(precision: str):
    from autophase.live.service import WatchConfig, WatchService

    svc = WatchService(WatchConfig(inbox=Path("."), out=Path("."), compile=True, precision=precision),
                       echo=lambda m: None)
    svc._load_predictor(None)
    with svc._freezing():
        svc.predictor.predict(svc._synthetic(svc.predictor.size)[None])  # oneDNN warm-up
    return svc.predictor


def _scores(obj, truth, chi2):
    from autophase.physics.metrics import compare_to_truth

    if truth is None:  # a measured scan: the data are the only judge
        return {"chi2": chi2}
    c = compare_to_truth(obj, truth)  # one alignment for both errors
    return {"chi2": chi2, "complex_error": c["complex_error"], "phase_error": c["phase_error_rad"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50, help="items per source (default 50)")
    ap.add_argument("--sources", default="simulator,generator2,scan54",
                    help="comma-separated (default all three; scan54 is one pattern, judged by χ² alone)")
    ap.add_argument("--seed", type=int, default=15, help="set seed of every source (default 15: tuned on by nothing)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    if a.n < 1:
        ap.error("--n must be ≥ 1")
    import torch

    from autophase.predict import refine_prediction
    from autophase.testsets.sources import load_source

    torch.set_num_threads(max(1, torch.get_num_threads()))
    nets = {p: _service_predictor(p) for p in ("fp32", "bf16")}
    results = {"n_per_source": a.n, "seed": a.seed, "refine_iterations": 50, "sources": {},
               "pass_seconds": {}}
    for prec, p in nets.items():
        x = np.zeros((1, p.size, p.size, p.size), np.float32)
        x[0, p.size // 2, p.size // 2, p.size // 2] = 1
        ts = []
        for _ in range(10):
            t0 = time.perf_counter()
            p._forward(x)
            ts.append(time.perf_counter() - t0)
        results["pass_seconds"][prec] = {"median_s": float(np.median(ts)), "times_s": ts}
    for src in a.sources.split(","):
        items = load_source(src, 1 if src == "scan54" else a.n, a.seed)
        rows = []
        for it in items:
            row = {"name": it.name, "noise_floor_chi2": it.noise_floor_chi2}
            for prec, p in nets.items():
                pred = p.predict(it.magnitude[None], [it.measured])[0]
                row[f"nn_{prec}"] = _scores(pred.object, it.truth, pred.chi2)
                row[f"nn_{prec}"]["symmetries"] = pred.symmetries
                ref = refine_prediction(pred, it.magnitude, it.measured, 50, None)
                row[f"nn_er_{prec}"] = _scores(ref.object, it.truth, ref.chi2)
            rows.append(row)
            print(src, it.name, {k: round(row[k]["chi2"], 5) for k in row if k.startswith("nn")}, flush=True)
        summ = {}
        for stage in ("nn", "nn_er"):
            for m in ("chi2", "complex_error", "phase_error"):
                if m not in rows[0][f"{stage}_fp32"]:
                    continue
                r = np.array([row[f"{stage}_bf16"][m] / row[f"{stage}_fp32"][m] for row in rows])
                summ[f"{stage}.{m}"] = {
                    "median_fp32": float(np.median([row[f"{stage}_fp32"][m] for row in rows])),
                    "median_bf16": float(np.median([row[f"{stage}_bf16"][m] for row in rows])),
                    "paired_ratio_median": float(np.median(r)),
                    "paired_ratio_q10_q90": [float(np.quantile(r, 0.1)), float(np.quantile(r, 0.9))],
                    "fraction_bf16_worse_by_5pct": float(np.mean(r > 1.05)),
                    "fraction_bf16_better_by_5pct": float(np.mean(r < 1 / 1.05))}
        results["sources"][src] = {"summary": summ, "rows": rows}
        print(src, {k: round(v["paired_ratio_median"], 4) for k, v in summ.items()}, flush=True)
    results["command"] = " ".join(["python", *sys.argv])
    path = write_record("precision", results, a.out or RESULTS_DIR / "precision-cpu.json")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
