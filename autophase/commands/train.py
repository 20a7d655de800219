"""``autophase train``: unsupervised training of AutoPhaseNN on one or many ranks.

Examples::

    autophase train --data runs/sim --out runs/train --epochs 20
    mpiexec -n 2 autophase train --engine ddp --data runs/sim --out runs/train
    horovodrun -np 2 autophase train --engine horovod --data runs/sim --out runs/train
    autophase train --data runs/sim --out runs/train --epochs 40 --resume      # continue

``--resume`` continues the checkpoint's run: its network and recipe, except ``--epochs``,
``--time-limit`` and ``--workers``; any other option given with a value that differs from
the checkpoint's is named on one line as ignored. SIGTERM (a walltime warning, scancel)
writes a checkpoint at the next step and exits with status 75 (``EXIT_TERMINATED``).
    autophase train --data scan*.cxi --repeat 320 --init autophase/models/default.pt \\
        --lr 1e-6 --freeze-bn --out runs/finetune                           # fine-tune
    autophase train --data synthetic:800 --out /tmp/t --epochs 2 --steps-per-epoch 5  # debug
"""
from __future__ import annotations

import argparse

NAME = "train"
HELP = "train AutoPhaseNN without ground truth (physics-aware loss), on 1..N ranks (DDP or Horovod)"


def _threshold(s: str) -> tuple[float, float, int]:
    try:
        a, b, n = s.split(":")
        return float(a), float(b), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected START:END:STEPS (e.g. 0:0.1:150), got {s!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", nargs="+", required=True, metavar="RUN_DIR|FILE|synthetic:N",
                   help="simulated run directories (one or more, concatenated), pattern files (fine-tuning), "
                        "or synthetic:N[:SEED[:LO:HI]]")
    p.add_argument("--out", required=True, help="output directory (checkpoints, metrics.csv, tb/, config.json)")
    p.add_argument("--engine", choices=("none", "ddp", "horovod"), default="none",
                   help="data-parallel engine; ranks come from the launcher (mpiexec, srun, horovodrun)")
    p.add_argument("--epochs", type=int, default=20, help="total epochs (a resumed run continues to this number)")
    p.add_argument("--batch-size", type=int, default=8, help="patterns per rank per step")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (the paper's 1e-3; fine-tuning: e.g. 1e-6)")
    p.add_argument("--resume", nargs="?", const="auto", default=None, metavar="CKPT",
                   help="continue a run: CKPT, or OUT/checkpoint.pt when it exists")
    p.add_argument("--init", metavar="CKPT", help="start from these weights (fine-tuning), new optimiser; with "
                   "--resume (no CKPT) only when --out has no checkpoint yet")
    p.add_argument("--width", type=int, default=8, help="channels of the first encoder block")
    p.add_argument("--depth", type=int, default=4, help="encoder blocks (max-pools)")
    p.add_argument("--input-norm", choices=("max", "log"), default="max", help="per-sample input scaling")
    p.add_argument("--loss", choices=("chi2", "mae", "mae_max"), default="chi2",
                   help="chi2: fitted-scale χ² (default); mae: eq. 1 with fitted scale; mae_max: max-normalised")
    p.add_argument("--centre-weight", type=float, default=0.0, metavar="W",
                   help="weight of the centre-of-mass penalty that keeps objects off the box walls")
    p.add_argument("--threshold", type=_threshold, default=(0.0, 0.1, 150), metavar="START:END:STEPS",
                   help="support threshold (fraction of each sample's amplitude max) ramp")
    p.add_argument("--warmup", type=int, default=20, help="linear learning-rate warm-up steps")
    p.add_argument("--clip", type=float, default=1.0, help="gradient norm clip (0: none)")
    p.add_argument("--scheduler", choices=("plateau", "none"), default="plateau",
                   help="ReduceLROnPlateau (factor 0.5) on the validation loss, or a constant rate")
    p.add_argument("--patience", type=int, default=2, help="plateau patience in epochs")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--steps-per-epoch", type=int, help="cap on steps per epoch")
    p.add_argument("--max-samples", type=int, help="use only the first N patterns")
    p.add_argument("--max-val", type=int, help="cap on validation patterns")
    p.add_argument("--time-limit", type=float, metavar="MIN", help="stop after the epoch that passes MIN minutes")
    p.add_argument("--no-augment", action="store_true", help="no random flips/axis permutations")
    p.add_argument("--thin", type=float, default=0.0, help="Poisson thinning strength in [0, 1)")
    p.add_argument("--repeat", type=int, default=1, help="pattern files: times each file appears per epoch")
    p.add_argument("--freeze-bn", action="store_true", help="BatchNorm in eval mode (fine-tuning on few patterns)")
    p.add_argument("--bn-recalibrate", type=int, default=4, help="batches to re-estimate BN stats before validation")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="data-loader worker processes per rank")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: this rank's GPU if any)")
    p.add_argument("--no-amp", action="store_true", help="GPU: no bfloat16 autocast")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--select-on", metavar="PANEL",
                   help="keep best.pt by NN + K ER against phasing on held-back patterns, e.g. "
                        "generator2:8:2,simulator:8:22,scan54:3 (autophase.train.selection; default: by the "
                        "validation loss)")
    p.add_argument("--select-refine", type=int, default=None, metavar="K",
                   help="ER iterations after the network when selecting (default 50)")


#: option dest → (network or train, field(s) of NetworkConfig / TrainConfig) that --resume keeps
_KEPT_ON_RESUME = {
    "width": ("network", "width"), "depth": ("network", "depth"), "input_norm": ("network", "input_norm"),
    "batch_size": ("train", "batch_size"), "lr": ("train", "lr"), "loss": ("train", "loss"),
    "centre_weight": ("train", "centre_weight"),
    "threshold": ("train", ("threshold_start", "threshold_end", "threshold_steps")),
    "warmup": ("train", "warmup_steps"), "clip": ("train", "clip"), "scheduler": ("train", "scheduler"),
    "patience": ("train", "plateau_patience"), "val_fraction": ("train", "val_fraction"),
    "steps_per_epoch": ("train", "steps_per_epoch"), "max_samples": ("train", "max_samples"),
    "max_val": ("train", "max_val"), "no_augment": ("train", "augment"), "thin": ("train", "thin"),
    "freeze_bn": ("train", "freeze_bn"), "bn_recalibrate": ("train", "bn_recalibrate"), "seed": ("train", "seed"),
    "no_amp": ("train", "amp"),
}


def ignored_on_resume(args: argparse.Namespace, network, config) -> list[str]:
    """The options given (not at their default) whose value differs from what the resumed
    checkpoint keeps (``network``: its NetworkConfig, ``config``: its TrainConfig), as
    ``"--lr 0.002 (checkpoint: 0.001)"`` strings."""
    p = argparse.ArgumentParser(add_help=False)
    add_arguments(p)
    defaults = {a.dest: a.default for a in p._actions}
    flags = {a.dest: a.option_strings[0] for a in p._actions if a.option_strings}
    out = []
    for dest, (which, fields) in _KEPT_ON_RESUME.items():
        given = getattr(args, dest, None)
        if given == defaults.get(dest):
            continue
        obj = network if which == "network" else config
        if isinstance(fields, tuple):
            kept, asked = tuple(getattr(obj, f) for f in fields), tuple(given)
            show = lambda v: ":".join(f"{x:g}" for x in v)  # noqa: E731
        else:
            kept = getattr(obj, fields)
            asked = (not given) if dest.startswith("no_") else given
            show = (lambda v, f=fields: f"{f}={v}") if isinstance(kept, bool) else str
        if asked != kept:
            out.append(f"{flags[dest]}" + ("" if isinstance(given, bool) else f" {show(asked)}")
                       + f" (checkpoint: {show(kept)})")
    return out


def run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from ..distributed import init_engine
    from ..errors import InputError
    from ..mpi_world import check_world
    from ..model.network import NetworkConfig
    from ..train.data import open_dataset
    from ..train.trainer import EXIT_TERMINATED, Terminated, TrainConfig, Trainer

    check_world("train")  # before any file: COMM_WORLD.size == the ranks asked for
    out = Path(args.out)
    resume = None
    if args.resume == "auto":
        resume = out / "checkpoint.pt" if (out / "checkpoint.pt").exists() else None
    elif args.resume:
        resume = Path(args.resume)
        if not resume.is_file():
            raise InputError(f"{resume}: no such checkpoint to resume")
    if resume and args.init:
        if args.resume != "auto":
            raise InputError("--resume CKPT and --init exclude each other (resume continues a run, init starts one)")
        # `--init X --resume`: start from X, or continue the run X started if it has a
        # checkpoint — what a resumable fine-tuning job (a workflow's train stage) needs
        print(f"train: {resume} exists: resuming it (--init {args.init} was its start, not reloaded)", flush=True)
        args.init = None
    if not 0 <= args.thin < 1:
        raise InputError(f"--thin {args.thin}: must be in [0, 1)")
    if args.select_on is None and args.select_refine is not None:
        raise InputError(f"--select-refine {args.select_refine}: only with --select-on (without a panel best.pt "
                         "is kept by the validation loss)")
    try:
        net = NetworkConfig(width=args.width, depth=args.depth, input_norm=args.input_norm)
        t0, t1, tn = args.threshold
        cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup,
                          clip=args.clip, loss=args.loss, centre_weight=args.centre_weight, threshold_start=t0, threshold_end=t1, threshold_steps=tn,
                          scheduler=args.scheduler, plateau_patience=args.patience, val_fraction=args.val_fraction,
                          steps_per_epoch=args.steps_per_epoch, max_samples=args.max_samples, max_val=args.max_val,
                          time_limit_min=args.time_limit, augment=not args.no_augment, thin=args.thin,
                          freeze_bn=args.freeze_bn, bn_recalibrate=args.bn_recalibrate, seed=args.seed,
                          workers=args.workers, amp=not args.no_amp, select_on=args.select_on,
                          select_refine=TrainConfig.select_refine if args.select_refine is None
                          else args.select_refine)
    except ValueError as e:
        raise InputError(f"train: {e}") from None
    dataset = open_dataset(args.data, repeat=args.repeat)
    engine = init_engine(args.engine, device=args.device)
    try:
        if resume and engine.is_root:
            print(f"train: resuming from {resume}", flush=True)
        try:
            trainer = Trainer(net, cfg, dataset, out, engine, resume=resume, init=args.init,
                              progress=False if args.no_progress else None,
                              extra_meta={"command": " ".join(["autophase"] + sys.argv[1:])})
        except ValueError as e:
            raise InputError(f"train: {e}") from None
        if resume:
            ignored = ignored_on_resume(args, trainer.net_cfg, trainer.cfg)
            if ignored and engine.is_root:
                print(f"train: --resume continues the checkpoint's run; ignoring {', '.join(ignored)}",
                      file=sys.stderr, flush=True)
        try:
            hist = trainer.fit()
        except Terminated:
            return EXIT_TERMINATED
        if engine.is_root and hist:
            last = hist[-1]
            print(f"train: done, epoch {last['epoch']}: val {last['val_loss']:.4g} (best trivial "
                  f"{last.get('best_trivial', float('nan')):.4g}); checkpoints in {out}/", flush=True)
    finally:
        engine.shutdown()
    return 0
