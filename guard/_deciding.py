"""How `GuardMiddleware` decides one request: who is calling (`_begin`), the decision
made, recorded and observed (`_decide`), and its enforcement (`_enforce`): a denial
becomes an MCP error, an allowed call's outcome a record.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from uuid import uuid4

from fastmcp.exceptions import (
    AuthorizationError,
    FastMCPError,
    NotFoundError,
    PromptError,
    ResourceError,
    ToolError,
)
from fastmcp.server.middleware import CallNext, MiddlewareContext

from guard._fastmcp import current_transport, request_info, requested_version, session_of
from guard._ids import uuid7
from guard._request import NO_SPAN, Call, Listing, error_decision

# shorter ASCII names cannot hold a credential's shape, nor be too long to show
from guard.audit.redact import _MIN_SECRET_LEN as _SHORT_NAME
from guard.audit.redact import SECRET_MARK, Redactor
from guard.errors import AuthenticationError
from guard.events import DecisionEvent
from guard.policy.model import (
    UNKNOWN_COMPONENT,
    AccessRequest,
    Decision,
    Principal,
    Reason,
    Resource,
)

if TYPE_CHECKING:
    from guard.audit.log import AuditLog
    from guard.identity.base import Authenticator
    from guard.reload import PolicyHolder
    from guard.telemetry import Telemetry

__all__ = [
    "Absent", "CancelledBeforeRun", "Deciding", "DeniedByAnother", "UndurableDecision",
    "UnobservedDecision",
]  # fmt: skip

logger = logging.getLogger("guard.middleware")

# A JSON-RPC id (a session id, a declared agent id) is the client's to choose: a string
# longer than this is recorded (and traced) as its length and digest.
_MAX_CLIENT_TEXT_CHARS: Final = 256


# the cacheable MCP results (SEP-2549) whose content the guard decides per caller
_PER_CALLER: Final = (
    "tools/list", "resources/list", "resources/templates/list", "prompts/list", "resources/read",
)  # fmt: skip

# what FastMCP raises for an exception of a handler, that exception as its cause
_WRAPPERS: Final = (ToolError, ResourceError, PromptError)

# the outcome of a call answered with an error result: the class a tool's own `ToolError`
# is recorded as, since FastMCP sends that one as the same result
_ERROR_RESULT: Final = ToolError("error result")

_DURABLE_TIMEOUT_S = 10.0  # how long a durable record may take before the call is denied


class UnobservedDecision(Exception):
    """The outcome of an allowed call the guard did not run: its decision could not be
    observed (a `Telemetry` raised after the record was queued)."""


class UndurableDecision(Exception):
    """The outcome of an allowed call the guard did not run: in durable mode, its decision
    record did not reach the disk in time."""


class CancelledBeforeRun(Exception):
    """The outcome of an allowed call the guard did not run: in durable mode, its caller
    cancelled it while its decision record was being made durable."""


class DeniedByAnother(Exception):
    """The outcome of an allowed decision whose request did not run: another decision of
    the same request denied it (a read decided on two components, see `_read_event`)."""


class Absent(NotFoundError, FastMCPError):
    """A denial answered as absence: FastMCP's "not found", which its wire handlers word
    exactly as for a component that does not exist. Also a `FastMCPError`, which FastMCP
    passes through a component as it is: behind a mount (a guarded server mounted into
    another), a bare `NotFoundError` from the child's guard became the parent's "Error
    calling tool 'ns_x': Unknown tool: 'x'" (-32603 for reads and prompts), which names
    the component a missing one would not. Logged like a missing component: not at all.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, log_level=logging.DEBUG)


class Deciding:
    """`GuardMiddleware`'s decisions, on its state (set up by `GuardMiddleware.__init__`)."""

    audit: AuditLog | None
    explicit_denials: bool
    server_name: str | None
    _authenticator: Authenticator | None
    _principal: Principal | None
    _fixed: Principal
    _auth_method: str
    _telemetry: Telemetry
    _session_shown: tuple[str, str]
    _cached_for: Any  # the server whose cache hints were last made private
    _holder: PolicyHolder
    _durable_calls: bool
    _redactor: Redactor

    def _cache_privately(self, server: Any) -> None:
        """Serve `server`'s cacheable results that the guard answers per caller as
        `private`. MCP 2026-07-28 results carry caching hints: `FastMCP(cache_ttl=...,
        cache_scope="public")` marks them shareable across callers, and a shared cache (a
        gateway) may then serve one caller's listing, or a read the guard allowed for one
        caller, to another. The operator's TTL stands. (A guard on a mounted server cannot
        reach its parent's hints: the parent's server answers on the wire.)"""
        self._cached_for = server
        try:
            hints = server._mcp_server.cache_hints
            public = [m for m in _PER_CALLER if getattr(hints.get(m), "scope", "") == "public"]
            for method in public:
                hints[method] = replace(hints[method], scope="private")
        except Exception as exc:  # FastMCP's internals moved: nothing known to change
            logger.debug("cache hints of %r not checked: %r", server, exc)
            return
        if public:
            logger.warning(
                "server %r marks %s results cacheable across callers (cache_scope=\"public\"); "
                "the guard answers them per caller, so they are served as private",
                getattr(server, "name", "?"), ", ".join(public),
            )  # fmt: skip

    def _guard_error(self, where: str) -> None:
        self._quietly(self._telemetry.guard_error, where)

    @staticmethod
    def _quietly(count: Callable[..., Any], *args: Any) -> None:
        """Count something on the telemetry; if that raises, the request goes on as it
        was going (denied, and recorded): a counter must not turn a denial that looks
        like absence into an internal error."""
        try:
            count(*args)
        except Exception:
            logger.warning("telemetry raised in %s", getattr(count, "__name__", "?"))

    async def _begin(self, context: MiddlewareContext[Any]) -> Call:
        now = datetime.now(UTC)  # one clock value for every decision of this request
        transport = "unknown"  # until known: never taken for a local caller
        fctx = context.fastmcp_context
        session_id = request_id = None
        server = self.server_name
        denial = None
        cancelled: BaseException | None = None
        principal = self._fixed
        try:
            transport = current_transport()
            if fctx is not None:
                rc = fctx.request_context
                if rc is not None:
                    request_id = str(rc.request_id)
                    # the client's own string: maybe anything (a digit string too: any length)
                    if not (
                        len(request_id) <= 20 and request_id.isascii() and request_id.isdigit()
                    ):
                        request_id = self._client_text(request_id)
                    try:
                        session_id = session_of(fctx, rc)
                    except RuntimeError:
                        session_id = None
                    if session_id is not None:
                        # FastMCP falls back to the client's `mcp-session-id` header, unchecked;
                        # a session's requests repeat it: checked once while it repeats
                        seen, shown = self._session_shown
                        if session_id != seen:
                            shown = self._client_text(session_id)
                            self._session_shown = (session_id, shown)
                        session_id = shown
                fastmcp = fctx.fastmcp
                if fastmcp is not self._cached_for:
                    self._cache_privately(fastmcp)
                if server is None:
                    server = fastmcp.name
            if self._authenticator is not None and (
                self._principal is None or transport not in ("stdio", "memory")
            ):
                principal = await self._authenticator.authenticate(
                    request_info(transport, session_id)
                )
                if not isinstance(principal, Principal):
                    raise TypeError("authenticator returned a non-Principal")
                agent = principal.agent_id
                if isinstance(agent, str) and (len(agent) >= _SHORT_NAME or not agent.isascii()):
                    # maybe the caller's own text (`X-Agent-Id`, when nothing verified names
                    # an agent): decided, recorded and traced bounded and secret-free
                    shown = self._client_text(agent)
                    if shown is not agent:
                        principal = replace(principal, agent_id=shown)
        except AuthenticationError as exc:
            principal = Principal.anonymous(self._auth_method)
            denial = Decision(allowed=False, reason=exc.reason, message="authentication failed")
            self._quietly(self._telemetry.auth_failure, self._auth_method, exc.reason)
        except Exception as exc:
            principal = Principal.anonymous(self._auth_method)
            denial = error_decision("authenticating")
            self._guard_error("authenticate")
            # the exception text may quote a credential: log its type only
            logger.warning("authenticator raised %s; denying", type(exc).__name__)
        except BaseException as exc:
            # Cancelled (a slow JWKS fetch outlasted its client): still an attempt, recorded
            # and observed as a denial by whoever decides it; then the cancellation goes on.
            # Not an authentication failure: no credential was judged.
            principal = Principal.anonymous(self._auth_method)
            cancelled = exc
        holder = self._holder
        call = Call(
            principal, denial, now, transport, session_id, request_id, server,
            holder.live, holder.shadow,
        )  # fmt: skip
        if cancelled is not None:
            call.cancel(cancelled, "authenticating")
        return call

    def _new_id(self) -> tuple[str, bool]:
        """A new decision (or listing) id, and whether it is one: when `uuid7` fails, a
        random UUID stands in, so that the denial this failure causes is still recorded."""
        try:
            return uuid7(), True
        except Exception:
            self._guard_error("record")
            return str(uuid4()), False

    def _client_text(self, text: str) -> str:
        """A string the client chose (a request, session or declared agent id) as it may be
        recorded and traced: bounded, secret-free."""
        try:
            return self._redactor.text(text, _MAX_CLIENT_TEXT_CHARS)
        except Exception:  # what cannot be cleaned is not shown
            return SECRET_MARK

    def _decide(
        self,
        call: Call,
        resource: Resource,
        action: str,
        args: Mapping[str, Any],
        method: str,
        listing: Listing | None = None,
        listing_handle: Any = None,
    ) -> DecisionEvent:
        """Decide, record and observe; a component of a `listing` is recorded and observed
        with the whole listing (`_filter`), under its `listing_handle` (None: the listing
        could not be observed). A request cancelled before this (`call.cancelled`) is
        denied, recorded and observed, and then its cancellation is raised again."""
        telemetry = self._telemetry
        policies = call.policies
        shadow_set = call.shadow
        observed = True
        if listing is not None:
            handle = NO_SPAN if listing_handle is None else listing_handle
            observed = listing_handle is not None
            trace_id, span_id = handle.trace_id, handle.span_id
        else:
            try:
                handle = telemetry.start_decision(
                    method, resource.name if resource.found else UNKNOWN_COMPONENT
                )
                # a handle without its ids (a `Telemetry` returning None) cannot be observed
                trace_id, span_id = handle.trace_id, handle.span_id
            except Exception:
                handle, observed = NO_SPAN, False
                trace_id = span_id = ""
        # positional: keywords cost a third of a microsecond more per object, and a list
        # of 100 tools makes 100 of each (order: see AccessRequest and DecisionEvent)
        request = AccessRequest(
            call.principal, resource, action, args, call.now, method, call.context
        )
        shadow = None
        try:
            if call.denial is not None:
                decision = replace(call.denial, policy_hash=policies.hash)
                if shadow_set is not None:
                    shadow = replace(call.denial, policy_hash=shadow_set.hash)
            else:
                decision = policies.decide(request)
        except Exception:
            decision = replace(error_decision("deciding"), policy_hash=policies.hash)
            self._guard_error("decide")
        if shadow_set is not None and call.denial is None:
            try:
                shadow = shadow_set.decide(request)
            except Exception:  # the draft never affects enforcement, even when it breaks
                shadow = replace(error_decision("deciding"), policy_hash=shadow_set.hash)
                self._guard_error("shadow")
        hidden: tuple[str, ...] = ()
        if resource.uri is not None:
            # Observed and recorded without what the caller's URI may carry (a template
            # parameter that is a token, `user:pass@`, `?token=`): decided on as sent.
            shown = self._shown(resource, args)
            if shown is not resource:
                request = AccessRequest(
                    call.principal, shown, action, args, call.now, method, call.context
                )
                hidden = Redactor.fields(resource, shown)
        elif not resource.found and (
            len(resource.name) >= _SHORT_NAME or not resource.name.isascii()
        ):
            # a component the server does not have: its name is the caller's text, shown
            # (traced, logged, recorded) bounded and without what looks like a credential
            shown = self._shown_name(resource)
            if shown is not resource:
                request = AccessRequest(
                    call.principal, shown, action, args, call.now, method, call.context
                )
                hidden = Redactor.fields(resource, shown)
        identified = True
        if listing is None:
            decision_id, identified = self._new_id()
        else:  # a component of a listing: the listing's id and its position in it
            decision_id = f"{listing.id}.{len(listing.events) + 1}"
        event = DecisionEvent(
            decision_id, request, decision, shadow, call.server, call.transport,
            call.session_id, call.request_id, method, trace_id, span_id, hidden,
        )  # fmt: skip
        if not identified:  # recorded under a stand-in id, as the denial it is
            event.decision = replace(error_decision("identifying"), policy_hash=policies.hash)
        if not observed:
            # An unobservable decision is not enforced as an allow (fail closed), but it is
            # still recorded.
            event.decision = replace(error_decision("observing"), policy_hash=policies.hash)
            self._guard_error("observe")
        queued = False
        if listing is not None:
            listing.events.append(event)
            return event
        if self.audit is not None:
            try:
                queued = self.audit.append(event)  # queued before the handler runs
            except Exception:  # `append` promises not to raise; if it does, deny
                queued = False
            if queued is not True:  # a decision that cannot be recorded is not an allow
                event.decision = replace(error_decision("recording"), policy_hash=policies.hash)
                self._guard_error("record")
        # Observed last, so the span and metrics carry the decision enforced (a call that
        # could not be recorded counts as the denial it is).
        if observed:
            if queued and self._durable_calls and method == "tools/call" and event.decision.allowed:
                # ... in durable mode, once the record is on disk: a call whose record
                # does not get there in time is denied (`_await_durable`)
                call.durable_span = handle
                return event
            try:
                telemetry.end_decision(handle, event)
            except Exception:
                event.decision = replace(error_decision("observing"), policy_hash=policies.hash)
                self._guard_error("observe")
                if queued:  # its record says what was decided: say the call did not run
                    self._outcome(event, time.perf_counter_ns(), UnobservedDecision())
        if call.cancelled is not None:
            raise call.cancelled
        return event

    def _shown_name(self, resource: Resource) -> Resource:
        try:
            name = self._redactor.text(resource.name)
        except Exception:  # what cannot be cleaned is not shown
            name = SECRET_MARK
        return resource if name is resource.name else replace(resource, name=name)

    def _shown(self, resource: Resource, args: Mapping[str, Any]) -> Resource:
        try:
            shown: Resource = self._redactor.resource(resource, args)
        except Exception:  # what cannot be cleaned is not shown (nor recorded: append fails)
            name = SECRET_MARK if resource.name == resource.uri else resource.name
            shown = replace(resource, uri=SECRET_MARK, name=name)
        return shown

    def _denied(
        self, kind: str, name: str, decision: Decision, meta: Mapping[str, Any] | None = None
    ) -> Exception:
        if not self.explicit_denials:
            # Exactly what FastMCP answers for a component that does not exist, so a
            # denial does not confirm that a hidden component is there.
            label = {"tool": "tool", "resource": "resource", "prompt": "prompt"}[kind]
            # ... down to a read of a version (the request's `meta` asks for it): FastMCP
            # names the version a resource is missing in. Its wire handler rewords both,
            # but a middleware outside the guard and an in-process caller see this text.
            version = requested_version(meta) if kind == "resource" else None
            asked = "" if version is None else f" version {version!r}"
            return Absent(f"Unknown {label}: {name!r}{asked}")
        if decision.rule:
            why = f" by rule {decision.rule!r}"
        elif decision.reason == Reason.DEFAULT:
            why = " by default"
        else:  # authentication failed, guard error, no policy: the reason says it all
            why = ""
        if why and decision.policy:
            why += f" of policy {decision.policy!r}"
        return AuthorizationError(f"Access to {kind} {name!r} denied{why} ({decision.reason})")

    def _outcome(self, event: DecisionEvent, t0: int, error: BaseException | None) -> None:
        if self.audit is None:
            return
        duration_us = (time.perf_counter_ns() - t0) / 1000
        try:
            if error is None:
                self.audit.append_outcome(event.decision_id, "ok", duration_us, None)
            else:
                # FastMCP wraps what a tool, resource or prompt raises in `ToolError`,
                # `ResourceError`, `PromptError`: the handler's own class says more (one of
                # these the handler raised itself has no cause, and stays one)
                cause = error.__cause__ if isinstance(error, _WRAPPERS) else None
                self.audit.append_outcome(
                    event.decision_id, "error", duration_us, type(cause or error).__name__
                )
        except Exception:
            self._guard_error("outcome")

    async def _enforce(
        self,
        context: MiddlewareContext[Any],
        call_next: CallNext[Any, Any],
        event: DecisionEvent,
        kind: str,
        name: str,
        also: tuple[DecisionEvent, ...] = (),
    ) -> Any:
        """Deny, or run the handler and record its outcome for `event` (and for `also`, the
        allowed decisions of the same request made before it)."""
        if not event.decision.allowed:
            for earlier in also:  # its record says allowed: say the request did not run
                self._outcome(earlier, time.perf_counter_ns(), DeniedByAnother())
            raise self._denied(kind, name, event.decision, getattr(context.message, "meta", None))
        t0 = time.perf_counter_ns()
        try:
            result = await call_next(context)
        except BaseException as exc:
            self._outcome(event, t0, exc)
            for earlier in also:
                self._outcome(earlier, t0, exc)
            raise
        # A tool may fail by answering an error result instead of raising (a proxy passes
        # its backend's failures on so): its caller gets an error, and so does the record.
        failed = _ERROR_RESULT if getattr(result, "is_error", False) is True else None
        self._outcome(event, t0, failed)
        for earlier in also:
            self._outcome(earlier, t0, failed)
        return result

    async def _await_durable(self, event: DecisionEvent, handle: Any) -> None:
        """Durable mode: wait until the allowed call's record is on disk, then observe the
        decision. A record that cannot be made durable in time is a guard failure: the
        call is denied, and observed (span, metrics) as that denial."""
        assert self.audit is not None  # a durable span is only kept for a queued record
        policy_hash = event.decision.policy_hash
        failure: Exception | None = None
        try:
            durable = await self.audit.wait_durable(event.decision_id, timeout=_DURABLE_TIMEOUT_S)
        except Exception:  # the wait broke: not known to be on disk
            durable = False
        except BaseException as exc:  # cancelled: the caller left, nothing ran
            self._quietly(self._telemetry.end_decision, handle, event)
            # its record says allowed: without an outcome it would read as a call that
            # was running when the server died
            self._outcome(event, time.perf_counter_ns(), CancelledBeforeRun(type(exc).__name__))
            raise
        if not durable:
            logger.warning(
                "decision %s: its record is not on disk (durable mode); the call is denied",
                event.decision_id,
            )
            event.decision = replace(error_decision("recording durably"), policy_hash=policy_hash)
            self._guard_error("record")
            failure = UndurableDecision()
        try:
            self._telemetry.end_decision(handle, event)
        except Exception:
            event.decision = replace(error_decision("observing"), policy_hash=policy_hash)
            self._guard_error("observe")
            failure = failure or UnobservedDecision()
        if failure is not None:  # its record says allowed: the outcome says it did not run
            self._outcome(event, time.perf_counter_ns(), failure)
