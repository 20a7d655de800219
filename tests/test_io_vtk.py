"""VTK ImageData writer: parsed back by our reader and, when installed, by VTK itself."""
import numpy as np
import pytest

from autophase.errors import InputError
from autophase.io.vtk import read_vti, write_object_vti, write_vti


def _fields(shape=(5, 6, 7), seed=0):
    rng = np.random.default_rng(seed)
    amp = rng.random(shape).astype(np.float32)
    obj = (amp * np.exp(1j * rng.uniform(-3, 3, shape))).astype(np.complex64)
    return obj, amp > 0.5


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("as_cells", [False, True])
def test_round_trip_own_reader(tmp_path, compress, as_cells):
    obj, sup = _fields()
    vec = np.random.default_rng(1).normal(size=obj.shape + (3,)).astype(np.float64)
    p = write_vti(tmp_path / "a.vti", {"amplitude": np.abs(obj), "support": sup, "vec": vec},
                  spacing=(3.0, 2.0, 1.5), origin=(-1.0, -2.0, -3.0), as_cells=as_cells, compress=compress)
    arrays, spacing, origin = read_vti(p)
    np.testing.assert_array_equal(arrays["amplitude"], np.abs(obj))
    np.testing.assert_array_equal(arrays["support"], sup.astype(np.uint8))
    np.testing.assert_array_equal(arrays["vec"], vec)
    assert spacing == (3.0, 2.0, 1.5) and origin == (-1.0, -2.0, -3.0)


def test_large_array_spans_several_compression_blocks(tmp_path):
    a = np.random.default_rng(2).random((40, 41, 42)).astype(np.float32)  # 282 KB > 32 KiB blocks
    arrays, _, _ = read_vti(write_vti(tmp_path / "big.vti", {"a": a}))
    np.testing.assert_array_equal(arrays["a"], a)


@pytest.mark.parametrize("as_cells", [False, True])
def test_real_vtk_reader(tmp_path, as_cells):
    vtk = pytest.importorskip("vtk")
    from vtk.util.numpy_support import vtk_to_numpy

    obj, sup = _fields((6, 7, 8))
    strain = np.linspace(-1e-3, 1e-3, obj.size, dtype=np.float32).reshape(obj.shape)
    p = write_object_vti(tmp_path / "o.vti", obj, sup, voxel_size_nm=(12.0, 10.0, 8.0),
                         extra={"strain": strain}, as_cells=as_cells)
    r = vtk.vtkXMLImageDataReader()
    r.SetFileName(str(p))
    r.Update()
    img = r.GetOutput()
    assert img.GetSpacing() == (8.0, 10.0, 12.0)  # VTK order x, y, z
    n_pts = (9, 8, 7) if as_cells else (8, 7, 6)
    assert img.GetDimensions() == n_pts
    data = img.GetCellData() if as_cells else img.GetPointData()
    assert data.GetScalars().GetName() == "amplitude"
    amp = vtk_to_numpy(data.GetArray("amplitude")).reshape(obj.shape)  # x fastest = C order of (z, y, x)
    np.testing.assert_allclose(amp, np.abs(obj))
    np.testing.assert_allclose(vtk_to_numpy(data.GetArray("phase")).reshape(obj.shape), np.angle(obj), atol=1e-6)
    np.testing.assert_array_equal(vtk_to_numpy(data.GetArray("support")).reshape(obj.shape), sup)
    np.testing.assert_array_equal(vtk_to_numpy(data.GetArray("strain")).reshape(obj.shape), strain)
    # the voxel (z, y, x) = (0, 0, 0) sits at the origin, centred grid: -(n//2)*spacing
    assert img.GetOrigin() == (-4 * 8.0, -3 * 10.0, -3 * 12.0)


def test_bad_inputs(tmp_path):
    with pytest.raises(InputError, match="shape"):
        write_vti(tmp_path / "x.vti", {"a": np.zeros((2, 2, 2)), "b": np.zeros((2, 2, 3))})
    with pytest.raises(InputError, match="complex"):
        write_vti(tmp_path / "x.vti", {"a": np.zeros((2, 2, 2), np.complex64)})
    with pytest.raises(InputError, match="spacing"):
        write_vti(tmp_path / "x.vti", {"a": np.zeros((2, 2, 2))}, spacing=0)
    assert not (tmp_path / "x.vti").exists()
    (tmp_path / "bad.vti").write_text("<not xml")
    with pytest.raises(InputError, match="bad.vti"):
        read_vti(tmp_path / "bad.vti")


def test_real_vtk_reader_uncompressed(tmp_path):
    vtk = pytest.importorskip("vtk")
    from vtk.util.numpy_support import vtk_to_numpy

    a = np.arange(3 * 4 * 5, dtype=np.float64).reshape(3, 4, 5)
    r = vtk.vtkXMLImageDataReader()
    r.SetFileName(str(write_vti(tmp_path / "u.vti", {"a": a}, compress=False)))
    r.Update()
    np.testing.assert_array_equal(vtk_to_numpy(r.GetOutput().GetPointData().GetArray("a")).reshape(a.shape), a)
