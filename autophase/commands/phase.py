"""``autophase phase INPUT -o OUT``: iterative phase retrieval of one measured pattern.

Reads .npy/.npz/.h5/.cxi/.tif, runs ER/HIO with shrink-wrap (default
``3*(20*ER+160*HIO+20*ER)``, shrink-wrap every 20), keeps the best of ``--starts`` by
LLK_free, and writes OUT (.npz, or .cxi with .vti, strain and isosurface beside it — see
:mod:`autophase.outputs`) plus OUT's stem + ``.png`` (central slices and the error curve).
Input is checked before anything is written; outputs appear atomically.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

NAME = "phase"
HELP = "iterative phase retrieval (ER/HIO/shrink-wrap) of a 3D diffraction pattern"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="pattern file: .npy .npz .h5 .cxi .tif (Bragg peak at the centre)")
    p.add_argument("-o", "--output", required=True, help="result file: .npz or .cxi (a .png is written beside it)")
    p.add_argument("--schedule", default="3*(20*ER+160*HIO+20*ER)", help="e.g. '3*(20*ER+160*HIO+20*ER)', '50*ER'")
    p.add_argument("--shrink-wrap-every", type=int, default=20, metavar="K", help="shrink-wrap period (0 = off)")
    p.add_argument("--sw-sigma", type=float, default=1.0, help="shrink-wrap Gaussian σ in voxels")
    p.add_argument("--sw-threshold", type=float, default=0.2, help="shrink-wrap threshold (fraction of max)")
    p.add_argument("--beta", type=float, default=0.9, help="HIO feedback β")
    p.add_argument("--support", default="0.5", help="initial support: box fraction (0.5) or 'auto' (autocorrelation)")
    p.add_argument("--starts", type=int, default=1, metavar="N", help="random starts; the best by LLK_free is kept")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-kind", choices=("intensity", "magnitude"), default="intensity",
                   help="whether INPUT holds counts (intensity) or √counts")
    p.add_argument("--dataset", help="HDF5 dataset path inside INPUT (default: CXI data or the only 3D dataset)")
    p.add_argument("--mask-invalid", action="store_true",
                   help="treat NaN and negative voxels as unmeasured instead of rejecting the file")
    p.add_argument("--engine", choices=("cpu", "torch"), default="cpu",
                   help="cpu: FFTW+numba (fastest on a CPU); torch: CUDA when present")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..errors import InputError
    from ..io.patterns import load_pattern
    from ..outputs import check_output_path, write_reconstruction
    from ..phasing import PhasingParams, phase, parse_schedule

    out = check_output_path(args.output)
    try:
        parse_schedule(args.schedule)
    except ValueError as e:
        raise InputError(f"--schedule: {e}") from None
    support = args.support
    if support != "auto":
        try:
            support = float(support)
        except ValueError:
            raise InputError(f"--support: expected a box fraction or 'auto', got {support!r}") from None
        if not 0 < support <= 1:
            raise InputError(f"--support: box fraction must be in (0, 1], got {support}")
    if args.starts < 1:
        raise InputError(f"--starts: must be ≥ 1, got {args.starts}")

    pat = load_pattern(args.input, kind=args.input_kind, dataset=args.dataset, allow_invalid=args.mask_invalid)
    params = PhasingParams(schedule=args.schedule, beta=args.beta, shrink_wrap_every=args.shrink_wrap_every,
                           sw_sigma=args.sw_sigma, sw_threshold=args.sw_threshold, support=support,
                           starts=args.starts, seed=args.seed, engine=args.engine, device=args.device)
    n_unmeasured = int((~pat.measured).sum())
    print(f"phase: {args.input}: {pat.magnitude.shape}, {float((pat.magnitude ** 2).sum()):.4g} photons"
          + (f", {n_unmeasured} unmeasured voxels" if n_unmeasured else ""), file=sys.stderr)
    t0 = time.perf_counter()
    res = phase(pat.magnitude, pat.measured, params=params, progress=sys.stderr.isatty())
    wall = time.perf_counter() - t0

    metrics = {
        "program": "autophase phase", "command": " ".join(sys.argv), "input": str(args.input),
        "schedule": args.schedule, "chi2": res.chi2, "chi2_free": res.chi2_free, "llk": res.llk,
        "llk_free": res.llk_free, "seconds": wall, "start": res.start,
    }
    arrays = {"chi2_history": np.asarray(res.history["chi2"], np.float64),
              "algorithm_history": np.asarray(res.history["algorithm"], dtype="U3")}
    write_reconstruction(out, res.object, res.support, metrics, history=res.history, arrays=arrays,
                         input_path=args.input, intensity=pat.intensity, unmeasured=~pat.measured,
                         plot=not args.no_plot,
                         title=f"{Path(args.input).name}: χ² {res.chi2:.4g}, LLK_free {res.llk_free:.4g}")
    print(f"phase: {out}: χ² {res.chi2:.5g}  χ²_free {res.chi2_free:.5g}  LLK {res.llk:.4g}  "
          f"LLK_free {res.llk_free:.4g}  ({wall:.2f} s, start {res.start + 1}/{args.starts})")
    return 0
