"""Parameter validation shared by configs and chapters.

Every check raises ``ValueError`` whose message names the parameter and what is allowed,
so that a chapter run by papermill with a bad value stops at once with a readable error.
"""
from __future__ import annotations

from collections.abc import Iterable


def check_choice(name: str, value, allowed: Iterable) -> None:
    """Fail unless ``value`` is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {allowed}")


def check_choices(name: str, values, allowed: Iterable) -> None:
    """Fail unless ``values`` is a non-empty sequence drawn from ``allowed``."""
    allowed = tuple(allowed)
    if isinstance(values, str) or len(values) == 0:
        raise ValueError(f"{name}={values!r} must be a non-empty list drawn from {allowed}")
    for v in values:
        if v not in allowed:
            raise ValueError(f"{name} contains {v!r}; allowed values are {allowed}")


def check_positive(name: str, value, integer: bool = False, allow_zero: bool = False) -> None:
    """Fail unless ``value`` is a positive (or non-negative) number, optionally an int."""
    kind = "integer" if integer else "number"
    bound = ">= 0" if allow_zero else "> 0"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type:
        raise ValueError(f"{name}={value!r} must be a {kind} {bound}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name}={value!r} must be a {kind} {bound}")


def check_range(name: str, value, low: float, high: float) -> None:
    """Fail unless ``low <= value <= high``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name}={value!r} must be a number in [{low}, {high}]")
