"""The HDF5 shard: one file of simulated patterns, written whole or not at all.

Layout of ``shard-KKKKK.h5`` (K = shard number; shard k holds crystals [k·S, (k+1)·S),
so the file set is the same whatever the number of ranks that wrote it)::

    /magnitude/data   (n, 64, 64, 64) float32   √counts, Bragg peak at the centre
    /meta/json        (n,) str                  per-row bookkeeping (index, crystal, rotation,
                                                seed, photons, counts, atoms, relaxation), JSON
    /truth/object     (n, 64, 64, 64) complex64 padded object, |F(object)|² = expected counts
    /truth/support    (n, 64, 64, 64) uint8     |object| > 10 % of its maximum
    /truth/photons    (n,) float64              expected photons of the pattern
    /truth/seed       (n, 2) int64              (run seed, crystal index)
    /truth/params     (n,) str                  facets, strain, rotation, relaxation, bin (JSON)

    attributes: format, version, shard, first_index, n_rows, run_id, complete

Every 3D dataset is chunked one volume per chunk and compressed with Blosc-LZ4 and
bit-shuffle (``hdf5plugin``): a sample (magnitude, object, support: 3.25 MiB raw) takes
≈0.6 MB on disk and ≈30 ms to write (benchmarks/bench_simulate.py). Training reads
``/magnitude`` only; ``/truth`` is read by evaluation through :mod:`autophase.data.truth`.

Atomicity: :class:`ShardWriter` writes ``.shard-KKKKK.h5.part-PID`` and renames it to the
final name (``os.replace``, atomic on POSIX) only after every row is written, the
``complete`` attribute is set and the file is flushed and closed. A killed writer leaves
only a hidden ``.part`` file, which the next run deletes; a file with a final name is
therefore always complete.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..atomic import PART, part_name
from ..errors import InputError

__all__ = ["FORMAT", "VERSION", "SHAPE", "MAGNITUDE", "META", "TRUTH_GROUP", "shard_name",
           "shard_number", "is_part_file", "compression", "ShardWriter", "open_shard",
           "read_meta", "check_shard"]

FORMAT = "autophase-sim-shard"
VERSION = 1
SHAPE = (64, 64, 64)
MAGNITUDE = "magnitude/data"
META = "meta/json"
TRUTH_GROUP = "truth"
_PREFIX, _SUFFIX = "shard-", ".h5"


def shard_name(k: int) -> str:
    return f"{_PREFIX}{int(k):05d}{_SUFFIX}"


def shard_number(name: str) -> int | None:
    """k for ``shard-KKKKK.h5``, else None."""
    if name.startswith(_PREFIX) and name.endswith(_SUFFIX):
        core = name[len(_PREFIX):-len(_SUFFIX)]
        if core.isdigit():
            return int(core)
    return None


def is_part_file(name: str) -> bool:
    return name.startswith("." + _PREFIX) and PART in name


def compression() -> dict:
    """h5py dataset keywords: Blosc-LZ4 with bit-shuffle (registers the filter on import)."""
    import hdf5plugin

    return dict(hdf5plugin.Blosc(cname="lz4", clevel=5, shuffle=hdf5plugin.Blosc.BITSHUFFLE))


class ShardWriter:
    """Write shard ``k`` of ``n_rows`` samples into ``run_dir`` atomically.

    Use as a context manager: rows are written with :meth:`write`; :meth:`commit`
    renames the finished file; leaving the block without committing (an exception)
    deletes the partial file.

        with ShardWriter(run_dir, k, n_rows, first_index, run_id) as w:
            for row, s in enumerate(samples):
                w.write(row, s.magnitude, s.truth, s.support, s.meta, s.params)
            w.commit()
    """

    def __init__(self, run_dir: str | os.PathLike, k: int, n_rows: int, first_index: int,
                 run_id: str):
        import h5py

        self.final = Path(run_dir) / shard_name(k)
        self.tmp = part_name(self.final)
        self.n_rows = int(n_rows)
        self._written = np.zeros(self.n_rows, bool)
        self._meta: list[str] = [""] * self.n_rows
        self._params: list[str] = [""] * self.n_rows
        self.f = h5py.File(self.tmp, "w", track_order=True)
        self.f.attrs.update(format=FORMAT, version=VERSION, shard=int(k), first_index=int(first_index),
                            n_rows=self.n_rows, run_id=run_id, complete=False)
        comp = compression()
        vol = (self.n_rows,) + SHAPE
        chunk = (1,) + SHAPE
        g = self.f.create_group("magnitude")
        g.attrs["description"] = "sqrt(Poisson counts), float32, zero frequency at index 32"
        self.mag = g.create_dataset("data", vol, np.float32, chunks=chunk, **comp)
        t = self.f.create_group(TRUTH_GROUP)
        t.attrs["description"] = ("evaluation only: padded complex object with |F(object)|^2 = "
                                  "expected counts (autophase.physics.intensity convention)")
        self.obj = t.create_dataset("object", vol, np.complex64, chunks=chunk, **comp)
        self.sup = t.create_dataset("support", vol, np.uint8, chunks=chunk, **comp)
        self.photons = t.create_dataset("photons", (self.n_rows,), np.float64)
        self.seed = t.create_dataset("seed", (self.n_rows, 2), np.int64)

    def write(self, row: int, magnitude: np.ndarray, truth: np.ndarray, support: np.ndarray,
              meta: dict, params: dict) -> None:
        if magnitude.shape != SHAPE or truth.shape != SHAPE or support.shape != SHAPE:
            raise ValueError(f"shard rows must be {SHAPE}, got {magnitude.shape}, {truth.shape}")
        self.mag[row] = np.asarray(magnitude, np.float32)
        self.obj[row] = np.asarray(truth, np.complex64)
        self.sup[row] = np.asarray(support, np.uint8)
        self.photons[row] = float(params.get("photons", meta.get("photons", np.nan)))
        self.seed[row] = np.asarray(meta.get("seed", (-1, -1)), np.int64)
        self._meta[row] = json.dumps(meta, separators=(",", ":"))
        self._params[row] = json.dumps(params, separators=(",", ":"))
        self._written[row] = True

    def commit(self) -> Path:
        """Finish the file and give it its final name; return that path."""
        import h5py

        if not self._written.all():
            raise RuntimeError(f"{self.final.name}: rows {np.flatnonzero(~self._written).tolist()} "
                               "were never written")
        st = h5py.string_dtype("utf-8")
        self.f.create_group("meta").create_dataset("json", data=np.array(self._meta, object), dtype=st)
        self.f[TRUTH_GROUP].create_dataset("params", data=np.array(self._params, object), dtype=st)
        self.f.attrs["complete"] = True
        self.f.flush()
        self.f.close()
        # make the bytes durable before the name says "complete"
        fd = os.open(self.tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.tmp, self.final)
        return self.final

    def abort(self) -> None:
        try:
            self.f.close()
        except Exception:  # noqa: BLE001 - already closed or broken: removing it is all we want
            pass
        self.tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.tmp.exists():  # not committed
            self.abort()
        return False


def open_shard(path: str | os.PathLike):
    """Open a shard read-only as an h5py.File; InputError naming it if missing or unreadable."""
    import h5py
    import hdf5plugin  # noqa: F401  (Blosc filter for the compressed datasets)

    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: shard file missing")
    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise InputError(f"{p}: corrupt or truncated shard ({str(e).splitlines()[0]})") from None
    if f.attrs.get("format") != FORMAT:
        f.close()
        raise InputError(f"{p}: not an autophase simulation shard (format attribute missing)")
    return f


def read_meta(path: str | os.PathLike) -> list[dict]:
    """The per-row bookkeeping of a complete shard (no truth is read)."""
    f = open_shard(path)
    try:
        if not f.attrs.get("complete", False):
            raise InputError(f"{path}: shard is incomplete")
        rows = f[META][()]
    except InputError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"{path}: corrupt shard ({e})") from None
    finally:
        f.close()
    return [json.loads(r.decode() if isinstance(r, bytes) else r) for r in rows]


def check_shard(path: str | os.PathLike, n_rows: int, first_index: int, run_id: str) -> None:
    """Raise InputError unless ``path`` is a complete shard of this run with these rows."""
    f = open_shard(path)
    try:
        a = f.attrs
        got = (bool(a.get("complete", False)), int(a.get("n_rows", -1)), int(a.get("first_index", -1)),
               str(a.get("run_id", "")))
        if got != (True, int(n_rows), int(first_index), run_id):
            raise InputError(f"{path}: shard does not belong to this run or is incomplete "
                             f"(complete, rows, first index, run id = {got}; expected "
                             f"{(True, n_rows, first_index, run_id)})")
        if f[MAGNITUDE].shape != (n_rows,) + SHAPE:
            raise InputError(f"{path}: magnitude shape {f[MAGNITUDE].shape} != {(n_rows,) + SHAPE}")
    except KeyError as e:
        raise InputError(f"{path}: corrupt shard (missing {e})") from None
    finally:
        f.close()
