"""Properties of the forward model (numpy and torch): Parseval, invariances, adjoint, gradients."""
import numpy as np
import pytest
import torch

from autophase.physics import (BraggCDI, crop_object, far_field, far_field_adjoint, intensity, magnitude,
                               pad_object, support_from_amplitude)
from autophase.physics.synthetic import faceted_crystal


def rand_obj(n=8, seed=0, dtype=np.complex128):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, n, n)) + 1j * rng.normal(size=(n, n, n))).astype(dtype)


def test_pad_crop_roundtrip_and_centre():
    o = rand_obj(8)
    p = pad_object(o)
    assert p.shape == (16, 16, 16)
    np.testing.assert_array_equal(crop_object(p, (8, 8, 8)), o)
    # the object's centre voxel lands on the array centre
    assert p[8, 8, 8] == o[4, 4, 4]
    assert np.count_nonzero(p) == np.count_nonzero(o)


def test_zero_frequency_at_centre():
    o = np.zeros((16, 16, 16), complex)
    o[4:12, 4:12, 4:12] = 1.0
    I = intensity(o)
    assert np.unravel_index(np.argmax(I), I.shape) == (8, 8, 8)
    # a real, centro-symmetric object about the array centre has a real transform
    o2 = np.zeros((16, 16, 16), complex)
    o2[5:12, 5:12, 5:12] = 1.0  # symmetric about index 8
    assert np.abs(far_field(o2).imag).max() < 1e-10


def test_parseval():
    o = pad_object(rand_obj(8, 1))
    assert np.isclose(np.sum(np.abs(o) ** 2), intensity(o).sum())


def test_invariances_translation_phase_twin():
    o = pad_object(rand_obj(8, 2))
    m = magnitude(o)
    np.testing.assert_allclose(magnitude(np.roll(o, (3, -2, 1), axis=(0, 1, 2))), m, atol=1e-10)
    np.testing.assert_allclose(magnitude(o * np.exp(1j * 0.7)), m, atol=1e-10)
    # twin: conjugate of the point-inverted object (about the array centre, i -> n - i)
    twin = np.conj(np.roll(o[::-1, ::-1, ::-1], 1, axis=(0, 1, 2)))
    np.testing.assert_allclose(magnitude(twin), m, atol=1e-10)


def test_adjoint_identity_and_inverse():
    rng = np.random.default_rng(3)
    x = rand_obj(16, 4)
    y = rand_obj(16, 5)
    lhs = np.vdot(far_field(x), y)
    rhs = np.vdot(x, far_field_adjoint(y))
    assert np.isclose(lhs, rhs)
    np.testing.assert_allclose(far_field_adjoint(far_field(x)), x, atol=1e-10)
    del rng


def test_numpy_and_torch_agree():
    o = pad_object(faceted_crystal(16, seed=1))
    t = torch.from_numpy(o)
    np.testing.assert_allclose(far_field(t).numpy(), far_field(o), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(intensity(t).numpy(), intensity(o), rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(support_from_amplitude(t).numpy(), support_from_amplitude(o))
    np.testing.assert_allclose(pad_object(t).numpy(), pad_object(o))


def test_batched_torch_matches_single():
    o = np.stack([pad_object(faceted_crystal(8, seed=s)) for s in range(3)])
    I = intensity(torch.from_numpy(o)).numpy()
    for b in range(3):
        np.testing.assert_allclose(I[b], intensity(o[b]), rtol=1e-4, atol=1e-4)


def test_gradcheck_complex128():
    x = torch.from_numpy(rand_obj(4, 6)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: far_field(z), (x,), eps=1e-6, atol=1e-5)
    assert torch.autograd.gradcheck(lambda z: magnitude(z), (x,), eps=1e-6, atol=1e-5)


def test_support_threshold_per_sample():
    a = np.zeros((2, 4, 4, 4))
    a[0, 1, 1, 1], a[0, 2, 2, 2] = 1.0, 0.05
    a[1, 1, 1, 1], a[1, 2, 2, 2] = 100.0, 20.0
    s = support_from_amplitude(a, 0.1)
    assert s[0].sum() == 1 and s[1].sum() == 2


def test_operator_object():
    phys = BraggCDI((16, 16, 16))
    o = rand_obj(8, 7)
    rho = phys.pad(o)
    assert phys.object_shape == (8, 8, 8)
    np.testing.assert_allclose(phys.forward(rho), np.abs(phys.A(rho)) ** 2)
    np.testing.assert_allclose(phys.A_adjoint(phys.A(rho)), rho, atol=1e-10)
    assert phys.square_support().sum() == 8 ** 3
    np.testing.assert_array_equal(phys.crop(rho), o)


@pytest.mark.parametrize("bad", [(8, 8, 8)])
def test_pad_rejects_smaller_target(bad):
    with pytest.raises(ValueError):
        pad_object(rand_obj(8), (4, 4, 4))


def test_flip_centred_is_the_same_map_in_numpy_and_torch_and_a_symmetry_of_the_data():
    import torch

    from autophase.physics.forward import flip_centred, magnitude, pad_object

    rng = np.random.default_rng(7)
    obj = (rng.random((8, 8, 8)) * np.exp(1j * rng.random((8, 8, 8)))).astype(np.complex64)
    rho = pad_object(obj)
    M = np.asarray(magnitude(rho))
    n = M.shape[0]
    # index i → (n − i) mod n: the zero frequency (n//2) stays put
    i = np.arange(n)
    np.testing.assert_array_equal(flip_centred(i, 0), i[(n - i) % n])
    assert flip_centred(i, 0)[n // 2] == n // 2
    for axes in [(0,), (1, 2), (0, 1, 2), ()]:
        a = flip_centred(M, axes)
        t = flip_centred(torch.from_numpy(M), axes).numpy()
        np.testing.assert_array_equal(a, t)
    # mirroring the object mirrors |F| about the centre: |F(ρ(−r))| = flip_centred(|F(ρ)|)
    mirrored = np.asarray(magnitude(flip_centred(rho, (0, 1, 2))))
    np.testing.assert_allclose(flip_centred(M, (0, 1, 2)), mirrored, rtol=1e-4, atol=1e-4 * M.max())
