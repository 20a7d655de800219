"""Reading simulated patterns for training: magnitudes only, lazily, from many workers.

:class:`MagnitudeDataset` is a ``torch.utils.data.Dataset`` over a run directory's
manifest. Item ``i`` is sample ``indices[i]``'s magnitude √counts as a float32 tensor of
shape ``(1, 64, 64, 64)`` (channel, z, y, x; Bragg peak at index 32) — nothing else: the
truth lives in another group of the shard and is reached only through
:func:`read_truth` (:mod:`autophase.data.truth`), for evaluation.

HDF5 files are opened on first use in each process and the handles are dropped when the
dataset is pickled (``__getstate__``), so it works with DataLoader workers under fork,
spawn and forkserver alike.

Augmentation (``augment=True``): each item is transformed by a random element of the
48 symmetries of the cube (axis permutation × flips: every 90° rotation and reflection),
flipping about the zero frequency (index i ↦ 64 − i mod 64) so the Bragg peak stays at
the centre. A mirrored or turned pattern is the pattern of the mirrored or turned
crystal, so every augmented item is physically valid data. The choice depends only on
``(seed, epoch, index)``: call :meth:`set_epoch` each epoch for fresh draws that are
reproducible and identical whatever the number of workers.

Example::

    ds = MagnitudeDataset("runs/sim", augment=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=4, shuffle=True)
    for x in loader:        # (8, 1, 64, 64, 64) float32
        ...
    for part in shard_indices("runs/sim")[rank::world]:   # a rank's own shards
        ...
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..physics.forward import flip_centred
from .manifest import load_manifest
from .shards import MAGNITUDE, SHAPE, open_shard
from .truth import read_truth

__all__ = ["MagnitudeDataset", "read_truth", "shard_indices", "augment_pattern"]


def augment_pattern(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random symmetry of the cube applied to a centred (z, y, x) pattern (any even size).

    Permutes the three axes (a transpose keeps index n/2 at n/2) and flips each axis with
    probability ½ about the zero frequency: ``out[i] = a[(n − i) mod n]``.
    """
    perm = rng.permutation(3)
    flips = rng.random(3) < 0.5
    out = flip_centred(np.transpose(a, perm), np.flatnonzero(flips).tolist())
    return np.ascontiguousarray(out)


def _check_indices(indices, n: int, where: str) -> np.ndarray:
    idx = np.arange(n) if indices is None else np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise InputError(f"{where}: indices must be a 1-D sequence of integers")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise InputError(f"{where}: indices must lie in [0, {n}), got {int(idx.min())}…{int(idx.max())}")
    return idx


class MagnitudeDataset(torch.utils.data.Dataset):
    """Magnitudes of a simulated run as ``(1, 64, 64, 64)`` float32 tensors (see module doc).

    run_dir : a directory written by ``autophase simulate`` (with its manifest).
    indices : sample indices to expose (default all, in order); item i is sample indices[i].
    augment : random 90° rotations and flips (see :func:`augment_pattern`).
    seed    : seed of the augmentation draws.

    Raises InputError if the run is incomplete, a shard is missing, truncated (size
    differs from the manifest's), or unreadable when an item is read.
    """

    def __init__(self, run_dir: str | os.PathLike, indices=None, augment: bool = False, seed: int = 0):
        self._handles: dict[int, object] = {}
        self.run_dir = Path(run_dir)
        m = load_manifest(self.run_dir)
        self.n_samples = int(m["n_samples"])
        self.files = [self.run_dir / s["file"] for s in m["shards"]]
        for s, path in zip(m["shards"], self.files):
            if not path.is_file():
                raise InputError(f"{path}: shard file missing")
            size = path.stat().st_size
            if size != s["bytes"]:
                raise InputError(f"{path}: truncated or altered shard ({size} bytes, "
                                 f"manifest says {s['bytes']})")
        samples = m["samples"]
        self._shard = np.array([s["shard"] for s in samples], np.int64)
        self._row = np.array([s["row"] for s in samples], np.int64)
        self.photons_all = np.array([s["photons"] for s in samples], np.float64)
        self.indices = _check_indices(indices, self.n_samples, str(self.run_dir))
        self.augment = bool(augment)
        self.seed = int(seed)
        self.epoch = 0

    # -- torch Dataset -----------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, i: int) -> torch.Tensor:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} samples")
        idx = int(self.indices[i])
        k, row = int(self._shard[idx]), int(self._row[idx])
        f = self._handle(k)
        try:
            a = f[MAGNITUDE][row]
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"{self.files[k]}: corrupt shard, cannot read row {row} "
                             f"({str(e).splitlines()[0]})") from None
        if a.shape != SHAPE or not np.isfinite(a).all():
            raise InputError(f"{self.files[k]}: row {row} is not a finite {SHAPE} pattern")
        if self.augment:
            a = augment_pattern(a, np.random.default_rng((self.seed, self.epoch, idx)))
        return torch.from_numpy(np.ascontiguousarray(a, np.float32))[None]

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draws (call once per epoch, in every rank)."""
        self.epoch = int(epoch)

    def photons(self, i: int) -> float:
        """Expected photons of item ``i`` (from the manifest; not a truth read)."""
        return float(self.photons_all[int(self.indices[i])])

    # -- lazy handles ------------------------------------------------------------------
    def _handle(self, k: int):
        f = self._handles.get(k)
        if f is None:
            f = open_shard(self.files[k])
            self._handles[k] = f
        return f

    def close(self) -> None:
        for f in getattr(self, "_handles", {}).values():
            try:
                f.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._handles = {}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_handles"] = {}  # h5py handles cannot be pickled; each worker opens its own
        return state

    def __del__(self):
        self.close()


def shard_indices(run_dir: str | os.PathLike) -> list[np.ndarray]:
    """Sample indices held by each shard, in shard order: ``[array([0, …, S-1]), …]`` (int64).

    Ranks that should read disjoint files take ``shard_indices(d)[rank::world]``.
    """
    m = load_manifest(run_dir)
    out = [[] for _ in m["shards"]]
    for s in m["samples"]:
        out[s["shard"]].append(s["index"])
    return [np.asarray(v, np.int64) for v in out]
