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


# --------------------------------------------------------------------------- option checks (issue 14)

BAD_OPTIONS = [
    (["--sw-threshold", "5"], "--sw-threshold 5"),
    (["--sw-threshold", "0.1,0"], "--sw-threshold 0"),
    (["--sw-threshold", "0.1,,0.2"], "--sw-threshold"),
    (["--sw-sigma", "0"], "--sw-sigma 0"),
    (["--sw-sigma", "50"], "--sw-sigma 50"),
    (["--sw-sigma", "3:x"], "--sw-sigma 3:x"),
    (["--beta", "7"], "--beta 7"),
    (["--beta", "0"], "--beta 0"),
    (["--shrink-wrap-every", "-3"], "--shrink-wrap-every -3"),
    (["--starts", "0"], "--starts 0"),
    (["--starts", "2", "--best-k", "3"], "--best-k 3"),
    (["--best-k", "0"], "--best-k 0"),
    (["--seed", "-1"], "--seed -1"),
    (["--support", "1.5"], "--support 1.5"),
    (["--schedule", "3*(20*ER+160*RAR)"], "--schedule"),
    (["--engine", "torch", "--device", "banana"], "--device banana"),
    (["--device", "cpu"], "--device cpu"),          # a device without the torch engine
]


@pytest.mark.parametrize("opts,named", BAD_OPTIONS, ids=[" ".join(o) for o, _ in BAD_OPTIONS])
def test_bad_option_values_one_line_nothing_written(tmp_path, counts, capsys, opts, named):
    np.save(tmp_path / "c.npy", counts)
    out = tmp_path / "x.npz"
    assert run_cli("phase", tmp_path / "c.npy", "-o", out, *opts) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("autophase phase: error: ") and named in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npy"]


@pytest.mark.parametrize("opts,named", [
    (["--engine", "torch", "--device", "cuda:7"], "--device cuda:7"),
    (["--sw-threshold", "5"], "--sw-threshold 5"),
])
def test_bad_options_subprocess_no_traceback(tmp_path, counts, opts, named):
    """The whole process: exit 2, one stderr line naming the option, no traceback, no file."""
    np.save(tmp_path / "c.npy", counts)
    out = tmp_path / "x.npz"
    p = subprocess.run([sys.executable, "-m", "autophase.cli", "phase", str(tmp_path / "c.npy"), "-o", str(out),
                        *opts], capture_output=True, text=True)
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 2 and len(lines) == 1 and named in lines[0], p.stderr
    if "cuda:7" in opts:  # CPU machine: no CUDA; a GPU machine has no 8th device here
        assert "CUDA is not available" in lines[0] or "no such CUDA device" in lines[0]
    assert sorted(q.name for q in tmp_path.iterdir()) == ["c.npy"]


def test_candidates_and_best_k_recorded(tmp_path, counts):
    np.save(tmp_path / "c.npy", counts)
    out = tmp_path / "r.npz"
    assert run_cli("phase", tmp_path / "c.npy", "-o", out, "--schedule", "10*ER+20*RAAR+10*ER",
                   "--shrink-wrap-every", "10", "--starts", "2", "--best-k", "2", "--sw-threshold", "0.15,0.2",
                   "--sw-sigma", "1,2:1", "--no-plot") == 0
    z = np.load(out)
    assert len(z["runs_llk_free"]) == 8 and np.isfinite(z["runs_llk_free"]).all()
    assert set(z["runs_sw_sigma"].tolist()) == {"1.0", "2:1"}
    assert float(z["selected_sw_threshold"]) in (0.15, 0.2) and int(z["averaged"]) == 2
    i = int(np.argmin(z["runs_llk_free"]))
    assert float(z["runs_sw_threshold"][i]) == float(z["selected_sw_threshold"])
    assert str(z["runs_sw_sigma"][i]) == str(z["selected_sw_sigma"])
    assert "RAAR" in z["algorithm_history"].tolist()
