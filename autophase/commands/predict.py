"""``autophase predict INPUT… -o OUT``: single-shot inversion with the trained network.

One input: OUT is the result file (.npz, or .cxi with .vti, strain and isosurface beside
it; a .png of central slices beside it). Several
inputs: OUT is a directory, created if needed, receiving ``<input stem>.npz/.png``.
All inputs are read and checked before the network runs, so a bad file leaves no output.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "predict"
HELP = "invert diffraction patterns with the trained AutoPhaseNN (optionally refined by K ER iterations)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..predict import add_refinement_arguments

    p.add_argument("inputs", nargs="+", metavar="INPUT", help="pattern files: .npy .npz .h5 .cxi .tif (64³)")
    p.add_argument("-o", "--output", required=True,
                   help="result .npz for one input, or a directory for several")
    p.add_argument("--model", help="checkpoint (default: the shipped autophase/models/default.pt)")
    p.add_argument("--refine", type=int, default=0, metavar="K", help="K ER iterations from the prediction")
    p.add_argument("--adapt", type=int, default=0, metavar="K",
                   help="first K gradient steps of a copy of the network on each pattern alone, physics loss only "
                        "(autophase.model.adapt; the model file is untouched)")
    p.add_argument("--adapt-lr", type=float, default=None, metavar="LR",
                   help="Adam learning rate of --adapt (default 1e-4)")
    add_refinement_arguments(p)
    p.add_argument("--batch-size", type=int, default=8, help="patterns per forward pass")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the network: ≈10 s once, then ≈1.6× faster (for many inputs)")
    p.add_argument("--backend", choices=("auto", "torch", "onnx"), default="auto",
                   help="what runs the network: onnx (ONNX Runtime, the same weights exported once; on the CPU "
                        "it starts without importing torch), torch, or auto (default: onnx on a CPU without "
                        "--compile when onnxruntime is installed, else torch)")
    p.add_argument("--input-kind", choices=("intensity", "magnitude"), default="intensity",
                   help="whether the inputs hold counts (intensity) or √counts")
    p.add_argument("--dataset", help="HDF5 dataset path inside the inputs")
    p.add_argument("--mask-invalid", action="store_true", help="NaN/negative voxels are unmeasured")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda if available)")
    p.add_argument("--no-plot", action="store_true", help="do not write PNGs")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..errors import InputError
    from ..io.patterns import load_pattern
    from ..predict import Predictor, default_symmetries, refinement_from_args, write_prediction

    if args.refine < 0:
        raise InputError(f"--refine: must be ≥ 0, got {args.refine}")
    refinement = refinement_from_args(args)  # checked before the model and the inputs are loaded
    from ..model.adapt import DEFAULT_ADAPT_LR, check_adapt

    check_adapt(args.adapt, DEFAULT_ADAPT_LR if args.adapt_lr is None else args.adapt_lr)
    out = Path(args.output)
    many = len(args.inputs) > 1
    if many:
        if out.suffix.lower() == ".npz":
            raise InputError(f"{out}: several inputs need an output directory, not a .npz file")
        stems = [Path(i).stem for i in args.inputs]
        if len(set(stems)) != len(stems):
            raise InputError("inputs share a file name stem; their outputs would collide")
        targets = [out / f"{s}.npz" for s in stems]
    else:
        from ..outputs import check_output_path

        targets = [check_output_path(out)]  # .npz, or .cxi with .vti/strain/isosurface beside it
    predictor = Predictor(args.model, device=args.device, batch_size=args.batch_size,
                          symmetries=default_symmetries(args.refine) if args.symmetries is None else args.symmetries,
                          compile=args.compile,
                          average_above=args.average_above, backend=args.backend,
                          echo=lambda m: print(f"predict: {m}", file=sys.stderr, flush=True))
    pats = [load_pattern(i, kind=args.input_kind, dataset=args.dataset, allow_invalid=args.mask_invalid)
            for i in args.inputs]
    for pat in pats:
        if pat.magnitude.shape != (predictor.size,) * 3:
            raise InputError(f"{pat.source}: the network takes {predictor.size}³ patterns, got {pat.magnitude.shape}")
    if many:
        out.mkdir(parents=True, exist_ok=True)
    mags = np.stack([p.magnitude for p in pats])
    results = predictor.predict(mags, [p.measured for p in pats], [p.source for p in pats], refine=args.refine,
                                refinement=refinement, adapt=args.adapt, adapt_lr=args.adapt_lr)
    for res, target, pat in zip(results, targets, pats):
        write_prediction(res, target, plot=not args.no_plot, intensity=pat.intensity, unmeasured=~pat.measured)
        how = f"NN + {res.refine_iterations} ER" if res.refine_iterations else "NN"
        if "adapt_steps" in res.history:
            c = res.history["adapt_chi2"]
            how = f"adapted ({res.history['adapt_steps']} steps, loss {c[0]:.4g} → {c[-1]:.4g}) " + how
        times = f"{res.seconds_nn * 1e3:.0f} ms NN"
        if res.symmetries > 1:
            times += f" over {res.symmetries} symmetric copies"
        if res.refine_iterations:
            times += f" + {res.seconds_refine:.2f} s ER"
        print(f"predict: {target}: {how}  χ² {res.chi2:.5g}  LLK_free {res.llk_free:.4g}  "
              f"({times}, model {predictor.meta['version']})")
    print(f"predict: {len(results)} pattern(s) with model {predictor.path}", file=sys.stderr)
    return 0
