"""`autophase phase`: outputs, formats, and one-line errors on bad input with nothing written."""
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from autophase.cli import main
from autophase.physics.synthetic import faceted_crystal, noisy_pattern

FAST = ["--schedule", "10*ER+20*HIO+10*ER", "--shrink-wrap-every", "10"]


@pytest.fixture(scope="module")
def counts():
    c, _ = noisy_pattern(faceted_crystal(16, seed=2), photons=1e6, seed=2)
    return c


def run_cli(*args):
    return main([str(a) for a in args])


def test_help_lists_phase():
    out = subprocess.run([sys.executable, "-m", "autophase.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "phase" in out.stdout


@pytest.mark.parametrize("fmt", ["npy", "npz", "h5", "tif"])
def test_formats_to_npz_and_png(tmp_path, counts, fmt):
    src = tmp_path / f"p.{fmt}"
    if fmt == "npy":
        np.save(src, counts)
    elif fmt == "npz":
        np.savez(src, data=counts)
    elif fmt == "h5":
        with h5py.File(src, "w") as f:
            f["entry_1/data_1/data"] = counts
    else:
        tifffile.imwrite(src, counts)
    out = tmp_path / "r.npz"
    assert run_cli("phase", src, "-o", out, *FAST) == 0
    z = np.load(out)
    assert z["object"].dtype == np.complex64 and z["object"].shape == counts.shape
    assert z["support"].dtype == bool
    assert np.isfinite(z["chi2"]) and np.isfinite(z["llk_free"])
    assert len(z["chi2_history"]) == 40
    assert (tmp_path / "r.png").stat().st_size > 10_000


def test_magnitude_input_and_cxi_output(tmp_path, counts):
    src = tmp_path / "m.npy"
    np.save(src, np.sqrt(counts))
    out = tmp_path / "r.cxi"
    assert run_cli("phase", src, "-o", out, "--input-kind", "magnitude", *FAST, "--starts", "2") == 0
    with h5py.File(out, "r") as f:
        assert "cxi_version" in f
        img = f["entry_1/image_1/data"][()]
    assert np.iscomplexobj(img) and img.shape == counts.shape


def _bad_inputs(tmp_path, counts):
    nan = counts.copy()
    nan[1, 2, 3] = np.nan
    neg = counts.copy()
    neg[0, 0, 0] = -5
    inf = counts.copy()
    inf[4, 4, 4] = np.inf
    cases = {
        "2d.npy": (counts[0], "3D"),
        "odd.npy": (counts[:31], "even"),
        "tiny.npy": (np.ones((8, 8, 8), np.float32), "≥"),
        "nan.npy": (nan, "NaN"),
        "neg.npy": (neg, "negative"),
        "inf.npy": (inf, "inf"),
        "zeros.npy": (np.zeros_like(counts), "no positive"),
    }
    for name, (arr, _) in cases.items():
        np.save(tmp_path / name, arr)
    (tmp_path / "trunc.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    (tmp_path / "garbage.npy").write_bytes(b"not an array")
    cases["trunc.h5"] = (None, "unreadable")
    cases["garbage.npy"] = (None, "unreadable")
    cases["missing.npy"] = (None, "no such file")
    return {k: v[1] for k, v in cases.items()}


def test_bad_input_one_line_error_nothing_written(tmp_path, counts):
    for name, expected in _bad_inputs(tmp_path, counts).items():
        out = tmp_path / f"out_{name}.npz"
        p = subprocess.run([sys.executable, "-m", "autophase.cli", "phase", str(tmp_path / name), "-o", str(out),
                            *FAST], capture_output=True, text=True)
        assert p.returncode == 2, (name, p.stderr)
        lines = p.stderr.strip().splitlines()
        assert len(lines) == 1, (name, p.stderr)
        assert name in lines[0] and expected in lines[0], (name, lines[0])
        assert not out.exists() and not out.with_suffix(".png").exists()
        assert not list(tmp_path.glob("out_*")), name


def test_mask_invalid_accepts_gaps(tmp_path, counts):
    c = counts.copy()
    c[:, :, 15:17] = -1
    np.save(tmp_path / "gap.npy", c)
    assert run_cli("phase", tmp_path / "gap.npy", "-o", tmp_path / "g.npz", "--mask-invalid", *FAST) == 0


def test_bad_options(tmp_path, counts, capsys):
    np.save(tmp_path / "c.npy", counts)
    assert run_cli("phase", tmp_path / "c.npy", "-o", tmp_path / "x.npz", "--schedule", "3*FOO") == 2
    assert "--schedule" in capsys.readouterr().err
    assert run_cli("phase", tmp_path / "c.npy", "-o", tmp_path / "x.txt") == 2
    assert run_cli("phase", tmp_path / "c.npy", "-o", tmp_path / "nodir" / "x.npz") == 2
    assert not any(Path(tmp_path).glob("x.*"))
