"""Parameter validation shared by configs and chapters.

Every check raises ``ValueError`` whose message names the parameter, its value and what is
allowed, so that a chapter run by papermill with a bad value stops at once with a readable
error. The rules (:class:`Int`, :class:`Real`, :class:`ListOf`, ...) are small callables
``rule(name, value) -> normalised value``; :func:`gather` runs many and reports every failure
in one message, so a run with three bad values needs one retry, not three.
"""
from __future__ import annotations

import ast
import math
import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MAX_SEED = 2**32 - 1  # numpy and torch accept every seed in [0, 2**32 - 1]


def _fmt(x) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _interval(low, high, low_open=False, high_open=False) -> str:
    if high is None:
        return f"{'>' if low_open else '>='} {_fmt(low)}"
    return f"in {'(' if low_open else '['}{_fmt(low)}, {_fmt(high)}{')' if high_open else ']'}"


def _why(why: str) -> str:
    return f" ({why})" if why else ""


@dataclass(frozen=True)
class Int:
    """An integer (not a bool, not a float such as 3.0) in ``[low, high]``."""

    low: int = 0
    high: int | None = None
    why: str = ""

    def __call__(self, name: str, value) -> int:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if not ok or value < self.low or (self.high is not None and value > self.high):
            raise ValueError(f"{name}={value!r} must be an integer "
                             f"{_interval(self.low, self.high)}{_why(self.why)}")
        return int(value)


@dataclass(frozen=True)
class Real:
    """A finite real number (never NaN or infinity) in the stated interval."""

    low: float = 0.0
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    why: str = ""

    def __call__(self, name: str, value) -> float:
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
        ok = ok and (value > self.low if self.low_open else value >= self.low)
        if ok and self.high is not None:
            ok = value < self.high if self.high_open else value <= self.high
        if not ok:
            where = _interval(self.low, self.high, self.low_open, self.high_open)
            raise ValueError(f"{name}={value!r} must be a finite number {where}{_why(self.why)}")
        return float(value)


@dataclass(frozen=True)
class Choice:
    """One of ``allowed``."""

    allowed: tuple

    def __call__(self, name: str, value):
        if isinstance(value, (list, dict, set)) or value not in self.allowed:
            raise ValueError(f"{name}={value!r} is not allowed; choose one of {self.allowed}")
        return value


@dataclass(frozen=True)
class Maybe:
    """``None`` (documented as "use the derived default"), or a value passing ``rule``."""

    rule: Callable

    def __call__(self, name: str, value):
        return None if value is None else self.rule(name, value)


@dataclass(frozen=True)
class ListOf:
    """A non-empty list of distinct items, each passing ``rule``; returned as a tuple.

    papermill's ``-p name value`` cannot pass a list, only its text, so a string is read as a
    Python literal (``-p ks "[2, 3]"``); a lone number is an error, not a one-item list.
    """

    rule: Callable
    max_len: int = 1000

    def __call__(self, name: str, value) -> tuple:
        if isinstance(value, str):
            value = _literal(name, value)
        if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= self.max_len:
            raise ValueError(f"{name}={value!r} must be a non-empty list of at most "
                             f"{self.max_len} items")
        out = tuple(self.rule(f"{name}[{i}]", v) for i, v in enumerate(value))
        if len(set(out)) < len(out):
            raise ValueError(f"{name}={value!r} must not repeat a value")
        return out


def _literal(name: str, text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ValueError(f"{name}={text!r} must be a non-empty list such as [1, 2]") from None


def gather(checks: Iterable[Callable[[], object]]) -> list:
    """Run every check; raise one ``ValueError`` listing all failures, else return results."""
    results, errors = [], []
    for check in checks:
        try:
            results.append(check())
        except ValueError as err:
            errors.append(str(err))
    if len(errors) == 1:
        raise ValueError(errors[0])
    if errors:
        raise ValueError(f"{len(errors)} bad parameters:\n  " + "\n  ".join(errors))
    return results


def check_order(low_name: str, low, high_name: str, high) -> None:
    """Fail unless ``low <= high`` (e.g. the fixed-point threshold at most the slow-point one)."""
    if not low <= high:
        raise ValueError(f"{low_name}={low!r} must be at most {high_name}={high!r}")


# ---- the original helpers, kept for the modules that use them ---------------------------

def check_choice(name: str, value, allowed: Iterable) -> None:
    """Fail unless ``value`` is one of ``allowed``."""
    Choice(tuple(allowed))(name, value)


def check_choices(name: str, values, allowed: Iterable) -> None:
    """Fail unless ``values`` is a non-empty sequence drawn from ``allowed``."""
    allowed = tuple(allowed)
    if isinstance(values, str) or not hasattr(values, "__len__") or len(values) == 0:
        raise ValueError(f"{name}={values!r} must be a non-empty list drawn from {allowed}")
    for v in values:
        if v not in allowed:
            raise ValueError(f"{name} contains {v!r}; allowed values are {allowed}")


def check_positive(name: str, value, integer: bool = False, allow_zero: bool = False) -> None:
    """Fail unless ``value`` is a finite positive (or non-negative) number, optionally an int."""
    if integer:
        Int(0 if allow_zero else 1)(name, value)
    else:
        Real(0.0, None, low_open=not allow_zero)(name, value)


def check_range(name: str, value, low: float, high: float) -> None:
    """Fail unless ``value`` is a finite number with ``low <= value <= high``."""
    Real(low, high)(name, value)
