"""One error hierarchy for MCP Guard.

Every error the library raises on purpose derives from `GuardError`, so callers can
catch the guard's failures without catching everything else.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AuditError",
    "AuthenticationError",
    "GuardClosedError",
    "GuardError",
    "PolicyError",
    "PolicyProblem",
]


class GuardError(Exception):
    """Base class of every error raised by MCP Guard."""


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One problem found while loading a policy.

    Attributes:
        message: what is wrong, in one sentence.
        source: file path, or ``<text>`` / ``<dict>`` for in-memory sources.
        line: 1-based line in the source, when known.
        field: dotted path of the offending field, e.g. ``rules[2].tools.pattern``.
        hint: how to fix it, e.g. ``did you mean `patterns`?``.
        code: stable machine-readable code, e.g. ``unknown_key``.
    """

    message: str
    source: str = "<policy>"
    line: int | None = None
    field: str | None = None
    hint: str | None = None
    code: str = "invalid"

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        text = f"{where}: {self.field + ': ' if self.field else ''}{self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class PolicyError(GuardError):
    """A policy could not be loaded; `problems` lists every problem found, not just the first."""

    def __init__(self, problems: list[PolicyProblem] | PolicyProblem | str) -> None:
        if isinstance(problems, str):
            problems = [PolicyProblem(problems)]
        elif isinstance(problems, PolicyProblem):
            problems = [problems]
        self.problems: tuple[PolicyProblem, ...] = tuple(problems)
        lines = [str(p) for p in self.problems]
        head = lines[0] if len(lines) == 1 else f"{len(lines)} problems in policy:"
        super().__init__(head if len(lines) == 1 else "\n  ".join([head, *lines]))


class AuthenticationError(GuardError):
    """The caller could not be authenticated.

    `reason` is a short, bounded code used in records and metrics (`missing_credentials`,
    `invalid_token`, `expired`, `untrusted_proxy`, ...). The message never contains a secret.
    """

    def __init__(self, reason: str, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(message or reason)


class GuardClosedError(GuardError, RuntimeError):
    """A closed guard was asked to change its policies: after `close()` they stay as they
    were (its watcher stopped, its policy set no longer reported)."""


class AuditError(GuardError):
    """The audit store could not be opened, read or verified."""
