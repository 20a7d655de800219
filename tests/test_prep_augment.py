"""Augmenting prepared patterns: rotation, resampling, flipping, and the files for training."""
import h5py
import numpy as np
import pytest

from autophase.errors import InputError
from autophase.beamline.augment import (apply_transform, augment_patterns, write_augmented,
                                            write_augmented_cxi)
from autophase.beamline.prep import estimate_oversampling
from autophase.io.patterns import load_pattern
from autophase.physics.forward import intensity, pad_object
from autophase.physics.synthetic import faceted_crystal


def _pattern(seed=0):
    obj = faceted_crystal(32, radius=9.0, seed=seed)
    I = intensity(pad_object(obj, (64, 64, 64))).astype(np.float32)
    return I / I.sum() * 1e8, obj


def test_shapes_reproducible_and_peak_stays_centred():
    pats = [_pattern(s)[0] for s in range(2)]
    a = augment_patterns(pats, 5, seed=3)
    b = augment_patterns(np.stack(pats), 5, seed=3)
    assert a.shape == (5, 64, 64, 64) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, augment_patterns(pats, 5, seed=4))
    for x in a:
        k = np.unravel_index(int(x.argmax()), x.shape)
        assert all(abs(i - 32) <= 1 for i in k)
        assert 0.9 < x.sum() / 1e8 <= 1.01       # counts kept, up to what leaves the box


def test_identity_and_exact_flip():
    I, obj = _pattern()
    same = augment_patterns([I], 1, seed=0, max_angle_deg=0, scale_range=(1, 1), flip=False)[0]
    np.testing.assert_allclose(same, I, rtol=1e-5, atol=1e-3)
    # a flip of q_x about the peak is the pattern of the mirrored crystal ρ(z, y, −x)
    A = np.diag([1.0, 1.0, -1.0])
    flipped, m = apply_transform(I, A)
    mirrored = np.roll(obj[:, :, ::-1], 1, axis=2)   # mirror about index 16 of the 32-voxel object
    ref = intensity(pad_object(mirrored, (64, 64, 64)))
    ref = ref / ref.sum() * 1e8
    inside = ~m
    np.testing.assert_allclose(flipped[inside], ref[inside], rtol=1e-3, atol=1e-2 * ref.max() * 1e-4)


def test_resampling_changes_the_oversampling_by_the_scale():
    I, _ = _pattern()
    sig0, _ = estimate_oversampling(I)
    A = np.diag([1.25, 1.25, 1.25])
    out, _ = apply_transform(I, A)
    sig1, _ = estimate_oversampling(out)
    np.testing.assert_allclose(sig1 / sig0, 1.25, rtol=0.12)


def test_masks_follow_and_out_of_box_is_masked():
    I, _ = _pattern()
    mask = np.zeros(I.shape, bool)
    mask[32, 32, 40:44] = True
    out, om, params = augment_patterns([I], 3, seed=1, masks=[mask], return_masks=True, return_params=True)
    assert om.shape == out.shape and len(params) == 3
    assert np.all(out[om] == 0)
    # a full random rotation brings the corners of the cube from outside the data
    assert om[:, 0, 0, 0].all()


def test_writers(tmp_path):
    I, _ = _pattern()
    out, om, params = augment_patterns([I], 3, seed=0, return_masks=True, return_params=True)
    p = write_augmented(tmp_path / "aug.h5", out, om, params, sources=["scan54.cxi"])
    import hdf5plugin  # noqa: F401
    with h5py.File(p, "r") as f:
        np.testing.assert_allclose(f["magnitude/data"][1] ** 2, out[1], rtol=1e-5)
        assert f["magnitude/data"].chunks == (1, 64, 64, 64) and f.attrs["complete"]
        assert len(f["meta/json"]) == 3 and "truth" not in f
    files = write_augmented_cxi(tmp_path / "cxi", out, om)
    pat = load_pattern(files[2])
    np.testing.assert_array_equal(pat.measured, ~om[2])
    with pytest.raises(InputError, match="shape"):
        augment_patterns([I, I[:32]], 2, seed=0)
    with pytest.raises(InputError, match="negative"):
        augment_patterns([-I], 2, seed=0)


def test_as_measured_copies_are_photon_thinned_in_the_measured_frame():
    I, _ = _pattern()
    I = np.rint(I / I.max() * 5e3).astype(np.float32)
    mask = np.zeros(I.shape, bool)
    mask[32, 32, 40:44] = True
    # share 0 is the augmentation as it was: the share's draws come from a stream of their own
    np.testing.assert_array_equal(augment_patterns([I], 4, seed=2), augment_patterns([I], 4, seed=2, as_measured=0))
    out, om, params = augment_patterns([I], 6, seed=2, masks=[mask], as_measured=1.0, thin_low=0.5,
                                       return_masks=True, return_params=True)
    for k in range(6):
        f = params[k]["thin"]
        assert params[k]["as_measured"] and 0.5 <= f <= 1
        np.testing.assert_array_equal(om[k], mask)          # the measured frame: the input's own mask
        assert np.all(out[k][mask] == 0) and np.all(out[k] == np.rint(out[k]))
        assert np.all(out[k] <= I)                          # photons are only taken away …
        assert out[k][~mask].sum() == pytest.approx(f * I[~mask].sum(), rel=0.01)  # … a share f of them
        assert np.all(out[k][I == 0] == 0)
    half = augment_patterns([I], 200, seed=2, as_measured=0.5, return_params=True)[1]
    assert 70 < sum(bool(p.get("as_measured")) for p in half) < 130
    with pytest.raises(InputError, match="as_measured"):
        augment_patterns([I], 2, as_measured=1.5)
    with pytest.raises(InputError, match="as_measured"):
        augment_patterns([I], 2, as_measured=float("nan"))
