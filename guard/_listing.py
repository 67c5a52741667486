"""Listings: what `tools/list` & co. show a caller, each component decided, the whole
recorded as one row and observed under the list's span; a listing answered wholly from
the policy memo is given again to the same caller (`Answered`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from copy import copy
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, Protocol

from fastmcp.server.middleware import CallNext, MiddlewareContext

from guard._request import EMPTY, Call, Listing, error_decision
from guard.audit.redact import traceback_text
from guard.events import DecisionEvent
from guard.policy.model import AccessRequest, Kind, Resource
from guard.policy.policyset import MEMO_SIZE
from guard.telemetry import NoTelemetry

if TYPE_CHECKING:
    from guard._fastmcp import ResourceCache
    from guard.audit.log import AuditLog
    from guard.audit.rows import Answers
    from guard.policy.policyset import PolicySet
    from guard.telemetry import Telemetry

__all__ = ["Answered", "ListingFilter"]

logger = logging.getLogger("guard.middleware")

LIST_KINDS: Final[dict[str, Kind]] = {
    "tools/list": "tool",
    "resources/list": "resource",
    "resources/templates/list": "resource_template",
    "prompts/list": "prompt",
}


MAX_ANSWERED: Final = 256  # listings whose answers a guard keeps to give again ...
# ... holding this many components' answers at most: each listing holds all of its own, and
# a caller can make 256 of them (one per agent id it declares), 256,000 decisions and their
# records' JSON for a server of 1,000 tools, where the policy memo keeps `MEMO_SIZE`
MAX_ANSWERED_COMPONENTS: Final = 2 * MEMO_SIZE


@dataclass(slots=True, eq=False)
class Answered:
    """A listing's answers, given again to the same caller (user id, roles, agent id) for
    the same components (`items`, kept so that their ids stay theirs) while `policies` is
    in force: whether each is `shown`, its record's `answers` (None without a record), a
    ready `observe` of its telemetry (None without telemetry)."""

    policies: PolicySet
    items: tuple[Any, ...]
    shown: tuple[bool, ...]
    answers: Answers | None
    observe: Callable[[Any, str], None] | None


class _Guard(Protocol):
    """What the listing hooks use of the middleware they are part of."""

    audit: AuditLog | None
    _telemetry: Telemetry
    _cache: ResourceCache
    _answered: dict[tuple[Any, ...], Answered]
    _seen: dict[int, None]

    async def _begin(self, context: MiddlewareContext[Any]) -> Call: ...

    def _decide(
        self, call: Call, resource: Resource, action: str, args: Any, method: str,
        listing: Listing | None = None, listing_handle: Any = None,
    ) -> DecisionEvent: ...  # fmt: skip

    def _guard_error(self, where: str) -> None: ...

    def _new_id(self) -> tuple[str, bool]: ...

    async def _filter(
        self, context: MiddlewareContext[Any], items: Sequence[Any], method: str
    ) -> list[Any]: ...

    def _observe_listing(self, handle: Any, events: list[DecisionEvent], lid: str) -> bool: ...

    def _remember(
        self, key: tuple[Any, ...], policies: PolicySet, items: Sequence[Any],
        events: list[DecisionEvent],
    ) -> None: ...  # fmt: skip

    def _list_again(
        self, call: Call, answered: Answered, lid: str, handle: Any, method: str, t0: int,
        items: Sequence[Any],
    ) -> list[Any]: ...  # fmt: skip


class ListingFilter:
    """`GuardMiddleware`'s list hooks: each shows only what the caller may list."""

    async def _filter(
        self: _Guard, context: MiddlewareContext[Any], items: Sequence[Any], method: str
    ) -> list[Any]:
        call = await self._begin(context)
        telemetry = self._telemetry
        lid, identified = self._new_id()
        if not identified:  # recorded under a stand-in id: every component hidden
            call.denial = call.denial or error_decision("identifying")
        trace_id = span_id = ""
        try:  # one handle for the whole listing: its components share the list's span
            handle: Any = telemetry.start_decision(method, "")
            # a handle without its ids (a `Telemetry` returning None) cannot be observed
            trace_id, span_id = handle.trace_id, handle.span_id
        except Exception:
            handle = None
        # The common listing: an authenticated caller, no draft, components without URIs.
        lean = call.denial is None and call.shadow is None and handle is not None
        key: tuple[Any, ...] | None = None
        if lean:
            t0 = time.perf_counter_ns()
            p = call.principal
            try:  # the same caller listing the same components (see `Answered`)
                key = (p.user_id, p.roles, p.agent_id, p.authenticated, method,
                       tuple(map(id, items)))  # fmt: skip
                answered = self._answered.get(key)
            except TypeError:  # an unhashable role or id
                key = answered = None
            if answered is not None and answered.policies is call.policies:
                return self._list_again(call, answered, lid, handle, method, t0, items)
        listing = Listing(lid, [])
        events = listing.events
        resource_of = self._cache.get
        fctx = context.fastmcp_context  # (a mount's namespace is the server's to say)
        lister = None if fctx is None else fctx.fastmcp
        if lean:
            decide = call.policies.decide
            principal, now, ctx = call.principal, call.now, call.context
            server, transport = call.server, call.transport
            session_id, request_id = call.session_id, call.request_id
        for n, item in enumerate(items, 1):
            try:
                resource = resource_of(item, lister)
            except Exception:
                # Still decided and recorded, as an error denial.
                resource = Resource(kind=LIST_KINDS[method], name=str(getattr(item, "name", "?")))
                call_for_item = copy(call)
                call_for_item.denial = error_decision("resolving")
                self._guard_error("resolve")
                self._decide(call_for_item, resource, "list", EMPTY, method, listing, handle)
                key = None
                continue
            if lean and resource.uri is None:
                # decided here, without `_decide`'s per-call set-up (2 us a component)
                request = AccessRequest(principal, resource, "list", EMPTY, now, method, ctx)
                try:
                    decision = decide(request)
                except Exception:  # `decide` promises not to raise: if it does, the full path
                    decision = None
                if decision is not None:
                    event = DecisionEvent(
                        f"{lid}.{n}", request, decision, None, server, transport, session_id,
                        request_id, method, trace_id, span_id, (),
                    )  # fmt: skip
                    events.append(event)
                    continue
            self._decide(call, resource, "list", EMPTY, method, listing, handle)
            key = None
        if self.audit is not None:
            try:  # one row for the whole listing
                queued = self.audit.append_listing(lid, events)
            except Exception:  # `append_listing` promises not to raise; if it does, hide all
                queued = False
            if queued is not True:  # what cannot be recorded is not shown
                self._guard_error("record")
                hidden = error_decision("recording")
                for event in events:
                    event.decision = replace(hidden, policy_hash=event.decision.policy_hash)
                key = None
        # Observed last, so the list span and the metrics carry what was shown.
        if handle is not None and not self._observe_listing(handle, events, lid):
            key = None
        if call.cancelled is not None:  # recorded and observed, shown nothing: it goes on
            raise call.cancelled
        if key is not None and events:
            # kept from the second identical listing on: a proxy's or a mounted server's
            # components are new objects each time, and their answers would never be used
            # remembered by the key's hash (the key holds an id per component): one that
            # collides is only kept from its first listing on
            seen, fingerprint = self._seen, hash(key)
            if fingerprint in seen:
                del seen[fingerprint]
                self._remember(key, call.policies, items, events)
            else:
                if len(seen) >= MAX_ANSWERED:
                    seen.clear()
                seen[fingerprint] = None
        return [item for item, event in zip(items, events, strict=True) if event.decision.allowed]

    def _observe_listing(self: _Guard, handle: Any, events: list[DecisionEvent], lid: str) -> bool:
        """End each of a listing's decisions; one that cannot be observed is hidden (an
        unobservable decision is not an allow). False if any could not be. A telemetry
        that can observe them all at once (`prepare_listing`) does: ending each one cost
        ~0.5 µs, a third more. (Their ids are `lid` and their positions, as both ways
        name them: `_filter` and `_list_again` number a listing's events so.)"""
        telemetry = self._telemetry
        prepare = getattr(telemetry, "prepare_listing", None)
        if prepare is not None and type(telemetry) is not NoTelemetry:
            try:
                observe = prepare(events)
            except Exception:  # each decision ended on its own, as any telemetry can
                observe = None
            if observe is not None:
                try:
                    observe(handle, lid)  # (the guard's own never raises: it counts)
                    return True
                except Exception:  # as ending each one failing: none is shown
                    self._guard_error("observe")
                    for event in events:
                        event.decision = replace(
                            error_decision("observing"), policy_hash=event.decision.policy_hash
                        )
                    return False
        end = telemetry.end_decision
        ok = True
        for event in events:
            try:
                end(handle, event)
            except Exception:
                event.decision = replace(
                    error_decision("observing"), policy_hash=event.decision.policy_hash
                )
                self._guard_error("observe")
                ok = False
        return ok

    def _remember(
        self: _Guard, key: tuple[Any, ...], policies: PolicySet, items: Sequence[Any],
        events: list[DecisionEvent],
    ) -> None:  # fmt: skip
        """Keep a listing's answers to give again (`_list_again`) if nothing but the caller's
        ids and roles and the components decided them (the policy set's memo says so), and
        its telemetry can observe them again as they are."""
        try:
            if not all(policies.memoized(event.request) for event in events):
                return
            observe = None
            if type(self._telemetry) is not NoTelemetry:
                prepare = getattr(self._telemetry, "prepare_listing", None)
                observe = prepare(events) if prepare is not None else None
                if observe is None:
                    return
            answers = None
            if self.audit is not None:
                answers = self.audit.listing_answers(events)
                if answers is None:  # it records each listing its own way
                    return
            answered = self._answered
            if (
                len(answered) >= MAX_ANSWERED
                or len(items) + sum(len(kept.shown) for kept in answered.values())
                > MAX_ANSWERED_COMPONENTS
            ):
                answered.clear()
            answered[key] = Answered(
                policies, tuple(items), tuple(event.decision.allowed for event in events),
                answers, observe,
            )  # fmt: skip
        except Exception as exc:  # only ever saves work
            logger.warning("listing answers could not be kept\n%s", traceback_text(exc))

    def _list_again(
        self: _Guard, call: Call, answered: Answered, lid: str, handle: Any, method: str, t0: int,
        items: Sequence[Any],
    ) -> list[Any]:  # fmt: skip
        """A listing the same caller made of the same components under the same policy
        set: the same answers, recorded and observed as a listing decided afresh is."""
        answers = answered.answers
        if answers is not None and self.audit is not None:
            eval_us = (time.perf_counter_ns() - t0) / 1000 / len(answered.shown)
            # the request's facts, under the first component and answer (`append_listing`
            # takes every component's from `answers`)
            _, resource, decision, _ = answers.entries[0]
            request = AccessRequest(
                call.principal, resource, "list", EMPTY, call.now, method, call.context
            )
            facts = DecisionEvent(
                lid, request, decision, None, call.server, call.transport, call.session_id,
                call.request_id, method, handle.trace_id, handle.span_id, (),
            )  # fmt: skip
            try:
                queued = self.audit.append_listing_again(lid, answers, eval_us, facts)
            except Exception:  # it promises not to raise; if it does, hide all
                queued = False
            if queued is not True:  # what cannot be recorded is not shown
                self._guard_error("record")
                hidden = error_decision("recording")
                events = []
                for n, (_, resource, decision, _) in enumerate(answers.entries, 1):
                    events.append(replace(
                        facts, decision_id=f"{lid}.{n}",
                        request=replace(request, resource=resource),
                        decision=replace(hidden, policy_hash=decision.policy_hash),
                    ))  # fmt: skip
                self._observe_listing(handle, events, lid)
                return []
        if answered.observe is not None:
            try:
                answered.observe(handle, lid)
            except Exception:  # an unobservable decision is not an allow
                self._guard_error("observe")
                return []
        return [item for item, shown in zip(items, answered.shown, strict=True) if shown]

    async def on_list_tools(
        self: _Guard, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        """Show only the tools the caller may list."""
        return await self._filter(context, await call_next(context), "tools/list")

    async def on_list_resources(
        self: _Guard, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        """Show only the resources the caller may list."""
        return await self._filter(context, await call_next(context), "resources/list")

    async def on_list_resource_templates(
        self: _Guard, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        """Show only the resource templates the caller may list."""
        return await self._filter(context, await call_next(context), "resources/templates/list")

    async def on_list_prompts(
        self: _Guard, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        """Show only the prompts the caller may list."""
        return await self._filter(context, await call_next(context), "prompts/list")
