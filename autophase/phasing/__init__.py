"""Iterative phase retrieval: ER, HIO, RAAR, shrink-wrap, schedules, multi-start, best-K, batches.

Names load on first use (PEP 562), so ``autophase.phasing.checks`` can be imported to
check options without loading the engines.
"""
from __future__ import annotations

import importlib

__all__ = ["PhasingParams", "PhasingResult", "ParamError", "phase", "phase_batch", "phase_each",
           "parse_schedule", "total_iterations"]

_WHERE = {"PhasingParams": "api", "PhasingResult": "api", "ParamError": "checks", "phase": "api",
          "phase_batch": "api", "phase_each": "api", "parse_schedule": "schedule", "total_iterations": "schedule"}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
