"""``autophase watch INBOX -o OUT``: a warm service that images every scan as it lands.

Loads the model once, warms FFTW/numba/oneDNN on a synthetic crystal, prints a line
starting with ``ready`` and then inverts every pattern file renamed into INBOX
(.npy .npz .h5 .cxi .tif, with ``predict``'s options) and every raw 34-ID-C scan
directory once its ``SCAN_COMPLETE`` marker appears (through ``prep``), in arrival
order. Each result ``OUT/<stem>.cxi|.npz`` lands atomically and first; VTK and pictures
follow from a background process; ``OUT/events.jsonl`` gets one line per input (model
version, stage times, χ², LLK_free, latency) or error. SIGTERM/SIGINT end it cleanly; a
restart skips inputs whose result exists. See :mod:`autophase.live.service`.

    autophase watch inbox/ -o results/ --refine 50
    mv /detector/tmp/scan_0007.npy inbox/         # → results/scan_0007.cxi, .vti, .png
"""
from __future__ import annotations

import argparse

NAME = "watch"
HELP = "warm service: invert every pattern (or raw scan) renamed into INBOX, as it lands"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..predict import add_refinement_arguments

    p.add_argument("inbox", metavar="INBOX", help="folder to watch; writers rename finished files into it")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="results folder (created if needed)")
    p.add_argument("--model", help="checkpoint (default: the shipped autophase/models/default.pt)")
    p.add_argument("--refine", type=int, default=0, metavar="K", help="K ER iterations from each prediction")
    add_refinement_arguments(p)
    p.add_argument("--format", choices=("cxi", "npz"), default="cxi",
                   help="result file: cxi (with .vti, strain and pictures) or npz (default cxi)")
    p.add_argument("--no-plot", action="store_true", help="no PNGs (a .cxi result still gets its .vti)")
    p.add_argument("--input-kind", choices=("intensity", "magnitude"), default="intensity",
                   help="whether pattern files hold counts (intensity) or √counts")
    p.add_argument("--dataset", help="HDF5 dataset path inside the inputs")
    p.add_argument("--mask-invalid", action="store_true", help="NaN/negative voxels are unmeasured")
    p.add_argument("--batch-size", type=int, default=8, help="most queued patterns per network batch (default 8)")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda if available)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                   help="compile the network before 'ready' (inductor with freezing, batch 1: ≈1 min once "
                        "on 2 cores, then each pass ≈3× faster than eager; default on)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="the network's arithmetic: fp32, bf16 (bfloat16 weights and activations, answers in "
                        "float32), or auto: bf16 with --refine 0 on a CPU with native bfloat16 when compiled "
                        "(as good as fp32 alone; after ER it drifted), else fp32; default auto")
    p.add_argument("--poll-ms", type=float, default=10.0, help="how often INBOX is listed (default 10 ms)")
    p.add_argument("--scan-marker", default="SCAN_COMPLETE",
                   help="file whose presence marks a raw scan directory complete (default SCAN_COMPLETE)")
    p.add_argument("--http", type=int, metavar="PORT", help="serve the live page on PORT (0: any free port)")
    p.add_argument("--host", default="127.0.0.1", help="address of the live page (default 127.0.0.1)")
    p.add_argument("--learn", action="store_true",
                   help="fine-tune the model in the background on the scans seen; promote only better ones")
    from ..live.learn import add_learn_arguments

    add_learn_arguments(p)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import InputError
    from ..predict import refinement_from_args, resolve_model

    inbox, out = Path(args.inbox), Path(args.output)
    if not inbox.is_dir():
        raise InputError(f"{inbox}: no such folder to watch")
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    if out.resolve() == inbox.resolve() or inbox.resolve() in out.resolve().parents:
        raise InputError(f"{out}: the results folder must not be INBOX or inside it")
    if not out.exists() and not out.parent.is_dir():
        raise InputError(f"{out.parent}: no such folder for the results")
    if args.refine < 0:
        raise InputError(f"--refine: must be ≥ 0, got {args.refine}")
    if args.batch_size < 1:
        raise InputError(f"--batch-size: must be ≥ 1, got {args.batch_size}")
    if not 0 < args.poll_ms <= 10_000:
        raise InputError(f"--poll-ms: must be in (0, 10000], got {args.poll_ms}")
    if args.http is not None and not 0 <= args.http <= 65535:
        raise InputError(f"--http: a port 0–65535, got {args.http}")
    if not args.scan_marker or "/" in args.scan_marker:
        raise InputError(f"--scan-marker: a plain file name, got {args.scan_marker!r}")
    refinement = refinement_from_args(args)
    from ..model.symmetry import SYMMETRIES

    if args.symmetries is not None and not 1 <= args.symmetries <= len(SYMMETRIES):
        raise InputError(f"--symmetries: 1 to {len(SYMMETRIES)}, got {args.symmetries}")
    if not args.average_above >= 0:
        raise InputError(f"--average-above: a χ² ≥ 0, got {args.average_above}")
    resolve_model(args.model)  # a missing checkpoint is refused before anything is written
    from ..live.learn import learn_config_from_args

    learn_cfg = learn_config_from_args(args)  # checked with or without --learn

    from ..live.service import WatchConfig, WatchService

    cfg = WatchConfig(inbox=inbox, out=out, model=args.model, refine=args.refine, refinement=refinement,
                      symmetries=args.symmetries, average_above=args.average_above, input_kind=args.input_kind,
                      dataset=args.dataset, mask_invalid=args.mask_invalid, device=args.device,
                      batch_size=args.batch_size, fmt=args.format, plot=not args.no_plot, compile=args.compile,
                      precision=args.precision,
                      poll_s=args.poll_ms / 1000.0, marker=args.scan_marker, learn=args.learn, http=args.http,
                      host=args.host, extra={"learn": {"config": learn_cfg}})
    service = WatchService(cfg)
    service.start()
    return service.run()
