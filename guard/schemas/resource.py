"""What is being accessed, in mcp-auth-guard's words: `ToolResource`, `ResourceContext`.

`ResourceContext.resource_type` accepts both spellings: the singular the mcp-auth-guard page
shows (`"tool"`) and the plural its middleware produced (`"tools"`). mcp-auth-guard matched
tool rules only for the plural, so the page's own policy-testing snippet never matched a tool
rule; here both mean the same kind. `to_access_request()` is the bridge to the guard's model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Final

from guard.policy.model import AccessRequest, Kind, Principal, Resource

__all__ = ["RESOURCE_TYPES", "ResourceContext", "ToolResource"]

# every accepted spelling -> the guard's kind
RESOURCE_TYPES: Final[MappingProxyType[str, Kind]] = MappingProxyType(
    {
        "tool": "tool",
        "tools": "tool",
        "resource": "resource",
        "resources": "resource",
        "resource_template": "resource_template",
        "resource_templates": "resource_template",
        "prompt": "prompt",
        "prompts": "prompt",
    }
)


@dataclass(kw_only=True, slots=True)
class ToolResource:
    """One MCP component (tool, resource or prompt) as mcp-auth-guard described it.

    For a resource, mcp-auth-guard put the URI in `name`; `metadata["uri"]`, when given,
    is used as the URI instead.
    """

    name: str
    namespace: str | None = None
    version: str | None = None
    description: str | None = None
    tags: list[str] = field(default_factory=list)
    arguments: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True, slots=True)
class ResourceContext:
    """The resource, action and MCP method of one request.

    Example:
        ```python
        from guard.schemas import ResourceContext, ToolResource

        ctx = ResourceContext(
            resource_type="tool",
            resource=ToolResource(name="get_weather"),
            action="call",
            method="tools/call",
        )
        assert ctx.kind == "tool"
        ```

    Raises:
        ValueError: `resource_type` is not one of `RESOURCE_TYPES`.
    """

    resource_type: str
    resource: ToolResource
    action: str
    method: str
    request_id: str | None = None
    timestamp: float | None = None

    def __post_init__(self) -> None:
        if self.resource_type not in RESOURCE_TYPES:
            accepted = ", ".join(RESOURCE_TYPES)
            raise ValueError(
                f"unknown resource_type {self.resource_type!r}; expected one of {accepted}"
            )

    @property
    def kind(self) -> Kind:
        """The guard's kind for `resource_type` (`tool`, `prompt`, ...)."""
        return RESOURCE_TYPES[self.resource_type]

    def to_resource(self) -> Resource:
        """The component as the guard's immutable `Resource`."""
        res = self.resource
        kind = self.kind
        if isinstance(res.tags, str | bytes):  # frozenset() of it would be its letters
            raise TypeError(f"tags must be a list of names, not {res.tags!r}")
        uri = None
        if kind in ("resource", "resource_template"):
            uri = res.metadata.get("uri") or res.name
        return Resource(
            kind=kind,
            name=res.name,
            tags=frozenset(res.tags),
            namespace=res.namespace,
            version=res.version,
            uri=uri,
            meta=res.metadata,
        )

    def to_access_request(
        self, principal: Principal, *, session_id: str | None = None
    ) -> AccessRequest:
        """The guard's `AccessRequest` for this context and `principal`."""
        when = None
        if self.timestamp is not None:
            when = datetime.fromtimestamp(self.timestamp, UTC)
        context: dict[str, Any] = {"resource_type": self.resource_type}
        if self.request_id is not None:
            context["request_id"] = self.request_id
        if session_id is not None:
            context["session_id"] = session_id
        return AccessRequest(
            principal=principal,
            resource=self.to_resource(),
            action=self.action,
            args=self.resource.arguments,
            time=when,
            method=self.method,
            context=context,
        )
