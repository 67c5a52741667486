"""`load_policies` / `parse_policies`: every source type, directories, multi-document files,
the seed page's policies, canonical text and the dump round trip, error reporting."""

from __future__ import annotations

import os
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from seed_page import SEED_POLICY

from guard.errors import PolicyError, PolicyProblem
from guard.policy.dump import dump_spec, spec_to_dict
from guard.policy.loader import MAX_POLICY_BYTES, load_policies, parse_policies
from guard.policy.spec import (
    AgentMatch,
    Condition,
    ConditionGroup,
    CustomCondition,
    PolicySpec,
    ResourceMatch,
    RuleSpec,
    TemplateMatch,
    ToolMatch,
    content_of,
)

# shared/ lies beside the checkout (here and in CI)
SEED_PAGE = Path(__file__).resolve().parents[3] / "shared/seeds/mcp-auth-guard-pypi-page.txt"

# The policy files shown on mcp-auth-guard's page, verbatim (the page is not shipped with
# the tests; the seed snippets are copied here so the suite runs anywhere).
SEED_AGENTS = """\
agents:
  user_id: ["alice", "bob"]           # Specific users
  roles: ["admin", "developer"]       # User roles
  agent_id: ["claude", "gpt-4"]      # Agent identifiers
  patterns: ["admin_*", "*_service"]  # Wildcard patterns
"""
SEED_TOOLS = """\
tools:
  names: ["get_weather", "send_email"]    # Exact tool names
  patterns: ["get_*", "*_admin"]          # Wildcard patterns
  namespaces: ["weather", "admin"]        # Tool namespaces
  tags: ["safe", "public"]               # Tool tags
"""
SEED_CONDITIONS = """\
conditions:
  - field: "tool.args.time"
    operator: "equals"
    value: "night"

  - field: "user.roles"
    operator: "in"
    value: ["admin", "moderator"]

  - field: "tool.name"
    operator: "regex"
    value: "^admin_.*"
"""

POLICY_A = "name: a\nrules:\n  - name: r\n    effect: allow\n"
POLICY_B = "name: b\ndefault_effect: allow\nrules: []\n"


def _problems(source: Any) -> tuple[PolicyProblem, ...]:
    with pytest.raises(PolicyError) as caught:
        parse_policies(source)
    return caught.value.problems


def _codes(source: Any) -> list[str]:
    return [p.code for p in _problems(source)]


def _strip(spec: PolicySpec) -> PolicySpec:
    """The spec without where it came from: source, text and every line number."""

    def bare(node: Any) -> Any:
        if isinstance(node, ConditionGroup):
            return replace(node, items=tuple(bare(i) for i in node.items), line=None)
        if isinstance(node, Condition | CustomCondition):
            return replace(node, line=None)
        return node

    rules = tuple(
        replace(r, line=None, conditions=tuple(bare(c) for c in r.conditions)) for r in spec.rules
    )
    return replace(spec, rules=rules, source="", text="", line=None)


# -- source types --------------------------------------------------------------------------


def test_file_path_as_str_and_path(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(POLICY_A)
    for source in (str(path), path):
        [spec] = parse_policies(source)
        assert spec.name == "a" and spec.source == str(path)
        assert spec.text == POLICY_A  # the text as written is what gets hashed and stored
        assert spec.rules[0].line == 3


def test_directory_sorted_by_name_non_recursive_yaml_and_yml(tmp_path: Path) -> None:
    (tmp_path / "20-b.yml").write_text(POLICY_B)
    (tmp_path / "10-a.yaml").write_text(POLICY_A)
    (tmp_path / "30-c.yaml").write_text("name: c\nrules: []\n")
    (tmp_path / "notes.txt").write_text("not a policy: ignored")
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "00-z.yaml").write_text("name: z\nrules: []\n")
    specs = parse_policies(tmp_path)
    assert [s.name for s in specs] == ["a", "b", "c"]
    assert [Path(s.source).name for s in specs] == ["10-a.yaml", "20-b.yml", "30-c.yaml"]


def test_malformed_file_in_directory_is_an_error_not_skipped(tmp_path: Path) -> None:
    # mcp-auth-guard logs and skips such a file: its deny rules silently vanish
    (tmp_path / "a.yaml").write_text(POLICY_A)
    (tmp_path / "b.yaml").write_text("name: b\nrules:\n  - name: deny_all\n    efect: deny\n")
    problems = _problems(tmp_path)
    assert {p.source for p in problems} == {str(tmp_path / "b.yaml")}
    assert ("unknown_key", 4, "rules[0].efect") in [(p.code, p.line, p.field) for p in problems]


def test_dangling_symlink_in_directory_is_unreadable_not_skipped(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(POLICY_A)
    (tmp_path / "b.yaml").symlink_to(tmp_path / "gone.yaml")
    (tmp_path / ".#a.yaml").symlink_to("user@host.1234")  # an editor's lock file: ignored
    [problem] = _problems(tmp_path)
    assert (problem.code, problem.source) == ("unreadable", str(tmp_path / "b.yaml"))


def test_a_directory_named_like_a_policy_is_a_problem_not_skipped(tmp_path: Path) -> None:
    # `docker run -v ./deny.yaml:/policies/deny.yaml` with the host file missing (and a
    # Kubernetes subPath to a missing key) mounts an empty directory named `deny.yaml`:
    # skipping it, as a subdirectory, put the other policies in force without its rules.
    (tmp_path / "a.yaml").write_text(POLICY_A)
    (tmp_path / "deny.yaml").mkdir()
    [problem] = _problems(tmp_path)
    assert (problem.code, problem.source) == ("unreadable", str(tmp_path / "deny.yaml"))
    assert "directory" in problem.message


def test_a_path_under_an_unknown_users_home_is_a_problem() -> None:
    # `Path.expanduser` raises RuntimeError for `~nosuchuser`: it escaped as that, not a
    # PolicyError, so a reload to it was neither logged nor counted as a failed reload.
    [problem] = _problems("~no-such-user-here/policies.yaml")
    assert problem.code == "unreadable" and "no such policy file" in problem.message


def test_directory_without_policy_files(tmp_path: Path) -> None:
    (tmp_path / "readme.md").write_text("# nothing")
    [problem] = _problems(tmp_path)
    assert problem.code == "empty" and problem.source == str(tmp_path)


def test_yaml_text_and_bytes() -> None:
    [spec] = parse_policies(POLICY_A)
    assert spec.source == "<text>" and spec.text == POLICY_A
    [spec] = parse_policies(POLICY_A.encode())
    assert spec.name == "a"
    # flow style on one line: a colon but no newline is still text, not a path
    [spec] = parse_policies("{name: inline, rules: []}")
    assert spec.name == "inline"


def test_string_that_looks_like_a_path_reports_a_missing_file(tmp_path: Path) -> None:
    for source in (str(tmp_path / "missing.yaml"), "no-such-policy", "dir/x:y.yaml"):
        [problem] = _problems(source)
        assert problem.code == "unreadable", source
        assert "no such policy file" in problem.message


def test_dict_gets_canonical_text() -> None:
    data = {"name": "d", "rules": [{"name": "r", "effect": "deny", "tools": {"names": ["x"]}}]}
    [spec] = parse_policies(data)
    assert spec.source == "<dict>"
    assert spec.text == dump_spec(spec)
    assert yaml.safe_load(spec.text) == {
        "name": "d",
        "version": "1.0",
        "default_effect": "deny",
        "rules": data["rules"],
    }
    # dicts have no lines, yet problems still name the field
    [problem] = _problems({"name": "d", "rules": [{"name": "r", "effect": "alow"}]})
    assert (problem.source, problem.line, problem.field) == ("<dict>", None, "rules[0].effect")
    assert problem.hint == "did you mean `allow`?"


def test_list_of_mixed_sources(tmp_path: Path) -> None:
    path = tmp_path / "b.yaml"
    path.write_text(POLICY_B)
    spec = PolicySpec("s", rules=(RuleSpec("r", "allow"),))
    specs = parse_policies([POLICY_A, path, {"name": "d", "rules": []}, spec])
    assert [s.name for s in specs] == ["a", "b", "d", "s"]
    assert specs[3] is not None and specs[3].text == dump_spec(spec)


def test_one_yaml_text_holding_a_list_of_policies() -> None:
    text = "- name: a\n  rules: []\n- name: b\n  rules:\n    - {name: r, effect: deny}\n"
    specs = parse_policies(text)
    assert [s.name for s in specs] == ["a", "b"]
    assert specs[1].rules[0].line == 5
    # each gets a text of its own that reloads to the same policy
    assert all(_strip(parse_policies(s.text)[0]) == _strip(s) for s in specs)


def test_multi_document_file(tmp_path: Path) -> None:
    path = tmp_path / "all.yaml"
    path.write_text(f"# two policies\n{POLICY_A}---\n# the second\n{POLICY_B}")
    a, b = parse_policies(path)
    assert (a.name, b.name) == ("a", "b")
    assert (a.line, b.line) == (2, 8)  # lines count from the top of the file
    assert b.text.startswith("---\n# the second\nname: b")
    assert _strip(parse_policies(a.text)[0]) == _strip(a)
    assert _strip(parse_policies(b.text)[0]) == _strip(b)


def test_crlf_line_endings_and_byte_order_mark(tmp_path: Path) -> None:
    crlf = (POLICY_A + "---\n" + POLICY_B).replace("\n", "\r\n")
    a, b = parse_policies(crlf)
    assert (a.rules[0].line, b.line) == (3, 6)
    assert b.text == "---\r\n" + POLICY_B.replace("\n", "\r\n")
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + POLICY_A.encode())
    [spec] = parse_policies(path)
    assert spec.name == "a" and spec.text == POLICY_A


def test_spec_builder_and_policyset_sources() -> None:
    from guard.policy import policy, rule

    built = policy("fluent").add_rule(rule("admins").for_roles("admin").allow())
    [spec] = parse_policies(built)
    assert spec.name == "fluent" and spec.rules[0].agents == AgentMatch(roles=("admin",))
    assert parse_policies(built.build()) == [spec]  # the seed's PolicyConfig, via to_spec()
    policies = load_policies([built, POLICY_A])
    assert policies.names == ("fluent", "a")
    assert load_policies(policies) is policies
    assert load_policies([policies, POLICY_B]).names == ("fluent", "a", "b")


def test_hand_made_spec_is_checked_too() -> None:
    bad = PolicySpec(
        "s",
        rules=(
            RuleSpec("r", "allow", conditions=(Condition("tool.name", "regex", "(a+)+$"),)),
            RuleSpec("r", "deny"),
        ),
    )
    assert sorted(_codes(bad)) == ["catastrophic_regex", "duplicate_rule"]


def test_strings_that_are_neither_paths_nor_policies() -> None:
    # too long for a file name, NUL bytes: reported, never an OSError/ValueError escaping
    assert _codes("x" * 300) == ["unreadable"]
    assert _codes("\x00") == ["yaml_syntax"]
    assert _codes("a: " + "[" * 300 + "]" * 300) == ["yaml_syntax"]


def test_unsupported_source_type() -> None:
    [problem] = _problems(42)
    assert problem.code == "bad_source" and "int" in problem.message


# -- files that cannot be read -------------------------------------------------------------


def test_unreadable_file(tmp_path: Path) -> None:
    # /proc/self/mem exists but cannot be read from offset 0: EIO, as for a broken disk
    [problem] = _problems("/proc/self/mem")
    assert problem.code == "unreadable" and "cannot read" in problem.message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY_A)
    path.chmod(0)
    assert _codes(path) == ["unreadable"]


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(MAX_POLICY_BYTES + 1)
    [problem] = _problems(path)
    assert problem.code == "too_large" and "split it" in (problem.hint or "")


@pytest.mark.timeout(60)
def test_a_file_without_end_is_read_only_up_to_the_size_limit(tmp_path: Path) -> None:
    """The limit was checked on `stat()`'s size, then the whole file read: a pipe, a
    device (`mcp-guard validate /dev/zero`) or a file still growing has no size there,
    so loading read until memory ran out. Here a pipe offers 8 times the limit."""
    import threading

    pipe = tmp_path / "endless.yaml"
    os.mkfifo(pipe)
    offered = 8 * MAX_POLICY_BYTES
    written = 0

    def write() -> None:
        nonlocal written
        with open(pipe, "wb", buffering=0) as f:
            try:
                while written < offered:
                    written += f.write(b"#" * 65536)
            except BrokenPipeError:  # the reader has had enough
                pass

    writer = threading.Thread(target=write)
    writer.start()
    [problem] = _problems(pipe)
    writer.join()
    assert problem.code == "too_large"
    assert written < 2 * MAX_POLICY_BYTES


def test_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\nrules: []\n".encode("latin-1"))
    assert _codes(path) == ["unreadable"]


def test_every_problem_of_every_source_at_once(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: x\nrules: 3\n")
    problems = _problems([tmp_path / "bad.yaml", tmp_path / "gone.yaml", {"rules": []}])
    assert [(p.code, p.source) for p in problems] == [
        ("wrong_type", str(tmp_path / "bad.yaml")),
        ("unreadable", str(tmp_path / "gone.yaml")),
        ("missing_field", "<dict>"),
    ]


# -- the seed's format ---------------------------------------------------------------------


def test_seed_page_policies_are_the_ones_on_the_page() -> None:
    if not SEED_PAGE.exists():
        pytest.skip("the seed page is only on the build machine")
    page = SEED_PAGE.read_text()
    # compare ignoring trailing spaces, which the page has and editors strip
    flat = "\n".join(line.rstrip() for line in page.splitlines())
    for snippet in (SEED_POLICY, SEED_AGENTS, SEED_TOOLS, SEED_CONDITIONS):
        assert snippet.rstrip() in flat, snippet.splitlines()[0]


def test_seed_page_policy_loads_and_matches_the_seed_loader(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    path.write_text(SEED_POLICY)
    [spec] = parse_policies(path)
    assert load_policies(path).names == ("my_service_policy",)
    from mcp_auth_guard.policy.loader import PolicyLoader as seed_loader

    seed = seed_loader.load_from_file(path)
    assert (spec.name, spec.version, spec.default_effect) == (
        seed.name,
        seed.version,
        seed.default_effect,
    )
    for ours, theirs in zip(spec.rules, seed.rules, strict=True):
        assert (ours.name, ours.effect, ours.priority) == (
            theirs.name,
            theirs.effect,
            theirs.priority,
        )
        assert list(ours.actions) == theirs.actions
        assert ours.agents is not None and list(ours.agents.roles or ()) == theirs.agents.roles
        assert ours.tools is not None
        assert list(ours.tools.names or []) == (theirs.tools.names or [])
        assert list(ours.tools.patterns or []) == (theirs.tools.patterns or [])


def test_seed_page_fragments_load_inside_a_rule() -> None:
    indented = "".join(
        "\n".join("    " + ln if ln else ln for ln in part.splitlines()) + "\n"
        for part in (SEED_AGENTS, SEED_TOOLS, SEED_CONDITIONS)
    )
    text = "name: fragments\nrules:\n  - name: r\n    effect: allow\n" + indented
    [spec] = parse_policies(text)
    rule = spec.rules[0]
    assert rule.agents == AgentMatch(
        user_id=("alice", "bob"),
        roles=("admin", "developer"),
        agent_id=("claude", "gpt-4"),
        patterns=("admin_*", "*_service"),
    )
    assert rule.tools == ToolMatch(
        names=("get_weather", "send_email"),
        patterns=("get_*", "*_admin"),
        namespaces=("weather", "admin"),
        tags=("safe", "public"),
    )
    assert [(c.field, c.operator, c.value) for c in rule.conditions] == [  # type: ignore[union-attr]
        ("tool.args.time", "equals", "night"),
        ("user.roles", "in", ("admin", "moderator")),
        ("tool.name", "regex", "^admin_.*"),
    ]


def test_seed_conveniences() -> None:
    text = (
        "name: p\nversion: 1.10\ndefault_effect: DENY\nrules:\n"
        "  - name: r\n    effect: allow\n    agents: {user_id: alice, agent_id: claude}\n"
    )
    [spec] = parse_policies(text)
    assert spec.version == "1.10"  # kept as written, not the float 1.1
    assert spec.default_effect == "deny"  # the seed lower-cases default_effect
    assert spec.rules[0].agents == AgentMatch(user_id=("alice",), agent_id=("claude",))
    # pydantic accepted these for `priority`; so do we (a boolean stays an error)
    [spec] = parse_policies(text.replace("effect: allow", "effect: allow\n    priority: '7'"))
    assert spec.rules[0].priority == 7
    [spec] = parse_policies(text.replace("effect: allow", "effect: allow\n    priority: 5.0"))
    assert spec.rules[0].priority == 5
    [spec] = parse_policies("name: p\nversion: 2\nrules: []\n")
    assert spec.version == "2"
    [spec] = parse_policies("name: p\nrules: []\n")
    assert (spec.version, spec.default_effect, spec.combining, spec.tags) == (
        "1.0",
        "deny",
        None,
        (),
    )


def test_defaults_of_a_rule() -> None:
    [spec] = parse_policies({"name": "p", "rules": [{"name": "r", "effect": "allow"}]})
    rule = spec.rules[0]
    assert (rule.priority, rule.actions, rule.conditions) == (100, ("*",), ())
    assert rule.agents is rule.tools is rule.resources is rule.prompts is None


def test_additions_load() -> None:
    text = """\
name: extras
combining: deny_overrides
rules:
  - name: templates
    effect: allow
    resources: {uris: ["file:///a"], schemes: [file], tags: [public]}
    resource_templates:
      uri_templates: ["users://{id}/profile"]
      names: [profile]
      patterns: ["user*"]
      tags: [pii]
    conditions:
      - any:
          - all:
              - {field: request.time.hour, operator: gte, value: 9, timezone: Europe/Paris}
              - not: {field: user.id, operator: equals, value: mallory}
          - custom: business_hours
            params: {start: 9, days: [mon, tue]}
"""
    [spec] = parse_policies(text)
    assert spec.combining == "deny_overrides"
    rule = spec.rules[0]
    assert rule.resources == ResourceMatch(uris=("file:///a",), schemes=("file",), tags=("public",))
    assert rule.resource_templates == TemplateMatch(
        uri_templates=("users://{id}/profile",),
        names=("profile",),
        patterns=("user*",),
        tags=("pii",),
    )
    [group] = rule.conditions
    assert isinstance(group, ConditionGroup) and group.op == "any" and group.line == 13
    inner, custom = group.items
    assert isinstance(inner, ConditionGroup) and inner.op == "all"
    hour, negated = inner.items
    assert hour == Condition("request.time.hour", "gte", 9, 15, "Europe/Paris")
    assert isinstance(negated, ConditionGroup) and negated.op == "not"
    assert custom == CustomCondition("business_hours", {"start": 9, "days": ("mon", "tue")}, 17)


def test_yaml_merge_keys_and_anchors_work_as_in_safe_load() -> None:
    text = """\
name: p
rules:
  - &base
    name: one
    effect: allow
    agents: {roles: [admin]}
  - <<: *base
    name: two
"""
    one, two = parse_policies(text)[0].rules
    assert (two.name, two.effect, two.agents) == ("two", "allow", one.agents)


def test_duplicate_policy_names_across_sources(tmp_path: Path) -> None:
    (tmp_path / "1.yaml").write_text(POLICY_A)
    (tmp_path / "2.yaml").write_text(POLICY_A)
    [problem] = _problems(tmp_path)
    assert (problem.code, problem.source, problem.line) == (
        "duplicate_policy",
        str(tmp_path / "2.yaml"),
        1,
    )
    assert f"first defined in {tmp_path / '1.yaml'}:1" in (problem.hint or "")


def test_set_problems_are_reported_beside_others() -> None:
    problems = _problems([POLICY_A, POLICY_A, {"name": "c", "rules": 1}])
    assert [p.code for p in problems] == ["wrong_type", "duplicate_policy"]


def test_combining_must_agree_across_the_set() -> None:
    a = {"name": "a", "combining": "first_match", "rules": []}
    assert _codes([a, {"name": "b", "combining": "deny_overrides", "rules": []}]) == [
        "combining_conflict"
    ]
    # saying it once, or the same everywhere, is fine
    assert len(parse_policies([a, {"name": "b", "rules": []}])) == 2
    assert len(parse_policies([a, {**a, "name": "c"}])) == 2


def test_large_file_loads(tmp_path: Path) -> None:
    rules = "".join(
        f"  - name: r{i}\n    effect: allow\n    agents: {{roles: [role{i % 7}]}}\n"
        f"    tools: {{names: [tool_{i}]}}\n"
        for i in range(3000)
    )
    path = tmp_path / "big.yaml"
    path.write_text("name: big\nrules:\n" + rules)
    [spec] = parse_policies(path)
    assert len(spec.rules) == 3000 and spec.rules[-1].line == 2 + 4 * 2999 + 1


# -- the dump round trip -------------------------------------------------------------------


def test_dump_round_trip_of_everything() -> None:
    spec = PolicySpec(
        name="full",
        description="every field",
        version="2.1",
        default_effect="allow",
        combining="deny_overrides",
        tags=("prod", "pci"),
        created_by="ops",
        rules=(
            RuleSpec(
                "r1",
                "deny",
                description="no writes",
                priority=500,
                agents=AgentMatch(
                    user_id=("a",), roles=("x", "y"), agent_id=("c",), patterns=("*",)
                ),
                tools=ToolMatch(names=("t",), patterns=("w*",), namespaces=("n",), tags=("g",)),
                resources=ResourceMatch(
                    uris=("u://1",), patterns=("u://*",), schemes=("u",), tags=()
                ),
                resource_templates=TemplateMatch(uri_templates=("t://{x}",)),
                actions=("call", "read"),
                conditions=(
                    Condition("tool.args.n", "gt", 3),
                    Condition("tool.args.s", "in", ("a", 1, True, None)),
                    Condition("request.time.hour", "lt", 17, timezone="UTC"),
                    ConditionGroup(
                        "any",
                        (
                            ConditionGroup("not", (Condition("user.id", "equals", "x: y"),)),
                            CustomCondition("c", {"k": ("v",)}),
                            CustomCondition("bare"),
                        ),
                    ),
                ),
            ),
            RuleSpec("r2", "allow", tools=ToolMatch()),
        ),
    )
    [back] = parse_policies(dump_spec(spec))
    assert _strip(back) == _strip(spec)
    assert dump_spec(back) == dump_spec(spec)  # canonical: stable bytes
    assert spec_to_dict(spec)["rules"][1] == {"name": "r2", "effect": "allow", "tools": {}}


def test_dump_round_trip_of_loaded_files(tmp_path: Path) -> None:
    corpus = [SEED_POLICY, POLICY_A, POLICY_B]
    for text in corpus:
        [spec] = parse_policies(text)
        [back] = parse_policies(dump_spec(spec))
        assert _strip(back) == _strip(spec)


def test_spec_fields_all_dumped() -> None:
    """A field added to the spec without teaching the dumper fails here."""
    dumped = set(
        spec_to_dict(
            PolicySpec(
                "p", rules=(), description="d", combining="first_match", tags=("t",), created_by="c"
            )
        )
    )
    assert dumped == {f.name for f in fields(PolicySpec)} - {"source", "text", "line"}


# -- the error --------------------------------------------------------------------------------


def test_policy_error_message_format(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("name: p\nrules:\n  - name: r\n    effect: allow\n    tools: {pattern: [x]}\n")
    with pytest.raises(PolicyError) as caught:
        load_policies(path)
    assert str(caught.value) == (
        f"{path}:5: rules[0].tools.pattern: unknown key `pattern` in `tools` "
        "(did you mean `patterns`?)"
    )
    path.write_text("name: p\nrule: []\n")
    with pytest.raises(PolicyError) as caught:
        load_policies(path)
    assert str(caught.value).splitlines() == [
        "2 problems in policy:",
        f"  {path}:2: rule: unknown key `rule` in a policy (did you mean `rules`?)",
        f"  {path}:1: rules: required field `rules` is missing",
    ]


def test_policy_error_is_a_guard_error() -> None:
    from guard.errors import GuardError

    with pytest.raises(GuardError):
        load_policies("name: [")


@pytest.mark.parametrize(
    "condition",
    [
        {"field": "tool.args.x", "operator": "equals", "value": {1: "a"}},
        {"field": "tool.args.x", "operator": "equals", "value": [{"k": {("t",): 1}}]},
        {"custom": "c", "params": {2: "b"}},
        {"field": "tool.args.x", "operator": "equals", "value": object()},
        {"custom": "c", "params": [1.5, {"k": object()}]},
    ],
)
def test_a_value_yaml_cannot_carry_is_refused_in_every_source(condition: dict[str, Any]) -> None:
    # the policy's canonical text is what the hash covers and replay reloads: a key that
    # is not a string loaded from a dict, then its text did not load back ("key 1 is not a
    # string"); an object YAML cannot write escaped as yaml's RepresenterError
    from guard.policy import PolicyCondition, policy, register_condition, rule

    class Always(PolicyCondition):
        def evaluate(self, context: Any) -> bool:
            return True

    register_condition("c", Always())
    data = {"name": "p", "rules": [{"name": "r", "effect": "allow", "conditions": [condition]}]}
    if "custom" in condition:
        built = policy("p").add_rule(rule("r").when_custom("c", condition["params"]))
    else:
        built = policy("p").add_rule(rule("r").when_equals("tool.args.x", condition["value"]))
    for source in (data, built, built.build()):
        with pytest.raises(PolicyError) as caught:
            load_policies(source)
        assert [p.code for p in caught.value.problems] == ["bad_value"], source


def test_a_hand_made_spec_compiles_as_its_text_reads() -> None:
    # the loader checked a spec's written form, then compiled the spec itself: a priority
    # given as "5" (which YAML, as mcp-auth-guard, reads as 5) crashed the compiler with a
    # TypeError, and a value's inner lists stayed lists where the reloaded text has tuples
    from guard.policy import policy, rule
    from guard.schemas import PolicyConfig, PolicyRule

    config = PolicyConfig(
        name="p",
        rules=[
            PolicyRule(name="low", effect="allow", priority="5"),  # type: ignore[arg-type]
            PolicyRule(name="high", effect="deny", priority=10),
        ],
    )
    [spec] = parse_policies(config)
    assert [(r.name, r.priority) for r in spec.rules] == [("low", 5), ("high", 10)]
    assert content_of(spec) == content_of(parse_policies(spec.text)[0])
    built = policy("q").add_rule(rule("r").when_equals("tool.args.x", {"k": ["a"]}))
    [spec] = parse_policies(built)
    assert content_of(spec) == content_of(parse_policies(spec.text)[0])
