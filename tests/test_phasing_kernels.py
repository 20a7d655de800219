"""The CPU engine compiles its numba kernels on a second thread while FFTW plans
(autophase.phasing.cpu): the warm-up must compile exactly the signatures the loop uses,
or the loop would compile a second time (the cost the thread exists to hide)."""
import os
import subprocess
import sys

CODE = r"""
import numpy as np
from autophase import phase
from autophase.phasing import kernels
from autophase.phasing.cpu import CpuEngine

e = CpuEngine((16, 16, 16))
e._kernels_ready()
loop = ("fourier_project", "real_space_update", "amplitude", "threshold_support")
warm = {k: list(getattr(kernels, k).signatures) for k in loop}
assert all(len(v) == 1 for v in warm.values()), warm
assert not kernels.raar_update.signatures  # left to its first use

z, y, x = np.mgrid[:16, :16, :16] - 8
obj = ((z**2 + y**2 + x**2) < 9).astype(np.complex64)
mag = np.abs(np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(obj))))
r = phase(mag.astype(np.float32), schedule="20*ER+20*HIO", shrink_wrap_every=10, seed=0)
after = {k: list(getattr(kernels, k).signatures) for k in loop}
assert after == warm, (warm, after)
print("same", sum(len(v) for v in after.values()))
"""


def test_engine_warm_up_compiles_the_loops_own_signatures(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"), AUTOPHASE_FFTW_WISDOM="off")
    r = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split()[-2:] == ["same", "4"]
