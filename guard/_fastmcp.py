"""Translate FastMCP's request and component objects into the guard's own nouns.

Everything that knows FastMCP's internals lives here, so `guard.middleware` reads as
"build the request, decide, observe, enforce" and a FastMCP upgrade touches one module.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, Final
from urllib.parse import urlsplit
from uuid import UUID

from fastmcp.prompts.base import Prompt
from fastmcp.resources.base import Resource as FastMCPResource
from fastmcp.resources.template import ResourceTemplate, forward_uri
from fastmcp.server.context import _current_transport
from fastmcp.server.dependencies import fastmcp_request_ctx, get_access_token
from fastmcp.server.http import _current_http_request
from fastmcp.server.middleware.authorization import _requested_version as requested_version
from fastmcp.server.providers.addressing import parse_hashed_backend_name
from fastmcp.server.providers.fastmcp_provider import FastMCPProvider
from fastmcp.server.transforms.namespace import Namespace
from fastmcp.tools.base import Tool
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import AnyUrl

from guard.identity.base import RequestInfo
from guard.policy.model import Kind, Resource

__all__ = [
    "LookupCache",
    "ResourceCache",
    "current_transport",
    "forwarded_version",
    "request_info",
    "requested_version",
    "session_of",
    "to_resource",
]

_NO_HEADERS: Final[Mapping[str, str]] = MappingProxyType({})

# FastMCP names its transports after how the server runs; records use the short names.
_TRANSPORTS: Final = {"stdio": "stdio", "streamable-http": "http", "http": "http", "sse": "sse"}


def current_transport() -> str:
    """`stdio`, `http`, `sse`, or `memory` (no transport set: an in-process `Client`).

    FastMCP names the transport in its own HTTP middleware; an application serving
    FastMCP's routes from its own Starlette app skips that. A request that came over HTTP
    is `http` whatever the label says: `memory` and `stdio` are trusted as local (a fixed
    `principal=` applies there without authenticating), so neither may be a network caller.
    The label is a context variable, which tasks inherit: routes served over HTTP from
    inside a stdio server's run (its lifespan, a tool) carry `stdio` into every request."""
    value = _current_transport.get()
    if value is None or value == "stdio":
        if _http_request() is None:
            return "memory" if value is None else "stdio"
        return "http"
    return _TRANSPORTS.get(value, value)


def _http_request() -> Any:
    """The HTTP request being served, or None: where FastMCP's `get_http_request` looks,
    without the exception it raises when there is none (about a microsecond, twice on
    every in-memory and stdio call)."""
    ctx = fastmcp_request_ctx.get()
    request = None if ctx is None else ctx.request
    return _current_http_request.get() if request is None else request


def session_of(fctx: Any, rc: Any) -> str | None:
    """The id of the MCP session request context `rc` belongs to, or None: there is none.

    Only an id the transport checked is taken: a streamable HTTP session's negotiated id,
    the session id an SSE post was routed by (in its canonical form), or on stdio and
    in-memory connections FastMCP's id for the connection. An `mcp-session-id` header no
    session stands behind is the client's text, which FastMCP's `Context.session_id` takes
    unchecked (and keeps for the rest of an SSE connection): any caller could file its
    requests under another caller's session. A 2026-07-28 request, or a handshake-era one
    to a stateless HTTP server, has no session (FastMCP would make up a new random id for
    each: recorded, such an id ties nothing together, and it costs a uuid4 a request).
    """
    sid = getattr(getattr(rc.session, "_connection", None), "session_id", None)
    if sid is not None:  # negotiated: the transport routes only that session's requests here
        return sid if isinstance(sid, str) else None
    if getattr(rc, "protocol_version", None) in MODERN_PROTOCOL_VERSIONS:
        return None
    request = rc.request
    if request is None:  # stdio, in-memory: one connection, one id FastMCP keeps for it
        return str(fctx.session_id)
    if _current_transport.get() == "sse":
        try:  # the transport found the session by this parameter (else: 400 or 404)
            return UUID(hex=request.query_params.get("session_id") or "").hex
        except (TypeError, ValueError):
            return None
    return None  # stateless HTTP: every request its own connection


def request_info(transport: str, session_id: str | None) -> RequestInfo:
    """What an authenticator may see about the current request.

    Headers are read from the live HTTP request, not `get_http_headers()`, because that
    helper drops `authorization` and `cookie`, which authenticators need.
    """
    headers: Mapping[str, str] = _NO_HEADERS
    repeated: frozenset[str] = frozenset()
    client_host = None
    if transport in ("http", "sse"):
        request = _http_request()
        if request is not None:
            # Starlette already lower-cases names; repeated headers keep the last value,
            # and are named, so that authenticators refuse an ambiguous credential.
            items = request.headers.items()
            headers = {k.lower(): v for k, v in items}
            if len(headers) != len(items):
                repeated = _repeated(items)
            client_host = request.client.host if request.client else None
    try:
        token = get_access_token()
    except Exception:  # a foreign token type: authenticate without it
        token = None
    return RequestInfo(
        transport=transport,
        headers=headers,
        client_host=client_host,
        session_id=session_id,
        access_token=token,
        repeated=repeated,
    )


def _repeated(items: list[tuple[str, str]]) -> frozenset[str]:
    seen: set[str] = set()
    twice: set[str] = set()
    for name, _ in items:
        name = name.lower()
        (twice if name in seen else seen).add(name)
    return frozenset(twice)


def _namespace(component: Any, meta: Mapping[str, Any], server: Any = None) -> str | None:
    """The mount namespace FastMCP runs `component` under, else its declared one.

    A tool or prompt from a mounted server keeps its local name in `_original_name`, a
    resource or template its local URI; the difference with the name or URI the parent
    lists is the mount prefix. A transformed tool (renamed,
    re-described) is read through the tool it wraps. The mount wins over a `namespace`
    the component declares in its own meta: a child server, or a proxied remote one,
    does not choose the namespace the operator mounted it under. A mount cannot write its
    namespace into a URI without `//` (`urn:x` is listed as the child wrote it): such a
    resource is in the namespace `server` mounts its child under (`mount_namespace`)."""
    base = component
    for _ in range(32):  # transforms of transforms; bounded against a cycle
        parent = getattr(base, "parent_tool", None)
        if parent is None:
            break
        base = parent
    original = getattr(base, "_original_name", None)
    if isinstance(original, str):
        hashed = parse_hashed_backend_name(original)
        if hashed is not None:
            # an app tool found by its hashed address (`__<hash>_<local name>`): the
            # same component, listed under the same name, so in the same namespace
            original = hashed[1]
        name = base.name
        if name != original and name.endswith("_" + original):
            return str(name[: -len(original) - 1])
    else:
        # A mounted resource or template: FastMCP puts the prefix after the scheme
        # (`data://secret` is `data://hr/secret`), and keeps the child's URI.
        for listed, kept in (("uri_template", "_original_uri_template"), ("uri", "_original_uri")):
            original = getattr(base, kept, None)
            if isinstance(original, str):
                prefix = _uri_prefix(str(getattr(base, listed, "")), original)
                if prefix:
                    return prefix
                if "://" not in original:
                    # listed as the child wrote it: the mount's namespace, if it has one
                    # (the child does not choose one for it either)
                    return mount_namespace(server, getattr(base, "_server", None))
                break
    declared = meta.get("namespace")
    return declared if isinstance(declared, str) else None


def mount_namespace(server: Any, child: Any) -> str | None:
    """The namespace `server` mounts `child` under (`server.mount(child, namespace=...)`),
    None if it mounts it without one, or not at all. A child mounted more than once is in
    its first mount's namespace: FastMCP serves a URI that mounts cannot prefix (`urn:x`,
    the same through every mount of the child) from its first provider that has it. Mounts
    nested in a mount (`outer` holding `inner`) are in the outer one, as `data://outer/
    inner/x` is."""
    if server is None or child is None:
        return None
    for provider in getattr(server, "providers", ()):
        prefixes: list[str] = []
        for _ in range(32):  # wrappers of wrappers; bounded against a cycle
            # a wrapper's namespace is applied after those it wraps (and a provider's
            # own, after those added before it): written first, as in `data://b/a/x`
            ours = [t._prefix for t in provider.transforms if isinstance(t, Namespace)]
            prefixes += reversed(ours)
            inner = getattr(provider, "_inner", None)
            if inner is None:
                break
            provider = inner
        if isinstance(provider, FastMCPProvider) and provider.server is child:
            return "/".join(p for p in prefixes if p) or None
    return None


def _uri_prefix(listed: str, original: str) -> str | None:
    """The namespace a mount put into `original` to list it as `listed`, if any."""
    scheme, sep, rest = original.partition("://")
    head = scheme + sep
    if sep and listed.startswith(head) and listed.endswith("/" + rest):
        prefix = listed[len(head) : len(listed) - len(rest) - 1]
        return prefix or None
    return None


def _resource(component: Any, kind: Kind, uri: str | None, server: Any) -> Resource:
    meta = component.meta or {}
    version = getattr(component, "version", None)
    return Resource(
        kind=kind,
        name=component.name,
        tags=frozenset(component.tags or ()),
        namespace=_namespace(component, meta, server),
        version=None if version is None else str(version),
        uri=uri,
        meta=MappingProxyType(dict(meta)) if meta else MappingProxyType({}),
    )


def to_resource(component: Any, server: Any = None) -> Resource:
    """The guard's `Resource` for one FastMCP component `server` lists (or runs)."""
    if isinstance(component, Tool):
        return _resource(component, "tool", None, server)
    if isinstance(component, ResourceTemplate):
        return _resource(component, "resource_template", component.uri_template, server)
    if isinstance(component, FastMCPResource):
        return _resource(component, "resource", str(component.uri), server)
    if isinstance(component, Prompt):
        return _resource(component, "prompt", None, server)
    raise TypeError(f"not a FastMCP component: {type(component).__name__}")


def forwarded_version(resource: Resource) -> str | None:
    """The version a proxy's component stands for at its backend: the newest there, which
    the backend lists in the component's meta (`fastmcp.version`); None for a component
    without one (unversioned here, and behind a proxy)."""
    fastmcp_meta = resource.meta.get("fastmcp")
    version = fastmcp_meta.get("version") if isinstance(fastmcp_meta, Mapping) else None
    return version if isinstance(version, str) else None


def reached_uri(template: Any, uri: str) -> str:
    """The URI a read of `uri` through `template` really reaches: its parameters decoded
    and encoded again, no fragment, no empty query (FastMCP's `forward_uri`, what a mount
    or proxy sends on, and what the template's function is given), and no query at all
    when the template takes none: it changes nothing read, and a deny rule on
    `users://*/payroll` must not miss `users://7/payroll?x=1`. `users://%61dmin/x?y`
    reaches `users://admin/x`."""
    params = template.matches(uri)
    if params is None:
        return uri
    reached = str(forward_uri(template.uri_template, dict(params), uri))
    if "?" in reached and "?" not in template.uri_template and "{&" not in template.uri_template:
        reached = reached.partition("?")[0]
    return reached


def handshake_uri(uri: str) -> str | None:
    """The URI a proxy sends its backend for a read of `uri` on a handshake-era connection
    (the era a proxy mirrors from its caller by default): `Client.read_resource_mcp` writes
    it as pydantic's `AnyUrl` does, so `files://root/public/../private/x` (or
    `%2e%2e`) is sent as `files://root/private/x`, and a scheme in capitals in lower case.
    None when `AnyUrl` refuses it: that read fails before anything is sent."""
    try:
        parsed = AnyUrl(uri)
    except ValueError:
        return None
    if parsed.scheme == "file":  # kept as written there: a mount's namespace needs it
        parts = urlsplit(uri)
        if parts.netloc and parts.path.startswith("//"):
            return uri
    return str(parsed)


def query_in_fragment(template: Any, uri: str) -> bool:
    """Whether `uri` writes the query of a template that takes one inside its fragment
    (`reports://hr#?scope=public`): FastMCP reads that two ways. The template's function
    gets the URI without its fragment (`scope` at its default), while a mount or proxy
    forwards the text after the fragment's `?` as the query (`forward_uri` splits at the
    first `?`), so no one decision is about what runs."""
    head, hash_, fragment = uri.partition("#")
    if not hash_ or "?" not in fragment or "?" in head:
        return False
    spelled = template.uri_template
    return "#" not in spelled and ("{?" in spelled or "{&" in spelled)


def read_target(uri: str, component: Any, server: Any = None) -> Resource:
    """The `Resource` for reading `uri`: concrete, or through a template.

    A read through a template is a read of a resource (its URI is the one asked for)
    that carries the template it came from, so both `resources` and
    `resource_templates` rules can speak about it.
    """
    if isinstance(component, ResourceTemplate):
        base = _resource(component, "resource", uri, server)
        return Resource(
            kind="resource",
            name=base.name,
            tags=base.tags,
            namespace=base.namespace,
            version=base.version,
            uri=uri,
            template=component.uri_template,
            meta=base.meta,
        )
    return _resource(component, "resource", uri, server)


class ResourceCache:
    """Remembers the `Resource` built for a component object.

    Listing 100 tools would otherwise rebuild 100 `Resource` values on every
    `tools/list`. Components are immutable once registered and FastMCP hands out the
    same objects, so the identity of the object is a sound key; keeping the object in
    the entry stops its id from being reused while the entry lives.
    """

    __slots__ = ("_entries", "_limit")

    def __init__(self, limit: int = 4096) -> None:
        self._entries: dict[int, tuple[Any, Resource]] = {}
        self._limit = limit

    def get(self, component: Any, server: Any = None) -> Resource:
        """The `Resource` for `component`, one of `server`'s (see `to_resource`)."""
        entry = self._entries.get(id(component))
        if entry is not None and entry[0] is component:
            return entry[1]
        resource = to_resource(component, server)
        if len(self._entries) >= self._limit:
            self._entries.clear()  # servers with churning components: start over, stay bounded
        self._entries[id(component)] = (component, resource)
        return resource

    def clear(self) -> None:
        self._entries.clear()


def visibility_scope(fctx: Any) -> str | None:
    """Whose session visibility rules a request is resolved under (`ctx.enable_components`
    and co. apply to one session, or on 2026-07-28 connections to one user or process):
    FastMCP's own key for them. A name resolves alike for every request of one scope.

    A 2026-07-28 request with no HTTP request behind it and no verified token (in-memory
    and stdio calls) gets the key FastMCP's `_session_scope_key` would give it here:
    FastMCP's own way there raises and catches an exception per call, looking for the
    HTTP request (`tests/middleware/test_visibility_scope.py` holds the two equal)."""
    try:
        if (
            fctx._is_modern_protocol()
            and _http_request() is None
            and auth_context_var.get() is None
        ):
            # no principal: the process serves one client, unless FastMCP's transport
            # label says HTTP (then nothing identifies the caller: FastMCP's None)
            return "None" if _current_transport.get() in ("sse", "streamable-http") else "process"
        return str(fctx._session_scope_key())
    except RuntimeError:  # no session: no session rules either
        return None
    except Exception:  # a FastMCP without that key: the session is the narrowest scope
        try:
            return f"session:{fctx.session_id}"
        except Exception:
            return None


class LookupCache:
    """Remembers, for `ttl` seconds, which component a tool or prompt name resolved to, per
    visibility scope (`visibility_scope`: sessions may see different components).

    Finding the component a call names (`FastMCP.get_tool`, ...) walks every provider,
    transform and visibility rule: on an in-memory call it costs more than deciding.
    Only hits are kept, so a component added at runtime is found at once, and only
    components without a version: a name with several versions can resolve to another of
    them from one request to the next (a version enabled or disabled, for a session or for
    all), and a call must be decided on the one FastMCP runs. An unversioned component is
    the only one of its name, so a cached one can at worst have been hidden (FastMCP then
    answers "unknown" itself) or re-registered with other tags, which is decided on its
    old tags for at most `ttl` seconds; `ttl=0` turns the cache off.

    Keys are callers' text (any name a caller sends), looked up before anyone is
    authenticated: a key longer than `MAX_KEY_CHARS` is not kept, and expired entries are
    dropped at least once per `ttl` (or second), so the cache holds at most `limit` short
    keys, and nothing of a request for long.
    """

    __slots__ = ("_entries", "_limit", "_sweep_at", "ttl")

    MAX_KEY_CHARS = 1024

    def __init__(self, ttl: float, limit: int = 4096) -> None:
        if ttl < 0:
            raise ValueError(f"lookup cache ttl must be >= 0, got {ttl!r}")
        self.ttl = ttl
        self._entries: dict[tuple[int, str | None, str, str], tuple[float, Any, Any]] = {}
        self._limit = limit
        self._sweep_at = 0.0

    async def get(
        self,
        server: Any,
        scope: str | None,
        kind: str,
        key: str,
        lookup: Callable[[], Awaitable[Any]],
    ) -> Any:
        if self.ttl <= 0:
            return await lookup()
        entry_key = (id(server), scope, kind, key)
        now = time.monotonic()
        entry = self._entries.get(entry_key)
        if entry is not None and entry[0] > now and entry[1] is server:
            return entry[2]
        value = await lookup()
        if (
            value is not None
            and getattr(value, "version", None) is None
            and len(key) <= self.MAX_KEY_CHARS
        ):
            if now >= self._sweep_at:
                self._sweep_at = now + max(self.ttl, 1.0)
                for stale in [k for k, e in self._entries.items() if e[0] <= now]:
                    self._entries.pop(stale, None)
            if len(self._entries) >= self._limit:
                self._entries.clear()
            self._entries[entry_key] = (now + self.ttl, server, value)
        return value

    def clear(self) -> None:
        self._entries.clear()
