"""From a reconstructed complex object to displacement and strain, and the files to look at.

A BCDI reconstruction ρ = |ρ| e^{iφ} carries, in its phase, the projection of the atomic
displacement u on the Bragg vector G of the measured reflection: φ = G·u = 2π u_Q / d
(d the plane spacing, u_Q the displacement along Q̂). What the bcdi package does after
phasing, and :func:`postprocess` does here, in order:

1. **centre** — roll the object so that the support's centre of mass is the array centre.
2. **phase ramp** — a Bragg peak off the array centre by δk voxels multiplies ρ by a
   linear phase e^{2πi δk·r/N}; it is removed by fitting the mean phase gradient over
   the support's interior (``ramp="gradient"``, wrap-free: the gradient is read from
   ρ(r+1)·ρ̄(r)), or from the centre of mass of |F(ρ)|² (``ramp="fourier"``).
3. **phase offset** — the global phase is arbitrary; φ is set to 0 at the centre of mass
   of the amplitude (mean of the complex values in a 3×3×3 box there).
4. **unwrap** inside the support (``skimage.restoration.unwrap_phase``), and
   **displacement** u_Q = φ d / 2π — in nm when d is known (``d_spacing_nm``, from the
   Bragg angle and energy: d = λ / 2 sin θ), else in units of d ("lattice units").
5. **strain** along Q: ε = ∂u_Q/∂s_Q = (d/2π) Σ_i q̂_i (∂φ/∂x_i) / v_i, with the
   wrap-free phase gradient ∂φ/∂x_i (rad/voxel, central differences inside the support,
   one-sided at its border) and v_i the voxel size. Dimensionless when d and the voxel
   size are known; otherwise the length unit is the voxel and u is in units of d.

**Frames.** An object phased from raw detector frames is in the *detector frame*
(array axes: rocking angle, detector rows, columns), whose real-space steps are skewed
(≈ 76–103° apart for 34-ID-C scan 54) and unequal. Given the scan's geometry
(``geometry=``, a :class:`~autophase.beamline.geometry.ScanGeometry`, which
:mod:`autophase.outputs` builds from the metadata ``autophase prep`` stores), steps 1–2
are done in the detector frame, the object and support are then interpolated onto an
orthonormal lab grid (:func:`~autophase.beamline.geometry.to_lab_frame`: axes lab z =
beam, y = up, x; isotropic voxel, by default the shortest detector-frame step), and
steps 1–5 run there with the true Q̂ and d = 2π/|Q| — lengths in nm and ε_QQ are then
exact up to the interpolation. The metadata records ``frame = "lab"``.

Without a geometry (simulated data, npy input, a CXI lacking the angles) nothing is
interpolated (``frame = "detector"``): ``q_direction`` is Q̂ in the array's own (z, y, x)
frame (``"z"``, ``"y"``, ``"x"`` or a 3-vector), by default y — bcdi rotates its data so
that Q lies along y (its default ``ref_axis_q``) — and for detector-frame arrays lengths
and strain are only approximate.

:func:`write_outputs` writes ``stem.cxi`` (object, support, displacement and strain as
extra images, metadata), ``stem.vti`` (ParaView: amplitude, phase, support,
displacement, strain, spacing in nm), ``stem_isosurface.png`` (amplitude isosurface
coloured by phase, marching cubes) and ``stem_slices.png`` (central slices).

Example::

    >>> import numpy as np
    >>> from autophase.physics.synthetic import faceted_crystal
    >>> obj = faceted_crystal(32)
    >>> res = postprocess(obj, np.abs(obj) > 0.1, voxel_size_nm=10.0, d_spacing_nm=0.2355)
    >>> sorted(k for k in res if not k.startswith("_"))[:4]
    ['amplitude', 'd_spacing_nm', 'displacement', 'metadata']
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from ..errors import InputError
from ..physics.forward import fft_workers

__all__ = [
    "center_object",
    "phase_gradient",
    "remove_phase_ramp",
    "offset_phase_at_com",
    "unwrap_phase_in_support",
    "q_unit_vector",
    "postprocess",
    "write_outputs",
    "plot_isosurface",
    "plot_slices",
]

_AXIS = {"z": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "x": (0.0, 0.0, 1.0)}
_FRAME_WORDS = {"lab": "lab frame (z beam, y up)", "detector": "detector frame (rocking, rows, columns)"}


def _check(obj, support) -> tuple[np.ndarray, np.ndarray]:
    o = np.asarray(obj)
    if o.ndim != 3:
        raise InputError(f"object: expected a 3D (z, y, x) array, got shape {o.shape}")
    if not np.iscomplexobj(o):
        raise InputError(f"object: expected a complex array, got dtype {o.dtype}")
    s = np.abs(o) > 0.1 * np.abs(o).max() if support is None else np.asarray(support).astype(bool)
    if s.shape != o.shape:
        raise InputError(f"support: shape {s.shape} differs from the object's {o.shape}")
    if not s.any():
        raise InputError("support: empty (no voxel inside)")
    if not np.all(np.isfinite(o)):
        raise InputError("object: holds NaN or inf")
    return o.astype(np.complex64), s


def q_unit_vector(q_direction: str | Sequence[float]) -> np.ndarray:
    """Q̂ in (z, y, x) from ``"z"``/``"y"``/``"x"`` or a 3-vector (normalised)."""
    if isinstance(q_direction, str):
        if q_direction not in _AXIS:
            raise InputError(f"q_direction: expected 'z', 'y', 'x' or a 3-vector, got {q_direction!r}")
        return np.array(_AXIS[q_direction])
    v = np.asarray(q_direction, float)
    if v.shape != (3,) or not np.linalg.norm(v) > 0:
        raise InputError(f"q_direction: expected a non-zero 3-vector (z, y, x), got {q_direction!r}")
    return v / np.linalg.norm(v)


def center_object(obj: np.ndarray, support: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Roll object and support so that the support's centre of mass sits at index n//2."""
    com = ndimage.center_of_mass(support.astype(np.float32))
    shift = tuple(int(round(s // 2 - c)) for s, c in zip(support.shape, com))
    return np.roll(obj, shift, axis=(0, 1, 2)), np.roll(support, shift, axis=(0, 1, 2)), shift


def phase_gradient(obj: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Wrap-free ∂φ/∂x_i (rad/voxel), shape (3, z, y, x), NaN where undefined.

    Forward differences are read as arg(ρ(r + e_i) ρ̄(r)) — no 2π jumps as long as the
    true phase step is below π — on pairs of voxels both inside the support; the
    gradient is their mean on both sides of a voxel (central difference), or the one
    side present at the border of the support.
    """
    out = np.full((3,) + obj.shape, np.nan, np.float32)
    for ax in range(3):
        a = np.moveaxis(obj, ax, 0)
        s = np.moveaxis(support, ax, 0)
        fwd = np.full(a.shape, np.nan, np.float32)              # step from r to r+1, stored at r
        ok = s[1:] & s[:-1]
        d = np.angle(a[1:] * np.conj(a[:-1])).astype(np.float32)
        fwd[:-1] = np.where(ok, d, np.nan)
        bwd = np.full(a.shape, np.nan, np.float32)              # step from r−1 to r, stored at r
        bwd[1:] = fwd[:-1]
        both = np.isfinite(fwd) & np.isfinite(bwd)
        g = np.where(both, 0.5 * (np.nan_to_num(fwd) + np.nan_to_num(bwd)),
                     np.where(np.isfinite(fwd), fwd, bwd))
        g = np.where(s, g, np.nan)
        out[ax] = np.moveaxis(g, 0, ax)
    return out


def remove_phase_ramp(obj: np.ndarray, support: np.ndarray, method: str = "gradient"
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Remove a linear phase ramp; returns (object, ramp (3,) in rad/voxel along z, y, x).

    ``"gradient"``: the amplitude-weighted mean of :func:`phase_gradient` over the
    support eroded by one voxel (the border's differences are the noisiest).
    ``"fourier"``: 2π δk / M with δk the offset of the centre of mass of |F|² (of the
    object zero-padded to M = 2n) from the array centre.
    """
    if method not in ("gradient", "fourier"):
        raise InputError(f"ramp: expected 'gradient', 'fourier' or None, got {method!r}")
    if method == "gradient":
        inner = ndimage.binary_erosion(support, iterations=1)
        if inner.sum() < 8:
            inner = support
        g = phase_gradient(obj, support)
        w = np.abs(obj) * inner
        ramp = np.array([np.nansum(gi * w) / max(np.sum(w * np.isfinite(gi)), 1e-30) for gi in g])
    else:
        m = tuple(2 * n for n in obj.shape)
        F = np.fft.fftshift(sfft.fftn(obj * support, s=m, workers=fft_workers()))
        I = np.abs(F) ** 2
        com = np.array(ndimage.center_of_mass(I))
        ramp = 2 * np.pi * (com - np.array([n // 2 for n in m])) / np.array(m)
    g = np.ogrid[tuple(slice(0, n) for n in obj.shape)]
    phi = sum(r * (gi - n // 2) for r, gi, n in zip(ramp, g, obj.shape))
    return (obj * np.exp(-1j * phi)).astype(np.complex64), ramp


def offset_phase_at_com(obj: np.ndarray, support: np.ndarray) -> tuple[np.ndarray, float, tuple]:
    """Set the phase to 0 at the amplitude's centre of mass (3×3×3 complex mean there).

    Returns (object, offset removed in rad, centre of mass voxel (z, y, x)).
    """
    amp = np.abs(obj) * support
    com = tuple(int(round(c)) for c in ndimage.center_of_mass(amp))
    box = tuple(slice(max(0, c - 1), c + 2) for c in com)
    z = (obj[box] * support[box]).sum()
    off = float(np.angle(z)) if abs(z) > 0 else 0.0
    return (obj * np.exp(-1j * off)).astype(np.complex64), off, com


def unwrap_phase_in_support(phase: np.ndarray, support: np.ndarray, anchor: tuple | None = None) -> np.ndarray:
    """3D phase unwrapping inside the support (0 outside); the anchor voxel keeps its
    wrapped value (so φ(anchor) stays ≈ 0 after :func:`offset_phase_at_com`)."""
    from skimage.restoration import unwrap_phase

    masked = np.ma.masked_array(phase.astype(np.float64), mask=~support)
    uw = unwrap_phase(masked)
    uw = np.ma.filled(uw, 0.0) if np.ma.isMaskedArray(uw) else uw
    if anchor is not None and support[anchor]:
        uw = uw - 2 * np.pi * np.round((uw[anchor] - phase[anchor]) / (2 * np.pi))
    return np.where(support, uw, 0.0).astype(np.float32)


def postprocess(object: np.ndarray, support: np.ndarray | None = None,
                voxel_size_nm: float | Sequence[float] | None = None,
                q_direction: str | Sequence[float] = "y", *, d_spacing_nm: float | None = None,
                ramp: str | None = "gradient", center: bool = True, geometry=None,
                lab_voxel_nm: float | None = None) -> dict[str, Any]:
    """Phase-ramp removal, phase offset, displacement and strain along Q (see module doc).

    Parameters
    ----------
    object : (z, y, x) complex reconstruction. support : (z, y, x) bool (default
        |ρ| > 0.1 max|ρ|).
    voxel_size_nm : scalar or (z, y, x) voxel size in nm, or None (lengths in voxels).
    q_direction : Q̂ in the array frame: "z", "y", "x" or a (z, y, x) vector.
    d_spacing_nm : the reflection's plane spacing (nm), or None (u in units of d).
    ramp : "gradient" (default), "fourier" or None (keep the ramp).
    center : roll the crystal to the array centre first.
    geometry : a :class:`~autophase.beamline.geometry.ScanGeometry` of the scan the
        object was phased from (detector frame) → put it on an orthonormal lab grid first;
        ``voxel_size_nm`` and ``q_direction`` are then ignored (they come from the
        geometry), and ``d_spacing_nm`` defaults to the geometry's 2π/|Q|. The object must
        have the pattern's shape: the FFT size sets the real-space steps.
    lab_voxel_nm : the lab grid's voxel (nm); default the shortest detector-frame step.

    Returns a dict: ``object`` (complex64, ramp and offset removed, centred),
    ``support``, ``amplitude`` (float32), ``phase`` (wrapped, rad), ``phase_unwrapped``,
    ``displacement`` (u_Q, nm or d), ``strain`` (ε_QQ), ``voxel_size_nm`` (3-tuple or
    None), ``d_spacing_nm``, ``q_direction`` (3,), ``units`` (name → unit),
    ``metadata`` (``frame`` "lab" | "detector", ramp rad/voxel, offset rad, shift, strain
    statistics; in the lab frame also the detector-frame basis, Q, and ``lab_origin_nm``:
    the lab position (z, y, x) of voxel (0, 0, 0) of the returned arrays, relative to the
    centre voxel n//2 of the array given).
    Outside the support displacement and strain are 0.
    """
    obj, sup = _check(object, support)
    frame_meta: dict[str, Any] = {"frame": "detector"}
    if geometry is not None:
        obj, sup, frame_meta = _to_lab(obj, sup, geometry, ramp, center, lab_voxel_nm)
        voxel_size_nm = frame_meta["voxel_size_nm"]
        q_direction = frame_meta["q_direction_zyx"]
        d_spacing_nm = d_spacing_nm or geometry.d_spacing_nm
    shift = (0, 0, 0)
    if center:
        obj, sup, shift = center_object(obj, sup)
        if frame_meta["frame"] == "lab":
            # the roll moves the content by `shift` voxels: voxel 0 now sits that much further back
            frame_meta["lab_origin_nm"] = frame_meta["lab_origin_nm"] - np.asarray(shift) * voxel_size_nm[0]
    ramp_v = np.zeros(3)
    if ramp:
        obj, ramp_v = remove_phase_ramp(obj, sup, ramp)
    obj, offset, com = offset_phase_at_com(obj, sup)
    phase = np.angle(obj).astype(np.float32)
    uw = unwrap_phase_in_support(phase, sup, com)

    vox = None if voxel_size_nm is None else tuple(float(v) for v in np.broadcast_to(
        np.asarray(voxel_size_nm, float), (3,)))
    if vox is not None and not all(np.isfinite(v) and v > 0 for v in vox):
        raise InputError(f"voxel_size_nm: must be positive, got {voxel_size_nm!r}")
    qhat = q_unit_vector(q_direction)
    scale_u = (d_spacing_nm / (2 * np.pi)) if d_spacing_nm else 1 / (2 * np.pi)
    displacement = (uw * scale_u).astype(np.float32)
    grad = phase_gradient(obj, sup)                               # rad / voxel
    v = np.ones(3) if vox is None else np.asarray(vox)
    dphi_ds = sum(q * g / vi for q, g, vi in zip(qhat, grad, v))  # rad / (nm or voxel)
    strain = np.where(sup, np.nan_to_num(dphi_ds * scale_u), 0.0).astype(np.float32)
    inside = strain[sup]
    len_unit = "nm" if vox is not None else "voxel"
    u_unit = "nm" if d_spacing_nm else "d (lattice units)"
    strain_unit = "1" if (vox is not None and d_spacing_nm) else f"{u_unit} per {len_unit}"
    meta = {
        **frame_meta,
        "ramp_rad_per_voxel": np.asarray(ramp_v, float),
        "ramp_method": ramp or "none",
        "phase_offset_rad": offset,
        "center_shift_voxels": np.asarray(shift, np.int32),
        "phase_com_voxel": np.asarray(com, np.int32),
        "q_direction_zyx": qhat,
        "strain_mean": float(inside.mean()),
        "strain_rms": float(inside.std()),
        "displacement_range": float(np.ptp(displacement[sup])),
        "support_voxels": int(sup.sum()),
    }
    if vox is not None:
        meta["voxel_size_nm"] = np.asarray(vox)
    if d_spacing_nm:
        meta["d_spacing_nm"] = float(d_spacing_nm)
    return {
        "object": obj, "support": sup, "amplitude": np.abs(obj).astype(np.float32), "phase": phase,
        "phase_unwrapped": uw, "displacement": displacement, "strain": strain,
        "voxel_size_nm": vox, "d_spacing_nm": d_spacing_nm, "q_direction": qhat,
        "units": {"phase": "rad", "displacement": u_unit, "strain": strain_unit, "length": len_unit},
        "metadata": meta,
    }


def _to_lab(obj: np.ndarray, sup: np.ndarray, geometry, ramp: str | None, center: bool,
            lab_voxel_nm: float | None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Centre and de-ramp in the detector frame, then interpolate onto the lab grid.

    The ramp goes first because the interpolation mixes neighbouring complex values: a
    ramp of ~1 rad/voxel would blur the amplitude where it crosses voxels; after its
    removal the phase changes slowly and the lab-frame ramp step finds almost nothing.
    """
    from .geometry import to_lab_frame

    shape_in = obj.shape
    shift = (0, 0, 0)
    if center:
        obj, sup, shift = center_object(obj, sup)
    ramp_det = np.zeros(3)
    if ramp:
        obj, ramp_det = remove_phase_ramp(obj, sup, ramp)
    lab = to_lab_frame(obj, sup, geometry, voxel_nm=lab_voxel_nm)
    # positions relative to the centre voxel of the array as given, before the roll above
    origin = lab.origin_nm - lab.basis_nm @ np.asarray(shift, float)
    if not lab.support.any():
        raise InputError(f"support: {int(sup.sum())} voxel(s) in the detector frame, none left on the "
                         f"{lab.voxel_size_nm:.3g} nm lab grid (is lab_voxel_nm too large?)")
    meta = {
        "frame": "lab",
        "lab_axes": "z along the beam, y up, x = y × z (34-ID-C / xrayutilities lab frame)",
        "voxel_size_nm": (lab.voxel_size_nm,) * 3,
        "q_direction_zyx": lab.q_direction,
        "lab_origin_nm": origin,
        "detector_shape": np.asarray(shape_in, np.int32),
        "detector_center_shift_voxels": np.asarray(shift, np.int32),
        "detector_ramp_rad_per_voxel": np.asarray(ramp_det, float),
        **geometry.describe(shape_in),
    }
    return lab.object, lab.support, meta


# --------------------------------------------------------------------------- pictures


def _extend_into_background(values: np.ndarray, support: np.ndarray) -> np.ndarray:
    """Nearest in-support value everywhere, so trilinear sampling at the surface does not
    mix in the zeros outside."""
    idx = ndimage.distance_transform_edt(~support, return_distances=False, return_indices=True)
    return values[tuple(idx)]


def plot_isosurface(result: Mapping[str, Any], path: str | os.PathLike, level: float = 0.3,
                    color_by: str = "phase_unwrapped", title: str = "") -> Path:
    """Amplitude isosurface at ``level`` × max (marching cubes) coloured by the phase, two views."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection
    from skimage.measure import marching_cubes

    from ..atomic import atomic_path

    amp = np.asarray(result["amplitude"], np.float32)
    sup = np.asarray(result["support"], bool)
    vox = result.get("voxel_size_nm") or (1.0, 1.0, 1.0)
    unit = "nm" if result.get("voxel_size_nm") else "voxels"
    lev = float(level) * float(amp.max())
    verts, faces, _, _ = marching_cubes(np.pad(amp, 1), lev, spacing=tuple(vox))
    verts -= np.asarray(vox)  # undo the one-voxel pad
    col = _extend_into_background(np.asarray(result[color_by], np.float32), sup)
    vals = ndimage.map_coordinates(col, (verts / np.asarray(vox)).T, order=1, mode="nearest")
    face_vals = vals[faces].mean(axis=1)
    lo, hi = np.percentile(vals, [1, 99])
    if hi - lo < 1e-6:
        lo, hi = lo - 0.5, hi + 0.5
    cmap = plt.get_cmap("turbo")
    norm = matplotlib.colors.Normalize(lo, hi)
    centre = verts.mean(axis=0)
    half = (verts.max(axis=0) - verts.min(axis=0)).max() / 2 * 1.05
    fig = plt.figure(figsize=(12, 5.6))
    # matplotlib's x, y, z ← our x, y, z (array axes 2, 1, 0)
    for k, (elev, azim) in enumerate([(25, -60), (-20, 120)]):
        ax = fig.add_subplot(1, 2, k + 1, projection="3d")
        mesh = Poly3DCollection(verts[faces][:, :, ::-1], facecolors=cmap(norm(face_vals)), edgecolor="none",
                                shade=True)
        ax.add_collection3d(mesh)
        for setlim, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), centre[::-1]):
            setlim(c - half, c + half)
        ax.set_box_aspect((1, 1, 1))
        ax.view_init(elev=elev, azim=azim)
        ax.set_xlabel(f"x ({unit})")
        ax.set_ylabel(f"y ({unit})")
        ax.set_zlabel(f"z ({unit})")
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=fig.axes, shrink=0.7, label=f"{color_by.replace('_', ' ')} "
                 f"({result.get('units', {}).get(color_by.split('_')[0], 'rad')})")
    frame = dict(result.get("metadata", {})).get("frame", "detector")
    fig.suptitle(title or f"|ρ| = {level:g} max, {len(faces)} triangles, coloured by {color_by.replace('_', ' ')}; "
                          f"{_FRAME_WORDS.get(frame, frame)}")
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return p


def plot_slices(result: Mapping[str, Any], path: str | os.PathLike, title: str = "") -> Path:
    """Central slices (through the array centre) of amplitude, phase, displacement, strain."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_path

    sup = np.asarray(result["support"], bool)
    nz = np.nonzero(sup)
    box = tuple(slice(max(0, int(i.min()) - 3), min(n, int(i.max()) + 4)) for i, n in zip(nz, sup.shape))
    c = tuple(n // 2 for n in sup.shape)
    units = dict(result.get("units", {}), amplitude="arb. units")
    vox = result.get("voxel_size_nm") or (1.0, 1.0, 1.0)
    unit = "nm" if result.get("voxel_size_nm") else "voxels"
    rows = [("amplitude", "gray", None), ("phase", "twilight_shifted", (-np.pi, np.pi)),
            ("displacement", "RdBu_r", "sym"), ("strain", "RdBu_r", "sym")]
    fig, axes = plt.subplots(len(rows), 3, figsize=(12, 3.6 * len(rows)))
    fig.subplots_adjust(hspace=0.45, wspace=0.35)
    for r, (name, cmap, rng) in enumerate(rows):
        vol = np.asarray(result[name], np.float32)
        masked = np.where(sup, vol, np.nan) if name != "amplitude" else vol
        if rng == "sym":
            m = float(np.nanpercentile(np.abs(masked[sup]), 99)) or 1e-12
            rng = (-m, m)
        elif rng is None:
            rng = (0, float(vol.max()) or 1.0)
        # extents in nm (or voxels) so that anisotropic voxels are drawn to scale
        ext = [(b.stop - b.start) * v for b, v in zip(box, vox)]
        cuts = [(masked[c[0]][box[1], box[2]], "x", "y", f"z = {c[0]}", (0, ext[2], 0, ext[1])),
                (masked[:, c[1]][box[0], box[2]], "x", "z", f"y = {c[1]}", (0, ext[2], 0, ext[0])),
                (masked[:, :, c[2]][box[0], box[1]], "y", "z", f"x = {c[2]}", (0, ext[1], 0, ext[0]))]
        for k, (img, xl, yl, where, extent) in enumerate(cuts):
            ax = axes[r, k]
            cm = plt.get_cmap(cmap).with_extremes(bad="0.85")
            im = ax.imshow(img, cmap=cm, vmin=rng[0], vmax=rng[1], origin="lower", interpolation="nearest",
                           extent=extent)
            ax.set_title(f"{name}, {where}", fontsize=9)
            ax.set_xlabel(f"{xl} ({unit})", fontsize=8)
            ax.set_ylabel(f"{yl} ({unit})", fontsize=8)
            ax.tick_params(labelsize=7)
        fig.colorbar(im, ax=axes[r, :].tolist(), shrink=0.8, label=f"{name} ({units.get(name, '')})")
    frame = dict(result.get("metadata", {})).get("frame", "detector")
    fig.suptitle(title or f"reconstruction after post-processing, {_FRAME_WORDS.get(frame, frame)} "
                          "(grey: outside the support)")
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return p


def write_outputs(stem: str | os.PathLike, result: Mapping[str, Any], *, data: np.ndarray | None = None,
                  mask: np.ndarray | None = None, metadata: Mapping[str, Any] | None = None,
                  isosurface: float = 0.3, plots: bool = True) -> dict[str, Path]:
    """Write ``stem.cxi``, ``stem.vti``, ``stem_isosurface.png`` and ``stem_slices.png``.

    result : from :func:`postprocess`. data, mask : the measured intensity (and its
    unmeasured mask) to keep in the CXI file. metadata : more CXI metadata (metrics such
    as chi2, llk_free, seconds; command; energy_eV…), merged over the result's own.
    Returns {"cxi", "vti", "isosurface", "slices"} → paths.
    """
    from ..io.cxi import write_cxi
    from ..io.vtk import write_object_vti

    stem = Path(stem)
    if stem.suffix.lower() in (".cxi", ".vti", ".png"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(result.get("metadata", {}))
    if result.get("voxel_size_nm"):
        meta["voxel_size_nm"] = tuple(result["voxel_size_nm"])
    meta["units"] = dict(result.get("units", {}))
    meta.update(dict(metadata or {}))
    paths = {}
    paths["cxi"] = write_cxi(stem.with_suffix(".cxi"), result["object"], result["support"], data=data, mask=mask,
                             metadata=meta, extra={"displacement": result["displacement"],
                                                   "strain": result["strain"]})
    disp_name = "displacement_nm" if result.get("d_spacing_nm") else "displacement_d"
    paths["vti"] = write_object_vti(stem.with_suffix(".vti"), result["object"], result["support"],
                                    voxel_size_nm=result.get("voxel_size_nm"),
                                    extra={disp_name: result["displacement"], "strain": result["strain"]})
    if plots:
        paths["isosurface"] = plot_isosurface(result, stem.with_name(stem.name + "_isosurface.png"), level=isosurface)
        paths["slices"] = plot_slices(result, stem.with_name(stem.name + "_slices.png"))
    return paths
