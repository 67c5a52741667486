"""The answer, in mcp-auth-guard's words: `AuthDecision` and `DecisionReason`.

`AuthDecision` carries mcp-auth-guard's fields and, in `decision`, the guard's own
`Decision`, which explains more (every matched rule, errors met, the policy set's hash).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from guard.policy.model import Decision, Reason

__all__ = ["AuthDecision", "DecisionReason"]


class DecisionReason(StrEnum):
    """mcp-auth-guard's decision reasons."""

    RULE_MATCHED = "rule_matched"
    DEFAULT_EFFECT = "default_effect"
    AUTHENTICATION_FAILED = "authentication_failed"
    INVALID_TOKEN = "invalid_token"  # noqa: S105 - a reason code, not a secret
    MISSING_CLAIMS = "missing_claims"
    TOOL_NOT_FOUND = "tool_not_found"
    CONDITION_FAILED = "condition_failed"


# the guard's bounded reason codes -> mcp-auth-guard's; anything else is an auth failure
_REASONS: Final = {
    Reason.RULE: DecisionReason.RULE_MATCHED,
    Reason.DEFAULT: DecisionReason.DEFAULT_EFFECT,
    Reason.NO_POLICY: DecisionReason.DEFAULT_EFFECT,
    Reason.UNAUTHENTICATED: DecisionReason.AUTHENTICATION_FAILED,
    Reason.ERROR: DecisionReason.CONDITION_FAILED,
    Reason.CANCELLED: DecisionReason.CONDITION_FAILED,  # not decided, as an error is not
    "invalid_token": DecisionReason.INVALID_TOKEN,
    "expired": DecisionReason.INVALID_TOKEN,
    "missing_claims": DecisionReason.MISSING_CLAIMS,
}


@dataclass(kw_only=True, slots=True)
class AuthDecision:
    """An authorization decision as mcp-auth-guard reported it.

    Attributes:
        allowed: the verdict.
        reason: why, as a `DecisionReason`.
        matched_rule: the deciding rule's name, if a rule decided.
        message: a human-readable explanation.
        evaluated_rules: how many rules were examined.
        evaluation_time_ms: time spent deciding, milliseconds.
        decision: the guard's full `Decision`.
    """

    allowed: bool
    reason: DecisionReason
    matched_rule: str | None = None
    message: str | None = None
    evaluated_rules: int = 0
    evaluation_time_ms: float | None = None
    decision: Decision | None = None

    @classmethod
    def from_decision(cls, decision: Decision) -> AuthDecision:
        """Translate the guard's `Decision` into mcp-auth-guard's shape."""
        reason = _REASONS.get(decision.reason, DecisionReason.AUTHENTICATION_FAILED)
        if decision.message:
            message = decision.message
        elif decision.rule is not None:
            message = f"Matched rule: {decision.rule}"
        else:
            message = f"Decided by {decision.reason}"
        return cls(
            allowed=decision.allowed,
            reason=reason,
            matched_rule=decision.rule,
            message=message,
            evaluated_rules=decision.rules_evaluated,
            evaluation_time_ms=decision.eval_us / 1000.0,
            decision=decision,
        )
