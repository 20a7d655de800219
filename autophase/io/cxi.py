"""CXI files (Coherent X-ray Imaging format 1.6, cxidb.org) for objects and patterns.

Two kinds of file, both plain HDF5 laid out as the CXI specification asks:

* a **reconstruction** (:func:`write_cxi`): the complex object, its support, optionally
  the measured pattern it was phased from, the instrument, and what produced it::

      /cxi_version                          160
      /entry_1/image_1/data                 (z, y, x) complex64  (CXI complex: compound r, i)
                      /data_type            "amplitude"   (CXI: a *phased* dataset)
                      /data_space           "real"
                      /is_fft_shifted       0             (object centred, not quadrant-swapped)
                      /dimensionality       3
                      /image_size           (3,) m        (when the voxel size is known)
                      /support              (z, y, x) uint8, 1 = inside
                      /mask                 (z, y, x) uint32, 0x10000 = inside support (CXI bit)
                      /process_1/...        program, version, command, date, metrics
      /entry_1/data_1/data                  → soft link to /entry_1/image_1/data
      /entry_1/instrument_1/source_1/energy J     /detector_1/distance m, x/y_pixel_size m
      /entry_1/instrument_1/detector_1/data (z, y, x) float32 intensity (when ``data`` given)
                                     /mask  uint32, non-zero = unmeasured
      /entry_1/sample_1/name

* a **prepared diffraction pattern** (:func:`write_pattern_cxi`, the output of
  ``autophase prep``): intensity with the Bragg peak at the array centre, as
  :func:`autophase.io.patterns.load_pattern` reads it::

      /entry_1/data_1/data                  (z, y, x) float32 photon counts
      /entry_1/data_1/mask                  (z, y, x) uint32, non-zero = unmeasured
      /entry_1/instrument_1/detector_1/data → soft link to /entry_1/data_1/data (and mask)
      /entry_1/image_1/...                  data_space "diffraction", data_type "intensity"
                                            (link to the same data), is_fft_shifted 0

The mask follows the CXI bit meanings (0x1 invalid, 0x4 hot, 0x8 dead, 0x200 missing /
outside the measured range); every flagged voxel also carries 0x1, and autophase's
readers treat any non-zero value as "unmeasured". Units are SI, as CXI requires
(energy in joules, lengths in metres); ``metadata`` may give them with unit suffixes
(``energy_eV``, ``wavelength_m``, ``detector_distance_m``, ``pixel_size_m``,
``voxel_size_m`` or ``voxel_size_nm``).

Every write goes to a temporary file beside the target and is renamed over it when
complete (``os.replace``), so a killed process never leaves a file that looks finished.

Example::

    >>> import numpy as np, tempfile, os
    >>> obj = np.ones((4, 4, 4), np.complex64)
    >>> p = os.path.join(tempfile.mkdtemp(), "x.cxi")
    >>> _ = write_cxi(p, obj, obj.real > 0, metadata={"energy_eV": 9000.0, "chi2": 0.1})
    >>> r = read_cxi(p)
    >>> r["object"].shape, r["metadata"]["chi2"], round(r["metadata"]["energy_eV"])
    ((4, 4, 4), 0.1, 9000)
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import sys
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import __version__
from ..atomic import atomic_path
from ..errors import InputError

__all__ = [
    "CXI_VERSION",
    "MASK_INVALID",
    "MASK_SATURATED",
    "MASK_HOT",
    "MASK_DEAD",
    "MASK_MISSING",
    "MASK_ALIEN",
    "MASK_INSIDE_SUPPORT",
    "write_cxi",
    "write_pattern_cxi",
    "read_cxi",
    "atomic_path",
]

CXI_VERSION = 160

# CXI 1.6 mask bits (image and detector classes); ALIEN is a user bit (high bits are
# left to users by the spec) for parasitic scattering removed by ``prep``.
MASK_INVALID = 0x00000001
MASK_SATURATED = 0x00000002
MASK_HOT = 0x00000004
MASK_DEAD = 0x00000008
MASK_MISSING = 0x00000200
MASK_INSIDE_SUPPORT = 0x00010000
MASK_ALIEN = 0x01000000

_EV_TO_J = 1.602176634e-19
_HC_EV_M = 1.239841984e-6  # h·c in eV·m: λ[m] = 1.2398e-6 / E[eV]

# metadata keys that describe the instrument/sample rather than the process
_INSTRUMENT_KEYS = {
    "energy_eV", "energy_J", "wavelength_m", "detector_distance_m", "pixel_size_m",
    "voxel_size_m", "voxel_size_nm", "sample_name", "program", "version", "command",
    "comments", "date", "notes", "kind", "cxi_version", "instrument", "metrics",
}


def _check_3d(arr, name: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim != 3:
        raise InputError(f"{name}: expected a 3D (z, y, x) array, got shape {a.shape}")
    return a


def _energy_eV(meta: Mapping[str, Any]) -> float | None:
    if meta.get("energy_eV") is not None:
        return float(meta["energy_eV"])
    if meta.get("energy_J") is not None:
        return float(meta["energy_J"]) / _EV_TO_J
    if meta.get("wavelength_m") is not None:
        return _HC_EV_M / float(meta["wavelength_m"])
    return None


def _voxel_size_m(meta: Mapping[str, Any]) -> np.ndarray | None:
    if meta.get("voxel_size_m") is not None:
        v = np.asarray(meta["voxel_size_m"], float)
    elif meta.get("voxel_size_nm") is not None:
        v = np.asarray(meta["voxel_size_nm"], float) * 1e-9
    else:
        return None
    return np.broadcast_to(v, (3,)).astype(float)


def _put(group, name: str, value) -> None:
    """Write a scalar, string, sequence or array; dicts are stored as JSON strings."""
    if isinstance(value, Mapping):
        group.create_dataset(name, data=json.dumps(value, default=float))
    elif isinstance(value, str):
        group.create_dataset(name, data=value)
    elif isinstance(value, (bool, np.bool_)):
        group.create_dataset(name, data=np.uint8(value))
    else:
        arr = np.asarray(value)
        if arr.dtype.kind in "OUS":
            group.create_dataset(name, data=json.dumps(np.asarray(value).tolist(), default=str))
        else:
            group.create_dataset(name, data=arr)


def _write_common(f, meta: Mapping[str, Any], kind: str) -> None:
    """cxi_version, instrument (source energy, detector geometry), sample, process_1."""
    f.create_dataset("cxi_version", data=np.int32(CXI_VERSION))
    f.create_dataset("number_of_entries", data=np.int32(1))
    entry = f.require_group("entry_1")
    entry.create_dataset("program_name", data=f"autophase {__version__}")
    entry.create_dataset("start_time", data=_dt.datetime.now(_dt.timezone.utc).astimezone().isoformat())

    inst = entry.require_group("instrument_1")
    inst.create_dataset("name", data=str(meta.get("instrument", "unknown")))
    e_ev = _energy_eV(meta)
    if e_ev is not None:
        src = inst.require_group("source_1")
        src.create_dataset("energy", data=e_ev * _EV_TO_J)  # CXI: joules
        src["energy"].attrs["units"] = "J"
        src.create_dataset("wavelength", data=_HC_EV_M / e_ev)
        src["wavelength"].attrs["units"] = "m"
    det = inst.require_group("detector_1")
    if meta.get("detector_distance_m") is not None:
        det.create_dataset("distance", data=float(meta["detector_distance_m"]))
        det["distance"].attrs["units"] = "m"
    if meta.get("pixel_size_m") is not None:
        px = np.broadcast_to(np.asarray(meta["pixel_size_m"], float), (2,))
        det.create_dataset("y_pixel_size", data=float(px[0]))
        det.create_dataset("x_pixel_size", data=float(px[1]))
        det["y_pixel_size"].attrs["units"] = det["x_pixel_size"].attrs["units"] = "m"

    sample = entry.require_group("sample_1")
    sample.create_dataset("name", data=str(meta.get("sample_name", "unknown")))

    proc = entry.require_group("process_1")
    proc.create_dataset("program", data=str(meta.get("program", "autophase")))
    proc.create_dataset("version", data=str(meta.get("version", __version__)))
    proc.create_dataset("command", data=str(meta.get("command", " ".join(sys.argv))))
    proc.create_dataset("date", data=str(meta.get("date", _dt.datetime.now().astimezone().isoformat())))
    proc.create_dataset("kind", data=kind)
    if meta.get("comments"):
        proc.create_dataset("comments", data=str(meta["comments"]))
    for i, (name, text) in enumerate(dict(meta.get("notes") or {}).items(), start=1):
        note = proc.create_group(f"note_{i}")
        note.create_dataset("description", data=str(name))
        note.create_dataset("type", data="text/plain")
        note.create_dataset("data", data=str(text))
    vox = _voxel_size_m(meta)
    if vox is not None:
        proc.create_dataset("voxel_size_m", data=vox)
    metrics = dict(meta.get("metrics") or {})
    for k, v in meta.items():
        if k not in _INSTRUMENT_KEYS and v is not None:
            metrics[k] = v
    for k, v in metrics.items():
        if v is not None and k not in proc:  # never clobber the process fields above
            _put(proc, k, v)


def _mask_uint32(mask, shape, name: str) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != tuple(shape):
        raise InputError(f"{name}: mask shape {m.shape} differs from data {tuple(shape)}")
    if m.dtype == bool:
        return np.where(m, MASK_INVALID, 0).astype(np.uint32)
    m = m.astype(np.uint32)
    # any flagged voxel is also 'invalid' so that readers testing bit 0 agree with ours
    return np.where(m != 0, m | MASK_INVALID, 0).astype(np.uint32)


def write_cxi(path: str | os.PathLike, object: np.ndarray, support: np.ndarray | None = None, *,
              data: np.ndarray | None = None, mask: np.ndarray | None = None,
              metadata: Mapping[str, Any] | None = None,
              extra: Mapping[str, np.ndarray] | None = None) -> Path:
    """Write a reconstructed complex object (and optionally its measured pattern) as CXI.

    Parameters
    ----------
    object : (z, y, x) complex; stored as complex64 in /entry_1/image_1/data.
    support : (z, y, x) bool, optional; /entry_1/image_1/support (uint8) and the CXI
        image mask bit 0x10000.
    data : (z, y, x) float, optional; the measured intensity it was phased from
        (zero frequency at the array centre), /entry_1/instrument_1/detector_1/data.
    mask : (z, y, x) bool (True = unmeasured) or CXI uint32 bits, for ``data``.
    metadata : instrument keys (``energy_eV`` | ``energy_J`` | ``wavelength_m``,
        ``detector_distance_m``, ``pixel_size_m``, ``voxel_size_m`` | ``voxel_size_nm``,
        ``sample_name``), process keys (``program``, ``version``, ``command``,
        ``comments``, ``notes``: {title: text}) and anything else — numbers, strings,
        arrays, a ``metrics`` dict — goes into /entry_1/process_1 under its own name.
    extra : name → (z, y, x) real array of the same shape (e.g. displacement, strain),
        each written as /entry_1/image_2, image_3, … (data_space "real", ``data_type``
        the name; units from ``metadata["units"][name]`` when given).

    Returns the path written.
    """
    import h5py

    obj = _check_3d(object, f"{path}: object")
    meta = dict(metadata or {})
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        _write_common(f, meta, "reconstruction")
        entry = f["entry_1"]
        img = entry.create_group("image_1")
        img.create_dataset("data", data=obj.astype(np.complex64), chunks=True, compression="gzip",
                           compression_opts=4, shuffle=True)
        img.create_dataset("data_type", data="amplitude")
        img.create_dataset("data_space", data="real")
        img.create_dataset("is_fft_shifted", data=np.int32(0))
        img.create_dataset("dimensionality", data=np.int32(3))
        img.create_dataset("image_center", data=np.array([s / 2 for s in obj.shape[::-1]], float))
        vox = _voxel_size_m(meta)
        if vox is not None:
            img.create_dataset("image_size", data=np.array(obj.shape, float) * vox)
            img["image_size"].attrs["units"] = "m"
        if support is not None:
            sup = np.asarray(support).astype(bool)
            if sup.shape != obj.shape:
                raise InputError(f"{path}: support shape {sup.shape} differs from object {obj.shape}")
            img.create_dataset("support", data=sup.astype(np.uint8), compression="gzip")
            img.create_dataset("mask", data=np.where(sup, MASK_INSIDE_SUPPORT, 0).astype(np.uint32),
                               compression="gzip")
        img["process_1"] = h5py.SoftLink("/entry_1/process_1")
        img["detector_1"] = h5py.SoftLink("/entry_1/instrument_1/detector_1")
        units = dict(meta.get("units") or {})
        for k, (name, arr) in enumerate(dict(extra or {}).items(), start=2):
            a = np.asarray(arr)
            if a.shape != obj.shape or np.iscomplexobj(a):
                raise InputError(f"{path}: extra image {name!r} must be real with the object's shape {obj.shape}, "
                                 f"got {a.dtype} {a.shape}")
            im = entry.create_group(f"image_{k}")
            im.create_dataset("data", data=a.astype(np.float32), chunks=True, compression="gzip", shuffle=True)
            im.create_dataset("data_type", data=str(name))
            im.create_dataset("data_space", data="real")
            im.create_dataset("is_fft_shifted", data=np.int32(0))
            im.create_dataset("dimensionality", data=np.int32(3))
            if name in units:
                im["data"].attrs["units"] = str(units[name])
            im["process_1"] = h5py.SoftLink("/entry_1/process_1")
        data_1 = entry.create_group("data_1")
        data_1["data"] = h5py.SoftLink("/entry_1/image_1/data")
        if data is not None:
            d = _check_3d(data, f"{path}: data")
            det = entry["instrument_1/detector_1"]
            det.create_dataset("data", data=np.asarray(d, np.float32), chunks=True, compression="gzip",
                               compression_opts=4, shuffle=True)
            if mask is not None:
                det.create_dataset("mask", data=_mask_uint32(mask, d.shape, str(path)), compression="gzip")
    return Path(path)


def write_pattern_cxi(path: str | os.PathLike, intensity: np.ndarray, mask: np.ndarray | None = None, *,
                      metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a prepared diffraction pattern (``prep``'s output) as CXI.

    intensity : (z, y, x) float, photon counts ≥ 0, Bragg peak at index n//2 per axis.
    mask : (z, y, x) bool (True = unmeasured) or CXI uint32 bits, optional.
    metadata : as for :func:`write_cxi`.
    """
    import h5py

    inten = _check_3d(intensity, f"{path}: intensity")
    meta = dict(metadata or {})
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        _write_common(f, meta, "diffraction pattern")
        entry = f["entry_1"]
        data_1 = entry.create_group("data_1")
        data_1.create_dataset("data", data=np.asarray(inten, np.float32), chunks=True, compression="gzip",
                              compression_opts=4, shuffle=True)
        data_1["data"].attrs["axes"] = "z:y:x"
        if mask is not None:
            data_1.create_dataset("mask", data=_mask_uint32(mask, inten.shape, str(path)), compression="gzip")
        det = entry["instrument_1/detector_1"]
        det["data"] = h5py.SoftLink("/entry_1/data_1/data")
        if mask is not None:
            det["mask"] = h5py.SoftLink("/entry_1/data_1/mask")
        img = entry.create_group("image_1")
        img["data"] = h5py.SoftLink("/entry_1/data_1/data")
        if mask is not None:
            img["mask"] = h5py.SoftLink("/entry_1/data_1/mask")
        img.create_dataset("data_type", data="intensity")
        img.create_dataset("data_space", data="diffraction")
        img.create_dataset("is_fft_shifted", data=np.int32(0))
        img.create_dataset("dimensionality", data=np.int32(3))
        # zero frequency at index n//2 per axis, as (x, y, z) in fractional pixels (CXI order)
        img.create_dataset("image_center", data=np.array([s // 2 for s in inten.shape[::-1]], float))
        img["process_1"] = h5py.SoftLink("/entry_1/process_1")
    return Path(path)


def _scalar(v):
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, str):
        s = v.strip()
        if s[:1] in "[{":
            try:
                return json.loads(s)
            except ValueError:
                return v
    return v


def read_cxi(path: str | os.PathLike) -> dict:
    """Read a CXI file written by this module (or any CXI 1.x with the same layout).

    Returns a dict with keys

    * ``object``  — (z, y, x) complex64 or None (a real-space phased image_1),
    * ``support`` — (z, y, x) bool or None,
    * ``data``    — (z, y, x) float32 or None: the diffraction intensity (data_1 of a
      pattern file, or detector_1/data of a reconstruction),
    * ``mask``    — (z, y, x) bool (True = unmeasured) or None, ``mask_bits`` the raw uint32,
    * ``extra``   — name → (z, y, x) float32: further real-space images (image_2, …),
    * ``metadata`` — flat dict: ``cxi_version``, ``kind``, ``energy_eV``, ``wavelength_m``,
      ``detector_distance_m``, ``pixel_size_m`` (y, x), ``voxel_size_m`` (3,),
      ``sample_name``, ``program``, ``version``, ``command``, ``date``, ``notes`` and
      every metric stored in process_1.

    Raises :class:`InputError` naming the file if it is missing, not HDF5, or not CXI.
    """
    import h5py

    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise InputError(f"{p}: not a readable HDF5/CXI file ({str(e).splitlines()[0]})") from None
    with f:
        if "entry_1" not in f:
            raise InputError(f"{p}: not a CXI file (no /entry_1)")
        entry = f["entry_1"]
        out: dict[str, Any] = {"object": None, "support": None, "data": None, "mask": None,
                               "mask_bits": None, "extra": {}}
        meta: dict[str, Any] = {}
        if "cxi_version" in f:
            meta["cxi_version"] = int(f["cxi_version"][()])
        img = entry.get("image_1")
        if img is not None and "data" in img:
            space = _scalar(img["data_space"][()]) if "data_space" in img else "real"
            d = img["data"]
            if space == "real" or d.dtype.kind == "c":
                if d.dtype.kind != "c" and d.dtype.names is not None:  # CXI compound r, i
                    raw = d[()]
                    out["object"] = (raw["r"] + 1j * raw["i"]).astype(np.complex64)
                else:
                    out["object"] = np.asarray(d[()]).astype(np.complex64)
                if "support" in img:
                    out["support"] = img["support"][()].astype(bool)
                elif "mask" in img:
                    out["support"] = (img["mask"][()] & MASK_INSIDE_SUPPORT) != 0
        for k in range(2, 100):
            im = entry.get(f"image_{k}")
            if im is None:
                break
            if "data" in im and "data_type" in im and im["data"].dtype.kind == "f":
                out["extra"][_scalar(im["data_type"][()])] = np.asarray(im["data"][()])
        # the diffraction data: a pattern file's data_1, else the detector's
        data_ds = None
        if "data_1/data" in entry and entry["data_1/data"].dtype.kind in "fiu":
            data_ds = entry["data_1/data"]
            mask_ds = entry["data_1/mask"] if "data_1/mask" in entry else None
        elif "instrument_1/detector_1/data" in entry:
            data_ds = entry["instrument_1/detector_1/data"]
            mask_ds = entry.get("instrument_1/detector_1/mask")
        if data_ds is not None:
            out["data"] = np.asarray(data_ds[()], np.float32)
            if mask_ds is not None:
                bits = np.asarray(mask_ds[()]).astype(np.uint32)
                out["mask_bits"] = bits
                out["mask"] = bits != 0
        if out["object"] is None and out["data"] is None:
            raise InputError(f"{p}: CXI file holds neither a real-space image_1 nor diffraction data")

        inst = entry.get("instrument_1")
        if inst is not None:
            if "source_1/energy" in inst:
                meta["energy_eV"] = float(inst["source_1/energy"][()]) / _EV_TO_J
                meta["wavelength_m"] = _HC_EV_M / meta["energy_eV"]
            det = inst.get("detector_1")
            if det is not None:
                if "distance" in det:
                    meta["detector_distance_m"] = float(det["distance"][()])
                if "x_pixel_size" in det and "y_pixel_size" in det:
                    meta["pixel_size_m"] = (float(det["y_pixel_size"][()]), float(det["x_pixel_size"][()]))
        if "sample_1/name" in entry:
            meta["sample_name"] = _scalar(entry["sample_1/name"][()])
        proc = entry.get("process_1")
        if proc is not None:
            notes = {}
            for k, v in proc.items():
                if isinstance(v, h5py.Group):
                    if k.startswith("note_") and "data" in v:
                        title = _scalar(v["description"][()]) if "description" in v else k
                        notes[title] = _scalar(v["data"][()])
                    continue
                val = v[()]
                meta[k] = _scalar(val) if np.ndim(val) == 0 else np.asarray(val)
            if notes:
                meta["notes"] = notes
            if "voxel_size_m" in meta:
                meta["voxel_size_m"] = tuple(float(x) for x in np.ravel(meta["voxel_size_m"]))
        out["metadata"] = meta
    return out
