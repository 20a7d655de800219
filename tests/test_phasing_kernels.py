"""The CPU engine compiles its numba kernels on a second thread while FFTW plans
(autophase.phasing.cpu): the warm-up must compile exactly the signatures the loop uses,
or the loop would compile a second time (the cost the thread exists to hide)."""
import os
import subprocess
import sys

import pytest

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


def test_fftw_threads_here_is_per_thread_and_changes_no_answer(monkeypatch):
    """The watch service asks for 2 FFTW threads on its own thread (it refines one pattern at
    a time); phasing elsewhere keeps its engines, the iterations give the same object, and a
    user's AUTOPHASE_FFTW_THREADS wins over the request."""
    import threading

    import numpy as np
    from autophase import phase
    from autophase.phasing.cpu import engine_for, fftw_threads_here

    z, y, x = np.mgrid[:16, :16, :16] - 8
    obj = ((z ** 2 + 2 * y ** 2 + x ** 2) < 12).astype(np.complex64) * np.exp(0.3j * z).astype(np.complex64)
    mag = np.abs(np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(obj)))).astype(np.float32)
    seen = {}
    monkeypatch.delenv("AUTOPHASE_FFTW_THREADS", raising=False)

    def other():
        seen["other"] = engine_for((16, 16, 16)).threads

    try:
        fftw_threads_here(2)
        assert engine_for((16, 16, 16)).threads == 2
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert seen["other"] == 1
        two = phase(mag, schedule="30*ER", seed=3, starts=1)
        monkeypatch.setenv("AUTOPHASE_FFTW_THREADS", "1")
        assert engine_for((16, 16, 16)).threads == 1
        monkeypatch.delenv("AUTOPHASE_FFTW_THREADS")
    finally:
        fftw_threads_here(None)
    one = phase(mag, schedule="30*ER", seed=3, starts=1)
    assert engine_for((16, 16, 16)).threads == 1
    assert np.allclose(two.object, one.object, rtol=0, atol=1e-4 * np.abs(one.object).max())
    assert abs(two.chi2 - one.chi2) <= 1e-5 * max(one.chi2, 1e-12)
    with pytest.raises(ValueError, match="FFTW threads"):
        fftw_threads_here(0)


def test_all_measured_pattern_draws_the_same_free_set_as_no_mask():
    """free_mask serves an all-True mask (what prepare() passes when every voxel is measured)
    from its per-process copy; the set must be the one an explicit draw with that mask gives."""
    import numpy as np
    from autophase.phasing.api import prepare
    from autophase.physics.metrics import _draw_free_mask

    mag = np.random.default_rng(0).random((24, 24, 24)).astype(np.float32)
    p = prepare(mag, None, 0.05, seed=4)
    explicit = _draw_free_mask((24, 24, 24), 0.05, 3, 0.1, np.ones((24, 24, 24), bool), 4)
    assert p.free.any() and np.array_equal(p.free, explicit)
    gap = np.ones((24, 24, 24), bool)
    gap[:, 10:12] = False
    q = prepare(mag, gap, 0.05, seed=4)
    assert not (q.free & ~gap).any()
