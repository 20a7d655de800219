"""Online self-improvement for ``autophase watch --learn``: fine-tune on the scans seen,
promote a candidate model only when it images held-back scans better.

The service hands every scan it has imaged to :meth:`Learner.submit` (√counts and the
measured mask) and asks :meth:`Learner.current` for the model before each batch. A
background thread stores the scans (``OUT/learn/scans/``); every ``every`` new scans it
runs one **round** in a separate, low-priority process (``nice``, one thread), so that
training never takes the service's cores or stalls its inference:

1. **hold back** the ``holdout`` most recent scans; the older ones (at most
   ``max_train``) are the training set;
2. **augment** them (:func:`autophase.beamline.augment.augment_patterns`: rotated,
   rescaled, mirrored copies of each crystal's pattern) and **fine-tune** the current
   model on the copies without supervision — the network's own χ² to the measured
   magnitudes is the loss (:class:`autophase.train.trainer.Trainer` with the recipe of
   :func:`autophase.beamline.finetune.train_config`: BatchNorm frozen, support
   threshold fixed, best checkpoint by validation χ²);
3. **score** the current model and the candidate on the held-back scans, each by the
   geometric mean over scans of χ² after the network and K ER iterations
   (:meth:`autophase.predict.Predictor.predict` with ``refine=K``; χ² as eq. 2 of the
   paper). Geometric: each crystal's *relative* change counts the same — an arithmetic
   mean over a few scans follows the hardest one, and one hard crystal imaged better
   must not carry a model that images the others worse;
4. **promote** the candidate only if its score is lower than the current one's by more
   than the fraction ``min_gain`` *and* it fits at least half of the held-back scans
   better; otherwise keep the current model.

Model store, ``OUT/models/`` (:class:`ModelStore`)::

    <version>.pt      every model the service has used (version = the first 16 hex digits of
                      the checkpoint's SHA-256, the ``model_version`` every result carries)
    current.json      {"version", "path" (relative to models/), "time", "reason", ...}: the
                      model in use; replaced atomically (temporary + rename), under a lock
                      shared with rollback
    history.jsonl     one line per start, round (scores, decision), promotion, rollback

A refused candidate is logged (version and scores) but not kept. A round trained from a
model that is no longer current when it ends (a rollback happened meanwhile) is refused
as ``stale``. ``autophase models OUT --rollback [VERSION]`` puts an earlier version back
(:meth:`ModelStore.rollback`).

Example::

    learner = Learner(out, "model.pt", LearnConfig(every=8))
    version, path = learner.current()
    learner.submit(magnitude, measured, "scan_0042")   # after imaging it
    learner.close()
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..atomic import write_json
from ..errors import InputError
from ..beamline.finetune import FinetuneConfig

__all__ = ["LearnConfig", "add_learn_arguments", "learn_config_from_args", "ModelStore", "ScanStore", "Learner",
           "train_candidate", "score_model", "geometric_mean", "better_candidate", "judge",
           "run_round"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _fine_tune_default() -> FinetuneConfig:
    # the recipe that improved unseen crystals in benchmarks/bench_learn.py (docs/live-page-and-learning.md);
    # 32 copies × 2 epochs did not
    return FinetuneConfig(n_augment=128, epochs=4, lr=1e-4, batch_size=8, refine=20)


@dataclass
class LearnConfig:
    """When rounds run and how candidates are judged.

    every : a round after this many new scans (and only with ≥ holdout + min_train stored).
    holdout : the most recent scans held back from training, to score on.
    min_train, max_train : training scans per round (the most recent before the held-back ones).
    max_scans : scans kept on disk (the oldest are deleted).
    min_gain : promote when score_candidate < (1 − min_gain) · score_current (and the
        candidate's χ² is lower on at least half of the held-back scans).
    symmetries : the network's symmetric copies when scoring (1: one pass).
    finetune : the training recipe and K = ``finetune.refine`` ER iterations of the score.
    nice, threads : the round process's niceness and torch/numba/OpenMP threads.
    """

    every: int = 8
    holdout: int = 4
    min_train: int = 2
    max_train: int = 32
    max_scans: int = 64
    min_gain: float = 0.01
    symmetries: int = 1
    nice: int = 10
    threads: int = 1
    finetune: FinetuneConfig = field(default_factory=_fine_tune_default)

    def __post_init__(self):
        if isinstance(self.finetune, dict):
            self.finetune = FinetuneConfig(**self.finetune)
        if self.every < 1 or self.holdout < 1 or self.min_train < 1 or self.max_train < self.min_train:
            raise InputError("--learn: every, holdout, min-train ≥ 1 and max-train ≥ min-train")
        if self.max_scans < self.holdout + self.min_train:
            raise InputError(f"--learn: max_scans {self.max_scans} cannot hold {self.holdout} held-back and "
                             f"{self.min_train} training scans")
        if not 0 <= self.min_gain < 1:
            raise InputError(f"--learn: min_gain is a fraction in [0, 1), got {self.min_gain}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def add_learn_arguments(p) -> None:
    """The ``--learn-*`` options (defaults: :class:`LearnConfig`) for a command with ``--learn``."""
    d = LearnConfig()
    g = p.add_argument_group("online learning (with --learn)")
    g.add_argument("--learn-every", type=int, default=d.every, metavar="N",
                   help=f"a fine-tuning round after every N new scans (default {d.every})")
    g.add_argument("--learn-holdout", type=int, default=d.holdout, metavar="N",
                   help=f"the N most recent scans are held back to score candidates (default {d.holdout})")
    g.add_argument("--learn-copies", type=int, default=d.finetune.n_augment, metavar="N",
                   help=f"augmented copies trained on per round (default {d.finetune.n_augment})")
    g.add_argument("--learn-epochs", type=int, default=d.finetune.epochs, metavar="N",
                   help=f"epochs over the copies per round (default {d.finetune.epochs})")
    g.add_argument("--learn-lr", type=float, default=d.finetune.lr, metavar="LR",
                   help=f"Adam learning rate (default {d.finetune.lr})")
    g.add_argument("--learn-refine", type=int, default=d.finetune.refine, metavar="K",
                   help=f"the score is χ² after the network and K ER iterations (default {d.finetune.refine})")
    g.add_argument("--learn-min-gain", type=float, default=d.min_gain, metavar="F",
                   help=f"promote when the candidate's score is below (1 − F) × the current's (default {d.min_gain})")


def learn_config_from_args(args) -> LearnConfig:
    """A checked :class:`LearnConfig` from the options of :func:`add_learn_arguments`."""
    ft = _fine_tune_default()
    checks = [("--learn-every", args.learn_every, args.learn_every >= 1, "≥ 1"),
              ("--learn-holdout", args.learn_holdout, args.learn_holdout >= 1, "≥ 1"),
              ("--learn-copies", args.learn_copies, args.learn_copies >= 2 * ft.batch_size,
               f"≥ {2 * ft.batch_size} (two batches of {ft.batch_size})"),
              ("--learn-epochs", args.learn_epochs, args.learn_epochs >= 1, "≥ 1"),
              ("--learn-lr", args.learn_lr, args.learn_lr > 0, "> 0"),
              ("--learn-refine", args.learn_refine, args.learn_refine >= 0, "≥ 0"),
              ("--learn-min-gain", args.learn_min_gain, 0 <= args.learn_min_gain < 1, "in [0, 1)")]
    for name, value, ok, want in checks:
        if not ok:
            raise InputError(f"{name}: must be {want}, got {value}")
    ft = FinetuneConfig(**{**asdict(ft), "n_augment": args.learn_copies, "epochs": args.learn_epochs,
                           "lr": args.learn_lr, "refine": args.learn_refine})
    return LearnConfig(every=args.learn_every, holdout=args.learn_holdout, min_gain=args.learn_min_gain, finetune=ft)


# ----------------------------------------------------------------------------- models
class ModelStore:
    """``OUT/models/``: versioned checkpoints, the current one, the history (module doc)."""

    def __init__(self, out_dir: str | os.PathLike):
        self.dir = Path(out_dir) / "models"
        self._cache: tuple[tuple, tuple[str, Path]] | None = None

    @property
    def current_file(self) -> Path:
        return self.dir / "current.json"

    @contextlib.contextmanager
    def lock(self):
        """An exclusive lock on the store (between the learner, its rounds and rollback)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def log(self, **record: Any) -> dict[str, Any]:
        rec = {"time": _now(), **record}
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "history.jsonl", "a") as f:
            f.write(json.dumps(rec) + "\n")
        return rec

    def history(self) -> list[dict[str, Any]]:
        from .page import read_events

        return read_events(self.dir / "history.jsonl")[0]

    def add(self, checkpoint: str | os.PathLike) -> str:
        """Copy a checkpoint into the store as ``<version>.pt``; its version."""
        from ..model.checkpoint import file_sha256, read_checkpoint
        from ..atomic import copy_file

        read_checkpoint(checkpoint)  # a readable autophase checkpoint, or an InputError naming it
        version = file_sha256(checkpoint)[:16]
        dst = self.dir / f"{version}.pt"
        if not dst.is_file():
            copy_file(checkpoint, dst)
        return version

    def path(self, version: str) -> Path:
        p = self.dir / f"{version}.pt"
        if not p.is_file():
            have = ", ".join(sorted(v.stem for v in self.dir.glob("*.pt"))) or "none"
            raise InputError(f"{self.dir}: no model version {version!r} (have: {have})")
        return p

    def current(self) -> tuple[str, Path]:
        """(version, checkpoint path) of the model in use; cheap (re-read only when changed)."""
        try:
            st = self.current_file.stat()
        except FileNotFoundError:
            raise InputError(f"{self.dir}: no current.json (not a --learn output folder?)") from None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._cache is None or self._cache[0] != key:
            try:
                cur = json.loads(self.current_file.read_text())
                self._cache = (key, (str(cur["version"]), self.dir / str(cur["path"])))
            except (OSError, ValueError, KeyError) as e:
                raise InputError(f"{self.current_file}: unreadable ({e})") from None
        return self._cache[1]

    def set_current(self, version: str, reason: str, **extra: Any) -> None:
        """Make ``version`` current (call under :meth:`lock`)."""
        self.path(version)
        write_json(self.current_file, {"version": version, "path": f"{version}.pt", "time": _now(),
                                       "reason": reason, **extra}, indent=1)

    def start(self, model: str | os.PathLike) -> str:
        """The current version; on first use, ``model`` becomes version one."""
        with self.lock():
            if self.current_file.exists():
                return self.current()[0]
            v = self.add(model)
            self.set_current(v, "start", source=str(model))
            self.log(event="start", version=v, source=str(model))
            return v

    def promoted(self) -> list[str]:
        """Versions in the order they became current (start, promotions, rollbacks)."""
        out = []
        for r in self.history():
            v = {"start": r.get("version"), "promote": r.get("version"), "rollback": r.get("to")}.get(r.get("event"))
            if v:
                out.append(v)
        return out

    def rollback(self, to: str | None = None) -> tuple[str, str]:
        """Make an earlier version current: ``to``, or the one that was current before the
        present one. Returns (from, to)."""
        with self.lock():
            cur = self.current()[0]
            if to is None:
                order = self.promoted()
                earlier = [v for v in order[:_last_index(order, cur)] if v != cur]
                if not earlier:
                    raise InputError(f"{self.dir}: nothing to roll back to (only {cur} has been current)")
                to = earlier[-1]
            elif to == cur:
                raise InputError(f"{self.dir}: {to} is already the current model")
            # a version prefix is enough when it names one model
            matches = [p.stem for p in self.dir.glob("*.pt") if p.stem.startswith(to)]
            if len(matches) != 1:
                self.path(to)  # the error naming what exists
                raise InputError(f"{self.dir}: {to!r} names {len(matches)} model versions; give more digits")
            to = matches[0]
            self.set_current(to, f"rollback from {cur}", previous=cur)
            self.log(event="rollback", **{"from": cur, "to": to})
            return cur, to


def _last_index(seq: Sequence[str], v: str) -> int:
    return max((i for i, x in enumerate(seq) if x == v), default=len(seq))


# ----------------------------------------------------------------------------- scans
class ScanStore:
    """``OUT/learn/scans/NNNNNN-<stem>.npz``: ``magnitude`` float32 (z, y, x) √counts and
    ``measured`` bool (z, y, x), in arrival order; at most ``keep`` files."""

    def __init__(self, directory: str | os.PathLike, keep: int = 64):
        self.dir = Path(directory)
        self.keep = keep

    def files(self) -> list[Path]:
        return sorted(p for p in self.dir.glob("[0-9]*-*.npz"))

    def add(self, magnitude: np.ndarray, measured: np.ndarray | None, stem: str) -> Path:
        from ..atomic import atomic_path

        mag = np.asarray(magnitude, np.float32)
        meas = np.ones(mag.shape, bool) if measured is None else np.asarray(measured, bool)
        if mag.ndim != 3 or meas.shape != mag.shape:
            raise InputError(f"{stem}: a scan for --learn is a 3D magnitude with a mask of the same shape, "
                             f"got {mag.shape} and {meas.shape}")
        files = self.files()
        n = int(files[-1].name.split("-", 1)[0]) + 1 if files else 0
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in stem)[:80]
        p = self.dir / f"{n:06d}-{safe}.npz"
        with atomic_path(p) as tmp, open(tmp, "wb") as f:  # a file object: savez adds no suffix
            np.savez(f, magnitude=mag, measured=meas)
        for old in self.files()[:-self.keep]:
            old.unlink(missing_ok=True)
        return p

    @staticmethod
    def load(paths: Sequence[Path]) -> tuple[np.ndarray, list[np.ndarray], list[str]]:
        mags, meas, names = [], [], []
        for p in paths:
            with np.load(p) as z:
                mags.append(z["magnitude"])
                meas.append(z["measured"])
            names.append(p.stem.split("-", 1)[1])
        return np.stack(mags), meas, names


# ----------------------------------------------------------------------------- a round
def train_candidate(model: str | os.PathLike, mags: np.ndarray, measured: Sequence[np.ndarray],
                    workdir: str | os.PathLike, cfg: FinetuneConfig, seed: int = 0) -> Path:
    """Fine-tune ``model`` on augmented copies of (N, S, S, S) √counts; the best checkpoint.

    The copies (``cfg.n_augment``, :func:`~autophase.beamline.augment.augment_patterns`)
    are held in memory with their unmeasured voxels marked −1, as
    :class:`~autophase.train.data.PatternFiles` does; training writes to ``workdir``.
    """
    import torch

    from ..beamline.augment import augment_patterns
    from ..beamline.finetune import train_config
    from ..model.checkpoint import read_checkpoint
    from ..model.network import NetworkConfig
    from ..train.trainer import Trainer

    ck = read_checkpoint(model)
    counts = [np.asarray(m, np.float32) ** 2 for m in mags]
    aug, aug_unmeasured = augment_patterns(counts, cfg.n_augment, seed, masks=[~np.asarray(m, bool) for m in measured],
                                           max_angle_deg=cfg.max_angle_deg, return_masks=True)
    data = [torch.from_numpy(np.where(u, -1.0, np.sqrt(a)).astype(np.float32))[None]
            for a, u in zip(aug, aug_unmeasured)]
    del aug, aug_unmeasured
    tcfg = train_config(FinetuneConfig(**{**asdict(cfg), "seed": seed}), ck)
    trainer = Trainer(NetworkConfig.from_dict(ck["network"]), tcfg, data, workdir, init=model, progress=False,
                      extra_meta={"command": "autophase watch --learn", "finetuned_from": str(model)})
    trainer.fit()
    return Path(workdir) / "best.pt"


def score_model(model: str | os.PathLike, mags: np.ndarray, measured: Sequence[np.ndarray], refine: int,
                symmetries: int = 1) -> tuple[float, list[float]]:
    """(geometric mean, per scan) χ² of the network + ``refine`` ER iterations on (N, S, S, S)
    √counts, the refinement :func:`autophase.predict.judging_refinement` (every start carries
    the network's phase, so the score is the network's)."""
    from ..predict import Predictor, judging_refinement

    preds = Predictor(model, device="cpu", symmetries=symmetries).predict(mags, list(measured), refine=refine,
                                                                          refinement=judging_refinement())
    chi = [float(p.chi2) for p in preds]
    return geometric_mean(chi), chi


def geometric_mean(chi2: Sequence[float]) -> float:
    """exp(mean(log χ²)) (χ² floored at 1e-12); NaN if any is NaN."""
    x = np.asarray(chi2, float)
    return float(np.exp(np.mean(np.log(np.maximum(x, 1e-12))))) if x.size else float("nan")


def better_candidate(chi2_current: Sequence[float], chi2_candidate: Sequence[float], min_gain: float) -> bool:
    """The promotion rule on the held-back scans' χ² (same scans, same order): the
    candidate's geometric mean below (1 − ``min_gain``) × the current's, and its χ² lower
    on at least half of the scans. NaN anywhere in the candidate's is a refusal."""
    cur, cand = np.asarray(chi2_current, float), np.asarray(chi2_candidate, float)
    if cur.shape != cand.shape or cur.size == 0 or not np.all(np.isfinite(cand)):
        return False
    wins = int((cand < cur).sum())
    return bool(geometric_mean(cand) < (1 - min_gain) * geometric_mean(cur) and 2 * wins >= cur.size)


def judge(store: ModelStore, candidate: str | os.PathLike, base: str, mags: np.ndarray,
          measured: Sequence[np.ndarray], held: Sequence[str], cfg: LearnConfig, **extra: Any) -> dict[str, Any]:
    """Score ``candidate`` and the model ``base`` (a version in ``store``) on the held-back
    scans; promote the candidate when it is better by more than ``cfg.min_gain`` on the
    geometric mean, better on at least half of the scans (``wins``), and ``base`` is still current.
    Returns the history record (``decision``: promoted, refused or stale)."""
    from ..model.checkpoint import file_sha256

    k = cfg.finetune.refine
    t0 = time.perf_counter()
    s_cur, per_cur = score_model(store.path(base), mags, measured, k, cfg.symmetries)
    s_cand, per_cand = score_model(candidate, mags, measured, k, cfg.symmetries)
    cand_version = file_sha256(candidate)[:16]
    rec: dict[str, Any] = {"event": "round", "base": base, "candidate": cand_version, "held": list(held),
                           "score": f"geometric mean chi2 of NN + {k} ER", "score_current": s_cur, "score_candidate": s_cand,
                           "chi2_current": per_cur, "chi2_candidate": per_cand, "min_gain": cfg.min_gain,
                           "seconds_score": time.perf_counter() - t0, **extra}
    rec["wins"] = sum(c < b for c, b in zip(per_cand, per_cur))
    better = better_candidate(per_cur, per_cand, cfg.min_gain)
    with store.lock():
        if not better:
            rec["decision"] = "refused"
        elif store.current()[0] != base:
            rec["decision"] = "stale"  # the current model changed meanwhile (a rollback)
        else:
            v = store.add(candidate)
            store.set_current(v, f"promoted: χ² {s_cand:.4g} < {s_cur:.4g} on {len(held)} held-back scans",
                              previous=base, score=s_cand)
            rec["decision"] = "promoted"
            store.log(event="promote", version=v, previous=base, score=s_cand, score_previous=s_cur)
        return store.log(**rec)


def run_round(out_dir: str | os.PathLike, cfg: LearnConfig, seed: int = 0,
              log: Callable[[str], None] = print) -> dict[str, Any]:
    """One round over the scans stored under ``out_dir`` (module doc); the history record."""
    out = Path(out_dir)
    store = ModelStore(out)
    files = ScanStore(out / "learn" / "scans").files()
    if len(files) < cfg.holdout + cfg.min_train:
        raise InputError(f"{out}: {len(files)} scans stored, a round needs {cfg.holdout + cfg.min_train}")
    held_files = files[-cfg.holdout:]
    train_files = files[:-cfg.holdout][-cfg.max_train:]
    base, base_path = store.current()
    work = out / "learn" / f"round-{seed:04d}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        t0 = time.perf_counter()
        mags, meas, names = ScanStore.load(train_files)
        log(f"learn: round {seed}: fine-tuning {base} on {len(names)} scans ({cfg.finetune.n_augment} copies)")
        cand = train_candidate(base_path, mags, meas, work / "train", cfg.finetune, seed)
        t_train = time.perf_counter() - t0
        del mags, meas
        hmags, hmeas, held = ScanStore.load(held_files)
        rec = judge(store, cand, base, hmags, hmeas, held, cfg, round=seed, train=names, seconds_train=t_train)
        log(f"learn: round {seed}: χ² {rec['score_current']:.5g} (current) vs {rec['score_candidate']:.5g} "
            f"(candidate {rec['candidate']}) on {len(held)} held-back scans → {rec['decision']}")
        return rec
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------- the worker
class Learner:
    """The service's side of ``--learn`` (module doc).

    out_dir : the service's OUT; model_path : the model to start from (ignored when
    ``OUT/models/current.json`` exists: a restarted service goes on with its current model).
    """

    def __init__(self, out_dir: str | os.PathLike, model_path: str | os.PathLike, config: LearnConfig | None = None,
                 log: Callable[[str], None] | None = None):
        self.out = Path(out_dir)
        self.cfg = config or LearnConfig()
        self.log = log or (lambda s: print(s, file=sys.stderr, flush=True))
        self.store = ModelStore(self.out)
        self.store.start(model_path)
        self.scans = ScanStore(self.out / "learn" / "scans", self.cfg.max_scans)
        self.rounds = sum(1 for r in self.store.history() if r.get("event") == "round")
        self.new = 0
        self.proc: subprocess.Popen | None = None
        self.closing = False
        self._q: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="autophase-learner", daemon=True)
        self._thread.start()

    def current(self) -> tuple[str, Path]:
        """(version, checkpoint path) of the model to use now."""
        return self.store.current()

    def submit(self, magnitude: np.ndarray, measured: np.ndarray | None, stem: str) -> None:
        """Queue one imaged scan (√counts (z, y, x), measured mask or None); returns at once."""
        self._q.put((np.array(magnitude, np.float32), None if measured is None else np.array(measured, bool),
                     str(stem)))  # copies: the caller may reuse its buffers

    def idle(self) -> bool:
        """No scan waiting and no round running."""
        return self._q.unfinished_tasks == 0 and self.proc is None

    def close(self, timeout: float = 30.0) -> None:
        """Stop: scans still queued are stored, a running round is ended (SIGTERM)."""
        self.closing = True
        self._q.put(None)
        p = self.proc
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
        self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            item = self._q.get()
            try:
                if item is None:
                    return
                try:
                    self.scans.add(*item)
                except (InputError, OSError) as e:
                    self.log(f"learn: scan {item[2]} not kept: {e}")
                    continue
                self.new += 1
                if self.new >= self.cfg.every and not self.closing and \
                        len(self.scans.files()) >= self.cfg.holdout + self.cfg.min_train:
                    self.new = 0
                    self._round()
            finally:
                self._q.task_done()

    def _round(self) -> None:
        """One round in a low-priority process with one thread; its output goes to OUT/learn/learn.log."""
        env = dict(os.environ, OMP_NUM_THREADS=str(self.cfg.threads), MKL_NUM_THREADS=str(self.cfg.threads),
                   NUMBA_NUM_THREADS=str(self.cfg.threads))
        cmd = [sys.executable, "-m", "autophase.live.learn", str(self.out), "--seed", str(self.rounds),
               "--config", json.dumps(self.cfg.to_dict())]
        with open(self.out / "learn" / "learn.log", "a") as logf:
            self.proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
            rc = self.proc.wait()
        self.proc = None
        self.rounds += 1
        if rc != 0 and not self.closing:
            self.log(f"learn: round {self.rounds - 1} failed (exit {rc}; see {self.out / 'learn' / 'learn.log'})")
        elif rc == 0:
            hist = [r for r in self.store.history() if r.get("event") == "round"]
            if hist:
                r = hist[-1]
                self.log(f"learn: round {r.get('round')}: {r['decision']} (χ² {r['score_candidate']:.4g} "
                         f"vs {r['score_current']:.4g}); model {self.store.current()[0]}")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m autophase.live.learn OUT --seed N --config JSON``: one round (the Learner's process)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m autophase.live.learn")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", default="{}")
    a = p.parse_args(argv)
    cfg = LearnConfig(**json.loads(a.config))
    if cfg.nice > 0:
        os.nice(cfg.nice)  # below the service, which images the next scan meanwhile
    import torch

    torch.set_num_threads(max(1, cfg.threads))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        run_round(a.out, cfg, a.seed, log=lambda s: print(f"{_now()} {s}", flush=True))
    except InputError as e:
        print(f"{_now()} learn: error: {e}", flush=True)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover - the Learner's subprocess
    sys.exit(main())
