"""Bounds the records and the conditions share: a live decision and the replay of its
record must see the same values, so what a record cuts, a condition treats as unknown
at the same point."""

from __future__ import annotations

from typing import Final

__all__ = ["HUGE_INT", "LEAST_INT", "MAX_DEPTH"]

# Mappings and lists nested deeper than this (below the arguments, claims, meta or
# context) are recorded as a marker, and are unknown to conditions.
MAX_DEPTH: Final = 100
# An integer this far from 0 has more digits (over 3,600) than a record holds, near
# Python's limit on turning one into text (4,300 digits). A power of ten: the README's
# bound is in digits (2**12000 let 3,612 through).
HUGE_INT: Final = 10**3600
LEAST_INT: Final = -HUGE_INT  # (negated once here: each negation makes a 1.5 KB int)
