"""From the detector frame to an orthonormal laboratory frame (APS 34-ID-C geometry).

A rocking scan samples reciprocal space on a grid whose three axes — the rocking angle,
the detector rows and the detector columns — are neither orthogonal nor equally spaced.
An object phased from it lives on the *dual* grid: a voxel (n₀, n₁, n₂) of the array
sits at r = B_r · (n − c) (c = the array centre n//2) with three real-space step vectors
(the columns of B_r) that are skewed too. This module computes those bases from the scan
metadata and interpolates an object onto an orthonormal laboratory grid, so that lengths,
Q̂ and the strain along Q are true.

Frames and conventions
----------------------
**Lab frame** (xrayutilities, as cohere-ui's ``beamlines/aps_34idc`` uses it): the beam
along +z, y vertically up, x = y × z horizontal. Every vector of this module's public API
is given in **(z, y, x)** component order, the order of the array axes, so an orthonormal
lab grid indexed (z, y, x) has Q̂ = :meth:`ScanGeometry.q_bragg` / |Q| as its
``q_direction``. (The maths is done in (x, y, z); cross products do not survive the
reordering.)

**Diffractometer** (cohere-ui ``Diffractometer_34idc``): sample circles θ (SPEC ``th``,
about +y), χ (``chi``, about −z), φ (``phi``, about +y), outer to inner; detector circles
δ (``Delta``, about +y) and γ (``Gamma``, about −x), outer to inner; all rotations
right-handed (xrayutilities ``rot_matrix.c``). With R_d = R(+y, δ) · R(−x, γ) the detector
faces the sample along k̂_f = R_d ẑ = (sin δ cos γ, sin γ, cos δ cos γ) (x, y, z), so
cos 2θ = cos δ cos γ.

**Detector pixels** (cohere-ui ``34idcTIM2.pixelorientation = ('x+', 'y-')``, given for
frames that cohere reads *transposed*): at zero arm angles a step along a TIFF column
index moves the pixel along +x, a step along a TIFF row index along −y (image rows run
downwards). autophase reads frames untransposed, so array axis 1 (rows) steps along
ê_row = −R_d ŷ and axis 2 (columns) along ê_col = R_d x̂, both ⟂ k̂_f.

Reciprocal space, per array voxel (nm⁻¹, k = 2π/λ, binning included in p and Δ)
-------------------------------------------------------------------------------
* Bragg vector: Q = k (k̂_f − ẑ), d = 2π/|Q| (taken at the detector arm's centre).
* rows / columns: b₁ = (k p_y / D) ê_row, b₂ = (k p_x / D) ê_col (far field, first order
  in p/D).
* rocking: the frame at motor angle +Δ (axis â, right-handed) records the crystal at
  R(â, −Δ) Q, so b₀ = R(â, −Δ/2) Q − R(â, +Δ/2) Q ≈ −Δ â × Q (centred difference).
  θ rocks about +y; φ about R(y, θ)R(−z, χ) ŷ; χ about R(y, θ)(−ẑ).

B_q = [b₀ b₁ b₂] (columns), the array voxel k sampling q = B_q (k − c).

Real space and the sign of the FFT
----------------------------------
:mod:`autophase.physics.forward` writes I[k] = |Σ_n ρ[n] e^{−2πi (k−c)·(n−c)/N}|² and the
project reads the object's phase as φ = +G·u (simulation, network, post-processing).
The true amplitude near G is A(q) = Σ_r |ρ(r)| e^{−iG·u(r)} e^{−iq·r}; its complex
conjugate has the same |A|² and reads Σ_r |ρ(r)| e^{+iG·u(r)} e^{+iq·r}. Matching it
term by term to the FFT needs q_k · r_n = −2π Σ_i (k_i − c_i)(n_i − c_i)/N_i, i.e.

    B_qᵀ B_r = −2π diag(1/N)   ⇒   B_r = −2π (B_q⁻¹)ᵀ diag(1/N)      (columns: nm per voxel)

— the usual 2π (B_q⁻¹)ᵀ/N with a minus sign, which is what keeps φ = +G·u. The other
sign, with φ = −G·u, is the twin image ρ̄(−r) of the same reconstruction, which
intensities cannot tell apart: the crystal point-inverted and u negated, while the strain
given to each voxel is the same.

Approximations
--------------
* The Bragg peak is taken at the detector arm's centre (the pixel that the direct beam
  hits at δ = γ = 0), which the SPEC header does not record. For scan 54 the peak sits
  at pixel (127, 128) of the 512² detector; were the arm's centre the detector's centre
  (256, 256), Q̂ would turn by 1.8° and d would read 0.2367 nm instead of 0.2335 nm
  (gold 111: 0.2355 nm). The bases change by the same order (≈ 1–2 %).
* 34-ID-C's ``Mu`` circle is left out (0 in scan 54), as in cohere-ui's model.
* Pixels are mapped to q to first order in their offset (p/D ≈ 2e-4 per binned pixel),
  i.e. the Ewald sphere's curvature across the 64³ box is neglected.

Example::

    >>> g = ScanGeometry(energy_eV=9000, distance_m=0.5, pixel_m=(110e-6, 55e-6),
    ...                  delta_deg=32.174, gamma_deg=12.6346, rocking_step_deg=0.015)
    >>> round(g.d_spacing_nm, 4)
    0.2335
    >>> [round(float(s), 1) for s in np.linalg.norm(g.real_basis((64, 64, 64)), axis=0)]
    [15.8, 10.0, 20.2]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import ndimage

from ..errors import InputError

__all__ = [
    "HC_EV_NM",
    "REQUIRED_KEYS",
    "ROCKING_MOTORS",
    "rocking_circle",
    "why_no_geometry",
    "ScanGeometry",
    "LabObject",
    "basis_angles",
    "to_lab_frame",
]

HC_EV_NM = 1239.841984  # h·c in eV·nm: λ[nm] = 1239.84 / E[eV]

# the rocking motors this geometry knows, SPEC mnemonic or name → mnemonic
_MOTORS = {"th": "th", "theta": "th", "phi": "phi", "chi": "chi"}
ROCKING_MOTORS = ("th", "phi", "chi")
# metadata keys (as ``autophase prep`` stores them) that the geometry cannot do without
REQUIRED_KEYS = ("energy_eV", "detector_distance_m", "pixel_size_m", "delta_deg", "gamma_deg",
                 "rocking_step_deg", "scan_motor")

_X, _Y, _Z = np.eye(3)  # lab unit vectors in (x, y, z) order


def rocking_circle(name: Any) -> str | None:
    """The rocking circle a SPEC motor name or mnemonic stands for (``"th"``, ``"phi"``,
    ``"chi"``), or None (an energy scan, a translation…)."""
    return _MOTORS.get(str(name).strip().lower())


def why_no_geometry(meta: Mapping[str, Any]) -> str | None:
    """Why the metadata ``autophase prep`` writes cannot give a :class:`ScanGeometry`
    (a needed key missing, a scan that is not a rocking curve), or None when it can.
    Only presence is judged here; bad values are :class:`ScanGeometry`'s to reject."""
    missing = [k for k in REQUIRED_KEYS if meta.get(k) is None]
    if missing:
        return f"lacks {', '.join(missing)}"
    motor = rocking_circle(meta["scan_motor"])
    if motor is None:  # e.g. an energy scan: not a rocking curve this geometry describes
        return f"scans {meta['scan_motor']!r}, not a rocking circle ({', '.join(ROCKING_MOTORS)})"
    if motor in ("phi", "chi") and any(meta.get(k) is None for k in ("theta_deg", "chi_deg")):
        # the φ/χ axis depends on the outer circles, which are not known
        return "lacks theta_deg/chi_deg (needed for a phi or chi rocking axis)"
    return None


def _rot(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """Right-handed rotation by ``angle_rad`` about the unit vector ``axis`` (Rodrigues), (x, y, z)."""
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle_rad) * K + (1 - np.cos(angle_rad)) * (K @ K)


def _zyx(v: np.ndarray) -> np.ndarray:
    """A vector's (x, y, z) components → (z, y, x)."""
    return np.asarray(v)[::-1].copy()


def _finite(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name}: expected a number, got {value!r}") from None
    if not np.isfinite(v):
        raise InputError(f"{name}: must be finite, got {v}")
    return v


@dataclass(frozen=True)
class ScanGeometry:
    """One rocking scan's geometry, per *array* voxel (binning already applied).

    energy_eV : photon energy (eV). distance_m : sample–detector distance (m).
    pixel_m : (rows, columns) size of one array voxel on the detector (m) — the pixel
    pitch times the binning. delta_deg, gamma_deg : detector arm angles (deg).
    rocking_step_deg : rocking-motor step per array voxel (deg, signed; binning included).
    rocking_motor : ``"th"``, ``"phi"`` or ``"chi"`` (SPEC names also accepted).
    theta_deg, chi_deg, phi_deg : sample circles (deg); they only set the rocking axis
    of a φ or χ scan. Bad values raise :class:`InputError` naming the field.
    """

    energy_eV: float
    distance_m: float
    pixel_m: tuple
    delta_deg: float
    gamma_deg: float
    rocking_step_deg: float
    rocking_motor: str = "th"
    theta_deg: float = 0.0
    chi_deg: float = 0.0
    phi_deg: float = 0.0

    def __post_init__(self):
        e = _finite("energy_eV", self.energy_eV)
        if e <= 0:
            raise InputError(f"energy_eV: photon energy must be positive, got {e:g} eV")
        d = _finite("detector_distance_m", self.distance_m)
        if d <= 0:
            raise InputError(f"detector_distance_m: must be positive, got {d:g} m")
        px = np.broadcast_to(np.asarray(self.pixel_m, float), (2,))
        if not (np.all(np.isfinite(px)) and np.all(px > 0)):
            raise InputError(f"pixel_size_m: two positive sizes (rows, columns) expected, got {self.pixel_m!r}")
        for name in ("delta_deg", "gamma_deg", "theta_deg", "chi_deg", "phi_deg"):
            _finite(name, getattr(self, name))
        step = _finite("rocking_step_deg", self.rocking_step_deg)
        if step == 0:
            raise InputError("rocking_step_deg: the rocking step is 0; the scan spans no angle")
        motor = rocking_circle(self.rocking_motor)
        if motor is None:
            raise InputError(f"scan_motor: {self.rocking_motor!r} is not a rocking circle of 34-ID-C "
                             f"(expected one of th, phi, chi)")
        object.__setattr__(self, "pixel_m", (float(px[0]), float(px[1])))
        object.__setattr__(self, "rocking_motor", motor)
        if np.linalg.norm(self._q_xyz()) < 1e-9 * self.k_nm:
            raise InputError(f"delta_deg/gamma_deg: δ = {self.delta_deg:g}°, γ = {self.gamma_deg:g}° put the "
                             f"detector in the direct beam (2θ = 0); no Bragg reflection to orient")
        B = self.reciprocal_basis()
        n = np.linalg.norm(B, axis=0)
        if abs(np.linalg.det(B)) < 1e-6 * np.prod(n):
            raise InputError(f"scan_motor: rocking {self.rocking_motor} moves q along the detector plane "
                             f"(the three q axes are coplanar); this scan cannot be put on a 3D grid")

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> "ScanGeometry | None":
        """From the metadata ``autophase prep`` writes (as :func:`autophase.io.cxi.read_cxi`
        returns it); None when a needed key is missing or the scanned motor is not a
        rocking circle (then nothing can be oriented; :func:`why_no_geometry` says which).

        Needs energy_eV, detector_distance_m, pixel_size_m (binned, rows/cols),
        delta_deg, gamma_deg, rocking_step_deg (binned), scan_motor; theta/chi/phi_deg
        optional (0). Present but bad values raise :class:`InputError`.
        """
        if why_no_geometry(meta) is not None:
            return None
        return cls(energy_eV=meta["energy_eV"], distance_m=meta["detector_distance_m"],
                   pixel_m=tuple(np.broadcast_to(np.asarray(meta["pixel_size_m"], float), (2,))),
                   delta_deg=meta["delta_deg"], gamma_deg=meta["gamma_deg"],
                   rocking_step_deg=meta["rocking_step_deg"], rocking_motor=meta["scan_motor"],
                   theta_deg=meta.get("theta_deg") or 0.0, chi_deg=meta.get("chi_deg") or 0.0,
                   phi_deg=meta.get("phi_deg") or 0.0)

    @classmethod
    def from_spec(cls, scan, binning: Sequence[int] = (1, 1, 1), pixel_size_m: float = 55e-6) -> "ScanGeometry":
        """From a :class:`~autophase.io.spec.SpecScan` header (read by
        :meth:`autophase.io.raw34idc.Geometry34IDC.from_spec` and
        :func:`~autophase.io.raw34idc.sample_circles`) for an array binned by ``binning``
        (rocking, rows, columns)."""
        from ..io.raw34idc import Geometry34IDC, sample_circles

        g = Geometry34IDC.from_spec(scan, pixel_size_m)
        if g.step_deg == 0:
            raise InputError(f"{scan.source}: scan {scan.number}: no rocking step in {scan.command!r}")
        b = [int(x) for x in binning]
        return cls(energy_eV=g.energy_eV, distance_m=g.detector_distance_m,
                   pixel_m=(g.pixel_size_m * b[1], g.pixel_size_m * b[2]), delta_deg=g.delta_deg,
                   gamma_deg=g.gamma_deg, rocking_step_deg=g.step_deg * b[0], rocking_motor=g.scan_motor,
                   **sample_circles(scan))

    # ------------------------------------------------------------------ physics

    @property
    def wavelength_nm(self) -> float:
        return HC_EV_NM / float(self.energy_eV)

    @property
    def k_nm(self) -> float:
        """|k| = 2π/λ (nm⁻¹)."""
        return 2 * np.pi / self.wavelength_nm

    def _detector_rotation(self) -> np.ndarray:
        return _rot(_Y, np.radians(self.delta_deg)) @ _rot(-_X, np.radians(self.gamma_deg))

    def _q_xyz(self) -> np.ndarray:
        kf = self._detector_rotation() @ _Z
        return self.k_nm * (kf - _Z)

    def rocking_axis(self) -> np.ndarray:
        """Unit rotation axis of the rocking motor in the lab, (z, y, x)."""
        th = _rot(_Y, np.radians(self.theta_deg))
        if self.rocking_motor == "th":
            a = _Y
        elif self.rocking_motor == "chi":
            a = th @ -_Z
        else:
            a = th @ _rot(-_Z, np.radians(self.chi_deg)) @ _Y
        return _zyx(a)

    def detector_axes(self) -> np.ndarray:
        """(3, 3): rows k̂_f, ê_row, ê_col, each a lab unit vector (z, y, x)."""
        Rd = self._detector_rotation()
        return np.stack([_zyx(Rd @ _Z), _zyx(-(Rd @ _Y)), _zyx(Rd @ _X)])

    def q_bragg(self) -> np.ndarray:
        """Q = k (k̂_f − k̂_i) at the detector arm's centre, (z, y, x) nm⁻¹."""
        return _zyx(self._q_xyz())

    @property
    def q_nm(self) -> float:
        """|Q| (nm⁻¹)."""
        return float(np.linalg.norm(self._q_xyz()))

    @property
    def d_spacing_nm(self) -> float:
        """d = 2π/|Q| = λ / (2 sin θ) (nm)."""
        return 2 * np.pi / self.q_nm

    @property
    def two_theta_deg(self) -> float:
        c = np.cos(np.radians(self.delta_deg)) * np.cos(np.radians(self.gamma_deg))
        return float(np.degrees(np.arccos(np.clip(c, -1, 1))))

    def reciprocal_basis(self) -> np.ndarray:
        """B_q (3, 3) nm⁻¹: column i is the q step of one voxel along array axis i
        (rocking, rows, columns), rows are its lab (z, y, x) components."""
        Q = self._q_xyz()
        a = self.rocking_axis()[::-1]  # back to (x, y, z)
        h = np.radians(self.rocking_step_deg) / 2
        b0 = _rot(a, -h) @ Q - _rot(a, h) @ Q
        Rd = self._detector_rotation()
        py, px = self.pixel_m
        scale = self.k_nm / float(self.distance_m)
        b1 = scale * py * -(Rd @ _Y)
        b2 = scale * px * (Rd @ _X)
        return np.stack([_zyx(b0), _zyx(b1), _zyx(b2)], axis=1)

    def real_basis(self, shape: Sequence[int]) -> np.ndarray:
        """B_r (3, 3) nm: column i is the real-space step of one voxel along array axis i of
        an object of ``shape`` (the FFT size, = the pattern's shape), lab (z, y, x).

        B_r = −2π (B_q⁻¹)ᵀ diag(1/N) (sign: see the module docstring).
        """
        N = np.asarray(shape, float)
        if N.shape != (3,) or np.any(N < 1):
            raise InputError(f"shape: expected three positive sizes, got {tuple(shape)!r}")
        return -2 * np.pi * np.linalg.inv(self.reciprocal_basis()).T / N[None, :]

    def describe(self, shape: Sequence[int]) -> dict:
        """Numbers worth keeping in an output's metadata (SI-ish names, (z, y, x) vectors)."""
        B = self.real_basis(shape)
        return {
            "q_lab_per_nm_zyx": self.q_bragg(),
            "q_norm_per_nm": self.q_nm,
            "d_spacing_nm": self.d_spacing_nm,
            "two_theta_deg": self.two_theta_deg,
            "detector_basis_nm": B,
            "detector_step_nm": np.linalg.norm(B, axis=0),
            "detector_basis_angles_deg": basis_angles(B),
            "reciprocal_basis_per_nm": self.reciprocal_basis(),
        }


def basis_angles(B: np.ndarray) -> np.ndarray:
    """Angles (deg) between the columns of B: (∠(b₀, b₁), ∠(b₀, b₂), ∠(b₁, b₂))."""
    B = np.asarray(B, float)
    u = B / np.linalg.norm(B, axis=0)
    pairs = ((0, 1), (0, 2), (1, 2))
    return np.array([np.degrees(np.arccos(np.clip(u[:, i] @ u[:, j], -1, 1))) for i, j in pairs])


@dataclass
class LabObject:
    """What :func:`to_lab_frame` returns.

    object : (Z, Y, X) complex64 on the orthonormal lab grid (axes = lab z, y, x).
    support : (Z, Y, X) bool. voxel_size_nm : the grid's (isotropic) voxel, nm.
    q_direction : Q̂ (3,) in the grid's (z, y, x) axes, or None when no Q was given.
    origin_nm : (3,) lab position of voxel (0, 0, 0), relative to the input array's
    centre voxel (n//2 per axis), nm. basis_nm : the detector-frame B_r used (3, 3).
    """

    object: np.ndarray
    support: np.ndarray
    voxel_size_nm: float
    q_direction: np.ndarray | None
    origin_nm: np.ndarray
    basis_nm: np.ndarray

    def positions_nm(self) -> np.ndarray:
        """(3, Z, Y, X) lab position of every voxel (nm), same origin as ``origin_nm``."""
        g = np.indices(self.object.shape, dtype=float)
        return self.origin_nm[:, None, None, None] + self.voxel_size_nm * g


def to_lab_frame(obj: np.ndarray, support: np.ndarray, geometry: "ScanGeometry | np.ndarray", *,
                 voxel_nm: float | None = None, q: Sequence[float] | None = None,
                 margin: int = 2) -> LabObject:
    """Interpolate a detector-frame object onto an orthonormal lab grid.

    obj : (z, y, x) complex, the phased object (array axes rocking, rows, columns).
    support : (z, y, x) bool. geometry : a :class:`ScanGeometry` (B_r from ``obj.shape``,
    Q from the geometry) or a (3, 3) real-space basis B_r in nm (then ``q``, (z, y, x),
    gives Q̂ if wanted). voxel_nm : the new voxel (nm); default the shortest step |b_i|,
    so no direction is sampled more coarsely than measured. margin : empty voxels kept
    around the support.

    The new grid is the lab box around the support's voxels (each a parallelepiped
    spanned by the b_i), in steps v: r(m) = origin + v·m. Each new voxel reads the old
    array at n = c + B_r⁻¹ r by trilinear interpolation (``map_coordinates``, order 1,
    zero outside) of the real and the imaginary part — smooth as long as the phase
    changes by well under π per voxel, so remove a phase ramp first. The support is
    interpolated as 0/1 and cut at ½, which keeps its volume: |det B_r|·N_old ≈ v³·N_new.
    """
    o = np.asarray(obj)
    if o.ndim != 3 or not np.iscomplexobj(o):
        raise InputError(f"object: expected a 3D complex (z, y, x) array, got {o.dtype} {o.shape}")
    s = np.asarray(support).astype(bool)
    if s.shape != o.shape:
        raise InputError(f"support: shape {s.shape} differs from the object's {o.shape}")
    if not s.any():
        raise InputError("support: empty (no voxel inside)")
    if isinstance(geometry, ScanGeometry):
        B = geometry.real_basis(o.shape)
        q = geometry.q_bragg() if q is None else q
    else:
        B = np.asarray(geometry, float)
        if B.shape != (3, 3) or not np.all(np.isfinite(B)):
            raise InputError(f"basis: expected a finite (3, 3) matrix, got shape {B.shape}")
    steps = np.linalg.norm(B, axis=0)
    if not np.all(steps > 0) or abs(np.linalg.det(B)) < 1e-6 * np.prod(steps):
        raise InputError("basis: the three step vectors are (nearly) coplanar; no 3D grid to map")
    v = float(steps.min()) if voxel_nm is None else float(voxel_nm)
    if not (np.isfinite(v) and v > 0):
        raise InputError(f"voxel_nm: must be positive, got {voxel_nm!r}")

    centre = np.array([n // 2 for n in o.shape], float)
    pos = (np.argwhere(s) - centre) @ B.T                  # (K, 3) lab positions of the support, nm
    half_cell = 0.5 * np.abs(B).sum(axis=1)                # half the extent of one old voxel per lab axis
    lo = pos.min(axis=0) - half_cell - margin * v
    hi = pos.max(axis=0) + half_cell + margin * v
    shape = tuple(int(np.ceil((b - a) / v)) + 1 for a, b in zip(lo, hi))

    # n = c + B⁻¹ (lo + v m), assembled axis by axis to avoid a (3, Z, Y, X) position array
    Binv = np.linalg.inv(B)
    axes = [lo[j] + v * np.arange(shape[j]) for j in range(3)]
    coords = np.empty((3,) + shape, np.float64)
    for i in range(3):
        coords[i] = (centre[i]
                     + Binv[i, 0] * axes[0][:, None, None]
                     + Binv[i, 1] * axes[1][None, :, None]
                     + Binv[i, 2] * axes[2][None, None, :])

    def sample(a: np.ndarray) -> np.ndarray:
        return ndimage.map_coordinates(a, coords, order=1, mode="constant", cval=0.0, prefilter=False)

    new = (sample(o.real.astype(np.float32)) + 1j * sample(o.imag.astype(np.float32))).astype(np.complex64)
    new_sup = sample(s.astype(np.float32)) >= 0.5
    qhat = None
    if q is not None:
        qv = np.asarray(q, float)
        if qv.shape != (3,) or not np.linalg.norm(qv) > 0:
            raise InputError(f"q: expected a non-zero (z, y, x) vector, got {q!r}")
        qhat = qv / np.linalg.norm(qv)
    return LabObject(object=new, support=new_sup, voxel_size_nm=v, q_direction=qhat, origin_nm=lo, basis_nm=B)
