"""Decision records: redaction, hash chain, background writer, the store (hot files and
Parquet segments), readers.

`import guard.audit` is light: DuckDB loads inside the converter thread and readers.

```python
from guard.audit import AuditLog, open_store

log = AuditLog("mcp-guard-audit.duckdb")          # what the middleware writes through
store = open_store("mcp-guard-audit.duckdb")      # what everything else reads through
store.sql("SELECT * FROM decision_log LIMIT 5")
```
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "AuditLog": "guard.audit.log",
    "DEFAULT": "guard.audit.log",
    "DEFAULT_PATH": "guard.audit.log",
    "resolve_audit": "guard.audit.log",
    "Redactor": "guard.audit.redact",
    "looks_secret": "guard.audit.redact",
    "AuditStore": "guard.audit.store",
    "open_store": "guard.audit.store",
    "verify": "guard.audit.verify",
    "VerifyReport": "guard.audit.verify",
    "compact": "guard.audit.maintenance",
    "apply_retention": "guard.audit.maintenance",
}

__all__ = [
    "DEFAULT",
    "DEFAULT_PATH",
    "AuditLog",
    "AuditStore",
    "Redactor",
    "VerifyReport",
    "apply_retention",
    "compact",
    "looks_secret",
    "open_store",
    "resolve_audit",
    "verify",
]

if TYPE_CHECKING:
    from guard.audit.log import DEFAULT, DEFAULT_PATH, AuditLog, resolve_audit
    from guard.audit.maintenance import apply_retention, compact
    from guard.audit.redact import Redactor, looks_secret
    from guard.audit.store import AuditStore, open_store
    from guard.audit.verify import VerifyReport, verify


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'guard.audit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


class _Package(types.ModuleType):
    """`guard.audit.verify` is the function: importing the submodule of that name (the
    CLI's `verify` does) would otherwise replace it on the package with the module, and
    `from guard.audit import verify` would then give a module."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == value.__name__:
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
