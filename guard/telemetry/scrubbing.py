"""`ScrubbingSpanExporter`: other libraries' spans leave the process without credentials.

The guard's own spans are clean when they are made. The spans FastMCP and the `mcp` SDK make
for the same requests are not: they carry what the caller sent (an unknown tool's name in
the span name, a resource URI with its `?token=`, the client's `mcp-session-id`) and what a
tool raised (an exception's message and stack trace, which may quote a key the tool was
given). A span processor cannot change a span once it has ended, and FastMCP sets some of
these after the span started, so they are cleaned where spans leave: in the exporter. Every
string of a span from another instrumentation scope (its name, attributes, status text,
events' attributes) has each part shaped like a credential masked (`redact.scrub`), and a
URI (an attribute's value, or quoted in a text such as a denial's message) also loses its
password and the values of sensitive query parameters (`Redactor.uri`). It runs on the
export thread, never on the request path.

`configure()` wraps its OTLP exporter in one. An application with its own pipeline wraps its
exporter the same way:

```python
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from guard.telemetry import ScrubbingSpanExporter

exported = InMemorySpanExporter()  # your OTLP (or other) exporter
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ScrubbingSpanExporter(exported)))
span = provider.get_tracer("fastmcp").start_span("tools/call ghp_" + "x" * 36)
span.set_attribute("mcp.resource.uri", "vault://db?token=abc123")
span.end()
(sent,) = exported.get_finished_spans()
assert sent.name == "tools/call <redacted:secret>"
assert sent.attributes["mcp.resource.uri"] == "vault://db?token=<redacted:path>"
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from guard._settings import whole
from guard.audit.redact import Redactor, scrub, scrub_uris

__all__ = ["ScrubbingSpanExporter"]

_CLEAN_SCOPE: Final = "mcp_guard"  # the guard's own spans: cleaned when they are made
# a value that is a URI (not a text quoting one, such as a stack trace: `Redactor.uri`
# would replace a long one whole)
_URI: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S*")


class ScrubbingSpanExporter(SpanExporter):
    """Hands spans on to `exporter` with credentials masked (see the module docs).

    Args:
        exporter: where the spans go (an `OTLPSpanExporter`, ...); shut down with this one.
        redactor: cleans URI attributes (sensitive query parameter names); default
            `Redactor()`.
        max_chars: a longer string leaves as `<redacted:oversized chars=N sha256=...>`,
            unsearched. A caller's text (an unknown tool's name) is repeated in several
            spans; searching megabytes of it for credential shapes would hold the GIL for
            seconds, and spans that large are more than a collector accepts. The default
            keeps stack traces, a few kilobytes.
    """

    def __init__(
        self, exporter: SpanExporter, redactor: Redactor | None = None, *, max_chars: int = 16_384
    ) -> None:
        self.exporter = exporter
        self._redactor = redactor or Redactor()
        self.max_chars = whole("max_chars", max_chars, minimum=128)  # (the marker: ~110)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.exporter.export([self._clean(span) for span in spans])

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.exporter.force_flush(timeout_millis)

    def _clean(self, span: ReadableSpan) -> ReadableSpan:
        """`span`, or a copy of it with its strings cleaned if any needed it."""
        scope = span.instrumentation_scope
        if scope is not None and scope.name == _CLEAN_SCOPE:
            return span
        # (each property read makes a new view: read once, compared by identity below)
        original, old_events, old_status = span.attributes, span.events, span.status
        status = old_status
        name = self._text(span.name)
        attributes = self._attributes(original)
        if status.description:
            description = self._text(status.description)
            if description != status.description:
                status = Status(status.status_code, description)
        events = [self._event(event) for event in old_events]
        if (
            name == span.name
            and attributes is original
            and status is old_status
            and all(new is old for new, old in zip(events, old_events, strict=True))
        ):
            return span
        return ReadableSpan(
            name=name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attributes,
            events=events,
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=scope,
        )

    def _event(self, event: Any) -> Any:
        original = event.attributes
        attributes = self._attributes(original)
        if attributes is original:
            return event
        return Event(event.name, attributes, event.timestamp, limit=None)

    def _attributes(self, attributes: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        """`attributes`, or a cleaned copy if any value changed."""
        if not attributes:
            return attributes
        changed: dict[str, Any] | None = None
        for key, value in attributes.items():
            clean = self._value(key, value)
            if clean is not value:
                if changed is None:
                    changed = dict(attributes)
                changed[key] = clean
        return attributes if changed is None else changed

    def _value(self, key: str, value: Any) -> Any:
        if isinstance(value, str):
            if len(value) > self.max_chars:
                return self._redactor.text(value, self.max_chars)  # the oversized marker
            if _URI.fullmatch(value):  # `mcp.resource.uri`, a resource's component key
                clean = self._redactor.uri(value, None, None, ())
            else:
                clean = self._text(value)
            return value if clean == value else clean
        if isinstance(value, Sequence) and not isinstance(value, bytes):
            items = [self._value(key, item) for item in value]
            if any(new is not old for new, old in zip(items, value, strict=True)):
                return tuple(items)
        return value

    def _text(self, text: str) -> str:
        """`text` with each part shaped like a credential masked, and each URI it quotes
        without its password and the values of its sensitive query parameters (the guard
        denies a read quoting the URI as sent, and FastMCP's span keeps that message); past
        `max_chars`, the oversized marker."""
        if len(text) > self.max_chars:
            return self._redactor.text(text, self.max_chars)
        return scrub_uris(scrub(text), self._redactor)
