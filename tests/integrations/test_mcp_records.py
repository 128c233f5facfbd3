"""The record tools (remember, recall, search, forget, history) through the official MCP client."""

from __future__ import annotations

import pytest

pytest.importorskip("mcp")

from mcp import Client  # noqa: E402

from crdtmem import Memory  # noqa: E402
from crdtmem.agent import Records  # noqa: E402
from crdtmem.integrations.mcp import build_server, record_tools  # noqa: E402

pytestmark = pytest.mark.anyio

NS = ["team", "decisions"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def memory(clock) -> Memory:
    return Memory("alice", clock=clock)


@pytest.fixture
async def client(memory):
    async with Client(build_server(record_tools(Records(memory, agent="planner")))) as connected:
        yield connected


async def call(client: Client, tool: str, **arguments) -> dict:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def test_remember_then_recall_returns_the_value_and_its_provenance(client) -> None:
    stored = await call(client, "remember", namespace=NS, key="db", value={"choice": "sqlite", "why": ["embedded"]})
    assert stored["record"]["value"] == {"choice": "sqlite", "why": ["embedded"]}
    recalled = (await call(client, "recall", namespace=NS, key="db"))["record"]
    assert recalled["value"] == {"choice": "sqlite", "why": ["embedded"]}
    assert recalled["author"] == "alice" and recalled["agent"] == "planner"
    assert recalled["namespace"] == NS and recalled["expiresAt"] is None


async def test_remember_without_a_key_makes_one(client) -> None:
    stored = (await call(client, "remember", namespace=NS, value={"note": "x"}))["record"]
    assert stored["key"]
    assert (await call(client, "recall", namespace=NS, key=stored["key"]))["found"]


async def test_recall_of_a_missing_record_says_not_found(client) -> None:
    assert await call(client, "recall", namespace=NS, key="nothing") == {"found": False}


async def test_a_record_past_its_ttl_is_not_recalled(client, clock) -> None:
    stored = (await call(client, "remember", namespace=NS, key="temp", value={"a": 1}, ttlSeconds=10))["record"]
    assert stored["expiresAt"] == pytest.approx(stored["updatedAt"] + 10)
    clock.now += 11
    assert await call(client, "recall", namespace=NS, key="temp") == {"found": False}


async def test_search_filters_by_fields_and_text_under_a_namespace_prefix(client) -> None:
    await call(client, "remember", namespace=NS, key="a", value={"status": "open", "priority": 1, "text": "Use SQLite"})
    await call(client, "remember", namespace=NS, key="b", value={"status": "open", "priority": 3, "text": "Add MCP"})
    await call(client, "remember", namespace=["other"], key="c", value={"status": "open", "priority": 5})
    keys = lambda found: [r["key"] for r in found["records"]]  # noqa: E731
    assert keys(await call(client, "search", namespace=["team"], filter={"priority": {"$gte": 2}})) == ["b"]
    assert keys(await call(client, "search", query="sqlite")) == ["a"]
    assert keys(await call(client, "search", filter={"status": "open"})) == ["a", "b", "c"]
    assert keys(await call(client, "search", filter={"status": "open"}, offset=1, limit=1)) == ["b"]


async def test_forget_deletes_and_history_keeps_every_change(client) -> None:
    await call(client, "remember", namespace=NS, key="db", value={"choice": "postgres"})
    await call(client, "remember", namespace=NS, key="db", value={"choice": "sqlite"})
    assert await call(client, "forget", namespace=NS, key="db") == {"deleted": True}
    assert await call(client, "forget", namespace=NS, key="db") == {"deleted": False}
    assert await call(client, "recall", namespace=NS, key="db") == {"found": False}
    events = (await call(client, "history", namespace=NS, key="db"))["events"]
    assert [(e["event"], e["old"], e["new"]) for e in events] == [
        ("added", None, {"choice": "postgres"}),
        ("updated", {"choice": "postgres"}, {"choice": "sqlite"}),
        ("deleted", {"choice": "sqlite"}, None),
    ]
    assert {e["author"] for e in events} == {"alice"}


async def test_a_record_that_is_not_an_object_is_a_tool_error(client) -> None:
    result = await client.call_tool("remember", {"namespace": NS, "key": "k", "value": "just text"})
    assert result.is_error and "Invalid arguments for tool remember" in result.content[0].text
    result = await client.call_tool("recall", {"namespace": [], "key": "k"})
    assert result.is_error
