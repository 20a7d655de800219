"""Held-out evaluation: the network alone, the network + K ER, and full iterative phasing.

For each of ``n`` held-out simulated crystals (magnitudes from the dataset, the truth from
:func:`autophase.data.dataset.read_truth` — this module is the only consumer of truth
besides the simulator) the four answers

* ``nn``       — the CNN alone (batched; time = batch time / n; averaged over ``symmetries``
  symmetric copies of each pattern, :mod:`autophase.model.symmetry`),
* ``refine``   — NN + K ER from the prediction (:func:`autophase.predict.refine_prediction`;
  its support as :class:`autophase.predict.Refinement` says),
* ``phasing``  — ``phasing`` iterations of 20 ER + 160 HIO + 20 ER blocks from a random
  start with shrink-wrap (600 = the paper's ``3*(20*ER+160*HIO+20*ER)``),
* ``sphere``   — the trivial baseline: a zero-phase uniform ball with the crystal's own
  volume (|truth| > 0.1 max), centred,

are scored identically: χ² (eq. 2, fitted scale, all measured voxels), LLK_free (the same
free voxels for all), and against the truth after twin/shift/phase/scale alignment
(:func:`autophase.physics.metrics.compare_to_truth`): complex error, phase RMS (rad,
weighted by |truth| where > 0.5 max) and amplitude SSIM in the crystal's box.

Held-out means: when the data are the ones the model was trained on (same description
as in the checkpoint), only the checkpoint's validation indices are used — the network
never took a gradient step on them; any other dataset is held out entirely.

The summary holds medians and quartiles per answer and the acceptance figures of issue 4:
the fraction of crystals where refine's χ² ≤ 1.2 × phasing's, the ratio of median phase
errors, the speed-up, and whether the NN alone beats the sphere.

**Resumable.** With ``rows_file`` (the CLI: ``<out>.rows.jsonl`` beside the results) each
crystal's row is appended as one JSON line, flushed and fsync'd, after a header line with
the settings that determine the rows. A rerun with the same settings reads the rows
there, skips those crystals and appends the rest (a torn last line, from a kill during
the write, is dropped); other settings are refused in one line. The network runs over
fixed blocks of :data:`BLOCK` held-out patterns, so a resumed run predicts each crystal in
the same batch as an uninterrupted one and its figures (all but the timings) are equal.
The results JSON is written only once every crystal has its row.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .errors import InputError

if TYPE_CHECKING:  # evaluate() imports the predictor at call time, as it does its other parts
    from .predict import Refinement

__all__ = ["default_phasing_iterations", "phasing_schedule", "sphere_baseline", "score", "evaluate", "summarise", "RowJournal", "BLOCK"]

METHODS = ("nn", "refine", "phasing", "sphere")


def default_phasing_iterations() -> int:
    """The length of phasing's own default schedule (``PhasingParams().schedule``): what
    ``evaluate --phasing`` runs when not told, and the only length the external suite,
    which phases with those defaults, can honour."""
    from .phasing import PhasingParams
    from .phasing.schedule import total_iterations

    return total_iterations(PhasingParams().schedule)


def phasing_schedule(iterations: int) -> str:
    """``iterations`` as blocks of 20 ER + 160 HIO + 20 ER (600 → the paper's schedule)."""
    reps, rest = divmod(int(iterations), 200)
    parts = []
    if reps:
        parts.append(f"{reps}*(20*ER+160*HIO+20*ER)")
    if rest:
        parts.append(f"{rest}*ER")
    if not parts:
        raise ValueError("phasing needs ≥ 1 iteration")
    return "+".join(parts)


def sphere_baseline(truth: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """Zero-phase uniform ball, centred, with the volume of |truth| > threshold·max (complex64)."""
    from .physics.forward import support_from_amplitude

    vol = float(support_from_amplitude(truth, threshold).sum())
    r = (3 * vol / (4 * np.pi)) ** (1 / 3)
    n = truth.shape
    g = np.indices(n, dtype=np.float32)
    r2 = sum((gi - s // 2) ** 2 for gi, s in zip(g, n))
    return (r2 <= r * r).astype(np.complex64)


def score(obj: np.ndarray, mag: np.ndarray, truth: np.ndarray, measured: np.ndarray | None = None) -> dict[str, float]:
    """χ² (fitted scale), LLK_free and the truth metrics of one estimate."""
    from .physics.forward import far_field
    from .physics.metrics import chi2, compare_to_truth, free_mask, llk_free

    meas = np.ones(mag.shape, bool) if measured is None else measured
    F = np.abs(far_field(obj.astype(np.complex64))).astype(np.float32)
    m = np.where(meas, mag, 0).astype(np.float32)
    den = float((F[meas].astype(np.float64) ** 2).sum())
    s = float((F[meas] * m[meas]).sum()) / den if den > 0 else 0.0
    free = free_mask(mag.shape, measured=meas)
    out = {"chi2": float(chi2(F * s, m, meas)),
           "llk_free": float(llk_free((F.astype(np.float64) * s) ** 2, m.astype(np.float64) ** 2, free))}
    out.update({k: (float(v) if not isinstance(v, bool) else v) for k, v in compare_to_truth(obj, truth).items()})
    return out


def _open(data: str):
    """(dataset, truth_of(i), description) for a run directory or synthetic:N."""
    from .train.data import SyntheticCrystals, describe, open_dataset

    ds = open_dataset([data])
    if isinstance(ds, SyntheticCrystals):
        return ds, lambda i: ds.truth(i), describe(ds)
    from .data.dataset import MagnitudeDataset, read_truth

    if not isinstance(ds, MagnitudeDataset):
        raise InputError(f"{data}: evaluation needs simulated data with a truth (a run directory or synthetic:N)")
    return ds, lambda i: read_truth(data, int(ds.indices[i]))["object"], describe(ds)


COMPILE_FROM = 32  # held-out patterns from which evaluate compiles the network by default
BLOCK = 32  # held-out patterns per network call: fixed blocks, so a resumed run batches alike
#: Test hook: SIGKILL this process after appending this many rows (a real, uncatchable kill).
KILL_ENV = "AUTOPHASE_TEST_KILL_AFTER_ROWS"
ROWS_KIND = "autophase-evaluate-rows-1"


class RowJournal:
    """Append-only JSON-lines file of per-crystal rows, after a header of settings.

    ``rows``: ``{index: row}`` already there (read at construction). Raises InputError when
    the file was left by a run with other ``settings`` or is damaged before its last line.
    """

    def __init__(self, path: str | os.PathLike, settings: dict[str, Any]):
        self.path = Path(path)
        self.rows: dict[int, dict[str, Any]] = {}
        settings = json.loads(json.dumps(settings, default=str))  # as it reads back
        if self.path.exists():
            raw = self.path.read_bytes()
            end = raw.rfind(b"\n") + 1
            if end < len(raw):  # a torn last line (killed during the write): drop it
                with open(self.path, "r+b") as f:
                    f.truncate(end)
            lines = raw[:end].splitlines()
            for n, line in enumerate(lines):
                try:
                    rec = json.loads(line)
                except ValueError:
                    raise InputError(f"{self.path}: line {n + 1} is not JSON; delete the file to start over") from None
                if n == 0:
                    theirs = rec.get("settings", {}) if isinstance(rec, dict) else {}
                    if not isinstance(rec, dict) or rec.get("kind") != ROWS_KIND:
                        raise InputError(f"{self.path}: not an evaluation rows file")
                    diff = [k for k in sorted(set(settings) | set(theirs)) if settings.get(k) != theirs.get(k)]
                    if diff:
                        raise InputError(f"{self.path}: left by an evaluation with other settings "
                                         f"({', '.join(diff)}); rerun with the same options or delete it")
                else:
                    self.rows[int(rec["index"])] = rec
            if not lines:
                self._append({"kind": ROWS_KIND, "settings": settings})
        else:
            self._append({"kind": ROWS_KIND, "settings": settings})

    def _append(self, rec: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(rec, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def append(self, row: dict[str, Any]) -> None:
        """Append one crystal's row durably (flushed and fsync'd before returning)."""
        self._append(row)
        self.rows[int(row["index"])] = row


def held_out_indices(n_total: int, ckpt: dict[str, Any], description: str, n: int) -> tuple[list[int], str]:
    """The first ``n`` held-out indices and a note on where they come from."""
    if ckpt.get("data") == description and ckpt.get("val_indices"):
        idx = [int(i) for i in ckpt["val_indices"]][:n]
        return idx, f"the checkpoint's validation split ({len(ckpt['val_indices'])} patterns)"
    return list(range(min(n, n_total))), "a dataset the model was not trained on"


def evaluate(data: str, model: str | os.PathLike, n: int = 100, refine: int = 50, phasing: int | None = None,
             seed: int = 0, progress: Callable[[int, int], None] | None = None,
             refinement: Refinement | None = None, symmetries: int | None = None,
             compile: bool | None = None, average_above: float | None = None,
             rows_file: str | os.PathLike | None = None) -> dict[str, Any]:
    """Run the comparison on ``n`` held-out crystals; returns the results dict (see module doc).

    ``rows_file``: the resumable journal of rows (see the module doc); None: rows in memory only.
    """
    from .model.checkpoint import read_checkpoint
    from .predict import Predictor, Refinement, default_symmetries

    refinement = refinement or Refinement()
    symmetries = default_symmetries(refine) if symmetries is None else symmetries
    phasing = default_phasing_iterations() if phasing is None else phasing

    ds, truth_of, desc = _open(data)
    opts = {k: v for k, v in (("symmetries", symmetries), ("average_above", average_above)) if v is not None}
    predictor = Predictor(model, **opts)
    ck = read_checkpoint(predictor.path)
    idx, where = held_out_indices(len(ds), ck, desc, n)
    if not idx:
        raise InputError(f"{data}: no held-out patterns to evaluate")
    journal = None
    if rows_file is not None:
        settings = {"data": desc, "model_sha256": predictor.meta.get("sha256"), "indices": [int(i) for i in idx],
                    "refine": refine, "phasing": phasing, "seed": seed, "refinement": refinement.to_dict(),
                    "symmetries": predictor.symmetries, "average_above": predictor.average_above}
        journal = RowJournal(rows_file, settings)
    done: dict[int, dict[str, Any]] = dict(journal.rows) if journal else {}
    # compiled, the one-off compile (≈10 s on 2 cores) is inside the NN time, spread over the
    # patterns: by default only where it is repaid (≈0.3 s saved a pattern → from ~32 patterns)
    if (compile or (compile is None and len(idx) >= COMPILE_FROM)) and len(done) < len(idx):
        predictor.compile()
    kill_after = int(os.environ.get(KILL_ENV) or 0)
    made = 0
    for b0 in range(0, len(idx), BLOCK):
        block = idx[b0:b0 + BLOCK]
        if all(int(i) in done for i in block):
            continue
        mags = np.stack([ds[i][0].numpy() for i in block])
        # shards mark unmeasured voxels (detector gaps, beamstop: simulate --domain) as −1
        measured = mags >= 0
        preds = predictor.predict(mags, measured=list(measured), sources=[f"{desc}#{i}" for i in block])
        for i, mag, meas, p in zip(block, mags, measured, preds):
            if int(i) in done:
                continue
            row = _row(i, np.where(meas, mag, 0), meas, p, truth_of(i), refine, refinement, phasing, seed)
            if journal is not None:
                journal.append(row)
            done[int(i)] = row
            made += 1
            if progress:
                progress(len(done), len(idx))
            if kill_after and made >= kill_after:
                import signal

                os.kill(os.getpid(), signal.SIGKILL)
    rows = [done[int(i)] for i in idx]
    last = (ck.get("history") or [{}])[-1]

    training = {k: last[k] for k in last if k.startswith(("val_", "trivial_", "pred_spread", "epoch", "step",
                                                           "best_trivial"))}
    return {
        "data": desc, "held_out": where, "n": len(rows), "model": predictor.meta,
        "symmetries": predictor.symmetries, "average_above": predictor.average_above,
        "compiled": predictor.compiled, "refine_iterations": refine, "refinement": refinement.to_dict(),
        "phasing_iterations": phasing,
        "phasing_schedule": phasing_schedule(phasing) if phasing > 0 else None,
        "training_last_epoch": training,
        "summary": summarise(rows), "crystals": rows,
    }


def _row(i: int, mag: np.ndarray, measured: np.ndarray, p, truth: np.ndarray, refine: int,
         refinement: Refinement, phasing: int, seed: int) -> dict[str, Any]:
    """One crystal's scores: NN (prediction ``p``), NN + ``refine`` ER, phasing, sphere.

    ``mag`` (z, y, x) √counts, 0 where ``measured`` is False; every method is fitted and
    scored on the measured voxels only.
    """
    from .predict import refine_prediction

    row: dict[str, Any] = {"index": int(i), "photons": float((mag.astype(np.float64) ** 2).sum())}
    row["nn"] = {**score(p.object, mag, truth, measured), "seconds": p.seconds_nn, "symmetries": p.symmetries}
    if refine > 0:
        r = refine_prediction(p, mag, measured, refine, refinement)
        row["refine"] = {**score(r.object, mag, truth, measured), "seconds": p.seconds_nn + r.seconds_refine,
                         **r.kept_start()}
    if phasing > 0:
        from .phasing import phase

        t0 = time.perf_counter()
        res = phase(mag, measured, schedule=phasing_schedule(phasing), seed=seed + int(i))
        row["phasing"] = {**score(res.object, mag, truth, measured), "seconds": time.perf_counter() - t0}
    row["sphere"] = score(sphere_baseline(truth), mag, truth, measured)
    return row


def _stats(v: list[float]) -> dict[str, float]:
    a = np.asarray(v, float)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"median": float(med), "q1": float(q1), "q3": float(q3), "mean": float(a.mean())}


def _kept_fraction(rows: list[dict[str, Any]], key: str, value: str) -> float:
    """The fraction of refined rows whose ``refine[key]`` is ``value`` (rows written before
    the key existed count as not)."""
    got = [r["refine"].get(key) == value for r in rows if "refine" in r]
    return float(np.mean(got)) if got else 0.0


def autocorrelation_fraction(rows: list[dict[str, Any]]) -> float:
    """The fraction of refined rows that kept the autocorrelation outline
    (:class:`~autophase.predict.Refinement` ``outline_ratio``)."""
    return _kept_fraction(rows, "outline", "autocorrelation")


def zero_phase_fraction(rows: list[dict[str, Any]]) -> float:
    """The fraction of refined rows that kept the start with no phase
    (:class:`~autophase.predict.Refinement` ``zero_phase_start``)."""
    return _kept_fraction(rows, "start_phase", "zero")


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians/quartiles per answer and metric, and the acceptance figures."""
    out: dict[str, Any] = {}
    for m in METHODS:
        have = [r[m] for r in rows if m in r]
        if not have:
            continue
        out[m] = {k: _stats([h[k] for h in have])
                  for k in ("chi2", "llk_free", "complex_error", "phase_error_rad", "ssim_box", "seconds")
                  if k in have[0]}
    if "nn" in out:
        out["nn"]["averaged_fraction"] = float(np.mean([r["nn"].get("symmetries", 1) > 1 for r in rows
                                                        if "nn" in r]))
    if "refine" in out:
        out["refine"]["autocorrelation_outline_fraction"] = autocorrelation_fraction(rows)
        out["refine"]["zero_phase_start_fraction"] = zero_phase_fraction(rows)
    acc: dict[str, Any] = {}
    if "nn" in out and "sphere" in out:
        acc["nn_beats_sphere_phase_error"] = (out["nn"]["phase_error_rad"]["median"]
                                              < out["sphere"]["phase_error_rad"]["median"])
        acc["nn_beats_sphere_complex_error"] = (out["nn"]["complex_error"]["median"]
                                                < out["sphere"]["complex_error"]["median"])
    if "refine" in out and "phasing" in out:
        ok = [r["refine"]["chi2"] <= 1.2 * r["phasing"]["chi2"] for r in rows if "refine" in r and "phasing" in r]
        acc["fraction_refine_chi2_within_1.2x_phasing"] = float(np.mean(ok))
        acc["median_phase_error_ratio_refine_over_phasing"] = (out["refine"]["phase_error_rad"]["median"]
                                                               / out["phasing"]["phase_error_rad"]["median"])
        acc["speedup_phasing_over_refine"] = (out["phasing"]["seconds"]["median"]
                                              / out["refine"]["seconds"]["median"])
        acc["passes_issue4"] = bool(acc["fraction_refine_chi2_within_1.2x_phasing"] >= 0.8
                                    and acc["median_phase_error_ratio_refine_over_phasing"] <= 1.5
                                    and acc["speedup_phasing_over_refine"] >= 3
                                    and acc.get("nn_beats_sphere_phase_error", False)
                                    and acc.get("nn_beats_sphere_complex_error", False))
    if "nn" in out and "phasing" in out:
        acc["speedup_phasing_over_nn"] = out["phasing"]["seconds"]["median"] / out["nn"]["seconds"]["median"]
    out["acceptance"] = acc
    return out


def write_results(results: dict[str, Any], path: str | os.PathLike, suite: str = "evaluate",
                  command: str | None = None) -> Path:
    """Write ``results`` (:func:`evaluate`'s dict, or the external suite's) as a typed
    record (:mod:`autophase.results`): per method the median χ², phase and complex error,
    the acceptance figures with their targets, and one distribution per method × metric
    over the crystals; the dict itself is kept under ``details``."""
    import sys

    from .results.io import write_result
    from .results.suites import build

    if command is None:
        c = results.get("command")
        command = c if isinstance(c, str) and c else " ".join(sys.argv)
    return write_result(build(suite, results, command=command), path)
