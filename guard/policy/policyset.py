"""`PolicySet`: policies compiled once into an immutable, indexed object, and the one
evaluator every part of MCP Guard decides with (middleware, CLI, replay, dashboard).

Order and combining
    All rules of all policies are ordered by `priority` (higher first), then by policy
    order, then by rule order in the policy. (mcp-auth-guard 1.0.0 sorts only within each
    file, so a high-priority rule in a later file loses to any rule of an earlier file.)
    `combining: first_match` (the default): the first rule that matches decides.
    `combining: deny_overrides`: any matching deny rule denies, else any matching allow rule
    allows. Policies that state different combining modes cannot be compiled together.

Default effect across several policies
    When no rule matches, the request is allowed only if **every** policy's
    `default_effect` is `allow`; one `deny` default denies. (mcp-auth-guard 1.0.0 lets a
    single `allow` default open everything.)

Fail closed
    An unauthenticated principal is denied before any rule (reason `unauthenticated`). A
    rule whose conditions are unknown (see `guard.policy.conditions`) does not match if it
    allows and matches if it denies; each such event is listed in `Decision.errors`. Any
    exception while deciding denies with reason `error`.

Content hash
    `PolicySet.hash` is the SHA-256 (hex) of, for each policy in order, the UTF-8 bytes of
    `"{len(name)}:{name}\\n{len(text)}:{text}\\n"` where `text` is `PolicySpec.text` (the
    canonical text the loader keeps; a spec built in Python without text is given its
    `guard.policy.dump.dump_spec` text, as a dict is, so the audit store can keep texts
    that hash to the set and replay can load them). The same policies in the same order
    give the same hash.

Indexing
    Rules are bucketed by request variant (kind, and whether a resource came through a
    template) and action. In a bucket a rule is filed under keys of which one must be hit
    for it to match: its exact component names / URIs / templates, else the literal prefix
    or suffix of its patterns, its tags, its namespaces, else its roles or literal user or
    agent ids; rules with none of these are scanned for every request of the bucket. A
    decision looks up only the keys of its request and merges the hits by global rule
    index, so the order above holds exactly and cost does not grow with the rule count.

Memo
    A decision that evaluated no condition depends only on the principal's user id, roles
    and agent id, on the component and on the action (the index and the matchers read
    nothing else): it is kept (up to `MEMO_SIZE` decisions, then all are forgotten at
    once) and served again for the same five, with the time of the lookup as `eval_us`.
    One that evaluated a condition is decided afresh every time. Components are told apart
    by identity (`Resource` is immutable; the middleware keeps one per component),
    principals by those three values, as authenticators make a new `Principal` per
    request. An entry holds its component weakly and goes with it: a `Resource` made for
    one request (an unknown name, a URI read through a template) leaves nothing behind
    once the request is over. A list of 100 tools costs a third less to decide this way.

```python
from guard.policy import AccessRequest, PolicySet, Principal, Resource, load_policies

policies = load_policies("policies.yaml")
decision = policies.decide(
    AccessRequest(Principal("alice", ("user",)), Resource("tool", "get_weather"), "call")
)
print(decision.allowed, decision.message)
```
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from time import perf_counter_ns
from typing import Any, Final

from guard.errors import PolicyError, PolicyProblem
from guard.policy._match import VARIANTS, CompiledRule, IndexKey, template_of
from guard.policy.conditions import Evaluation
from guard.policy.model import ACTIONS, AccessRequest, Decision, Reason, Resource
from guard.policy.spec import Combining, PolicySpec

__all__ = ["Explanation", "PolicySet", "RuleTrace"]

_MAX_EXTRA_BUCKETS: Final = 64  # buckets built on demand for unusual action names
MEMO_SIZE: Final = 8192  # decisions kept at most (see "Memo")


def _forget(memo: dict[tuple[Any, ...], Any], key: tuple[Any, ...], _: Any) -> None:
    """A memo entry's resource is gone: so is the entry."""
    memo.pop(key, None)


class _Bucket:
    """Candidate rules for one (variant, action): index tables plus the always-scanned rest."""

    __slots__ = ("affix", "agents", "anyrole", "exact", "ns", "rest", "roles", "tags", "users")

    def __init__(self, entries: Iterable[tuple[int, Sequence[IndexKey] | None]]) -> None:
        """`entries`: (rule index, its table keys or None to scan it), in rule order."""
        tables: dict[tuple[str, ...], dict[str, list[int]]] = {}
        rest: list[int] = []
        for index, keys in entries:
            if keys is None:
                rest.append(index)
                continue
            # once per key: a rule listing a value twice (`agent_id: [bot, bot]`) would
            # otherwise be a hit twice, and match twice
            for table, value in dict.fromkeys(keys):
                tables.setdefault(table, {}).setdefault(value, []).append(index)
        self._fill({t: {k: tuple(v) for k, v in d.items()} for t, d in tables.items()}, rest)

    def _fill(self, frozen: dict[tuple[str, ...], dict[str, tuple[int, ...]]],
              rest: Sequence[int]) -> None:  # fmt: skip
        self.rest = tuple(rest)
        self.exact = tuple((t[0], d) for t, d in frozen.items() if t[0] in ("name", "uri", "tpl"))
        self.affix = tuple(
            (t[1], t[0] == "pre", tuple(sorted({len(k) for k in d})), d)
            for t, d in frozen.items()
            if t[0] in ("pre", "suf")
        )
        self.tags = frozen.get(("tag",))
        self.ns = frozen.get(("ns",))
        self.roles = frozen.get(("role",))
        self.anyrole = frozen.get(("anyrole",), {}).get("", ())
        self.users = frozen.get(("user",))
        self.agents = frozen.get(("agent",))

    def only(self, keep: Sequence[bool]) -> _Bucket:
        """The same index restricted to the rules `keep` marks (e.g. those of one action)."""
        tables: dict[tuple[str, ...], dict[str, tuple[int, ...]]] = {}
        named: list[tuple[tuple[str, ...], Mapping[str, tuple[int, ...]]]]
        named = [((s,), d) for s, d in self.exact]
        named += [(("pre" if p else "suf", s), d) for s, p, _, d in self.affix]
        for name, d in (("tag", self.tags), ("ns", self.ns), ("role", self.roles),
                        ("user", self.users), ("agent", self.agents)):  # fmt: skip
            if d:
                named.append(((name,), d))
        if self.anyrole:
            named.append((("anyrole",), {"": self.anyrole}))
        for table, entries in named:
            kept = {k: ids for k, v in entries.items() if (ids := tuple(i for i in v if keep[i]))}
            if kept:
                tables[table] = kept
        bucket = object.__new__(_Bucket)
        bucket._fill(tables, [i for i in self.rest if keep[i]])
        return bucket


@dataclass(frozen=True, slots=True)
class RuleTrace:
    """How one rule fared for a request (see `PolicySet.explain`).

    Attributes:
        outcome: `matched`, `not_matched`, `unknown_skipped` (an allow rule whose
            conditions could not be evaluated) or `error` (evaluating it raised).
        failed: the part that did not match: `action`, `agent`, `component`,
            `condition N` (1-based), or None.
        deciding: whether this rule decided the request.
    """

    rule: str
    policy: str
    priority: int
    effect: str
    outcome: str
    failed: str | None = None
    detail: str = ""
    deciding: bool = False


@dataclass(frozen=True, slots=True)
class Explanation:
    """A decision plus a per-rule trace, in evaluation order."""

    decision: Decision
    steps: tuple[RuleTrace, ...]

    def __str__(self) -> str:
        d = self.decision
        lines = [f"{'ALLOW' if d.allowed else 'DENY'} ({d.reason}): {d.message}"]
        for s in self.steps:
            mark = "=>" if s.deciding else "  "
            why = f" [{s.failed}]" if s.failed else ""
            detail = f" {s.detail}" if s.detail else ""
            lines.append(
                f"{mark} {s.policy}/{s.rule} (priority {s.priority}, {s.effect}): "
                f"{s.outcome}{why}{detail}"
            )
        lines.extend(f"   error: {e}" for e in d.errors)
        return "\n".join(lines)


def _content_hash(specs: Sequence[PolicySpec]) -> str:
    return texts_hash((spec.name, spec.text) for spec in specs)


def _with_text(spec: PolicySpec) -> PolicySpec:
    """`spec`, given its canonical text if it has none (built in Python, not loaded)."""
    if spec.text:
        return spec
    from guard.policy.dump import dump_spec  # imported late: only hand-made specs need it

    return replace(spec, text=dump_spec(spec))


def texts_hash(named_texts: Iterable[tuple[str, str]]) -> str:
    """A policy set's content hash from its policies' names and texts, in load order:
    what the audit store checks its recorded texts against.

    ```python
    from guard import load_policies

    policies = load_policies({"name": "p", "rules": []})
    assert texts_hash((s.name, s.text) for s in policies.policies) == policies.hash
    ```
    """
    digest = hashlib.sha256()
    for name, text in named_texts:
        digest.update(f"{len(name)}:{name}\n{len(text)}:{text}\n".encode())
    return digest.hexdigest()


class PolicySet:
    """An immutable, compiled set of policies; `decide` is pure and synchronous.

    Build one with `PolicySet.from_specs` (the loader does) or `PolicySet.empty()`.

    Attributes:
        hash: content hash of the policies (see the module docs).
        policies: the policy specs, in order.
        names: the policy names, in order.
        rule_count: number of rules over all policies.
        combining: `first_match` or `deny_overrides`.
        default_allowed: whether a request no rule matches is allowed.
    """

    __slots__ = (
        "_base",
        "_buckets",
        "_default_message",
        "_default_policy",
        "_deny_overrides",
        "_extra",
        "_memo",
        "_rules",
        "combining",
        "default_allowed",
        "hash",
        "names",
        "policies",
        "rule_count",
    )

    hash: str
    policies: tuple[PolicySpec, ...]
    names: tuple[str, ...]
    rule_count: int
    combining: Combining
    default_allowed: bool

    @classmethod
    def empty(cls) -> PolicySet:
        """A policy set with no policies: it denies everything with reason `no_policy`."""
        return cls.from_specs(())

    @classmethod
    def from_specs(
        cls, specs: Sequence[PolicySpec], *, conditions: Mapping[str, Any] | None = None
    ) -> PolicySet:
        """Compile policy specs; raises `PolicyError` listing every problem found.

        Args:
            specs: the policies, in order (file order for a directory).
            conditions: custom conditions by name (default: those registered with
                `register_condition`). They are captured now.

        ```python
        from guard.policy.spec import PolicySpec, RuleSpec

        ps = PolicySet.from_specs([PolicySpec("svc", rules=(RuleSpec("all", "allow"),))])
        assert ps.rule_count == 1
        ```
        """
        return cls(specs, conditions=conditions)

    def __init__(
        self, specs: Sequence[PolicySpec], *, conditions: Mapping[str, Any] | None = None
    ) -> None:
        specs = tuple(specs)
        stated = {s.combining for s in specs if s.combining is not None}
        problems: list[PolicyProblem] = []
        if len(stated) > 1:
            problems.append(
                PolicyProblem(
                    f"policies disagree on combining ({', '.join(sorted(stated))})",
                    source=", ".join(s.source for s in specs if s.combining is not None),
                    field="combining",
                    hint="use the same `combining` in every policy, or state it in one",
                    code="combining_conflict",
                )
            )
        placed: list[tuple[int, int, int, PolicySpec]] = [
            (-rule.priority, p, r, spec)
            for p, spec in enumerate(specs)
            for r, rule in enumerate(spec.rules)
        ]
        placed.sort(key=lambda t: t[:3])
        rules: list[CompiledRule] = []
        for index, (_, _, r, spec) in enumerate(placed):
            rule_spec = spec.rules[r]
            try:
                rules.append(CompiledRule(rule_spec, spec, index, conditions))
            except PolicyError as exc:
                problems.extend(
                    replace(
                        pr,
                        source=spec.source,
                        line=pr.line or rule_spec.line,
                        field=f"rules[{r}].conditions ({rule_spec.name})",
                    )
                    for pr in exc.problems
                )
        if problems:
            raise PolicyError(problems)
        combining: Combining = stated.pop() if len(stated) == 1 else "first_match"
        specs = tuple(map(_with_text, specs))
        self.policies = specs
        self.names = tuple(s.name for s in specs)
        self.rule_count = len(rules)
        self.combining = combining
        self._deny_overrides = combining == "deny_overrides"
        self.hash = _content_hash(specs)
        self._rules: tuple[CompiledRule, ...] = tuple(rules)
        deny_default = next((s for s in specs if s.default_effect != "allow"), None)
        self.default_allowed = bool(specs) and deny_default is None
        if deny_default is not None:
            self._default_policy: str | None = deny_default.name
            self._default_message: str = (
                f"denied: no rule matched; default of policy {deny_default.name!r} is deny"
            )
        else:
            self._default_policy = specs[0].name if len(specs) == 1 else None
            self._default_message = "allowed: no rule matched; every policy's default is allow"
        # Work out each rule's keys once per variant and its actions once per action name;
        # a bucket is then a cheap merge (compiling 10,000 rules stays well under a second).
        # Index every rule once per request variant; a bucket per (variant, action) is then
        # that index restricted to the rules whose actions match (shared when all do).
        # Only the MCP actions get theirs now: other action names (the engine API's own)
        # get theirs when first asked (`_bucket`); building one per literal action a policy
        # names would cost rules x actions (minutes for a file of 100,000 one-action rules).
        self._base: dict[str, _Bucket] = {
            v: _Bucket((r.index, r.index_keys(v)) for r in rules if r.by_variant[v] is not None)
            for v in VARIANTS
        }
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        for action in sorted(ACTIONS):
            ok = [r.action_ok(action) for r in rules]
            for v, base in self._base.items():
                self._buckets[(v, action)] = base if all(ok) else base.only(ok)
        # (user id, roles, agent id, id(resource), action) -> (weak reference to the
        # resource, decision or None when deciding it evaluated a condition)
        self._memo: dict[tuple[Any, ...], tuple[weakref.ref[Resource], Decision | None]] = {}
        self._extra: dict[tuple[str, str], _Bucket] = {}

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, "_extra"):
            raise AttributeError("PolicySet is immutable")
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        return (
            f"PolicySet(names={list(self.names)}, rules={self.rule_count}, "
            f"combining={self.combining!r}, hash={self.hash[:12]!r})"
        )

    # -- deciding ---------------------------------------------------------------------

    def _bucket(self, variant: str, action: str) -> _Bucket:
        key = (variant, action)
        bucket: _Bucket | None = self._buckets.get(key) or self._extra.get(key)
        if bucket is None:
            base = self._base.get(variant)
            if base is None:
                raise ValueError(f"unknown resource kind {variant!r}")
            bucket = base.only([r.action_ok(action) for r in self._rules])
            if len(self._extra) < _MAX_EXTRA_BUCKETS:
                self._extra[key] = bucket  # a memo, not state: same input, same bucket
        return bucket

    @staticmethod
    def _candidates(bucket: _Bucket, request: AccessRequest) -> Sequence[int]:
        res = request.resource
        parts: list[Sequence[int]] = []
        if bucket.rest:
            parts.append(bucket.rest)
        for subject, table in bucket.exact:
            hit = table.get(res.name if subject == "name" else _subject(res, subject))
            if hit:
                parts.append(hit)
        for subject, prefix, lengths, table in bucket.affix:
            text = res.name if subject == "name" else _subject(res, subject)
            size = len(text)
            for n in lengths:
                if n > size:
                    break
                hit = table.get(text[:n] if prefix else text[size - n :])
                if hit:
                    parts.append(hit)
        if bucket.tags is not None:
            for tag in res.tags:
                hit = bucket.tags.get(tag)
                if hit:
                    parts.append(hit)
        if bucket.ns is not None and res.namespace is not None:
            hit = bucket.ns.get(res.namespace)
            if hit:
                parts.append(hit)
        principal = request.principal
        if bucket.roles is not None:
            for role in principal.roles:
                hit = bucket.roles.get(role)
                if hit:
                    parts.append(hit)
        if bucket.anyrole and principal.roles:
            parts.append(bucket.anyrole)
        if bucket.users is not None:
            hit = bucket.users.get(principal.user_id or "")
            if hit:
                parts.append(hit)
        if bucket.agents is not None:
            hit = bucket.agents.get(principal.agent_id or "")
            if hit:
                parts.append(hit)
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return ()
        return sorted(set().union(*parts))

    def decide(self, request: AccessRequest) -> Decision:
        """Decide one request. Pure: no I/O, no logging, no global state (the memo of
        decisions that evaluated no condition, see the module docs, only saves work).

        Never raises: an exception while deciding denies with reason `error`.

        ```python
        decision = policies.decide(request)
        decision.allowed, decision.reason, decision.rule, decision.matched_rules
        ```
        """
        start = perf_counter_ns()
        try:
            if not request.principal.authenticated:
                return Decision(
                    False, Reason.UNAUTHENTICATED, None, None, (), (), self.hash, 0,
                    (perf_counter_ns() - start) / 1000, "denied: the caller is not authenticated",
                )  # fmt: skip
            if not self.policies:
                return Decision(
                    False, Reason.NO_POLICY, None, None, (), (), self.hash, 0,
                    (perf_counter_ns() - start) / 1000, "denied: no policy is loaded",
                )  # fmt: skip
            resource = request.resource
            principal = request.principal
            variant: str = resource.kind
            if resource.template is not None and variant == "resource":
                variant = "resource+template"  # as variant_of(); inlined on the hot path
            bucket = self._buckets.get((variant, request.action))
            if bucket is None:
                bucket = self._bucket(variant, request.action)
            try:
                key: tuple[Any, ...] | None = (
                    principal.user_id, principal.roles, principal.agent_id, id(resource),
                    request.action,
                )  # fmt: skip
                hit = self._memo.get(key)  # type: ignore[arg-type]
            except TypeError:  # an unhashable role or id: decided without the memo
                key = hit = None
            if hit is not None and hit[0]() is resource:  # alive, so its id is its own
                d = hit[1]
                if d is not None:
                    return Decision(
                        d.allowed, d.reason, d.rule, d.policy, d.matched_rules, (), self.hash,
                        d.rules_evaluated, (perf_counter_ns() - start) / 1000, d.message,
                    )  # fmt: skip
                key = None  # it evaluates conditions: known, nothing more to keep
            return self._decide(request, bucket, variant, start, key)
        except Exception as exc:  # fail closed, whatever went wrong
            return self._failed(exc, start)

    def memoized(self, request: AccessRequest) -> bool:
        """Whether `decide(request)` now answers from the memo: decided before, with no
        condition evaluated, so the answer depends on nothing but the principal's user id,
        roles and agent id, the component (this very object) and the action. A caller may
        then reuse the answer for those alone (the middleware does, for listings)."""
        principal, resource = request.principal, request.resource
        if not principal.authenticated or not self.policies:
            return False
        try:
            key = (principal.user_id, principal.roles, principal.agent_id, id(resource),
                   request.action)  # fmt: skip
            hit = self._memo.get(key)
        except TypeError:  # unhashable: never kept
            return False
        return hit is not None and hit[0]() is resource and hit[1] is not None

    def _decide(
        self,
        request: AccessRequest,
        bucket: _Bucket,
        variant: str,
        start: int,
        key: tuple[Any, ...] | None,
    ) -> Decision:
        """`decide`, past the checks and the memo: the candidate rules of `bucket`. The
        decision is kept in the memo under `key`, if given (see the module docs)."""
        resource = request.resource
        principal = request.principal
        rules = self._rules
        candidates = self._candidates(bucket, request)
        ev: Evaluation | None = None
        errors: list[str] | None = None
        matched: list[str] | None = None
        deciding: CompiledRule | None = None
        count = 0
        for index in candidates:
            rule = rules[index]
            count += 1
            if rule.agent is not None and not rule.agent.match(principal):
                continue
            if not rule.component_ok(resource, variant):
                continue
            if rule.conditions:
                if ev is None:
                    ev = Evaluation(request)
                single = rule.condition  # the common case: one condition, one call
                outcome = single.evaluate(ev) if single is not None else rule.conditions_ok(ev)
                if outcome is False:
                    continue
                if outcome is None:
                    if errors is None:
                        errors = []
                    verdict = "allow rule skipped" if rule.allow else "deny rule applied"
                    errors.append(f"{rule.label}: {getattr(ev, 'why', '?')} ({verdict})")
                    if rule.allow:
                        continue
            if not self._deny_overrides:
                deciding = rule
                break
            if matched is None:
                matched = []
            matched.append(rule.label)
            if deciding is None or (deciding.allow and not rule.allow):
                deciding = rule
        errs = tuple(errors) if errors else ()
        if deciding is None:
            decision = Decision(
                self.default_allowed, Reason.DEFAULT, None, self._default_policy,
                tuple(matched) if matched else (), errs, self.hash, count,
                (perf_counter_ns() - start) / 1000, self._default_message,
            )  # fmt: skip
        else:
            decision = Decision(
                deciding.allow, Reason.RULE, deciding.name, deciding.policy,
                tuple(matched) if matched else deciding.matched, errs, self.hash, count,
                (perf_counter_ns() - start) / 1000, deciding.message,
            )  # fmt: skip
        if key is not None:
            memo = self._memo
            if len(memo) >= MEMO_SIZE:
                memo.clear()
            # no condition evaluated: nothing but the key decided it. The entry leaves with
            # its resource (before the resource's id can be reused).
            ref = weakref.ref(resource, partial(_forget, memo, key))
            memo[key] = (ref, decision if ev is None else None)
        return decision

    def _failed(self, exc: Exception, start: int) -> Decision:
        """The denial an exception while deciding becomes (fail closed)."""
        return Decision(
            False,
            Reason.ERROR,
            None,
            None,
            (),
            (f"{type(exc).__name__}: {exc}"[:300],),
            self.hash,
            0,
            (perf_counter_ns() - start) / 1000,
            "denied: error while deciding",
        )

    # -- explaining -------------------------------------------------------------------

    def explain(self, request: AccessRequest) -> Explanation:
        """The decision plus how every rule fared, in evaluation order (for `mcp-guard
        explain`). The decision is `decide`'s; the trace uses the same compiled rules.

        ```python
        print(policies.explain(request))
        # DENY (rule): denied by rule 'no_delete' of policy 'svc'
        # => svc/no_delete (priority 200, deny): matched
        #    svc/users (priority 100, allow): not_matched [agent]
        ```
        """
        if request.time is None:  # one clock for the decision and the trace
            request = replace(request, time=datetime.now(UTC))
        decision = self.decide(request)
        if decision.reason in (Reason.UNAUTHENTICATED, Reason.NO_POLICY):
            return Explanation(decision, ())
        ev = Evaluation(request)
        steps = []
        for rule in self._rules:
            try:
                outcome, failed, detail = _trace(rule, request, ev)
            except Exception as exc:  # the decision already failed closed; say where
                outcome, failed, detail = "error", None, f"{type(exc).__name__}: {exc}"[:300]
            deciding = (
                decision.reason == Reason.RULE
                and rule.name == decision.rule
                and rule.policy == decision.policy
                and outcome == "matched"
            )
            steps.append(
                RuleTrace(
                    rule.name,
                    rule.policy,
                    rule.priority,
                    rule.effect,
                    outcome,
                    failed,
                    detail,
                    deciding,
                )
            )
        # Only the first rule with the deciding name/policy that matched is the decider.
        seen = False
        for i, step in enumerate(steps):
            if step.deciding:
                if seen:
                    steps[i] = replace(step, deciding=False)
                seen = True
        return Explanation(decision, tuple(steps))


def _subject(resource: Any, subject: str) -> str:
    if subject == "name":
        return str(resource.name)
    if subject == "uri":
        return str(resource.uri if resource.uri is not None else resource.name)
    return template_of(resource)


def _trace(
    rule: CompiledRule, request: AccessRequest, ev: Evaluation
) -> tuple[str, str | None, str]:
    if not rule.action_ok(request.action):
        actions = list(rule.spec.actions)
        return "not_matched", "action", f"action {request.action!r} not in {actions}"
    if not rule.agent_ok(request.principal):
        return "not_matched", "agent", "the principal does not fit the rule's agents"
    if not rule.component_ok(request.resource):
        return "not_matched", "component", f"the {request.resource.kind} does not fit the rule"
    unknown: tuple[int, str] | None = None
    for n, cond in enumerate(rule.conditions, 1):
        value = cond.evaluate(ev)
        if value is False:
            return "not_matched", f"condition {n}", f"`{cond.text}` is false"
        if value is None and unknown is None:
            unknown = (n, getattr(ev, "why", "?"))
    if unknown is not None:
        n, why = unknown
        if rule.allow:
            return "unknown_skipped", f"condition {n}", f"{why} (fail closed: allow skipped)"
        return "matched", f"condition {n}", f"{why} (fail closed: deny applies)"
    return "matched", None, ""
