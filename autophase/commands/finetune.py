"""``autophase finetune PATTERN… -o OUT``: fine-tune the network on measured patterns, before/after.

Augments the prepared patterns (rotation, resampling, flipping), fine-tunes the model
from its weights, and compares the model before and after on a pattern held back —
``--holdout FILE``, or ``--split-photons`` to split a single scan's photons into an
independent training half and held-back half (:mod:`autophase.beamline.finetune`).
"""
from __future__ import annotations

import argparse

NAME = "finetune"
HELP = "fine-tune the network on a few measured patterns and compare before/after on one held back"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="PATTERN", help="prepared 64³ patterns (counts): .cxi .npz .npy .h5 .tif")
    p.add_argument("-o", "--output", required=True, help="output directory")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--holdout", metavar="PATTERN", help="the pattern held back for the before/after comparison")
    g.add_argument("--split-photons", action="store_true",
                   help="one input: split its photons into independent training and held-back halves")
    p.add_argument("--model", help="starting checkpoint (default: the shipped model)")
    p.add_argument("--n-augment", type=int, default=320, help="augmented copies to train on")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-4, help="Adam learning rate (the paper: 1e-6 over 3,200 patterns)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--refine", type=int, default=50, metavar="K", help="ER iterations after the network (0: none)")
    p.add_argument("--max-angle", type=float, default=180.0, help="largest augmentation rotation, degrees")
    p.add_argument("--as-measured", type=float, default=None, metavar="F",
                   help="share of the copies kept as measured (orientation and sampling) and photon-thinned "
                        "instead of rotated, resampled and flipped, 0–1 (default: FinetuneConfig.as_measured)")
    p.add_argument("--no-freeze-bn", action="store_true", help="let BatchNorm statistics adapt to the new patterns")
    p.add_argument("--phasing-starts", type=int, default=3, metavar="N",
                   help="phasing seeds on the held-back pattern, the median compared with NN + ER (0: none)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..beamline.finetune import FinetuneConfig, finetune

    cfg = FinetuneConfig(n_augment=args.n_augment, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                         refine=args.refine, seed=args.seed, max_angle_deg=args.max_angle,
                         freeze_bn=not args.no_freeze_bn, phasing_starts=args.phasing_starts,
                         **({} if args.as_measured is None else {"as_measured": args.as_measured}))
    finetune(args.inputs, args.output, holdout=args.holdout, split=args.split_photons, model=args.model,
             config=cfg, progress=False if args.no_progress else None)
    return 0
