"""`uvicorn app:app --workers 2` (or `--reload`) imports the app in each worker after
uvicorn took SIGTERM over; at shutdown uvicorn puts back the handler it found (the default)
and raises SIGTERM again. Each worker's records must be kept all the same."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from audit_kit import RAW_API_KEY, REPO
from servers import free_port

from guard.audit import open_store, verify

HERE = Path(__file__).parent


HEADERS = {
    "accept": "application/json, text/event-stream", "content-type": "application/json",
    "mcp-protocol-version": "2025-06-18", "x-api-key": RAW_API_KEY,
}  # fmt: skip


async def _call(http: httpx.AsyncClient, url: str, i: int, name: str, **args: int) -> object:
    params = {"name": name, "arguments": args}
    body = {"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": params}
    resp = await http.post(url, json=body, headers=HEADERS)
    assert resp.status_code == 200, resp.text
    return resp.json()["result"]["structuredContent"]["result"]


async def _calls(url: str, seconds: float) -> list[int]:
    """Call `add` from 8 clients for `seconds` (a connection a call, so that both workers
    answer); the ids of the calls answered."""
    answered: list[int] = []
    ids = iter(range(10**9))

    async def client() -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            i = next(ids)
            async with httpx.AsyncClient(timeout=20) as http:
                assert await _call(http, url, i, "add", a=i, b=0) == i
            answered.append(i)

    await asyncio.gather(*(client() for _ in range(8)))
    return answered


async def _both_workers_up(url: str, timeout: float = 60.0) -> None:
    pids: set[object] = set()
    deadline = time.monotonic() + timeout
    while len(pids) < 2:
        assert time.monotonic() < deadline, "the two workers never both answered"
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                pids.add(await _call(http, url, 0, "worker"))
        except httpx.TransportError:
            await asyncio.sleep(0.1)


def test_sigterm_to_uvicorn_workers_loses_no_record(tmp_path: Path) -> None:
    store, port = tmp_path / "store", free_port()
    env = {
        **os.environ, "MCP_GUARD_AUDIT": str(store),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"), str(HERE)]),
    }  # fmt: skip
    log = tmp_path / "uvicorn.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "uvicorn_app:app", "--workers", "2",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        asyncio.run(_both_workers_up(url))
        answered = asyncio.run(_calls(url, 2.0))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with open_store(store) as con:
        rows = con.execute(
            "SELECT args, status, writer_id FROM decision_log WHERE resource = 'add'"
        ).fetchall()
    recorded = {json.loads(args)["a"]: status for args, status, _ in rows}
    missing = sorted(set(answered) - set(recorded))
    assert len(answered) > 20
    assert not missing, f"{len(missing)} of {len(answered)} answered calls not recorded"
    assert all(recorded[i] == "ok" for i in answered)
    assert len({w for _, _, w in rows}) == 2  # a writer of its own in each worker
    assert verify(store).ok
    assert "Traceback" not in log.read_text()
