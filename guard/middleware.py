"""`GuardMiddleware`: the one place where an MCP request meets the guard.

For every request it finds out who is calling, decides, observes, and enforces, in that
order and nothing more: policy logic lives in `PolicySet.decide`, FastMCP plumbing in
`guard._fastmcp`, hot reload in `guard.reload`, records in `guard.audit`, spans and
metrics in `guard.telemetry`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from fastmcp.exceptions import AuthorizationError, NotFoundError
from fastmcp.resources.template import ResourceTemplate
from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.server.middleware.authorization import _requested_version
from fastmcp.server.middleware.middleware import _dispatch_phase
from fastmcp.server.providers.addressing import parse_hashed_backend_name

from guard._fastmcp import (
    LookupCache,
    ResourceCache,
    current_transport,
    reached_uri,
    read_target,
    request_info,
    session_of,
    visibility_scope,
)
from guard._ids import uuid7
from guard._listing import Answered, ListingFilter
from guard._request import EMPTY, NO_SPAN, Call, Listing, error_decision
from guard.audit.log import DEFAULT, resolve_audit

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
from guard.reload import PolicyHolder
from guard.telemetry import NoTelemetry

if TYPE_CHECKING:
    from guard.identity.base import Authenticator
    from guard.policy.policyset import PolicySet
    from guard.telemetry import Telemetry

__all__ = ["DEFAULT_AUDIT", "GuardMiddleware"]

logger = logging.getLogger("guard.middleware")


DEFAULT_AUDIT: Final = DEFAULT
"""`audit=` default: `$MCP_GUARD_AUDIT` if set, else `./mcp-guard-audit.duckdb`."""

# mcp-auth-guard's no-auth mode: everybody is the same authenticated anonymous user.
NO_AUTH_PRINCIPAL: Final = Principal(user_id="anonymous", authenticated=True, auth_method="none")

_DEFAULT_WATCH_INTERVAL: Final = 1.0
# A JSON-RPC id is the client's to choose: a string id longer than this is recorded (and
# traced) as its length and digest.
_MAX_REQUEST_ID_CHARS: Final = 256


_DURABLE_TIMEOUT_S = 10.0  # how long a durable record may take before the call is denied


class UnobservedDecision(Exception):
    """The outcome of an allowed call the guard did not run: its decision could not be
    observed (a `Telemetry` raised after the record was queued)."""


class UndurableDecision(Exception):
    """The outcome of an allowed call the guard did not run: in durable mode, its decision
    record did not reach the disk in time."""


# A completion reference no server can resolve (see `_on_complete`).
_NO_COMPONENT: Final = "\x00mcp-guard: denied"


def _versioned(resource: Resource, context: MiddlewareContext[Any]) -> Resource:
    """`resource`, unless the caller asked for a version it does not carry.

    A proxy's components carry no version (and the tags of the backend's newest) and pass
    the caller's `_meta`, version included, on to the backend: what runs there is not the
    component resolved here. Such a request is decided on the name and the version asked
    for alone, so no tag or namespace of another version can allow it.
    """
    spec = _requested_version(context.message.meta)
    if spec is None or (
        resource.version is not None and spec.matches(resource.version, match_none=False)
    ):
        return resource
    return Resource(resource.kind, resource.name, uri=resource.uri, version=spec.eq,
                    template=resource.template)  # fmt: skip


def _default_telemetry() -> Telemetry:
    from guard.telemetry import default_telemetry

    return default_telemetry()


class GuardMiddleware(ListingFilter, Middleware):
    """Authorize every MCP request against a `PolicySet`, and observe every decision.

    Args:
        policies: a policy file or directory, YAML text, dict, list, `PolicySpec`,
            builder output or `PolicySet` (anything `load_policies` accepts).
        authenticator: turns a request into a `Principal` (`guard.identity`). Without one,
            every caller is `principal`, or the anonymous no-auth principal.
        principal: the fixed identity used where the transport carries none (stdio,
            in-memory clients); with no authenticator it is used everywhere.
        audit: a decision store path, an `AuditLog`, or `None` for no records. Default:
            `$MCP_GUARD_AUDIT`, else `./mcp-guard-audit.duckdb`.
        shadow: a draft policy source decided next to the live one on every request and
            never enforced; its answer travels in each `DecisionEvent`.
        telemetry: a `Telemetry`; `None` picks `guard.telemetry.default_telemetry()`,
            `False` switches telemetry off.
        explicit_denials: say "denied by rule X (reason)" instead of answering a denied
            component exactly like a missing one. For debugging: it reveals what exists.
        watch: `True` (every second) or a poll interval in seconds: reload the policy
            file or directory when it changes (and the shadow draft, if it is a file or
            directory). A broken edit keeps the old set in force (or the old draft).
        server_name: the name records carry; default: the FastMCP server's name.
        lookup_ttl: seconds to remember which component a name or URI resolved to (the
            lookup costs more than deciding); a component re-registered with new tags is
            decided on its old ones for at most this long. `0` looks up every time.

    Example:
        ```python
        from fastmcp import FastMCP
        from guard import GuardMiddleware

        mcp = FastMCP("demo")
        mcp.add_middleware(GuardMiddleware("policies.yaml", audit=None))
        ```
    """

    def __init__(
        self,
        policies: Any = None,
        *,
        authenticator: Authenticator | None = None,
        principal: Principal | None = None,
        audit: Any = DEFAULT_AUDIT,
        shadow: Any = None,
        telemetry: Telemetry | bool | None = None,
        explicit_denials: bool = False,
        watch: bool | float = False,
        server_name: str | None = None,
        lookup_ttl: float = 1.0,
    ) -> None:
        if authenticator is not None and not callable(getattr(authenticator, "authenticate", None)):
            raise TypeError("authenticator must have an async authenticate(RequestInfo) method")
        if principal is not None and not isinstance(principal, Principal):
            raise TypeError(f"principal must be a guard Principal, not {type(principal).__name__}")
        self._authenticator = authenticator
        self._principal = principal
        self._fixed = principal if principal is not None else NO_AUTH_PRINCIPAL
        self._auth_method = getattr(authenticator, "method", None) or "none"
        self.explicit_denials = explicit_denials
        self.server_name = server_name
        if telemetry is None or telemetry is True:
            self._telemetry: Telemetry = _default_telemetry()
        elif telemetry is False:
            self._telemetry = NoTelemetry()
        else:
            self._telemetry = telemetry
        self._cache = ResourceCache()
        self._answered: dict[tuple[Any, ...], Answered] = {}  # see `ListingFilter`
        self._seen: dict[tuple[Any, ...], None] = {}  # listings met once
        self._session_shown: tuple[str, str] = ("", "")  # last session id and how it is shown
        self._lookups = LookupCache(lookup_ttl)
        self._typed_hooks: dict[str | None, Callable[..., Awaitable[Any]]] = {
            "tools/call": self.on_call_tool,
            "resources/read": self.on_read_resource,
            "prompts/get": self.on_get_prompt,
            "tools/list": self.on_list_tools,
            "resources/list": self.on_list_resources,
            "resources/templates/list": self.on_list_resource_templates,
            "prompts/list": self.on_list_prompts,
        }
        self.audit = resolve_audit(audit)
        # durable mode: a call runs (and is observed) once its record is on disk
        self._durable_calls = self.audit is not None and self.audit.durable
        # shows resources in spans and logs as the records show them
        self._redactor = self.audit.redactor if self.audit is not None else Redactor()
        if self.audit is not None:
            add_source = getattr(self._telemetry, "add_audit_source", None)
            if add_source is not None:  # the writer's queue depth etc. next to the decisions
                add_source(self.audit.stats)
        # The policy set in force is this guard's to report: a telemetry other guards share
        # keeps theirs (GuardTelemetry); any other `Telemetry` is told through the protocol.
        reporter = getattr(self._telemetry, "policy_reporter", None)
        self._policy_reload: Callable[[str, Any], Any] = (
            reporter() if reporter is not None else self._telemetry.policy_reload
        )
        interval = None
        if watch is not False and watch is not None and watch != 0:
            interval = _DEFAULT_WATCH_INTERVAL if watch is True else float(watch)
        try:
            self._holder = PolicyHolder(
                policies,
                shadow=shadow,
                on_change=self._policies_changed,
                on_failure=lambda kept: self._quietly(self._policy_reload, "error", kept),
                on_shadow=self._record_policies,
                watch=interval,
            )
        except BaseException:  # (the set may have been reported before the watch failed)
            self._stop_reporting()
            if self.audit is not None and self.audit is not audit:  # ours: do not leak it
                self.audit.close()
            raise

    # ------------------------------------------------------------------ policy lifecycle

    @property
    def policy_set(self) -> PolicySet:
        """The `PolicySet` in force now."""
        return self._holder.live

    @property
    def shadow_set(self) -> PolicySet | None:
        """The draft `PolicySet` decided in shadow mode, if any."""
        return self._holder.shadow

    def get_policy_names(self) -> list[str]:
        """Names of the policies in force (as mcp-auth-guard's middleware)."""
        return [p.name for p in self._holder.live.policies]

    def add_policy(self, policy: Any) -> None:
        """Add a policy (or replace the one with the same name) at runtime.

        Args:
            policy: a `PolicySpec`, builder output, `PolicyLoader` object, or any source
                `load_policies` accepts.

        Example:
            ```python
            from guard.policy import policy

            middleware.add_policy(policy("extra").allow_by_default().build())
            ```
        """
        self._holder.add(policy)

    def remove_policy(self, name: str) -> bool:
        """Remove the policy called `name`; return whether there was one."""
        return self._holder.remove(name)

    def reload_policies(self, source: Any = None) -> PolicySet:
        """Load policies again (from `source`, else from where they came) and swap them in.

        A source that does not load leaves the policy set in force untouched: the failure
        is logged with file and line (logger `guard.reload`), reported to telemetry, and
        raised as `PolicyError`.

        Example:
            ```python
            middleware.reload_policies("./updated_policies/")
            ```
        """
        return self._holder.reload(source)

    def set_shadow(self, source: Any) -> PolicySet | None:
        """Decide a new draft in shadow from now on, next to the live set and never
        enforced (`None` stops shadow mode), without restarting the server. Its texts are
        recorded, so replay and the dashboard can compare live and draft decisions. A
        draft that does not load raises `PolicyError` and changes nothing.

        Example:
            ```python
            middleware.set_shadow("./updated_policies/")
            middleware.set_shadow(None)  # back to live decisions only
            ```
        """
        return self._holder.set_shadow(source)

    def _policies_changed(self, new: PolicySet) -> None:
        self._answered.clear()  # answers of the old set (not given again: only a memo)
        self._record_policies(new)
        self._quietly(self._policy_reload, "ok", new)

    def _record_policies(self, policy_set: PolicySet) -> None:
        if self.audit is not None:
            try:
                self.audit.record_policies(policy_set)
            except Exception:  # a record store hiccup must not stop a reload
                logger.warning("could not record policy set %s", policy_set.hash[:12])

    def close(self) -> None:
        """Stop watching policies and flush decision records. Idempotent."""
        self._holder.close()
        self._stop_reporting()
        if self.audit is not None:
            self.audit.close()

    def _stop_reporting(self) -> None:
        """No policy set is in force here any more: its `mcpguard_policy_info` series goes
        with the last guard that has it in force (a telemetry outlives the guards that
        share it)."""
        release = getattr(self._policy_reload, "close", None)
        if release is not None:
            self._quietly(release)

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

    # ------------------------------------------------------------------ per request

    async def _begin(self, context: MiddlewareContext[Any]) -> Call:
        now = datetime.now(UTC)  # one clock value for every decision of this request
        transport = current_transport()
        fctx = context.fastmcp_context
        session_id = request_id = None
        server = self.server_name
        denial = None
        principal = self._fixed
        try:
            if fctx is not None:
                rc = fctx.request_context
                if rc is not None:
                    request_id = str(rc.request_id)
                    # the client's own string: maybe anything (a digit string too: any length)
                    if not (
                        len(request_id) <= 20 and request_id.isascii() and request_id.isdigit()
                    ):
                        request_id = self._request_id(request_id)
                    try:
                        session_id = session_of(fctx, rc)
                    except RuntimeError:
                        session_id = None
                    if session_id is not None:
                        # FastMCP falls back to the client's `mcp-session-id` header, unchecked;
                        # a session's requests repeat it: checked once while it repeats
                        seen, shown = self._session_shown
                        if session_id != seen:
                            shown = self._request_id(session_id)
                            self._session_shown = (session_id, shown)
                        session_id = shown
                if server is None:
                    server = fctx.fastmcp.name
            if self._authenticator is not None and (
                self._principal is None or transport not in ("stdio", "memory")
            ):
                principal = await self._authenticator.authenticate(
                    request_info(transport, session_id)
                )
                if not isinstance(principal, Principal):
                    raise TypeError("authenticator returned a non-Principal")
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
        holder = self._holder
        return Call(
            principal, denial, now, transport, session_id, request_id, server,
            holder.live, holder.shadow,
        )  # fmt: skip

    def _request_id(self, request_id: str) -> str:
        """A string request id as it may be recorded and traced: bounded, secret-free."""
        try:
            return self._redactor.text(request_id, _MAX_REQUEST_ID_CHARS)
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
        could not be observed)."""
        telemetry = self._telemetry
        policies = call.policies
        shadow_set = call.shadow
        observed = True
        if listing is not None:
            handle = NO_SPAN if listing_handle is None else listing_handle
            observed = listing_handle is not None
        else:
            try:
                handle = telemetry.start_decision(
                    method, resource.name if resource.found else UNKNOWN_COMPONENT
                )
            except Exception:
                handle, observed = NO_SPAN, False
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
        # a component of a listing: the listing's id and the component's position in it
        decision_id = uuid7() if listing is None else f"{listing.id}.{len(listing.events) + 1}"
        event = DecisionEvent(
            decision_id, request, decision, shadow, call.server, call.transport,
            call.session_id, call.request_id, method, handle.trace_id, handle.span_id, hidden,
        )  # fmt: skip
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
            if queued is False:  # a decision that cannot be recorded is not an allow
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
                    self._outcome(event, time.perf_counter(), UnobservedDecision())
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

    def _denied(self, kind: str, name: str, decision: Decision) -> Exception:
        if not self.explicit_denials:
            # Exactly what FastMCP answers for a component that does not exist, so a
            # denial does not confirm that a hidden component is there.
            label = {"tool": "tool", "resource": "resource", "prompt": "prompt"}[kind]
            return NotFoundError(f"Unknown {label}: {name!r}")
        if decision.rule:
            why = f" by rule {decision.rule!r}"
        elif decision.reason == Reason.DEFAULT:
            why = " by default"
        else:  # authentication failed, guard error, no policy: the reason says it all
            why = ""
        if why and decision.policy:
            why += f" of policy {decision.policy!r}"
        return AuthorizationError(f"Access to {kind} {name!r} denied{why} ({decision.reason})")

    def _outcome(self, event: DecisionEvent, t0: float, error: BaseException | None) -> None:
        if self.audit is None:
            return
        duration_us = (time.perf_counter() - t0) * 1e6
        try:
            if error is None:
                self.audit.append_outcome(event.decision_id, "ok", duration_us, None)
            else:
                self.audit.append_outcome(
                    event.decision_id, "error", duration_us, type(error).__name__
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
    ) -> Any:
        if not event.decision.allowed:
            raise self._denied(kind, name, event.decision)
        t0 = time.perf_counter()
        try:
            result = await call_next(context)
        except BaseException as exc:
            self._outcome(event, t0, exc)
            raise
        self._outcome(event, t0, None)
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
        except BaseException:  # cancelled: the caller left, nothing ran; the span still ends
            self._quietly(self._telemetry.end_decision, handle, event)
            raise
        if not durable:
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
            self._outcome(event, time.perf_counter(), failure)

    # ------------------------------------------------------------------ FastMCP hooks

    async def on_call_tool(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        """Decide `tools/call` (action `call`) before the tool runs."""
        call = await self._begin(context)
        name = context.message.name
        resource = None
        try:
            tool = await self._find_tool(context, name)
            if tool is not None:
                resource = _versioned(self._cache.get(tool), context)
        except Exception:
            call.denial = call.denial or error_decision("resolving the tool")
            self._guard_error("resolve")
        if resource is None:
            resource = Resource(kind="tool", name=name, found=False)
        args = context.message.arguments or EMPTY
        event = self._decide(call, resource, "call", args, "tools/call")
        if call.durable_span is not None:
            await self._await_durable(event, call.durable_span)
        return await self._enforce(context, call_next, event, "tool", name)

    async def _find_tool(self, context: MiddlewareContext[Any], name: str) -> Any:
        fctx = context.fastmcp_context
        if fctx is None:
            raise RuntimeError("no FastMCP context")
        server = fctx.fastmcp
        version = _requested_version(context.message.meta)
        if version is None:
            tool = await self._lookups.get(
                server, visibility_scope(fctx), "tool", name, lambda: server.get_tool(name)
            )
        else:
            tool = await server.get_tool(name, version=version)
        if tool is None:
            # Apps address some backend tools by a hashed name; authorize the same
            # component FastMCP would run.
            hashed = parse_hashed_backend_name(name)
            if hashed is not None:
                tool = await server.get_tool_by_hash(*hashed)
        return tool

    async def _read_event(self, context: MiddlewareContext[Any]) -> tuple[DecisionEvent, str]:
        call = await self._begin(context)
        uri = str(context.message.uri)
        resource = Resource(kind="resource", name=uri, uri=uri, found=False)
        args: Mapping[str, Any] = EMPTY
        try:
            fctx = context.fastmcp_context
            if fctx is None:
                raise RuntimeError("no FastMCP context")
            server = fctx.fastmcp
            version = _requested_version(context.message.meta)

            async def lookup(target: str) -> Any:
                found: Any = await server.get_resource(target, version=version)
                if found is None:
                    found = await server.get_resource_template(target, version=version)
                return found

            # Not remembered (unlike tool and prompt names): which component a URI reaches
            # changes with visibility. A concrete resource enabled for a session shadows
            # the template it matched a moment ago, and one disabled uncovers it.
            target = uri
            component = await lookup(target)
            if isinstance(component, ResourceTemplate):
                reached = reached_uri(component, uri)
                if reached != uri:
                    # Decided on the URI the read reaches, not on the text sent: a mount or
                    # proxy forwards that form (where the server behind may hold a concrete
                    # resource the policy denies), and the template's function gets its
                    # decoded parameters (`%61dmin` is `admin` to it, and to a deny rule).
                    target = reached
                    component = await lookup(target) or component
            if isinstance(component, ResourceTemplate):
                args = component.matches(target) or EMPTY
            if component is not None:
                resource = _versioned(read_target(target, component), context)
        except Exception:
            call.denial = call.denial or error_decision("resolving the resource")
            self._guard_error("resolve")
        return self._decide(call, resource, "read", args, "resources/read"), uri

    async def check_resource_access(self, context: MiddlewareContext[Any]) -> None:
        """FastMCP's resource gate outside a read (extension metadata, such as the files of
        a skill before it is advertised): same decision. FastMCP expects
        `AuthorizationError` for "no" (any other error fails the whole source: every skill
        would vanish for one denied file); the text still does not say the resource
        exists, unless denials are explicit."""
        event, uri = await self._read_event(context)
        if not event.decision.allowed:
            denied = self._denied("resource", uri, event.decision)
            if not isinstance(denied, AuthorizationError):
                denied = AuthorizationError(str(denied))
            raise denied

    async def on_read_resource(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        """Decide `resources/read` (action `read`), concrete or through a template."""
        event, uri = await self._read_event(context)
        return await self._enforce(context, call_next, event, "resource", uri)

    async def on_get_prompt(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        """Decide `prompts/get` (action `get`) before the prompt renders."""
        call = await self._begin(context)
        name = context.message.name
        resource = Resource(kind="prompt", name=name, found=False)
        try:
            fctx = context.fastmcp_context
            if fctx is None:
                raise RuntimeError("no FastMCP context")
            server = fctx.fastmcp
            version = _requested_version(context.message.meta)
            if version is None:
                prompt = await self._lookups.get(
                    server, visibility_scope(fctx), "prompt", name,
                    lambda: server.get_prompt(name),
                )  # fmt: skip
            else:
                prompt = await server.get_prompt(name, version=version)
            if prompt is not None:
                resource = _versioned(self._cache.get(prompt), context)
        except Exception:
            call.denial = call.denial or error_decision("resolving the prompt")
            self._guard_error("resolve")
        args = context.message.arguments or EMPTY
        event = self._decide(call, resource, "get", args, "prompts/get")
        return await self._enforce(context, call_next, event, "prompt", name)

    async def __call__(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        # The hooks `Middleware.__call__` would run, without the three wrapper layers it
        # builds around every message (~10 us a request): typed hooks in the interior
        # ("all"/"typed") passes, completion in the method-agnostic ("all"/"outer") ones.
        # At the root ("outer"), a component request only arrives after it failed before
        # reaching its handler; it passes through untouched, as the base class does.
        phase = _dispatch_phase.get()
        if phase != "outer":
            hook = self._typed_hooks.get(context.method)
            if hook is not None:
                return await hook(context, call_next)
        if phase != "typed" and context.method == "completion/complete":
            return await self._on_complete(context, call_next)
        return await call_next(context)

    async def on_request(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        """Answer `completion/complete` for a denied prompt or template like an unknown one."""
        if context.method != "completion/complete":
            return await call_next(context)
        return await self._on_complete(context, call_next)

    async def _on_complete(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        message = context.message
        ref = message.get("ref") if isinstance(message, Mapping) else None
        fctx = context.fastmcp_context
        if not isinstance(ref, Mapping) or fctx is None:
            return await call_next(context)  # nothing named: nothing to leak
        call = await self._begin(context)
        ref_type = str(ref.get("type"))
        key = str(ref.get("name") if ref_type == "ref/prompt" else ref.get("uri"))
        try:
            component = await fctx.fastmcp._completion_target(ref_type, key)
            if component is None:
                return await call_next(context)  # unknown: FastMCP answers empty
            resource = self._cache.get(component)
        except Exception:
            call.denial = call.denial or error_decision("resolving the completion target")
            self._guard_error("resolve")
            resource = Resource(
                kind="prompt" if ref_type == "ref/prompt" else "resource_template", name=key
            )
        action = "get" if resource.kind == "prompt" else "read"
        event = self._decide(call, resource, action, EMPTY, "completion/complete")
        if event.decision.allowed:
            return await call_next(context)
        # Denied: FastMCP answers as for a reference that names nothing (the same empty
        # completion, in this protocol era's envelope), and the server's completion
        # handler never runs for the denied component.
        field = "name" if ref_type == "ref/prompt" else "uri"
        unknown = {**message, "ref": {**ref, field: _NO_COMPONENT}}
        return await call_next(context.copy(message=unknown))
