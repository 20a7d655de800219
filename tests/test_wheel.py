"""The wheel works outside the checkout: build it, install it into a fresh venv, use it elsewhere.

The fresh venv gets the project's runtime dependencies (torch, numpy, …) by a ``.pth`` line
naming the project venv's site-packages — the dependencies are the same wheels either way,
and installing torch again would cost minutes — but autophase itself only from the wheel:
the checkout is not on its path, and its top-level ``hpc`` folder must not be importable.
"""
from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(REPO)], check=True, cwd=out, timeout=300)
    (whl,) = out.glob("autophase-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(d)], check=True, timeout=120)
    py = d / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "_project_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True, timeout=300)
    return d


def _run(venv: Path, cwd: Path, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    return subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_wheel_holds_the_package_data_and_no_generic_top_level(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"autophase"}, tops
    for want in ("autophase/models/default.pt", "autophase/models/default.onnx",
                 "autophase/hpc/bin/set_affinity_gpu_polaris.sh",
                 "autophase/hpc/sites/perlmutter.py", "autophase/benchmarks/bench_phasing.py"):
        assert want in names, want


def test_api_and_commands_from_outside_the_checkout(venv, tmp_path):
    code = textwrap.dedent("""
        import numpy as np, autophase
        from pathlib import Path
        assert 'site-packages' in autophase.__file__, autophase.__file__
        try:
            import hpc
        except ModuleNotFoundError:
            pass
        else:
            raise SystemExit('a top-level hpc module is importable: ' + hpc.__file__)
        from autophase.physics.synthetic import faceted_crystal, noisy_pattern
        counts, _ = noisy_pattern(faceted_crystal(32, seed=2), photons=1e6, seed=2)  # 64³, the network's size
        res = autophase.phase(counts, schedule='20*ER+40*HIO+20*ER')
        net = autophase.Predictor(symmetries=1)          # the shipped model, from the wheel
        assert Path(net.path).is_relative_to(Path(autophase.__file__).parent), net.path
        nn = net.predict(np.sqrt(counts)[None])[0]
        ox = autophase.Predictor(symmetries=1, backend='onnx')   # the shipped graph, from the wheel
        assert ox.backend == 'onnx' and abs(ox.predict(np.sqrt(counts)[None])[0].chi2 - nn.chi2) <= 1e-3 * nn.chi2
        print('ok', res.chi2, nn.chi2)
    """)
    r = _run(venv, tmp_path, str(venv / "bin" / "python"), "-c", code)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("ok ")
    chi2_phase, chi2_nn = map(float, r.stdout.split()[1:3])
    assert chi2_phase < 0.1 and chi2_nn < 1.0

    # the user's own copy of a run config, in a directory that is not the checkout
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "local.toml").write_text((REPO / "jobs" / "local.toml").read_text())
    r = _run(venv, tmp_path, str(venv / "bin" / "autophase"), "workflow", "--config", "jobs/local.toml", "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "mpiexec" in r.stdout and str(REPO) not in r.stdout
    r = _run(venv, tmp_path, str(venv / "bin" / "autophase"), "bench", "--list")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "phasing" in r.stdout and "training" in r.stdout
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.h5"))
