"""Where things live, from a source checkout or from an installed wheel.

The package runs from either: a checkout (``pip install -e .``, as ``scripts/setup.sh`` does),
where ``benchmarks/results`` and ``runs/`` sit beside ``autophase/``, or a wheel in some
environment's site-packages, where nothing may be written beside the package and outputs go
to the current directory or the user's cache instead.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

__all__ = ["checkout_root", "cache_dir", "cache_file"]

# values of a cache file's environment variable that turn the cache off
CACHE_OFF = ("", "off", "0", "none")

_PACKAGE = Path(__file__).resolve().parent


def checkout_root() -> Path | None:
    """The source checkout this package is imported from, or None for an installed wheel."""
    root = _PACKAGE.parent
    return root if (root / "pyproject.toml").is_file() and (root / "hpc").is_dir() else None


def cache_dir(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/autophase/...`` (default ``~/.cache/autophase/...``), not created."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base.joinpath("autophase", *parts)


def cache_file(env: str, name: Callable[[], str]) -> Path | None:
    """A per-user cache file: ``$env`` when set (one of :data:`CACHE_OFF`: no cache, None),
    else ``cache_dir(name())`` (``name`` is called only then: it may be costly to work out)."""
    value = os.environ.get(env)
    if value is not None:
        return None if value.strip().lower() in CACHE_OFF else Path(value).expanduser()
    return cache_dir(name())
