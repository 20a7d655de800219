"""How should the 50 ER iterations after the network set their support? Per source, several settings.

The refinement's defaults (:class:`autophase.predict.Refinement`: first support |ρ_NN| > 0.2
max, shrink-wrap every 5 iterations at 0.15, σ 1 voxel) were chosen in session 5 on the
project's own simulator (seeds 12 and 13) and checked on scan 54. Phasing's own shrink-wrap
threshold was later lowered from 0.2 to 0.1 because 0.2 cut away the weak parts of the
second generator's crystals (vortices, phase jumps; docs/phasing.md). This asks the same
of the refinement, on every source apart:

* for each item of each ``--sets`` source (:func:`autophase.testsets.sources.load_source`),
  the network's answer (the external suite's predictor: symmetry averaging above χ² 0.008)
  is computed once;
* phasing with its defaults is the reference, exactly as in ``autophase evaluate --suite
  external`` (one start seeded by the item on simulated sources, the median of
  ``--phasing-starts`` seeds on a measured scan);
* every ``--settings`` refinement runs 50 ER from that same answer; each result is scored
  as the external suite scores (:func:`autophase.external_suite.score_answer`).

Per source and setting the record holds the fraction of items whose χ² is within 1.2× of
phasing's (issue 15's line), the fraction at or below it, median χ², LLK_free, phase error
(with truth) and support size. ``--slices DIR`` writes, for the measured scan, the central
slices of amplitude and phase of each setting's answer (a rim of wrapped phase at the
surface is what made 0.1 lose to 0.15 in session 5; the χ² does not show it).

    .venv/bin/python benchmarks/bench_refinement.py --n 30 \\
        --sets simulator=12,generator2=0,scan54=0 --out benchmarks/results/refinement-choose-cpu.json
    .venv/bin/python benchmarks/bench_refinement.py --n 30 \\
        --sets simulator=24,generator2=4 --out benchmarks/results/refinement-confirm-cpu.json

Settings are written start/every/threshold/σ, e.g. ``0.2/5/0.15/1``, optionally with the
outline ratio (:class:`autophase.predict.Refinement` ``outline_ratio``) as a fifth field:
``0.1/5/0.1/1/1.5``, and the start with no phase on that outline
(:class:`autophase.predict.Refinement` ``zero_phase_start``) as a sixth, 0 or 1:
``0.1/5/0.1/1/1.5/1`` is ``predict``'s default since session 15. Four fields mean the
network's outline alone (ratio 0), as in every record made before the ratio existed; five,
the network's phase alone on the second outline, as in every record made before session 15.
Generator2 set 1 is issue 15's acceptance set: this script refuses it.

``--candidates`` asks another question with the default refinement on one outline
(:func:`one_outline`): does it pay to refine several of the network's answers and keep
the one with the lowest LLK_free (no truth needed)? The candidates are the single pass ("id"), each of the three 180°-rotated copies
mapped back ("r1", "r2", "r3", :mod:`autophase.model.symmetry`), and the 4- and 8-copy
averages ("avg4", "avg8"); each gets 50 ER. The record's "settings" are then rules:
"current" (what ``predict`` does: avg4 where the single pass's χ² > 0.008, else id), each
candidate alone, and "best-of-5" / "best-of-6" by LLK_free after ER (5 and 6 × the ER).

    .venv/bin/python benchmarks/bench_refinement.py --candidates --n 30 \
        --sets generator2=2,simulator=22 --out benchmarks/results/refinement-candidates-cpu.json

``--oracle`` asks where the gap to phasing lives, on simulated sources (a truth is needed):
the default refinement on one outline (:func:`one_outline`) from starts that swap part of
the network's answer for the truth. The network's answer is first aligned to the truth
(twin, sub-voxel shift, phase, scale: :func:`autophase.physics.metrics.align_to`) so that
the two can be mixed voxel by voxel:

* "nn" — the network's answer as ``predict`` refined it before the second outline;
* "nn-aligned" — the same answer moved into the truth's frame (a control: ER does not
  care about twin or shift, so it should score as "nn");
* "true-support" — a flat amplitude (the median of |nn| over its support) on the true
  support (|truth| > 0.1 max), times exp(i arg nn): the network's phase on the true
  outline, without the true amplitude's values inside it;
* "true-amplitude" — |truth| · exp(i arg nn): the network's phase on the true shape;
* "true-phase" — |nn| · exp(i arg truth): the true phase on the network's shape;
* "truth" — the true object: what 50 ER reach from the answer itself, against phasing.

If "true-support" or "true-amplitude" closes the gap the network's shape is what holds ER back; if
"true-phase" does, its phase. "truth" says how far the χ² line can be met at all.

    .venv/bin/python benchmarks/bench_refinement.py --oracle --n 30 \
        --sets generator2=2,generator2=3,simulator=22 --out benchmarks/results/refinement-oracle-cpu.json

``--keep-rules`` asks which run to keep, and when to make the runs on the data's outline: each
item's runs are made once, all of them (:func:`autophase.predict.refinement_runs` with
``outline_ratio`` 1, the predict default otherwise), and each rule ``KEEP@R``
(:data:`KEEP_RULES`: ``keep_by`` χ² or LLK_free, ``outline_ratio`` R, ``llk_free_margin``) keeps what
``refine_prediction`` with that setting would keep: the same runs, the first of them where R
would not make the others (each run is deterministic given its start).

    .venv/bin/python benchmarks/bench_refinement.py --keep-rules --n 30 \
        --sets generator2=0,generator2=2,generator2=3,generator2=4,simulator=12 \
        --out benchmarks/results/refinement-keep-rules-choose-cpu.json
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
from autophase.testsets.sources import ACCEPTANCE_SETS  # noqa: E402

DEFAULT_SETTINGS = "0.2/5/0.15/1,0.2/5/0.1/1,0.1/5/0.1/1,0.2/5/0.05/1,0.2/10/0.1/1,0.2/5/0.1/0.5"


def parse_settings(text: str):
    """"a/b/c/d[/r[/z[/t0[/k[/x[/l]]]]]],…" → [Refinement(a, b, c, d[, r[, z[, t0[, k[, x[, l]]]]]]), …] (validated);
    ValueError naming a bad one. r defaults to 0 (one outline), z (the start with no phase, 0 or 1)
    to 0, t0 (that start's second shrink-wrap threshold, :class:`Refinement`
    ``zero_phase_sw_threshold``) to 0: six fields are session 15's refinement, seven session 16's.
    k (``keep_by``: chi2 or llk_free) defaults to llk_free, what every record before session 17
    kept; x (``outline_chi2``) to 0: ``0.1/5/0.1/1/1.5/1/0.05/chi2/0.05`` was ``predict``'s default
    in session 17; l (``loose_chi2_margin``) to 0: ``0.1/5/0.1/1/1.5/1/0.05/chi2/0.05/0.1`` is
    ``predict``'s default since session 18."""
    from autophase.predict import KEEP_BY, Refinement

    out = []
    for tok in text.split(","):
        parts = tok.strip().split("/")
        if (len(parts) not in (4, 5, 6, 7, 8, 9, 10) or (len(parts) >= 6 and parts[5] not in ("0", "1"))
                or (len(parts) >= 8 and parts[7] not in KEEP_BY)):
            raise ValueError(f"--settings: {tok!r} is not start/every/threshold/sigma"
                             f"[/outline ratio[/0 or 1[/second threshold[/{' or '.join(KEEP_BY)}[/network χ²[/loose margin]]]]]]")
        try:
            r = Refinement(float(parts[0]), int(parts[1]), float(parts[2]), float(parts[3]),
                           float(parts[4]) if len(parts) >= 5 else 0.0,
                           zero_phase_start=len(parts) >= 6 and parts[5] == "1",
                           zero_phase_sw_threshold=float(parts[6]) if len(parts) >= 7 else 0.0,
                           keep_by=parts[7] if len(parts) >= 8 else "llk_free",
                           outline_chi2=float(parts[8]) if len(parts) >= 9 else 0.0,
                           loose_chi2_margin=float(parts[9]) if len(parts) == 10 else 0.0).validate()
        except ValueError as e:
            raise ValueError(f"--settings: {tok!r}: {e}") from None
        out.append((tok.strip(), r))
    return out


def parse_sets(text: str) -> list[tuple[str, int]]:
    """"simulator=12,generator2=0" → [("simulator", 12), …]; refuses issue 15's acceptance set."""
    out = []
    for tok in text.split(","):
        name, _, seed = tok.strip().partition("=")
        if not seed.isdigit():
            raise ValueError(f"--sets: {tok!r} is not source=seed")
        if (name, int(seed)) in ACCEPTANCE_SETS:
            raise ValueError("--sets: generator2 set 1 is issue 15's acceptance set; no setting is chosen on it")
        out.append((name, int(seed)))
    return out


def surface_wraps(obj: np.ndarray, support: np.ndarray) -> float:
    """Fraction of the support's surface voxels whose phase is more than π/2 away from the
    amplitude-weighted mean phase of their interior neighbours (3×3×3).

    A truth-free measure of the artefact a loose support lets in: a rim of wrapped or
    unrelated phase round the crystal (session 5 saw one on scan 54 at threshold 0.1 with
    the older model). obj: (z, y, x) complex; support: bool, same shape.
    """
    from scipy import ndimage

    s = np.asarray(support, bool)
    inner = ndimage.binary_erosion(s)
    surface = s & ~inner
    if not surface.any() or not inner.any():
        return float("nan")
    w = np.where(inner, obj, 0).astype(np.complex64)
    # Σ over interior neighbours of ρ (amplitude-weighted unit phasors), by a 3×3×3 box sum
    nb = ndimage.uniform_filter(w.real, 3, mode="constant") + 1j * ndimage.uniform_filter(w.imag, 3, mode="constant")
    ok = surface & (np.abs(nb) > 0)
    if not ok.any():
        return float("nan")
    d = np.angle(obj[ok] * np.conj(nb[ok]))
    return float(np.mean(np.abs(d) > np.pi / 2))


def _slices(path: Path, answers: dict[str, np.ndarray], title: str) -> None:
    """One column per answer: |ρ| on the central z slice, then the phase on the central z, y
    and x slices (where |ρ| > 0.1 max), cropped to where any answer has amplitude."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(answers)
    shape = next(iter(answers.values())).shape
    occupied = np.zeros(shape, bool)
    for obj in answers.values():
        occupied |= np.abs(obj) > 0.05 * np.abs(obj).max()
    idx = np.nonzero(occupied) if occupied.any() else [np.array([0, n - 1]) for n in shape]
    box = tuple(slice(max(0, int(i.min()) - 3), int(i.max()) + 4) for i in idx)
    c = [n // 2 for n in shape]
    fig, ax = plt.subplots(4, len(names), figsize=(2.4 * len(names), 9.0), squeeze=False)
    for j, k in enumerate(names):
        obj = answers[k]
        ok = np.abs(obj) > 0.1 * np.abs(obj).max()
        cuts = [(c[0], box[1], box[2]), (box[0], c[1], box[2]), (box[0], box[1], c[2])]
        ax[0, j].imshow(np.abs(obj[cuts[0]]), cmap="gray")
        ax[0, j].set_title(k, fontsize=8)
        for r, cut in enumerate(cuts, start=1):
            ax[r, j].imshow(np.where(ok[cut], np.angle(obj[cut]), np.nan), cmap="twilight", vmin=-np.pi, vmax=np.pi)
        for a in ax[:, j]:
            a.set_xticks([])
            a.set_yticks([])
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def one_outline():
    """The refinement of ``--candidates`` and ``--oracle``: the default support rule with no
    second, autocorrelation outline (``Refinement.outline_ratio`` 0). They compare starts, so
    the refinement keeps the one it is given, as when their records were made."""
    from autophase.predict import Refinement

    return Refinement(outline_ratio=0.0)


ORACLE_STARTS = ("nn", "nn-aligned", "true-support", "true-amplitude", "true-phase", "truth")


def oracle_starts(answer: np.ndarray, truth: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{start: (amplitude, phase)} for ``--oracle`` (module docstring), all but "nn" in the
    truth's frame; ``answer`` is the network's object and ``truth`` the true one, (z, y, x)
    complex. The "nn" start is the answer as it is."""
    from autophase.physics.metrics import align_to

    al = align_to(answer, truth).aligned
    t = np.asarray(truth, np.complex128)
    amp = np.abs(al)
    flat = float(np.median(amp[amp > 0.1 * amp.max()]))
    return {"nn": (np.abs(answer), np.angle(answer)),
            "nn-aligned": (amp, np.angle(al)),
            "true-support": (np.where(np.abs(t) > 0.1 * np.abs(t).max(), flat, 0.0), np.angle(al)),
            "true-amplitude": (np.abs(t), np.angle(al)),
            "true-phase": (amp, np.angle(t)),
            "truth": (np.abs(t), np.angle(t))}


#: ``--keep-rules``: (rule, keep_by, outline_ratio, llk_free_margin); "chi2-any" is χ² with no
#: LLK_free margin to speak of
KEEP_RULES = tuple((f"{name}@{r:g}", k, r, m) for name, k, m in
                   (("llk_free", "llk_free", 0.1), ("chi2", "chi2", 0.1), ("chi2-0.2", "chi2", 0.2),
                    ("chi2-any", "chi2", 1e9)) for r in (1.5, 1.2, 1.0))
#: the same with the network's χ² as a second trigger (``outline_chi2``), every run as an equal
#: (``loose_chi2_margin`` 0): "chi2@1.5+nn0.05" was predict's default in session 17
OUTLINE_CHI2_RULES = {"chi2@1.5+nn0.05": 0.05, "chi2@1.5+nn0.03": 0.03, "chi2@1.5+nn0.1": 0.1}
#: session 17's default with the run on a looser support held to a χ² margin (``loose_chi2_margin``):
#: "default" is predict's (session 18)
LOOSE_RULES = {"loose0.02": 0.02, "loose0.05": 0.05, "default": None, "loose0.15": 0.15}


#: ``--keep-rules`` ablations of the default rule (χ², margin 0.1, every run made): the same
#: choice among the runs of one start phase only — what the runs carrying the network's phase
#: reach alone, and what the phase-free runs (which owe the network only the outline's place) do
ABLATIONS = {"network-phase-only@1": ("network",), "no-network-phase@1": ("zero",)}


def keep_rule_refinements() -> list[tuple[str, "Refinement"]]:
    """[(rule, the :class:`autophase.predict.Refinement` it is)] for every rule of ``--keep-rules``
    but the ablations, in the record's order: :data:`KEEP_RULES`, :data:`OUTLINE_CHI2_RULES`,
    :data:`LOOSE_RULES`."""
    from autophase.predict import Refinement

    rules = [(rule, Refinement(outline_ratio=ratio, keep_by=keep, llk_free_margin=margin, outline_chi2=0.0,
                               loose_chi2_margin=0.0))
             for rule, keep, ratio, margin in KEEP_RULES]
    rules += [(rule, Refinement(outline_chi2=x, loose_chi2_margin=0.0)) for rule, x in OUTLINE_CHI2_RULES.items()]
    rules += [(rule, Refinement() if m is None else Refinement(loose_chi2_margin=m)) for rule, m in LOOSE_RULES.items()]
    return rules


def keep_rule_answers(made, mag, meas, truth) -> dict[str, dict]:
    """{rule: scored kept run} of ``--keep-rules`` for one item's runs (``made``, a
    :class:`autophase.predict.RefinementRuns` made with ``outline_ratio`` 1)."""
    from autophase.external_suite import score_answer
    from autophase.predict import Refinement

    scored: dict[int, dict] = {}

    def score(k: int) -> dict:
        """Run k scored once, however many rules keep it."""
        if k not in scored:
            r = made.results[k]
            outline, phase, t = made.runs[k]
            scored[k] = {**score_answer(r.object, mag, meas, truth), "outline": outline, "start_phase": phase,
                         "start_sw_threshold": float(t), "support_voxels": int(np.count_nonzero(r.support)),
                         "surface_wraps": surface_wraps(r.object, r.support), "seconds": float(r.seconds)}
        return scored[k]

    out = {}
    thresholds = [t for *_, t in made.runs]
    for rule, how in keep_rule_refinements():
        n = len(made.results) if how.wants_second_outline(made.volume_ratio, made.network_chi2) else 1
        out[rule] = {**score(how.kept(made.results[:n], thresholds[:n])), "runs_made": n,
                     "volume_ratio": float(made.volume_ratio)}
    for rule, phases in ABLATIONS.items():
        idx = [k for k, run in enumerate(made.runs) if run[1] in phases]
        k = idx[Refinement().kept([made.results[i] for i in idx], [thresholds[i] for i in idx])]
        out[rule] = {**score(k), "runs_made": len(idx), "volume_ratio": float(made.volume_ratio)}
    return out


CANDIDATE_RULES = ("current", "id", "r1", "r2", "r3", "avg4", "avg8", "best-of-5", "best-of-6")


def candidate_answers(predictor, mag, meas, refine: int) -> dict[str, tuple[float, object, object]]:
    """{candidate: (its single-answer χ², its network Prediction, NN + ``refine`` ER Prediction)}
    for one pattern (module docstring, ``--candidates``); the default :class:`Refinement`
    throughout. The network runs once per symmetric copy (8 passes) for all candidates."""
    from autophase.model.symmetry import SYMMETRIES, apply, average, undo
    from autophase.predict import Prediction, _complex, finish_prediction, refine_prediction

    a, ph = predictor._forward(np.stack([apply(mag, g) for g in SYMMETRIES]))
    answers = [_complex(a[k], ph[k]) for k in range(len(SYMMETRIES))]
    back = [undo(x, g) for x, g in zip(answers, SYMMETRIES)]
    cands = {"id": back[0], "r1": back[1], "r2": back[2], "r3": back[3],
             "avg4": average(answers[:4], SYMMETRIES[:4]), "avg8": average(answers, SYMMETRIES)}
    out = {}
    for key, rho in cands.items():
        obj, sup, c2, lf = finish_prediction(np.abs(rho), np.angle(rho), mag, meas, predictor.threshold)
        nn = Prediction(obj, sup, c2, lf)
        out[key] = (c2, nn, refine_prediction(nn, mag, meas, refine, one_outline()))
    return out


def pick_candidates(scored: dict[str, dict], nn_chi2_id: float, average_above: float) -> dict[str, dict]:
    """The rules of ``--candidates`` applied to one pattern's scored candidates."""
    def best(keys):
        return min((scored[k] for k in keys), key=lambda s: s["llk_free"])

    return {"current": scored["avg4"] if nn_chi2_id > average_above else scored["id"],
            **{k: scored[k] for k in ("id", "r1", "r2", "r3", "avg4", "avg8")},
            "best-of-5": best(("id", "r1", "r2", "r3", "avg4")),
            "best-of-6": best(("id", "r1", "r2", "r3", "avg4", "avg8"))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30, help="items per simulated source (default 30)")
    ap.add_argument("--sets", default="simulator=12,generator2=0,scan54=0", help="source=set seed, comma-separated")
    ap.add_argument("--settings", default=DEFAULT_SETTINGS, help="start/every/threshold/sigma, comma-separated")
    ap.add_argument("--model", default=None, help="default: the shipped model")
    ap.add_argument("--refine", type=int, default=50)
    ap.add_argument("--phasing-starts", type=int, default=3, help="seeds of phasing on a measured scan")
    ap.add_argument("--slices", default=None, help="a folder for the measured scans' slice pictures")
    ap.add_argument("--candidates", action="store_true",
                    help="refine several network answers, keep the lowest LLK_free (module docstring)")
    ap.add_argument("--oracle", action="store_true",
                    help="refine starts that swap the network's amplitude or phase for the truth (module docstring)")
    ap.add_argument("--keep-rules", action="store_true",
                    help="make every run once, then keep by each rule of KEEP_RULES (module docstring)")
    ap.add_argument("--note", default="")
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    try:
        settings = parse_settings(a.settings)
        sets = parse_sets(a.sets)
    except ValueError as e:
        ap.error(str(e))
    if a.n < 1 or a.refine < 1:
        ap.error("--n and --refine must be ≥ 1")
    if sum((a.oracle, a.candidates, a.keep_rules)) > 1:
        ap.error("--oracle, --candidates and --keep-rules ask different questions; give one")
    if a.oracle and any(name == "scan54" for name, _ in sets):
        ap.error("--oracle needs a truth: scan54 has none")

    from autophase.external_suite import score_answer
    from autophase.phasing import phase
    from autophase.predict import Prediction, Predictor, finish_prediction, refine_prediction
    from autophase.testsets.sources import load_source

    predictor = Predictor(a.model)
    res = {"model": predictor.meta.get("version"), "n": a.n, "refine_iterations": a.refine,
           "settings": ({k: k for k in CANDIDATE_RULES} if a.candidates else
                        {k: how.to_dict() for k, how in keep_rule_refinements()}
                        | {k: {"ablation_start_phases": list(v)} for k, v in ABLATIONS.items()}
                        if a.keep_rules else
                        {k: k for k in ORACLE_STARTS} if a.oracle else {k: r.to_dict() for k, r in settings}),
           "sets": {}, "note": a.note}
    for name, seed in sets:
        items = load_source(name, a.n if name != "scan54" else 1, seed)
        rows = []
        for it in items:
            mag, meas, truth = it.magnitude, it.measured, it.truth
            t0 = time.perf_counter()
            if a.candidates:
                # every candidate from the same 8 passes; the network's own answer (the
                # "current" rule's start) is one of them, so no separate predict. nn_seconds
                # then covers the passes and every candidate's refinement
                got = candidate_answers(predictor, mag, meas, a.refine)
                current = "avg4" if got["id"][0] > predictor.average_above else "id"
                p = got[current][1]
            else:
                p = predictor.predict(mag[None], [meas], sources=[it.name])[0]
            row = {"name": it.name, "noise_floor_chi2": it.noise_floor_chi2, "nn_seconds": time.perf_counter() - t0,
                   "nn": score_answer(p.object, mag, meas, truth)}
            runs = []
            best_phasing, best_chi2 = None, np.inf
            for j in range(1 if truth is not None else a.phasing_starts):
                r = phase(mag, meas, seed=int(it.seed) + j)
                if r.chi2 < best_chi2:
                    best_phasing, best_chi2 = r.object, r.chi2
                runs.append({**score_answer(r.object, mag, meas, truth), "seed": int(it.seed) + j,
                             "surface_wraps": surface_wraps(r.object, r.support)})
            row["phasing"] = sorted(runs, key=lambda s: s["chi2"])[len(runs) // 2]
            row["refine"] = {}
            answers = {}
            if a.candidates:
                scored = {k: {**score_answer(r.object, mag, meas, truth), "nn_chi2": c2,
                              "support_voxels": int(np.count_nonzero(r.support)),
                              "surface_wraps": surface_wraps(r.object, r.support), "seconds": r.seconds_refine}
                          for k, (c2, _, r) in got.items()}
                row["refine"] = pick_candidates(scored, got["id"][0], predictor.average_above)
            elif a.keep_rules:
                from autophase.predict import Refinement, refinement_runs

                made = refinement_runs(p, mag, meas, a.refine, Refinement(outline_ratio=1.0))
                row["refine"] = keep_rule_answers(made, mag, meas, truth)
            elif a.oracle:
                for key, (amp, ph) in oracle_starts(p.object, truth).items():
                    t0 = time.perf_counter()
                    obj, sup, c2, lf = finish_prediction(amp, ph, mag, meas, predictor.threshold)
                    r = refine_prediction(Prediction(obj, sup, c2, lf), mag, meas, a.refine, one_outline())
                    row["refine"][key] = {**score_answer(r.object, mag, meas, truth), "start_chi2": c2,
                                          "support_voxels": int(np.count_nonzero(r.support)),
                                          "surface_wraps": surface_wraps(r.object, r.support),
                                          "seconds": time.perf_counter() - t0}
            else:
                for key, how in settings:
                    t0 = time.perf_counter()
                    r = refine_prediction(p, mag, meas, a.refine, how)
                    row["refine"][key] = {**score_answer(r.object, mag, meas, truth), **r.kept_start(),
                                          "support_voxels": int(np.count_nonzero(r.support)),
                                          "surface_wraps": surface_wraps(r.object, r.support),
                                          "seconds": time.perf_counter() - t0}
                    answers[key] = r.object
            if a.slices and truth is None:
                answers["phasing"] = best_phasing
                d = Path(a.slices)
                d.mkdir(parents=True, exist_ok=True)
                _slices(d / f"{name}-{seed}-{len(rows)}.png", answers,
                        f"{it.name}: NN + {a.refine} ER, start/every/threshold/σ")
            rows.append(row)
            print(name, seed, it.name, "phasing %.4g" % row["phasing"]["chi2"],
                  {k: round(v["chi2"] / row["phasing"]["chi2"], 3) for k, v in row["refine"].items()}, flush=True)
        summary = {}
        for key in (CANDIDATE_RULES if a.candidates else ORACLE_STARTS if a.oracle else
                    [*(k for k, *_ in KEEP_RULES), *OUTLINE_CHI2_RULES, *LOOSE_RULES, *ABLATIONS] if a.keep_rules else [k for k, _ in settings]):
            ratio = np.array([r["refine"][key]["chi2"] / r["phasing"]["chi2"] for r in rows])
            s = {"fraction_chi2_within_1.2x_phasing": float(np.mean(ratio <= 1.2)),
                 "fraction_chi2_le_phasing": float(np.mean(ratio <= 1.0)),
                 "median_chi2_ratio": float(np.median(ratio)),
                 "median_chi2": float(np.median([r["refine"][key]["chi2"] for r in rows])),
                 "median_llk_free": float(np.median([r["refine"][key]["llk_free"] for r in rows])),
                 "median_support_voxels": float(np.median([r["refine"][key]["support_voxels"] for r in rows])),
                 "median_surface_wraps": float(np.nanmedian([r["refine"][key]["surface_wraps"] for r in rows]))}
            if rows[0]["noise_floor_chi2"] is not None:
                s["median_phase_error_rad"] = float(np.median([r["refine"][key]["phase_error_rad"] for r in rows]))
                s["median_phase_error_ratio_over_phasing"] = s["median_phase_error_rad"] / float(
                    np.median([r["phasing"]["phase_error_rad"] for r in rows]))
            summary[key] = s
        res["sets"][f"{name}={seed}"] = {"summary": summary, "phasing_median_chi2": float(
            np.median([r["phasing"]["chi2"] for r in rows])), "rows": rows}
        for key, s in summary.items():
            print(f"{name}={seed} {key}: within 1.2x {s['fraction_chi2_within_1.2x_phasing']:.0%}, "
                  f"median ratio {s['median_chi2_ratio']:.3f}"
                  + (f", phase error {s['median_phase_error_rad']:.3f} rad" if "median_phase_error_rad" in s else ""),
                  flush=True)
    res["command"] = " ".join(["python", *sys.argv])
    path = write_record("refinement", res, a.out or RESULTS_DIR / "refinement-cpu.json")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
