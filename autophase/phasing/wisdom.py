"""FFTW wisdom kept on disk, so that a new process plans its transforms at once.

:class:`autophase.phasing.cpu.CpuEngine` plans its four 64³ transforms with
``FFTW_MEASURE``: FFTW times several algorithms per transform and keeps the fastest —
a few hundred milliseconds to a second per process, paid again by every ``phase`` and
``predict --refine`` command. FFTW can export what it learned ("wisdom", a short text
per precision) and import it in the next process, where the same plans are then made
without measuring.

The file is ``$AUTOPHASE_FFTW_WISDOM`` when set (an empty value or ``off`` turns the
cache off), else ``~/.cache/autophase/fftw-wisdom-<key>.json`` with ``key`` a hash of
the CPU model, the core count and the pyFFTW version: wisdom measured on one kind of
machine is not reused on another (it would be correct there, but maybe slow). The file
is JSON ``{"double": str, "single": str, "long": str}``, written atomically; a missing,
unreadable or foreign file is ignored (planning then measures, as without a cache).
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from ..atomic import write_json

__all__ = ["wisdom_path", "load", "save"]

_LOCK = threading.Lock()
_state = {"loaded": False, "saved": None}
_KINDS = ("double", "single", "long")


def _machine_key() -> str:
    import pyfftw

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{cpu}|{os.cpu_count()}|{getattr(pyfftw, '__version__', '?')}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def wisdom_path() -> Path | None:
    """Where the wisdom lives, or None when caching is off (``AUTOPHASE_FFTW_WISDOM=off``)."""
    from ..paths import cache_file

    return cache_file("AUTOPHASE_FFTW_WISDOM", lambda: f"fftw-wisdom-{_machine_key()}.json")


def load() -> bool:
    """Import the cached wisdom into FFTW once per process; True if some was imported."""
    import pyfftw

    with _LOCK:
        if _state["loaded"]:
            return False
        _state["loaded"] = True
        path = wisdom_path()
        if path is None or not path.is_file():
            return False
        try:
            d = json.loads(path.read_text())
            w = tuple(str(d[k]).encode("ascii") for k in _KINDS)
        except (OSError, ValueError, KeyError, TypeError, UnicodeError):
            return False
        ok = pyfftw.import_wisdom(w)
        _state["saved"] = w
        return any(ok)


def save() -> bool:
    """Write FFTW's current wisdom to :func:`wisdom_path` if it grew; True if written.

    Never raises on a read-only or full disk: the cache is an optimisation.
    """
    import pyfftw

    with _LOCK:
        path = wisdom_path()
        if path is None:
            return False
        w = pyfftw.export_wisdom()
        if w == _state["saved"]:
            return False
        try:
            write_json(path, {k: v.decode("ascii") for k, v in zip(_KINDS, w)})
        except OSError:
            return False
        _state["saved"] = w
        return True
