"""Policies: the language, the loader, the one evaluator, and the seed-compatible API.

Names load lazily so that `import guard.policy` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    # model
    "AccessRequest": "guard.policy.model",
    "Decision": "guard.policy.model",
    "Principal": "guard.policy.model",
    "Resource": "guard.policy.model",
    "Reason": "guard.policy.model",
    # loading and deciding
    "load_policies": "guard.policy.loader",
    "parse_policies": "guard.policy.loader",
    "PolicySet": "guard.policy.policyset",
    "register_condition": "guard.policy.conditions",
    # fluent builder (seed page)
    "policy": "guard.policy.builder",
    "rule": "guard.policy.builder",
    "PolicyBuilder": "guard.policy.builder",
    "RuleBuilder": "guard.policy.builder",
    # seed-compatible names
    "PolicyLoader": "guard.policy.compat",
    "PolicyEngine": "guard.policy.compat",
    "PolicyEvaluator": "guard.policy.compat",
    "PolicyCondition": "guard.policy.compat",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'guard.policy' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
