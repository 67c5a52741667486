"""mcp-auth-guard's policy API as a thin layer over the guard's loader and `PolicySet`.

Code written for mcp-auth-guard runs with `mcp_auth_guard` replaced by `guard`:

```python
from guard.policy import PolicyEngine, PolicyLoader
from guard.schemas import AuthContext, ResourceContext, ToolResource

engine = PolicyEngine([PolicyLoader.load_from_file("policies.yaml")])
decision = await engine.evaluate(
    AuthContext(user_id="alice", roles=["user"], authenticated=True),
    ResourceContext(resource_type="tool", resource=ToolResource(name="get_weather"),
                    action="call", method="tools/call"),
)
```

Nothing here decides anything: `PolicyEngine.evaluate` converts the contexts into an
`AccessRequest` and asks the one `PolicySet.decide`. Loading goes through `parse_policies`,
so a bad file fails with every problem listed (mcp-auth-guard skipped it silently).
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from guard.policy.model import Decision
from guard.policy.spec import PolicySpec, RuleSpec
from guard.schemas.auth import AuthContext
from guard.schemas.policy import PolicyConfig, PolicyRule
from guard.schemas.resource import ResourceContext
from guard.schemas.response import AuthDecision, DecisionReason

if TYPE_CHECKING:
    from guard.policy.policyset import PolicySet

__all__ = [
    "PolicyCondition",
    "PolicyEngine",
    "PolicyEvaluator",
    "PolicyLoader",
    "register_custom",
    "to_spec",
]


class _HasSpec(Protocol):
    def to_spec(self) -> PolicySpec: ...


PolicyLike = PolicySpec | PolicyConfig | _HasSpec | str | Path | Mapping[str, Any]


class PolicyCondition(abc.ABC):
    """Base class of custom conditions written in Python.

    `evaluate(context)` receives a mapping with `user` (`id`, `roles`, `agent_id`,
    `authenticated`, `claims`), `tool` (`name`, `namespace`, `version`, `tags`, `args`,
    `metadata`) and `request` (`action`, `method`, `resource_type`, `timestamp`, `time`)
    and returns whether the condition holds. An exception counts as "cannot tell": an
    allow rule does not apply and a deny rule does (fail closed).

    Register one by name, then use it in YAML as `{custom: NAME}` or in the builder as
    `.when_custom(NAME)`:

    ```python
    from guard.policy import PolicyCondition, register_condition

    class BusinessHours(PolicyCondition):
        def evaluate(self, context):
            return 9 <= context["request"]["time"].hour < 17

    register_condition("business_hours", BusinessHours())
    ```
    """

    name: ClassVar[str | None] = None
    """Name used when registered without one (default: the class name in snake_case)."""

    @abc.abstractmethod
    def evaluate(self, context: Mapping[str, Any]) -> bool:
        """Whether the condition holds for the request described by `context`."""

    def register(self, name: str | None = None) -> str:
        """Register this condition for use in policies; returns the name it got."""
        return register_custom(self, name)


def register_custom(condition: Any, name: str | None = None) -> str:
    """Register `condition` (anything with `evaluate(context)`) by name; returns the name.

    The name defaults to the condition's `name` attribute, else its class name in
    snake_case. Registering again replaces the earlier condition of that name.
    """
    from guard.policy.builder import snake_case
    from guard.policy.conditions import register_condition

    if not callable(getattr(condition, "evaluate", None)):
        raise TypeError(f"a custom condition needs an evaluate(context) method: {condition!r}")
    key = str(name or getattr(condition, "name", None) or snake_case(type(condition).__name__))
    register_condition(key, condition)
    return key


def to_spec(policy: PolicySpec | PolicyConfig | _HasSpec) -> PolicySpec:
    """The `PolicySpec` of a spec, a `PolicyConfig`, a built policy, or any `to_spec()` owner."""
    if isinstance(policy, PolicySpec):
        return policy
    spec = policy.to_spec()
    if not isinstance(spec, PolicySpec):
        raise TypeError(f"{type(policy).__name__}.to_spec() did not return a PolicySpec")
    return spec


def _configs(policies: Iterable[PolicyLike]) -> list[Any]:
    # keep what the caller gave (mcp-auth-guard exposed it as `engine.policies`), but
    # sources that are text, paths or dicts are parsed into one editable config per policy
    out: list[Any] = []
    for p in policies:
        if isinstance(p, str | Path | Mapping):
            from guard.policy.loader import parse_policies

            out.extend(PolicyConfig.from_spec(s) for s in parse_policies(p))
        elif isinstance(p, PolicySpec) or callable(getattr(p, "to_spec", None)):
            out.append(p)
        else:
            raise TypeError(f"not a policy: {p!r}")
    return out


def _compile(policies: list[Any]) -> PolicySet:
    # through the loader, which checks a built policy as if written in YAML (duplicate rule
    # names, empty groups, ...): compiling the specs directly skipped those checks
    from guard.policy.loader import load_policies

    return load_policies([to_spec(p) for p in policies])


def _one(specs: list[PolicySpec], where: object) -> PolicyConfig:
    if len(specs) != 1:
        raise ValueError(
            f"{where} holds {len(specs)} policies; use PolicyLoader.load_all or load_policies"
        )
    return PolicyConfig.from_spec(specs[0])


class PolicyLoader:
    """mcp-auth-guard's loader: each method returns editable `PolicyConfig` objects.

    Problems raise `PolicyError` listing every one, with file, line and field.

    Example:
        ```python
        config = PolicyLoader.load_from_file("policies.yaml")
        config.rules[0].priority = 500          # edit, then use it anywhere policies go
        PolicyLoader.save_to_file(config, "out/policies.yaml")
        ```
    """

    @staticmethod
    def load_from_file(file_path: str | Path) -> PolicyConfig:
        """Load the one policy in a YAML file.

        Raises:
            FileNotFoundError: no such file (as mcp-auth-guard did).
            PolicyError: the file is not a valid policy.
        """
        from guard.policy.loader import parse_policies

        path = Path(file_path)
        if not path.is_file():
            raise FileNotFoundError(f"Policy file not found: {path}")
        return _one(parse_policies(path), path)

    @staticmethod
    def load_from_directory(directory: str | Path) -> list[PolicyConfig]:
        """Load every `*.yaml` / `*.yml` policy in a directory.

        Unlike mcp-auth-guard, a malformed file is an error, not silently skipped.
        """
        from guard.policy.loader import parse_policies

        path = Path(directory)
        if not path.exists():
            raise FileNotFoundError(f"Directory not found: {path}")
        if not path.is_dir():
            raise ValueError(f"Path is not a directory: {path}")
        return [PolicyConfig.from_spec(s) for s in parse_policies(path)]

    @staticmethod
    def load_from_string(text: str) -> PolicyConfig:
        """Load one policy from YAML text."""
        from guard.policy.loader import parse_policies

        return _one(parse_policies(text), "the text")

    @staticmethod
    def load_from_dict(data: Mapping[str, Any]) -> PolicyConfig:
        """Load one policy from a dict in the YAML format."""
        from guard.policy.loader import parse_policies

        return _one(parse_policies(dict(data)), "the dict")

    @staticmethod
    def load_all(source: str | Path | Mapping[str, Any] | list[Any]) -> list[PolicyConfig]:
        """Load every policy from a file, directory, YAML text, dict or list."""
        from guard.policy.loader import parse_policies

        return [PolicyConfig.from_spec(s) for s in parse_policies(source)]

    @staticmethod
    def validate_policy_file(file_path: str | Path) -> bool:
        """Whether the file loads (use `mcp-guard validate` to see the problems)."""
        from guard.errors import GuardError

        try:
            PolicyLoader.load_from_file(file_path)
        except (GuardError, OSError, ValueError):
            return False
        return True

    @staticmethod
    def save_to_file(policy: PolicySpec | PolicyConfig | _HasSpec, file_path: str | Path) -> None:
        """Write the policy's canonical YAML to `file_path` (parent folders are created)."""
        from guard.policy.dump import dump_spec

        path = Path(file_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump_spec(to_spec(policy)), encoding="utf-8")


class PolicyEngine:
    """mcp-auth-guard's engine: `await engine.evaluate(auth_ctx, resource_ctx)`.

    It compiles its policies once into a `PolicySet` (recompiled after `add_policy` /
    `remove_policy`) and decides with it. Priority is global across policies and the
    default effect follows the `PolicySet`'s rule, which is where it differs from
    mcp-auth-guard (see the README's compatibility section).

    Example:
        ```python
        engine = PolicyEngine([my_policy])
        decision = engine.evaluate_sync(auth_ctx, resource_ctx)
        decision.allowed, decision.matched_rule, decision.evaluation_time_ms
        ```
    """

    def __init__(self, policies: Iterable[PolicyLike] = ()) -> None:
        self.policies: list[Any] = _configs(policies)
        self._set = _compile(self.policies)

    @property
    def policy_set(self) -> PolicySet:
        """The compiled `PolicySet` every decision is made with."""
        return self._set

    async def evaluate(
        self, auth_context: AuthContext, resource_context: ResourceContext
    ) -> AuthDecision:
        """Decide one request (see `evaluate_sync`)."""
        return self.evaluate_sync(auth_context, resource_context)

    def evaluate_sync(
        self, auth_context: AuthContext, resource_context: ResourceContext
    ) -> AuthDecision:
        """Decide one request; the guard's full `Decision` is in `.decision`.

        An unauthenticated context is denied before any rule, as in mcp-auth-guard; an
        error while deciding denies.
        """
        start = time.perf_counter()
        try:
            request = resource_context.to_access_request(
                auth_context.to_principal(), session_id=auth_context.session_id
            )
            # the PolicySet denies an unauthenticated principal before any rule
            decision = self._set.decide(request)
        except Exception as exc:  # fail closed; the message names the class only
            return AuthDecision(
                allowed=False,
                reason=DecisionReason.CONDITION_FAILED,
                message=f"Error while deciding: {type(exc).__name__}",
                evaluation_time_ms=(time.perf_counter() - start) * 1000.0,
            )
        result = AuthDecision.from_decision(decision)
        result.evaluation_time_ms = (time.perf_counter() - start) * 1000.0
        return result

    def add_policy(self, policy: PolicyLike) -> None:
        """Add a policy (or every policy of a source) and recompile.

        A policy with the name of one already here replaces it, as `middleware.add_policy`
        does (mcp-auth-guard kept both, and the older one shadowed the new one's rules).
        """
        added = _configs([policy])
        names = {p.name for p in added}
        policies = [p for p in self.policies if p.name not in names] + added
        self._set = _compile(policies)  # a policy that does not load leaves the engine as it was
        self.policies = policies

    def remove_policy(self, policy_name: str) -> bool:
        """Remove the first policy named `policy_name`; whether one was removed."""
        for i, p in enumerate(self.policies):
            if p.name == policy_name:
                del self.policies[i]
                self._set = _compile(self.policies)
                return True
        return False

    def get_policy(self, name: str) -> Any:
        """The policy named `name`, or `None`."""
        return next((p for p in self.policies if p.name == name), None)

    def list_policies(self) -> list[str]:
        """Names of the policies, in order."""
        return [str(p.name) for p in self.policies]


class PolicyEvaluator:
    """mcp-auth-guard's per-rule evaluator: does one rule match a request?

    It compiles the single rule into its own `PolicySet`, so it is meant for tests and
    debugging, not for the request path (use `PolicyEngine` or `PolicySet.decide`).

    Example:
        ```python
        applies = await PolicyEvaluator().evaluate_rule(config.rules[0], auth_ctx, resource_ctx)
        ```
    """

    async def evaluate_rule(
        self,
        rule: PolicyRule | RuleSpec,
        auth_context: AuthContext,
        resource_context: ResourceContext,
    ) -> bool:
        """Whether `rule` applies to the request."""
        from guard.policy.policyset import PolicySet

        spec = rule if isinstance(rule, RuleSpec) else rule.to_spec()
        policy_set = PolicySet.from_specs([PolicySpec(name="rule", rules=(spec,))])
        request = resource_context.to_access_request(auth_context.to_principal())
        decision: Decision = policy_set.decide(request)
        return decision.rule == spec.name
