"""Atomic file writes: readers see the old file or the whole new one, never half of it.

One scheme for the whole project: write to a hidden temporary beside the target,
``.NAME.part-PID[SUFFIX]``, then ``os.replace`` it onto ``NAME`` (atomic on POSIX within
one file system). A writer that fails or is killed leaves only a hidden ``.part-`` file,
which :func:`is_part_name` recognises so that a resumed run can delete it.

    with atomic_path("scan.cxi") as tmp:          # any writer that takes a path
        with h5py.File(tmp, "w") as f: ...
    write_text("run.json", text)
    write_json("results.json", obj, indent=2)
    with atomic_path("slices.png", suffix=".png") as tmp:   # keep the extension a
        fig.savefig(tmp)                                     # writer reads the format from
"""
from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

__all__ = ["PART", "part_name", "is_part_name", "atomic_path", "write_text", "write_bytes", "write_json"]

PART = ".part-"


def part_name(path: str | os.PathLike, suffix: str = "") -> Path:
    """The temporary ``.NAME.part-PID[suffix]`` beside ``path``."""
    final = Path(path)
    return final.with_name(f".{final.name}{PART}{os.getpid()}{suffix}")


def is_part_name(name: str) -> bool:
    """True for a temporary left by :func:`atomic_path` (any process, any suffix)."""
    return name.startswith(".") and PART in name


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "", mode: int | None = None,
                fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    suffix : appended to the temporary's name, for writers that pick a format by extension.
    mode   : chmod the file before the rename (e.g. 0o755 for a batch script).
    fsync  : flush the file's data to disk before the rename (data that must survive a crash
             of the machine, not just of the process: checkpoints, shards).
    On an exception the temporary is removed and nothing is left under ``path``.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = part_name(final, suffix)
    try:
        yield tmp
        if mode is not None:
            tmp.chmod(mode)
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    with atomic_path(path, mode=mode) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, **dumps: Any) -> Path:
    """``json.dumps(obj, **dumps)`` plus a newline, written atomically; return the path."""
    return write_text(path, json.dumps(obj, **dumps) + "\n")


def copy_file(src: str | os.PathLike, dst: str | os.PathLike, fsync: bool = False) -> Path:
    """Copy ``src`` to ``dst`` atomically (``fsync`` as in :func:`atomic_path`); return ``dst``."""
    with atomic_path(dst, fsync=fsync) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)
