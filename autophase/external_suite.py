"""The external evaluation suite: the network on data from outside its own simulator (issue 15, item 2).

    autophase evaluate --suite external --out external.json [--n 20]

Sources (:func:`autophase.testsets.sources.load_source`):

* ``generator2`` — the independently written second generator (other shapes, strain
  fields and defects; its own 10⁶ photons), ``n`` crystals of set ``--seed`` (default 1;
  set 0 is the one settings may be chosen on), with truth;
* every shared measured scan the sources module knows (``scan54`` today), no truth: judged
  by χ² and LLK_free against phasing of the same pattern.

Per pattern, four answers scored identically — χ² (eq. 2, fitted scale, measured voxels
only), LLK_free (Poisson deviance on the same ≈5 % free voxels) and, with a truth, the
complex error, phase error (rad, |truth|-weighted where > 0.5 max) and amplitude SSIM after
alignment (:func:`autophase.physics.metrics.compare_to_truth`) — with their wall times:

* ``nn``      — the shipped (or given) network with the project's prediction defaults
  (symmetry averaging above χ² 0.008);
* ``refine``  — NN + ``refine`` (50) ER with the default :class:`autophase.predict.Refinement`;
* ``phasing`` — :func:`autophase.phasing.phase` with the project's defaults
  (``PhasingParams``: 3*(20 ER + 160 HIO + 20 ER), shrink-wrap every 20 at 0.2, one start)
  seeded by the item's seed; on a measured scan ``--phasing-starts`` (default 3) seeds and
  the median figures are reported beside each start's;
* ``sphere``  — a zero-phase uniform centred ball with the crystal's volume: the truth's
  (|truth| > 0.1 max) where there is one, else phasing's support
  (:func:`autophase.evaluate.sphere_baseline`).

Summary per source: medians (and quartiles) per answer and metric, the fraction of
patterns where NN + 50 ER's χ² ≤ 1.2 × phasing's, and the ratios of median phase errors
(NN / phasing, NN + 50 ER / phasing) — the acceptance figures of issue 15.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable

import numpy as np

from .errors import InputError

__all__ = ["SIMULATED_SOURCES", "external_sources", "score_answer", "score_no_truth", "phase_scored", "run_external"]

SIMULATED_SOURCES = ("generator2",)


def external_sources() -> tuple[list[str], list[str]]:
    """(simulated sources with truth, measured scans) known to :mod:`autophase.testsets.sources`."""
    try:
        from .testsets.sources import SOURCES
    except ImportError as e:  # pragma: no cover - part of the package
        raise InputError(f"--suite external needs autophase.testsets.sources ({e})") from None
    sim = [s for s in SOURCES if s in SIMULATED_SOURCES]
    measured = [s for s in SOURCES if s not in ("simulator",) + SIMULATED_SOURCES]
    return sim, measured


def score_no_truth(obj: np.ndarray, mag: np.ndarray, measured: np.ndarray | None) -> dict[str, float]:
    """χ² (fitted scale, measured voxels) and LLK_free of one estimate; no truth needed."""
    from .physics.forward import far_field
    from .physics.metrics import chi2, free_mask, llk_free

    meas = np.ones(mag.shape, bool) if measured is None else np.asarray(measured, bool)
    F = np.abs(far_field(np.asarray(obj, np.complex64))).astype(np.float32)
    m = np.where(meas, mag, 0).astype(np.float32)
    den = float((F[meas].astype(np.float64) ** 2).sum())
    s = float((F[meas] * m[meas]).sum()) / den if den > 0 else 0.0
    free = free_mask(mag.shape, measured=meas)
    return {"chi2": float(chi2(F * s, m, meas)),
            "llk_free": float(llk_free((F.astype(np.float64) * s) ** 2, m.astype(np.float64) ** 2, free))}


def score_answer(obj, mag, measured, truth) -> dict[str, Any]:
    """:func:`score_no_truth`, and with a truth :func:`autophase.physics.metrics.compare_to_truth`
    (complex and phase error, SSIM, after sub-voxel alignment): how every answer is scored."""
    from .physics.metrics import compare_to_truth

    out: dict[str, Any] = score_no_truth(obj, mag, measured)
    if truth is not None:
        out.update({k: (float(v) if not isinstance(v, bool) else v) for k, v in compare_to_truth(obj, truth).items()})
    return out


def phase_scored(mag, measured, seed: int, truth=None) -> tuple[Any, dict[str, Any]]:
    """Phasing with its defaults from ``seed`` → (its :class:`~autophase.phasing.PhasingResult`,
    :func:`score_answer` of its object with ``"seed"`` and ``"seconds"`` added): how every
    phasing reference here is made and scored."""
    from .phasing import phase

    t0 = time.perf_counter()
    res = phase(mag, measured, seed=int(seed))
    return res, {**score_answer(res.object, mag, measured, truth), "seconds": time.perf_counter() - t0,
                 "seed": int(seed)}


def _stats(v) -> dict[str, float]:
    a = np.asarray(v, float)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "mean": float(a.mean())}


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per answer and metric and the issue-15 figures for one source."""
    out: dict[str, Any] = {}
    for m in ("nn", "refine", "phasing", "sphere"):
        have = [r[m] for r in rows if m in r]
        if have:
            out[m] = {k: _stats([h[k] for h in have]) for k in
                      ("chi2", "llk_free", "complex_error", "phase_error_rad", "ssim_box", "seconds") if k in have[0]}
    if "refine" in out:
        from .evaluate import autocorrelation_fraction, zero_phase_fraction

        out["refine"]["autocorrelation_outline_fraction"] = autocorrelation_fraction(rows)
        out["refine"]["zero_phase_start_fraction"] = zero_phase_fraction(rows)
    acc: dict[str, Any] = {"n": len(rows)}
    both = [r for r in rows if "refine" in r and "phasing" in r]
    if both:
        acc["fraction_refine_chi2_within_1.2x_phasing"] = float(np.mean(
            [r["refine"]["chi2"] <= 1.2 * r["phasing"]["chi2"] for r in both]))
        acc["fraction_refine_chi2_le_phasing"] = float(np.mean([r["refine"]["chi2"] <= r["phasing"]["chi2"]
                                                                for r in both]))
    if "phasing" in out and "phase_error_rad" in out["phasing"]:
        ph = out["phasing"]["phase_error_rad"]["median"]
        for m in ("nn", "refine", "sphere"):
            if m in out:
                acc[f"median_phase_error_ratio_{m}_over_phasing"] = out[m]["phase_error_rad"]["median"] / ph
        if "nn" in out and "refine" in out:
            acc["issue15_nn_phase_le_2x"] = acc["median_phase_error_ratio_nn_over_phasing"] <= 2.0
            acc["issue15_refine_phase_le_1.2x"] = acc["median_phase_error_ratio_refine_over_phasing"] <= 1.2
            acc["issue15_refine_chi2_within_1.2x_on_85pct"] = acc.get("fraction_refine_chi2_within_1.2x_phasing",
                                                                      0.0) >= 0.85
    if "nn" in out and "sphere" in out and "phase_error_rad" in out["nn"]:
        acc["nn_beats_sphere_phase_error"] = out["nn"]["phase_error_rad"]["median"] < \
            out["sphere"]["phase_error_rad"]["median"]
    if "refine" in out and "phasing" in out:
        acc["speedup_phasing_over_refine"] = out["phasing"]["seconds"]["median"] / out["refine"]["seconds"]["median"]
    out["acceptance"] = acc
    return out


def run_external(model: str | os.PathLike | None = None, n: int = 20, seed: int = 1, refine: int = 50,
                 phasing_starts: int = 3, sources: list[str] | None = None,
                 progress: Callable[[str, int, int], None] | None = None,
                 symmetries: int | None = None, average_above: float | None = None,
                 refinement: Any = None, backend: str = "torch") -> dict[str, Any]:
    """Run the suite; returns ``{"model", "settings", "sources": {name: {"rows", "summary"}}}``.

    ``symmetries``, ``average_above`` (the :class:`~autophase.predict.Predictor`'s) and
    ``refinement`` (a :class:`~autophase.predict.Refinement`) default to the prediction
    defaults; the settings used are recorded. ``backend``: the network's runtime ("torch",
    or "onnx" as ``predict`` runs on a CPU); the two agree to rounding, and ER, sensitive to
    its start, turns that into a repeat of the suite.
    """
    from .evaluate import sphere_baseline
    from .predict import Predictor, Refinement, default_symmetries, refine_prediction
    from .testsets.sources import load_source

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"--n: the number of simulated crystals per source must be ≥ 1, got {n!r}")
    if refine < 1:
        raise InputError(f"--refine: the external suite needs NN + K ER with K ≥ 1, got {refine}")
    if not 1 <= phasing_starts <= 20:
        raise InputError(f"--phasing-starts: 1 to 20 seeds on a measured scan, got {phasing_starts}")
    sim, measured = external_sources()
    names = sim + measured if sources is None else list(sources)
    bad = [s for s in names if s not in sim + measured]
    if bad:
        raise InputError(f"--sources: unknown external source {bad[0]!r} (known: {', '.join(sim + measured)})")
    symmetries = default_symmetries(refine) if symmetries is None else symmetries
    opts = {k: v for k, v in (("symmetries", symmetries), ("average_above", average_above)) if v is not None}
    predictor = Predictor(model, backend=backend, **opts)
    refinement = Refinement() if refinement is None else refinement
    out: dict[str, Any] = {
        "suite": "external", "model": predictor.meta,
        "settings": {"n": n, "seed": seed, "refine_iterations": refine, "refinement": refinement.to_dict(),
                     "phasing": "autophase.phasing.phase defaults (PhasingParams)", "phasing_starts_measured": phasing_starts,
                     "symmetries": predictor.symmetries, "average_above": predictor.average_above,
                     "backend": predictor.backend},
        "sources": {},
    }
    for name in names:
        is_sim = name in sim
        items = load_source(name, n if is_sim else 1, seed if is_sim else 0)
        rows = []
        for k, it in enumerate(items):
            mag, meas, truth = it.magnitude, it.measured, it.truth
            p = predictor.predict(mag[None], [meas], sources=[it.name])[0]
            row: dict[str, Any] = {"name": it.name, "seed": int(it.seed),
                                   "noise_floor_chi2": it.noise_floor_chi2,
                                   "photons": float((mag[meas].astype(np.float64) ** 2).sum())}
            row["nn"] = {**score_answer(p.object, mag, meas, truth), "seconds": p.seconds_nn, "symmetries": p.symmetries}
            r = refine_prediction(p, mag, meas, refine, refinement)
            row["refine"] = {**score_answer(r.object, mag, meas, truth), "seconds": p.seconds_nn + r.seconds_refine,
                             **r.kept_start()}
            runs = []
            for j in range(1 if is_sim else phasing_starts):
                runs.append(phase_scored(mag, meas, int(it.seed) + j, truth))
            if is_sim:
                row["phasing"] = runs[0][1]
            else:  # the median run's figures; every start's beside them
                order = np.argsort([s["chi2"] for _, s in runs])
                row["phasing"] = runs[int(order[len(order) // 2])][1]
                row["phasing_runs"] = [s for _, s in runs]
            ref = truth if truth is not None else runs[int(np.argsort([s["chi2"] for _, s in runs])[0])][0].object
            row["sphere"] = score_answer(sphere_baseline(ref), mag, meas, truth)
            row["sphere"]["volume_from"] = "truth" if truth is not None else "best phasing run's |ρ| > 0.1 max"
            rows.append(row)
            if progress:
                progress(name, k + 1, len(items))
        out["sources"][name] = {"simulated": is_sim, "rows": rows, "summary": summarise(rows)}
    return out


def run_command(args, out) -> int:
    """``autophase evaluate --suite external``: run, write ``out`` (JSON, atomically), print the figures."""
    import sys

    from .evaluate import write_results
    from .predict import refinement_from_args

    if args.data:
        raise InputError("--data: the external suite brings its own sources; drop --data or --suite external")
    # options the suite cannot honour are refused, not ignored (phasing runs with its own
    # defaults, the network eagerly, one pattern at a time)
    from .evaluate import default_phasing_iterations

    own = default_phasing_iterations()
    if args.phasing is not None and args.phasing != own:
        raise InputError(f"--phasing: the external suite phases with phasing's own defaults ({own} iterations), "
                         f"got {args.phasing}")
    if args.compile:
        raise InputError("--compile: the external suite runs the network eagerly (one pattern at a time)")

    def progress(name, k, n):
        print(f"\revaluate: external {name}: {k}/{n}", end="" if k < n else "\n", file=sys.stderr, flush=True)

    sources = None if args.sources is None else [t.strip() for t in args.sources.split(",") if t.strip()]
    if sources is not None and not sources:
        raise InputError(f"--sources: a comma-separated list of external sources, got {args.sources!r}")
    starts = {} if args.phasing_starts is None else {"phasing_starts": args.phasing_starts}
    res = run_external(args.model, n=args.n, seed=args.seed, refine=args.refine, progress=progress,
                       sources=sources, symmetries=args.symmetries, average_above=args.average_above,
                       refinement=refinement_from_args(args), backend=args.backend or "torch", **starts)
    res["command"] = " ".join(["autophase", *sys.argv[1:]]) if sys.argv[1:2] == ["evaluate"] else None
    write_results(res, out, suite="external")
    for name, d in res["sources"].items():
        s = d["summary"]
        for m in ("nn", "refine", "phasing", "sphere"):
            if m in s:
                x = s[m]
                line = f"evaluate: {name:10s} {m:8s} χ² {x['chi2']['median']:.4g}  LLK_free {x['llk_free']['median']:.4g}"
                if "phase_error_rad" in x:
                    line += f"  phase error {x['phase_error_rad']['median']:.3f} rad"
                if "seconds" in x:
                    line += f"  {x['seconds']['median']:.3g} s"
                print(line)
        for k, v in s["acceptance"].items():
            print(f"evaluate: {name:10s} {k} = {v:.3g}" if isinstance(v, float) else f"evaluate: {name:10s} {k} = {v}")
    print(f"evaluate: external suite results in {out}")
    return 0
