"""How much issue 15's fraction moves when phasing, the yardstick, is rerun from other seeds.

    .venv/bin/python benchmarks/bench_reference_spread.py --results external.json --seeds 2 \
        --out benchmarks/results/reference-spread-cpu.json

The external suite (``autophase evaluate --suite external``) phases each simulated crystal
once, from the crystal's own seed, and counts the crystals whose NN + 50 ER χ² is within
1.2× of that run's χ². Phasing from another seed ends at another χ² (random starts, HIO,
shrink-wrap), so the fraction carries the yardstick's own spread besides the refinement's.
This reruns phasing with its defaults (:func:`autophase.external_suite.phase_scored`) from
``--seeds`` further seeds per crystal (the item's seed + 1000·k, k = 1…) and recounts the
fraction against each; the network's answers are the suite's own, read from ``--results``,
not recomputed.

Per source: the fraction against the suite's run and against each further seed, their
spread (min–max), and phasing's per-crystal χ² spread (median of max/min over the seeds);
and issue 15's phase line against each seed (the median refined phase error over the median
of that seed's phasing phase errors, as the suite computes it).
Sets named generator2=1 are issue 15's acceptance set: measuring the yardstick's spread on it
chooses nothing (the refinement's settings are fixed before this runs).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from autophase.bench.record import RESULTS_DIR, write_record  # noqa: E402

LINE = 1.2  # issue 15: NN + 50 ER χ² within 1.2× of phasing's


def _suite_rows(path: Path) -> tuple[dict, dict]:
    """(settings, {source: rows}) of an external-suite result file (typed record or raw)."""
    d = json.loads(path.read_text())
    d = d.get("details", d)
    if d.get("suite") != "external" or "sources" not in d:
        raise SystemExit(f"{path}: not an external-suite result (autophase evaluate --suite external)")
    return d.get("settings", {}), {k: v["rows"] for k, v in d["sources"].items() if v.get("simulated")}


def spread(settings: dict, sources: dict[str, list[dict]], seeds: int, n: int | None = None) -> dict:
    """Rephase every simulated crystal from ``seeds`` further seeds; recount the fraction."""
    from autophase.external_suite import phase_scored
    from autophase.testsets.sources import load_source

    out = {"line": LINE, "seeds": seeds, "suite_settings": settings, "sources": {}}
    for name, rows in sources.items():
        rows = rows[:n] if n else rows
        items = {it.name: it for it in load_source(name, len(rows), int(settings.get("seed", 1)))}
        per = []
        for row in rows:
            it = items[row["name"]]
            chi = [float(row["phasing"]["chi2"])]
            pe = [float(row["phasing"].get("phase_error_rad", np.nan))]
            t0 = time.perf_counter()
            for k in range(1, seeds + 1):
                _, s = phase_scored(it.magnitude, it.measured, int(it.seed) + 1000 * k, it.truth)
                chi.append(float(s["chi2"]))
                pe.append(float(s.get("phase_error_rad", np.nan)))
            per.append({"name": row["name"], "refine_chi2": float(row["refine"]["chi2"]), "phasing_chi2": chi,
                        "refine_phase_error_rad": float(row["refine"].get("phase_error_rad", np.nan)),
                        "phasing_phase_error_rad": pe, "seconds": time.perf_counter() - t0})
            print(name, row["name"], "ratio", [round(per[-1]["refine_chi2"] / c, 3) for c in chi], flush=True)
        def within(yardstick) -> float:
            """The fraction of crystals within LINE× of ``yardstick(phasing χ² list)``."""
            return float(np.mean([p["refine_chi2"] <= LINE * yardstick(p["phasing_chi2"]) for p in per]))

        fr = [within(lambda c, k=k: c[k]) for k in range(seeds + 1)]
        # issue 15's phase line against each seed's phasing: median refined phase error over
        # the median of that seed's phasing phase errors (the suite's ratio of medians)
        pr = [float(np.median([p["refine_phase_error_rad"] for p in per])
                    / np.median([p["phasing_phase_error_rad"][k] for p in per])) for k in range(seeds + 1)]
        out["sources"][name] = {
            "n": len(per), "fraction_by_seed": fr, "fraction_min": min(fr), "fraction_max": max(fr),
            "phase_error_ratio_by_seed": pr,
            # against each crystal's best phasing run (the lowest χ², the hardest yardstick) and its worst
            "fraction_vs_best_phasing_run": within(min), "fraction_vs_worst_phasing_run": within(max),
            "phasing_chi2_max_over_min_median": float(np.median([max(p["phasing_chi2"]) / min(p["phasing_chi2"])
                                                                 for p in per])),
            "rows": per}
        s = out["sources"][name]
        print(f"{name}: within {LINE}× of phasing, by seed {[round(x, 3) for x in fr]}; phase error ratio by seed "
              f"{[round(x, 3) for x in pr]}; against each crystal's "
              f"best run {s['fraction_vs_best_phasing_run']:.3f}; phasing χ² max/min median "
              f"{s['phasing_chi2_max_over_min_median']:.3f}", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", required=True, help="an external-suite result (.json)")
    ap.add_argument("--seeds", type=int, default=2, help="further phasing seeds per crystal (default 2)")
    ap.add_argument("--n", type=int, default=None, help="only the first N crystals of each source")
    ap.add_argument("--out", default=str(RESULTS_DIR / "reference-spread-cpu.json"))
    a = ap.parse_args(argv)
    if not 1 <= a.seeds <= 10:
        ap.error(f"--seeds: 1 to 10 further seeds, got {a.seeds}")
    path = Path(a.results)
    if not path.is_file():
        ap.error(f"--results: {path}: no such file")
    from autophase.threads import single_blas_thread

    single_blas_thread()
    settings, sources = _suite_rows(path)
    if not sources:
        raise SystemExit(f"{path}: no simulated source in it (the spread needs phasing to rerun)")
    res = spread(settings, sources, a.seeds, a.n)
    res["results_file"] = str(path)
    write_record("reference-spread", res, a.out)
    print(f"bench_reference_spread: {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
