"""Writing a reconstruction the way users want it, shared by ``phase`` and ``predict``.

* ``OUT.npz`` — arrays and metrics (object complex64, support bool, chi2, llk_free, …).
* ``OUT.cxi`` — the CXI file, plus, beside it, ``OUT.vti`` (ParaView), the phase-ramp-
  removed displacement and strain along Q (:mod:`autophase.experimental.postprocess`),
  ``OUT_isosurface.png`` and ``OUT_slices.png``. The geometry (voxel size, d spacing)
  comes from the input when it is a CXI file written by ``autophase prep``.
* always (unless ``plot=False``) ``OUT.png``: central slices of amplitude and phase and,
  for iterative runs, the error curve.

Every file is written to a temporary name and renamed, so a crash leaves no file that
looks complete.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

__all__ = ["check_output_path", "input_geometry", "write_reconstruction"]

SUFFIXES = (".npz", ".cxi")


def check_output_path(path: str | os.PathLike) -> Path:
    """Refuse an output we could not write, before any work is done."""
    from .errors import InputError

    p = Path(path)
    if p.suffix.lower() not in SUFFIXES:
        raise InputError(f"{p}: output must end in .npz or .cxi")
    if not p.parent.exists():
        raise InputError(f"{p.parent}: output directory does not exist")
    return p


def input_geometry(input_path: str | os.PathLike) -> dict[str, Any]:
    """Voxel size and d spacing stored by ``autophase prep`` in a CXI input ({} otherwise)."""
    if Path(input_path).suffix.lower() != ".cxi":
        return {}
    from .io.cxi import read_cxi

    meta = read_cxi(input_path).get("metadata", {})
    out = {}
    for k in ("voxel_size_m", "d_spacing_m", "energy_eV", "detector_distance_m"):
        if meta.get(k) is not None:
            out[k] = meta[k]
    return out


def write_reconstruction(out: str | os.PathLike, obj: np.ndarray, support: np.ndarray,
                         metrics: Mapping[str, Any], *, history: Mapping[str, Any] | None = None,
                         arrays: Mapping[str, Any] | None = None, input_path: str | None = None,
                         intensity: np.ndarray | None = None, unmeasured: np.ndarray | None = None,
                         plot: bool = True, title: str = "") -> list[Path]:
    """Write ``out`` (.npz or .cxi, see the module doc) and its pictures; return the paths."""
    out = Path(out)
    written: list[Path] = []
    if out.suffix.lower() == ".npz":
        tmp = out.with_name(out.stem + ".tmp.npz")
        payload = {"object": np.asarray(obj, np.complex64), "support": np.asarray(support, bool)}
        for k, v in metrics.items():
            payload[k] = np.asarray(v) if not isinstance(v, str) else np.asarray(v, dtype="U")
        payload.update(arrays or {})
        np.savez_compressed(tmp, **payload)
        os.replace(tmp, out)
        written.append(out)
    else:
        from .experimental.postprocess import postprocess, write_outputs

        geo = input_geometry(input_path) if input_path else {}
        vox = geo.get("voxel_size_m")
        d = geo.get("d_spacing_m")
        res = postprocess(obj, support, voxel_size_nm=None if vox is None else np.asarray(vox) * 1e9,
                          d_spacing_nm=None if d is None else float(d) * 1e9)
        meta = {**{k: v for k, v in metrics.items() if np.isscalar(v) or isinstance(v, str)}, **geo}
        paths = write_outputs(out.with_suffix(""), res, data=intensity, mask=unmeasured, metadata=meta)
        written.extend(paths.values())
    if plot:
        from .plots import plot_reconstruction

        written.append(plot_reconstruction(obj, support, out.with_suffix(".png"), history, title=title))
    return written
