"""The CPU phasing engine: FFTW plans + fused numba kernels, ≈2 ms per 64³ iteration.

Where the time goes and why it is laid out this way (64³ complex64, one core):

* FFTs: pyFFTW with ``FFTW_MEASURE`` plans, in-place backward, ≈0.8 ms per transform
  against ≈2 ms for scipy.fft (pocketfft) — the floor of the loop is 2 transforms per
  iteration.
* No ``fftshift`` in the loop: the engine works in the *unshifted* layout (object origin
  at index 0). Magnitudes and supports are ``ifftshift``-ed once on the way in and the
  object ``fftshift``-ed once on the way out.
* No normalisation passes: FFTW's transforms are unnormalised; the measured magnitudes
  are pre-multiplied by √N and the 1/N of the inverse is folded into the real-space kernel.
* Element-wise work is two fused numba passes per iteration (:mod:`.kernels`).
* Shrink-wrap blurs |ρ| by a Gaussian through a real FFT (≈0.5 ms), not ndimage.

A :class:`CpuEngine` holds the plans and buffers for one array shape and is reused
across patterns and starts (planning costs ~0.1–1 s once per process without wisdom;
wisdom is cached on disk across processes by :mod:`.wisdom`).
"""
from __future__ import annotations

import os
import threading

import numpy as np
import pyfftw

from . import kernels, wisdom
from .support import gaussian_transfer

__all__ = ["CpuEngine", "engine_for", "fftw_threads_here", "start_kernels"]

_PLAN_LOCK = threading.Lock()  # FFTW's planner is not thread-safe


_KERNELS: threading.Thread | None = None
_KERNELS_LOCK = threading.Lock()


def start_kernels() -> threading.Thread:
    """Compile (or load from numba's cache) the loop's kernels on a second thread, once per
    process; return that thread.

    A new process compiles the numba kernels and, without wisdom, measures the FFTW plans;
    both are a large part of a cold ``autophase phase``. LLVM's work runs outside the GIL,
    so the kernels compile while the main thread reads the pattern and the planner
    measures (the saving is measured in docs/phasing.md, "Whole-process speed"). :class:`CpuEngine` starts it if no one
    did (``autophase phase`` does, before it reads its input) and waits for it before its
    first iteration. With numba's cache warm the thread only loads the kernels.
    """
    global _KERNELS
    with _KERNELS_LOCK:
        if _KERNELS is None:
            _KERNELS = threading.Thread(target=kernels.compile_loop_kernels, name="autophase-numba", daemon=True)
            _KERNELS.start()
        return _KERNELS


def _threads(requested: int | None = None) -> int:
    """FFTW threads per transform: the user's ``AUTOPHASE_FFTW_THREADS`` if set, else
    ``requested`` (a caller's choice, :func:`fftw_threads_here`), else 1."""
    env = os.environ.get("AUTOPHASE_FFTW_THREADS")
    if env:
        return max(1, int(env))
    return requested or 1


class CpuEngine:
    """ER/HIO/RAAR/shrink-wrap iterations for arrays of one ``shape`` (unshifted layout).

    Parameters
    ----------
    shape : (z, y, x) array shape.
    threads : FFTW threads per transform (1 is best when patterns run in parallel).
    """

    def __init__(self, shape: tuple[int, int, int], threads: int | None = None):
        self.shape = tuple(shape)
        self.n = int(np.prod(shape))
        th = _threads() if threads is None else threads
        self.threads = th
        e = pyfftw.empty_aligned
        self.x = e(shape, dtype="complex64")       # current object
        self.F = e(shape, dtype="complex64")       # transform buffer (in-place inverse)
        self.amp = e(shape, dtype="float32")       # |x| for shrink-wrap
        half = shape[:-1] + (shape[-1] // 2 + 1,)
        self.A = e(half, dtype="complex64")        # rfft of |x|
        flags = ("FFTW_MEASURE", "FFTW_DESTROY_INPUT")
        # the kernels compile on a second thread while the planner measures (start_kernels)
        self._kernels = start_kernels()
        with _PLAN_LOCK:
            wisdom.load()  # plans measured by an earlier process (~/.cache/autophase): no re-measuring
            # Planning with MEASURE overwrites the buffers: done before any data is in them.
            self._fwd = pyfftw.FFTW(self.x, self.F, axes=(0, 1, 2), direction="FFTW_FORWARD",
                                    flags=("FFTW_MEASURE",), threads=th)
            self._bwd = pyfftw.FFTW(self.F, self.F, axes=(0, 1, 2), direction="FFTW_BACKWARD",
                                    flags=flags, threads=th, normalise_idft=False)
            self._rfwd = pyfftw.FFTW(self.amp, self.A, axes=(0, 1, 2), direction="FFTW_FORWARD",
                                     flags=flags, threads=th)
            self._rbwd = pyfftw.FFTW(self.A, self.amp, axes=(0, 1, 2), direction="FFTW_BACKWARD",
                                     flags=flags, threads=th, normalise_idft=True)
            wisdom.save()  # only when planning learned something new
        self._transfer: dict[float, np.ndarray] = {}

    # ------------------------------------------------------------------ primitives
    def _kernels_ready(self) -> None:
        """Wait for the kernels' compile thread (a failure there shows at the first call)."""
        if self._kernels is not None:
            self._kernels.join()
            self._kernels = None

    def shrink_wrap(self, support: np.ndarray, sigma: float, threshold: float) -> int:
        """support ← (|S·x| ∗ G_σ) > threshold·max, in place; returns its size in voxels."""
        self._kernels_ready()
        G = self._transfer.get(sigma)
        if G is None:
            G = self._transfer[sigma] = gaussian_transfer(self.shape, sigma)
        # Only the part inside the current support counts: after HIO the values outside
        # are feedback terms, not object, and let the support creep outwards (measured:
        # supports of 2–3× the crystal on 1e6-photon patterns when they were included).
        kernels.amplitude(self.x.ravel(), support.ravel(), self.amp.ravel())
        self._rfwd()
        self.A *= G
        self._rbwd()
        return int(kernels.threshold_support(self.amp.ravel(), threshold, support.ravel()))

    # ------------------------------------------------------------------ the loop
    def run(self, x0: np.ndarray, support: np.ndarray, mag_u: np.ndarray, algos: list[str],
            beta: float = 0.9, sw_every: int = 0, sw_sigma=1.0, sw_threshold: float = 0.1,
            callback=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Iterate; return (object, support, per-iteration Σ(|F|−M)² in unnormalised units).

        x0 : complex64 unshifted start; support : bool unshifted (modified in place);
        mag_u : float32 unshifted √N·|F_meas|, −1 where free. ``algos`` : one of
        ER / HIO / RAAR per iteration. ``sw_sigma`` : one σ, or a sequence with the σ of
        each shrink-wrap update in turn (a ramp). ``callback(i)`` is called after each
        iteration (progress bars).
        """
        self._kernels_ready()
        x, F = self.x, self.F
        x[...] = x0
        xf, Ff, sf, mf = x.ravel(), F.ravel(), support.ravel(), mag_u.ravel()
        inv_n = np.float32(1.0 / self.n)
        beta = np.float32(beta)
        err = np.empty(len(algos), np.float64)
        sigmas = None if np.isscalar(sw_sigma) else [float(v) for v in sw_sigma]
        n_sw = 0
        for i, algo in enumerate(algos):
            self._fwd()
            err[i] = kernels.fourier_project(Ff, mf)
            self._bwd()
            if algo == "RAAR":
                kernels.raar_update(xf, Ff, sf, inv_n, beta)
            else:
                kernels.real_space_update(xf, Ff, sf, inv_n, beta, algo == "HIO")
            if sw_every and (i + 1) % sw_every == 0 and i + 1 < len(algos):
                sigma = sw_sigma if sigmas is None else sigmas[min(n_sw, len(sigmas) - 1)]
                self.shrink_wrap(support, float(sigma), sw_threshold)
                n_sw += 1
            if callback is not None:
                callback(i)
        return x.copy(), support, err


_ENGINES = threading.local()


def fftw_threads_here(threads: int | None) -> None:
    """FFTW threads per transform for the engines the *calling thread* gets from
    :func:`engine_for` from now on, unless the user set ``AUTOPHASE_FFTW_THREADS`` (that
    wins); ``None`` goes back to the default (1).

    One thread suits phasing, whose starts run on parallel threads; a caller that refines
    one pattern at a time on otherwise idle cores (the watch service) asks for more.
    """
    if threads is not None and int(threads) < 1:
        raise ValueError(f"FFTW threads must be >= 1, got {threads}")
    _ENGINES.threads = None if threads is None else int(threads)


def engine_for(shape: tuple[int, int, int]) -> CpuEngine:
    """A cached engine per (thread, shape, FFTW threads): plans are made once, buffers reused."""
    cache = getattr(_ENGINES, "cache", None)
    if cache is None:
        cache = _ENGINES.cache = {}
    threads = _threads(getattr(_ENGINES, "threads", None))
    key = (tuple(shape), threads)
    if key not in cache:
        cache[key] = CpuEngine(key[0], threads=threads)
    return cache[key]
