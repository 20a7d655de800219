"""Iterative phase retrieval: one call from measured magnitudes to a complex object.

:func:`phase` runs a schedule of error reduction (ER), hybrid input-output (HIO,
Fienup 1982) and relaxed averaged alternating reflections (RAAR, Luke 2005) iterations
with Gaussian shrink-wrap (Marchesini 2003) on one pattern; :func:`phase_batch` on B
patterns at once. Both return :class:`PhasingResult` — the same interface the network's
prediction returns, so refinement, benchmarks and reports compare like with like.

The iterations, with F the unitary far field (:mod:`autophase.physics.forward`), M the
measured magnitude, S the support and ρ' = P_M ρ the Fourier step:

    Fourier step   F' = M·F(ρ)/|F(ρ)| on constrained voxels, F(ρ) elsewhere;  ρ' = F⁻¹(F')
    ER             ρ ← S·ρ'
    HIO            ρ ← S·ρ' + (1 − S)·(ρ − β ρ')
    RAAR           ρ ← S·ρ' + (1 − S)·(β ρ + (1 − 2β) ρ')   [= β/2 (R_S R_M + I) ρ + (1 − β) P_M ρ]
    shrink-wrap    S ← (|ρ| ∗ G_σ) > t·max   every K iterations

Voxels that are unmeasured (``measured`` False, NaN or negative input) and the ≈5 %
free-LLK voxels are *free*: the Fourier step leaves them unconstrained, and the free
voxels then measure overfitting (LLK_free, χ²_free).

Runs, selection and averaging. ``sw_threshold`` and ``sw_sigma`` may each list several
candidates (σ may also be a decreasing ramp ``"3:1"``, see :func:`sigma_table`); every
candidate × start is one run, all from the same ``starts`` random starts, so candidates
differ only by their shrink-wrap. Runs that failed are dropped (:func:`failed_runs`: NaN
figures, an empty support, or χ² above ``drop_factor`` × the median χ² of the candidate's
runs). The run with the lowest LLK_free (the data's own, truth-free measure, Favre-Nicolin
et al. 2020; LLK when there are no free voxels) selects the candidate; with ``best_k`` = K
the K best runs of that candidate are aligned to the best one (twin, sub-voxel shift,
global phase and scale: :func:`autophase.physics.metrics.align_to`) and averaged
(:func:`average_runs`), as PyNX and cohere do.

Engines: ``"cpu"`` (pyFFTW + numba, the fast path on a CPU; runs spread over threads) and
``"torch"`` (all runs of a pattern in one batch, CUDA when present). From the same start
they agree to float tolerance.
"""
from __future__ import annotations

import dataclasses
import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..physics import metrics
from ..physics.forward import fft_workers, support_from_amplitude
from . import checks
from .checks import ParamError
from .schedule import expand, parse_schedule
from .support import gaussian_transfer, initial_support

__all__ = ["PhasingResult", "PhasingParams", "ParamError", "phase", "phase_batch", "phase_each", "prepare",
           "sigma_table", "failed_runs", "average_runs"]


@dataclass(frozen=True)
class PhasingParams:
    """What to run. ``support`` is a box fraction, ``"auto"`` (autocorrelation) or a bool array.

    sw_threshold : one threshold t (0 < t < 1) or a tuple of candidates.
    sw_sigma : one σ in voxels, a ramp ``"START:END"`` or ``(START, END)`` (σ decreasing
        linearly over the shrink-wrap updates, :func:`sigma_table`), or a tuple of such
        candidates, e.g. ``(1.0, "3:1")``.
    starts : random starts per candidate; best_k : how many of the best (by LLK_free) are
        aligned and averaged (1 ≤ best_k ≤ starts; 1 = keep the best run as it is).
    drop_factor : a run whose χ² exceeds drop_factor × the median χ² of its candidate's
        runs counts as failed and is dropped (as are NaN figures and empty supports).
    average_within : of the best_k runs, only those with χ² ≤ average_within × the best
        run's χ² are averaged: a run that converged to another, worse solution is not a
        failure but would pull the average away (``inf``: average all best_k).

    :meth:`validate` checks every field (called by :func:`phase`, :func:`phase_batch`
    and the CLI before anything runs).
    """

    schedule: str = "3*(20*ER+160*HIO+20*ER)"
    beta: float = 0.9
    shrink_wrap_every: int = 20
    sw_sigma: Any = 1.0
    # 0.1, chosen on three sources (docs/phasing.md, "Defaults on three sources"): the former
    # 0.2, chosen on the project's simulator alone, cut the support inside crystals with a
    # phase vortex or jump (the independent generator) and on the measured scan 54; 0.1 holds
    # on all three. Selection among (0.1, 0.15, 0.2) by LLK_free is better still, at 3× the
    # iterations: an option, not the default.
    sw_threshold: Any = 0.1
    support: Any = 0.5
    starts: int = 1
    seed: int = 0
    free_fraction: float = 0.05
    engine: str = "cpu"
    device: str | None = None
    best_k: int = 1
    drop_factor: float = 3.0
    average_within: float = 1.3

    # ------------------------------------------------------------------ candidates
    def thresholds(self) -> tuple[float, ...]:
        """The shrink-wrap threshold candidates, checked."""
        v = self.sw_threshold
        vals = tuple(v) if isinstance(v, (tuple, list)) else (v,)
        if not vals:
            raise ParamError("sw_threshold", v, "no threshold given")
        return tuple(checks.check_threshold("sw_threshold", t) for t in vals)

    def sigmas(self) -> tuple[float | tuple[float, float], ...]:
        """The σ candidates, checked: floats, or (start, end) ramps."""
        v = self.sw_sigma
        # a tuple or list holds candidates (each a number, "a:b" or an (a, b) ramp); a
        # single ramp is written "a:b" or ((a, b),)
        vals = tuple(v) if isinstance(v, (tuple, list)) else (v,)
        if not vals:
            raise ParamError("sw_sigma", v, "no σ given")
        return tuple(checks.parse_sigma("sw_sigma", s) for s in vals)

    def candidates(self) -> list[tuple[float, float | tuple[float, float]]]:
        """Every (threshold, σ) pair, thresholds outermost."""
        return list(itertools.product(self.thresholds(), self.sigmas()))

    # ------------------------------------------------------------------ checks
    def validate(self) -> "PhasingParams":
        """Check every field; raise :class:`ParamError` (a ValueError) naming the first bad one."""
        try:
            runs = parse_schedule(self.schedule) if isinstance(self.schedule, str) else None
        except ValueError as e:
            raise ParamError("schedule", self.schedule, str(e)) from None
        if runs is None:
            raise ParamError("schedule", self.schedule, "must be a string such as '3*(20*ER+160*HIO+20*ER)'")
        checks.check_beta("beta", self.beta)
        checks.check_period("shrink_wrap_every", self.shrink_wrap_every)
        self.candidates()
        sup = self.support
        if isinstance(sup, str):
            if sup != "auto":
                try:
                    sup = float(sup)
                except ValueError:
                    raise ParamError("support", self.support, "expected a box fraction or 'auto'") from None
        if isinstance(sup, np.ndarray):
            if sup.ndim != 3:
                raise ParamError("support", f"array{sup.shape}", "a support array must be 3-D")
        elif sup != "auto":
            checks.check_fraction("support", sup, 0.0, 1.0)
        checks.check_count("starts", self.starts, 1)
        checks.check_count("best_k", self.best_k, 1, int(self.starts), " (and ≤ starts)")
        checks.check_count("seed", self.seed, 0)
        if not (isinstance(self.free_fraction, (int, float)) and 0 <= self.free_fraction < 0.5):
            raise ParamError("free_fraction", self.free_fraction, "must be in [0, 0.5)")
        if self.engine not in ("cpu", "torch"):
            raise ParamError("engine", self.engine, "unknown engine (cpu or torch)")
        checks.check_device("device", self.device, self.engine)
        checks.check_fraction("drop_factor", self.drop_factor, 1.0, float("inf"), high_inclusive=False)
        if not (isinstance(self.average_within, (int, float)) and self.average_within >= 1):
            raise ParamError("average_within", self.average_within, "must be ≥ 1 (inf: no limit)")
        return self


@dataclass
class PhasingResult:
    """A reconstruction and its figures of merit (centred layout, like the data).

    object  : (z, y, x) complex64, in the data's units (|F(object)|² ≈ counts); with
              best_k > 1 the average of the aligned best runs.
    support : (z, y, x) bool, the final support.
    chi2    : eq. 2 over constrained voxels; chi2_free on the free voxels.
    llk, llk_free : mean Poisson deviance (see :func:`autophase.physics.metrics.poisson_llk`).
    history : {"chi2": per-iteration χ², "algorithm": per-iteration name} of the best run.
    seconds : wall time of this pattern's iterations (all runs).
    start   : index of the best run's start.
    selected : the winning candidate, {"sw_threshold": t, "sw_sigma": σ or "a:b", "candidate": i}.
    runs    : one dict per run: candidate, start, sw_threshold, sw_sigma, chi2, llk_free, failed
              ("" or why it was dropped), averaged (whether it is in the object).
    averaged : how many runs the object averages (1: the best run as it is).
    dropped : how many runs failed and were dropped.
    """

    object: np.ndarray
    support: np.ndarray
    chi2: float
    chi2_free: float
    llk: float
    llk_free: float
    history: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    start: int = 0
    selected: dict[str, Any] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    averaged: int = 1
    dropped: int = 0


@dataclass
class _Prepared:
    """One pattern in the engines' unshifted layout."""

    shape: tuple[int, int, int]
    mag: np.ndarray          # centred float32 magnitudes, 0 where unmeasured
    measured: np.ndarray     # centred bool
    free: np.ndarray         # centred bool
    mag_u: np.ndarray        # unshifted float32: √N·M where constrained, −1 where free
    norm: float              # Σ M² over constrained voxels


def usable_magnitudes(mag: np.ndarray, measured: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(float32 magnitudes, 0 where unusable; bool mask of the usable voxels): NaN or negative
    magnitudes count as unmeasured, as do voxels ``measured`` marks False."""
    mag = np.asarray(mag, np.float32)
    bad = ~np.isfinite(mag) | (mag < 0)
    meas = ~bad if measured is None else (np.asarray(measured, bool) & ~bad)
    return np.where(meas, mag, 0).astype(np.float32), meas


def prepare(mag: np.ndarray, measured: np.ndarray | None, free_fraction: float, seed: int) -> _Prepared:
    """Validate numbers, build masks and the engine's magnitude array."""
    mag = np.asarray(mag, np.float32)
    if mag.ndim != 3:
        raise ValueError(f"expected a 3D pattern, got shape {mag.shape}")
    mag, meas = usable_magnitudes(mag, measured)
    free = (metrics.free_mask(mag.shape, free_fraction, measured=meas, seed=seed)
            if free_fraction > 0 else np.zeros(mag.shape, bool))
    constrained = meas & ~free
    n = mag.size
    mag_u = np.where(constrained, np.sqrt(n, dtype=np.float32) * mag, np.float32(-1)).astype(np.float32)
    return _Prepared(mag.shape, mag, meas, free, np.fft.ifftshift(mag_u), float((mag[constrained] ** 2).sum()))


def _random_start(p: _Prepared, support_c: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ρ₀ = S · F⁻¹(M e^{iφ}), φ uniform: the data's own scale with random phases (centred)."""
    import scipy.fft as sfft

    ph = rng.uniform(-np.pi, np.pi, size=p.shape).astype(np.float32)
    F = np.fft.ifftshift(p.mag * np.exp(1j * ph).astype(np.complex64))
    x = np.fft.fftshift(sfft.ifftn(F, norm="ortho", workers=fft_workers()))
    return (x * support_c).astype(np.complex64)


def _measure(p: _Prepared, obj: np.ndarray, sup: np.ndarray, history: dict, seconds: float,
             start: int) -> PhasingResult:
    """Figures of merit of a centred object (one more forward transform)."""
    from ..physics.forward import far_field

    Fm = np.abs(far_field(obj)).astype(np.float32)
    constrained = p.measured & ~p.free
    counts = p.mag.astype(np.float64) ** 2
    I_model = Fm.astype(np.float64) ** 2
    has_free = bool(p.free.any())
    return PhasingResult(
        object=obj,
        support=sup,
        chi2=metrics.chi2(Fm, p.mag, constrained),
        chi2_free=metrics.chi2(Fm, p.mag, p.free) if has_free else float("nan"),
        llk=metrics.poisson_llk(I_model, counts, constrained),
        llk_free=metrics.poisson_llk(I_model, counts, p.free) if has_free else float("nan"),
        history=history,
        seconds=seconds,
        start=start,
    )


def _finish(p: _Prepared, x_u: np.ndarray, S_u: np.ndarray, err: np.ndarray, algos: list[str],
            seconds: float, start: int) -> PhasingResult:
    """Metrics of the final object of one run, from the engines' unshifted layout."""
    obj = np.fft.fftshift(x_u).astype(np.complex64)
    sup = np.fft.fftshift(S_u).astype(bool)
    history = {"chi2": (np.asarray(err) / (p.norm * p.mag.size)).tolist(), "algorithm": list(algos)}
    return _measure(p, obj, sup, history, seconds, start)


def _given_start(p: _Prepared, init, support) -> tuple[np.ndarray, np.ndarray]:
    """(x0, S0) of a given start, centred: ``init`` (complex) zeroed outside ``support`` (a
    bool array, or anything else for |init| > 0.1·max, the paper's refinement); both must
    have the pattern's shape."""
    x0 = np.asarray(init, np.complex64)
    if x0.shape != p.shape:
        raise ValueError(f"init shape {x0.shape} differs from the pattern's {p.shape}")
    S0 = np.asarray(support, bool) if isinstance(support, np.ndarray) else support_from_amplitude(x0, 0.1)
    if S0.shape != p.shape:
        raise ValueError(f"support shape {S0.shape} differs from the pattern's {p.shape}")
    return x0 * S0, S0


def _starts(p: _Prepared, params: PhasingParams, init, support, rng) -> list[tuple[np.ndarray, np.ndarray]]:
    """(x0, S0) per start, centred layout."""
    out = []
    for _ in range(max(1, params.starts)):
        if init is not None:
            out.append(_given_start(p, init, support))
            break  # a given start is deterministic: more starts would repeat it
        if isinstance(support, np.ndarray) and support.shape != p.shape:
            raise ValueError(f"support shape {support.shape} differs from the pattern's {p.shape}")
        S0 = (np.asarray(support, bool) if isinstance(support, np.ndarray)
              else initial_support(p.mag ** 2, support, p.measured))
        out.append((_random_start(p, S0, rng), S0.copy()))
    return out


def n_updates(n_iterations: int, every: int) -> int:
    """How many shrink-wrap updates a run of ``n_iterations`` makes (none after the last iteration)."""
    return (n_iterations - 1) // every if every and n_iterations > 0 else 0


def sigma_table(sigma: float | tuple[float, float], n_iterations: int, every: int) -> float | list[float]:
    """The σ of each shrink-wrap update: ``sigma`` itself, or for a ramp (a, b) the linear
    σ_u = a + (b − a)·u/(U − 1), u = 0 … U − 1 over the run's U updates (a at the first,
    b at the last; a alone if U = 1). A wide blur early lets the support find the crystal
    from a loose start; the final σ sets the support's sharpness."""
    if not isinstance(sigma, tuple):
        return float(sigma)
    a, b = sigma
    U = n_updates(n_iterations, every)
    if U <= 1:
        return [a] * max(U, 1)
    return [a + (b - a) * u / (U - 1) for u in range(U)]


def _engine_kwargs(params: PhasingParams, threshold: float, sigma) -> dict[str, Any]:
    """The iteration parameters both engines' ``run`` take, for one candidate."""
    return dict(beta=params.beta, sw_every=params.shrink_wrap_every, sw_sigma=sigma, sw_threshold=threshold)


def _run_cpu(p: _Prepared, params: PhasingParams, algos, x0, S0, threshold, sigma, progress=None):
    from .cpu import engine_for

    cb = (lambda i: progress.update(1)) if progress is not None else None
    eng = engine_for(p.shape)
    S_u = np.ascontiguousarray(np.fft.ifftshift(S0))
    return eng.run(np.fft.ifftshift(x0), S_u, p.mag_u, algos, callback=cb,
                   **_engine_kwargs(params, threshold, sigma))


# voxels (entries × array size) per torch batch: ≈2 GiB per complex64 buffer; larger sets of
# runs go in several batches
TORCH_BATCH_VOXELS = 2 ** 28


def _run_torch(p: _Prepared, params: PhasingParams, algos, jobs, progress=None):
    """All runs ``jobs`` = [(x0, S0, threshold, σ table)] of one pattern as one batch
    (several if they exceed :data:`TORCH_BATCH_VOXELS`)."""
    from .torch_engine import TorchEngine

    eng = TorchEngine(p.shape, params.device)
    per = max(1, TORCH_BATCH_VOXELS // int(np.prod(p.shape)))
    out = []
    for i in range(0, len(jobs), per):
        out += _run_torch_batch(eng, p, params, algos, jobs[i:i + per], progress)
    return out


def _run_torch_batch(eng, p: _Prepared, params: PhasingParams, algos, jobs, progress=None):
    """One engine call for B runs: thresholds per entry, σ as (B,) or an (updates, B) table."""
    B = len(jobs)
    sig = [j[3] for j in jobs]
    if all(np.isscalar(s) for s in sig):
        sig_arr = np.asarray(sig, np.float64)                            # (B,): one σ per run
        if B == 1:
            sig_arr = float(sig_arr[0])
    else:
        U = max(len(s) for s in sig if not np.isscalar(s))
        sig_arr = np.stack([np.full(U, s) if np.isscalar(s) else np.asarray(s) for s in sig], axis=1)  # (U, B)
    cb = (lambda i: progress.update(B)) if progress is not None else None
    x, S, err = eng.run(np.stack([np.fft.ifftshift(j[0]) for j in jobs]),
                        np.stack([np.fft.ifftshift(j[1]) for j in jobs]), p.mag_u[None], algos,
                        beta=params.beta, sw_every=params.shrink_wrap_every, sw_sigma=sig_arr,
                        sw_threshold=[j[2] for j in jobs] if B > 1 else jobs[0][2], callback=cb)
    return [(x[b], S[b], err[:, b]) for b in range(B)]


def failed_runs(results: list[PhasingResult], groups: list[int], drop_factor: float) -> list[str]:
    """Why each run failed, "" if it did not: NaN/inf χ² or LLK, an empty support, or
    χ² > ``drop_factor`` × the median χ² of the runs of its group (candidate). The χ² rule
    needs ≥ 3 runs in a group (of two, neither can exceed 3× their median)."""
    chi = np.array([r.chi2 for r in results], np.float64)
    why = []
    for i, r in enumerate(results):
        if not (np.isfinite(r.chi2) and np.isfinite(r.llk) and np.isfinite(r.object).all()):
            why.append("not finite")
        elif not r.support.any():
            why.append("empty support")
        else:
            why.append("")
    for g in set(groups):
        idx = [i for i, gi in enumerate(groups) if gi == g and not why[i]]
        if len(idx) < 2:
            continue
        med = float(np.median(chi[idx]))
        for i in idx:
            if chi[i] > drop_factor * med:
                why[i] = f"chi2 {chi[i]:.3g} > {drop_factor:g} x median {med:.3g}"
    return why


def average_runs(objects: list[np.ndarray], threshold: float, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Align ``objects[1:]`` to ``objects[0]`` (twin, sub-voxel shift, global phase and scale,
    :func:`autophase.physics.metrics.align_to`) and average; the support of the average is
    the shrink-wrap rule applied to it, (|ρ̄| ∗ G_σ) > threshold · max.

    objects : K complex (z, y, x) arrays (centred), each already zero outside its support.
    Returns (average complex64, support bool).
    """
    ref = np.asarray(objects[0], np.complex64)
    acc = ref.astype(np.complex128)
    ref_fft = None
    if len(objects) > 1:
        import scipy.fft as sfft

        ref_fft = sfft.fftn(ref, workers=fft_workers())
    for o in objects[1:]:
        acc += metrics.align_to(o, ref, dtype=np.complex64, truth_fft=ref_fft).aligned
    avg = (acc / len(objects)).astype(np.complex64)
    G = gaussian_transfer(avg.shape, float(sigma))
    blurred = np.fft.irfftn(np.fft.rfftn(np.abs(avg)) * G, s=avg.shape, axes=(0, 1, 2))
    return avg, blurred > threshold * blurred.max()


def phase(magnitude: np.ndarray, measured: np.ndarray | None = None, *, init: np.ndarray | None = None,
          params: PhasingParams | None = None, progress: bool = False, workers: int | None = None,
          **overrides) -> PhasingResult:
    """Phase one pattern.

    Parameters
    ----------
    magnitude : (z, y, x) float, √counts with the Bragg peak at the centre; NaN or
        negative voxels count as unmeasured.
    measured : optional bool mask, False = unmeasured (detector gaps, masked pixels).
    init : optional complex (z, y, x) start (refinement from a network's prediction);
        its support is |init| > 0.1·max unless ``support`` is an array. One run per candidate.
    params / overrides : :class:`PhasingParams` fields, e.g. ``schedule="50*ER"``.
    progress : show a progress bar over iterations (tqdm).
    workers : threads over runs with the cpu engine (default: :func:`fft_workers`).

    Example::

        res = phase(np.sqrt(counts), schedule="3*(20*ER+160*RAAR+20*ER)", starts=8, best_k=4,
                    sw_threshold=(0.1, 0.15, 0.2))
        res.object, res.support, res.chi2, res.llk_free, res.selected, res.runs
    """
    params = _merge(params, overrides)
    algos = expand(parse_schedule(params.schedule))
    cands = params.candidates()
    p = prepare(magnitude, measured, params.free_fraction, params.seed)
    rng = np.random.default_rng(params.seed)
    starts = _starts(p, params, init, params.support, rng)
    n_it, every = len(algos), params.shrink_wrap_every
    jobs = [(c, k) for c in range(len(cands)) for k in range(len(starts))]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(algos) * len(jobs), unit="it", desc="phasing", leave=False)
    t0 = time.perf_counter()
    try:
        if params.engine == "torch":
            outs = _run_torch(p, params, algos, [(starts[k][0], starts[k][1], cands[c][0],
                                                  sigma_table(cands[c][1], n_it, every)) for c, k in jobs], bar)
        else:
            def one(job):
                c, k = job
                return _run_cpu(p, params, algos, starts[k][0], starts[k][1], cands[c][0],
                                sigma_table(cands[c][1], n_it, every), bar)

            w = min(len(jobs), workers or fft_workers())
            if w <= 1:
                outs = [one(j) for j in jobs]
            else:  # numba kernels and FFTW release the GIL; one engine per thread
                with ThreadPoolExecutor(max_workers=w) as pool:
                    outs = list(pool.map(one, jobs))
    finally:
        if bar is not None:
            bar.close()
    total = time.perf_counter() - t0
    results = [_finish(p, x, S, err, algos, total / len(jobs), k) for (x, S, err), (c, k) in zip(outs, jobs)]
    return _select(p, params, cands, jobs, results, total)


def phase_each(magnitude: np.ndarray, measured: np.ndarray | None = None, *,
               starts: list[tuple[np.ndarray, np.ndarray]], params: PhasingParams | None = None,
               thresholds: Sequence[float] | None = None, **overrides) -> list[PhasingResult]:
    """One run from each given start, with no choice among them: what :func:`phase` does for
    one ``init`` and its ``support``, for several at once; the caller chooses (the
    refinement after the network keeps the lowest LLK_free, :func:`autophase.predict.refine_prediction`).

    magnitude, measured : as :func:`phase` (one pattern).
    starts : [(init, support)], init complex (z, y, x) (centred), support bool, same shape.
    params / overrides : :class:`PhasingParams` fields; one candidate only (one
        ``sw_threshold``, one ``sw_sigma``).
    thresholds : one shrink-wrap threshold per start, in (0, 1), in place of ``sw_threshold``
        (the refinement's phase-free start shrinks its support at its own threshold); None:
        ``sw_threshold`` for every start.

    Returns the runs' :class:`PhasingResult` in the order of ``starts``. The cpu engine runs
    them side by side on threads (numba kernels and FFTW release the GIL; each thread has its
    own engine, and the answers are those of one run at a time, bit for bit); the torch
    engine runs them as one batch. One start runs in the calling thread, exactly as
    :func:`phase` runs it.
    """
    params = _merge(params, overrides)
    cands = params.candidates()
    if len(cands) != 1:
        raise ValueError(f"phase_each runs one candidate, not {len(cands)}: give one sw_threshold and one sw_sigma")
    if not starts:
        raise ValueError("phase_each needs at least one (init, support) start")
    algos = expand(parse_schedule(params.schedule))
    p = prepare(magnitude, measured, params.free_fraction, params.seed)
    runs = []
    for k, (init, support) in enumerate(starts):
        try:
            runs.append(_given_start(p, init, np.asarray(support, bool)))
        except ValueError as e:
            raise ValueError(f"start {k}: {e}") from None
    t, sigma = cands[0]
    if thresholds is None:
        ts = [t] * len(runs)
    else:
        ts = list(thresholds)
        if len(ts) != len(runs):
            raise ValueError(f"thresholds: {len(ts)} given for {len(runs)} starts")
        ts = [checks.check_threshold(f"thresholds[{k}]", v) for k, v in enumerate(ts)]
    table = sigma_table(sigma, len(algos), params.shrink_wrap_every)
    t0 = time.perf_counter()
    if params.engine == "torch":
        outs = _run_torch(p, params, algos, [(x0, S0, tk, table) for (x0, S0), tk in zip(runs, ts)])
    elif len(runs) == 1:
        outs = [_run_cpu(p, params, algos, runs[0][0], runs[0][1], ts[0], table)]
    else:
        # one thread per start, not fft_workers(): the starts are few and short, and on two
        # cores three side by side finished sooner than two at a time
        with ThreadPoolExecutor(max_workers=len(runs), thread_name_prefix="autophase-phase-each") as pool:
            outs = list(pool.map(lambda r: _run_cpu(p, params, algos, r[0][0], r[0][1], r[1], table),
                                 zip(runs, ts)))
    total = time.perf_counter() - t0
    return [_finish(p, x, S, err, algos, total / len(runs), k) for k, (x, S, err) in enumerate(outs)]


def _sigma_record(sigma) -> float | str:
    """σ as recorded in results: the number, or ``"a:b"`` for a ramp."""
    return checks.sigma_label(sigma) if isinstance(sigma, tuple) else float(sigma)


def _key(r: PhasingResult) -> float:
    k = r.llk_free if np.isfinite(r.llk_free) else r.llk
    return float(k) if np.isfinite(k) else float("inf")


def _select(p: _Prepared, params: PhasingParams, cands, jobs, results: list[PhasingResult],
            seconds: float) -> PhasingResult:
    """Drop failed runs, pick the best run by LLK_free, average its candidate's best K
    (those within ``average_within`` × the best run's χ²)."""
    why = failed_runs(results, [c for c, _ in jobs], params.drop_factor)
    ok = [i for i, w in enumerate(why) if not w] or list(range(len(results)))  # all failed: keep the least bad
    best = min(ok, key=lambda i: _key(results[i]))
    c_best = jobs[best][0]
    t, sigma = cands[c_best]
    limit = params.average_within * results[best].chi2
    mine = sorted((i for i in ok if jobs[i][0] == c_best and (i == best or results[i].chi2 <= limit)),
                  key=lambda i: _key(results[i]))[:params.best_k]
    if len(mine) > 1:
        objs = [results[i].object * results[i].support for i in mine]
        final_sigma = sigma[1] if isinstance(sigma, tuple) else sigma
        avg, sup = average_runs(objs, t, final_sigma)
        out = _measure(p, avg, sup, results[best].history, seconds, results[best].start)
    else:
        out = results[best]
        out.seconds = seconds
    out.selected = {"sw_threshold": t, "sw_sigma": _sigma_record(sigma), "candidate": c_best}
    out.runs = [{"candidate": c, "start": k, "sw_threshold": cands[c][0], "sw_sigma": _sigma_record(cands[c][1]),
                 "chi2": float(r.chi2), "llk_free": float(r.llk_free), "failed": w, "averaged": i in mine}
                for i, ((c, k), r, w) in enumerate(zip(jobs, results, why))]
    out.averaged = len(mine)
    out.dropped = sum(1 for w in why if w)
    return out


def phase_batch(magnitudes: np.ndarray, measured: np.ndarray | None = None, *,
                params: PhasingParams | None = None, workers: int | None = None,
                **overrides) -> list[PhasingResult]:
    """Phase B patterns (B, z, y, x). CPU: one pattern per core; torch: one batched run
    (several starts or candidates: each pattern's runs batched in turn)."""
    params = _merge(params, overrides)
    mags = np.asarray(magnitudes)
    if mags.ndim != 4:
        raise ValueError(f"expected (B, z, y, x) patterns, got shape {mags.shape}")
    meas = [None] * len(mags) if measured is None else list(np.asarray(measured, bool))
    single = params.starts <= 1 and len(params.candidates()) == 1
    if params.engine == "torch":
        if single:
            return _phase_batch_torch(mags, meas, params)
        return [phase(m, k, params=params) for m, k in zip(mags, meas)]
    workers = workers or fft_workers()
    if workers <= 1 or len(mags) == 1:
        return [phase(m, k, params=params, workers=workers) for m, k in zip(mags, meas)]
    # numba kernels and FFTW execution release the GIL: threads use both cores.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda mk: phase(mk[0], mk[1], params=params, workers=1), zip(mags, meas)))


def _phase_batch_torch(mags, meas, params: PhasingParams) -> list[PhasingResult]:
    from .torch_engine import TorchEngine

    algos = expand(parse_schedule(params.schedule))
    (t, sigma), = params.candidates()
    preps = [prepare(m, k, params.free_fraction, params.seed) for m, k in zip(mags, meas)]
    rng = np.random.default_rng(params.seed)
    st = [_starts(p, params, None, params.support, rng)[0] for p in preps]
    eng = TorchEngine(preps[0].shape, params.device)
    t0 = time.perf_counter()
    x, S, err = eng.run(np.stack([np.fft.ifftshift(x0) for x0, _ in st]),
                        np.stack([np.fft.ifftshift(S0) for _, S0 in st]),
                        np.stack([p.mag_u for p in preps]), algos,
                        **_engine_kwargs(params, t, _torch_sigma(sigma_table(sigma, len(algos),
                                                                              params.shrink_wrap_every))))
    dt = (time.perf_counter() - t0) / len(preps)
    out = []
    for b, p in enumerate(preps):
        r = _finish(p, x[b], S[b], err[:, b], algos, dt, 0)
        out.append(_select(p, params, [(t, sigma)], [(0, 0)], [r], dt))
    return out


def _torch_sigma(table):
    """A σ table for the torch engine: a float, or (U, 1) for one ramp shared by the batch."""
    return table if np.isscalar(table) else np.asarray(table, np.float64)[:, None]


def _merge(params: PhasingParams | None, overrides: dict) -> PhasingParams:
    params = params or PhasingParams()
    if overrides:
        bad = set(overrides) - {f.name for f in dataclasses.fields(PhasingParams)}
        if bad:
            raise TypeError(f"unknown phasing parameter(s): {', '.join(sorted(bad))}")
        params = dataclasses.replace(params, **overrides)
    return params.validate()
