"""What one request carries through the guard: its facts (`Call`), the listing its
decisions belong to, and the denials the guard itself makes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from guard.events import DecisionEvent
from guard.policy.model import Decision, Principal, Reason

if TYPE_CHECKING:
    from guard.policy.policyset import PolicySet

__all__ = ["EMPTY", "NO_SPAN", "Call", "Listing", "cancelled_decision", "error_decision"]

EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})

# The request contexts conditions see, one read-only object per place (transport, session,
# server): requests from one place share it, and the audit writer encodes it once a batch.
_MAX_CONTEXTS: Final = 1024
_contexts: dict[tuple[str, str | None, str | None], Mapping[str, Any]] = {}


def _context(transport: str, session_id: str | None, server: str | None) -> Mapping[str, Any]:
    key = (transport, session_id, server)
    context = _contexts.get(key)
    if context is None:
        if len(_contexts) >= _MAX_CONTEXTS:
            _contexts.clear()  # many sessions: start over, stay bounded
        context = _contexts[key] = MappingProxyType(
            {"transport": transport, "session_id": session_id, "server": server}
        )
    return context


class Call:
    """Per-request facts shared by every decision the request makes (one for a call,
    one per component for a list): resolved once, before deciding. `policies` and
    `shadow` are the sets in force when the request began: every decision of a listing
    is made by the same set, even across a reload."""

    __slots__ = (
        "cancelled",
        "context",
        "denial",
        "durable_span",
        "now",
        "policies",
        "principal",
        "request_id",
        "server",
        "session_id",
        "shadow",
        "transport",
    )

    def __init__(
        self,
        principal: Principal,
        denial: Decision | None,
        now: datetime,
        transport: str,
        session_id: str | None,
        request_id: str | None,
        server: str | None,
        policies: PolicySet,
        shadow: PolicySet | None,
    ) -> None:
        self.principal = principal
        self.denial = denial
        self.now = now
        self.transport = transport
        self.session_id = session_id
        self.request_id = request_id
        self.server = server
        self.policies = policies
        self.shadow = shadow
        self.context = _context(transport, session_id, server)
        # durable mode: the span of a call allowed and recorded, observed by `_await_durable`
        # once the record is on disk (or the call is denied)
        self.durable_span: Any = None
        # what cancelled the request before it was decided (see `cancel`)
        self.cancelled: BaseException | None = None

    def cancel(self, exc: BaseException, where: str) -> None:
        """The request was cancelled (`exc`: its caller left, or the task running it was
        cancelled) while `where`, before it was decided. Nothing more is awaited for it:
        it is decided as a denial (unless already denied), recorded and observed like any
        other, and then `exc` goes on (`Deciding._decide`, `ListingFilter._filter`)."""
        self.cancelled = exc
        self.denial = self.denial or cancelled_decision(where)


class NoSpan:
    """The span handle of a decision that could not be observed."""

    __slots__ = ()
    trace_id = ""
    span_id = ""


NO_SPAN: Final = NoSpan()


@dataclass(slots=True)
class Listing:
    """The decisions of one list request, recorded and observed together: its id and
    each component's event."""

    id: str
    events: list[DecisionEvent]


def error_decision(where: str) -> Decision:
    """A denial for an error inside the guard while `where`; the record's `errors` says
    where (a policy's own errors are a condition's text), never the exception's text."""
    text = f"guard error while {where}"
    return Decision(allowed=False, reason=Reason.ERROR, errors=(text,), message=text)


def cancelled_decision(where: str) -> Decision:
    """A denial for a request cancelled while `where`, before it was decided; the record's
    `errors` says where."""
    text = f"cancelled while {where}"
    return Decision(allowed=False, reason=Reason.CANCELLED, errors=(text,), message=text)
