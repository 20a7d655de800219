"""Iterative phase retrieval: one call from measured magnitudes to a complex object.

:func:`phase` runs a schedule of error reduction (ER) and hybrid input-output (HIO,
Fienup 1982) iterations with Gaussian shrink-wrap (Marchesini 2003) on one pattern;
:func:`phase_batch` on B patterns at once. Both return :class:`PhasingResult` — the
same interface the network's prediction returns, so refinement, benchmarks and reports
compare like with like.

The iterations, with F the unitary far field (:mod:`autophase.physics.forward`), M the
measured magnitude and S the support:

    Fourier step   F' = M·F(ρ)/|F(ρ)| on constrained voxels, F(ρ) elsewhere;  ρ' = F⁻¹(F')
    ER             ρ ← S·ρ'
    HIO            ρ ← S·ρ' + (1 − S)·(ρ − β ρ')
    shrink-wrap    S ← (|ρ| ∗ G_σ) > t·max   every K iterations

Voxels that are unmeasured (``measured`` False, NaN or negative input) and the ≈5 %
free-LLK voxels are *free*: the Fourier step leaves them unconstrained, and the free
voxels then measure overfitting (LLK_free, χ²_free). With ``starts > 1`` each start
begins from different random phases and the one with the lowest LLK_free is kept.

Engines: ``"cpu"`` (pyFFTW + numba, the fast path on a CPU) and ``"torch"`` (batched,
CUDA when present). From the same start they agree to float tolerance.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..physics import metrics
from ..physics.forward import fft_workers, support_from_amplitude
from .schedule import expand, parse_schedule
from .support import initial_support

__all__ = ["PhasingResult", "PhasingParams", "phase", "phase_batch", "prepare"]


@dataclass(frozen=True)
class PhasingParams:
    """What to run. ``support`` is a box fraction, ``"auto"`` (autocorrelation) or a bool array."""

    schedule: str = "3*(20*ER+160*HIO+20*ER)"
    beta: float = 0.9
    shrink_wrap_every: int = 20
    sw_sigma: float = 1.0
    # 0.2 rather than cohere's 0.1: on five simulated 1e6-photon 64³ patterns the 0.1
    # support came out 1.2–1.4× the crystal, the 0.2 one 0.98–1.04×, with complex errors
    # 0.030–0.048 against 0.025–0.030 (see the phasing notes).
    sw_threshold: float = 0.2
    support: Any = 0.5
    starts: int = 1
    seed: int = 0
    free_fraction: float = 0.05
    engine: str = "cpu"
    device: str | None = None


@dataclass
class PhasingResult:
    """A reconstruction and its figures of merit (centred layout, like the data).

    object  : (z, y, x) complex64, in the data's units (|F(object)|² ≈ counts).
    support : (z, y, x) bool, the final support.
    chi2    : eq. 2 over constrained voxels; chi2_free on the free voxels.
    llk, llk_free : mean Poisson deviance (see :func:`autophase.physics.metrics.poisson_llk`).
    history : {"chi2": per-iteration χ², "algorithm": per-iteration name}.
    seconds : wall time of this pattern's iterations (all starts).
    start   : index of the kept start.
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


@dataclass
class _Prepared:
    """One pattern in the engines' unshifted layout."""

    shape: tuple[int, int, int]
    mag: np.ndarray          # centred float32 magnitudes, 0 where unmeasured
    measured: np.ndarray     # centred bool
    free: np.ndarray         # centred bool
    mag_u: np.ndarray        # unshifted float32: √N·M where constrained, −1 where free
    norm: float              # Σ M² over constrained voxels


def prepare(mag: np.ndarray, measured: np.ndarray | None, free_fraction: float, seed: int) -> _Prepared:
    """Validate numbers, build masks and the engine's magnitude array."""
    mag = np.asarray(mag, np.float32)
    if mag.ndim != 3:
        raise ValueError(f"expected a 3D pattern, got shape {mag.shape}")
    bad = ~np.isfinite(mag) | (mag < 0)
    meas = ~bad if measured is None else (np.asarray(measured, bool) & ~bad)
    mag = np.where(meas, mag, 0).astype(np.float32)
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


def _finish(p: _Prepared, x_u: np.ndarray, S_u: np.ndarray, err: np.ndarray, algos: list[str],
            seconds: float, start: int) -> PhasingResult:
    """Metrics of the final object (one more forward transform) in the centred layout."""
    from ..physics.forward import far_field

    obj = np.fft.fftshift(x_u).astype(np.complex64)
    sup = np.fft.fftshift(S_u).astype(bool)
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
        history={"chi2": (err / (p.norm * p.mag.size)).tolist(), "algorithm": list(algos)},
        seconds=seconds,
        start=start,
    )


def _starts(p: _Prepared, params: PhasingParams, init, support, rng) -> list[tuple[np.ndarray, np.ndarray]]:
    """(x0, S0) per start, centred layout."""
    out = []
    for _ in range(max(1, params.starts)):
        if init is not None:
            x0 = np.asarray(init, np.complex64)
            if x0.shape != p.shape:
                raise ValueError(f"init shape {x0.shape} differs from the pattern's {p.shape}")
            S0 = (np.asarray(support, bool) if isinstance(support, np.ndarray)
                  else support_from_amplitude(x0, 0.1))  # the paper's refinement: 10 % of the start
            out.append((x0 * S0, S0))
            break  # a given start is deterministic: more starts would repeat it
        S0 = (np.asarray(support, bool) if isinstance(support, np.ndarray)
              else initial_support(p.mag ** 2, support, p.measured))
        out.append((_random_start(p, S0, rng), S0.copy()))
    return out


def _engine_kwargs(params: PhasingParams) -> dict[str, Any]:
    """The iteration parameters both engines' ``run`` take."""
    return dict(beta=params.beta, sw_every=params.shrink_wrap_every, sw_sigma=params.sw_sigma,
                sw_threshold=params.sw_threshold)


def _run_one(p: _Prepared, params: PhasingParams, algos, x0, S0, progress=None):
    kw = _engine_kwargs(params)
    cb = (lambda i: progress.update(1)) if progress is not None else None
    if params.engine == "cpu":
        from .cpu import engine_for

        eng = engine_for(p.shape)
        S_u = np.ascontiguousarray(np.fft.ifftshift(S0))
        x, S, err = eng.run(np.fft.ifftshift(x0), S_u, p.mag_u, algos, callback=cb, **kw)
        return x, S, err
    if params.engine == "torch":
        from .torch_engine import TorchEngine

        eng = TorchEngine(p.shape, params.device)
        x, S, err = eng.run(np.fft.ifftshift(x0)[None], np.fft.ifftshift(S0)[None], p.mag_u[None],
                            algos, callback=cb, **kw)
        return x[0], S[0], err[:, 0]
    raise ValueError(f"unknown engine {params.engine!r} (cpu or torch)")


def phase(magnitude: np.ndarray, measured: np.ndarray | None = None, *, init: np.ndarray | None = None,
          params: PhasingParams | None = None, progress: bool = False, **overrides) -> PhasingResult:
    """Phase one pattern.

    Parameters
    ----------
    magnitude : (z, y, x) float, √counts with the Bragg peak at the centre; NaN or
        negative voxels count as unmeasured.
    measured : optional bool mask, False = unmeasured (detector gaps, masked pixels).
    init : optional complex (z, y, x) start (refinement from a network's prediction);
        its support is |init| > ``sw_threshold``·max unless ``support`` is an array.
    params / overrides : :class:`PhasingParams` fields, e.g. ``schedule="50*ER"``.
    progress : show a progress bar over iterations (tqdm).

    Example::

        res = phase(np.sqrt(counts), schedule="3*(20*ER+160*HIO+20*ER)", starts=4)
        res.object, res.support, res.chi2, res.llk_free
    """
    params = _merge(params, overrides)
    algos = expand(parse_schedule(params.schedule))
    p = prepare(magnitude, measured, params.free_fraction, params.seed)
    rng = np.random.default_rng(params.seed)
    starts = _starts(p, params, init, params.support, rng)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(algos) * len(starts), unit="it", desc="phasing", leave=False)
    best, total = None, 0.0
    try:
        for k, (x0, S0) in enumerate(starts):
            t0 = time.perf_counter()
            x, S, err = _run_one(p, params, algos, x0, S0, bar)
            res = _finish(p, x, S, err, algos, time.perf_counter() - t0, k)
            total += res.seconds
            key = res.llk_free if np.isfinite(res.llk_free) else res.llk
            if best is None or key < best[0]:
                best = (key, res)
    finally:
        if bar is not None:
            bar.close()
    best[1].seconds = total
    return best[1]


def phase_batch(magnitudes: np.ndarray, measured: np.ndarray | None = None, *,
                params: PhasingParams | None = None, workers: int | None = None,
                **overrides) -> list[PhasingResult]:
    """Phase B patterns (B, z, y, x). CPU: one pattern per core; torch: one batched run."""
    params = _merge(params, overrides)
    mags = np.asarray(magnitudes)
    if mags.ndim != 4:
        raise ValueError(f"expected (B, z, y, x) patterns, got shape {mags.shape}")
    meas = [None] * len(mags) if measured is None else list(np.asarray(measured, bool))
    if params.engine == "torch" and params.starts <= 1:
        return _phase_batch_torch(mags, meas, params)
    workers = workers or fft_workers()
    if workers <= 1 or len(mags) == 1:
        return [phase(m, k, params=params) for m, k in zip(mags, meas)]
    # numba kernels and FFTW execution release the GIL: threads use both cores.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda mk: phase(mk[0], mk[1], params=params), zip(mags, meas)))


def _phase_batch_torch(mags, meas, params: PhasingParams) -> list[PhasingResult]:
    from .torch_engine import TorchEngine

    algos = expand(parse_schedule(params.schedule))
    preps = [prepare(m, k, params.free_fraction, params.seed) for m, k in zip(mags, meas)]
    rng = np.random.default_rng(params.seed)
    st = [_starts(p, params, None, params.support, rng)[0] for p in preps]
    eng = TorchEngine(preps[0].shape, params.device)
    t0 = time.perf_counter()
    x, S, err = eng.run(np.stack([np.fft.ifftshift(x0) for x0, _ in st]),
                        np.stack([np.fft.ifftshift(S0) for _, S0 in st]),
                        np.stack([p.mag_u for p in preps]), algos, **_engine_kwargs(params))
    dt = (time.perf_counter() - t0) / len(preps)
    return [_finish(p, x[b], S[b], err[:, b], algos, dt, 0) for b, p in enumerate(preps)]


def _merge(params: PhasingParams | None, overrides: dict) -> PhasingParams:
    import dataclasses

    params = params or PhasingParams()
    if overrides:
        bad = set(overrides) - {f.name for f in dataclasses.fields(PhasingParams)}
        if bad:
            raise TypeError(f"unknown phasing parameter(s): {', '.join(sorted(bad))}")
        params = dataclasses.replace(params, **overrides)
    return params
