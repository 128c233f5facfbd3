"""The MCP server in process, through the official client: listings, results, errors, flushes."""

from __future__ import annotations

import json
import warnings

import anyio
import pytest

pytest.importorskip("mcp")

from mcp import Client  # noqa: E402
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError  # noqa: E402

from crdtmem import Memory  # noqa: E402
from crdtmem.agent.graph import KnowledgeGraph  # noqa: E402
from crdtmem.errors import UnencodableWriteError  # noqa: E402
from crdtmem.integrations.mcp import GRAPH_RESOURCE_URI, build_server, graph_tools  # noqa: E402

pytestmark = pytest.mark.anyio

REFERENCE_TOOLS = ["create_entities", "create_relations", "add_observations", "delete_entities",
                   "delete_observations", "delete_relations", "read_graph", "search_nodes", "open_nodes"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def graph() -> KnowledgeGraph:
    return KnowledgeGraph(Memory("alice"))


@pytest.fixture
def flushes() -> list[int]:
    return []


@pytest.fixture
async def client(graph, flushes):
    async def flush() -> None:
        flushes.append(1)

    async with Client(build_server(graph_tools(graph), graph=graph, after_write=flush)) as connected:
        yield connected


def ada(*observations: str) -> dict:
    return {"name": "Ada", "entityType": "person", "observations": list(observations)}


async def test_the_tool_list_is_the_reference_servers(client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert list(tools) == REFERENCE_TOOLS
    entity = tools["create_entities"].input_schema["properties"]["entities"]["items"]
    assert entity["required"] == ["name", "entityType", "observations"]
    relation = tools["create_relations"].input_schema["properties"]["relations"]["items"]
    assert list(relation["properties"]) == ["from", "to", "relationType"]
    assert tools["add_observations"].input_schema["properties"]["observations"]["items"]["required"] == [
        "entityName", "contents"]
    assert tools["delete_entities"].input_schema["required"] == ["entityNames"]
    assert tools["search_nodes"].input_schema["required"] == ["query"]
    assert tools["read_graph"].input_schema["properties"] == {}
    assert tools["read_graph"].annotations.read_only_hint and tools["delete_entities"].annotations.destructive_hint
    assert tools["open_nodes"].output_schema["required"] == ["entities", "relations"]


async def test_create_entities_answers_with_the_new_ones_as_text_and_structure(client) -> None:
    first = await client.call_tool("create_entities", {"entities": [ada("x")]})
    again = await client.call_tool("create_entities", {"entities": [ada("y"), {**ada(), "name": "Bob"}]})
    assert first.structured_content == {"entities": [ada("x")]}
    assert json.loads(first.content[0].text) == [ada("x")]
    assert again.structured_content == {"entities": [{**ada(), "name": "Bob"}]}


async def test_add_observations_to_a_missing_entity_is_a_tool_error_and_writes_nothing(client, graph) -> None:
    await client.call_tool("create_entities", {"entities": [ada()]})
    result = await client.call_tool("add_observations", {"observations": [
        {"entityName": "Ada", "contents": ["lost"]}, {"entityName": "Nobody", "contents": ["x"]}]})
    assert result.is_error and result.content[0].text == "Entity with name Nobody not found"
    assert graph.read_graph()["entities"] == [ada()]
    added = await client.call_tool("add_observations", {"observations": [{"entityName": "Ada", "contents": ["a", "b"]}]})
    assert added.structured_content == {"results": [{"entityName": "Ada", "addedObservations": ["a", "b"]}]}


async def test_arguments_that_break_the_schema_are_a_tool_error(client, graph) -> None:
    result = await client.call_tool("create_entities", {"entities": [{"name": "Ada", "entityType": "person"}]})
    assert result.is_error
    assert "Invalid arguments for tool create_entities" in result.content[0].text
    assert "observations" in result.content[0].text
    assert (await client.call_tool("search_nodes", {"query": 3})).is_error
    assert graph.read_graph() == {"entities": [], "relations": []}


async def test_an_unknown_tool_is_a_tool_error(client) -> None:
    result = await client.call_tool("forget_everything", {})
    assert result.is_error and "forget_everything" in result.content[0].text


async def test_deletes_answer_with_the_reference_messages(client) -> None:
    await client.call_tool("create_entities", {"entities": [ada("x"), {**ada(), "name": "Bob"}]})
    await client.call_tool("create_relations", {"relations": [{"from": "Ada", "to": "Bob", "relationType": "knows"}]})
    calls = {
        "delete_observations": ({"deletions": [{"entityName": "Ada", "observations": ["x"]}]},
                                "Observations deleted successfully"),
        "delete_relations": ({"relations": [{"from": "Ada", "to": "Bob", "relationType": "knows"}]},
                             "Relations deleted successfully"),
        "delete_entities": ({"entityNames": ["Bob"]}, "Entities deleted successfully"),
    }
    for name, (arguments, message) in calls.items():
        result = await client.call_tool(name, arguments)
        assert result.structured_content == {"success": True, "message": message}
        assert result.content[0].text == message
    read = await client.call_tool("read_graph", {})
    assert read.structured_content == {"entities": [ada()], "relations": []}


async def test_search_and_open_return_entities_with_their_relations(client) -> None:
    await client.call_tool("create_entities", {"entities": [ada("likes tea"), {**ada(), "name": "Bob"}]})
    knows = {"from": "Ada", "to": "Bob", "relationType": "knows"}
    await client.call_tool("create_relations", {"relations": [knows]})
    searched = await client.call_tool("search_nodes", {"query": "TEA"})
    assert searched.structured_content == {"entities": [ada("likes tea")], "relations": [knows]}
    opened = await client.call_tool("open_nodes", {"names": ["Bob"]})
    assert opened.structured_content == {"entities": [{**ada(), "name": "Bob"}], "relations": [knows]}


async def test_writes_are_flushed_before_the_answer_and_reads_are_not(client, flushes) -> None:
    await client.call_tool("create_entities", {"entities": [ada()]})
    await client.call_tool("delete_entities", {"entityNames": ["Nobody"]})
    assert len(flushes) == 2
    await client.call_tool("read_graph", {})
    await client.call_tool("search_nodes", {"query": "a"})
    await client.call_tool("add_observations", {"observations": [{"entityName": "Nobody", "contents": ["x"]}]})
    assert len(flushes) == 2


async def test_the_graph_is_also_a_resource(client, graph) -> None:
    graph.create_entities([ada("x")])
    listed = await client.list_resources()
    assert [str(r.uri) for r in listed.resources] == [GRAPH_RESOURCE_URI]
    read = await client.read_resource(GRAPH_RESOURCE_URI)
    assert json.loads(read.contents[0].text) == {"entities": [ada("x")], "relations": []}


async def test_subscribers_hear_of_changes_made_by_another_replica(graph) -> None:
    elsewhere = KnowledgeGraph(Memory("bob"))
    async with Client(build_server(graph_tools(graph), graph=graph)) as client:
        async with client.listen(resource_subscriptions=[GRAPH_RESOURCE_URI]) as changes:
            elsewhere.create_entities([ada("seen by bob")])
            for name, delta in elsewhere.memory.take_deltas():
                graph.memory.apply_delta(name, delta, "bob")
            with anyio.fail_after(5):
                event = await anext(changes)
            assert event.uri == GRAPH_RESOURCE_URI
            read = await client.call_tool("read_graph", {})
            assert read.structured_content["entities"] == [ada("seen by bob")]


async def test_legacy_clients_subscribe_with_resources_subscribe(graph) -> None:
    heard = anyio.Event()

    async def on_message(message) -> None:
        if getattr(message, "method", None) == "notifications/resources/updated":
            heard.set()

    async with Client(build_server(graph_tools(graph), graph=graph), mode="legacy", message_handler=on_message) as client:
        assert client.server_capabilities.resources.subscribe
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            await client.subscribe_resource(GRAPH_RESOURCE_URI)
        await client.call_tool("create_entities", {"entities": [ada()]})
        with anyio.fail_after(5):
            await heard.wait()


async def test_a_write_that_cannot_be_shared_is_a_tool_error(graph) -> None:
    async def refuse() -> None:
        raise UnencodableWriteError("local writes could not be encoded and were not sent: 'x'")

    async with Client(build_server(graph_tools(graph), after_write=refuse)) as client:
        result = await client.call_tool("create_entities", {"entities": [ada()]})
    assert result.is_error and "not shared" in result.content[0].text


def test_two_tools_with_one_name_are_refused(graph) -> None:
    with pytest.raises(ValueError, match="create_entities"):
        build_server(graph_tools(graph) + graph_tools(graph))


async def test_reading_an_unknown_resource_is_an_error(client) -> None:
    with pytest.raises(MCPError, match="not found"):
        await client.read_resource("memory://elsewhere")
