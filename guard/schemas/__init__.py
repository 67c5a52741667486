"""mcp-auth-guard's schema names, as a thin layer over the guard's own model.

Code written for mcp-auth-guard imports these unchanged (`from guard.schemas import
AuthContext, ToolResource, ResourceContext`). They are plain dataclasses with the same field
names and defaults, so importing them is cheap.

Example:
    ```python
    from guard.schemas import AuthContext, ResourceContext, ToolResource

    auth = AuthContext(user_id="alice", roles=["user"], authenticated=True)
    res = ResourceContext(
        resource_type="tool", resource=ToolResource(name="get_weather"),
        action="call", method="tools/call",
    )
    request = res.to_access_request(auth.to_principal())
    ```
"""

from guard.schemas.auth import AuthConfig, AuthContext, AuthMethod
from guard.schemas.policy import (
    AgentMatcher,
    ConditionOperator,
    Effect,
    PolicyCondition,
    PolicyConfig,
    PolicyRule,
    PromptMatcher,
    ResourceMatcher,
    TemplateMatcher,
    ToolMatcher,
)
from guard.schemas.resource import ResourceContext, ToolResource
from guard.schemas.response import AuthDecision, DecisionReason

__all__ = [
    "AgentMatcher",
    "AuthConfig",
    "AuthContext",
    "AuthDecision",
    "AuthMethod",
    "ConditionOperator",
    "DecisionReason",
    "Effect",
    "PolicyCondition",
    "PolicyConfig",
    "PolicyRule",
    "PromptMatcher",
    "ResourceContext",
    "ResourceMatcher",
    "TemplateMatcher",
    "ToolMatcher",
    "ToolResource",
]
