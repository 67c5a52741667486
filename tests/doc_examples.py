"""Runs the code examples in the guard's docstrings: `python3 tests/doc_examples.py MODULE`.

Every fenced `python` block in a docstring of MODULE (module, class, function, method)
runs in a fresh temporary directory, in a namespace holding the module's globals and the
names below, which the examples take as given (as a reader of the docs would: "your
server", "your middleware"). Top-level `await` works. The process exits 1 after printing
each example that raised, with where it is. `tests/test_docstrings.py` runs this once per
module, each in its own process, since some examples configure process-wide state
(OpenTelemetry providers, the global Prometheus registry).

Files in the working directory:
- `policies.yaml`: `examples/policies/weather.yaml`;
- `policies/`: a copy of `examples/policies` (policies and their test suites);
- `updated_policies/`: a directory with one policy, to reload from;
- `examples/`: a copy of the repository's `examples/`;
- `mcp-guard-audit.duckdb`: a decision store (the default path) with a few records.

Names: `mcp` (a FastMCP server with a `get_weather` tool), `middleware` (a
`GuardMiddleware` on `policies.yaml`, records and telemetry off), `policies` (that `PolicySet`),
`request` (alice, role `user`, calling `get_weather` for Paris), `event` (its
`DecisionEvent`), `audit` (a durable `AuditLog`), `queued_item` (what `AuditLog.append`
queues for `event`), `spec` (a `PolicySpec` built in Python, rule `admins` first),
and mcp-auth-guard's `my_policy` (a `PolicyConfig`),
`config` (the same), `auth_ctx` and `resource_ctx`. Environment: `MCP_GUARD_API_KEYS`
(two keys) and `METRICS_TOKEN`.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import importlib
import inspect
import os
import re
import shutil
import sys
import tempfile
import textwrap
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"```python\n(.*?)```", re.S)


def examples(module: str) -> list[tuple[str, int, str]]:
    """(where, line, code) of each example in `module`'s source file."""
    path = module_path(module)
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=True)
            for match in FENCE.finditer(doc or ""):
                name = getattr(node, "name", "<module>")
                found.append((f"{module}.{name}", getattr(node, "lineno", 1), match.group(1)))
    return sorted(found, key=lambda e: e[1])


def module_path(module: str) -> Path:
    parts = module.split(".")
    package = REPO.joinpath(*parts, "__init__.py")
    return package if package.exists() else REPO.joinpath(*parts[:-1], f"{parts[-1]}.py")


def modules_with_examples() -> list[str]:
    out = []
    for path in sorted((REPO / "guard").rglob("*.py")):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        name = name.removesuffix(".__init__")
        if FENCE.search(path.read_text()):
            out.append(name)
    return out


def _files(cwd: Path) -> None:
    shutil.copytree(REPO / "examples", cwd / "examples", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copytree(REPO / "examples" / "policies", cwd / "policies")
    shutil.copy(REPO / "examples" / "policies" / "weather.yaml", cwd / "policies.yaml")
    (cwd / "updated_policies").mkdir()
    shutil.copy(REPO / "examples" / "policies" / "weather.yaml", cwd / "updated_policies")


GIVEN = frozenset({
    "mcp", "middleware", "policies", "request", "event", "audit", "queued_item", "spec",
    "my_policy", "config", "auth_ctx", "resource_ctx",
})  # fmt: skip


def _given() -> dict[str, Callable[[dict[str, Any]], Any]]:
    """How to make each name the examples take as given (from the names made before it)."""
    from fastmcp import FastMCP

    from guard import GuardMiddleware, load_policies
    from guard._ids import uuid7
    from guard.audit import AuditLog
    from guard.events import DecisionEvent
    from guard.policy import AccessRequest, Principal, Resource, policy, rule
    from guard.policy.compat import PolicyLoader
    from guard.schemas import AuthContext, ResourceContext, ToolResource

    def mcp(_: dict[str, Any]) -> Any:
        server: FastMCP[Any] = FastMCP("demo")

        @server.tool(tags={"public"})
        def get_weather(city: str) -> str:
            return f"Sunny in {city}"

        return server

    def event(names: dict[str, Any]) -> Any:
        request = names["request"]
        decision = names["policies"].decide(request)
        store = AuditLog("mcp-guard-audit.duckdb")  # the default store, with records
        for _ in range(3):
            store.append(DecisionEvent(uuid7(), request, decision, method="tools/call"))
        store.close()
        return DecisionEvent(uuid7(), request, decision, method="tools/call")

    def queued_item(names: dict[str, Any]) -> Any:
        probe = AuditLog("queued-items", flush_interval=3600)
        probe.append(names["event"])
        item = probe._queue[0]  # what the writer receives
        probe.close()
        return item

    return {
        "mcp": mcp,
        "middleware": lambda _: GuardMiddleware("policies.yaml", audit=None, telemetry=False),
        "policies": lambda _: load_policies("policies.yaml"),
        "request": lambda _: AccessRequest(
            Principal("alice", ("user",)),
            Resource("tool", "get_weather"),
            "call",
            {"city": "Paris"},
        ),
        "event": event,
        "audit": lambda _: AuditLog("durable-records", durable=True),
        "queued_item": queued_item,
        "spec": lambda _: (
            policy("svc")
            .add_rule(rule("admins").for_roles("admin").allow())
            .add_rule(rule("users").for_roles("user").for_tool_patterns("get_*").allow())
            .build()
            .to_spec()
        ),
        "my_policy": lambda _: PolicyLoader.load_from_file("policies.yaml"),
        "config": lambda _: PolicyLoader.load_from_file("policies.yaml"),
        "auth_ctx": lambda _: AuthContext(user_id="alice", roles=["user"], authenticated=True),
        "resource_ctx": lambda _: ResourceContext(
            resource_type="tool",
            resource=ToolResource(name="get_weather"),
            action="call",
            method="tools/call",
        ),
    }


class _Given(dict[str, Any]):
    """The given names, each made when first asked for (by an example or another name)."""

    def __init__(self) -> None:
        super().__init__()
        self.makers = _given()

    def __missing__(self, name: str) -> Any:
        value = self[name] = self.makers[name](self)
        return value


def _namespace(module: Any, code: str) -> dict[str, Any]:
    """The module's globals and the given names the example uses. The default store
    (`mcp-guard-audit.duckdb`) gets its records when `event` is made."""
    used = {n.id for n in ast.walk(ast.parse(code)) if isinstance(n, ast.Name)}
    if "mcp-guard-audit.duckdb" in code:
        used.add("event")
    if not used & GIVEN:
        return dict(vars(module))  # (making the names imports FastMCP: ~0.5 s)
    given = _Given()
    for name in sorted(used & GIVEN):
        given[name]  # made on first use
    return {**vars(module), **given}


def _stop(namespace: dict[str, Any]) -> None:
    """Stop what an example started before its directory goes: the guard objects it
    holds, and every audit writer (a middleware's, too), which would write on."""
    from guard.audit import _process

    for value in [*namespace.values(), *list(_process._live)]:
        close = getattr(value, "close", None)
        if callable(close) and type(value).__module__.startswith("guard."):
            with contextlib.suppress(Exception):
                close()


@contextlib.contextmanager
def _workdir() -> Iterator[Path]:
    old = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="doc-example-") as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(old)


def run(module: str) -> int:
    os.environ["MCP_GUARD_API_KEYS"] = (
        "{sk-doc-user-0123456789: [user], sk-doc-admin-98765: [admin]}"
    )
    os.environ["METRICS_TOKEN"] = "doc-metrics-token"
    failures = 0
    target = importlib.import_module(module)
    for where, line, fenced in examples(module):
        code = textwrap.dedent(fenced)
        with _workdir() as cwd:
            _files(cwd)
            namespace: dict[str, Any] = {}
            try:
                namespace = _namespace(target, code)
                compiled = compile(
                    code, f"{module_path(module)}:{line} ({where})", "exec",
                    flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT,
                )  # fmt: skip
                if compiled.co_flags & inspect.CO_COROUTINE:
                    asyncio.run(eval(compiled, namespace))
                else:
                    exec(compiled, namespace)
            except BaseException:
                failures += 1
                print(f"--- {where} (line {line}) failed:\n{code}")
                traceback.print_exc()
            finally:
                _stop(namespace)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1]))
