"""Strict construction of config dataclasses from dicts (JSON, TOML, checkpoints)."""
from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

__all__ = ["strict_from_dict"]

T = TypeVar("T")


def strict_from_dict(cls: type[T], d: dict[str, Any], what: str) -> T:
    """``cls(**d)`` for a config dataclass, refusing keys it does not know (named in the
    error): a misspelt key must not silently fall back to a default."""
    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"unknown {what} config key(s): {', '.join(unknown)}")
    return cls(**d)
