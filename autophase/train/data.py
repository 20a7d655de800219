"""What training reads: magnitude datasets, the train/validation split, per-rank shards, augmentation.

Training sees **magnitudes only** — √counts, float32 ``(1, 64, 64, 64)`` per sample,
Bragg peak at the centre. Three sources (:func:`open_dataset`):

* a simulated run directory (HDF5 shards + manifest) through
  :class:`autophase.data.dataset.MagnitudeDataset` — the real training data — or
  several, concatenated (:class:`SimulatedRuns`);
* ``synthetic:N[:SEED[:LO:HI]]`` — N voxel-level faceted crystals
  (:mod:`autophase.physics.synthetic`) at LO–HI photons (log-uniform, default
  1e8:1e9), made on the fly from (SEED, index): the debug set that needs no files;
* pattern files (``.npz .npy .h5 .cxi .tif``, read with
  :func:`autophase.io.patterns.load_pattern`) — e.g. a handful of experimental
  patterns for fine-tuning, expanded by augmentation (``repeat``).

Sharding is plain arithmetic, testable without processes: the data are split once
into train/validation by a seeded permutation (identical on every rank); each epoch
the training indices are reshuffled with (seed, epoch) and rank r takes
``order[r::world]`` — disjoint across ranks, covering the set. Every rank runs the
same number of steps, ``(n_train // world) // batch``, so collective operations never
wait on a rank that ran out of data; the few samples beyond that are skipped this
epoch only (the order changes every epoch).

Augmentation (:func:`augment_batch`, on the batch, in torch) uses only exact symmetries
of the measurement: flipping an axis of the pattern (q → −q about the centre voxel)
or permuting axes maps |F| of an object onto |F| of its mirror/rotated copy — still a
valid crystal — so 48 variants per pattern. Optional Poisson thinning keeps each
count with probability p (binomial): thinned Poisson counts are exactly Poisson with
p × the photons, a fresh noise realisation at a lower photon level.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from ..errors import InputError
from ..physics.forward import flip_centred

__all__ = ["SyntheticCrystals", "PatternFiles", "SimulatedRuns", "open_dataset", "split_indices", "rank_shard",
           "steps_per_epoch", "RankShardSampler", "augment_batch", "thin_counts"]

SIZE = 64


class SyntheticCrystals(Dataset):
    """N faceted crystals at ``photons`` = (lo, hi) (log-uniform), generated from (seed, index).

    ``__getitem__`` → float32 ``(1, 64, 64, 64)`` √counts; :meth:`truth` → complex64
    ``(64, 64, 64)`` object in data units (|far_field(truth)|² = expected counts). Generating
    one takes 50–500 ms on a busy 2-core machine, a large share of a training step, so the
    magnitudes are kept in memory once made (1 MiB each) unless ``cache=False``.
    """

    def __init__(self, n: int, seed: int = 0, photons: tuple[float, float] = (1e8, 1e9), cache: bool = True):
        self.n, self.seed, self.photons = int(n), int(seed), (float(photons[0]), float(photons[1]))
        self._cache: dict[int, torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return self.n

    def _make(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        from ..physics.synthetic import faceted_crystal, noisy_pattern

        if not 0 <= i < self.n:
            raise IndexError(i)
        rng = np.random.default_rng([self.seed, i])
        lo, hi = np.log10(self.photons[0]), np.log10(self.photons[1])
        photons = 10 ** rng.uniform(lo, hi)
        obj = faceted_crystal(SIZE // 2, radius=rng.uniform(0.25, 0.4) * SIZE / 2, seed=rng)
        counts, rho = noisy_pattern(obj, photons=photons, seed=rng)
        return counts, rho

    def __getitem__(self, i: int) -> torch.Tensor:
        i = int(i)
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        counts, _ = self._make(i)
        x = torch.from_numpy(np.sqrt(counts, dtype=np.float32))[None]
        if self._cache is not None:
            self._cache[i] = x
        return x

    def truth(self, i: int) -> np.ndarray:
        return self._make(int(i))[1]


class PatternFiles(Dataset):
    """Patterns from files (√counts of each), optionally repeated ``repeat`` times per epoch.

    Unmeasured voxels (the file's mask, NaN/negative values are rejected by
    :func:`~autophase.io.patterns.load_pattern`) are marked −1: the loss leaves them out
    and the network sees them as 0.
    """

    def __init__(self, paths: Sequence[str | Path], repeat: int = 1):
        from ..io.patterns import load_pattern

        self.paths = [str(p) for p in paths]
        self.repeat = max(1, int(repeat))
        mags = []
        for p in self.paths:
            pat = load_pattern(p, kind="intensity")
            if pat.magnitude.shape != (SIZE,) * 3:
                raise InputError(f"{p}: the network takes {SIZE}³ patterns, got {pat.magnitude.shape}"
                                 " (crop or bin it first)")
            mags.append(torch.from_numpy(np.where(pat.measured, pat.magnitude, -1.0).astype(np.float32))[None])
        self.mags = mags

    def __len__(self) -> int:
        return len(self.mags) * self.repeat

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.mags[int(i) % len(self.mags)]


_SYNTH = re.compile(r"^synthetic:(\d+)(?::(\d+))?(?::([0-9.eE+]+):([0-9.eE+]+))?$")


def open_dataset(spec: Sequence[str], repeat: int = 1) -> Dataset:
    """A magnitude dataset from ``--data`` arguments (see the module docstring)."""
    spec = [str(s) for s in spec]
    if len(spec) == 1 and spec[0].startswith("synthetic:"):
        m = _SYNTH.match(spec[0])
        if not m:
            raise InputError(f"{spec[0]}: expected synthetic:N[:SEED[:LO:HI]], e.g. synthetic:800:0:1e8:1e9")
        n, seed = int(m.group(1)), int(m.group(2) or 0)
        photons = (float(m.group(3)), float(m.group(4))) if m.group(3) else (1e8, 1e9)
        if n < 1 or not 0 < photons[0] <= photons[1]:
            raise InputError(f"{spec[0]}: need N ≥ 1 and 0 < LO ≤ HI")
        return SyntheticCrystals(n, seed, photons)
    dirs = [s for s in spec if Path(s).is_dir()]
    if dirs:
        if len(dirs) != len(spec):
            f = next(s for s in spec if s not in dirs)
            raise InputError(f"{f}: simulated run directories and pattern files cannot be mixed in --data")
        try:
            from ..data.dataset import MagnitudeDataset
        except ImportError as e:  # the shard reader is another module of the project
            raise InputError(f"{dirs[0]}: reading simulated runs needs autophase.data.dataset ({e})") from None
        runs = []
        for d in dirs:
            ds = MagnitudeDataset(d)
            if len(ds) == 0:
                raise InputError(f"{d}: the run holds no patterns")
            runs.append(ds)
        return runs[0] if len(runs) == 1 else SimulatedRuns(runs)
    for s in spec:
        if not Path(s).exists():
            raise InputError(f"{s}: no such file or directory")
    return PatternFiles(spec, repeat=repeat)


class SimulatedRuns(torch.utils.data.ConcatDataset):
    """Several simulated runs as one dataset, in the order given (item i of run k follows run k−1's).

    Lets independent ``autophase simulate`` jobs (different seeds, photon ranges or
    machines, none needing MPI between them) feed one training run. Each part is a
    :class:`~autophase.data.dataset.MagnitudeDataset`, so items stay magnitudes only.
    """

    @property
    def run_dirs(self) -> list[str]:
        return [str(Path(d.run_dir).resolve()) for d in self.datasets]


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of range(n) into (train, validation); validation gets round(f·n), ≥ 1 if n > 1."""
    if n < 1:
        raise ValueError("empty dataset")
    perm = np.random.default_rng([seed, 0x5EED]).permutation(n)
    n_val = int(round(val_fraction * n))
    if val_fraction > 0 and n > 1:
        n_val = min(max(1, n_val), n - 1)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def rank_shard(indices: np.ndarray, rank: int, world: int) -> np.ndarray:
    """Rank ``rank``'s part of ``indices``: every ``world``-th one (disjoint, covering)."""
    return np.asarray(indices)[rank::world]


def steps_per_epoch(n_train: int, world: int, batch: int) -> int:
    """Optimiser steps per epoch, identical on every rank."""
    return (n_train // world) // batch


class RankShardSampler(Sampler[int]):
    """This rank's training indices for the current epoch, ``steps × batch`` of them.

    Call :meth:`set_epoch` before each epoch (as with DistributedSampler); the order is a
    permutation seeded by (seed, epoch), the same on every rank, then sharded.
    """

    def __init__(self, indices: np.ndarray, rank: int, world: int, batch: int, seed: int = 0,
                 shuffle: bool = True):
        self.indices = np.asarray(indices)
        self.rank, self.world, self.batch, self.seed, self.shuffle = rank, world, batch, seed, shuffle
        self.epoch = 0
        self.steps = steps_per_epoch(len(self.indices), world, batch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def epoch_order(self) -> np.ndarray:
        if not self.shuffle:
            return self.indices
        return self.indices[np.random.default_rng([self.seed, self.epoch]).permutation(len(self.indices))]

    def __iter__(self) -> Iterator[int]:
        mine = rank_shard(self.epoch_order(), self.rank, self.world)[: self.steps * self.batch]
        return iter(int(i) for i in mine)

    def __len__(self) -> int:
        return self.steps * self.batch


def thin_counts(mag: torch.Tensor, p: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """√Binomial(round(mag²), p): Poisson counts thinned to p × the photons (exactly Poisson).

    Unmeasured voxels (mag < 0) stay unmeasured.
    """
    counts = torch.round(mag.double().clamp_min(0) ** 2)
    prob = p.double().reshape(-1, *([1] * (mag.ndim - 1))).expand_as(counts)
    out = torch.binomial(counts, prob, generator=generator).sqrt().to(mag.dtype)
    return torch.where(mag < 0, mag, out)


def augment_batch(x: torch.Tensor, generator: torch.Generator, thin: float = 0.0) -> torch.Tensor:
    """Random symmetry of each pattern in ``x`` (B, 1, z, y, x), and optional thinning.

    Per sample: an axis permutation and a flip per axis (48 elements of the cube group),
    then, if ``thin`` > 0, Poisson thinning with p ~ U(1 − thin, 1).
    """
    out = []
    for i in range(x.shape[0]):
        s = x[i]
        perm = torch.randperm(3, generator=generator).tolist()
        s = s.permute(0, *(1 + k for k in perm))
        for d, f in zip((1, 2, 3), torch.randint(0, 2, (3,), generator=generator).tolist()):
            if f:
                s = flip_centred(s, d)
        out.append(s)
    y = torch.stack(out).contiguous()
    if thin > 0:
        p = 1.0 - thin * torch.rand(y.shape[0], generator=generator)
        y = thin_counts(y, p, generator)
    return y


def describe(ds: Dataset) -> str:
    """One line naming a dataset for logs and configs."""
    if isinstance(ds, SyntheticCrystals):
        return f"synthetic:{ds.n}:{ds.seed}:{ds.photons[0]:g}:{ds.photons[1]:g}"
    if isinstance(ds, PatternFiles):
        return f"{len(ds.paths)} pattern file(s) ×{ds.repeat}"
    if isinstance(ds, SimulatedRuns):
        return f"SimulatedRuns({', '.join(ds.run_dirs)}) n={len(ds)}"
    run_dir = getattr(ds, "run_dir", None)
    where = str(Path(run_dir).resolve()) if run_dir is not None else ""
    return f"{type(ds).__name__}({where}) n={len(ds)}"
