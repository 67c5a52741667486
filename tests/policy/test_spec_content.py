"""`content_of` compares values with their types: `True == 1` in Python, not in a condition,
so a spec edited from `value: true` to `value: 1` gets a new text and hash."""

from __future__ import annotations

from dataclasses import replace

from guard.policy import AccessRequest, Principal, Resource, load_policies

YAML = """name: p
default_effect: deny
rules:
  - name: confirmed
    effect: allow
    conditions:
      - {field: tool.args.confirm, operator: equals, value: true}
"""


def test_spec_edited_from_true_to_1_gets_new_text_and_hash() -> None:
    original = load_policies(YAML)
    spec = original.policies[0]
    rule = spec.rules[0]
    edited = replace(
        spec, rules=(replace(rule, conditions=(replace(rule.conditions[0], value=1),)),)
    )
    live = load_policies(edited)

    request = AccessRequest(
        Principal("alice"), Resource("tool", "deploy"), "call", {"confirm": True}
    )
    # the edited set decides differently from the original ...
    assert original.decide(request).allowed is True
    assert live.decide(request).allowed is False
    # ... so its text (what replay loads) and its hash must not be the original's
    replayed = load_policies(live.policies[0].text)
    assert replayed.decide(request).allowed == live.decide(request).allowed, (
        "the recorded text decides differently from the set in force"
    )
    assert live.hash != original.hash
