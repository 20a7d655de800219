"""``autophase phase INPUT -o OUT``: iterative phase retrieval of one measured pattern.

Reads .npy/.npz/.h5/.cxi/.tif, runs ER/HIO/RAAR with shrink-wrap (default
``3*(20*ER+160*HIO+20*ER)``, shrink-wrap every 20), runs every shrink-wrap candidate
(``--sw-threshold 0.1,0.15,0.2``, ``--sw-sigma 1,3:1``) from each of ``--starts`` random
starts, keeps the candidate of the best run by LLK_free and averages its ``--best-k`` best
runs (aligned), and writes OUT (.npz, or .cxi with .vti, strain and isosurface beside it —
see :mod:`autophase.outputs`) plus OUT's stem + ``.png`` (central slices and the error
curve). Every option and the input are checked before anything runs or is written
(:meth:`autophase.phasing.PhasingParams.validate`); outputs appear atomically.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

NAME = "phase"
HELP = "iterative phase retrieval (ER/HIO/RAAR/shrink-wrap) of a 3D diffraction pattern"

# PhasingParams field -> the option that sets it (for one-line errors)
OPTIONS = {"schedule": "--schedule", "beta": "--beta", "shrink_wrap_every": "--shrink-wrap-every",
           "sw_sigma": "--sw-sigma", "sw_threshold": "--sw-threshold", "support": "--support",
           "starts": "--starts", "best_k": "--best-k", "seed": "--seed", "engine": "--engine",
           "device": "--device"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="pattern file: .npy .npz .h5 .cxi .tif (Bragg peak at the centre)")
    p.add_argument("-o", "--output", required=True, help="result file: .npz or .cxi (a .png is written beside it)")
    p.add_argument("--schedule", default="3*(20*ER+160*HIO+20*ER)",
                   help="ER, HIO and RAAR runs, e.g. '3*(20*ER+160*HIO+20*ER)', '3*(20*ER+160*RAAR+20*ER)', '50*ER'")
    p.add_argument("--shrink-wrap-every", type=int, default=20, metavar="K", help="shrink-wrap period (0 = off)")
    p.add_argument("--sw-sigma", default="1.0", metavar="S[,S...]",
                   help="shrink-wrap Gaussian σ in voxels, in (0, 10]; START:END for σ decreasing linearly over "
                        "the run (e.g. 3:1); a comma-separated list runs each as a candidate (e.g. 1,3:1)")
    p.add_argument("--sw-threshold", default="0.1", metavar="T[,T...]",
                   help="shrink-wrap threshold, a fraction of the maximum in (0, 1); a comma-separated list "
                        "(e.g. 0.1,0.15,0.2) runs each as a candidate and keeps the best by LLK_free")
    p.add_argument("--beta", type=float, default=0.9, help="HIO/RAAR feedback β in (0, 1]")
    p.add_argument("--support", default="0.5", help="initial support: box fraction (0.5) or 'auto' (autocorrelation)")
    p.add_argument("--starts", type=int, default=1, metavar="N",
                   help="random starts per candidate; the best by LLK_free is kept")
    p.add_argument("--best-k", type=int, default=1, metavar="K",
                   help="average the K best starts by LLK_free (aligned: twin, sub-voxel shift, phase), "
                        "1 ≤ K ≤ N; failed runs and runs above 1.3× the kept run's χ² are left out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-kind", choices=("intensity", "magnitude"), default="intensity",
                   help="whether INPUT holds counts (intensity) or √counts")
    p.add_argument("--dataset", help="HDF5 dataset path inside INPUT (default: CXI data or the only 3D dataset)")
    p.add_argument("--mask-invalid", action="store_true",
                   help="treat NaN and negative voxels as unmeasured instead of rejecting the file")
    p.add_argument("--engine", choices=("cpu", "torch"), default="cpu",
                   help="cpu: FFTW+numba (fastest on a CPU); torch: CUDA when present")
    p.add_argument("--device", default=None,
                   help="with --engine torch: cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--no-plot", action="store_true", help="do not write the PNG")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..io.patterns import load_pattern
    from ..outputs import check_output_path, write_reconstruction
    from ..phasing import phase

    out = check_output_path(args.output)
    params = params_from_args(args)  # every option checked before the input is read
    if params.engine == "cpu":  # the numba kernels compile while the input is read and FFTW plans
        from ..phasing.cpu import start_kernels

        start_kernels()
    pat = load_pattern(args.input, kind=args.input_kind, dataset=args.dataset, allow_invalid=args.mask_invalid)
    n_unmeasured = int((~pat.measured).sum())
    print(f"phase: {args.input}: {pat.magnitude.shape}, {float((pat.magnitude ** 2).sum()):.4g} photons"
          + (f", {n_unmeasured} unmeasured voxels" if n_unmeasured else ""), file=sys.stderr)
    t0 = time.perf_counter()
    res = phase(pat.magnitude, pat.measured, params=params, progress=sys.stderr.isatty())
    wall = time.perf_counter() - t0

    metrics = {
        "program": "autophase phase", "command": " ".join(sys.argv), "input": str(args.input),
        "schedule": args.schedule, "chi2": res.chi2, "chi2_free": res.chi2_free, "llk": res.llk,
        "llk_free": res.llk_free, "seconds": wall, "start": res.start, "starts": args.starts,
        "best_k": args.best_k, "averaged": res.averaged, "dropped": res.dropped,
        "selected_sw_threshold": float(res.selected["sw_threshold"]),
        "selected_sw_sigma": str(res.selected["sw_sigma"]),
    }
    arrays = {"chi2_history": np.asarray(res.history["chi2"], np.float64),
              "algorithm_history": np.asarray(res.history["algorithm"], dtype="U4"),
              "runs_llk_free": np.asarray([r["llk_free"] for r in res.runs], np.float64),
              "runs_chi2": np.asarray([r["chi2"] for r in res.runs], np.float64),
              "runs_sw_threshold": np.asarray([r["sw_threshold"] for r in res.runs], np.float64),
              "runs_sw_sigma": np.asarray([r["sw_sigma"] for r in res.runs], dtype="U"),
              "runs_start": np.asarray([r["start"] for r in res.runs], np.int64),
              "runs_failed": np.asarray([r["failed"] for r in res.runs], dtype="U")}
    write_reconstruction(out, res.object, res.support, metrics, history=res.history, arrays=arrays,
                         input_path=args.input, intensity=pat.intensity, unmeasured=~pat.measured,
                         plot=not args.no_plot,
                         title=f"{Path(args.input).name}: χ² {res.chi2:.4g}, LLK_free {res.llk_free:.4g}")
    n_runs = len(res.runs)
    how = (f"start {res.start + 1}/{args.starts}" if res.averaged == 1 else f"average of {res.averaged} best")
    if n_runs > args.starts:
        how += f", threshold {res.selected['sw_threshold']:g} σ {res.selected['sw_sigma']} of {n_runs} runs"
    if res.dropped:
        how += f", {res.dropped} failed run(s) dropped"
    print(f"phase: {out}: χ² {res.chi2:.5g}  χ²_free {res.chi2_free:.5g}  LLK {res.llk:.4g}  "
          f"LLK_free {res.llk_free:.4g}  ({wall:.2f} s, {how})")
    return 0


def params_from_args(args: argparse.Namespace):
    """A checked :class:`~autophase.phasing.PhasingParams` from the options, or an InputError
    naming the option (``--sw-threshold 5: a threshold must be …``)."""
    from ..errors import InputError
    from ..phasing.api import PhasingParams
    from ..phasing.checks import ParamError, parse_list

    support = args.support
    if support != "auto":
        try:
            support = float(support)
        except ValueError:
            raise InputError(f"--support {support}: expected a box fraction in (0, 1] or 'auto'") from None
    thresholds = parse_list("--sw-threshold", args.sw_threshold)
    sigmas = parse_list("--sw-sigma", args.sw_sigma, item=str)
    params = PhasingParams(schedule=args.schedule, beta=args.beta, shrink_wrap_every=args.shrink_wrap_every,
                           sw_sigma=sigmas if len(sigmas) > 1 else sigmas[0],
                           sw_threshold=thresholds if len(thresholds) > 1 else thresholds[0], support=support,
                           starts=args.starts, best_k=args.best_k, seed=args.seed, engine=args.engine,
                           device=args.device)
    try:
        return params.validate()
    except ParamError as e:
        raise e.for_option(OPTIONS.get(e.field, e.field)) from None
