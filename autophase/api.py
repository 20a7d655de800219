"""The Python API: the commands' work as functions, for notebooks and beamline scripts.

Each call mirrors a command and takes the same options, checked the same way::

    import autophase

    pat = autophase.load_pattern("scan54.cxi")            # Pattern: magnitude, measured
    res = autophase.phase(pat)                            # 600 iterations, like `autophase phase`
    res.object, res.support, res.chi2, res.llk_free       # (64, 64, 64) complex64, bool, floats

    counts = np.load("pattern.npy")                       # photon counts, peak at the centre
    res = autophase.phase(counts, schedule="50*ER")       # counts in by default, like the CLI
    net = autophase.Predictor()                           # the shipped model (loads torch)
    nn = net.predict(pat.magnitude[None])[0]              # amplitude, phase, χ²

    autophase.simulate(8, "runs/tiny", seed=1)            # HDF5 shards + manifest
    scan = autophase.prep("frames_dir")                   # PrepResult: intensity, mask_bits, metadata

Nothing here imports torch: :class:`Predictor` does, when it is created.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["phase", "load_pattern", "simulate", "prep"]


def load_pattern(path: str | os.PathLike, kind: str = "intensity", dataset: str | None = None,
                 allow_invalid: bool = False):
    """Read and check a pattern file (.npy .npz .h5 .cxi .tif), as every command does.

    ``kind``: "intensity" (counts, the default) or "magnitude" (√counts). Returns a
    :class:`autophase.io.patterns.Pattern`: ``magnitude`` (z, y, x) float32 √counts, 0
    where unmeasured; ``measured`` (z, y, x) bool. Raises :class:`autophase.errors.InputError`
    naming the file for a missing, unreadable, non-3D or non-finite pattern.
    """
    from .io.patterns import load_pattern as _load

    return _load(path, kind=kind, dataset=dataset, allow_invalid=allow_invalid)


def phase(data: Any, *, kind: str = "intensity", measured: np.ndarray | None = None,
          init: np.ndarray | None = None, **options):
    """Iterative phase retrieval of one pattern, like ``autophase phase``.

    Parameters
    ----------
    data : a :class:`~autophase.io.patterns.Pattern`, a file path, or a (z, y, x) array
        of photon counts (``kind="intensity"``, the default, as on the command line) or of
        √counts (``kind="magnitude"``); the Bragg peak at the array centre.
    measured : (z, y, x) bool, False where the detector did not measure (arrays only).
    init : complex (z, y, x) start, e.g. a network's answer (refinement).
    options : :class:`autophase.phasing.PhasingParams` fields — ``schedule`` (ER, HIO,
        RAAR), ``beta``, ``shrink_wrap_every``, ``sw_sigma`` (σ, a ramp "3:1", or a tuple of
        candidates), ``sw_threshold`` (a tuple: candidates, the best by LLK_free kept),
        ``support``, ``starts``, ``best_k``, ``seed``, ``engine`` ("cpu" or "torch"),
        ``device``; checked before anything runs.

    Returns a :class:`autophase.phasing.PhasingResult`: ``object`` (z, y, x) complex64 in
    the data's units (|F(object)|² ≈ counts), ``support`` bool, ``chi2``, ``llk_free``, ….
    """
    from .errors import InputError
    from .io.patterns import Pattern, validate_pattern
    from .phasing import phase as _phase

    if kind not in ("intensity", "magnitude"):
        raise InputError(f"kind: 'intensity' or 'magnitude', not {kind!r}")
    if isinstance(data, (str, os.PathLike)):
        data = load_pattern(data, kind=kind)
    if isinstance(data, Pattern):
        mag, meas = data.magnitude, data.measured
        if measured is not None:
            meas = meas & np.asarray(measured, bool)
    else:
        arr = np.asarray(data)
        meas = validate_pattern(arr, "data", allow_invalid=measured is not None)
        if measured is not None:
            if np.shape(measured) != arr.shape:
                raise InputError(f"measured: shape {np.shape(measured)} differs from data {arr.shape}")
            meas = meas & np.asarray(measured, bool)
        a = np.where(meas, arr, 0).astype(np.float32)
        mag = np.sqrt(a) if kind == "intensity" else a
    return _phase(mag, meas, init=init, **options)


def simulate(n_crystals: int, out: str | os.PathLike, *, seed: int = 0, progress: bool = False,
             **config) -> dict | None:
    """Simulate ``n_crystals`` strained gold crystals into ``out`` (shards + manifest).

    ``config``: :class:`autophase.simulate.config.SimulationConfig` fields (``relax``,
    ``photons_min``, ``photons_max``, ``rotations``, ``size_cells``, ``shard_size``, …),
    checked before anything is written. Under ``mpiexec`` every rank calls this and the
    shards are shared out; a killed run resumes. Returns the summary dict on rank 0.
    """
    from .simulate.config import SimulationConfig
    from .simulate.run import run_simulation

    cfg = SimulationConfig(n_crystals=n_crystals, seed=seed, **config)
    return run_simulation(cfg, out, progress=progress, log=(print if progress else (lambda *a, **k: None)))


def prep(raw: str | os.PathLike, *, dataset: str | None = None, spec: str | None = None,
         scan: int | None = None, dark: str | None = None, white: str | None = None,
         echo=None, **config):
    """Raw 34-ID-C frames → a centred, binned pattern, like ``autophase prep``.

    ``raw``: a scan directory of detector frames or a stacked (angle, rows, cols) file.
    ``config``: :class:`autophase.beamline.prep.PrepConfig` fields (``size`` = 64,
    ``oversampling``, ``binning``, ``centre``, ``remove_aliens``). Returns a
    :class:`autophase.beamline.prep.PrepResult` (``intensity`` (size³) float32 counts,
    ``mask_bits``, ``metadata``); write it with
    ``autophase.io.cxi.write_pattern_cxi(path, r.intensity, r.mask_bits, metadata=r.metadata)``.
    """
    from .beamline.prep import PrepConfig, prepare
    from .io.raw34idc import read_raw

    cfg = PrepConfig(**config)
    scan_raw = read_raw(Path(raw), dataset=dataset, spec=spec, scan=scan, dark=dark, white=white)
    return prepare(scan_raw, cfg, echo=echo)
