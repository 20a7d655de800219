"""Range checks for phasing and refinement options, shared by the Python API and the CLI.

Every check raises :class:`ParamError` — a ``ValueError`` (what Python callers expect)
that is also an :class:`~autophase.errors.InputError` (what the CLI prints as one line,
exit 2). It names the parameter by its field name; a command maps the field to its own
option name with :meth:`ParamError.for_option` (``sw_threshold`` → ``--sw-threshold``).

Nothing here imports numpy or torch at module level: the checks run before anything
heavy is loaded, and ``torch`` is imported only to check a torch device.

Ranges (why):

* β (HIO, RAAR feedback): 0 < β ≤ 1 — β ≤ 0 removes the feedback, β > 1 diverges.
* shrink-wrap threshold: 0 < t < 1 — a fraction of the blurred amplitude's maximum;
  t ≥ 1 leaves an empty support, t ≤ 0 the whole box.
* shrink-wrap σ: 0 < σ ≤ :data:`SIGMA_MAX` voxels — a wider blur than that merges the
  support of any crystal that fits an oversampled array with its surroundings.
* periods (shrink-wrap every K): integers ≥ 0 (0 = off).
* starts ≥ 1, 1 ≤ best_k ≤ starts, seed ≥ 0.
"""
from __future__ import annotations

import math
import numbers
from typing import Any

from ..errors import InputError

__all__ = ["ParamError", "SIGMA_MAX", "check_beta", "check_fraction", "check_threshold", "check_sigma",
           "check_period", "check_count", "check_device", "parse_sigma", "parse_list", "sigma_label"]

SIGMA_MAX = 10.0


class ParamError(ValueError, InputError):
    """A parameter out of range: ``field`` (the API name), ``value`` and what is wrong."""

    def __init__(self, field: str, value: Any, problem: str):
        self.field, self.value, self.problem = field, value, problem
        super().__init__(f"{field}={value!r}: {problem}")

    def for_option(self, option: str, value: Any = None) -> InputError:
        """The same problem as a CLI line: ``--option VALUE: problem``."""
        v = self.value if value is None else value
        return InputError(f"{option} {v}: {self.problem}")


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_beta(field: str, v) -> float:
    """0 < β ≤ 1 (HIO/RAAR feedback)."""
    if not _is_real(v) or not math.isfinite(v) or not 0 < v <= 1:
        raise ParamError(field, v, "β must be a number in (0, 1]")
    return float(v)


def check_threshold(field: str, v, low_inclusive: bool = False) -> float:
    """0 < t < 1 (or 0 ≤ t < 1 with ``low_inclusive``): a fraction of a maximum."""
    ok = _is_real(v) and math.isfinite(v) and (0 <= v if low_inclusive else 0 < v) and v < 1
    if not ok:
        rng = "[0, 1)" if low_inclusive else "(0, 1)"
        raise ParamError(field, v, f"a threshold must be a fraction of the maximum in {rng}")
    return float(v)


def check_fraction(field: str, v, low: float, high: float, high_inclusive: bool = True) -> float:
    """low < v ≤ high (or < high)."""
    ok = _is_real(v) and math.isfinite(v) and low < v and (v <= high if high_inclusive else v < high)
    if not ok:
        raise ParamError(field, v, f"must be in ({low}, {high}{']' if high_inclusive else ')'}")
    return float(v)


def check_sigma(field: str, v) -> float:
    """0 < σ ≤ SIGMA_MAX voxels."""
    if not _is_real(v) or not math.isfinite(v) or not 0 < v <= SIGMA_MAX:
        raise ParamError(field, v, f"σ must be in (0, {SIGMA_MAX:g}] voxels")
    return float(v)


def check_period(field: str, v) -> int:
    """An integer ≥ 0 (0 = off)."""
    if not _is_int(v) or v < 0:
        raise ParamError(field, v, "must be an integer ≥ 0 (0 = off)")
    return int(v)


def check_count(field: str, v, low: int = 1, high: int | None = None, what: str = "") -> int:
    """An integer in [low, high]."""
    if not _is_int(v) or v < low or (high is not None and v > high):
        rng = f"≥ {low}" if high is None else f"in [{low}, {high}]"
        raise ParamError(field, v, f"must be an integer {rng}{what}")
    return int(v)


def check_device(field: str, device, engine: str) -> None:
    """A torch device string that exists on this machine (only with the torch engine)."""
    if device is None:
        return
    if engine != "torch":
        raise ParamError(field, device, f"a device applies only to the torch engine (engine is {engine!r})")
    import torch

    try:
        d = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ParamError(field, device, "not a device (expected cpu, cuda or cuda:N)") from None
    if d.type == "cpu":
        return
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise ParamError(field, device, "CUDA is not available on this machine")
        n = torch.cuda.device_count()
        if d.index is not None and d.index >= n:
            raise ParamError(field, device, f"no such CUDA device (this machine has {n}: cuda:0…cuda:{n - 1})")
        return
    if d.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ParamError(field, device, "MPS is not available on this machine")
        return
    raise ParamError(field, device, "unsupported device type (expected cpu, cuda or cuda:N)")


# --------------------------------------------------------------------------- σ and lists

def parse_sigma(field: str, v) -> float | tuple[float, float]:
    """One σ candidate: a number, or a decreasing ramp ``"START:END"`` / ``(START, END)``.

    A ramp goes linearly from START at the first shrink-wrap update to END at the last one
    (see :func:`autophase.phasing.api.sigma_table`): a wide blur while the support is
    still far from the crystal, a sharp one at the end. START ≥ END is not required, but
    both must be valid σ values.
    """
    if isinstance(v, str):
        parts = v.split(":")
        try:
            nums = [float(s) for s in parts]
        except ValueError:
            raise ParamError(field, v, "expected a number or START:END (a ramp, e.g. 3:1)") from None
        if len(nums) == 1:
            return check_sigma(field, nums[0])
        if len(nums) != 2:
            raise ParamError(field, v, "expected a number or START:END (a ramp, e.g. 3:1)")
        v = tuple(nums)
    if isinstance(v, tuple) and len(v) == 2 and all(_is_real(x) for x in v):
        a, b = (check_sigma(field, x) for x in v)
        return a if a == b else (a, b)
    return check_sigma(field, v)


def sigma_label(s: float | tuple[float, float]) -> str:
    """``1`` or ``3:1`` — how a σ candidate is written on the command line and in records."""
    return f"{s[0]:g}:{s[1]:g}" if isinstance(s, tuple) else f"{s:g}"


def parse_list(option: str, text: str, item=float) -> tuple:
    """``"0.1,0.15,0.2"`` → (0.1, 0.15, 0.2); one line naming ``option`` if malformed."""
    parts = [s.strip() for s in str(text).split(",")]
    if not parts or any(not s for s in parts):
        raise InputError(f"{option} {text}: expected a comma-separated list of values")
    out = []
    for s in parts:
        try:
            out.append(item(s))
        except ValueError:
            raise InputError(f"{option} {text}: {s!r} is not a number") from None
    return tuple(out)
