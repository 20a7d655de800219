"""VTK ImageData (``.vti``, XML) files for ParaView: amplitude, phase, support, strain.

A ``.vti`` file is XML holding one regular grid: ``WholeExtent`` (index ranges along x,
y, z), ``Origin`` and ``Spacing`` (in nm when the voxel size is known, else voxels),
and named arrays as *point data* (one value per grid point, ParaView's default for
volume rendering and contouring) or *cell data* (one value per voxel, the grid then
has one more point than voxels along each axis).

Layout in the file: VTK orders points with x fastest, which is exactly the C order of
our ``(z, y, x)`` arrays, so an array is written as ``arr.ravel()`` with the x, y, z
extents taken from ``shape[::-1]``. Arrays are stored inline as base64 ``binary``
DataArrays with ``header_type="UInt64"``, zlib-compressed by default
(``vtkZLibDataCompressor``: header [n_blocks, block_size, last_block_size,
compressed sizes…], then the compressed blocks). A 64³ object with five arrays is
≈ 1–3 MB compressed.

:func:`read_vti` parses the same format back (both compressed and not); the tests also
check the files with VTK's own ``vtkXMLImageDataReader`` when the ``vtk`` package is
installed.

Example::

    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "o.vti")
    >>> obj = np.ones((4, 5, 6), np.complex64)
    >>> _ = write_object_vti(p, obj, obj.real > 0, voxel_size_nm=10.0)
    >>> arrays, spacing, origin = read_vti(p)
    >>> sorted(arrays), arrays["amplitude"].shape, spacing
    (['amplitude', 'phase', 'support'], (4, 5, 6), (10.0, 10.0, 10.0))
"""
from __future__ import annotations

import base64
import os
import struct
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..atomic import atomic_path

__all__ = ["write_vti", "write_object_vti", "read_vti"]

_VTK_TYPES = {
    np.dtype("int8"): "Int8", np.dtype("uint8"): "UInt8", np.dtype("int16"): "Int16",
    np.dtype("uint16"): "UInt16", np.dtype("int32"): "Int32", np.dtype("uint32"): "UInt32",
    np.dtype("int64"): "Int64", np.dtype("uint64"): "UInt64", np.dtype("float32"): "Float32",
    np.dtype("float64"): "Float64",
}
_NP_TYPES = {v: k for k, v in _VTK_TYPES.items()}
_BLOCK = 1 << 15  # VTK's default compression block size (32 KiB)


def _as_zyx3(spacing, name: str) -> tuple[float, float, float]:
    s = np.broadcast_to(np.asarray(spacing, float), (3,))
    if not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise InputError(f"{name}: spacing must be positive and finite, got {tuple(s)}")
    return tuple(float(v) for v in s)


def _encode(arr: np.ndarray, compress: bool) -> str:
    """One DataArray's base64 text in VTK's 'binary' format (UInt64 headers)."""
    raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
    if not compress:
        return base64.b64encode(struct.pack("<Q", len(raw)) + raw).decode("ascii")
    blocks = [raw[i:i + _BLOCK] for i in range(0, len(raw), _BLOCK)] or [b""]
    comp = [zlib.compress(b, 6) for b in blocks]
    last = len(blocks[-1]) if len(blocks[-1]) != _BLOCK else 0  # 0 = last block is full
    header = struct.pack(f"<{3 + len(comp)}Q", len(blocks), _BLOCK, last, *[len(c) for c in comp])
    # header and data are base64-encoded separately and concatenated, as VTK writes them
    return base64.b64encode(header).decode("ascii") + base64.b64encode(b"".join(comp)).decode("ascii")


def write_vti(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], *,
              spacing: float | Sequence[float] = 1.0, origin: Sequence[float] = (0.0, 0.0, 0.0),
              as_cells: bool = False, compress: bool = True) -> Path:
    """Write named (z, y, x) arrays (or (z, y, x, 3) vectors) to a ``.vti`` file.

    Parameters
    ----------
    arrays : name → array, all with the same (z, y, x) shape; real numeric dtypes
        (bool is stored as UInt8, float16 as Float32). The first scalar array is made
        the active scalar (what ParaView colours by first).
    spacing : voxel size per axis in (z, y, x) order (a scalar for cubic voxels); the
        unit is the caller's (nm in this project when known).
    origin : position of voxel (0, 0, 0) in (z, y, x) order, same unit as ``spacing``.
    as_cells : store as cell data (one value per voxel) rather than point data.
    compress : zlib-compress the arrays (ParaView reads both).
    """
    if not arrays:
        raise InputError(f"{path}: no arrays to write")
    shapes = {name: np.shape(a)[:3] for name, a in arrays.items()}
    shape = next(iter(shapes.values()))
    for name, a in arrays.items():
        a = np.asarray(a)
        if a.ndim not in (3, 4) or a.shape[:3] != shape or (a.ndim == 4 and a.shape[3] != 3):
            raise InputError(f"{path}: array {name!r} has shape {a.shape}, expected {shape} or {shape + (3,)}")
        if np.iscomplexobj(a):
            raise InputError(f"{path}: array {name!r} is complex; write amplitude and phase separately")
    sz, sy, sx = _as_zyx3(spacing, str(path))
    oz, oy, ox = (float(v) for v in origin)
    nz, ny, nx = shape
    ext = (f"0 {nx} 0 {ny} 0 {nz}" if as_cells else f"0 {nx - 1} 0 {ny - 1} 0 {nz - 1}")

    root = ET.Element("VTKFile", type="ImageData", version="1.0", byte_order="LittleEndian",
                      header_type="UInt64")
    if compress:
        root.set("compressor", "vtkZLibDataCompressor")
    img = ET.SubElement(root, "ImageData", WholeExtent=ext, Origin=f"{ox!r} {oy!r} {oz!r}",
                        Spacing=f"{sx!r} {sy!r} {sz!r}", Direction="1 0 0 0 1 0 0 0 1")
    piece = ET.SubElement(img, "Piece", Extent=ext)
    scalars = [n for n, a in arrays.items() if np.ndim(a) == 3]
    vectors = [n for n, a in arrays.items() if np.ndim(a) == 4]
    attrs = {}
    if scalars:
        attrs["Scalars"] = scalars[0]
    if vectors:
        attrs["Vectors"] = vectors[0]
    data_el = ET.SubElement(piece, "CellData" if as_cells else "PointData", **attrs)
    ET.SubElement(piece, "PointData" if as_cells else "CellData")
    for name, a in arrays.items():
        a = np.asarray(a)
        if a.dtype == bool:
            a = a.astype(np.uint8)
        elif a.dtype == np.float16:
            a = a.astype(np.float32)
        if a.dtype not in _VTK_TYPES:
            raise InputError(f"{path}: array {name!r} has unsupported dtype {a.dtype}")
        el = ET.SubElement(data_el, "DataArray", type=_VTK_TYPES[a.dtype], Name=name, format="binary",
                           NumberOfComponents=str(3 if a.ndim == 4 else 1))
        if a.dtype.kind == "f" and a.size:
            finite = a[np.isfinite(a)]
            if finite.size:
                el.set("RangeMin", repr(float(finite.min())))
                el.set("RangeMax", repr(float(finite.max())))
        el.text = _encode(a, compress)
    tree = ET.ElementTree(root)
    ET.indent(tree, space="  ")
    with atomic_path(path) as tmp:
        tree.write(tmp, encoding="utf-8", xml_declaration=True)
    return Path(path)


def write_object_vti(path: str | os.PathLike, object: np.ndarray, support: np.ndarray | None = None, *,
                     voxel_size_nm: float | Sequence[float] | None = None,
                     extra: Mapping[str, np.ndarray] | None = None, as_cells: bool = False) -> Path:
    """A reconstructed object as ``amplitude`` (|ρ|), ``phase`` (arg ρ, rad), ``support``.

    object : (z, y, x) complex. support : (z, y, x) bool, optional.
    voxel_size_nm : scalar or (z, y, x) voxel size; the grid spacing (and the unit, nm)
        when given, else spacing 1 (voxels).
    extra : more named (z, y, x) real arrays, e.g. ``displacement_nm``, ``strain``.
    The grid is centred on the array centre (origin = −(n//2)·spacing) so that ParaView
    shows the crystal around (0, 0, 0).
    """
    obj = np.asarray(object)
    if obj.ndim != 3:
        raise InputError(f"{path}: expected a 3D object, got shape {obj.shape}")
    arrays: dict[str, np.ndarray] = {
        "amplitude": np.abs(obj).astype(np.float32),
        "phase": np.angle(obj).astype(np.float32),
    }
    if support is not None:
        arrays["support"] = np.asarray(support).astype(np.uint8)
    for k, v in dict(extra or {}).items():
        v = np.asarray(v)
        arrays[k] = v.astype(np.float32) if v.dtype.kind == "f" else v
    spacing = 1.0 if voxel_size_nm is None else voxel_size_nm
    sp = _as_zyx3(spacing, str(path))
    origin = tuple(-(n // 2) * s for n, s in zip(obj.shape, sp))
    return write_vti(path, arrays, spacing=sp, origin=origin, as_cells=as_cells)


def _decode(text: str, dtype: np.dtype, compressed: bool) -> np.ndarray:
    text = "".join(text.split())
    if not compressed:
        raw = base64.b64decode(text)
        (n,) = struct.unpack("<Q", raw[:8])
        return np.frombuffer(raw[8:8 + n], dtype=dtype.newbyteorder("<"))
    # the header's own length is known only after its first 8 bytes (n_blocks) are read;
    # base64 works in 4-char groups of 3 bytes, so decode a prefix, then the exact header
    n_blocks = struct.unpack("<Q", base64.b64decode(text[:12])[:8])[0]
    hlen = 8 * (3 + n_blocks)
    hchars = 4 * ((hlen + 2) // 3)
    header = struct.unpack(f"<{3 + n_blocks}Q", base64.b64decode(text[:hchars])[:hlen])
    _, block, last, *csizes = header
    data = base64.b64decode(text[hchars:])
    out, pos = [], 0
    for c in csizes:
        out.append(zlib.decompress(data[pos:pos + c]))
        pos += c
    raw = b"".join(out)
    return np.frombuffer(raw, dtype=dtype.newbyteorder("<"))


def read_vti(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], tuple, tuple]:
    """Read a ``.vti`` written by :func:`write_vti` (inline base64, raw or zlib).

    Returns (arrays, spacing, origin): arrays name → (z, y, x) or (z, y, x, 3) in the
    stored dtype, spacing and origin in (z, y, x) order.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as e:
        raise InputError(f"{p}: not valid XML ({e})") from None
    if root.get("type") != "ImageData":
        raise InputError(f"{p}: not a VTK ImageData file (type={root.get('type')!r})")
    if root.get("header_type", "UInt32") != "UInt64" or root.get("byte_order") != "LittleEndian":
        raise InputError(f"{p}: only UInt64 headers, little-endian are supported")
    compressed = root.get("compressor") == "vtkZLibDataCompressor"
    img = root.find("ImageData")
    e = [int(v) for v in img.get("WholeExtent").split()]
    npts = (e[5] - e[4] + 1, e[3] - e[2] + 1, e[1] - e[0] + 1)
    sx, sy, sz = (float(v) for v in img.get("Spacing").split())
    ox, oy, oz = (float(v) for v in img.get("Origin").split())
    arrays = {}
    piece = img.find("Piece")
    for kind in ("PointData", "CellData"):
        el = piece.find(kind)
        if el is None:
            continue
        shape = npts if kind == "PointData" else tuple(n - 1 for n in npts)
        for da in el.findall("DataArray"):
            if da.get("format") != "binary":
                raise InputError(f"{p}: DataArray {da.get('Name')!r} is not inline binary")
            nc = int(da.get("NumberOfComponents", "1"))
            a = _decode(da.text or "", _NP_TYPES[da.get("type")], compressed)
            arrays[da.get("Name")] = a.reshape(shape + ((nc,) if nc > 1 else ()))
    return arrays, (sz, sy, sx), (oz, oy, ox)
