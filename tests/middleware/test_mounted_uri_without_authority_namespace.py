"""A mount cannot put its namespace into a URI without `//` (`urn:hr:payroll` is listed
and read as the child wrote it). Such a mounted resource or template is in the namespace
of its mount, as `data://hr/x` is: a deny rule on `hr` hides and refuses it too, and the
child (or the remote server behind a mounted proxy) cannot declare itself in another
namespace in its meta, which a mounted tool cannot do either. Before, the guard gave it
no namespace at all, so a policy denying the `hr` namespace served `urn:hr:payroll`."""

from __future__ import annotations

from typing import Any

import pytest
from fastmcp import Client, FastMCP
from fastmcp.server import create_proxy
from mcp.shared.exceptions import MCPError
from mw_support import NO_HR_ANYTHING as NOT_HR
from mw_support import Recorder

from guard import GuardMiddleware, Principal

ALICE = Principal("alice", roles=("user",), auth_method="test")

PUBLIC_ONLY = """
name: p
default_effect: deny
rules:
  - name: public
    effect: allow
    conditions: [{field: resource.namespace, operator: equals, value: public}]
"""

URIS = ("urn:hr:payroll", "mailto:ceo")


def _hr() -> FastMCP[Any]:
    hr: FastMCP[Any] = FastMCP("hr")

    @hr.resource("urn:hr:payroll", meta={"namespace": "public"})
    def payroll() -> str:
        return "ALL SALARIES"

    @hr.resource("mailto:{who}", meta={"namespace": "public"})
    def mail(who: str) -> str:
        return f"MAIL OF {who}"

    return hr


def _main_mounting(how: str) -> FastMCP[Any]:
    """A server mounting the `hr` child under `hr`: directly, or as a proxy of it."""
    child = _hr() if how == "mount" else create_proxy(_hr(), name="remote-hr")
    main: FastMCP[Any] = FastMCP("main")
    main.mount(child, namespace="hr")
    return main


def _guarded(main: FastMCP[Any], policy: str, recorder: Recorder) -> None:
    main.add_middleware(GuardMiddleware(policy, principal=ALICE, audit=None, telemetry=recorder))


def _namespaces(recorder: Recorder) -> dict[str, str | None]:
    return {str(e.request.resource.uri): e.request.resource.namespace for e in recorder.events}


async def _shown(client: Client[Any]) -> tuple[list[str], list[str]]:
    resources = [str(r.uri) for r in await client.list_resources()]
    return resources, [t.uri_template for t in await client.list_resource_templates()]


@pytest.mark.parametrize("how", ["mount", "proxy"])
async def test_a_mounted_resource_without_authority_cannot_declare_its_namespace(
    recorder: Recorder, how: str
) -> None:
    main = _main_mounting(how)
    _guarded(main, PUBLIC_ONLY, recorder)
    async with Client(main) as client:
        # observed: both listed, and read ("ALL SALARIES", "MAIL OF ceo")
        assert await _shown(client) == ([], [])
        for uri in URIS:
            with pytest.raises(MCPError, match="not found"):
                await client.read_resource(uri)
    assert {e.request.resource.namespace for e in recorder.events} == {"hr"}


@pytest.mark.parametrize("how", ["mount", "proxy"])
async def test_a_deny_rule_on_the_mount_namespace_covers_its_uris_without_authority(
    recorder: Recorder, how: str
) -> None:
    main = _main_mounting(how)

    @main.resource("urn:main:notice")
    def notice() -> str:
        return "OPEN"

    _guarded(main, NOT_HR, recorder)
    async with Client(main) as client:
        # observed before: all three listed, and payroll read ("ALL SALARIES")
        assert await _shown(client) == (["urn:main:notice"], [])
        for uri in URIS:
            with pytest.raises(MCPError, match="not found"):
                await client.read_resource(uri)
        assert (await client.read_resource("urn:main:notice"))[0].text == "OPEN"
    reads = {e.request.resource.uri: e for e in recorder.events if e.method == "resources/read"}
    assert {uri: e.decision.rule for uri, e in reads.items()} == {
        "urn:hr:payroll": "no_hr", "mailto:ceo": "no_hr", "urn:main:notice": None,
    }  # fmt: skip
    assert reads["urn:main:notice"].request.resource.namespace is None


async def test_a_mount_without_a_namespace_gives_none_whatever_the_meta_says(
    recorder: Recorder,
) -> None:
    main: FastMCP[Any] = FastMCP("main")
    main.mount(_hr())
    _guarded(main, PUBLIC_ONLY, recorder)
    async with Client(main) as client:
        assert await _shown(client) == ([], [])
    assert {e.request.resource.namespace for e in recorder.events} == {None}


async def test_nested_mounts_are_in_the_outer_namespace_as_uris_with_authority_are(
    recorder: Recorder,
) -> None:
    team: FastMCP[Any] = FastMCP("team")
    team.mount(_hr(), namespace="inner")

    @team.resource("data://roster")
    def roster() -> str:
        return "ROSTER"

    main: FastMCP[Any] = FastMCP("main")
    main.mount(team, namespace="hr")
    _guarded(main, NOT_HR, recorder)
    async with Client(main) as client:
        assert await _shown(client) == ([], [])
        with pytest.raises(MCPError, match="not found"):
            await client.read_resource("urn:hr:payroll")
    namespaces = _namespaces(recorder)
    assert namespaces == {
        "urn:hr:payroll": "hr", "mailto:{who}": "hr", "data://hr/roster": "hr",
    }  # fmt: skip


async def test_a_child_mounted_twice_is_in_the_namespace_of_the_mount_that_serves_it(
    recorder: Recorder,
) -> None:
    """FastMCP serves `urn:hr:payroll`, the same through both mounts, from the first."""
    main: FastMCP[Any] = FastMCP("main")
    child = _hr()
    main.mount(child, namespace="hr")
    main.mount(child, namespace="public")
    _guarded(main, PUBLIC_ONLY, recorder)
    async with Client(main) as client:
        with pytest.raises(MCPError, match="not found"):
            await client.read_resource("urn:hr:payroll")
    assert [e.request.resource.namespace for e in recorder.events] == ["hr"]

    recorder.events.clear()
    other: FastMCP[Any] = FastMCP("other")
    other.mount(child, namespace="public")
    other.mount(child, namespace="hr")
    _guarded(other, PUBLIC_ONLY, recorder)
    async with Client(other) as client:
        assert (await client.read_resource("urn:hr:payroll"))[0].text == "ALL SALARIES"
    assert [e.request.resource.namespace for e in recorder.events] == ["public"]


async def test_namespaces_stacked_on_one_mount_read_alike_with_and_without_authority(
    recorder: Recorder,
) -> None:
    """Two namespaces on one provider (`data://b/a/x`): an authority-less URI of the same
    child gets the same namespace as one FastMCP prefixed."""
    from fastmcp.server.providers.fastmcp_provider import FastMCPProvider
    from fastmcp.server.transforms.namespace import Namespace

    child = _hr()

    @child.resource("data://roster")
    def roster() -> str:
        return "ROSTER"

    provider = FastMCPProvider(child).wrap_transform(Namespace("a"))
    provider.add_transform(Namespace("b"))
    main: FastMCP[Any] = FastMCP("main")
    main.add_provider(provider.wrap_transform(Namespace("c")))
    _guarded(main, PUBLIC_ONLY, recorder)
    async with Client(main) as client:
        await client.list_resources()
    namespaces = _namespaces(recorder)
    assert namespaces == {"data://c/b/a/roster": "c/b/a", "urn:hr:payroll": "c/b/a"}


@pytest.mark.parametrize(("namespace", "completed"), [("hr", []), ("people", ["ceo", "cfo"])])
async def test_completion_of_a_mounted_template_without_authority_meets_its_namespace(
    recorder: Recorder, namespace: str, completed: list[str]
) -> None:
    main: FastMCP[Any] = FastMCP("main")
    main.mount(_hr(), namespace=namespace)

    @main.completion
    def complete(ref: Any, argument: Any, context: Any) -> list[str]:
        return ["ceo", "cfo"]

    _guarded(main, NOT_HR, recorder)
    async with Client(main) as client:
        done = await client.complete(
            {"type": "ref/resource", "uri": "mailto:{who}"}, {"name": "who", "value": "c"}
        )
    assert done.values == completed
    [event] = [e for e in recorder.events if e.method == "completion/complete"]
    assert event.request.resource.namespace == namespace
