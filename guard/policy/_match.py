"""Compiled rules: matchers for actions, agents and components, and the index keys a rule
can be found under.

A rule applies to a request's component by `Resource.kind`:

- `tool`: the rule's `tools` matcher (names, patterns, namespaces, tags: each given one
  must hold; tags are any-of);
- `resource`: `resources`, matched on the **URI** (`uris`, `patterns`, `schemes`, `tags`;
  the name stands in when a resource has no URI). For a resource read through a template
  (`Resource.template` set), a `resource_templates` matcher applies too: either matching is
  enough. (mcp-auth-guard 1.0.0 matched `uris`/`schemes` against the name: a bug.)
- `resource_template`: `resource_templates` (`uri_templates`, `patterns` on the URI
  template, `names`, `tags`);
- `prompt`: `prompts` (names, patterns, tags).

Legacy rule kept from mcp-auth-guard: a rule with a `tools` matcher but no matcher for the
request's kind applies its `tools` matcher to that resource or prompt by name. A rule with
no component matcher at all applies to every kind; a rule whose matchers are all for other
kinds does not apply. Empty lists (`names: []`) are "not given", as in mcp-auth-guard.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from fnmatch import translate
from typing import Any, Final

from guard.policy.conditions import CompiledCondition, Evaluation, compile_condition
from guard.policy.model import Principal, Resource
from guard.policy.spec import (
    AgentMatch,
    PolicySpec,
    PromptMatch,
    ResourceMatch,
    RuleSpec,
    TemplateMatch,
    ToolMatch,
)

__all__ = ["VARIANTS", "CompiledRule", "IndexKey", "glob_regex", "literal_affix", "variant_of"]

_META: Final = frozenset("*?[")

# Index keys are (table, value). Tables: ("name",) / ("uri",) / ("tpl",) exact values;
# ("pre", subject) / ("suf", subject) literal prefixes / suffixes of patterns on a subject
# (name, uri or tpl); ("tag",); ("ns",); ("role",); ("anyrole",) with value ""; ("user",);
# ("agent",).
IndexKey = tuple[tuple[str, ...], str]

# Request variants a bucket is built for: the kind, and for resources whether a template
# was used (which brings `resource_templates` matchers into play).
VARIANTS: Final = ("tool", "resource", "resource+template", "resource_template", "prompt")


def variant_of(resource: Resource) -> str:
    if resource.kind == "resource" and resource.template is not None:
        return "resource+template"
    return resource.kind


def glob_regex(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regex matching any of the fnmatch patterns (case-sensitive); None if none."""
    parts = [translate(p) for p in patterns]
    return re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None


def literal_affix(pattern: str) -> tuple[str, str]:
    """The literal text before the first and after the last glob metacharacter."""
    first = next((i for i, c in enumerate(pattern) if c in _META), len(pattern))
    if first == len(pattern):
        return pattern, pattern
    last = max(i for i, c in enumerate(pattern) if c in _META)
    suffix = pattern[last + 1 :]
    if pattern[last] == "[" or "]" in suffix:  # a class whose `]` comes later: no suffix
        suffix = ""
    return pattern[:first], suffix


# RFC 3986 section 3.1: a letter, then letters, digits, `+`, `-` or `.`, ended by `:`
_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")


def scheme_of(uri: str) -> str:
    """The scheme `resources.schemes` matches: the text before a URI's first `:`, with or
    without `//` after it (`urn:acme:payroll` is a `urn` URI that FastMCP serves; taking
    only the text before `://` left it without a scheme, out of reach of a deny rule on
    `urn`). Text that no scheme starts keeps mcp-auth-guard's reading, the part before
    `://` (`my_app://x` is `my_app`); without `://` it has none (`config`)."""
    head = _SCHEME.match(uri)
    if head is not None:
        return head.group(1)
    return uri.split("://", 1)[0] if "://" in uri else ""


def _given(values: tuple[str, ...] | None) -> tuple[str, ...] | None:
    return values if values else None  # `[]` means "not given", as in mcp-auth-guard


def _set(values: tuple[str, ...] | None) -> frozenset[str] | None:
    values = _given(values)
    return frozenset(values) if values is not None else None


def _regex(values: tuple[str, ...] | None) -> re.Pattern[str] | None:
    values = _given(values)
    if values is None or "*" in values:  # `*` matches every string: nothing to check
        return None
    return glob_regex(values)


def _pattern_keys(subject: str, patterns: tuple[str, ...]) -> list[IndexKey] | None:
    keys: list[IndexKey] = []
    for pattern in patterns:
        prefix, suffix = literal_affix(pattern)
        if prefix == pattern:
            keys.append(((subject,), pattern))
        elif prefix:
            keys.append((("pre", subject), prefix))
        elif suffix:
            keys.append((("suf", subject), suffix))
        else:
            return None
    return keys


class _Names:
    """names (exact) + patterns (fnmatch) + tags (any-of): the shape shared by matchers."""

    __slots__ = ("names", "patterns", "tags")

    def __init__(self, names: tuple[str, ...] | None, patterns: tuple[str, ...] | None,
                 tags: tuple[str, ...] | None) -> None:  # fmt: skip
        self.names = _set(names)
        self.patterns = _regex(patterns)
        self.tags = _set(tags)

    def match_name(self, name: str, tags: frozenset[str]) -> bool:
        if self.names is not None and name not in self.names:
            return False
        if self.patterns is not None and self.patterns.match(name) is None:
            return False
        return self.tags is None or not self.tags.isdisjoint(tags)


class ToolMatcher(_Names):
    __slots__ = ("keyset", "namespaces", "spec")

    def __init__(self, spec: ToolMatch) -> None:
        super().__init__(spec.names, spec.patterns, spec.tags)
        self.namespaces = _set(spec.namespaces)
        self.spec = spec
        self.keyset = _frozen_keys(self.keys())

    def match(self, r: Resource) -> bool:
        if self.namespaces is not None and r.namespace not in self.namespaces:
            return False
        return self.match_name(r.name, r.tags)

    def keys(self) -> list[IndexKey] | None:
        s = self.spec
        if _given(s.names):
            return [(("name",), n) for n in s.names or ()]
        if _given(s.patterns):
            return _pattern_keys("name", s.patterns or ())
        if _given(s.tags):
            return [(("tag",), t) for t in s.tags or ()]
        if _given(s.namespaces):
            return [(("ns",), n) for n in s.namespaces or ()]
        return None


class PromptMatcher(_Names):
    __slots__ = ("keyset", "spec")

    def __init__(self, spec: PromptMatch) -> None:
        super().__init__(spec.names, spec.patterns, spec.tags)
        self.spec = spec
        self.keyset = _frozen_keys(self.keys())

    def match(self, r: Resource) -> bool:
        return self.match_name(r.name, r.tags)

    def keys(self) -> list[IndexKey] | None:
        s = self.spec
        if _given(s.names):
            return [(("name",), n) for n in s.names or ()]
        if _given(s.patterns):
            return _pattern_keys("name", s.patterns or ())
        if _given(s.tags):
            return [(("tag",), t) for t in s.tags or ()]
        return None


class ResourceMatcher:
    __slots__ = ("keyset", "patterns", "schemes", "spec", "tags", "uris")

    def __init__(self, spec: ResourceMatch) -> None:
        self.uris = _set(spec.uris)
        self.patterns = _regex(spec.patterns)
        self.schemes = _set(spec.schemes)
        self.tags = _set(spec.tags)
        self.spec = spec
        self.keyset = _frozen_keys(self.keys())

    def match(self, r: Resource) -> bool:
        uri = r.uri if r.uri is not None else r.name
        if self.uris is not None and uri not in self.uris:
            return False
        if self.patterns is not None and self.patterns.match(uri) is None:
            return False
        if self.schemes is not None and scheme_of(uri) not in self.schemes:
            return False
        return self.tags is None or not self.tags.isdisjoint(r.tags)

    def keys(self) -> list[IndexKey] | None:
        s = self.spec
        if _given(s.uris):
            return [(("uri",), u) for u in s.uris or ()]
        if _given(s.patterns):
            return _pattern_keys("uri", s.patterns or ())
        if _given(s.schemes) and "" not in (s.schemes or ()):
            return [(("pre", "uri"), f"{x}:") for x in s.schemes or ()]
        if _given(s.tags):
            return [(("tag",), t) for t in s.tags or ()]
        return None


class TemplateMatcher:
    __slots__ = ("keyset", "names", "patterns", "spec", "tags", "templates")

    def __init__(self, spec: TemplateMatch) -> None:
        self.templates = _set(spec.uri_templates)
        self.names = _set(spec.names)
        self.patterns = _regex(spec.patterns)
        self.tags = _set(spec.tags)
        self.spec = spec
        self.keyset = _frozen_keys(self.keys())

    def match(self, r: Resource) -> bool:
        template = template_of(r)
        if self.templates is not None and template not in self.templates:
            return False
        if self.patterns is not None and self.patterns.match(template) is None:
            return False
        if self.names is not None and r.name not in self.names:
            return False
        return self.tags is None or not self.tags.isdisjoint(r.tags)

    def keys(self) -> list[IndexKey] | None:
        s = self.spec
        if _given(s.uri_templates):
            return [(("tpl",), t) for t in s.uri_templates or ()]
        if _given(s.names):
            return [(("name",), n) for n in s.names or ()]
        if _given(s.patterns):
            return _pattern_keys("tpl", s.patterns or ())
        if _given(s.tags):
            return [(("tag",), t) for t in s.tags or ()]
        return None


Matcher = ToolMatcher | ResourceMatcher | TemplateMatcher | PromptMatcher


def template_of(r: Resource) -> str:
    """The URI template a request's component is matched on by `resource_templates`."""
    if r.kind == "resource" and r.template is not None:
        return r.template
    return r.uri if r.uri is not None else r.name


class AgentMatcher:
    """user_id / agent_id (fnmatch, any of), roles (any of; `*` = has a role), patterns
    (fnmatch on user_id or agent_id): every given criterion must hold."""

    __slots__ = ("agent_ids", "any_role", "keyset", "patterns", "roles", "spec", "user_ids")

    def __init__(self, spec: AgentMatch) -> None:
        roles = _given(spec.roles)
        self.any_role = roles is not None and "*" in roles
        self.roles = frozenset(roles) if roles is not None and not self.any_role else None
        self.user_ids = _regex(spec.user_id)
        self.agent_ids = _regex(spec.agent_id)
        self.patterns = _regex(spec.patterns)
        self.spec = spec
        self.keyset = _frozen_keys(self.keys())

    def match(self, p: Principal) -> bool:
        if self.user_ids is not None and self.user_ids.match(p.user_id or "") is None:
            return False
        if self.any_role:
            if not p.roles:
                return False
        elif self.roles is not None and self.roles.isdisjoint(p.roles):
            return False
        if self.agent_ids is not None and self.agent_ids.match(p.agent_id or "") is None:
            return False
        if self.patterns is not None:
            pat = self.patterns
            if pat.match(p.user_id or "") is None and pat.match(p.agent_id or "") is None:
                return False
        return True

    def keys(self) -> list[IndexKey] | None:
        s = self.spec
        if self.any_role:
            return [(("anyrole",), "")]
        if self.roles is not None:
            return [(("role",), r) for r in sorted(self.roles)]
        users = _given(s.user_id)
        if users is not None and not any(_META & set(u) for u in users):
            return [(("user",), u) for u in users]
        agents = _given(s.agent_id)
        if agents is not None and not any(_META & set(a) for a in agents):
            return [(("agent",), a) for a in agents]
        return None


class CompiledRule:
    """One rule, ready to match; `index` is its place in the global evaluation order."""

    __slots__ = (
        "actions",
        "agent",
        "allow",
        "by_variant",
        "condition",
        "conditions",
        "effect",
        "has_component",
        "index",
        "label",
        "matched",
        "message",
        "name",
        "policy",
        "priority",
        "prompts",
        "resources",
        "spec",
        "templates",
        "tools",
    )

    def __init__(self, spec: RuleSpec, policy: PolicySpec, index: int,
                 custom: Mapping[str, Any] | None) -> None:  # fmt: skip
        self.spec = spec
        self.index = index
        self.name = spec.name
        self.policy = policy.name
        self.label = f"{policy.name}/{spec.name}"
        self.matched = (self.label,)
        verb = "allowed" if spec.effect == "allow" else "denied"
        self.message = f"{verb} by rule {spec.name!r} of policy {policy.name!r}"
        self.priority = spec.priority
        self.effect = spec.effect
        self.allow = spec.effect == "allow"
        actions = tuple(spec.actions)
        self.actions = None if "*" in actions else (glob_regex(actions) or re.compile(r"(?!)"))
        self.agent = AgentMatcher(spec.agents) if spec.agents is not None else None
        self.tools = ToolMatcher(spec.tools) if spec.tools is not None else None
        self.resources = ResourceMatcher(spec.resources) if spec.resources is not None else None
        self.templates = (
            TemplateMatcher(spec.resource_templates)
            if spec.resource_templates is not None
            else None
        )
        self.prompts = PromptMatcher(spec.prompts) if spec.prompts is not None else None
        self.has_component = any(
            m is not None for m in (self.tools, self.resources, self.templates, self.prompts)
        )
        # Which matchers decide the rule, per request variant, worked out once.
        self.by_variant: dict[str, tuple[Matcher, ...] | None] = {}
        for variant in VARIANTS:
            found = self.matchers_for(variant)
            self.by_variant[variant] = None if found is None else tuple(found)
        self.conditions: tuple[CompiledCondition, ...] = tuple(
            compile_condition(c, custom) for c in spec.conditions
        )
        self.condition = self.conditions[0] if len(self.conditions) == 1 else None

    def action_ok(self, action: str) -> bool:
        return self.actions is None or self.actions.match(action) is not None

    def agent_ok(self, principal: Principal) -> bool:
        return self.agent is None or self.agent.match(principal)

    def _natives(self, variant: str) -> list[Matcher]:
        found: list[Matcher] = []
        if variant == "tool":
            found = [self.tools] if self.tools is not None else []
        elif variant in ("resource", "resource+template"):
            if self.resources is not None:
                found.append(self.resources)
            if variant == "resource+template" and self.templates is not None:
                found.append(self.templates)
        elif variant == "resource_template":
            found = [self.templates] if self.templates is not None else []
        elif variant == "prompt":
            found = [self.prompts] if self.prompts is not None else []
        return found

    def matchers_for(self, variant: str) -> list[Matcher] | None:
        """The matchers that decide this rule for a variant (any of them matching is
        enough); `[]` = the rule applies to every component; None = it never applies."""
        natives = self._natives(variant)
        if natives:
            return natives
        if self.tools is not None:  # legacy: tools matcher applied by name to other kinds
            return [self.tools]
        return None if self.has_component else []

    def component_ok(self, resource: Resource, variant: str | None = None) -> bool:
        matchers = self.by_variant[variant or variant_of(resource)]
        if matchers is None:
            return False
        if not matchers:
            return True
        for m in matchers:  # noqa: SIM110 - `any` over a generator costs more than the match
            if m.match(resource):
                return True
        return False

    def conditions_ok(self, ev: Evaluation) -> bool | None:
        """Kleene `all` over the rule's conditions: True, False, or None (unknown)."""
        cond = self.condition
        if cond is not None:
            return cond.evaluate(ev)
        result: bool | None = True
        for cond in self.conditions:
            value = cond.evaluate(ev)
            if value is False:
                return False
            if value is None:
                result = None
        return result

    def index_keys(self, variant: str) -> tuple[IndexKey, ...] | None:
        """Keys of which at least one must be hit for this rule to match (None: scan it)."""
        matchers = self.by_variant[variant]
        if matchers:
            keys: list[IndexKey] = []
            for m in matchers:
                found = _keys_of(m)
                if found is None:
                    break
                keys.extend(found)
            else:
                return tuple(dict.fromkeys(keys))
        return _keys_of(self.agent) if self.agent is not None else None


def _keys_of(matcher: Matcher | AgentMatcher) -> tuple[IndexKey, ...] | None:
    """A matcher's keys, worked out once at construction (they do not depend on the
    request variant)."""
    return matcher.keyset


def _frozen_keys(keys: list[IndexKey] | None) -> tuple[IndexKey, ...] | None:
    return None if keys is None else tuple(keys)
