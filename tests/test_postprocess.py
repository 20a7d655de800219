"""Post-processing: ramp, offset, displacement and strain against an object of known strain."""
import numpy as np
import pytest

from autophase.errors import InputError
from autophase.beamline.postprocess import (phase_gradient, postprocess, q_unit_vector, remove_phase_ramp,
                                                write_outputs)
from autophase.io.cxi import read_cxi
from autophase.io.vtk import read_vti

N, R = 40, 12            # array side, ball radius (voxels)
VOX, D = 10.0, 0.2355    # voxel size (nm), Au 111 plane spacing (nm)
A = 3e-6                 # u_y = A·(y − c)² nm with y in nm → ε_yy = 2A(y − c), ±7e-4 at the surface


def _strained_ball(ramp=(0.0, 0.0, 0.0), offset=0.0, shift=(0, 0, 0)):
    g = np.indices((N, N, N)).astype(float)
    c = N // 2
    r = np.sqrt(sum((gi - c) ** 2 for gi in g))
    sup = r <= R
    y_nm = (g[1] - c) * VOX
    u = A * y_nm ** 2                                            # displacement along Q = y (nm)
    phi = 2 * np.pi * u / D + sum(k * (gi - c) for k, gi in zip(ramp, g)) + offset
    obj = np.where(sup, np.exp(1j * phi), 0).astype(np.complex64)
    obj = np.roll(obj, shift, axis=(0, 1, 2))
    return obj, np.roll(sup, shift, axis=(0, 1, 2)), u, sup


def test_strain_and_displacement_recovered():
    # a ramp of 0.9 rad/voxel along x wraps the phase every 7 voxels; the crystal is off-centre
    obj, sup, u_true, sup_c = _strained_ball(ramp=(0.2, 0.0, 0.9), offset=2.5, shift=(3, -2, 4))
    res = postprocess(obj, sup, voxel_size_nm=VOX, q_direction="y", d_spacing_nm=D)
    assert res["metadata"]["center_shift_voxels"].tolist() == [-3, 2, -4]
    np.testing.assert_array_equal(res["support"], sup_c)
    np.testing.assert_allclose(res["metadata"]["ramp_rad_per_voxel"], [0.2, 0.0, 0.9], atol=2e-3)
    from scipy import ndimage

    inner = ndimage.binary_erosion(sup_c, iterations=1)
    y_nm = (np.indices((N, N, N))[1] - N // 2) * VOX
    eps_true = 2 * A * y_nm
    err = np.abs(res["strain"] - eps_true)[inner]
    assert err.max() < 2e-5, err.max()                  # of a ±7e-4 field
    # displacement: u − u(com) with u(com) = 0 (phase offset at the centre of mass)
    np.testing.assert_allclose(res["displacement"][sup_c], (u_true - 0.0)[sup_c], atol=2e-3)
    assert res["units"]["strain"] == "1" and res["units"]["displacement"] == "nm"
    # φ = 0 on average over the 3×3×3 box at the centre of mass (here: the centre)
    assert abs(np.angle(np.exp(1j * res["phase"][19:22, 19:22, 19:22]).mean())) < 1e-4
    # strain along z (no strain that way) is ~0; along a diagonal it is the projection
    res_z = postprocess(obj, sup, voxel_size_nm=VOX, q_direction="z", d_spacing_nm=D)
    assert np.abs(res_z["strain"][inner]).max() < 2e-5
    res_d = postprocess(obj, sup, voxel_size_nm=VOX, q_direction=(0, 1, 1), d_spacing_nm=D)
    np.testing.assert_allclose(res_d["strain"][inner], (eps_true / np.sqrt(2))[inner], atol=3e-5)


def test_fourier_ramp_and_lattice_units():
    obj, sup, _, _ = _strained_ball(ramp=(0.0, 0.3, -0.4))
    out, ramp = remove_phase_ramp(obj, sup, "fourier")
    np.testing.assert_allclose(ramp, [0.0, 0.3, -0.4], atol=0.02)
    res = postprocess(obj, sup)                          # no voxel size, no d: lattice units per voxel
    assert res["units"]["displacement"].startswith("d") and res["units"]["length"] == "voxel"
    assert res["voxel_size_nm"] is None


def test_phase_gradient_is_wrap_free():
    x = np.arange(16)
    obj = np.broadcast_to(np.exp(1j * 2.0 * x), (4, 4, 16)).astype(np.complex64)  # wraps every 3 voxels
    g = phase_gradient(obj, np.ones(obj.shape, bool))
    np.testing.assert_allclose(g[2], 2.0, atol=1e-5)
    np.testing.assert_allclose(g[0], 0.0, atol=1e-6)


def test_bad_inputs():
    with pytest.raises(InputError, match="complex"):
        postprocess(np.ones((4, 4, 4)), None)
    with pytest.raises(InputError, match="support"):
        postprocess(np.ones((4, 4, 4), np.complex64), np.zeros((4, 4, 4), bool))
    with pytest.raises(InputError, match="q_direction"):
        q_unit_vector("w")
    with pytest.raises(InputError, match="3D"):
        postprocess(np.ones((4, 4), np.complex64), None)


def test_write_outputs(tmp_path):
    obj, sup, _, _ = _strained_ball(ramp=(0.0, 0.0, 0.5))
    res = postprocess(obj, sup, voxel_size_nm=(12.0, 10.0, 8.0), d_spacing_nm=D)
    data = np.abs(np.fft.fftn(obj)) ** 2
    paths = write_outputs(tmp_path / "rec" / "scan", res, data=data, mask=np.zeros(data.shape, bool),
                          metadata={"chi2": 0.05, "llk_free": 1.1, "seconds": 3.2})
    assert set(paths) == {"cxi", "vti", "isosurface", "slices"}
    for p in paths.values():
        assert p.exists() and p.stat().st_size > 1000
    r = read_cxi(paths["cxi"])
    np.testing.assert_allclose(r["extra"]["strain"], res["strain"])
    np.testing.assert_allclose(r["extra"]["displacement"], res["displacement"])
    assert r["metadata"]["chi2"] == 0.05 and r["metadata"]["voxel_size_m"] == pytest.approx((12e-9, 10e-9, 8e-9))
    arrays, spacing, _ = read_vti(paths["vti"])
    assert spacing == (12.0, 10.0, 8.0)
    assert {"amplitude", "phase", "support", "displacement_nm", "strain"} <= set(arrays)
    np.testing.assert_allclose(arrays["strain"], res["strain"])
