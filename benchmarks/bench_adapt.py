"""predict --adapt K: its cost per step and whether it beats 50 more ER iterations.

    .venv/bin/python benchmarks/bench_adapt.py                       # 2 + 2 crystals + scan 54 (~20 min)
    .venv/bin/python benchmarks/bench_adapt.py --n 4 --steps 5 20 50 --out benchmarks/results/adapt-cpu.json

For each pattern, with the shipped model and the project's prediction defaults
(symmetry averaging above χ² 0.008, refinement start 0.2, shrink-wrap every 5 at 0.15):

* ``K = 0`` — the network alone, NN + 50 ER and NN + 100 ER (the "50 more ER" reference),
  and the network's single pass (no symmetry averaging);
* ``K ∈ --steps`` — one adaptation run of max(K) Adam steps at ``--lr`` on the pattern
  (:func:`autophase.model.adapt.adapt_network`, physics loss only), predicting from the
  snapshot after K steps: the adapted network alone (one pass, as ``predict --adapt``:
  the copy is fitted to the pattern as given) and adapted NN + 50 ER.

χ² is eq. 2 with the fitted scale over the measured voxels; where a truth exists (the
simulator held-out set and the independent generator) the phase error after alignment
too. Sources (:func:`autophase.testsets.sources.load_source`): ``simulator`` (seed 14,
the held-out seed, 10⁸ photons — inside the shipped model's training range),
``generator2`` (seed 1, its own 10⁶ photons) and ``scan54`` (the measured pattern, prepped
by ``autophase prep``); and ``--pattern FILE`` (repeatable) any measured pattern file, such as the
half of scan 54's photons that ``autophase finetune --split-photons`` holds back
(``runs/finetune-*/holdout.cxi``):

    .venv/bin/python benchmarks/bench_adapt.py --sources --pattern runs/finetune-s18/holdout.cxi \
        --steps 20 50 --phasing-starts 5 --out benchmarks/results/adapt-holdout-cpu.json

Where there is no truth, ``--phasing-starts N`` adds phasing with its defaults from seeds
0 … N − 1 as the yardstick (issue 15's measured line: NN + 50 ER χ² ≤ phasing's median), and
every answer is also scored as the external suite and ``finetune`` score it
(:func:`autophase.external_suite.score_no_truth`: χ² over all measured voxels, LLK_free), so the
ratio to phasing compares like with like.

Cost: seconds per adaptation step (forward + backward at batch 1, 64³, the model's
width) over the whole run, snapshot predictions excluded; 50 ER iterations' seconds
beside it (the NN + 50 ER refinement's own time). The machine's load average is
recorded: on the shared 2-core machine timings are noisy; rerun on a quiet machine:

    .venv/bin/python benchmarks/bench_adapt.py --n 2 --steps 5 20 50 --threads 1
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from pathlib import Path

import numpy as np

from autophase.bench.record import RESULTS_DIR, write_record


def _score(p, truth, item=None):
    """χ² as the answer reports it, seconds, and with a truth the phase and complex error;
    without one (``item`` given) the external suite's χ² and LLK_free as ``scored_*``."""
    from autophase.external_suite import score_no_truth
    from autophase.physics.metrics import compare_to_truth

    out = {"chi2": float(p.chi2), "seconds_nn": float(p.seconds_nn), "seconds_refine": float(p.seconds_refine)}
    if truth is None and item is not None:
        s = score_no_truth(p.object, item.magnitude, item.measured)
        out["scored_chi2"], out["scored_llk_free"] = s["chi2"], s["llk_free"]
    if truth is not None:
        c = compare_to_truth(p.object, truth)
        out["phase_error_rad"] = c["phase_error_rad"]
        out["complex_error"] = c["complex_error"]
    return out


def pattern_item(path: str):
    """A measured pattern file as a no-truth :class:`autophase.testsets.sources.Item`."""
    from autophase.io.patterns import load_pattern
    from autophase.testsets.sources import Item

    pat = load_pattern(path)
    return Item(f"file/{Path(path).name}", pat.magnitude, pat.measured, None, None, seed=0,
                params={"source": "file", "file": str(path)})


def run_item(predictor, item, steps: list[int], lr: float) -> dict:
    from autophase.model.adapt import adapt_network
    from autophase.predict import refine_prediction

    mag, meas, truth = item.magnitude, item.measured, item.truth
    row = {"name": item.name, "K": {}}
    p0 = predictor.predict(mag[None], [meas])[0]
    r50 = refine_prediction(p0, mag, meas, 50)
    r100 = refine_prediction(p0, mag, meas, 100)
    sym = predictor.symmetries
    predictor.symmetries = 1
    try:
        p1 = predictor.predict(mag[None], [meas])[0]
    finally:
        predictor.symmetries = sym
    row["K"]["0"] = {"nn": _score(p0, truth, item), "nn_50er": _score(r50, truth, item),
                     "nn_100er": _score(r100, truth, item), "nn_single_pass": _score(p1, truth, item)}
    snap_s = [0.0]

    def on_step(k, net):
        if k not in steps:
            return
        t0 = time.perf_counter()
        keep, compiled = predictor.net, predictor.compiled
        import torch

        # as predict --adapt does: the adapted copy's own single pass
        predictor.net, predictor.compiled, predictor.symmetries = net.to(memory_format=torch.channels_last_3d), False, 1
        try:
            net.eval()
            p = predictor.predict(mag[None], [meas])[0]
        finally:
            predictor.net, predictor.compiled, predictor.symmetries = keep, compiled, sym
        r = refine_prediction(p, mag, meas, 50)
        row["K"][str(k)] = {"nn": _score(p, truth, item), "nn_50er": _score(r, truth, item)}
        snap_s[0] += time.perf_counter() - t0

    t0 = time.perf_counter()
    ad = adapt_network(predictor.net, mag, meas, max(steps), lr, predictor.threshold, on_step=on_step)
    total = time.perf_counter() - t0
    row["adapt_loss"] = ad.losses
    row["seconds_per_step"] = (total - snap_s[0]) / max(steps)
    row["seconds_50_er"] = float(r50.seconds_refine)  # what 50 more ER iterations cost
    return row


def summarise(rows: list[dict], steps: list[int]) -> dict:
    """Per K: median χ² ratio to NN + 100 ER (NN alone and NN + 50 ER) and how often it is ≤ it."""
    out = {}
    for K in ["0"] + [str(k) for k in steps]:
        ref = np.array([r["K"]["0"]["nn_100er"]["chi2"] for r in rows])
        nn = np.array([r["K"][K]["nn"]["chi2"] for r in rows])
        er = np.array([r["K"][K]["nn_50er"]["chi2"] for r in rows])
        out[K] = {"median_chi2_nn": float(np.median(nn)), "median_chi2_nn_50er": float(np.median(er)),
                  "median_ratio_nn_50er_over_nn_100er": float(np.median(er / ref)),
                  "fraction_nn_50er_le_nn_100er": float(np.mean(er <= ref))}
    out["median_chi2_nn_100er"] = float(np.median([r["K"]["0"]["nn_100er"]["chi2"] for r in rows]))
    if all("phasing" in r for r in rows):
        # issue 15's measured line, like with like: the suite's χ² of NN + 50 ER (K steps
        # before it) over phasing's median run
        for K in ["0"] + [str(k) for k in steps]:
            ratio = [r["K"][K]["nn_50er"]["scored_chi2"] / r["phasing"]["chi2"] for r in rows]
            out[K]["median_ratio_nn_50er_over_phasing"] = float(np.median(ratio))
            out[K]["fraction_nn_50er_le_phasing"] = float(np.mean(np.array(ratio) <= 1.0))
        ratio = [r["K"]["0"]["nn_100er"]["scored_chi2"] / r["phasing"]["chi2"] for r in rows]
        out["median_ratio_nn_100er_over_phasing"] = float(np.median(ratio))
    out["median_seconds_per_step"] = float(np.median([r["seconds_per_step"] for r in rows]))
    out["median_seconds_50_er"] = float(np.median([r["seconds_50_er"] for r in rows]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2, help="crystals per simulated source (default 2)")
    ap.add_argument("--steps", type=int, nargs="+", default=[5, 20, 50], help="K values (default 5 20 50)")
    ap.add_argument("--offset", type=int, default=0, help="skip the first crystals of each simulated source")
    ap.add_argument("--lr", type=float, default=None, help="adaptation learning rate (default: predict's)")
    ap.add_argument("--sources", nargs="*", default=["simulator", "generator2", "scan54"])
    ap.add_argument("--pattern", action="append", default=[], metavar="FILE",
                    help="a measured pattern file as one more source (repeatable; no truth)")
    ap.add_argument("--phasing-starts", type=int, default=0, metavar="N",
                    help="phasing from N seeds as the yardstick on sources without truth (default 0: none)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--model", default=None, help="model file (default: the shipped model)")
    ap.add_argument("--out", default=str(RESULTS_DIR / "adapt-cpu.json"))
    a = ap.parse_args(argv)
    import torch

    from autophase.beamline.finetune import phasing_reference
    from autophase.model.adapt import DEFAULT_ADAPT_LR, check_adapt
    from autophase.predict import Predictor
    from autophase.testsets.sources import load_source

    lr = DEFAULT_ADAPT_LR if a.lr is None else a.lr
    for k in a.steps:
        check_adapt(k, lr)
    steps = sorted(set(a.steps))
    if a.phasing_starts < 0:
        ap.error(f"--phasing-starts must be ≥ 0, got {a.phasing_starts}")
    if not a.sources and not a.pattern:
        ap.error("nothing to run: give --sources or --pattern")
    for f in a.pattern:
        if not Path(f).is_file():
            ap.error(f"--pattern {f}: no such file")
    if a.threads:
        torch.set_num_threads(a.threads)
    predictor = Predictor(a.model, device="cpu")
    photons = {"simulator": 1e8, "generator2": 1e6}
    seeds = {"simulator": 14, "generator2": 1, "scan54": 0}
    results = {"model": {k: predictor.meta.get(k) for k in ("version", "file", "network")}, "lr": lr,
               "steps": steps, "torch_threads": torch.get_num_threads(), "load_average_start": os.getloadavg(),
               "sources": {}}
    jobs = [(src, None) for src in a.sources] + [(f"file:{f}", f) for f in a.pattern]
    for src, pattern_file in jobs:
        if pattern_file is not None:
            items = [pattern_item(pattern_file)]
        else:
            n = 1 if src == "scan54" else a.n
            off = 0 if src == "scan54" else a.offset
            items = load_source(src, off + n, seeds[src], photons.get(src, 1e6))[off:]
        rows = []
        for it in items:
            t0 = time.perf_counter()
            rows.append(run_item(predictor, it, steps, lr))
            if it.truth is None and a.phasing_starts:
                # the yardstick finetune holds its held-back half to, made the same way
                rows[-1]["phasing"] = phasing_reference(it.magnitude, it.measured, a.phasing_starts)
            k0, kmax = rows[-1]["K"]["0"], rows[-1]["K"][str(steps[-1])]
            print(f"bench_adapt: {it.name}: NN {k0['nn']['chi2']:.4g}  +50ER {k0['nn_50er']['chi2']:.4g}  "
                  f"+100ER {k0['nn_100er']['chi2']:.4g} | K={steps[-1]}: NN {kmax['nn']['chi2']:.4g}  "
                  f"+50ER {kmax['nn_50er']['chi2']:.4g}  ({rows[-1]['seconds_per_step']:.2f} s/step, "
                  f"{time.perf_counter() - t0:.0f} s)", flush=True)
        results["sources"][src] = {"seed": seeds.get(src), "photons": photons.get(src), "rows": rows,
                                   "summary": summarise(rows, steps)}
        results["load_average_end"] = os.getloadavg()
        results["command"] = " ".join([".venv/bin/python", "benchmarks/bench_adapt.py", *(argv or sys.argv[1:])])
        path = write_record("adapt", results, a.out)  # after every source: a long run keeps what it has
    for src, d in results["sources"].items():
        s = d["summary"]
        print(f"bench_adapt: {src}: " + "  ".join(f"K={K}: NN+50ER/NN+100ER {s[K]['median_ratio_nn_50er_over_nn_100er']:.3g}"
                                                    for K in ["0"] + [str(k) for k in steps]))
        if "median_ratio_nn_100er_over_phasing" in s:
            print(f"bench_adapt: {src}: ÷ phasing's median χ²: " + "  ".join(
                f"K={K}: NN+50ER {s[K]['median_ratio_nn_50er_over_phasing']:.3f}" for K in ["0"] + [str(k) for k in steps])
                + f"  NN+100ER {s['median_ratio_nn_100er_over_phasing']:.3f}")
    print(f"bench_adapt: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
