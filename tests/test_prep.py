"""``autophase prep``: raw 34-ID-C-like scans written here with tifffile, and scan 54."""
from pathlib import Path

import numpy as np
import pytest
import tifffile

from autophase.cli import main
from autophase.errors import InputError
from autophase.beamline.prep import (PrepConfig, choose_binning, crop_and_bin, estimate_oversampling,
                                         prepare)
from autophase.io.cxi import MASK_ALIEN, MASK_DEAD, MASK_HOT, MASK_MISSING, read_cxi
from autophase.io.patterns import load_pattern
from autophase.io.raw34idc import find_frames, read_raw, read_raw_scan
from autophase.physics.forward import intensity, pad_object
from autophase.physics.synthetic import faceted_crystal

SCAN54 = Path(__file__).resolve().parents[2] / "shared" / "data" / "aps34idc-scan54"

STACK = (60, 72, 72)          # frames × rows × cols
DET = (96, 96)                # full detector; the frames are its ROI below
ROI = (10, 72, 4, 72)         # minX sizeX minY sizeY
PEAK = (27, 40, 33)           # where the Bragg peak is put in the stack
HOT = [(5, 6), (60, 61)]      # (row, col) pixels hot in the dark field
DEAD = [(20, 50)]             # white field 0
ALIEN = (50, 12, 60)          # a parasitic blob far from the peak, no Friedel mirror

SPEC = """#F test.spec
#E 1580609738
#O0 Delta  Theta  Chi  Phi  Mu  Gamma
#O1 camdist  Energy
#o0 del th chi phi mu gam
#o1 cam en

#S 7  ascan  th -0.15 0.145 59 0.25
#D Tue Feb 04 12:28:23 2020
#P0 32.174 0.22 90 -5 0 12.6346
#P1 500 9
#UIMR5  {x0} {nx} {y0} {ny} 1
#L Theta  Detector
""".format(x0=ROI[0], nx=ROI[1], y0=ROI[2], ny=ROI[3]) + "".join(
    f"{-0.15 + k * 0.005:.4f} 1\n" for k in range(60))


def _pattern(seed=0, n=12):
    """A faceted crystal of extent ≈ 0.72·n voxels in STACK: σ ≈ N / extent per axis.

    A Gaussian envelope (12 voxels) stands for the partial coherence and resolution of a
    real measurement: far from the peak the counts fall to ≪ 1 as in scan 54, instead of
    the ideal pattern's slow 1/q⁴ tails.
    """
    obj = faceted_crystal(n, seed=seed)
    I = intensity(pad_object(obj, STACK)).astype(np.float64)
    g = np.indices(STACK)
    I *= np.exp(-sum((gi - s // 2) ** 2 for gi, s in zip(g, STACK)) / (2 * 12.0 ** 2))
    I = np.roll(I, [p - s // 2 for p, s in zip(PEAK, STACK)], axis=(0, 1, 2))
    return I / I.max() * 2e4, obj


def write_scan(d: Path, seed=0, n_frames=None, with_spec=True, with_alien=True) -> dict:
    """A raw scan directory: frames/…_S0007_NNNNN.tif, dark.tif, whitefield.tif, test.spec."""
    rng = np.random.default_rng(seed)
    I, obj = _pattern(seed)
    if with_alien:
        g = np.indices(STACK)
        I += 400 * np.exp(-sum((gi - a) ** 2 for gi, a in zip(g, ALIEN)) / (2 * 1.5 ** 2))
    counts = rng.poisson(I).astype(np.float64)
    counts[10, 30, 30] = 5000.0  # a lone spike
    dark = np.zeros(DET, np.int32)
    white = np.full(DET, 1000.0, np.float32) * rng.uniform(0.9, 1.1, DET).astype(np.float32)
    x0, nx, y0, ny = ROI
    for r, c in HOT:
        dark[y0 + r, x0 + c] = 100
        counts[:, r, c] += 300  # hot in every frame
    for r, c in DEAD:
        white[y0 + r, x0 + c] = 0.0
    # the detector records counts × relative gain
    frames = counts * (white[y0:y0 + ny, x0:x0 + nx] / white[white > 0].mean())[None]
    frames = np.rint(frames).astype(np.int32)
    fd = d / "frames"
    fd.mkdir(parents=True, exist_ok=True)
    for k in range(n_frames or STACK[0]):
        tifffile.imwrite(fd / f"test_S0007_{k:05d}.tif", frames[k])
    tifffile.imwrite(d / "dark.tif", dark)
    tifffile.imwrite(d / "whitefield.tif", white)
    if with_spec:
        (d / "test.spec").write_text(SPEC)
    return {"frames_dir": fd, "counts": counts, "obj": obj}


def test_oversampling_estimate_on_known_crystals():
    for seed in range(3):
        obj = faceted_crystal(24, seed=seed)
        amp = np.abs(obj) > 0.5
        ext = np.array([np.ptp(np.flatnonzero(amp.any(axis=tuple(i for i in range(3) if i != a)))) + 1
                        for a in range(3)])
        I = np.random.default_rng(seed).poisson(intensity(pad_object(obj, (80, 96, 112))) * 1e5 /
                                                intensity(pad_object(obj, (80, 96, 112))).max())
        sigma, _ = estimate_oversampling(I)
        true = np.array([80, 96, 112]) / ext
        np.testing.assert_allclose(sigma, true, rtol=0.2)


def test_choose_binning():
    assert choose_binning((8.9, 4.7, 3.6)) == (3, 2, 1)
    assert choose_binning((2.5, 6.1, 12.0)) == (1, 2, 4)
    assert choose_binning((5.5, 4.1, 3.9), minimum=2.0) == (2, 1, 1)   # 4.1/2 = 2.05 is farther from 3
    assert choose_binning((3.9, 3.9, 3.9), minimum=2.0) == (1, 1, 1)
    assert choose_binning((1.5, 1.5, 1.5)) == (1, 1, 1)                 # never below 1


def test_crop_and_bin_sums_centres_and_pads():
    I = np.zeros((10, 12, 14), np.float32)
    I[4, 5, 6] = 100.0
    I[4, 5, 7] = 10.0
    bits = np.zeros(I.shape, np.uint32)
    bits[4, 4, 6] = MASK_DEAD | 1            # 1 of 4 voxels masked in one block: rescaled
    out, ob, start = crop_and_bin(I, bits, (4, 5, 6), (1, 2, 2), size=8)
    # start = p − (size/2)·b − b//2: block 4 along y holds rows 4, 5 and along x columns 5, 6
    assert out.shape == (8, 8, 8) and start == (0, -4, -3)
    assert np.unravel_index(out.argmax(), out.shape) == (4, 4, 4)
    assert out[4, 4, 4] == pytest.approx(100 * 4 / 3)                 # 3 measured voxels of 4
    assert ob[4, 4, 4] == 0 and out[4, 4, 5] == pytest.approx(10.0)
    # rows −4..−1 and columns −3..−1 lie outside the data: missing
    assert ob[0, 0, 0] & MASK_MISSING and ob[0, 0, 0] & 1 and out[0, 0, 0] == 0
    assert out.sum() == pytest.approx(100 * 4 / 3 + 10)


def test_prep_synthetic_scan(tmp_path):
    info = write_scan(tmp_path)
    raw = read_raw_scan(info["frames_dir"])
    # ROI crop of the full-detector dark/white, angles and geometry from the SPEC file
    assert raw.frames.shape == STACK and raw.dark.shape == STACK[1:] and raw.roi == ROI
    assert raw.angles_deg[0] == pytest.approx(-0.15) and len(raw.angles_deg) == STACK[0]
    assert raw.geometry.energy_eV == 9000 and raw.geometry.detector_distance_m == 0.5
    assert raw.geometry.two_theta_deg == pytest.approx(34.316, abs=1e-3)
    lines = []
    res = prepare(raw, PrepConfig(size=32), echo=lines.append)
    assert len(lines) == len(res.log) >= 9 and all("\n" not in s for s in lines)
    assert res.intensity.shape == res.mask_bits.shape == (32, 32, 32)
    # a strained crystal's pattern is not centrosymmetric: its smoothed max may sit 1 voxel off
    assert all(abs(a - b) <= 1 for a, b in zip(res.peak, PEAK))
    # the crystal spans ≈ 0.72·12 voxels: σ ≈ 60/8.6, 72/8.6 → binning 2 or 3 per axis
    assert all(5 < s < 11 for s in res.oversampling_raw)
    assert all(2 <= s <= 4.2 for s in res.oversampling)
    assert all(b in (2, 3) for b in res.binning)
    # peak on the centre voxel of the output
    assert all(abs(i - 16) <= 1 for i in np.unravel_index(int(res.intensity.argmax()), (32,) * 3))
    # hot and dead pixels and the spike are masked in the stack, the alien too
    for r, c in HOT:
        assert np.all(res.stack_bits[:, r, c] & MASK_HOT)
    for r, c in DEAD:
        assert np.all(res.stack_bits[:, r, c] & MASK_DEAD)
    assert res.stack_bits[10, 30, 30] & MASK_HOT
    assert res.stack_bits[ALIEN] & MASK_ALIEN
    assert not (res.stack_bits[PEAK] & MASK_ALIEN)
    assert 0.9 < res.counts_kept / res.counts_corrected <= 1.0
    assert res.metadata["voxel_size_m"][1] > 0 and res.metadata["scan"] == 7


def test_prep_cli_writes_cxi_and_png(tmp_path, capsys):
    info = write_scan(tmp_path)
    out = tmp_path / "out" / "p.cxi"
    assert main(["prep", str(info["frames_dir"]), "-o", str(out), "--size", "32"]) == 0
    text = capsys.readouterr().out
    assert "prep: binning:" in text and "prep: oversampling" in text and "prep: aliens:" in text
    assert out.exists() and (tmp_path / "out" / "p_prep.png").stat().st_size > 10_000
    pat = load_pattern(out)
    assert pat.magnitude.shape == (32, 32, 32)
    r = read_cxi(out)
    assert r["mask"].shape == (32, 32, 32)
    assert "prep log" in r["metadata"]["notes"]
    np.testing.assert_array_equal(pat.measured, ~r["mask"])
    # forced binning and a stack file as input
    np.save(tmp_path / "stack.npy", info["counts"].astype(np.float32))
    out2 = tmp_path / "s.cxi"
    assert main(["prep", str(tmp_path / "stack.npy"), "-o", str(out2), "--size", "32", "--binning", "2,2,2",
                 "--no-plot"]) == 0
    r2 = read_cxi(out2)
    np.testing.assert_array_equal(r2["metadata"]["binning"], [2, 2, 2])
    assert not (tmp_path / "s_prep.png").exists()


# ------------------------------------------------------------------ bad raw input


def test_missing_frame_is_named(tmp_path):
    info = write_scan(tmp_path)
    (info["frames_dir"] / "test_S0007_00017.tif").unlink()
    with pytest.raises(InputError, match=r"frame\(s\) 17 missing between test_S0007_00016.tif and test_S0007_00018"):
        find_frames(info["frames_dir"])


def test_missing_last_frame_vs_spec(tmp_path):
    info = write_scan(tmp_path)
    (info["frames_dir"] / "test_S0007_00059.tif").unlink()
    with pytest.raises(InputError, match="59 frames but scan 7 of .*test.spec has 60 points"):
        read_raw_scan(info["frames_dir"])


def test_mismatched_frame_size_is_named(tmp_path):
    info = write_scan(tmp_path)
    tifffile.imwrite(info["frames_dir"] / "test_S0007_00031.tif", np.zeros((70, 72), np.int32))
    with pytest.raises(InputError, match=r"test_S0007_00031.tif: frame shape \(70, 72\) differs"):
        read_raw_scan(info["frames_dir"])


def test_dark_of_wrong_shape_is_named(tmp_path):
    info = write_scan(tmp_path)
    tifffile.imwrite(tmp_path / "dark.tif", np.zeros((50, 50), np.int32))
    with pytest.raises(InputError, match=r"dark.tif: dark field shape \(50, 50\) is too small for the ROI"):
        read_raw_scan(info["frames_dir"])
    (tmp_path / "test.spec").unlink()  # without an ROI a non-matching shape cannot be cropped
    with pytest.raises(InputError, match=r"dark.tif: dark field shape \(50, 50\) differs from the frames'"):
        read_raw_scan(info["frames_dir"])


def test_empty_directory_and_corrupt_frame(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: no TIFF frames"):
        read_raw(tmp_path / "empty")
    assert main(["prep", str(tmp_path / "empty"), "-o", str(tmp_path / "x.cxi")]) == 2
    assert not (tmp_path / "x.cxi").exists()
    info = write_scan(tmp_path / "s")
    (info["frames_dir"] / "test_S0007_00003.tif").write_bytes(b"II*\x00garbage")
    with pytest.raises(InputError, match="test_S0007_00003.tif: unreadable TIFF"):
        read_raw_scan(info["frames_dir"])


def test_bad_stack_files(tmp_path):
    np.save(tmp_path / "flat.npy", np.zeros((4, 4)))
    with pytest.raises(InputError, match="flat.npy: expected a 3D stack"):
        read_raw(tmp_path / "flat.npy")
    a = np.ones((8, 8, 8), np.float32)
    a[1, 2, 3] = -1
    np.save(tmp_path / "neg.npy", a)
    with pytest.raises(InputError, match="neg.npy: 1 voxel"):
        read_raw(tmp_path / "neg.npy")
    with pytest.raises(InputError, match="no such file"):
        read_raw(tmp_path / "nope.h5::/entry/data")
    np.save(tmp_path / "zeros.npy", np.zeros((8, 8, 8), np.float32))
    with pytest.raises(InputError, match="0 counts"):
        prepare(read_raw(tmp_path / "zeros.npy"))


# ------------------------------------------------------------------ real data


@pytest.mark.slow
@pytest.mark.skipif(not (SCAN54 / "frames").is_dir(), reason="scan 54 data not present")
def test_prep_real_scan54(tmp_path):
    raw = read_raw(SCAN54 / "frames")
    assert raw.frames.shape == (201, 256, 256) and raw.spec.number == 54
    res = prepare(raw, PrepConfig(size=64))
    assert res.intensity.shape == res.mask_bits.shape == (64, 64, 64)
    assert res.peak == (99, 127, 128)
    from scipy import ndimage
    pk = np.unravel_index(int(np.argmax(ndimage.gaussian_filter(res.intensity, 0.5))), (64,) * 3)
    assert all(abs(p - 32) <= 1 for p in pk)
    assert all(1.9 < s < 4.5 for s in res.oversampling)
    assert res.counts_kept / res.counts_corrected > 0.9
    assert (res.mask_bits != 0).mean() < 0.02



def test_hdf5_nexus_path_input(tmp_path):
    import h5py

    info = write_scan(tmp_path, with_alien=False)
    p = tmp_path / "scan.nxs"
    with h5py.File(p, "w") as f:
        f["entry/data/data"] = info["counts"].astype(np.float32)
        f["entry/other/data"] = np.zeros((4, 4, 4), np.float32)   # two 3D datasets: the path must be named
    raw = read_raw(f"{p}::/entry/data/data")
    assert raw.frames.shape == STACK
    with pytest.raises(InputError, match="scan.nxs: no 3D dataset"):
        read_raw(p)
    raw = read_raw(p, dataset="entry/data/data", spec=tmp_path / "test.spec", scan=7)
    assert raw.geometry.detector_distance_m == 0.5 and len(raw.angles_deg) == STACK[0]
    res = prepare(raw, PrepConfig(size=32))
    assert res.intensity.shape == (32, 32, 32) and res.metadata["scan"] == 7
