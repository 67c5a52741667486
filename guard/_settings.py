"""Checks of configuration values, made where a setting is given, naming it.

A setting that is not a number, or NaN or infinite, compares False with everything: as a
bound it bounds nothing (a token leeway of NaN let expired tokens in), as an interval it
stops the thread that waits on it. One string where a list is expected is its letters, and
a string where a switch is expected is on, `"no"` and `"false"` included.
Such values are refused at construction, with the parameter's name and never its value
when it could be a secret (these checks only see numbers and names).
"""

from __future__ import annotations

import math
import numbers
import threading
from collections.abc import Iterable
from typing import Final

__all__ = ["MAX_WAIT", "MIN_WAIT", "flag", "names", "one_or_more", "seconds", "whole"]

MAX_WAIT: Final = float(threading.TIMEOUT_MAX)
"""The longest interval a thread can wait on (`threading.Event.wait`)."""

MIN_WAIT: Final = 0.001
"""The shortest interval a thread polls at: at 1e-9 s an idle one spins, taking a third of
a core (and the GIL) from the requests."""


def seconds(
    name: str,
    value: object,
    *,
    positive: bool = False,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float:
    """`value` as a finite number of seconds `>= 0` (`> 0` if `positive`), within
    `minimum` and `maximum` if given, else `TypeError` / `ValueError` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number of seconds, got {number}")
    if number < 0 or (positive and number == 0):
        wanted = "positive" if positive else ">= 0"
        raise ValueError(f"{name} must be {wanted}, got {number}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be at least {minimum:g} seconds, got {number:g}")
    if maximum is not None and number > maximum:
        raise ValueError(f"{name} must be at most {maximum:g} seconds, got {number:g}")
    return number


def flag(name: str, value: object) -> bool:
    """`value` if it is `True` or `False`, else a `TypeError` naming `name` (`"no"` is
    truthy, `""` falsy: a switch read from configuration text means what it does not say)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, not {type(value).__name__}")
    return value


def whole(name: str, value: object, *, minimum: int = 1) -> int:
    """`value` as an integer `>= minimum`, else `TypeError` / `ValueError` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    if value < minimum:
        wanted = "positive" if minimum == 1 else f"at least {minimum}"
        raise ValueError(f"{name} must be {wanted}, got {value}")
    return int(value)


def names(name: str, value: Iterable[str]) -> tuple[str, ...]:
    """`value` as a tuple of strings; one string (a sequence of its letters) or an item
    that is not a string is a `TypeError` naming `name`."""
    if isinstance(value, str | bytes):
        raise TypeError(f"{name} must be a list of strings, not one string")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name} must be a list of strings, not of {type(item).__name__}")
    return items


def one_or_more(name: str, value: str | Iterable[str]) -> tuple[str, ...]:
    """`value` as a tuple of strings, one string being one item (where that can mean
    nothing else, as a claim name); an item that is not a string is a `TypeError`."""
    return (value,) if isinstance(value, str) else names(name, value)
