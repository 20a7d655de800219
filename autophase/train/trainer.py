"""Unsupervised training of AutoPhaseNN: magnitudes in, physics loss out, on one or many ranks.

One step (per rank, on its own batch of B patterns ``(B, 1, 64, 64, 64)`` √counts)::

    x  = augment(batch)                       exact symmetries (+ optional thinning)
    A, φ = model(x)                           the CNN (input normalised inside)
    L  = mean_b loss(A, φ, x; t(step))        autophase.train.loss (FFT, fitted scale)
    backward → engine.step: average gradients over ranks, clip at `clip`, Adam

Recipe (defaults; why: docs/training.md and TRAINING-NOTES.md): fitted-scale χ² loss,
Adam lr 1e-3 (the paper's) with a 20-step linear warm-up, gradient clipping at 1.0, support threshold
ramped 0 → 0.10 over 150 steps, random symmetry augmentation, ReduceLROnPlateau
(factor 0.5, patience 2) on the *validation* loss — the training loss is too noisy
to drive it. Batch size is per rank (the paper: 16 per GPU); the global batch is
B × world and the learning rate is not rescaled automatically.

Each epoch ends with: BatchNorm statistics re-estimated over a few training batches and
averaged over ranks (running averages lag a network that is still changing fast and
made held-out loss jump in eval mode); validation over this rank's part of the held-out
20 %, summed over ranks; the losses of fixed trivial answers on the same patterns; the
spread of predictions across inputs (≈ 0 means collapse: every input gets the same
answer); a checkpoint written atomically (``checkpoint.pt``, plus ``best.pt`` on a new
best validation loss, or with ``select_on`` a new best NN + K ER score against phasing on
held-back patterns of several sources, :mod:`autophase.train.selection`); ``metrics.csv``
rewritten from the history kept in the checkpoint (so a resumed run's CSV is exactly its
history); TensorBoard scalars under ``tb/``.

``resume`` continues from a checkpoint with its epoch count, step, learning rate,
optimiser, scheduler and augmentation RNG; ``init`` takes only the weights (fine-tuning).

**SIGTERM** (Slurm and PBS send it before a walltime kill, ``scancel`` and ``qdel`` too):
the handler only sets a flag; at the next step boundary the ranks agree (an all-reduce of
the flag, so one signalled rank stops them all at the same step), rank 0 writes
``checkpoint.pt`` *inside the epoch* — model, optimiser, scheduler, step, and the epoch's
position: steps done, every rank's augmentation RNG state and its losses so far — and
:meth:`Trainer.fit` raises :class:`Terminated` (the CLI exits with :data:`EXIT_TERMINATED`).
``resume`` from it skips the batches already done and continues with the same draws, so
the resumed run takes the same steps as one never interrupted. Data-loader workers ignore
SIGTERM (the main process stops them), so a signal sent to the whole process group does
not turn into a "worker killed" error.
The trainer never reads ground truth: datasets yield magnitudes only.
"""
from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..atomic import write_json, write_text
from ..distributed import Engine
from ..model.checkpoint import read_checkpoint, save_checkpoint
from ..model.network import AutoPhaseNet, NetworkConfig
from ..strict import strict_from_dict
from .data import RankShardSampler, augment_batch, describe, rank_shard, split_indices
from .loss import LOSSES, centre_offset, centre_penalty, physics_loss, ramp
from .trivial import TRIVIAL_ANSWERS, TrivialAnswers

__all__ = ["TrainConfig", "Trainer", "prediction_spread", "Terminated", "EXIT_TERMINATED"]

#: Exit status of ``autophase train`` stopped by SIGTERM after writing its checkpoint
#: (sysexits' EX_TEMPFAIL: try again — with ``--resume``).
EXIT_TERMINATED = 75
#: Test hook: after global step K, ``K`` sends SIGTERM to this process, ``K@R`` only on rank R,
#: ``K@group`` to this process's whole process group (as scancel does: loader workers too).
TERM_HOOK_ENV = "AUTOPHASE_TEST_TERM_AFTER_STEP"


class Terminated(Exception):
    """Training stopped on SIGTERM; ``checkpoint`` holds the state to resume from."""

    def __init__(self, step: int, checkpoint: Path | None):
        super().__init__(f"stopped by SIGTERM at step {step}; resume with --resume")
        self.step, self.checkpoint = step, checkpoint


def _ignore_sigterm(_worker_id: int) -> None:
    """DataLoader worker_init_fn: leave SIGTERM to the main process (it stops the workers)."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _term_hook(rank: int) -> tuple[int, bool] | None:
    """(step, whole process group) from :data:`TERM_HOOK_ENV`, None when unset or another rank's."""
    v = os.environ.get(TERM_HOOK_ENV)
    if not v:
        return None
    step, _, who = v.partition("@")
    if who and who != "group" and int(who) != rank:
        return None
    return int(step), who == "group"


def _send_sigterm(group: bool) -> None:
    if group:
        os.killpg(os.getpgid(0), signal.SIGTERM)
    else:
        os.kill(os.getpid(), signal.SIGTERM)


@dataclass
class TrainConfig:
    """Everything that defines a training run besides the network and the data.

    epochs : total epochs (a resumed run continues up to this number).
    batch_size : per rank.
    steps_per_epoch : cap on optimiser steps per epoch (None: one pass over the data).
    max_samples : use only the first N patterns of the dataset.
    max_val : cap on validation patterns (None: all of the held-out fraction).
    time_limit_min : stop after the epoch during which this many minutes have passed.
    thin : Poisson thinning strength (p ~ U(1 − thin, 1)); 0 = off.
    freeze_bn : BatchNorm in eval mode throughout (fine-tuning on few patterns; exact
        equivalence of N-rank and 1-process steps).
    bn_recalibrate : training batches used to re-estimate BatchNorm statistics before
        each validation (0 = keep the running averages).
    select_on : a panel ``SOURCE:N:SEED,…`` (:mod:`autophase.train.selection`): ``best.pt``
        is kept by NN + ``select_refine`` ER against phasing on it, not by the validation
        loss (which still drives the scheduler). None: by the validation loss.
    """

    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-3
    warmup_steps: int = 20
    clip: float = 1.0
    loss: str = "chi2"
    centre_weight: float = 0.0
    threshold_start: float = 0.0
    threshold_end: float = 0.10
    threshold_steps: int = 150
    scheduler: str = "plateau"
    plateau_patience: int = 2
    val_fraction: float = 0.2
    steps_per_epoch: int | None = None
    max_samples: int | None = None
    max_val: int | None = None
    time_limit_min: float | None = None
    augment: bool = True
    thin: float = 0.0
    freeze_bn: bool = False
    bn_recalibrate: int = 4
    seed: int = 0
    workers: int = 0
    amp: bool = True  # bfloat16 autocast, GPU only
    channels_last: bool = True  # channels_last_3d memory format (CPU and GPU)
    select_on: str | None = None
    select_refine: int = 50

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, not {self.loss!r}")
        if self.scheduler not in ("plateau", "none"):
            raise ValueError(f"scheduler must be 'plateau' or 'none', not {self.scheduler!r}")
        if self.batch_size < 1 or self.epochs < 0 or self.lr <= 0:
            raise ValueError("need batch_size ≥ 1, epochs ≥ 0, lr > 0")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if self.select_on is not None:
            from .selection import parse_panel

            parse_panel(self.select_on)  # an InputError naming --select-on
            if self.select_refine < 1:
                raise ValueError(f"--select-refine: K ≥ 1 ER iterations, got {self.select_refine}")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return strict_from_dict(cls, d, "training")


def prediction_spread(s1: torch.Tensor, s2: torch.Tensor, n: float) -> float:
    """Spread of predictions across inputs from running sums over n samples: Σa and Σa² per voxel.

    spread = √(mean over voxels of Var_samples(a)) / √(mean over voxels of E_samples[a²]):
    0 when every input gets the same answer (collapse); ≈ 0.3–0.7 for crystals of
    different shapes. Sums (not the predictions) are what the ranks all-reduce.
    """
    if n < 2:
        return float("nan")
    mean, msq = s1.double() / n, s2.double() / n
    var = (msq - mean * mean).clamp_min(0)
    return float(var.mean().sqrt() / msq.mean().sqrt().clamp_min(1e-30))


def _bn_modules(model: torch.nn.Module) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def _write_csv_atomic(path: Path, rows: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


class Trainer:
    """Builds model, optimiser, scheduler and loaders for this rank; :meth:`fit` trains.

    Parameters
    ----------
    network, config : the network shape and the training recipe.
    dataset : magnitudes, each item float32 ``(1, S, S, S)`` (√counts).
    out_dir : checkpoints, metrics.csv, tb/, config.json (written by rank 0).
    engine : from :func:`autophase.distributed.init_engine`.
    resume : a checkpoint to continue (network and recipe come from it, except
        ``epochs``/``time_limit_min``, which the caller may extend).
    init : a checkpoint whose weights start a new run (fine-tuning).
    """

    def __init__(self, network: NetworkConfig, config: TrainConfig, dataset: Dataset, out_dir: str | os.PathLike,
                 engine: Engine | None = None, resume: str | os.PathLike | None = None,
                 init: str | os.PathLike | None = None, progress: bool | None = None,
                 extra_meta: dict[str, Any] | None = None):
        self.engine = eng = engine or Engine()
        self.out = Path(out_dir)
        self.progress = progress
        self.extra_meta = extra_meta or {}
        ck = read_checkpoint(resume) if resume else None
        if ck is not None:
            network = NetworkConfig.from_dict(ck["network"])
            kept = TrainConfig.from_dict(ck["train"])
            # what may change on resume: how long to go on, how many loader processes, and
            # which checkpoint to keep as best (it changes no step)
            kept.epochs, kept.time_limit_min, kept.workers = config.epochs, config.time_limit_min, config.workers
            kept.select_on, kept.select_refine = config.select_on, config.select_refine
            config = kept
        self.net_cfg, self.cfg = network, config
        cfg = config
        self.device = eng.device
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            # every batch has the same shape: let cuDNN time its 3D-conv algorithms once
            torch.backends.cudnn.benchmark = True

        # ---- data: split once (same on every rank), then shard the training part per epoch
        n = len(dataset) if cfg.max_samples is None else min(len(dataset), cfg.max_samples)
        self.dataset = dataset
        self.train_idx, self.val_idx = split_indices(n, cfg.val_fraction, cfg.seed)
        if cfg.max_val is not None:
            self.val_idx = self.val_idx[: cfg.max_val]
        self.sampler = RankShardSampler(self.train_idx, eng.rank, eng.world, cfg.batch_size, cfg.seed)
        if self.sampler.steps == 0:
            raise ValueError(f"{len(self.train_idx)} training patterns cannot fill one batch of {cfg.batch_size} "
                             f"on each of {eng.world} rank(s)")
        self.steps_per_epoch = self.sampler.steps if cfg.steps_per_epoch is None else min(
            self.sampler.steps, cfg.steps_per_epoch)
        kw = dict(num_workers=cfg.workers, pin_memory=self.cuda, persistent_workers=cfg.workers > 0,
                  worker_init_fn=_ignore_sigterm if cfg.workers > 0 else None)
        self._loader_kw = kw
        self.train_loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=self.sampler, drop_last=True, **kw)
        self.my_val = [int(i) for i in rank_shard(self.val_idx, eng.rank, eng.world)]
        self.val_loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=self.my_val, **kw)

        # ---- model and optimiser (same seed everywhere; rank 0's state is broadcast anyway)
        torch.manual_seed(cfg.seed)
        net = AutoPhaseNet(network)
        if init is not None:
            net.load_state_dict(read_checkpoint(init)["model"])
        if ck is not None:
            net.load_state_dict(ck["model"])
        net = net.to(self.device)
        self.channels_last = cfg.channels_last and eng.supports_channels_last
        if self.channels_last:
            # channels-last 3D tensors: oneDNN/cuDNN's fast layout (on this 2-core CPU a
            # width-8 training step at batch 8 took 1.09 s instead of 1.76 s). Not with
            # Horovod, whose collectives need contiguous tensors.
            net = net.to(memory_format=torch.channels_last_3d)
        self.net = net
        self.params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.Adam(self.params, lr=cfg.lr)
        self.scheduler = (torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=cfg.plateau_patience)
                          if cfg.scheduler == "plateau" else None)
        self.epoch, self.step, self.history, self.best = 0, 0, [], math.inf
        self._partial: dict[str, Any] | None = None
        self._term = False
        self.aug_gen = torch.Generator().manual_seed(cfg.seed * 1000 + eng.rank)
        if ck is not None:
            opt.load_state_dict(ck["optimizer"])
            if self.scheduler is not None and ck.get("scheduler"):
                self.scheduler.load_state_dict(ck["scheduler"])
            self.epoch, self.step = int(ck["epoch"]), int(ck["step"])
            self.history = list(ck.get("history", []))
            self.best = float(ck.get("best", math.inf))
            if ck.get("best_on", "val_loss") != self.best_on:  # another yardstick: start its best afresh
                self.best = math.inf
            self._partial = ck.get("partial")  # stopped inside an epoch (SIGTERM)
            if self._partial is not None and int(self._partial["world"]) != eng.world:
                raise ValueError(f"{resume}: stopped inside an epoch on {self._partial['world']} rank(s); "
                                 f"resume it on the same number (here {eng.world}) or from an epoch's end")
        self.model = eng.wrap_model(net)
        self.opt = eng.wrap_optimizer(opt, net)
        eng.broadcast_state(net, self.opt)
        self.trivial = TrivialAnswers(network.size, self.device)
        self.resumed_from = str(resume) if resume else None
        self.init_from = str(init) if init else None
        self.panel = None  # the selection panel: rank 0 builds it at the first epoch's end

    @property
    def best_on(self) -> str:
        """What ``best.pt`` is kept by: ``"val_loss"`` or ``"select PANEL K"``."""
        c = self.cfg
        return "val_loss" if c.select_on is None else f"select {c.select_on} K{c.select_refine}"

    def _select(self) -> dict[str, Any]:
        """Rank 0 scores this epoch's weights on the selection panel; every rank gets the figures."""
        from .selection import SelectionPanel

        out: dict[str, Any] | None = None
        if self.engine.is_root:
            if self.panel is None:
                self.panel = SelectionPanel(self.cfg.select_on, self.cfg.select_refine, self.out, log=self._log)
            tmp = self.out / ".select-candidate.pt"
            save_checkpoint(tmp, self.state())
            try:
                out = self.panel.score(tmp, device=str(self.device))
            finally:
                tmp.unlink(missing_ok=True)
        return self.engine.broadcast_object(out)

    # ------------------------------------------------------------------ one step
    def _autocast(self):
        if self.cuda and self.cfg.amp:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return x

    def _set_train_mode(self) -> None:
        self.model.train()
        if self.cfg.freeze_bn:
            for m in _bn_modules(self.net):
                m.eval()

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        """One optimiser step on this rank's batch ``x`` (B, 1, S, S, S), already augmented."""
        cfg = self.cfg
        if self.step < cfg.warmup_steps:
            for g in self.opt.param_groups:
                g["lr"] = cfg.lr * (self.step + 1) / cfg.warmup_steps
        thr = ramp(self.step, cfg.threshold_start, cfg.threshold_end, cfg.threshold_steps)
        self._set_train_mode()
        x = self._to_device(x)
        with self._autocast():
            amp, phase = self.model(x)
        per = physics_loss(amp, phase, x, cfg.loss, thr)
        if cfg.centre_weight:
            per = per + cfg.centre_weight * centre_penalty(amp)
        loss = per.mean()
        self.opt.zero_grad()  # (Horovod's optimizer takes no set_to_none; None is the default)
        loss.backward()
        gnorm = self.engine.step(self.opt, self.params, cfg.clip)
        self.step += 1
        return {"loss": float(loss.detach()), "grad_norm": gnorm, "threshold": thr,
                "lr": self.opt.param_groups[0]["lr"]}

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def recalibrate_bn(self, n_batches: int) -> None:
        """Re-estimate BatchNorm statistics (cumulative average over ``n_batches``), averaged over ranks."""
        bns = _bn_modules(self.net)
        if not bns or n_batches <= 0 or self.cfg.freeze_bn:
            return
        moms = [m.momentum for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative moving average: exact mean over the batches seen
        self.net.train()
        gen = torch.Generator().manual_seed(self.cfg.seed + 7919 * (self.epoch + 1) + self.engine.rank)
        order = np.asarray(self.train_idx)[torch.randperm(len(self.train_idx), generator=gen).numpy()]
        mine = rank_shard(order, self.engine.rank, self.engine.world)
        for b in range(n_batches):
            idx = mine[b * self.cfg.batch_size:(b + 1) * self.cfg.batch_size]
            if len(idx) < 2:  # BatchNorm statistics of one sample are meaningless
                break
            x = torch.stack([self.dataset[int(i)] for i in idx])
            if self.cfg.augment:
                x = augment_batch(x, gen, self.cfg.thin)
            with self._autocast():
                self.net(self._to_device(x))
        for m, mom in zip(bns, moms):
            m.momentum = mom
        self.engine.all_reduce_mean_([t for m in bns for t in (m.running_mean, m.running_var)])

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Held-out losses (eval-mode BN), trivial answers' losses and prediction spread, over all ranks."""
        cfg = self.cfg
        self.net.eval()
        S = self.net_cfg.size
        kinds = tuple(dict.fromkeys(("chi2", "mae", cfg.loss)))  # χ² always: it compares runs
        sums = {f"val_{k}": 0.0 for k in kinds}
        sums.update({f"trivial_{a}": 0.0 for a in TRIVIAL_ANSWERS})
        sums["centre_offset_vox"] = 0.0  # mean distance of the predictions' centre of mass from the centre
        s1 = torch.zeros(S, S, S, dtype=torch.float64)
        s2 = torch.zeros(S, S, S, dtype=torch.float64)
        n = 0
        gap = [0.0, 0.0]
        for bi, x in enumerate(self.val_loader):
            x = self._to_device(x)
            with self._autocast():
                amp, phase = self.net(x)
            for k in kinds:
                sums[f"val_{k}"] += float(physics_loss(amp, phase, x, k, cfg.threshold_end).sum())
            for a, v in self.trivial.losses(x, cfg.loss).items():
                sums[f"trivial_{a}"] += float(v.sum())
            sums["centre_offset_vox"] += float(
                centre_offset(amp).square().sum(-1).sqrt().sum())
            a64 = amp.double().cpu()
            s1 += a64.sum(0)
            s2 += (a64 * a64).sum(0)
            n += x.shape[0]
            if bi == 0 and x.shape[0] > 1 and not cfg.freeze_bn:
                # The same batch with batch statistics (momentum 0: running stats untouched):
                # eval and train mode should agree if the BN statistics are right.
                bns = _bn_modules(self.net)
                moms = [m.momentum for m in bns]
                for m in bns:
                    m.momentum = 0.0
                    m.train()
                with self._autocast():
                    a_t, p_t = self.net(x)
                for m, mom in zip(bns, moms):
                    m.momentum = mom
                    m.eval()
                gap = [float(physics_loss(amp, phase, x, cfg.loss, cfg.threshold_end).mean()),
                       float(physics_loss(a_t, p_t, x, cfg.loss, cfg.threshold_end).mean())]
        keys = list(sums)
        tot = self.engine.all_reduce_sum([sums[k] for k in keys] + [n, gap[0], gap[1], 1.0 if gap[1] else 0.0])
        if float(tot[len(keys)]) == 0:  # no validation patterns (--val-fraction 0)
            return {"val_loss": float("nan"), "pred_spread": float("nan"), "bn_gap": float("nan"), "n_val": 0.0}
        m = {k: float(tot[i]) / float(tot[len(keys)]) for i, k in enumerate(keys)}
        m["val_loss"] = m[f"val_{cfg.loss}"]  # in the same loss as the trivial answers beside it
        ng = float(tot[-1])
        m["bn_gap"] = float(tot[-3]) / float(tot[-2]) if ng and float(tot[-2]) > 0 else float("nan")
        both = self.engine.all_reduce_sum(torch.stack([s1, s2]))
        N = float(tot[len(keys)])
        m["pred_spread"] = prediction_spread(both[0], both[1], N)
        m["best_trivial"] = min(m[f"trivial_{a}"] for a in TRIVIAL_ANSWERS)
        m["val_over_best_trivial"] = m["val_loss"] / m["best_trivial"] if m["best_trivial"] > 0 else float("nan")
        m["n_val"] = N
        return m

    # ------------------------------------------------------------------ bookkeeping
    def state(self) -> dict[str, Any]:
        import autophase

        return {
            "network": self.net_cfg.to_dict(), "train": asdict(self.cfg), "model": self.net.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "epoch": self.epoch, "step": self.step, "best": self.best, "best_on": self.best_on,
            "history": self.history,
            "engine": self.engine.name, "world": self.engine.world, "data": describe(self.dataset),
            "val_indices": [int(i) for i in self.val_idx],
            "autophase_version": autophase.__version__, **self.extra_meta,
        }

    def _write_config(self) -> None:
        d = {"network": self.net_cfg.to_dict(), "train": asdict(self.cfg), "data": describe(self.dataset),
             "n_train": len(self.train_idx), "n_val": len(self.val_idx), "engine": self.engine.name,
             "world": self.engine.world, "steps_per_epoch": self.steps_per_epoch, "device": str(self.device),
             "resumed_from": self.resumed_from, "init_from": self.init_from, **self.extra_meta}
        write_json(self.out / "config.json", d, indent=2, default=str)

    def _log(self, msg: str) -> None:
        if self.engine.is_root:
            print(msg, flush=True)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> list[dict[str, Any]]:
        """Train up to ``config.epochs``; returns the history (one dict per epoch)."""
        from tqdm import tqdm

        cfg, eng = self.cfg, self.engine
        root = eng.is_root
        writer = None
        if root:
            self._write_config()
            try:
                from torch.utils.tensorboard import SummaryWriter

                writer = SummaryWriter(str(self.out / "tb"), purge_step=self.step if self.step else None)
            except ImportError:  # tensorboard is the 'train' extra; CSV is always written
                writer = None
        self._log(f"train: {describe(self.dataset)}: {len(self.train_idx)} train / {len(self.val_idx)} val, "
                  f"{eng.world} rank(s) × batch {cfg.batch_size}, {self.steps_per_epoch} steps/epoch, "
                  f"engine {eng.name}, device {self.device}, epochs {self.epoch}→{cfg.epochs}")
        t_start = time.monotonic()
        previous_handler = self._catch_sigterm()
        hook = _term_hook(eng.rank)
        try:
            while self.epoch < cfg.epochs:
                t0 = time.monotonic()
                self.sampler.set_epoch(self.epoch)
                self.aug_gen.manual_seed(cfg.seed * 1000003 + self.epoch * 1009 + eng.rank)
                losses, gnorms = [], []
                loader, start, t_before = self.train_loader, 0, 0.0
                part, self._partial = self._partial, None
                if part is not None:  # resumed inside this epoch: skip the batches done, same draws
                    start, t_before = int(part["steps_done"]), float(part.get("train_s", 0.0))
                    self.aug_gen.set_state(part["aug_states"][eng.rank].to(torch.uint8).clone())
                    losses = [float(v) for v in part["losses"][eng.rank]]
                    gnorms = [float(v) for v in part["grad_norms"][eng.rank]]
                    rest = list(self.sampler)[start * cfg.batch_size:]
                    loader = DataLoader(self.dataset, batch_size=cfg.batch_size, sampler=rest, drop_last=True,
                                        **{**self._loader_kw, "persistent_workers": False})
                bar = tqdm(total=self.steps_per_epoch, initial=start, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                           leave=False,
                           # None: tqdm shows the bar only on a terminal (not in batch logs)
                           disable=(None if root else True) if self.progress is None else not (self.progress and root),
                           file=sys.stderr, dynamic_ncols=True)
                for i, x in enumerate(loader, start):
                    if i >= self.steps_per_epoch:
                        break
                    if cfg.augment:
                        if self.cuda and not cfg.thin:
                            # the flips and transposes are pure memory traffic: on the host they
                            # cost ~2 ms a pattern, more than a GPU step; same draws either way
                            x = x.to(self.device, non_blocking=True)
                        x = augment_batch(x, self.aug_gen, cfg.thin)
                    r = self.train_step(x)
                    losses.append(r["loss"])
                    gnorms.append(r["grad_norm"])
                    bar.update(1)
                    bar.set_postfix(loss=f"{r['loss']:.4g}", t=f"{r['threshold']:.2f}", lr=f"{r['lr']:.2g}")
                    if writer is not None and self.step % 10 == 0:
                        writer.add_scalar("step/train_loss", r["loss"], self.step)
                        writer.add_scalar("step/grad_norm", r["grad_norm"], self.step)
                    if hook is not None and self.step == hook[0]:
                        _send_sigterm(hook[1])
                    if self._stop_agreed():
                        bar.close()
                        path = self._save_inside_epoch(i + 1, losses, gnorms, t_before + time.monotonic() - t0)
                        self._log(f"train: SIGTERM: checkpoint at step {self.step} ({i + 1}/{self.steps_per_epoch} "
                                  f"of epoch {self.epoch + 1}) in {path}; continue with --resume")
                        raise Terminated(self.step, path)
                bar.close()
                t_train = t_before + time.monotonic() - t0
                tr = eng.all_reduce_sum([sum(losses), len(losses), sum(gnorms)])
                train_loss = float(tr[0] / max(float(tr[1]), 1))
                if not math.isfinite(train_loss):
                    raise FloatingPointError(f"training loss became {train_loss} in epoch {self.epoch + 1}; "
                                             "the last checkpoint is kept (lower --lr?)")
                self.recalibrate_bn(cfg.bn_recalibrate)
                v = self.validate()
                # without a validation set the (noisier) training loss has to drive the scheduler
                monitor = v["val_loss"] if math.isfinite(v["val_loss"]) else train_loss
                sel = self._select() if cfg.select_on else {}
                self.epoch += 1
                if self.scheduler is not None and self.step >= cfg.warmup_steps:
                    self.scheduler.step(monitor)
                row = {"epoch": self.epoch, "step": self.step, "lr": self.opt.param_groups[0]["lr"],
                       "threshold": ramp(self.step, cfg.threshold_start, cfg.threshold_end, cfg.threshold_steps),
                       "train_loss": train_loss, **v, **sel, "grad_norm": float(tr[2] / max(float(tr[1]), 1)),
                       "train_s": t_train, "epoch_s": time.monotonic() - t0,
                       "samples_per_s": float(tr[1]) * cfg.batch_size / max(t_train, 1e-9)}
                self.history.append(row)
                keep_by = sel["select_score"] if sel else monitor
                improved = keep_by < self.best
                if improved:
                    self.best = keep_by
                if root:
                    st = self.state()
                    save_checkpoint(self.out / "checkpoint.pt", st)
                    if improved:
                        save_checkpoint(self.out / "best.pt", st)
                    _write_csv_atomic(self.out / "metrics.csv", self.history)
                    if writer is not None:
                        for k, val in row.items():
                            if k not in ("epoch",) and isinstance(val, (int, float)) and math.isfinite(val):
                                writer.add_scalar(f"epoch/{k}", val, self.step)  # x = optimiser step
                        writer.flush()
                self._log(f"epoch {self.epoch}/{cfg.epochs} step {self.step}: train {train_loss:.4g}  "
                          f"val {v['val_loss']:.4g}  trivial " +
                          " ".join(f"{a} {v.get(f'trivial_{a}', float('nan')):.3g}" for a in TRIVIAL_ANSWERS) +
                          f"  spread {v['pred_spread']:.3f}  off-centre {v.get('centre_offset_vox', float('nan')):.1f}"
                          f"  bn_gap {v['bn_gap']:.3f}  "
                          f"lr {row['lr']:.2g}  {row['samples_per_s']:.2f} samples/s"
                          + (f"  select {sel['select_score']:.3f} ({sel['select_s']:.0f} s)" if sel else "")
                          + ("  *" if improved else ""))
                if self._stop_agreed():  # the signal came during validation: the checkpoint is written
                    self._log(f"train: SIGTERM: stopped after epoch {self.epoch}, step {self.step}; "
                              "continue with --resume")
                    raise Terminated(self.step, self.out / "checkpoint.pt")
                if cfg.time_limit_min is not None:
                    stop = eng.broadcast_object((time.monotonic() - t_start) / 60 > cfg.time_limit_min)
                    if stop:
                        self._log(f"train: time limit {cfg.time_limit_min} min reached after epoch {self.epoch}")
                        break
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGTERM, previous_handler)
            if writer is not None:
                writer.close()
        return self.history

    # ------------------------------------------------------------------ SIGTERM
    def _catch_sigterm(self):
        """Install the flag-setting SIGTERM handler; → the previous handler (None: not installed)."""
        def handler(signum, frame):
            self._term = True

        try:
            previous = signal.signal(signal.SIGTERM, handler)
        except ValueError:  # not the main thread: signals cannot be caught here
            return None
        return signal.SIG_DFL if previous is None else previous

    def _stop_agreed(self) -> bool:
        """True on every rank when any rank has had SIGTERM (one all-reduce of the flag)."""
        if self.engine.world == 1:
            return self._term
        return float(self.engine.all_reduce_sum([1.0 if self._term else 0.0])[0]) > 0

    def _gather_rows(self, row: torch.Tensor) -> torch.Tensor:
        """Every rank's 1-D ``row`` (same length everywhere) as a ``(world, n)`` float64 tensor."""
        eng = self.engine
        table = torch.zeros(eng.world, row.numel(), dtype=torch.float64)
        table[eng.rank] = row.double()
        return eng.all_reduce_sum(table) if eng.world > 1 else table

    def _save_inside_epoch(self, steps_done: int, losses: list[float], gnorms: list[float], train_s: float) -> Path:
        """Checkpoint with the epoch's position (collective: every rank calls it); → the path."""
        partial = {
            "steps_done": steps_done, "world": self.engine.world, "train_s": train_s,
            # generator states are bytes: exact in float64, back to uint8 here
            "aug_states": self._gather_rows(self.aug_gen.get_state()).to(torch.uint8),
            "losses": self._gather_rows(torch.tensor(losses, dtype=torch.float64)),
            "grad_norms": self._gather_rows(torch.tensor(gnorms, dtype=torch.float64)),
        }
        path = self.out / "checkpoint.pt"
        if self.engine.is_root:
            save_checkpoint(path, {**self.state(), "partial": partial})
        self.engine.barrier()  # nobody exits (an MPI launcher may then kill the rest) before it is written
        return path
