"""Writing a reconstruction the way users want it, shared by ``phase`` and ``predict``.

* ``OUT.npz`` — arrays and metrics (object complex64, support bool, chi2, llk_free, …).
* ``OUT.cxi`` — the CXI file, plus, beside it, ``OUT.vti`` (ParaView), the phase-ramp-
  removed displacement and strain along Q (:mod:`autophase.beamline.postprocess`),
  ``OUT_isosurface.png`` and ``OUT_slices.png``. When the input is a CXI file written by
  ``autophase prep`` with the full scan geometry (energy, distance, pixel size, δ, γ,
  rocking motor and step), the object is first put on an orthonormal lab grid
  (:mod:`autophase.beamline.geometry`) and strain is taken along the true Q̂
  (metadata ``frame = "lab"``); otherwise it stays in the array frame with Q̂ along y and
  whatever voxel size and d spacing the input gives (``frame = "detector"``, and
  ``frame_note`` says why). ``OUT.npz`` and ``OUT.png`` always hold the object as phased.
* always (unless ``plot=False``) ``OUT.png``: central slices of amplitude and phase and,
  for iterative runs, the error curve. ``plot=False`` also leaves out the .cxi result's
  two PNGs (its .vti is data and always written).

The result file comes first (:func:`write_result`), the VTK and pictures after it
(:func:`write_extras`), so that a caller may hand the second part to a background
worker (``autophase watch``). Every file is written to a hidden temporary name and
renamed, so a crash leaves no file that looks complete.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .atomic import atomic_path

__all__ = ["check_output_path", "input_geometry", "input_scan_geometry", "write_reconstruction", "write_result",
           "write_extras"]

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
    from .beamline.geometry import ScanGeometry, why_no_geometry

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


def _savez_fast(path: str | os.PathLike, arrays: Mapping[str, Any]) -> None:
    """An .npz as ``np.savez_compressed`` writes it (one .npy per key; ``np.load`` reads it),
    at zlib level 1 instead of 6: about half the time for a slightly larger file, since the
    result file is on the watch service's critical path (docs/watch.md)."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for k, v in arrays.items():
            with zf.open(f"{k}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(v), allow_pickle=False)


def write_result(out: str | os.PathLike, obj: np.ndarray, support: np.ndarray,
                 metrics: Mapping[str, Any], *, history: Mapping[str, Any] | None = None,
                 arrays: Mapping[str, Any] | None = None, input_path: str | None = None,
                 intensity: np.ndarray | None = None, unmeasured: np.ndarray | None = None,
                 plot: bool = True, title: str = "") -> tuple[Path, dict[str, Any]]:
    """Write the result file ``out`` alone (atomically); return it and the rest still to do.

    The second value is a picklable job for :func:`write_extras` (VTK for a .cxi result,
    and the pictures when ``plot``): a caller that wants the result first — the watch
    service, a one-shot command — writes it here and the extras afterwards, possibly in
    another process. Arguments as in :func:`write_reconstruction`.
    """
    out = Path(out)
    job: dict[str, Any] = {"out": str(out), "plot": bool(plot), "title": title, "history": _plain(history),
                           "object": np.asarray(obj, np.complex64), "support": np.asarray(support, bool)}
    if out.suffix.lower() == ".npz":
        payload = {"object": np.asarray(obj, np.complex64), "support": np.asarray(support, bool)}
        for k, v in metrics.items():
            payload[k] = np.asarray(v) if not isinstance(v, str) else np.asarray(v, dtype="U")
        payload.update(arrays or {})
        with atomic_path(out, suffix=".npz") as tmp:  # numpy appends .npz to any other name
            _savez_fast(tmp, payload)
        return out, job
    from .beamline.postprocess import postprocess
    from .io.cxi import write_cxi

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
    meta = dict(res.get("metadata", {}))
    if res.get("voxel_size_nm"):
        meta["voxel_size_nm"] = tuple(res["voxel_size_nm"])
    meta["units"] = dict(res.get("units", {}))
    meta.update({k: v for k, v in metrics.items() if np.isscalar(v) or isinstance(v, str)})
    meta.update(geo)
    write_cxi(out, res["object"], res["support"], data=intensity, mask=unmeasured, metadata=meta,
              extra={"displacement": res["displacement"], "strain": res["strain"]})
    job["postprocessed"] = res
    return out, job


def _plain(history: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The error curve as plain lists (picklable, small)."""
    if not history:
        return None
    return {k: list(np.asarray(v).tolist()) for k, v in history.items() if k in ("chi2", "algorithm")}


def write_extras(job: Mapping[str, Any]) -> list[Path]:
    """What :func:`write_result` left to do: for a .cxi result ``OUT.vti`` (always) and
    ``OUT_isosurface.png``/``OUT_slices.png``; ``OUT.png`` (central slices, error curve)
    — the pictures only when the job says ``plot``. Each file is written atomically."""
    out = Path(job["out"])
    written: list[Path] = []
    res = job.get("postprocessed")
    if res is not None:
        from .beamline.postprocess import plot_isosurface, plot_slices
        from .io.vtk import write_object_vti

        disp_name = "displacement_nm" if res.get("d_spacing_nm") else "displacement_d"
        written.append(write_object_vti(out.with_suffix(".vti"), res["object"], res["support"],
                                        voxel_size_nm=res.get("voxel_size_nm"),
                                        extra={disp_name: res["displacement"], "strain": res["strain"]}))
        if job.get("plot"):
            stem = out.with_suffix("")
            written.append(plot_isosurface(res, stem.with_name(stem.name + "_isosurface.png"), level=0.3))
            written.append(plot_slices(res, stem.with_name(stem.name + "_slices.png")))
    if job.get("plot"):
        from .plots import plot_reconstruction

        written.append(plot_reconstruction(job["object"], job["support"], out.with_suffix(".png"),
                                           job.get("history"), title=job.get("title", "")))
    return written


def write_reconstruction(out: str | os.PathLike, obj: np.ndarray, support: np.ndarray,
                         metrics: Mapping[str, Any], *, history: Mapping[str, Any] | None = None,
                         arrays: Mapping[str, Any] | None = None, input_path: str | None = None,
                         intensity: np.ndarray | None = None, unmeasured: np.ndarray | None = None,
                         plot: bool = True, title: str = "") -> list[Path]:
    """Write ``out`` (.npz or .cxi, see the module doc) first, then its VTK and pictures
    (``plot``); return the paths, the result file first."""
    path, job = write_result(out, obj, support, metrics, history=history, arrays=arrays, input_path=input_path,
                             intensity=intensity, unmeasured=unmeasured, plot=plot, title=title)
    return [path, *write_extras(job)]
