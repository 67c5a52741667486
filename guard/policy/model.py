"""The nouns of an authorization decision: who (`Principal`), what (`Resource`),
the question (`AccessRequest`) and the answer (`Decision`).

These are plain immutable values with no behaviour beyond construction, so that the
live middleware, the CLI, replay and the tests all speak the same language.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, Literal

__all__ = [
    "ACTIONS",
    "KINDS",
    "UNKNOWN_COMPONENT",
    "AccessRequest",
    "Decision",
    "Kind",
    "Principal",
    "Reason",
    "Resource",
]

Kind = Literal["tool", "resource", "resource_template", "prompt"]
KINDS: Final = ("tool", "resource", "resource_template", "prompt")
ACTIONS: Final = ("call", "read", "get", "list")
# what metrics and span names call a component the server does not have (`Resource.found`)
UNKNOWN_COMPONENT: Final = "(unknown)"

_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


class Reason:
    """Bounded reason codes carried by `Decision.reason` (safe as metric labels).

    Authentication failures use the authenticator's own codes (`missing_credentials`,
    `invalid_token`, `expired`, `untrusted_proxy`, ...).
    """

    RULE: Final = "rule"  # a rule decided; its effect is `Decision.allowed`
    DEFAULT: Final = "default"  # no rule matched; the policy set's default effect decided
    ERROR: Final = "error"  # something failed while deciding: denied (fail closed)
    UNAUTHENTICATED: Final = "unauthenticated"  # the principal is not authenticated
    NO_POLICY: Final = "no_policy"  # no policy loaded: denied
    # the request was cancelled (its caller left) before it was decided: denied, recorded
    CANCELLED: Final = "cancelled"
    # a background task's result or steering asked for by another principal than the one
    # that started it (`tasks/*`): denied, recorded
    NOT_TASK_OWNER: Final = "not_task_owner"
    # ... about a task this process did not see started, with `refuse_unknown_tasks`
    UNKNOWN_TASK: Final = "unknown_task"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling.

    Attributes:
        user_id: stable user identifier (`sub` of a token, the user an API key maps to, ...).
        roles: roles granted to the principal.
        agent_id: the AI agent / OAuth client acting for the user, when known.
        claims: allow-listed claims only; never a raw credential.
        authenticated: whether an authenticator vouched for this principal.
        auth_method: `jwt`, `api_key`, `header`, `fastmcp`, `stdio`, `none`, ...
        key_id: a short fingerprint of the credential used (never the credential itself).
    """

    user_id: str | None
    roles: tuple[str, ...] = ()
    agent_id: str | None = None
    claims: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    authenticated: bool = True
    auth_method: str | None = None
    key_id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.roles, tuple):
            if isinstance(self.roles, str | bytes):  # its letters would be the roles
                raise TypeError(f"roles must be a sequence of names, not {self.roles!r}")
            object.__setattr__(self, "roles", tuple(self.roles))

    @classmethod
    def anonymous(cls, auth_method: str | None = "none") -> Principal:
        """An unauthenticated caller with no roles."""
        return cls(user_id=None, roles=(), authenticated=False, auth_method=auth_method)


@dataclass(frozen=True, slots=True, weakref_slot=True)  # weakly held by PolicySet's memo
class Resource:
    """What is being accessed: one MCP component.

    Attributes:
        kind: `tool`, `resource`, `resource_template` or `prompt`.
        name: the component's name (for a resource, its name as the server lists it).
        tags: the component's tags.
        namespace: the tool's namespace (from FastMCP metadata or a mounted prefix).
        version: the component's version, when it declares one.
        uri: for a resource, its URI; for a resource template, the URI template.
        template: for a resource read through a template, that template's URI template.
        meta: other component metadata.
        found: False when the server has no such component: the name (or URI) is only the
            caller's text, so metrics and span names do not carry it.
    """

    kind: Kind
    name: str
    tags: frozenset[str] = frozenset()
    namespace: str | None = None
    version: str | None = None
    uri: str | None = None
    template: str | None = None
    meta: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    found: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.tags, frozenset):
            if isinstance(self.tags, str | bytes):  # its letters would be the tags
                raise TypeError(f"tags must be a collection of names, not {self.tags!r}")
            object.__setattr__(self, "tags", frozenset(self.tags))


@dataclass(frozen=True, slots=True, init=False)
class AccessRequest:
    """The question put to a `PolicySet`: may `principal` perform `action` on `resource`?

    Attributes:
        principal: who is asking.
        resource: what they want.
        action: `call` (tools), `read` (resources), `get` (prompts) or `list`.
        args: the call's arguments (tools) or template parameters (resources).
        time: the clock value to decide with; time conditions use it, so a recorded
            decision can be re-evaluated exactly. `None` means "now" at decision time.
        method: the MCP method, e.g. `tools/call`.
        context: other request facts (transport, session id, ...) conditions may read.
    """

    principal: Principal
    resource: Resource
    action: str
    args: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    time: datetime | None = None
    method: str | None = None
    context: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __init__(
        self,
        principal: Principal,
        resource: Resource,
        action: str,
        args: Mapping[str, Any] = _EMPTY,
        time: datetime | None = None,
        method: str | None = None,
        context: Mapping[str, Any] = _EMPTY,
    ) -> None:
        # One is made per decision (a hundred per list of tools): filled as its twin (see
        # `_Twin`), at under two thirds of the cost of setting each slot's descriptor.
        r: Any = self
        _set(r, "__class__", _RequestTwin)
        r.principal = principal
        r.resource = resource
        r.action = action
        r.args = args
        r.time = time
        r.method = method
        r.context = context
        r.__class__ = AccessRequest


@dataclass(frozen=True, slots=True, init=False)
class Decision:
    """The answer, explaining itself.

    Attributes:
        allowed: the verdict.
        reason: bounded code from `Reason` (or an authentication failure code).
        rule: name of the deciding rule, if a rule decided.
        policy: name of the policy holding the deciding rule (or whose default decided).
        matched_rules: `policy/rule` of every rule that matched, in evaluation order.
        errors: problems met while deciding (a condition that could not be evaluated, ...).
        policy_hash: content hash of the policy set that decided.
        rules_evaluated: how many rules were examined.
        eval_us: time spent deciding, microseconds.
        message: a human-readable explanation.
    """

    allowed: bool
    reason: str
    rule: str | None = None
    policy: str | None = None
    matched_rules: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    policy_hash: str = ""
    rules_evaluated: int = 0
    eval_us: float = 0.0
    message: str = ""

    def __init__(
        self,
        allowed: bool,
        reason: str,
        rule: str | None = None,
        policy: str | None = None,
        matched_rules: tuple[str, ...] = (),
        errors: tuple[str, ...] = (),
        policy_hash: str = "",
        rules_evaluated: int = 0,
        eval_us: float = 0.0,
        message: str = "",
    ) -> None:
        d: Any = self  # filled as its twin, as an AccessRequest is
        _set(d, "__class__", _DecisionTwin)
        d.allowed = allowed
        d.reason = reason
        d.rule = rule
        d.policy = policy
        d.matched_rules = matched_rules
        d.errors = errors
        d.policy_hash = policy_hash
        d.rules_evaluated = rules_evaluated
        d.eval_us = eval_us
        d.message = message
        d.__class__ = Decision


# A frozen dataclass refuses attribute writes, so its constructor could only set each slot
# through its descriptor (a call each) or `object.__setattr__`. `AccessRequest` and
# `Decision` are made on every decision instead as a twin: a plain class with the same
# slots, whose fields are written as any attribute is, and which then becomes the real
# class (CPython lets an object change between classes of one layout: same slots, same
# base). The result is an ordinary frozen instance (`tests/policy/test_model.py`).
_set: Final = object.__setattr__


class _RequestTwin:
    __slots__ = AccessRequest.__slots__


class _DecisionTwin:
    __slots__ = Decision.__slots__
