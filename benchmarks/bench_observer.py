"""Does the latency harness slow what it measures? A waiting loop beside the network path.

    .venv/bin/python benchmarks/bench_observer.py [--reps 6] [--out benchmarks/results/observer-cpu.json]

``bench_live.py`` used to wait for each result with a Python loop that slept 0.5 ms
between ``exists()`` checks. On a 2-core machine that loop shares the cores with the
service's two OpenMP threads, and a 2-thread parallel region is as slow as its slower
thread. This measures the effect in one process, without a service: the watch service's
own predictor (compiled, frozen, float32, batch 1; the default 4 symmetric copies),
``predict(pattern, refine=0)`` on 5 simulated 64³ patterns (10⁶ photons, as
``bench_live``), one second apart as in the live benchmark, with and without a second
process running that poll loop. The two conditions alternate ``--reps`` times (ABBA…),
so a drifting machine hits both.

Record: ``benchmarks/results/observer-cpu.json`` (suite ``observer``): seconds per predict
for each condition, their medians and quartiles, and the ratio of the medians (typed as
``observer.predict_s`` and ``observer.ratio_poll_over_nothing``).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from autophase.bench.record import write_record  # noqa: E402

# the harness's old wait, verbatim in spirit: a file that never appears, checked every 0.5 ms
POLL_LOOP = "import os, time\nwhile not os.path.exists('/nonexistent/autophase-observer'):\n    time.sleep(0.0005)\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=6, help="alternations of the two conditions (default 6)")
    ap.add_argument("--gap", type=float, default=1.0, help="seconds between patterns (default 1, as bench_live)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/observer-cpu.json)")
    args = ap.parse_args(argv)
    if args.reps < 2:
        ap.error("--reps must be ≥ 2")
    from bench_live import _stats
    from bench_phasing import make_patterns

    from autophase.live.service import WatchConfig, WatchService
    from autophase.threads import single_blas_thread

    single_blas_thread()  # as the service does
    d = Path("/tmp/bench_observer")
    # 4 copies, as when this was measured (the service's refine-0 default is now one pass)
    svc = WatchService(WatchConfig(inbox=d / "in", out=d / "out", refine=0, symmetries=4, compile=True,
                                   precision="fp32", fmt="npz"))
    svc._load_predictor(None)  # the service's own load and compile, nothing started
    p = svc.predictor
    pats = [m.astype(np.float32) for m, _ in make_patterns(5, seed=21)]
    for m in pats:
        p.predict(m[None])
    seconds: dict[str, list[float]] = {"poll_beside": [], "nothing_beside": []}
    for rep in range(args.reps):
        order = ("poll_beside", "nothing_beside") if rep % 2 == 0 else ("nothing_beside", "poll_beside")
        for cond in order:
            child = subprocess.Popen([sys.executable, "-c", POLL_LOOP]) if cond == "poll_beside" else None
            try:
                time.sleep(0.5)
                for m in pats:
                    time.sleep(args.gap)
                    t0 = time.perf_counter()
                    p.predict(m[None])
                    seconds[cond].append(time.perf_counter() - t0)
            finally:
                if child is not None:
                    child.kill()
                    child.wait()
        print(f"rep {rep + 1}/{args.reps}: poll {np.median(seconds['poll_beside']):.3f} s, "
              f"nothing {np.median(seconds['nothing_beside']):.3f} s (running medians)", flush=True)
    res = {k: _stats(v) for k, v in seconds.items()}
    res.update({"what": "predict(pattern, refine=0) of the watch service's compiled fp32 predictor, 4 copies",
                "gap_s": args.gap, "reps": args.reps, "patterns": 5, "shape": [64, 64, 64], "photons": 1e6,
                "poll_loop": POLL_LOOP,
                "median_ratio_poll_over_nothing": res["poll_beside"]["median_s"] / res["nothing_beside"]["median_s"]})
    path = write_record("observer", res, args.out)
    print(f"poll beside: median {res['poll_beside']['median_s']:.3f} s; nothing beside: "
          f"{res['nothing_beside']['median_s']:.3f} s; ratio {res['median_ratio_poll_over_nothing']:.2f}; wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
