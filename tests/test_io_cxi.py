"""CXI writer/reader round trips, layout checks against the CXI 1.6 spec, atomic writes."""
import os

import h5py
import numpy as np
import pytest

from autophase.errors import InputError
from autophase.io.cxi import (MASK_DEAD, MASK_INSIDE_SUPPORT, MASK_INVALID, read_cxi, write_cxi,
                              write_pattern_cxi)
from autophase.io.patterns import load_pattern


def _obj(n=8, seed=0):
    rng = np.random.default_rng(seed)
    amp = rng.random((n, n, n)).astype(np.float32)
    return (amp * np.exp(1j * rng.uniform(-np.pi, np.pi, amp.shape))).astype(np.complex64)


def test_object_round_trip_and_layout(tmp_path):
    obj = _obj()
    sup = np.abs(obj) > 0.5
    inten = np.abs(np.fft.fftn(obj)) ** 2
    mask = np.zeros(obj.shape, bool)
    mask[0, 0, :3] = True
    meta = {"energy_eV": 9000.0, "detector_distance_m": 0.5, "pixel_size_m": 55e-6,
            "voxel_size_nm": (10.0, 11.0, 12.0), "sample_name": "Au", "chi2": 0.0123,
            "llk_free": 1.5, "metrics": {"time_s": 2.5}, "chi2_history": np.linspace(1, 0, 5),
            "notes": {"schedule": "3*(20ER+180HIO)+20ER"}, "command": "autophase phase x.cxi"}
    p = write_cxi(tmp_path / "obj.cxi", obj, sup, data=inten, mask=mask, metadata=meta)
    r = read_cxi(p)
    np.testing.assert_array_equal(r["object"], obj)
    np.testing.assert_array_equal(r["support"], sup)
    np.testing.assert_allclose(r["data"], inten.astype(np.float32))
    np.testing.assert_array_equal(r["mask"], mask)
    m = r["metadata"]
    assert m["cxi_version"] == 160
    assert m["energy_eV"] == pytest.approx(9000.0)
    assert m["wavelength_m"] == pytest.approx(1.3776e-10, rel=1e-3)
    assert m["detector_distance_m"] == 0.5 and m["pixel_size_m"] == (55e-6, 55e-6)
    assert m["voxel_size_m"] == pytest.approx((10e-9, 11e-9, 12e-9))
    assert m["chi2"] == 0.0123 and m["llk_free"] == 1.5 and m["time_s"] == 2.5
    np.testing.assert_allclose(m["chi2_history"], np.linspace(1, 0, 5))
    assert m["notes"]["schedule"].startswith("3*(")
    assert m["command"] == "autophase phase x.cxi" and m["sample_name"] == "Au"
    with h5py.File(p, "r") as f:
        # spec: complex stored as compound (r, i); data_1/data a link to the image; SI units
        t = f["entry_1/image_1/data"].id.get_type()
        assert isinstance(t, h5py.h5t.TypeCompoundID)
        assert [t.get_member_name(i) for i in range(t.get_nmembers())] == [b"r", b"i"]
        assert isinstance(f["entry_1/data_1"].get("data", getlink=True), h5py.SoftLink)
        assert f["entry_1/image_1/is_fft_shifted"][()] == 0
        assert f["entry_1/image_1/data_space"][()] == b"real"
        assert f["entry_1/instrument_1/source_1/energy"][()] == pytest.approx(9000 * 1.602176634e-19)
        bits = f["entry_1/image_1/mask"][()]
        np.testing.assert_array_equal((bits & MASK_INSIDE_SUPPORT) != 0, sup)
        assert f["entry_1/process_1/program"][()] == b"autophase"
        assert f["entry_1/image_1/image_size"][()] == pytest.approx(np.array([80e-9, 88e-9, 96e-9]))


def test_pattern_round_trip_and_load_pattern(tmp_path):
    rng = np.random.default_rng(1)
    inten = rng.poisson(50, (16, 16, 16)).astype(np.float32)
    bits = np.zeros(inten.shape, np.uint32)
    bits[3, 4, 5] = MASK_DEAD
    p = write_pattern_cxi(tmp_path / "pat.cxi", inten, bits, metadata={"energy_eV": 9000.0, "binning": [1, 2, 2]})
    r = read_cxi(p)
    assert r["object"] is None
    np.testing.assert_array_equal(r["data"], inten)
    assert r["mask"].sum() == 1 and r["mask_bits"][3, 4, 5] == MASK_DEAD | MASK_INVALID
    np.testing.assert_array_equal(r["metadata"]["binning"], [1, 2, 2])
    # the project's pattern reader finds the data and honours the mask
    pat = load_pattern(p)
    assert not pat.measured[3, 4, 5] and pat.measured.sum() == inten.size - 1
    np.testing.assert_allclose(pat.magnitude[0, 0, 0], np.sqrt(inten[0, 0, 0]))
    with h5py.File(p, "r") as f:
        np.testing.assert_array_equal(f["entry_1/instrument_1/detector_1/data"][()], inten)
        assert f["entry_1/image_1/data_space"][()] == b"diffraction"


def test_bool_mask_and_no_optional_parts(tmp_path):
    obj = _obj(4)
    p = write_cxi(tmp_path / "bare.cxi", obj)
    r = read_cxi(p)
    assert r["support"] is None and r["data"] is None
    np.testing.assert_array_equal(r["object"], obj)


def test_atomic_write_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "bad.cxi"
    with pytest.raises(InputError, match="support shape"):
        write_cxi(target, _obj(4), np.ones((3, 3, 3), bool))
    assert os.listdir(tmp_path) == []
    # an existing good file survives a failed overwrite
    write_cxi(target, _obj(4))
    with pytest.raises(InputError):
        write_cxi(target, _obj(4), np.ones((3, 3, 3), bool))
    assert sorted(os.listdir(tmp_path)) == ["bad.cxi"]
    assert read_cxi(target)["object"].shape == (4, 4, 4)


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_cxi(tmp_path / "missing.cxi")
    junk = tmp_path / "junk.cxi"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(InputError, match="junk.cxi"):
        read_cxi(junk)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(InputError, match="not a CXI"):
        read_cxi(tmp_path / "other.h5")
    with pytest.raises(InputError, match="3D"):
        write_cxi(tmp_path / "flat.cxi", np.ones((4, 4), np.complex64))


def test_metadata_read_back_can_be_written_again(tmp_path):
    obj = _obj(4)
    p1 = write_cxi(tmp_path / "a.cxi", obj, metadata={"energy_eV": 8000.0, "chi2": 0.2, "pixel_size_m": 55e-6,
                                                      "detector_distance_m": 0.5, "voxel_size_nm": 10.0})
    m1 = read_cxi(p1)["metadata"]
    p2 = write_cxi(tmp_path / "b.cxi", obj, metadata=m1)
    m2 = read_cxi(p2)["metadata"]
    for k in ("energy_eV", "chi2", "pixel_size_m", "detector_distance_m", "voxel_size_m", "kind", "program"):
        assert m2[k] == pytest.approx(m1[k]) if not isinstance(m1[k], str) else m2[k] == m1[k]
