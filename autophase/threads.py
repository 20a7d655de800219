"""One BLAS thread for numpy: its pool must not spin on the cores torch and FFTW use.

numpy's OpenBLAS keeps a pool of worker threads, and after each call they busy-wait for
more work (OpenBLAS's ``THREAD_TIMEOUT``, about 2²⁸ cycles) before they sleep. The
project's numpy BLAS calls are all vector products of at most one 64³ pattern (the
χ² scale factor ``F·F``, the least-squares factor of an alignment), where a second
thread buys nothing — but a spinning worker takes one of a small machine's cores away
from the next thing that runs: the network's OpenMP threads, the FFTW threads of ER.
On a 2-core CPU that slowed the compiled network passes that follow
``finish_prediction``'s dot products (measured in docs/watch.md, "The spinning BLAS pool").

:func:`single_blas_thread` limits the BLAS libraries already loaded (threadpoolctl) for
the rest of the process. The command line (:mod:`autophase.cli`) and the watch service
call it; torch's own MKL/oneDNN and OpenMP threads are not touched.
"""
from __future__ import annotations

import os

__all__ = ["single_blas_thread", "blas_threads"]

ENV = "OPENBLAS_NUM_THREADS"
_LIMIT = None  # the threadpoolctl limiter, kept so the limit lasts (and can be inspected)


def single_blas_thread() -> None:
    """Limit every OpenBLAS of this process to one thread from now on (idempotent).

    Two copies can load: numpy's, at ``import numpy``, and scipy's, when scipy's linear
    algebra first loads. The ones already loaded are limited through threadpoolctl; for
    those loaded later (and child processes) ``OPENBLAS_NUM_THREADS=1`` is set, which
    OpenBLAS reads when it loads. A user's own ``OPENBLAS_NUM_THREADS`` is left as it is.
    """
    global _LIMIT
    if os.environ.get(ENV) not in (None, "1"):
        return  # the user's choice
    os.environ[ENV] = "1"
    import numpy  # noqa: F401 - threadpoolctl limits only the libraries already loaded
    from threadpoolctl import threadpool_limits

    if _LIMIT is None or blas_threads() != 1:
        _LIMIT = threadpool_limits(limits=1, user_api="blas")


def blas_threads() -> int:
    """The largest thread count among the loaded BLAS libraries (0 when none is loaded)."""
    from threadpoolctl import threadpool_info

    return max((d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas"), default=0)
