"""`GuardMiddleware`'s hooks for one component: `tools/call`, `resources/read` and
`prompts/get` are decided before their handler runs; `completion/complete` never names a
denied prompt or template. (Listings: `_listing.py`; a task a call starts: `_tasks.py`.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final

from fastmcp.exceptions import AuthorizationError
from fastmcp.resources.template import ResourceTemplate
from fastmcp.server.middleware import CallNext, MiddlewareContext
from fastmcp.server.middleware.authorization import _requested_version
from fastmcp.server.providers.addressing import parse_hashed_backend_name

from guard._fastmcp import (
    forwarded_version,
    handshake_uri,
    query_in_fragment,
    reached_uri,
    read_target,
    visibility_scope,
)
from guard._request import EMPTY, error_decision
from guard._tasks import TaskOwners
from guard.events import DecisionEvent
from guard.policy.model import Resource

if TYPE_CHECKING:
    from guard._fastmcp import LookupCache, ResourceCache
    from guard._request import Call

__all__ = ["ComponentHooks"]

# A completion reference no server can resolve (see `_on_complete`).
_NO_COMPONENT: Final = "\x00mcp-guard: denied"


def _versioned(
    resource: Resource, context: MiddlewareContext[Any], shown: Callable[[str], str]
) -> Resource:
    """`resource` as the version the caller asked for (if any) runs; a version no
    component here holds is the caller's text, decided on (and recorded) as `shown`
    makes it: bounded, without what looks like a credential.

    FastMCP runs an unversioned component whatever version is asked for, and a versioned
    one only as that version: both are decided as resolved, tags and namespace included
    (deciding them on the version alone let any caller that names a version slip past
    deny rules on tags and namespaces). A proxy's components carry no version of their
    own but the backend's newest (`forwarded_version`), and pass the caller's `_meta` on
    to the backend: asked for that newest, the component resolved here is what runs
    there. Asked for another version, what runs is not the component resolved here; it
    is decided on its name, its namespace (the mount's, alike for every version) and the
    version asked for alone, so no tag of another version can allow it.
    """
    spec = _requested_version(context.message.meta)
    if spec is None:
        return resource
    if resource.version is None:
        behind = forwarded_version(resource)
        if behind is None:  # unversioned here and behind: this very component runs
            return resource
        if spec.matches(behind, match_none=False):
            return replace(resource, version=behind)
    elif spec.matches(resource.version, match_none=False):
        return resource
    asked = None if spec.eq is None else shown(spec.eq)
    return Resource(resource.kind, resource.name, namespace=resource.namespace, uri=resource.uri,
                    version=asked, template=resource.template)  # fmt: skip


def _read_of(
    uri: str,
    component: Any,
    server: Any,
    context: MiddlewareContext[Any],
    shown: Callable[[str], str],
) -> tuple[Resource, Mapping[str, Any]]:
    """The `Resource` a read of `uri` through `component`, one of `server`'s (whose mounts
    say its namespace), is decided on, and its arguments (a template's parameters)."""
    args = (component.matches(uri) if isinstance(component, ResourceTemplate) else None) or EMPTY
    return _versioned(read_target(uri, component, server), context, shown), args


class ComponentHooks(TaskOwners):
    """The hooks of `GuardMiddleware` for requests naming one component."""

    _cache: ResourceCache
    _lookups: LookupCache

    async def on_call_tool(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        """Decide `tools/call` (action `call`) before the tool runs."""
        call = await self._begin(context)
        name = context.message.name
        resource = await self._resolve(call, "tool", self._tool_resource, context, name)
        if resource is None:
            resource = Resource(kind="tool", name=name, found=False)
        args = context.message.arguments or EMPTY
        event = self._decide(call, resource, "call", args, "tools/call")
        if call.durable_span is not None:
            await self._await_durable(event, call.durable_span)
        result = await self._enforce(context, call_next, event, "tool", name)
        self._task_started(call.principal, event.request.resource, result)  # a task: the caller's
        return result

    async def _resolve(
        self, call: Call, what: str, find: Callable[..., Awaitable[Resource | None]], *args: Any
    ) -> Resource | None:
        """`find(*args)`: the component the request names, as decided (None: none). Its
        failure denies the request; its cancellation cancels it (`Call.cancel`: `_decide`
        records it, then raises it again). Nothing is looked up for a cancelled request:
        it is decided as sent."""
        if call.cancelled is not None:
            return None
        try:
            return await find(*args)
        except Exception:
            call.denial = call.denial or error_decision(f"resolving the {what}")
            self._guard_error("resolve")
        except BaseException as exc:
            call.cancel(exc, f"resolving the {what}")
        return None

    async def _tool_resource(self, context: MiddlewareContext[Any], name: str) -> Resource | None:
        tool = await self._find_tool(context, name)
        return (
            None if tool is None else _versioned(self._cache.get(tool), context, self._client_text)
        )

    async def _prompt_resource(self, context: MiddlewareContext[Any], name: str) -> Resource | None:
        prompt = await self._find(context, "prompt", name)
        return (
            None
            if prompt is None
            else _versioned(self._cache.get(prompt), context, self._client_text)
        )

    async def _find_tool(self, context: MiddlewareContext[Any], name: str) -> Any:
        tool = await self._find(context, "tool", name)
        fctx = context.fastmcp_context
        if tool is None and fctx is not None:
            # Apps address some backend tools by a hashed name; authorize the same
            # component FastMCP would run.
            hashed = parse_hashed_backend_name(name)
            if hashed is not None:
                tool = await fctx.fastmcp.get_tool_by_hash(*hashed)
        return tool

    async def _find(self, context: MiddlewareContext[Any], kind: str, name: str) -> Any:
        """The tool or prompt (`kind`) `name` resolves to, the version asked for if any, as
        FastMCP would run it; None if none does."""
        fctx = context.fastmcp_context
        if fctx is None:
            raise RuntimeError("no FastMCP context")
        server = fctx.fastmcp
        get = server.get_tool if kind == "tool" else server.get_prompt
        version = _requested_version(context.message.meta)
        if version is not None:
            return await get(name, version=version)
        return await self._lookups.get(
            server, visibility_scope(fctx), kind, name, lambda: get(name)
        )

    async def _read_event(
        self, context: MiddlewareContext[Any]
    ) -> tuple[DecisionEvent, str, tuple[DecisionEvent, ...]]:
        """The decision enforced on a read of the URI, the URI, and the decisions made
        before it and allowed, if the read was decided more than once (see below)."""
        call = await self._begin(context)
        uri = str(context.message.uri)
        resource = Resource(kind="resource", name=uri, uri=uri, found=False)
        args: Mapping[str, Any] = EMPTY
        if call.cancelled is not None:  # nothing more awaited: recorded, then raised again
            return self._decide(call, resource, "read", args, "resources/read"), uri, ()
        # the reads of what the URI reached names, if not the template the text matched
        reached_elsewhere: list[tuple[Resource, Mapping[str, Any]]] = []
        try:
            fctx = context.fastmcp_context
            if fctx is None:
                raise RuntimeError("no FastMCP context")
            server = fctx.fastmcp
            version = _requested_version(context.message.meta)
            shown = self._client_text

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
            if isinstance(component, ResourceTemplate) and query_in_fragment(component, uri):
                # the template's function and a mount or proxy read different queries:
                # refused (recorded as the template's read), whichever would run
                call.denial = call.denial or error_decision("reading a query in the fragment")
            if isinstance(component, ResourceTemplate):
                reached = reached_uri(component, uri)
                if reached != uri:
                    # Decided on the URI the read reaches, not on the text sent: a mount or
                    # proxy forwards that form (where the server behind may hold a concrete
                    # resource the policy denies), and the template's function gets its
                    # decoded parameters (`%61dmin` is `admin` to it, and to a deny rule).
                    # Both components are decided when that URI names another one: the
                    # template the text matched runs here, and what the URI names runs
                    # behind a mount or proxy (`users://%61dmin/payroll` runs `payroll`,
                    # though `users://admin/payroll` names an earlier `users://admin/{f}`).
                    target = reached
                    elsewhere = await lookup(target)
                    if elsewhere is not None and elsewhere.key != component.key:
                        there_too = _read_of(target, elsewhere, server, context, shown)
                        reached_elsewhere.append(there_too)
                # A proxy whose caller speaks the handshake era sends that URI on as
                # `AnyUrl` writes it (`root/public/../private/x` is `root/private/x`):
                # what that names is decided too, the same template included (with other
                # parameters). Where it names nothing here, a proxy's backend has nothing.
                sent = handshake_uri(target)
                if sent is not None and sent != target:
                    there = await lookup(sent)
                    if there is not None:
                        reached_elsewhere.append(_read_of(sent, there, server, context, shown))
            if component is not None:
                resource, args = _read_of(target, component, server, context, shown)
        except Exception:
            call.denial = call.denial or error_decision("resolving the resource")
            self._guard_error("resolve")
            reached_elsewhere = []
        except BaseException as exc:  # `_decide` records it, then raises it again
            call.cancel(exc, "resolving the resource")
            reached_elsewhere = []
        earlier: list[DecisionEvent] = []
        for other, other_args in reached_elsewhere:
            event = self._decide(call, other, "read", other_args, "resources/read")
            if not event.decision.allowed:
                return event, uri, tuple(earlier)
            earlier.append(event)
        return self._decide(call, resource, "read", args, "resources/read"), uri, tuple(earlier)

    async def check_resource_access(self, context: MiddlewareContext[Any]) -> None:
        """FastMCP's resource gate outside a read (extension metadata, such as the files of
        a skill before it is advertised): same decision. FastMCP expects
        `AuthorizationError` for "no" (any other error fails the whole source: every skill
        would vanish for one denied file); the text still does not say the resource
        exists, unless denials are explicit."""
        event, uri, _ = await self._read_event(context)
        if not event.decision.allowed:
            denied = self._denied("resource", uri, event.decision, context.message.meta)
            if not isinstance(denied, AuthorizationError):
                denied = AuthorizationError(str(denied))
            raise denied

    async def on_read_resource(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        """Decide `resources/read` (action `read`), concrete or through a template."""
        event, uri, earlier = await self._read_event(context)
        # all decisions of a read decided more than once are about this one read: all get
        # its outcome
        return await self._enforce(context, call_next, event, "resource", uri, earlier)

    async def on_get_prompt(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        """Decide `prompts/get` (action `get`) before the prompt renders."""
        call = await self._begin(context)
        name = context.message.name
        resource = await self._resolve(call, "prompt", self._prompt_resource, context, name)
        if resource is None:
            resource = Resource(kind="prompt", name=name, found=False)
        args = context.message.arguments or EMPTY
        event = self._decide(call, resource, "get", args, "prompts/get")
        return await self._enforce(context, call_next, event, "prompt", name)

    async def on_request(
        self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]
    ) -> Any:
        """Answer `completion/complete` for a denied prompt or template like an unknown one,
        and `tasks/*` only to the principal that started the task."""
        method = context.method
        if method == "completion/complete":
            return await self._on_complete(context, call_next)
        if method is not None and method.startswith("tasks/"):
            return await self._on_task(context, call_next)
        return await call_next(context)

    async def _completion_resource(self, fctx: Any, ref_type: str, key: str) -> Resource | None:
        component = await fctx.fastmcp._completion_target(ref_type, key)
        return None if component is None else self._cache.get(component, fctx.fastmcp)

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
        # not found: the reference is the caller's text, shown (traced, counted, recorded)
        # as an unknown component's, never as a name or label of its own; decided all the
        # same (a caller refused by authentication is denied, and every request recorded)
        if ref_type == "ref/prompt":
            resource = Resource(kind="prompt", name=key, found=False)
        else:
            resource = Resource(kind="resource_template", name=key, uri=key, found=False)
        target = await self._resolve(
            call, "completion target", self._completion_resource, fctx, ref_type, key
        )
        if target is not None:
            resource = target
        action = "get" if resource.kind == "prompt" else "read"
        event = self._decide(call, resource, action, EMPTY, "completion/complete")
        if event.decision.allowed:  # the server's completion handler runs: its outcome too
            return await self._enforce(context, call_next, event, resource.kind, key)
        # Denied: FastMCP answers as for a reference that names nothing (the same empty
        # completion, in this protocol era's envelope), and the server's completion
        # handler never runs for the denied component.
        field = "name" if ref_type == "ref/prompt" else "uri"
        unknown = {**message, "ref": {**ref, field: _NO_COMPONENT}}
        return await call_next(context.copy(message=unknown))
