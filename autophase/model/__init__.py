"""The AutoPhaseNN convolutional network (no physics, no distribution).

The names below load on first use (PEP 562), so that importing a torch-free part of this
package (:mod:`.portable`, :mod:`.symmetry`) does not import torch (≈1 s).
"""
from importlib import import_module

_WHERE = {"file_sha256": "digest", "load_model": "checkpoint", "read_checkpoint": "checkpoint",
          "save_checkpoint": "checkpoint", "AutoPhaseNet": "network", "NetworkConfig": "network",
          "forward_flops": "network", "normalize_input": "network", "parameter_count": "network"}

__all__ = list(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_WHERE])
