"""numpy's BLAS limited to one thread where the network and FFTs need the cores (autophase.threads).

Each check runs in its own interpreter: the limit is process-wide and would otherwise
leak into the other tests of this session.
"""
import subprocess
import sys

PY = sys.executable


def _run(code: str) -> str:
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def test_single_blas_thread_limits_numpy_blas():
    out = _run("import numpy\n"
               "from autophase.threads import blas_threads, single_blas_thread\n"
               "before = blas_threads(); single_blas_thread(); single_blas_thread()\n"
               "print(before, blas_threads())")
    before, after = map(int, out.split())
    assert before >= 1  # numpy's BLAS is loaded and seen
    assert after == 1


def test_command_line_runs_with_one_blas_thread(tmp_path):
    # a command that fails on its input still ran after the limit was set: the limit is
    # the dispatcher's, before any command, not the phase command's own
    out = _run("import sys\n"
               "from autophase.cli import main\n"
               "from autophase.threads import blas_threads\n"
               f"rc = main(['phase', {str(tmp_path / 'missing.npy')!r}, '-o', {str(tmp_path / 'out.npz')!r}, '--no-plot'])\n"
               "print(rc, blas_threads())")
    rc, threads = map(int, out.split())
    assert rc == 2
    assert threads == 1


def test_blas_loaded_later_is_limited_too():
    # scipy's own OpenBLAS loads with scipy.linalg, after the limit was set
    out = _run("import numpy\n"
               "from autophase.threads import blas_threads, single_blas_thread\n"
               "single_blas_thread()\n"
               "import scipy.linalg\n"
               "print(blas_threads())")
    assert int(out) == 1


def test_users_own_setting_is_kept():
    import os

    r = subprocess.run([PY, "-c", "import numpy\nfrom autophase.threads import blas_threads, single_blas_thread\n"
                        "single_blas_thread(); print(blas_threads())"],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "OPENBLAS_NUM_THREADS": "2"})
    assert r.returncode == 0, r.stderr
    assert int(r.stdout.split()[-1]) == 2
