"""Writing a reconstruction the way users want it, shared by ``phase`` and ``predict``.

* ``OUT.npz`` — arrays and metrics (object complex64, support bool, chi2, llk_free, …).
* ``OUT.cxi`` — the CXI file, plus, beside it, ``OUT.vti`` (ParaView), the phase-ramp-
  removed displacement and strain along Q (:mod:`autophase.experimental.postprocess`),
  ``OUT_isosurface.png`` and ``OUT_slices.png``. When the input is a CXI file written by
  ``autophase prep`` with the full scan geometry (energy, distance, pixel size, δ, γ,
  rocking motor and step), the object is first put on an orthonormal lab grid
  (:mod:`autophase.experimental.geometry`) and strain is taken along the true Q̂
  (metadata ``frame = "lab"``); otherwise it stays in the array frame with Q̂ along y and
  whatever voxel size and d spacing the input gives (``frame = "detector"``, and
  ``frame_note`` says why). ``OUT.npz`` and ``OUT.png`` always hold the object as phased.
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

__all__ = ["check_output_path", "input_geometry", "input_scan_geometry", "write_reconstruction"]

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


def _input_metadata(input_path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of a CXI input ({} for any other kind of file)."""
    if Path(input_path).suffix.lower() != ".cxi":
        return {}
    from .io.cxi import read_cxi

    return dict(read_cxi(input_path).get("metadata", {}))


def input_geometry(input_path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Voxel size and d spacing stored by ``autophase prep`` in a CXI input ({} otherwise).

    metadata : the input's metadata when already read (else it is read from the file).
    """
    meta = _input_metadata(input_path) if metadata is None else metadata
    out = {}
    for k in ("voxel_size_m", "d_spacing_m", "energy_eV", "detector_distance_m"):
        if meta.get(k) is not None:
            out[k] = meta[k]
    return out


def input_scan_geometry(input_path: str | os.PathLike, metadata: Mapping[str, Any] | None = None):
    """(ScanGeometry or None, why not): the 34-ID-C geometry a CXI input carries.

    None with a reason when the input is not a CXI file or lacks a needed key (then the
    outputs stay in the detector frame); InputError naming the file for bad values.
    """
    from .errors import InputError
    from .experimental.geometry import ScanGeometry, why_no_geometry

    if Path(input_path).suffix.lower() != ".cxi":
        return None, f"input {Path(input_path).name} is not a CXI file from autophase prep: no scan geometry"
    meta = _input_metadata(input_path) if metadata is None else metadata
    try:
        geo = ScanGeometry.from_metadata(meta)
    except InputError as e:
        raise InputError(f"{input_path}: {e}") from None
    if geo is None:
        return None, f"input {Path(input_path).name} {why_no_geometry(meta)}: no scan geometry"
    return geo, ""


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

        geo, scan_geo, why = {}, None, "no input file"
        if input_path:
            meta_in = _input_metadata(input_path)
            geo = input_geometry(input_path, meta_in)
            scan_geo, why = input_scan_geometry(input_path, meta_in)
        if scan_geo is not None:
            res = postprocess(obj, support, geometry=scan_geo)
            # prep's voxel size is the detector frame's (approximate, anisotropic): keep it under
            # another name, or it would override the lab grid's in the CXI file
            vox_det = geo.pop("voxel_size_m", None)
            if vox_det is not None:
                geo["detector_voxel_size_approx_m"] = np.asarray(vox_det, float)
        else:
            vox = geo.get("voxel_size_m")
            d = geo.get("d_spacing_m")
            res = postprocess(obj, support, voxel_size_nm=None if vox is None else np.asarray(vox) * 1e9,
                              d_spacing_nm=None if d is None else float(d) * 1e9)
            res["metadata"]["frame_note"] = why
        meta = {**{k: v for k, v in metrics.items() if np.isscalar(v) or isinstance(v, str)}, **geo}
        paths = write_outputs(out.with_suffix(""), res, data=intensity, mask=unmeasured, metadata=meta)
        written.extend(paths.values())
    if plot:
        from .plots import plot_reconstruction

        written.append(plot_reconstruction(obj, support, out.with_suffix(".png"), history, title=title))
    return written
