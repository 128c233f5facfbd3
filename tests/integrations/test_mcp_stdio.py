"""``crdtmem mcp`` processes driven by the official MCP client over stdio, peered over loopback."""

from __future__ import annotations

import sys
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
import pytest

pytest.importorskip("mcp")

from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402

from crdtmem.integrations.mcp import GRAPH_RESOURCE_URI  # noqa: E402

from ..inprocess import free_port  # noqa: E402
from ..processes import keys  # noqa: E402

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def mcp_server(directory: Path, name: str, trust: Path, *extra: str) -> StdioServerParameters:
    args = ["-m", "crdtmem", "--log-level", "INFO", "mcp", "--key", str(directory / f"{name}.key"),
            "--trust", str(trust), "--db", str(directory / f"{name}.db"),
            "--gossip-interval", "0.2", "--reconnect-max", "0.5", *extra]
    return StdioServerParameters(command=sys.executable, args=args, env={"PYTHONUNBUFFERED": "1"})


async def entity_names(client: Client) -> set[str]:
    result = await client.call_tool("read_graph", {})
    assert not result.is_error, result.content
    return {entity["name"] for entity in result.structured_content["entities"]}


async def test_concurrent_creates_through_two_servers_reach_both_graphs(tmp_path) -> None:
    trust = keys(tmp_path, ["alice", "bob"])
    url = f"ws://127.0.0.1:{free_port()}"
    with anyio.fail_after(30):  # typically 3 s; importing the MCP SDK is slow on a busy machine
        async with AsyncExitStack() as stack:
            a = await stack.enter_async_context(Client(mcp_server(tmp_path, "alice", trust, "--listen", url)))
            b = await stack.enter_async_context(Client(mcp_server(
                tmp_path, "bob", trust, "--listen", "ws://127.0.0.1:0", "--connect", url)))
            assert {t.name for t in (await a.list_tools()).tools} >= {"create_entities", "read_graph"}
            a_changes = await stack.enter_async_context(a.listen(resource_subscriptions=[GRAPH_RESOURCE_URI]))
            b_changes = await stack.enter_async_context(b.listen(resource_subscriptions=[GRAPH_RESOURCE_URI]))

            async def create(client: Client, name: str) -> None:
                entity = {"name": name, "entityType": "note", "observations": [f"written as {name}"]}
                result = await client.call_tool("create_entities", {"entities": [entity]})
                assert result.structured_content == {"entities": [entity]}

            async with anyio.create_task_group() as tg:
                for i in range(10):
                    tg.start_soon(create, a, f"alice-{i}")
                    tg.start_soon(create, b, f"bob-{i}")
            expected = {f"{who}-{i}" for who in ("alice", "bob") for i in range(10)}
            for client, changes in ((a, a_changes), (b, b_changes)):
                while (found := await entity_names(client)) != expected:
                    assert found < expected
                    await anext(changes)  # the server says the graph changed (a write came in)


def test_the_mcp_command_takes_the_peer_flags(capsys) -> None:
    from crdtmem.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["mcp", "--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    for flag in ("--key", "--trust", "--db", "--listen", "--connect", "--agent"):
        assert flag in usage


def test_the_mcp_command_refuses_a_missing_key_before_serving(tmp_path, capsys) -> None:
    from crdtmem.cli import main

    trust = keys(tmp_path, ["alice"])
    assert main(["mcp", "--key", str(tmp_path / "nobody.key"), "--trust", str(trust)]) == 2
    assert "error:" in capsys.readouterr().err


async def test_the_server_collects_expired_records_with_their_history(tmp_path) -> None:
    trust = keys(tmp_path, ["alice"])
    with anyio.fail_after(30):
        async with Client(mcp_server(tmp_path, "alice", trust, "--ttl-sweep", "0.1")) as client:
            kept = {"namespace": ["notes"], "key": "kept", "value": {"a": 1}}
            brief = {"namespace": ["notes"], "key": "brief", "value": {"a": 2}, "ttlSeconds": 0.5}
            for arguments in (kept, brief):
                assert not (await client.call_tool("remember", arguments)).is_error
            history = {"namespace": ["notes"], "key": "brief"}
            assert (await client.call_tool("history", history)).structured_content["events"]
            # The sweeper's removal takes the record's history with it: ask until an answer shows
            # it ran (each answer is the server's state after its last sweep; no timer here).
            while (await client.call_tool("history", history)).structured_content["events"]:
                pass
            recalled = await client.call_tool("recall", {"namespace": ["notes"], "key": "kept"})
            assert recalled.structured_content["found"]
