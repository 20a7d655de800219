"""A model file's identity: its SHA-256 (``version`` is the first 16 hex digits).

Torch-free, so that the ONNX path (:mod:`.portable`) can name a checkpoint without loading it.
"""
from __future__ import annotations

import hashlib
import os

__all__ = ["file_sha256"]


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
