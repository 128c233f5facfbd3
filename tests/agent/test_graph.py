"""The knowledge graph on a Memory: the reference memory server's semantics, and add-wins merges."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crdtmem import Memory
from crdtmem.agent.graph import EntityNotFoundError, KnowledgeGraph

from ..inprocess import exchange


def entity(name: str, kind: str = "person", *observations: str) -> dict:
    return {"name": name, "entityType": kind, "observations": list(observations)}


def rel(source: str, target: str, kind: str = "knows") -> dict:
    return {"from": source, "to": target, "relationType": kind}


@pytest.fixture
def graph() -> KnowledgeGraph:
    return KnowledgeGraph(Memory("alice"))


def test_create_entities_returns_only_the_new_ones(graph) -> None:
    assert graph.create_entities([entity("Ada", "person", "x")]) == [entity("Ada", "person", "x")]
    added = graph.create_entities([entity("Ada", "robot", "y"), entity("Bob"), entity("Bob", "robot")])
    assert added == [entity("Bob")]
    assert graph.read_graph()["entities"] == [entity("Ada", "person", "x"), entity("Bob")]


def test_observations_list_in_the_order_they_were_added(graph) -> None:
    graph.create_entities([entity("Ada", "person", "first", "second")])
    result = graph.add_observations([{"entityName": "Ada", "contents": ["third", "first", "third"]}])
    assert result == [{"entityName": "Ada", "addedObservations": ["third"]}]
    assert graph.open_nodes(["Ada"])["entities"][0]["observations"] == ["first", "second", "third"]


def test_add_observations_to_a_missing_entity_writes_nothing(graph) -> None:
    graph.create_entities([entity("Ada")])
    with pytest.raises(EntityNotFoundError, match="Entity with name Nobody not found"):
        graph.add_observations([{"entityName": "Ada", "contents": ["kept?"]}, {"entityName": "Nobody", "contents": ["x"]}])
    assert graph.read_graph()["entities"] == [entity("Ada")]


def test_create_relations_skips_existing_ones_and_may_dangle(graph) -> None:
    assert graph.create_relations([rel("Ada", "Bob"), rel("Ada", "Bob")]) == [rel("Ada", "Bob")]
    assert graph.create_relations([rel("Ada", "Bob"), rel("Bob", "Ada")]) == [rel("Bob", "Ada")]
    assert graph.read_graph()["relations"] == [rel("Ada", "Bob"), rel("Bob", "Ada")]


def test_delete_entities_cascades_to_observations_and_relations(graph) -> None:
    graph.create_entities([entity("Ada", "person", "x"), entity("Bob"), entity("Cy")])
    graph.create_relations([rel("Ada", "Bob"), rel("Cy", "Ada"), rel("Bob", "Cy")])
    graph.delete_entities(["Ada", "Ghost"])
    assert graph.read_graph() == {"entities": [entity("Bob"), entity("Cy")], "relations": [rel("Bob", "Cy")]}
    graph.create_entities([entity("Ada")])
    assert graph.open_nodes(["Ada"])["entities"] == [entity("Ada")]


def test_delete_observations_and_relations_ignore_what_is_absent(graph) -> None:
    graph.create_entities([entity("Ada", "person", "x", "y")])
    graph.create_relations([rel("Ada", "Bob")])
    graph.delete_observations([{"entityName": "Ada", "observations": ["x", "zz"]},
                               {"entityName": "Ghost", "observations": ["x"]}])
    graph.delete_relations([rel("Ada", "Bob"), rel("Bob", "Ada")])
    assert graph.read_graph() == {"entities": [entity("Ada", "person", "y")], "relations": []}


def test_search_nodes_matches_name_type_and_observations_case_insensitively(graph) -> None:
    graph.create_entities([entity("Ada", "person", "Likes TEA"), entity("Engine", "machine"), entity("Zed", "cat")])
    graph.create_relations([rel("Ada", "Engine", "programs"), rel("Zed", "Engine", "sits_on"), rel("Zed", "Zed")])
    assert [e["name"] for e in graph.search_nodes("tea")["entities"]] == ["Ada"]
    assert [e["name"] for e in graph.search_nodes("MACH")["entities"]] == ["Engine"]
    found = graph.search_nodes("ada")
    assert found["relations"] == [rel("Ada", "Engine", "programs")]
    assert graph.search_nodes("nothing matches") == {"entities": [], "relations": []}


def test_open_nodes_returns_the_named_entities_and_relations_touching_them(graph) -> None:
    graph.create_entities([entity("Ada"), entity("Bob"), entity("Cy")])
    graph.create_relations([rel("Ada", "Bob"), rel("Bob", "Cy"), rel("Cy", "Cy")])
    opened = graph.open_nodes(["Bob", "Missing"])
    assert opened == {"entities": [entity("Bob")], "relations": [rel("Ada", "Bob"), rel("Bob", "Cy")]}


def test_concurrent_creates_on_two_replicas_keep_every_entity_and_observation() -> None:
    alice, bob = Memory("alice"), Memory("bob")
    a, b = KnowledgeGraph(alice), KnowledgeGraph(bob)
    a.create_entities([entity(f"a{i}", "note", "from alice") for i in range(5)] + [entity("Shared", "x", "alice saw")])
    b.create_entities([entity(f"b{i}", "note", "from bob") for i in range(5)] + [entity("Shared", "x", "bob saw")])
    exchange(alice, bob)
    assert a.read_graph() == b.read_graph()
    names = [e["name"] for e in a.read_graph()["entities"]]
    assert names == sorted([f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)] + ["Shared"])
    shared = a.open_nodes(["Shared"])["entities"][0]
    assert sorted(shared["observations"]) == ["alice saw", "bob saw"]


def test_concurrent_observation_keeps_an_entity_deleted_elsewhere() -> None:
    alice, bob = Memory("alice"), Memory("bob")
    a, b = KnowledgeGraph(alice), KnowledgeGraph(bob)
    a.create_entities([entity("Ada", "person", "old")])
    a.create_relations([rel("Ada", "Bob")])
    exchange(alice, bob)
    a.delete_entities(["Ada"])
    b.add_observations([{"entityName": "Ada", "contents": ["new"]}])
    exchange(alice, bob)
    assert a.read_graph() == b.read_graph() == {"entities": [entity("Ada", "person", "new")], "relations": []}


def test_concurrent_relation_to_a_deleted_entity_survives_dangling() -> None:
    alice, bob = Memory("alice"), Memory("bob")
    a, b = KnowledgeGraph(alice), KnowledgeGraph(bob)
    a.create_entities([entity("Ada"), entity("Bob")])
    exchange(alice, bob)
    a.delete_entities(["Bob"])
    b.create_relations([rel("Ada", "Bob")])
    exchange(alice, bob)
    assert a.read_graph() == b.read_graph() == {"entities": [entity("Ada")], "relations": [rel("Ada", "Bob")]}


def test_reads_skip_entries_of_the_wrong_shape_written_by_another_agent(graph) -> None:
    graph.create_entities([entity("Ada", "person", "x")])
    graph.memory.map("graph.entities").put(7, "number-named")
    graph.memory.map("graph.observations").put("not-a-pair", None)
    graph.memory.map("graph.relations").put(("only", "two"), None)
    assert graph.read_graph() == {"entities": [entity("Ada", "person", "x")], "relations": []}
    graph.delete_entities(["Ada"])
    assert graph.read_graph() == {"entities": [], "relations": []}


def test_malformed_arguments_raise_type_errors_before_writing(graph) -> None:
    with pytest.raises(TypeError, match="entityType"):
        graph.create_entities([entity("Ok"), {"name": "Bad", "entityType": 3, "observations": []}])
    with pytest.raises(TypeError, match="observations"):
        graph.create_entities([{"name": "Bad", "entityType": "x", "observations": "not a list"}])
    assert graph.read_graph()["entities"] == []


NAMES = st.sampled_from(["Ada", "Bob", "Cy"])
TEXTS = st.sampled_from(["x", "y", "z"])
GRAPH_OPS = st.one_of(
    st.tuples(st.just("create_entities"), st.lists(st.builds(entity, NAMES, TEXTS, TEXTS), max_size=2)),
    st.tuples(st.just("add_observations"), st.lists(st.fixed_dictionaries(
        {"entityName": NAMES, "contents": st.lists(TEXTS, max_size=2)}), max_size=2)),
    st.tuples(st.just("create_relations"), st.lists(st.builds(rel, NAMES, NAMES, TEXTS), max_size=2)),
    st.tuples(st.just("delete_entities"), st.lists(NAMES, max_size=2)),
    st.tuples(st.just("delete_observations"), st.lists(st.fixed_dictionaries(
        {"entityName": NAMES, "observations": st.lists(TEXTS, max_size=2)}), max_size=2)),
    st.tuples(st.just("delete_relations"), st.lists(st.builds(rel, NAMES, NAMES, TEXTS), max_size=2)),
    st.tuples(st.just("exchange"), st.just(None)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), GRAPH_OPS), max_size=25))
def test_replicas_that_saw_the_same_writes_show_the_same_graph(steps) -> None:
    memories = [Memory(name) for name in ("alice", "bob", "carol")]
    graphs = [KnowledgeGraph(m) for m in memories]
    for who, (op, argument) in steps:
        if op == "exchange":
            exchange(memories[who], memories[(who + 1) % 3])
            continue
        try:
            getattr(graphs[who], op)(argument)
        except EntityNotFoundError:
            pass
    for source in memories:  # full-state merges: afterwards every replica has seen every write
        for target in memories:
            if target is not source:
                target.merge(source)
    first = graphs[0].read_graph()
    assert graphs[1].read_graph() == first and graphs[2].read_graph() == first
    for found in first["entities"]:
        assert len(set(found["observations"])) == len(found["observations"])
