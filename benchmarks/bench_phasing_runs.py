"""Multi-start phasing: what best-K averaging and LLK_free selection buy, HIO vs RAAR, run speed.

    .venv/bin/python benchmarks/bench_phasing_runs.py                 # 3 items per source, 6 starts
    .venv/bin/python benchmarks/bench_phasing_runs.py --items 2 --starts 4 --quick

For each simulated item of the sources ``simulator`` and ``generator2``
(:func:`autophase.testsets.sources.load_source`, 64³, 10⁶ photons) and each schedule
(``3*(20*ER+160*HIO+20*ER)`` and the same with RAAR), N starts are run once with the
project's current shrink-wrap settings (threshold 0.2, σ 1, every 20) and then scored
against the truth (sub-voxel alignment, :mod:`autophase.physics.metrics`) as:

* ``selected`` — the start with the lowest LLK_free (what ``starts=N`` returns);
* ``best_k_K`` — the average of the K best by LLK_free, aligned (what ``best_k=K`` returns:
  only runs with χ² ≤ ``average_within`` (1.3) × the kept run's are averaged);
* ``best_k_N_all`` — the average of all N runs that did not fail (``average_within=inf``);
* ``truth_best`` / ``median`` — the start closest to the truth / the median start (a
  yardstick only: no user can pick by truth).

χ² is reported relative to the item's noise floor (band [0.9, 1.1]). ``speed`` times one
pattern's N starts on the CPU engine with 1 thread and with ``fft_workers()`` threads,
and on the torch engine (all N in one batch) on CUDA when present.

Writes ``benchmarks/results/phasing-runs.json``. Timings on a shared machine are noisy.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from autophase.bench.record import write_record
from autophase.phasing import PhasingParams, phase
from autophase.phasing.api import _finish, _run_cpu, _select, _starts, prepare, sigma_table
from autophase.phasing.schedule import expand, parse_schedule
from autophase.physics import compare_to_truth
from autophase.physics.forward import fft_workers

SCHEDULES = {"HIO": "3*(20*ER+160*HIO+20*ER)", "RAAR": "3*(20*ER+160*RAAR+20*ER)"}


def score(obj, item) -> dict:
    from autophase.physics import chi2, magnitude

    m = compare_to_truth(obj, item.truth)
    c = chi2(magnitude(obj), item.magnitude, item.measured)
    return {"complex_error": m["complex_error"], "phase_error_rad": m["phase_error_rad"],
            "chi2_over_floor": c / item.noise_floor_chi2}


def runs_of(item, schedule: str, starts: int):
    """All N runs of one item (CPU engine, two threads), as PhasingResults, plus the prepared pattern."""
    from concurrent.futures import ThreadPoolExecutor

    params = PhasingParams(schedule=schedule, starts=starts, best_k=starts, seed=item.seed).validate()
    (t, sigma), = params.candidates()
    algos = expand(parse_schedule(schedule))
    p = prepare(item.magnitude, item.measured, params.free_fraction, params.seed)
    st = _starts(p, params, None, params.support, np.random.default_rng(params.seed))
    table = sigma_table(sigma, len(algos), params.shrink_wrap_every)

    def one(k):
        x, S, e = _run_cpu(p, params, algos, st[k][0], st[k][1], t, table)
        return _finish(p, x, S, e, algos, 0.0, k)

    with ThreadPoolExecutor(max_workers=fft_workers()) as pool:
        res = list(pool.map(one, range(len(st))))
    return params, p, res, (t, sigma)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=3)
    ap.add_argument("--starts", type=int, default=6)
    ap.add_argument("--seed", type=int, default=21, help="item set (held apart from the tuning seeds)")
    ap.add_argument("--quick", action="store_true", help="shorter schedules (smoke test of the script)")
    args = ap.parse_args(argv)
    from autophase.testsets.sources import load_source

    schedules = ({k: v.replace("160", "40") for k, v in SCHEDULES.items()} if args.quick else SCHEDULES)
    ks = sorted({k for k in (2, 3, args.starts) if k <= args.starts})
    rows = []
    for source in ("simulator", "generator2"):
        for item in load_source(source, args.items, args.seed):
            for algo, sched in schedules.items():
                t0 = time.perf_counter()
                params, p, res, cand = runs_of(item, sched, args.starts)
                secs = time.perf_counter() - t0
                jobs = [(0, k) for k in range(len(res))]
                singles = [score(r.object, item) for r in res]
                row = {"source": source, "item": item.name, "algorithm": algo, "schedule": sched,
                       "seconds_all_starts": secs,
                       "llk_free": [r.llk_free for r in res],
                       "singles": singles}
                for K in [1] + ks:
                    out = _select(p, PhasingParams(schedule=sched, starts=args.starts, best_k=K, seed=item.seed),
                                  [cand], jobs, res, secs)
                    row["selected" if K == 1 else f"best_k_{K}"] = {**score(out.object, item),
                                                                     "llk_free": out.llk_free,
                                                                     "averaged": out.averaged, "dropped": out.dropped}
                out = _select(p, PhasingParams(schedule=sched, starts=args.starts, best_k=args.starts,
                                               seed=item.seed, average_within=float("inf")), [cand], jobs, res, secs)
                row[f"best_k_{args.starts}_all"] = {**score(out.object, item), "llk_free": out.llk_free,
                                                    "averaged": out.averaged, "dropped": out.dropped}
                ce = [s["complex_error"] for s in singles]
                row["truth_best"] = singles[int(np.argmin(ce))]
                row["median_complex_error"] = float(np.median(ce))
                rows.append(row)
                print(f"{item.name} {algo}: selected {row['selected']['complex_error']:.4f}  "
                      + "  ".join(f"K={K} {row[f'best_k_{K}']['complex_error']:.4f}" for K in ks)
                      + f"  K={args.starts} (all) {row[f'best_k_{args.starts}_all']['complex_error']:.4f}"
                      + f"  truth-best {row['truth_best']['complex_error']:.4f}"
                      f"  median {row['median_complex_error']:.4f}  ({secs:.1f} s)", flush=True)

    summary = {}
    for source in ("simulator", "generator2"):
        for algo in schedules:
            rs = [r for r in rows if r["source"] == source and r["algorithm"] == algo]
            s = {}
            for key in ["selected"] + [f"best_k_{K}" for K in ks] + [f"best_k_{args.starts}_all", "truth_best"]:
                for m in ("complex_error", "phase_error_rad", "chi2_over_floor"):
                    s[f"{key}_{m}_median"] = statistics.median(r[key][m] for r in rs)
            s["median_single_complex_error_median"] = statistics.median(r["median_complex_error"] for r in rs)
            summary[f"{source}/{algo}"] = s

    # speed: one pattern's N starts
    item = load_source("simulator", 1, args.seed)[0]
    sched = schedules["HIO"]
    speed = {}
    for label, kw in (("cpu_1_thread", dict(workers=1)), (f"cpu_{fft_workers()}_threads", {})):
        phase(item.magnitude, schedule="5*ER", workers=1)  # plans made
        t0 = time.perf_counter()
        phase(item.magnitude, item.measured, schedule=sched, starts=args.starts, seed=item.seed, **kw)
        speed[label] = time.perf_counter() - t0
    import torch

    if torch.cuda.is_available():
        phase(item.magnitude, schedule="5*ER", engine="torch", device="cuda")
        t0 = time.perf_counter()
        phase(item.magnitude, item.measured, schedule=sched, starts=args.starts, seed=item.seed, engine="torch",
              device="cuda")
        speed["torch_cuda_batched"] = time.perf_counter() - t0
    print("speed (s for", args.starts, "starts):", speed)
    path = write_record("phasing-runs", {
        "command": "benchmarks/bench_phasing_runs.py " + " ".join(argv or []),
        "items_per_source": args.items, "starts": args.starts, "seed": args.seed, "quick": args.quick,
        "schedules": schedules, "summary": summary, "speed_seconds": speed, "rows": rows,
        "note": "2-core machine shared with other jobs while measured: timings noisy",
    })
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
