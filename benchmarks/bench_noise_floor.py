"""The pattern's own χ² floor, from its counts alone — and where the network's χ² sits above it.

    .venv/bin/python benchmarks/bench_noise_floor.py --out benchmarks/results/noise-floor-cpu.json

A perfect answer does not score χ² 0 against Poisson counts: it scores the noise floor,
about 0.014 for the simulator's crystals at 10⁶ photons and 0.0005 at 10⁸. The refinement's
trigger for its runs on the data's outline (:class:`autophase.predict.Refinement`
``outline_chi2``, 0.05) compares the network's χ² with a fixed number chosen at 10⁶ photons,
so it means "the network has not learnt this crystal" at one photon count only.
:func:`autophase.physics.metrics.chi2_noise_floor` estimates the floor with no truth.

For each ``--sets`` source (:func:`autophase.testsets.sources.load_source`) and each
``--photons`` count, ``--n`` crystals:

* the true floor (:func:`autophase.testsets.sources.noise_floor_chi2`: the exact object
  against its own noisy counts) and the estimate at each ``--sigmas`` smoothing, as the ratio
  estimate ÷ floor;
* the network's χ² (the shipped model as ``predict`` runs it before the refinement: the
  χ² ``outline_chi2`` is compared with), that minus the estimated floor at σ 0.7 (the
  network's own error, which should not depend on the photons), and the share of crystals
  whose χ² fires the trigger today.

``--scan54`` adds the measured scan: the estimate and the network's χ² (no truth).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from autophase.bench.record import RESULTS_DIR, write_record  # noqa: E402
from bench_refinement import parse_sets  # noqa: E402

SIGMA = 0.7  # the estimate the excess uses (chi2_noise_floor's default)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="simulator=12,generator2=0,simulator=24,generator2=5",
                    help="source=set seed, comma-separated (default: two choice sets and two others)")
    ap.add_argument("--photons", default="1e5,1e6,1e7,1e8", help="expected counts per pattern, comma-separated")
    ap.add_argument("--n", type=int, default=8, help="crystals per set and photon count (default 8)")
    ap.add_argument("--sigmas", default="0,0.5,0.7,1", help="smoothing σ of the estimate, voxels")
    ap.add_argument("--scan54", action="store_true", help="add the measured scan 54 (no truth)")
    ap.add_argument("--model", default=None, help="default: the shipped model")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    try:
        sets = parse_sets(a.sets)  # refuses issue 15's acceptance set: nothing is looked at on it
    except ValueError as e:
        ap.error(str(e))
    try:
        photons = [float(x) for x in a.photons.split(",")]
        sigmas = [float(x) for x in a.sigmas.split(",")]
    except ValueError:
        ap.error(f"--photons and --sigmas take numbers, got {a.photons!r} {a.sigmas!r}")
    if a.n < 1 or any(p <= 0 for p in photons) or any(s < 0 for s in sigmas):
        ap.error("--n ≥ 1, --photons > 0 and --sigmas ≥ 0")

    from autophase.physics.metrics import chi2_noise_floor
    from autophase.predict import Predictor, Refinement
    from autophase.testsets.sources import load_source

    trigger = Refinement().outline_chi2
    predictor = Predictor(a.model)
    cells, t0 = [], time.perf_counter()
    for name, seed in sets:
        for ph in photons:
            rows = []
            for it in load_source(name, a.n, seed, ph):
                p = predictor.predict(it.magnitude[None], [it.measured], sources=[it.name])[0]
                est = {f"{s:g}": chi2_noise_floor(it.magnitude, it.measured, s) for s in sigmas}
                default = est.get(f"{SIGMA:g}")
                if default is None:
                    default = chi2_noise_floor(it.magnitude, it.measured, SIGMA)
                rows.append({"name": it.name, "floor": float(it.noise_floor_chi2), "estimate": est,
                             "network_chi2": float(p.chi2), "estimate_default": default})
            floor = np.array([r["floor"] for r in rows])
            c2 = np.array([r["network_chi2"] for r in rows])
            excess = c2 - np.array([r["estimate_default"] for r in rows])
            cell = {"source": name, "seed": seed, "photons": ph, "rows": rows,
                    "median_floor": float(np.median(floor)),
                    "median_estimate_over_floor": {k: float(np.median([r["estimate"][k] for r in rows] / floor))
                                                   for k in rows[0]["estimate"]},
                    "median_network_chi2": float(np.median(c2)), "median_network_excess": float(np.median(excess)),
                    "network_excess_range": [float(excess.min()), float(excess.max())],
                    "fraction_triggered": float(np.mean(c2 > trigger))}
            cells.append(cell)
            print(f"{name}={seed} {ph:.0e}: floor {cell['median_floor']:.4f}, estimate ÷ floor "
                  + " ".join(f"σ{k} {v:.2f}" for k, v in cell["median_estimate_over_floor"].items())
                  + f" | network χ² {cell['median_network_chi2']:.4f}, excess {cell['median_network_excess']:.4f} "
                  f"[{excess.min():.4f}, {excess.max():.4f}], trigger {cell['fraction_triggered']:.0%}", flush=True)
    res = {"model": predictor.meta.get("version"), "n": a.n, "sigmas": sigmas, "sigma_for_excess": SIGMA,
           "outline_chi2_trigger": trigger, "cells": cells, "seconds": time.perf_counter() - t0}
    if a.scan54:
        it = load_source("scan54", 1, 0)[0]
        p = predictor.predict(it.magnitude[None], [it.measured], sources=[it.name])[0]
        est = chi2_noise_floor(it.magnitude, it.measured, SIGMA)
        res["scan54"] = {"estimate": est, "network_chi2": float(p.chi2), "network_excess": float(p.chi2) - est,
                         "photons": float((it.magnitude.astype(np.float64) ** 2)[it.measured].sum())}
        print(f"scan54: {res['scan54']['photons']:.3g} photons, floor estimate {est:.4f}, network χ² {p.chi2:.4f}")
    res["command"] = " ".join([".venv/bin/python", "benchmarks/bench_noise_floor.py", *(argv or sys.argv[1:])])
    path = write_record("noise-floor", res, a.out or RESULTS_DIR / "noise-floor-cpu.json")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
