"""Detector frame → orthonormal lab frame: bases, interpolation, strain along the true Q."""
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from autophase.errors import InputError
from autophase.beamline.geometry import ScanGeometry, basis_angles, to_lab_frame
from autophase.beamline.postprocess import postprocess
from autophase.io.cxi import read_cxi, write_pattern_cxi
from autophase.outputs import input_scan_geometry, write_reconstruction
from autophase.physics.forward import far_field

SCAN54 = Path(__file__).resolve().parents[2] / "shared" / "data" / "aps34idc-scan54"
HC = 1239.841984  # eV·nm

# scan 54's header, binned (3, 2, 1) as prep bins it
G54 = dict(energy_eV=9000.0, distance_m=0.5, pixel_m=(110e-6, 55e-6), delta_deg=32.174, gamma_deg=12.6346,
           rocking_step_deg=0.015, rocking_motor="th", theta_deg=0.22, chi_deg=90.0, phi_deg=-5.0)
PREP_META = {"energy_eV": 9000.0, "detector_distance_m": 0.5, "pixel_size_m": (110e-6, 55e-6),
             "delta_deg": 32.174, "gamma_deg": 12.6346, "rocking_step_deg": 0.015, "scan_motor": "th",
             "theta_deg": 0.22, "chi_deg": 90.0, "phi_deg": -5.0, "d_spacing_m": 2.3348e-10,
             "voxel_size_m": (13.9e-9, 9.8e-9, 19.6e-9)}


# ------------------------------------------------------------------ an independent q(frame, row, col)

def _R(axis: str, a: float) -> np.ndarray:
    """xrayutilities' rotation matrices (rot_matrix.c), (x, y, z), right-handed for '+'."""
    c, s = np.cos(a), np.sin(a)
    m = {"x": [[1, 0, 0], [0, c, -s], [0, s, c]], "y": [[c, 0, s], [0, 1, 0], [-s, 0, c]],
         "z": [[c, -s, 0], [s, c, 0], [0, 0, 1]]}[axis[0]]
    m = np.array(m, float)
    return m if axis[1] == "+" else m.T


def _q_brute(g: ScanGeometry, frame: float, row: float, col: float) -> np.ndarray:
    """q (z, y, x) of a voxel offset (frame, row, col) from the centre, by the full geometry:
    the pixel's true position on a detector at distance D (rows run along −y, columns along
    +x at zero angles), the arm rotated by Delta (y+) ∘ Gamma (x−), and the sample rotated by
    th = th₀ + frame·Δ (y+), brought back to the sample frame at th₀."""
    k = 2 * np.pi * g.energy_eV / HC
    Rd = _R("y+", np.radians(g.delta_deg)) @ _R("x-", np.radians(g.gamma_deg))
    pix = np.array([col * g.pixel_m[1], -row * g.pixel_m[0], g.distance_m])
    kf = k * (Rd @ pix) / np.linalg.norm(pix)
    q_lab = kf - k * np.array([0.0, 0.0, 1.0])
    q0 = _R("y+", -np.radians(frame * g.rocking_step_deg)) @ q_lab
    return q0[::-1]


def test_reciprocal_basis_matches_the_full_geometry():
    g = ScanGeometry(**G54)
    B = g.reciprocal_basis()
    np.testing.assert_allclose(g.q_bragg(), _q_brute(g, 0, 0, 0), rtol=1e-12)
    for i, step in enumerate(np.eye(3)):
        fd = (_q_brute(g, *(0.5 * step)) - _q_brute(g, *(-0.5 * step)))
        np.testing.assert_allclose(B[:, i], fd, rtol=2e-3, atol=1e-6 * np.linalg.norm(fd))
    # the dual basis: B_qᵀ B_r = −2π/N (sign: φ = +G·u, see the module docstring)
    N = (64, 48, 32)
    np.testing.assert_allclose(B.T @ g.real_basis(N), -2 * np.pi * np.diag(1 / np.array(N)), atol=1e-12)


def test_rocking_axes_of_the_sample_circles():
    """θ turns about +y; φ sits on χ (about −z): with χ = 90° it turns about +x."""
    g = ScanGeometry(**G54)
    np.testing.assert_allclose(g.rocking_axis(), [0, 1, 0], atol=1e-12)
    phi = ScanGeometry(**{**G54, "rocking_motor": "Phi", "theta_deg": 0.0, "chi_deg": 90.0})
    assert phi.rocking_motor == "phi"
    np.testing.assert_allclose(phi.rocking_axis(), [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(ScanGeometry(**{**G54, "rocking_motor": "phi", "chi_deg": 0.0}).rocking_axis(),
                               [0, 1, 0], atol=1e-12)
    chi = ScanGeometry(**{**G54, "rocking_motor": "chi", "theta_deg": 90.0})   # χ axis −z turned to −x
    np.testing.assert_allclose(chi.rocking_axis(), [0, 0, -1], atol=1e-12)
    with pytest.raises(InputError, match="coplanar"):         # about the beam: q runs along the Debye ring
        ScanGeometry(**{**G54, "rocking_motor": "chi", "theta_deg": 0.0})


# ------------------------------------------------------------------ (a) orthogonal limit

def test_small_angle_limit_is_orthogonal_with_textbook_steps():
    """2θ → 0 in the horizontal plane: rocking moves q along the beam, the detector
    across it, so the basis is diagonal with λD/(N p) and 2π/(N |Q| Δθ)."""
    N = 64
    g = ScanGeometry(energy_eV=9000.0, distance_m=0.5, pixel_m=(110e-6, 55e-6), delta_deg=0.2, gamma_deg=0.0,
                     rocking_step_deg=0.01)
    B = g.real_basis((N,) * 3)
    lam = HC / 9000.0
    expect = [2 * np.pi / (N * g.q_nm * np.radians(0.01)), lam * 0.5e9 / (N * 110e3), lam * 0.5e9 / (N * 55e3)]
    np.testing.assert_allclose(np.abs(np.diag(B)), expect, rtol=1e-4)
    unit = B / np.linalg.norm(B, axis=0)                          # each column's direction
    assert np.abs(unit - np.diag(np.diag(unit))).max() < 5e-3     # off-axis ≈ sin θ = 1.7e-3
    np.testing.assert_allclose(basis_angles(B), 90.0, atol=0.2)


# ------------------------------------------------------------------ (b) a known crystal, both ways

N_B = 32
ALPHA = 3e-6           # u_Q = α s²/2 (nm, s = r·Q̂ in nm) → ε_QQ = α s, ±6e-4 across the crystal
BETA = 4e-9            # a cubic term, so that the crystal has no centre of symmetry in its phase


def _crystal(r: np.ndarray, qhat: np.ndarray):
    """Inside (bool) and u_Q (nm) of an asymmetric crystal: a tilted ellipsoid cut by a facet.

    r : (3, ...) lab positions (z, y, x) in nm from the crystal's centre.
    """
    rot = np.array([[0.8, 0.6, 0.0], [-0.6, 0.8, 0.0], [0.0, 0.0, 1.0]])
    p = np.tensordot(rot, r, axes=1)
    inside = (p[0] / 170) ** 2 + (p[1] / 120) ** 2 + (p[2] / 200) ** 2 <= 1
    inside &= (p[0] + p[1] + p[2]) < 150                         # a facet on one side only
    s = np.tensordot(qhat, r, axes=1)
    return inside, ALPHA * s ** 2 / 2 + BETA * s ** 3


def _detector_object(g: ScanGeometry, offset=(0, 0, 0)):
    """The crystal sampled at r = B_r (n − c), centred ``offset`` voxels from the array centre."""
    B = g.real_basis((N_B,) * 3)
    n = np.indices((N_B,) * 3).reshape(3, -1) - N_B // 2
    r = (B @ n).reshape((3,) + (N_B,) * 3)
    qhat = g.q_bragg() / g.q_nm
    inside, u = _crystal(r - (B @ np.asarray(offset, float))[:, None, None, None], qhat)
    obj = np.where(inside, np.exp(1j * g.q_nm * u), 0).astype(np.complex64)
    return obj, inside, r, u


def test_fft_sign_matches_the_physical_amplitude():
    """|far_field(ρ)|² of the detector-frame object (φ = +G·u at r = B_r n) equals the true
    |Σ e^{−iG·u} e^{−iq·r}|² at q = B_q k; the other sign of B_r does not."""
    g = ScanGeometry(**G54)
    obj, inside, r, u = _detector_object(g)
    I = np.abs(far_field(obj)) ** 2 * obj.size                  # undo norm="ortho"
    Bq = g.reciprocal_basis()
    ks = np.random.default_rng(0).integers(N_B // 2 - 5, N_B // 2 + 6, size=(25, 3))
    rr = r[:, inside]                                            # (3, M) scatterer positions
    amp = np.exp(-1j * g.q_nm * u[inside])                       # the true phase: −G·u
    peak = I.max()
    for sign, should_match in ((1, True), (-1, False)):
        worst = 0.0
        for k in ks:
            q = sign * (Bq @ (k - N_B // 2))                     # sign −1: B_r = +2π (B_q⁻¹)ᵀ/N instead
            A = np.sum(amp * np.exp(-1j * (q @ rr)))
            worst = max(worst, abs(abs(A) ** 2 - I[tuple(k)]) / peak)
        assert (worst < 1e-4) == should_match, (sign, worst)


def test_orthogonalised_crystal_shape_phase_and_strain():
    g = ScanGeometry(**G54)
    obj, inside, _, _ = _detector_object(g)
    qhat = g.q_bragg() / g.q_nm
    lab = to_lab_frame(obj, inside, g)
    B = g.real_basis(obj.shape)
    assert lab.voxel_size_nm == pytest.approx(np.linalg.norm(B, axis=0).min())
    np.testing.assert_allclose(lab.q_direction, qhat)
    # shape and volume: the lab support is the crystal where it truly is
    r = lab.positions_nm()
    true_in, u = _crystal(r, qhat)
    iou = (true_in & lab.support).sum() / (true_in | lab.support).sum()
    assert iou > 0.85, iou
    vol_det = inside.sum() * abs(np.linalg.det(B))
    assert lab.support.sum() * lab.voxel_size_nm ** 3 == pytest.approx(vol_det, rel=0.05)
    # phase: φ = +G·u at the true positions (inner voxels, where no zero is interpolated in)
    inner = ndimage.binary_erosion(lab.support & true_in, iterations=2)
    match = np.abs(np.mean(np.exp(1j * (np.angle(lab.object[inner]) - g.q_nm * u[inner]))))
    assert match > 0.98, match

    # the full post-processing, from a crystal off the array centre (so both rolls act):
    # lab_origin_nm must still place every voxel, and ε_QQ along the true Q̂ is α s + 3β s²
    # up to the constant that the ramp removal takes away
    off = np.array([3.0, -2.0, 2.0])
    obj, inside, r_det, _ = _detector_object(g, off)
    res = postprocess(obj, inside, geometry=g)
    m = res["metadata"]
    v = res["voxel_size_nm"][0]
    assert m["frame"] == "lab" and res["d_spacing_nm"] == pytest.approx(g.d_spacing_nm)
    np.testing.assert_allclose(res["q_direction"], qhat)
    assert np.abs(m["center_shift_voxels"]).max() <= 1                 # already centred by the detector roll
    centroid = m["lab_origin_nm"] + v * np.argwhere(res["support"]).mean(axis=0)
    np.testing.assert_allclose(centroid, r_det[:, inside].mean(axis=1), atol=0.5 * v)
    sup = ndimage.binary_erosion(res["support"], iterations=2)
    pos = m["lab_origin_nm"][:, None] + v * np.argwhere(sup).T
    s = qhat @ (pos - (B @ off)[:, None])
    truth = ALPHA * s + 3 * BETA * s ** 2
    eps = res["strain"][sup]
    err = (eps - eps.mean()) - (truth - truth.mean())
    assert err.std() < 0.1 * truth.std(), (err.std(), truth.std())
    assert np.polyfit(truth, eps, 1)[0] == pytest.approx(1.0, abs=0.05)


# ------------------------------------------------------------------ (c) the real scan 54 header

@pytest.mark.skipif(not (SCAN54 / "example.spec").is_file(), reason="scan 54 data not present")
def test_scan54_header_gives_gold_111_and_tens_of_nm():
    from autophase.io.spec import read_spec_scan

    g = ScanGeometry.from_spec(read_spec_scan(SCAN54 / "example.spec", 54), binning=(3, 2, 1))
    assert g.rocking_motor == "th" and g.rocking_step_deg == pytest.approx(0.015, rel=1e-4)
    assert g.d_spacing_nm == pytest.approx(0.2355, rel=0.03)     # Au 111: a/√3 = 0.4078/√3
    assert g.q_nm == pytest.approx(2 * np.pi / g.d_spacing_nm)
    B = g.real_basis((64, 64, 64))
    steps = np.linalg.norm(B, axis=0)
    assert np.all((steps > 5) & (steps < 60)), steps
    ang = basis_angles(B)
    assert np.all((ang > 60) & (ang < 120)) and np.abs(ang - 90).max() > 5, ang   # skewed, not degenerate


# ------------------------------------------------------------------ (d) missing and bad metadata

def test_missing_metadata_keeps_the_detector_frame(tmp_path):
    meta = {k: v for k, v in PREP_META.items() if k not in ("delta_deg", "gamma_deg")}
    assert ScanGeometry.from_metadata(meta) is None
    assert ScanGeometry.from_metadata({**PREP_META, "scan_motor": "en"}) is None    # an energy scan
    assert ScanGeometry.from_metadata({**PREP_META, "scan_motor": "phi", "chi_deg": None}) is None
    pat = tmp_path / "old.cxi"
    write_pattern_cxi(pat, np.ones((16, 16, 16), np.float32), metadata=meta)
    geo, why = input_scan_geometry(pat)
    assert geo is None and "delta_deg" in why
    geo, why = input_scan_geometry(tmp_path / "x.npy")
    assert geo is None and "not a CXI" in why

    obj, inside, _, _ = _detector_object(ScanGeometry(**G54))
    out = tmp_path / "rec.cxi"
    write_reconstruction(out, obj, inside, {"chi2": 0.1}, input_path=str(pat), plot=False)
    m = read_cxi(out)["metadata"]
    assert m["frame"] == "detector" and "delta_deg" in m["frame_note"]
    assert m["voxel_size_m"] == pytest.approx(PREP_META["voxel_size_m"])


def test_full_metadata_writes_a_lab_frame_reconstruction(tmp_path):
    pat = tmp_path / "scan.cxi"
    write_pattern_cxi(pat, np.ones((N_B,) * 3, np.float32), metadata=PREP_META)
    g, why = input_scan_geometry(pat)
    assert g is not None and why == "" and g.d_spacing_nm == pytest.approx(0.23348, rel=1e-4)
    obj, inside, _, _ = _detector_object(g)
    out = tmp_path / "rec.cxi"
    write_reconstruction(out, obj, inside, {"chi2": 0.1}, input_path=str(pat), plot=False)
    r = read_cxi(out)
    m = r["metadata"]
    v = np.linalg.norm(g.real_basis(obj.shape), axis=0).min()
    assert m["frame"] == "lab"
    assert m["voxel_size_m"] == pytest.approx((v * 1e-9,) * 3)                  # the lab grid's, not prep's
    np.testing.assert_allclose(m["q_direction_zyx"], g.q_bragg() / g.q_nm)
    assert r["object"].shape == r["extra"]["strain"].shape != obj.shape


def test_bad_values_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="detector_distance_m: must be positive"):
        ScanGeometry(**{**G54, "distance_m": -0.5})
    with pytest.raises(InputError, match="energy_eV: photon energy must be positive"):
        ScanGeometry(**{**G54, "energy_eV": 0.0})
    with pytest.raises(InputError, match="rocking_step_deg"):
        ScanGeometry(**{**G54, "rocking_step_deg": 0.0})
    with pytest.raises(InputError, match="2θ = 0"):
        ScanGeometry(**{**G54, "delta_deg": 0.0, "gamma_deg": 0.0})
    with pytest.raises(InputError, match="coplanar"):           # vertical scattering, θ rocks q along x
        ScanGeometry(**{**G54, "delta_deg": 0.0, "gamma_deg": 30.0})
    with pytest.raises(InputError, match="not a rocking circle"):
        ScanGeometry(**{**G54, "rocking_motor": "en"})
    with pytest.raises(InputError, match="pixel_size_m"):
        ScanGeometry.from_metadata({**PREP_META, "pixel_size_m": (0.0, 55e-6)})
    pat = tmp_path / "bad.cxi"
    write_pattern_cxi(pat, np.ones((8, 8, 8), np.float32), metadata={**PREP_META, "detector_distance_m": -1.0})
    with pytest.raises(InputError, match=r"bad\.cxi: detector_distance_m"):
        input_scan_geometry(pat)
    with pytest.raises(InputError, match="coplanar"):
        to_lab_frame(np.ones((4, 4, 4), np.complex64), np.ones((4, 4, 4), bool), np.diag([1.0, 1.0, 0.0]))
