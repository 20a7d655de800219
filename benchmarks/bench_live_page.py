"""How long after a result lands does the live page (``watch --http``) show it?

Serves the page over a fresh output folder, opens it in headless Chromium, then ``--n``
times writes a result file and its event line (as the service does: file first, then
the line) and measures until the page has drawn that result's slices and isosurface
(the view computed by the server, fetched and drawn by the browser). Also times the
server's view of one result alone. The result files are real: the tiny test network's
predictions on simulated crystals (or ``--model``'s). Wall seconds; on a shared machine
say so when quoting.

    python benchmarks/bench_live_page.py [--n 5] [--poll-ms 250] [--out benchmarks/results/live-page-cpu.json]
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=5)
    p.add_argument("--poll-ms", type=float, default=250.0, help="how often the server looks at events.jsonl")
    p.add_argument("--model", help="checkpoint (default: the shipped model)")
    p.add_argument("--out", default=None, help="record path (default benchmarks/results/live-page-cpu.json)")
    a = p.parse_args(argv)

    from autophase.bench.record import RESULTS_DIR, write_record
    from autophase.live.page import result_view, serve
    from autophase.physics.synthetic import faceted_crystal, noisy_pattern
    from autophase.predict import Predictor, write_prediction
    from autophase.report.browser import browser_tab

    mags = [np.sqrt(noisy_pattern(faceted_crystal(32, radius=8.0 + s % 2, seed=s), photons=1e8, seed=s)[0])
            for s in range(2)]
    preds = Predictor(a.model, symmetries=1).predict(np.stack(mags))
    with tempfile.TemporaryDirectory(prefix="bench-page-") as tmp:
        src, out = Path(tmp) / "src", Path(tmp) / "out"
        src.mkdir()
        out.mkdir()
        for i, pr in enumerate(preds):
            write_prediction(pr, src / f"r{i}.npz", plot=False)
        t0 = time.perf_counter()
        view = result_view(src / "r0.npz")
        t_view = time.perf_counter() - t0
        h = serve(out, 0, poll_s=a.poll_ms / 1000)
        lat = []
        try:
            with browser_tab() as tab:
                if not tab.navigate(h.url) or not tab.wait_for("document.body.dataset.ready === '1'", 30):
                    raise RuntimeError("the page did not load")
                for k in range(a.n):
                    name = f"scan{k:03d}.npz"
                    t0 = time.perf_counter()
                    shutil.copyfile(src / f"r{k % 2}.npz", out / name)
                    with open(out / "events.jsonl", "a") as f:
                        f.write(json.dumps({"event": "result", "input": name, "output": str(out / name),
                                            "chi2": preds[k % 2].chi2, "latency_s": 0.0}) + "\n")
                    if not tab.wait_for(f"document.body.dataset.view === '{name}'", 60, interval=0.01):
                        raise RuntimeError(f"{name} never shown")
                    lat.append(time.perf_counter() - t0)
        finally:
            h.stop()
    results = {"n": a.n, "poll_s": a.poll_ms / 1000, "seconds_to_shown": lat,
               "median_seconds_to_shown": statistics.median(lat), "seconds_view": t_view,
               "view_json_bytes": len(json.dumps(view)),
               "triangles": len(view["surface"]["faces"]) // 3 if view["surface"] else 0}
    path = write_record("live-page", results, a.out or RESULTS_DIR / "live-page-cpu.json")
    print(f"live page: a new result shown after {results['median_seconds_to_shown']:.3f} s (median of {a.n}; "
          f"poll {a.poll_ms:g} ms); view {t_view:.3f} s, {results['view_json_bytes'] / 1e3:.0f} kB; record {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
