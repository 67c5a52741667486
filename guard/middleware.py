"""`GuardMiddleware`: the one place where an MCP request meets the guard.

For every request it finds out who is calling, decides, observes, and enforces, in that
order and nothing more (`guard._deciding`; its hooks for one component in `guard._hooks`,
for listings in `guard._listing`): policy logic lives in `PolicySet.decide`, FastMCP
plumbing in `guard._fastmcp`, hot reload in `guard.reload`, records in `guard.audit`,
spans and metrics in `guard.telemetry`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from fastmcp.server.middleware import CallNext, Middleware, MiddlewareContext
from fastmcp.server.middleware.middleware import _dispatch_phase

from guard._fastmcp import LookupCache, ResourceCache
from guard._hooks import ComponentHooks
from guard._listing import Answered, ListingFilter
from guard._settings import MAX_WAIT, MIN_WAIT, flag, seconds
from guard.audit.log import DEFAULT, resolve_audit
from guard.audit.redact import Redactor
from guard.policy.model import Principal, Resource
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


def _default_telemetry() -> Telemetry:
    from guard.telemetry import default_telemetry

    return default_telemetry()


class GuardMiddleware(ComponentHooks, ListingFilter, Middleware):
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
        watch: `True` (every second) or a poll interval in seconds (from 1 ms): reload the
            policy file or directory when it changes (and the shadow draft, if it is a file or
            directory). A broken edit keeps the old set in force (or the old draft).
        server_name: the name records carry; default: the FastMCP server's name.
        lookup_ttl: seconds to remember which component a name or URI resolved to (the
            lookup costs more than deciding); a component re-registered with new tags is
            decided on its old ones for at most this long (finite). `0` looks up every time.
        refuse_unknown_tasks: refuse `tasks/*` about a background task this process did not
            see started (another worker's, or one from before a restart), as a task of
            another principal is refused, instead of leaving it to the tasks extension,
            which answers any authenticated caller holding its id. For workers that share
            a task backend without sticky sessions.

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
        refuse_unknown_tasks: bool = False,
    ) -> None:
        if authenticator is not None and not callable(getattr(authenticator, "authenticate", None)):
            raise TypeError("authenticator must have an async authenticate(RequestInfo) method")
        if principal is not None and not isinstance(principal, Principal):
            raise TypeError(f"principal must be a guard Principal, not {type(principal).__name__}")
        self._authenticator = authenticator
        self._principal = principal
        self._fixed = principal if principal is not None else NO_AUTH_PRINCIPAL
        self._auth_method = getattr(authenticator, "method", None) or "none"
        # "no" is truthy: it would name the rules hiding components
        self.explicit_denials = flag("explicit_denials", explicit_denials)
        self.refuse_unknown_tasks = flag("refuse_unknown_tasks", refuse_unknown_tasks)
        self.server_name = server_name
        if telemetry is None or telemetry is True:
            self._telemetry: Telemetry = _default_telemetry()
        elif telemetry is False:
            self._telemetry = NoTelemetry()
        else:
            self._telemetry = telemetry
        self._cache = ResourceCache()
        self._answered: dict[tuple[Any, ...], Answered] = {}  # see `ListingFilter`
        self._seen: dict[int, None] = {}  # listings met once (their keys' hashes)
        self._session_shown: tuple[str, str] = ("", "")  # last session id and how it is shown
        self._cached_for: Any = None  # the server whose cache hints were made private
        # finite: "decided on its old tags for at most this long" must bound something
        self._lookups = LookupCache(seconds("lookup_ttl", lookup_ttl))
        self._task_owners: dict[str, tuple[tuple[Any, ...], Resource]] = {}  # see `TaskOwners`
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
        if watch is True:
            interval = _DEFAULT_WATCH_INTERVAL
        elif watch is not False and watch is not None and watch != 0:
            interval = seconds("watch", watch, positive=True, minimum=MIN_WAIT, maximum=MAX_WAIT)
        try:
            self._holder = PolicyHolder(
                policies,
                shadow=shadow,
                on_change=self._policies_changed,
                on_failure=lambda kept: self._quietly(self._policy_reload, "error", kept),
                on_loaded=self._record_policies,
                # counted apart: a draft that stopped loading must not page like the live set
                on_shadow_failure=lambda: self._quietly(self._policy_reload, "shadow_error", None),
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
        self._quietly(self._policy_reload, "ok", new)

    def _record_policies(self, policy_set: PolicySet) -> None:
        if self.audit is not None:
            try:
                self.audit.record_policies(policy_set)
            except Exception:  # a record store hiccup must not stop a reload
                logger.warning("could not record policy set %s", policy_set.hash[:12])

    def close(self) -> None:
        """Stop watching policies and flush decision records. Idempotent. The policies no
        longer change after it: `reload_policies`, `add_policy`, `remove_policy` and
        `set_shadow` raise `GuardClosedError`."""
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

    # ------------------------------------------------------------------ FastMCP dispatch

    async def __call__(self, context: MiddlewareContext[Any], call_next: CallNext[Any, Any]) -> Any:
        # The hooks `Middleware.__call__` would run, without the three wrapper layers it
        # builds around every message (~10 us a request): typed hooks in the interior
        # ("all"/"typed") passes, completion in the method-agnostic ("all"/"outer") ones.
        # At the root ("outer"), a component request only arrives after it failed before
        # reaching its handler; it passes through untouched, as the base class does.
        # The tasks extension's methods arrive there too: a task is its starter's.
        phase = _dispatch_phase.get()
        if phase != "outer":
            hook = self._typed_hooks.get(context.method)
            if hook is not None:
                return await hook(context, call_next)
        if phase != "typed":
            method = context.method
            if method == "completion/complete":
                return await self._on_complete(context, call_next)
            if method is not None and method.startswith("tasks/"):
                return await self._on_task(context, call_next)
        return await call_next(context)
