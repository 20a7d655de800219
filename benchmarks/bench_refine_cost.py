"""What the refinement's extra starts cost: in-process and in a whole ``autophase predict``.

    .venv/bin/python benchmarks/bench_refine_cost.py                 # 4 crystals, ≈4 min on 2 cores
    .venv/bin/python benchmarks/bench_refine_cost.py --n 4 --out benchmarks/results/refine-cost-cpu.json

The refinement (:func:`autophase.predict.refine_prediction`) runs 50 ER from the network's
answer, and where the pattern's autocorrelation and the network disagree on the crystal's
volume, from the data's outline as well: with the network's phase (session 14) and with no
phase (session 15), that phase-free start at a second shrink-wrap threshold (session 16); since
session 17 also where the network's answer fits badly.
Six settings of :class:`autophase.predict.Refinement`:

* ``one`` — ``outline_ratio=0``: the network's outline alone (the paper's refinement);
* ``two`` — ``zero_phase_start=False``: session 14's refinement;
* ``three`` — ``zero_phase_sw_threshold=0``: session 15's refinement (three runs);
* ``four`` — session 16's refinement (four runs where the outlines disagree, kept by LLK_free);
* ``default`` — since session 17: the four runs also where the network's χ² is above 0.05,
  the lowest χ² within 10 % of the lowest LLK_free kept;
* ``every`` — the same with the four runs on every crystal (``outline_ratio`` 1).

Patterns: ``--n`` crystals of ``--source`` (default generator 2 set 2, an exploration set:
its crystals take the further starts about two times in three; the simulator's never do).

* ``in_process`` — per pattern, the network's answer once, then each setting's
  ``refine_prediction`` ``--repeats`` times (median seconds), in one process with one BLAS
  thread, as the watch service refines; the row says whether the further starts were made
  (:meth:`~autophase.predict.Prediction.kept_start` of the kept answer, the volume ratio).
* ``whole`` — per pattern, ``autophase predict P.npy -o x.npz --refine 50 --no-plot`` with
  each setting's options, as a user runs it, settings alternated pattern by pattern
  (``--whole-repeats`` rounds): wall seconds of the whole process, import and model load
  included; beside them ``autophase phase P.npy -o y.npz --no-plot`` (phasing with its
  defaults), the whole process a user would otherwise run. ``--no-whole`` leaves it out.

The machine's load average is recorded; timings on the shared 2-core machine are noisy.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from autophase.bench.record import RESULTS_DIR, write_record  # noqa: E402

#: setting → (Refinement keyword arguments, the same as ``predict`` options)
SETTINGS = {
    "one": ({"outline_ratio": 0.0}, ["--refine-outline-ratio", "0"]),
    "two": ({"outline_ratio": 1.5, "zero_phase_start": False, "keep_by": "llk_free", "outline_chi2": 0.0},
            ["--refine-outline-ratio", "1.5", "--no-refine-zero-phase", "--refine-keep-by", "llk_free",
             "--refine-outline-chi2", "0"]),
    "three": ({"outline_ratio": 1.5, "zero_phase_sw_threshold": 0.0, "keep_by": "llk_free", "outline_chi2": 0.0},
              ["--refine-outline-ratio", "1.5", "--refine-zero-phase-threshold", "0", "--refine-keep-by", "llk_free",
               "--refine-outline-chi2", "0"]),
    "four": ({"outline_ratio": 1.5, "keep_by": "llk_free", "outline_chi2": 0.0},
             ["--refine-outline-ratio", "1.5", "--refine-keep-by", "llk_free", "--refine-outline-chi2", "0"]),
    "default": ({}, []),
    "every": ({"outline_ratio": 1.0}, ["--refine-outline-ratio", "1"]),
}


def in_process(items, repeats: int) -> list[dict]:
    """Median in-process seconds of each setting's refinement, per pattern."""
    from autophase.outline import autocorrelation_outline, volume_ratio
    from autophase.predict import Predictor, Refinement, refine_prediction

    predictor = Predictor(None)
    rows = []
    for it in items:
        p = predictor.predict(it.magnitude[None], [it.measured], sources=[it.name])[0]
        first = Refinement().start_support(p.object, p.support)
        row = {"name": it.name, "volume_ratio": volume_ratio(autocorrelation_outline(it.magnitude, it.measured), first),
               "settings": {}}
        for key, (kw, _) in SETTINGS.items():
            how = Refinement(**kw).validate()
            refine_prediction(p, it.magnitude, it.measured, 50, how)  # each thread's FFT plans first
            ts = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                r = refine_prediction(p, it.magnitude, it.measured, 50, how)
                ts.append(time.perf_counter() - t0)
            row["settings"][key] = {"median_s": statistics.median(ts), "values_s": ts, **r.kept_start(),
                                    "chi2": float(r.chi2), "llk_free": float(r.llk_free)}
        rows.append(row)
        print(it.name, "ratio %.2f" % row["volume_ratio"],
              {k: round(v["median_s"], 3) for k, v in row["settings"].items()}, flush=True)
    return rows


def whole(items, rounds: int) -> list[dict]:
    """Wall seconds of whole ``autophase predict`` processes, settings alternated."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_refine_cost.") as tmp:
        for it in items:
            src = Path(tmp) / (it.name.replace("/", "_") + ".npy")
            np.save(src, np.where(it.measured, it.magnitude.astype(np.float32) ** 2, 0.0).astype(np.float32))
            got: dict[str, list[float]] = {k: [] for k in (*SETTINGS, "phase")}
            for _ in range(rounds):
                for key in got:
                    out = Path(tmp) / f"{key}.npz"
                    cmd = ([sys.executable, "-m", "autophase.cli", "phase", str(src), "-o", str(out), "--no-plot"]
                           if key == "phase" else
                           [sys.executable, "-m", "autophase.cli", "predict", str(src), "-o", str(out),
                            "--refine", "50", "--no-plot", *SETTINGS[key][1]])
                    t0 = time.perf_counter()
                    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
                    got[key].append(time.perf_counter() - t0)
                    out.unlink()
            rows.append({"name": it.name, "settings": {k: {"median_s": statistics.median(v), "values_s": v}
                                                       for k, v in got.items()}})
            print(it.name, "whole", {k: round(statistics.median(v), 2) for k, v in got.items()}, flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default="generator2=2", help="source=set (default generator2=2)")
    ap.add_argument("--n", type=int, default=4, help="crystals (default 4)")
    ap.add_argument("--repeats", type=int, default=5, help="in-process repeats per setting (default 5)")
    ap.add_argument("--whole-repeats", type=int, default=3, help="rounds of whole processes (default 3)")
    ap.add_argument("--no-whole", action="store_true", help="in-process figures only")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    name, _, seed = a.source.partition("=")
    if not seed.isdigit():
        ap.error(f"--source: {a.source!r} is not source=set")
    if a.n < 1 or a.repeats < 1 or a.whole_repeats < 1:
        ap.error("--n, --repeats and --whole-repeats must be ≥ 1")
    from autophase.testsets.sources import ACCEPTANCE_SETS, load_source
    from autophase.threads import single_blas_thread

    if (name, int(seed)) in ACCEPTANCE_SETS:
        ap.error("--source: generator2 set 1 is issue 15's acceptance set")
    single_blas_thread()
    items = load_source(name, a.n, int(seed))
    res = {"source": a.source, "n": a.n, "repeats": a.repeats, "load_average_start": list(os.getloadavg()),
           "in_process": in_process(items, a.repeats)}
    if not a.no_whole:
        res["whole"] = whole(items, a.whole_repeats)
    res["load_average_end"] = list(os.getloadavg())
    for part in ("in_process", "whole"):
        if part in res:
            res[f"{part}_median_s"] = {k: statistics.median(r["settings"][k]["median_s"] for r in res[part])
                                       for k in res[part][0]["settings"]}
            print(part, {k: round(v, 3) for k, v in res[f"{part}_median_s"].items()})
    path = write_record("refine-cost", res, a.out or RESULTS_DIR / "refine-cost-cpu.json")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
