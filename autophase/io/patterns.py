"""Reading a 3D diffraction pattern from disk, with the checks a user needs.

:func:`load_pattern` reads ``.npy``, ``.npz``, ``.h5``/``.hdf5``/``.cxi`` and ``.tif``/
``.tiff`` stacks and returns the *magnitude* √I (float32, Bragg peak at the centre) and
a ``measured`` mask. Every problem becomes an :class:`~autophase.errors.InputError`
whose one-line message names the file.

Where the data sit:

* ``.npz`` — key ``data``, ``intensity``, ``counts``, ``magnitude`` (in that order), or
  the only array; a key ``mask`` (True/1 = *unmeasured*, CXI's convention) is honoured.
* ``.cxi`` / HDF5 — ``--dataset PATH`` if given, else ``/entry_1/data_1/data``,
  ``/entry_1/instrument_1/detector_1/data``, ``/entry_1/image_1/data`` when it is real,
  ``/data``, or the only 3D dataset; a ``mask`` dataset beside it is honoured.
* ``.tif`` — a multi-page stack (one page per rocking angle / first axis).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

__all__ = ["Pattern", "load_pattern", "load_array", "validate_pattern", "MIN_SIZE"]

MIN_SIZE = 16
_NPZ_KEYS = ("data", "intensity", "counts", "magnitude")
_H5_PATHS = ("entry_1/data_1/data", "entry_1/instrument_1/detector_1/data", "data")


@dataclass(frozen=True)
class Pattern:
    """A measured pattern ready for phasing.

    magnitude : (z, y, x) float32, √counts, 0 where unmeasured.
    measured  : (z, y, x) bool, False where the detector did not measure (gaps, masked).
    source    : the file it came from (for messages and provenance).
    """

    magnitude: np.ndarray
    measured: np.ndarray
    source: str

    @property
    def intensity(self) -> np.ndarray:
        return self.magnitude.astype(np.float32) ** 2


def _h5_find(f, dataset: str | None):
    import h5py

    if dataset:
        if dataset not in f:
            raise KeyError(f"no dataset {dataset!r}")
        return f[dataset]
    for p in _H5_PATHS:
        if p in f and isinstance(f[p], h5py.Dataset):
            return f[p]
    found = []
    f.visititems(lambda n, o: found.append(o) if isinstance(o, h5py.Dataset) and o.ndim == 3 else None)
    if len(found) == 1:
        return found[0]
    raise KeyError("no 3D dataset at /entry_1/data_1/data and not exactly one 3D dataset in the file"
                   " (name it with --dataset)")


def load_array(path: str | os.PathLike, dataset: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Raw array and optional 'unmeasured' mask from any supported file (no validation)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory, expected a pattern file (.npy .npz .h5 .cxi .tif)")
    ext = p.suffix.lower()
    try:
        if ext == ".npy":
            return np.load(p, allow_pickle=False), None
        if ext == ".npz":
            with np.load(p, allow_pickle=False) as z:
                keys = [k for k in _NPZ_KEYS if k in z.files] or (z.files if len(z.files) == 1 else [])
                if not keys:
                    raise InputError(f"{p}: no array named {'/'.join(_NPZ_KEYS)} among {z.files}")
                mask = z["mask"] if "mask" in z.files else None
                return z[keys[0]], mask
        if ext in (".h5", ".hdf5", ".cxi", ".nxs"):
            import h5py
            import hdf5plugin  # noqa: F401  (registers Blosc/LZ4/bitshuffle filters)

            with h5py.File(p, "r") as f:
                d = _h5_find(f, dataset)
                arr = d[()]
                mask = None
                parent = d.parent
                if "mask" in parent and parent["mask"].shape == d.shape:
                    mask = parent["mask"][()]
                return arr, mask
        if ext in (".tif", ".tiff"):
            import tifffile

            return tifffile.imread(p), None
    except InputError:
        raise
    except KeyError as e:
        raise InputError(f"{p}: {e.args[0] if e.args else e}") from None
    except (OSError, ValueError, EOFError) as e:
        # h5py raises OSError on corrupt/truncated files, numpy ValueError/EOFError on bad npy
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{p}: unreadable ({msg})") from None
    raise InputError(f"{p}: unknown file type {ext!r} (expected .npy .npz .h5 .cxi .tif)")


def validate_pattern(arr: np.ndarray, name: str, allow_invalid: bool = False,
                     min_size: int = MIN_SIZE) -> np.ndarray:
    """Check a raw pattern; return the boolean 'measured' mask (True = use this voxel).

    Rejects: not 3D, a side that is odd or smaller than ``min_size``, a non-numeric or
    complex array, ±inf, and a pattern with no positive measured voxel. NaN and
    negative voxels are errors unless ``allow_invalid`` (then they are unmeasured, as
    detector gaps are often marked).
    """
    if arr.ndim != 3:
        raise InputError(f"{name}: expected a 3D pattern, got {arr.ndim} dimension(s) {arr.shape}")
    if any(s % 2 for s in arr.shape) or min(arr.shape) < min_size:
        raise InputError(f"{name}: each side must be even and ≥ {min_size}, got {arr.shape}")
    if np.iscomplexobj(arr) or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{name}: expected real counts or magnitudes, got dtype {arr.dtype}")
    a = np.asarray(arr, np.float64)
    if np.isinf(a).any():
        raise InputError(f"{name}: {int(np.isinf(a).sum())} voxel(s) are ±inf")
    bad = np.isnan(a) | (a < 0)
    if bad.any() and not allow_invalid:
        n_nan, n_neg = int(np.isnan(a).sum()), int((a < 0).sum())
        raise InputError(f"{name}: {n_nan} NaN and {n_neg} negative voxel(s); pass --mask-invalid to treat"
                         " them as unmeasured")
    measured = ~bad
    if not (a[measured] > 0).any():
        raise InputError(f"{name}: no positive counts (the pattern is all zeros or unmeasured)")
    return measured


def load_pattern(path: str | os.PathLike, kind: str = "intensity", dataset: str | None = None,
                 allow_invalid: bool = False) -> Pattern:
    """Read and check a pattern; ``kind`` says whether the file holds intensity or magnitude."""
    if kind not in ("intensity", "magnitude"):
        raise ValueError(f"kind must be 'intensity' or 'magnitude', not {kind!r}")
    arr, mask = load_array(path, dataset)
    measured = validate_pattern(arr, str(path), allow_invalid=allow_invalid)
    if mask is not None:
        if mask.shape != arr.shape:
            raise InputError(f"{path}: mask shape {mask.shape} differs from data {arr.shape}")
        measured &= ~mask.astype(bool)
    a = np.where(measured, np.asarray(arr, np.float32), 0.0).astype(np.float32)
    mag = np.sqrt(a) if kind == "intensity" else a
    return Pattern(mag.astype(np.float32), measured, str(path))
