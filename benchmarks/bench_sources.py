"""Phasing defaults on three sources (issue 14): the project's simulator, the second generator, scan 54.

For every item of every source, with the schedule ``3*(20*ER+160*HIO+20*ER)``:

* ours at shrink-wrap thresholds 0.1, 0.15, 0.2 (σ 1, every 20; 0.2 is the current default);
* ``llk_select``: of those three runs (same random start, same free voxels) the one with
  the lowest LLK_free — what ``PhasingParams(sw_threshold=(0.1, 0.15, 0.2))`` returns; the
  script checks that equality with the real call on the first held-out item of each source;
* ``chosen``: the single threshold chosen on the *tuning* items (lowest median complex
  error over both simulated sources' tuning items), reported on the held-out items;
* cohere-core (numpy) at its recommended settings with the same schedule
  (``cohere_recommended``: Gaussian shrink-wrap every iteration, threshold 0.1, σ 1.0,
  HIO β 0.9, twin trigger at iteration 2, support half the array — cohere's documented
  example configuration) and at our settings (``cohere_ours``: shrink-wrap every 20,
  threshold 0.2, σ 1.0, β 0.9).

Figures per row: χ² (eq. 2 over the measured voxels, with the least-squares scale, the
same rule for every program), χ²/noise floor and the fraction of crystals inside
[0.9, 1.1] × the floor (simulated sources), median complex and phase error against the
truth (:func:`autophase.physics.metrics.compare_to_truth`), seconds per pattern.

Splits: tuning items (simulator seed 20, generator2 seed 0, scan 54 phasing seeds 100…)
choose the threshold; acceptance figures come from the disjoint held-out items
(simulator seed 21, generator2 seed 1, scan 54 phasing seeds 0…), which nothing was tuned on.

Speed: ``autophase phase PATTERN -o x.npz --no-plot`` as a subprocess against a whole
cohere-core numpy process (``benchmarks/cohere_process.py``: load, phase with the same
schedule and shrink-wrap, save), side by side, alternating, ``--speed-repeats`` times
each, cold (empty FFTW-wisdom and numba caches: fresh ``HOME``/``NUMBA_CACHE_DIR``) and
warm (caches kept from a first, untimed run).

Run (the lead's rerun on a quiet machine; timings on a shared machine are noisy)::

    .venv/bin/python benchmarks/bench_sources.py --n-tune 4 --n-test 10 --scan-seeds 3
    .venv/bin/python benchmarks/bench_sources.py --quick          # 1 item per source, 2 speed repeats

The session's own record was made as two concurrent processes (quality, then speed into a
file of its own) to fit the time; see docs/phasing.md, "Defaults on three sources".
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from autophase.bench.record import RESULTS_DIR, write_record
from autophase.phasing import phase
from autophase.physics import metrics
from autophase.physics.forward import magnitude
from autophase.testsets.sources import Item, load_source

REPO = Path(__file__).resolve().parents[1]
SCHEDULE = "3*(20*ER+160*HIO+20*ER)"
SW_EVERY = 20
THRESHOLDS = (0.1, 0.15, 0.2)
DEFAULT_T = 0.2
TUNE_SEEDS = {"simulator": 20, "generator2": 0, "scan54": 100}
TEST_SEEDS = {"simulator": 21, "generator2": 1, "scan54": 0}
COHERE = {
    "cohere_recommended": {"shrink_wrap_trigger": [1, 1], "shrink_wrap_threshold": 0.1,
                           "shrink_wrap_gauss_sigma": 1.0, "twin_trigger": [2]},
    "cohere_ours": {"shrink_wrap_trigger": [1, SW_EVERY], "shrink_wrap_threshold": DEFAULT_T,
                    "shrink_wrap_gauss_sigma": 1.0},
}
BAND = (0.9, 1.1)


def cohere_params(kind: str, schedule: str = SCHEDULE) -> dict:
    """cohere-core's reconstruction parameters for row ``kind`` (see the module docstring)."""
    return {"algorithm_sequence": schedule, "hio_beta": 0.9, "shrink_wrap_type": "GAUSS",
            "initial_support_area": [0.5, 0.5, 0.5], **COHERE[kind]}


def run_cohere(mag: np.ndarray, params: dict, seed: int, workdir: str) -> tuple[np.ndarray, float]:
    """cohere-core numpy on ``mag`` (√counts, centred); (object in our convention, seconds).

    cohere's far field is the inverse FFT of a corner-centred object, so its image is the
    complex conjugate of ours; it is conjugated and ``fftshift``-ed before comparison.
    Unmeasured voxels (scan 54's mask) reach cohere as zeros: it has no mask input.
    """
    import cohere_core.controller.phasing as coh

    path = os.path.join(workdir, "data.npy")
    np.save(path, np.asarray(mag, np.float32))
    np.random.seed(seed)
    with contextlib.redirect_stdout(io.StringIO()):
        t0 = time.perf_counter()
        rec = coh.create_rec(dict(params), path, "np", -1, debug=True)
        rec.iterate()
        img = np.asarray(rec.get_image())
        dt = time.perf_counter() - t0
    return np.conj(np.fft.fftshift(img)).astype(np.complex64), dt


def figures(obj: np.ndarray, item: Item, seconds: float) -> dict:
    """χ² (fit scale, measured voxels), its ratio to the noise floor, truth metrics, seconds."""
    out = {"chi2": float(metrics.chi2(magnitude(obj.astype(np.complex64)), item.magnitude, item.measured,
                                      fit_scale=True)),
           "seconds": float(seconds)}
    if item.truth is not None:
        out["chi2_over_floor"] = out["chi2"] / item.noise_floor_chi2
        out.update(metrics.compare_to_truth(obj, item.truth))
    return out


def run_item(item: Item, with_cohere: bool, check_api: bool, workdir: str, sigma=1.0) -> dict:
    """Every row on one item (ours with shrink-wrap σ ``sigma``: voxels, or a ramp "a:b")."""
    row: dict = {"name": item.name, "seed": item.seed, "noise_floor_chi2": item.noise_floor_chi2}
    runs = {}
    for t in THRESHOLDS:
        r = phase(item.magnitude, item.measured, schedule=SCHEDULE, shrink_wrap_every=SW_EVERY, sw_sigma=sigma,
                  sw_threshold=t, seed=item.seed, workers=1)
        runs[t] = r
        row[f"ours_t{t:g}"] = {**figures(r.object, item, r.seconds), "llk_free": float(r.llk_free),
                               "phasing_chi2": float(r.chi2)}
    best = min(THRESHOLDS, key=lambda t: runs[t].llk_free)
    row["llk_select"] = {**row[f"ours_t{best:g}"], "seconds": sum(runs[t].seconds for t in THRESHOLDS),
                         "selected_threshold": best}
    if check_api:
        r = phase(item.magnitude, item.measured, schedule=SCHEDULE, shrink_wrap_every=SW_EVERY, sw_sigma=sigma,
                  sw_threshold=THRESHOLDS, seed=item.seed, workers=1)
        row["llk_select"]["api_check"] = {
            "api_selected": r.selected.get("sw_threshold"),
            "same_object": bool(np.array_equal(r.object, runs[best].object))}
    if with_cohere:
        for kind in COHERE:
            obj, dt = run_cohere(item.magnitude, cohere_params(kind), item.seed, workdir)
            row[kind] = figures(obj, item, dt)
    return row


def summarise(rows: list[dict], keys: list[str]) -> dict:
    """Per row kind: medians, and for simulated items the χ²/floor band fraction."""
    out = {}
    for k in keys:
        rs = [r[k] for r in rows if k in r]
        if not rs:
            continue
        s = {"n": len(rs), "median_chi2": statistics.median(x["chi2"] for x in rs),
             "median_seconds": statistics.median(x["seconds"] for x in rs)}
        if "chi2_over_floor" in rs[0]:
            ratios = [x["chi2_over_floor"] for x in rs]
            s.update(median_chi2_over_floor=statistics.median(ratios),
                     fraction_in_band=sum(BAND[0] <= v <= BAND[1] for v in ratios) / len(ratios),
                     median_complex_error=statistics.median(x["complex_error"] for x in rs),
                     median_phase_error_rad=statistics.median(x["phase_error_rad"] for x in rs))
        if k == "llk_select":
            s["selected_thresholds"] = [x["selected_threshold"] for x in rs]
        out[k] = s
    return out


# ----------------------------------------------------------------------------- speed
def _timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}")
    return dt


def speed(item: Item, repeats: int, workdir: str, ours_extra: list[str] | None = None) -> dict:
    """Whole processes, ours vs cohere-core numpy, alternating; cold and warm caches."""
    pattern = Path(workdir) / "speed_pattern.npz"
    np.savez(pattern, data=item.counts)
    ours = [str(REPO / ".venv" / "bin" / "autophase"), "phase", str(pattern), "-o", str(Path(workdir) / "x.npz"),
            "--no-plot"] + list(ours_extra or [])
    if not Path(ours[0]).exists():
        ours = [sys.executable, "-m", "autophase.cli"] + ours[1:]
    theirs = [sys.executable, str(REPO / "benchmarks" / "cohere_process.py"), str(pattern),
              str(Path(workdir) / "cohere_image.npy"), "--schedule", SCHEDULE, "--sw-every", str(SW_EVERY),
              "--sw-threshold", str(DEFAULT_T)]

    def env_with(cache: Path) -> dict:
        cache.mkdir(parents=True, exist_ok=True)
        return dict(os.environ, HOME=str(cache), XDG_CACHE_HOME=str(cache / ".cache"),
                    NUMBA_CACHE_DIR=str(cache / "numba"))

    out: dict = {"pattern": item.name, "repeats": repeats,
                 "ours_command": " ".join(["autophase"] + ours[1:]), "cohere_command": " ".join(theirs[1:])}
    warm = {"ours": env_with(Path(workdir) / "warm_ours"), "cohere": env_with(Path(workdir) / "warm_cohere")}
    _timed(ours, warm["ours"])      # fill the warm caches (untimed)
    _timed(theirs, warm["cohere"])
    for mode in ("cold", "warm"):
        t_ours, t_coh = [], []
        for k in range(repeats):
            if mode == "cold":
                e_o = env_with(Path(workdir) / f"cold_ours_{k}")
                e_c = env_with(Path(workdir) / f"cold_cohere_{k}")
            else:
                e_o, e_c = warm["ours"], warm["cohere"]
            t_ours.append(_timed(ours, e_o))
            t_coh.append(_timed(theirs, e_c))
            print(f"  speed {mode} {k}: ours {t_ours[-1]:.2f} s, cohere {t_coh[-1]:.2f} s", flush=True)
        ratios = [c / o for o, c in zip(t_ours, t_coh)]
        out[mode] = {"ours_s": t_ours, "cohere_s": t_coh,
                     "ours_median_s": statistics.median(t_ours), "cohere_median_s": statistics.median(t_coh),
                     "ours_spread_s": [min(t_ours), max(t_ours)], "cohere_spread_s": [min(t_coh), max(t_coh)],
                     "speedup_median": statistics.median(t_coh) / statistics.median(t_ours),
                     "speedup_pairs": ratios, "speedup_min_pair": min(ratios)}
    return out


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-tune", type=int, default=4, help="tuning crystals per simulated source")
    ap.add_argument("--n-test", type=int, default=10, help="held-out crystals per simulated source")
    ap.add_argument("--scan-seeds", type=int, default=3, help="held-out phasing seeds on scan 54 (tuning: 2)")
    ap.add_argument("--speed-repeats", type=int, default=5)
    ap.add_argument("--sources", default="simulator,generator2,scan54")
    ap.add_argument("--no-cohere", action="store_true")
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--speed-only", action="store_true", help="only the whole-process speed row")
    ap.add_argument("--held-out-seeds", metavar="SRC=SEED,...",
                    help="other held-out sets, e.g. simulator=22,generator2=2 (with --chosen, skips tuning)")
    ap.add_argument("--ours-args", help="extra options for the timed 'autophase phase' process, e.g. "
                    "'--sw-threshold 0.1,0.15,0.2' (cohere's process is unchanged)")
    ap.add_argument("--sigma", default="1.0", help="our shrink-wrap σ: voxels, or a decreasing ramp 'a:b' "
                    "(cohere's rows keep σ 1)")
    ap.add_argument("--chosen", type=float, help="the threshold chosen on an earlier run's tuning split")
    ap.add_argument("--quick", action="store_true", help="1 item per source and 2 speed repeats")
    ap.add_argument("--out", default=str(RESULTS_DIR / "sources-cpu.json"))
    ap.add_argument("--markdown", metavar="JSON", help="print a written record's tables as markdown and exit")
    args = ap.parse_args(argv)
    if args.markdown:
        from autophase.results import read_result

        print(markdown(read_result(args.markdown).details))
        return 0
    if args.quick:
        args.n_tune, args.n_test, args.scan_seeds, args.speed_repeats = 1, 1, 1, 2
    for name in ("n_tune", "n_test", "scan_seeds", "speed_repeats"):
        if getattr(args, name) < 1:
            print(f"--{name.replace('_', '-')} must be ≥ 1", file=sys.stderr)
            return 2
    test_seeds = dict(TEST_SEEDS)
    if args.held_out_seeds:
        try:
            for kv in args.held_out_seeds.split(","):
                k, v = kv.split("=")
                if k not in test_seeds:
                    raise ValueError(k)
                test_seeds[k] = int(v)
        except ValueError:
            print(f"--held-out-seeds: expected SRC=SEED,... with SRC in {list(TEST_SEEDS)}, got "
                  f"{args.held_out_seeds!r}", file=sys.stderr)
            return 2
        if any(test_seeds[k] == TUNE_SEEDS[k] for k in test_seeds):
            print("--held-out-seeds: a held-out seed equals a tuning seed", file=sys.stderr)
            return 2
    if args.chosen is not None and args.chosen not in THRESHOLDS:
        print(f"--chosen must be one of {THRESHOLDS}", file=sys.stderr)
        return 2
    try:
        sigma = args.sigma if ":" in args.sigma else float(args.sigma)
        from autophase.phasing import PhasingParams

        PhasingParams(sw_sigma=sigma).validate()
    except ValueError as e:
        print(f"--sigma: {e}", file=sys.stderr)
        return 2
    sources = [s for s in args.sources.split(",") if s]
    bad = [s for s in sources if s not in TEST_SEEDS]
    if bad:
        print(f"--sources: unknown {bad} (simulator, generator2, scan54)", file=sys.stderr)
        return 2

    results: dict = {
        "schedule": SCHEDULE, "shrink_wrap_every": SW_EVERY, "thresholds": list(THRESHOLDS),
        "current_default": {"sw_threshold": DEFAULT_T, "sw_sigma": 1.0}, "ours_sw_sigma": args.sigma,
        "cohere_settings": {k: cohere_params(k) for k in COHERE},
        "chi2_rule": "eq. 2 over measured voxels with the least-squares scale, same for every program",
        "band": list(BAND), "photons_simulated": 1e6,
        "splits": {"tune": {s: TUNE_SEEDS[s] for s in sources}, "held_out": {s: test_seeds[s] for s in sources},
                   "note": "the threshold is chosen on 'tune' only; acceptance figures are the 'held_out' tables"},
        "machine_note": "shared 2-core machine, several other jobs running: timings are noisy; rerun quietly with "
                        "the command below",
        "command": "python benchmarks/bench_sources.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "tune": {}, "held_out": {},
    }
    wd = tempfile.mkdtemp(prefix="bench_sources_")
    if args.speed_only:
        sources = []
        for k in ("tune", "held_out", "splits", "cohere_settings", "thresholds", "band", "photons_simulated"):
            results.pop(k)

    def save():
        write_record("sources", results, args.out)

    # ---------------------------------------------------------------- tuning split (ours only)
    for src in (sources if args.chosen is None else []):
        n = args.n_tune if src != "scan54" else 2
        items = load_source(src, n, TUNE_SEEDS[src])
        rows = []
        for it in items:
            t0 = time.perf_counter()
            rows.append(run_item(it, with_cohere=False, check_api=False, workdir=wd, sigma=sigma))
            print(f"tune {it.name}: " + _line(rows[-1]) + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
        keys = [f"ours_t{t:g}" for t in THRESHOLDS] + ["llk_select"]
        results["tune"][src] = {"items": rows, "summary": summarise(rows, keys)}
        save()
    sim = [s for s in sources if s != "scan54"]
    if args.chosen is not None:
        chosen = args.chosen
        results["chosen"] = {"sw_threshold": chosen, "rule": "given (--chosen), from an earlier run's tuning split"}
    elif sim and not args.speed_only:
        score = {t: statistics.median(r[f"ours_t{t:g}"]["complex_error"]
                                      for s in sim for r in results["tune"][s]["items"]) for t in THRESHOLDS}
        chosen = min(THRESHOLDS, key=lambda t: score[t])
        results["chosen"] = {"sw_threshold": chosen, "rule": "lowest median complex error over the tuning items "
                             "of the simulated sources", "median_complex_error_by_threshold": score}
    else:
        chosen = DEFAULT_T
    if not args.speed_only:
        print(f"chosen threshold ({results['chosen']['rule'] if 'chosen' in results else 'default'}): {chosen}",
              flush=True)

    # ---------------------------------------------------------------- held-out split (acceptance)
    for src in sources:
        n = args.n_test if src != "scan54" else args.scan_seeds
        items = load_source(src, n, test_seeds[src])
        rows = []
        for k, it in enumerate(items):
            t0 = time.perf_counter()
            row = run_item(it, with_cohere=not args.no_cohere, check_api=(k == 0), workdir=wd, sigma=sigma)
            row["chosen"] = dict(row[f"ours_t{chosen:g}"], sw_threshold=chosen)
            rows.append(row)
            print(f"held-out {it.name}: " + _line(rows[-1]) + f" ({time.perf_counter() - t0:.0f} s)", flush=True)
            keys = [f"ours_t{t:g}" for t in THRESHOLDS] + ["llk_select", "chosen"] + list(COHERE)
            results["held_out"][src] = {"items": rows, "summary": summarise(rows, keys)}
            save()
        _table(src, results["held_out"][src]["summary"])

    # ---------------------------------------------------------------- whole-process speed
    if not args.no_speed:
        it = load_source("simulator", 1, TEST_SEEDS["simulator"])[0]
        print("speed: whole processes on", it.name, flush=True)
        results["speed"] = speed(it, args.speed_repeats, wd, args.ours_args.split() if args.ours_args else None)
        sp = results["speed"]
        print(f"speed: cold {sp['cold']['speedup_median']:.2f}×, warm {sp['warm']['speedup_median']:.2f}× "
              f"(ours {sp['warm']['ours_median_s']:.2f} s, cohere {sp['warm']['cohere_median_s']:.2f} s warm)")
    save()
    print(f"wrote {args.out}")
    return 0


ROW_LABELS = {"ours_t0.1": "autophase, threshold 0.1", "ours_t0.15": "autophase, threshold 0.15",
              "ours_t0.2": "autophase, threshold 0.2 (current default)",
              "llk_select": "autophase, best of 0.1/0.15/0.2 by LLK_free", "chosen": "autophase, threshold chosen on tuning",
              "cohere_recommended": "cohere-core, recommended (every-iteration SW, 0.1)",
              "cohere_ours": "cohere-core, our settings (SW every 20, 0.2)"}


def markdown(results: dict) -> str:
    """The per-source tables (held-out and tuning splits) and the speed row, as markdown."""
    out = []
    for split in ("held_out", "tune"):
        for src, block in results.get(split, {}).items():
            summ = block["summary"]
            out.append(f"**{src}, {split.replace('_', '-')} ({next(iter(summ.values()))['n']} items)**\n")
            truth = any("median_complex_error" in s for s in summ.values())
            head = "| row | median χ² |" + (" χ²/floor | in [0.9, 1.1] | complex err | phase err (rad) |" if truth
                                             else "") + " s/pattern |"
            out += [head, "|" + "---|" * (head.count("|") - 1)]
            for k, s in summ.items():
                line = f"| {ROW_LABELS.get(k, k)} | {s['median_chi2']:.5f} |"
                if truth:
                    line += (f" {s['median_chi2_over_floor']:.3f} | {100 * s['fraction_in_band']:.0f} % | "
                             f"{s['median_complex_error']:.4f} | {s['median_phase_error_rad']:.3f} |")
                out.append(line + f" {s['median_seconds']:.1f} |")
            if "llk_select" in summ:
                out.append(f"\nLLK_free picked thresholds {summ['llk_select']['selected_thresholds']}.")
            out.append("")
    sp = results.get("speed")
    if sp:
        out.append("| whole process | ours median (min–max) s | cohere median (min–max) s | speed-up (median) | worst pair |")
        out.append("|---|---|---|---|---|")
        for mode in ("cold", "warm"):
            m = sp[mode]
            out.append(f"| {mode} | {m['ours_median_s']:.2f} ({m['ours_spread_s'][0]:.2f}–{m['ours_spread_s'][1]:.2f}) | "
                       f"{m['cohere_median_s']:.2f} ({m['cohere_spread_s'][0]:.2f}–{m['cohere_spread_s'][1]:.2f}) | "
                       f"{m['speedup_median']:.2f}× | {m['speedup_min_pair']:.2f}× |")
    return "\n".join(out)


def _line(row: dict) -> str:
    parts = []
    for k, v in row.items():
        if isinstance(v, dict) and "chi2" in v:
            s = f"{k} χ² {v['chi2']:.4g}"
            if "complex_error" in v:
                s += f" /floor {v['chi2_over_floor']:.2f} cerr {v['complex_error']:.3f} φ {v['phase_error_rad']:.3f}"
            parts.append(s)
    return " | ".join(parts)


def _table(src: str, summary: dict) -> None:
    print(f"\n{src} (held out): row | n | median χ² | χ²/floor | in band | complex err | phase err | s/pattern")
    for k, s in summary.items():
        print(f"  {k:20s} {s['n']:3d} {s['median_chi2']:.5f} "
              + (f"{s['median_chi2_over_floor']:.3f} {s['fraction_in_band']:.2f} {s['median_complex_error']:.4f} "
                 f"{s['median_phase_error_rad']:.4f} " if "median_complex_error" in s else "- - - - ")
              + f"{s['median_seconds']:.2f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
