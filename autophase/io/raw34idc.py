"""Raw rocking scans from APS 34-ID-C (TIFF frames + dark + white field + SPEC), and stacks.

A 34-ID-C BCDI scan on disk is one TIFF per rocking angle, named ``…_S0054_00000.tif`` …
``_00200.tif`` (scan 54, frame 0…200), a dark field and a white (flat) field of the
*whole* detector (Timepix 512×512, 55 µm pixels), and the beamtime's SPEC log, whose
header for the scan gives the rocking command (``ascan th -0.28 0.72 200 0.25``), the
diffractometer angles (``#P``), the energy and the detector distance, and the ROI that
the frames were cut from (``#UIMR5 minX sizeX minY sizeY``).

:func:`read_raw_scan` gathers all of it into a :class:`RawScan`, checking what a user
gets wrong: an empty directory, a gap in the frame numbers, frames of different sizes,
a dark/white field of a shape that matches neither the frames nor the detector ROI, a
scan whose number of points differs from the number of frames. Each becomes an
:class:`~autophase.errors.InputError` naming the file.

:func:`read_raw` also accepts a single file holding the stacked frames — ``.npy``,
``.npz``, HDF5/NeXus/CXI (``file.h5::/entry/data/data`` or ``dataset=``) or a multi-page
TIFF — through :func:`autophase.io.patterns.load_array`.

Geometry (:class:`Geometry34IDC`, SI units in the names): the sixc diffractometer's
detector arm has two rotations, Delta and Gamma, about perpendicular axes both normal to
the beam, so the scattering angle is cos 2θ = cos δ · cos γ; the Bragg plane spacing is
d = λ / (2 sin θ) with λ = hc/E. SPEC gives ``camdist`` in mm and ``Energy`` in keV.

ROI convention: ``#UIMR`` gives (minX, sizeX, minY, sizeY) in areaDetector terms, X
being the detector column (fastest axis, numpy axis 1) and Y the row (axis 0); the
dark/white fields are cropped as ``field[minY:minY+sizeY, minX:minX+sizeX]``. (cohere-ui
applies the first pair to axis 0; the two agree for square ROIs at the same offset on
both axes, as in scan 54.)
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from .spec import SpecScan, read_spec_scan

__all__ = ["Geometry34IDC", "sample_circles", "RawScan", "find_frames", "read_raw_scan", "read_raw", "PIXEL_SIZE_M"]

PIXEL_SIZE_M = 55e-6  # Timepix / Medipix pixel pitch
_HC_EV_M = 1.239841984e-6
_FRAME_RE = re.compile(r"(\d+)$")
_DARK_RE = re.compile(r"dark", re.I)
_WHITE_RE = re.compile(r"(white|flat)", re.I)
_SCAN_RE = re.compile(r"_S(\d+)_", re.I)


@dataclass(frozen=True)
class Geometry34IDC:
    """Diffractometer and detector of one scan, SI units in the field names.

    energy_eV : photon energy. detector_distance_m : sample–detector distance.
    pixel_size_m : detector pixel pitch. delta_deg, gamma_deg : detector arm angles.
    scan_motor : the rocked motor's mnemonic (``th``). step_deg : its step per frame.
    """

    energy_eV: float
    detector_distance_m: float
    pixel_size_m: float = PIXEL_SIZE_M
    delta_deg: float = 0.0
    gamma_deg: float = 0.0
    scan_motor: str = "th"
    step_deg: float = 0.0

    @property
    def wavelength_m(self) -> float:
        return _HC_EV_M / self.energy_eV

    @property
    def two_theta_deg(self) -> float:
        """Scattering angle 2θ: cos 2θ = cos δ · cos γ."""
        c = np.cos(np.radians(self.delta_deg)) * np.cos(np.radians(self.gamma_deg))
        return float(np.degrees(np.arccos(np.clip(c, -1, 1))))

    @property
    def d_spacing_m(self) -> float:
        """Bragg plane spacing d = λ / (2 sin θ)."""
        return self.wavelength_m / (2 * np.sin(np.radians(self.two_theta_deg / 2)))

    @property
    def q_m(self) -> float:
        """|Q| = 2π / d (m⁻¹)."""
        return 2 * np.pi / self.d_spacing_m

    def voxel_size_m(self, shape: tuple[int, int, int], binning=(1, 1, 1)) -> tuple[float, float, float]:
        """Approximate real-space voxel size (z, y, x) of an array of ``shape`` measured voxels.

        Detector axes: λ·D / (n · p · b) (the far-field sampling). Rocking axis: a step
        Δθ moves the Ewald sphere by Δq ≈ |Q|·Δθ, so the voxel is 2π / (n · b · |Q| Δθ).
        This treats the three q directions as orthogonal; they are not in general (the
        rocking direction is sheared against the detector plane by ≈ θ), so lengths
        along z are approximate until the data are put on an orthonormal grid.
        """
        nz, ny, nx = shape
        bz, by, bx = binning
        lam, D, p = self.wavelength_m, self.detector_distance_m, self.pixel_size_m
        vy = lam * D / (ny * by * p)
        vx = lam * D / (nx * bx * p)
        dq = self.q_m * np.radians(abs(self.step_deg)) * bz
        vz = 2 * np.pi / (nz * dq) if dq > 0 else float("nan")
        return (float(vz), float(vy), float(vx))

    @classmethod
    def from_spec(cls, scan: SpecScan, pixel_size_m: float = PIXEL_SIZE_M) -> "Geometry34IDC":
        """34-ID-C conventions: ``Energy`` in keV, ``camdist`` in mm, ``Delta``/``Gamma`` in deg."""
        try:
            energy_kev = scan.motor("Energy")
            dist_mm = scan.motor("camdist")
            delta, gamma = scan.motor("Delta"), scan.motor("Gamma")
        except KeyError as e:
            raise InputError(f"{scan.source}: scan {scan.number}: {e.args[0]}") from None
        planned = scan.planned_positions()
        motor = scan.scanned_motors[0] if scan.scanned_motors else ""
        step = 0.0
        if motor in planned and len(planned[motor]) > 1:
            step = float(planned[motor][1] - planned[motor][0])
        if not (energy_kev > 0 and dist_mm > 0):
            raise InputError(f"{scan.source}: scan {scan.number}: energy {energy_kev} keV / camdist "
                             f"{dist_mm} mm must be positive")
        return cls(energy_eV=energy_kev * 1e3, detector_distance_m=dist_mm * 1e-3,
                   pixel_size_m=pixel_size_m, delta_deg=delta, gamma_deg=gamma,
                   scan_motor=motor, step_deg=step)


def sample_circles(scan: SpecScan) -> dict[str, float]:
    """The sample circles of a 34-ID-C scan that its header records, as
    ``{"theta_deg", "chi_deg", "phi_deg"}`` (SPEC ``Theta``/``Chi``/``Phi``; absent ones left
    out). They orient the rocking axis of a φ or χ scan (:mod:`autophase.beamline.geometry`)."""
    out = {}
    for key, name in (("theta_deg", "Theta"), ("chi_deg", "Chi"), ("phi_deg", "Phi")):
        try:
            out[key] = float(scan.motor(name))
        except KeyError:
            pass
    return out


@dataclass
class RawScan:
    """A raw rocking scan, frames as recorded (no correction applied yet).

    frames : (n_angles, rows, cols) float32 counts, ordered by frame number.
    files : the frame files in that order (empty when read from a stack file).
    dark, white : (rows, cols) float32 cropped to the frames' ROI, or None.
    roi : (minX, sizeX, minY, sizeY) on the full detector, or None.
    angles_deg : (n_angles,) rocking angles, or None. geometry : or None.
    spec : the SPEC scan, or None. source : where the frames came from.
    mask : (n_angles, rows, cols) bool, True = unmeasured, from a stack file's ``mask``, or None.
    """

    frames: np.ndarray
    source: str
    files: list = field(default_factory=list)
    dark: np.ndarray | None = None
    white: np.ndarray | None = None
    roi: tuple | None = None
    angles_deg: np.ndarray | None = None
    geometry: Geometry34IDC | None = None
    spec: SpecScan | None = None
    dark_file: str | None = None
    white_file: str | None = None
    mask: np.ndarray | None = None


def _is_frame(p: Path) -> bool:
    return (p.suffix.lower() in (".tif", ".tiff") and _FRAME_RE.search(p.stem) is not None
            and not _DARK_RE.search(p.stem) and not _WHITE_RE.search(p.stem))


def find_frames(directory: str | os.PathLike) -> list[Path]:
    """Frame files of a scan directory sorted by their trailing number; gaps are errors.

    A directory holding no frame but a ``frames/`` sub-directory is looked into.
    """
    d = Path(directory)
    if not d.exists():
        raise InputError(f"{d}: no such directory")
    if not d.is_dir():
        raise InputError(f"{d}: not a directory")
    cands = [p for p in d.iterdir() if p.is_file() and _is_frame(p)]
    if not cands and (d / "frames").is_dir():
        return find_frames(d / "frames")
    if not cands:
        raise InputError(f"{d}: no TIFF frames (*.tif ending in a frame number) found")
    numbered = {}
    for p in cands:
        k = int(_FRAME_RE.search(p.stem).group(1))
        if k in numbered:
            raise InputError(f"{p}: frame number {k} also used by {numbered[k].name}")
        numbered[k] = p
    keys = sorted(numbered)
    for a, b in zip(keys, keys[1:]):
        if b != a + 1:
            missing = f"{a + 1}" if b == a + 2 else f"{a + 1}–{b - 1}"
            raise InputError(f"{d}: frame(s) {missing} missing between {numbered[a].name} and {numbered[b].name}")
    return [numbered[k] for k in keys]


def _read_tif(p: Path) -> np.ndarray:
    import tifffile

    try:
        a = tifffile.imread(p)
    except Exception as e:  # tifffile raises several types on corrupt files
        why = str(e).splitlines()[0] if str(e) else ""
        raise InputError(f"{p}: unreadable TIFF ({type(e).__name__}: {why})") from None
    if a.size == 0:
        raise InputError(f"{p}: unreadable TIFF (no image data)")
    if a.ndim != 2:
        raise InputError(f"{p}: expected one 2D detector frame, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number) or np.iscomplexobj(a):
        raise InputError(f"{p}: expected real counts, got dtype {a.dtype}")
    return a


def _find_beside(d: Path, pattern: re.Pattern, suffixes=(".tif", ".tiff")) -> Path | None:
    """A file matching ``pattern`` in ``d`` or its parent (the first, sorted)."""
    for place in (d, d.parent):
        hits = sorted(p for p in place.iterdir() if p.is_file() and p.suffix.lower() in suffixes
                      and pattern.search(p.stem))
        if hits:
            return hits[0]
    return None


def _crop_field(arr: np.ndarray, frame_shape: tuple, roi: tuple | None, path: Path, what: str) -> np.ndarray:
    """A dark/white field cut to the frames: as is when it has their shape, else by the ROI."""
    if arr.shape == tuple(frame_shape):
        return arr.astype(np.float32)
    if roi is None:
        raise InputError(f"{path}: {what} shape {arr.shape} differs from the frames' {tuple(frame_shape)} "
                         "and no detector ROI is known (give --spec with a #UIMR line)")
    x0, nx, y0, ny = roi
    if (ny, nx) != tuple(frame_shape):
        raise InputError(f"{path}: ROI {roi} ({ny}×{nx}) does not match the frames' {tuple(frame_shape)}")
    if arr.shape[0] < y0 + ny or arr.shape[1] < x0 + nx:
        raise InputError(f"{path}: {what} shape {arr.shape} is too small for the ROI "
                         f"rows {y0}:{y0 + ny}, columns {x0}:{x0 + nx}")
    return arr[y0:y0 + ny, x0:x0 + nx].astype(np.float32)


def read_raw_scan(directory: str | os.PathLike, *, spec: str | os.PathLike | None = None,
                  scan: int | None = None, dark: str | os.PathLike | None = None,
                  white: str | os.PathLike | None = None, roi_key: str = "UIMR5",
                  progress: bool | None = None) -> RawScan:
    """Read a 34-ID-C scan directory: frames, dark, white field, angles and geometry.

    directory : holds the frames (or a ``frames/`` sub-directory holding them).
    spec : SPEC file; default: the only ``*.spec`` in the directory or its parent, if any.
    scan : scan number; default: from the frame names (``_S0054_``).
    dark, white : files; default: ``*dark*.tif`` / ``*white*|*flat*.tif`` beside the frames.
    roi_key : the ``#UIMR`` line giving the frames' place on the detector.
    """
    files = find_frames(directory)
    d = files[0].parent
    iterator = files
    if progress is None:
        progress = len(files) > 50 and os.isatty(2)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(files, desc="reading frames", unit="frame", leave=False)
    frames = []
    for p in iterator:
        a = _read_tif(p)
        if frames and a.shape != frames[0].shape:
            raise InputError(f"{p}: frame shape {a.shape} differs from {files[0].name}'s {frames[0].shape}")
        frames.append(a)
    stack = np.stack(frames).astype(np.float32)
    if not np.all(np.isfinite(stack)):
        bad = files[int(np.argwhere(~np.isfinite(stack))[0][0])]
        raise InputError(f"{bad}: frame holds NaN or inf")
    if (stack < 0).any():
        bad = files[int(np.argwhere(stack < 0)[0][0])]
        raise InputError(f"{bad}: frame holds negative counts")

    # SPEC: scan number from the frame names unless given
    spec_path = Path(spec) if spec else None
    if spec_path is None:
        found = sorted(p for place in (d, d.parent, Path(directory)) for p in place.glob("*.spec"))
        spec_path = found[0] if len(set(found)) == 1 else None
    if scan is None:
        m = _SCAN_RE.search(files[0].stem)
        scan = int(m.group(1)) if m else None
    sscan = geom = angles = roi = None
    if spec_path is not None:
        if scan is None:
            raise InputError(f"{spec_path}: which scan? the frame names carry no _S<number>_; give --scan")
        sscan = read_spec_scan(spec_path, scan)
        roi = sscan.rois.get(roi_key)
        geom = Geometry34IDC.from_spec(sscan)
        planned = sscan.planned_positions()
        if geom.scan_motor in planned:
            angles = planned[geom.scan_motor]
            if len(angles) != len(files):
                raise InputError(f"{d}: {len(files)} frames but scan {scan} of {spec_path} has {len(angles)} "
                                 f"points ({sscan.command})")

    dark_path = Path(dark) if dark else _find_beside(d, _DARK_RE)
    white_path = Path(white) if white else _find_beside(d, _WHITE_RE)
    dark_arr = white_arr = None
    if dark_path is not None:
        if not dark_path.is_file():
            raise InputError(f"{dark_path}: no such dark-field file")
        dark_arr = _crop_field(_read_tif(dark_path), stack.shape[1:], roi, dark_path, "dark field")
    if white_path is not None:
        if not white_path.is_file():
            raise InputError(f"{white_path}: no such white-field file")
        white_arr = _crop_field(_read_tif(white_path), stack.shape[1:], roi, white_path, "white field")
    return RawScan(frames=stack, source=str(d), files=files, dark=dark_arr, white=white_arr, roi=roi,
                   angles_deg=angles, geometry=geom, spec=sscan,
                   dark_file=str(dark_path) if dark_path else None,
                   white_file=str(white_path) if white_path else None)


def read_raw(path: str | os.PathLike, *, dataset: str | None = None, **kwargs) -> RawScan:
    """A raw scan from a 34-ID-C directory (:func:`read_raw_scan`) or a stacked file.

    Files: ``.npy``, ``.npz``, ``.h5``/``.hdf5``/``.nxs``/``.cxi`` (``PATH::/dataset`` or
    ``dataset=``) and multi-page ``.tif`` — a 3D (angle, rows, cols) array of counts,
    with an optional ``mask`` (True = bad) beside it. ``dark``/``white`` files and a
    ``spec``/``scan`` may still be given (same keywords as :func:`read_raw_scan`).
    """
    from .patterns import load_array

    s = str(path)
    if "::" in s:
        s, dataset = s.split("::", 1)
    p = Path(s)
    if p.is_dir():
        if dataset:
            raise InputError(f"{p}: a dataset path applies to a file, not a directory")
        return read_raw_scan(p, **kwargs)
    arr, mask = load_array(p, dataset)
    if arr.ndim != 3:
        raise InputError(f"{p}: expected a 3D stack of frames (angle, rows, cols), got shape {arr.shape}")
    if np.iscomplexobj(arr) or not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{p}: expected real counts, got dtype {arr.dtype}")
    stack = np.asarray(arr, np.float32)
    if not np.all(np.isfinite(stack)):
        raise InputError(f"{p}: {int((~np.isfinite(stack)).sum())} voxel(s) are NaN or inf")
    if (stack < 0).any():
        raise InputError(f"{p}: {int((stack < 0).sum())} voxel(s) hold negative counts")
    if mask is not None and mask.shape != stack.shape:
        raise InputError(f"{p}: mask shape {mask.shape} differs from data {stack.shape}")
    raw = RawScan(frames=stack, source=str(p), mask=None if mask is None else mask.astype(bool))
    sscan = None
    if kwargs.get("spec"):
        if kwargs.get("scan") is None:
            raise InputError(f"{kwargs['spec']}: which scan? give --scan")
        sscan = read_spec_scan(kwargs["spec"], int(kwargs["scan"]))
        raw.spec, raw.geometry = sscan, Geometry34IDC.from_spec(sscan)
        raw.roi = sscan.rois.get(kwargs.get("roi_key", "UIMR5"))
        planned = sscan.planned_positions()
        raw.angles_deg = planned.get(raw.geometry.scan_motor)
    for key, attr, what in (("dark", "dark", "dark field"), ("white", "white", "white field")):
        fp = kwargs.get(key)
        if fp:
            fp = Path(fp)
            if not fp.is_file():
                raise InputError(f"{fp}: no such {what} file")
            setattr(raw, attr, _crop_field(_read_tif(fp), stack.shape[1:], raw.roi, fp, what))
            setattr(raw, f"{attr}_file", str(fp))
    return raw
