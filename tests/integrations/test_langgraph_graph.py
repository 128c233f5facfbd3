"""A real LangGraph graph compiled with CrdtStore: its nodes' writes reach another peer."""

from __future__ import annotations

from typing import TypedDict

import pytest

pytest.importorskip("langgraph")

from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

from crdtmem.integrations.langgraph import CrdtStore

from ..inprocess import threaded_pair


class State(TypedDict):
    topic: str
    notes: list[str]


def researcher(state: State, *, store: BaseStore) -> dict:
    store.put(("notes", state["topic"]), "fact-1", {"text": f"{state['topic']} is a CRDT", "by": "researcher"})
    store.put(("notes", state["topic"]), "fact-2", {"text": "merges per field", "by": "researcher"})
    return {}


def writer(state: State, *, store: BaseStore) -> dict:
    found = store.search(("notes", state["topic"]))
    summary = "; ".join(item.value["text"] for item in found)
    store.put(("summaries",), state["topic"], {"summary": summary, "sources": len(found)})
    return {"notes": [item.key for item in found]}


def build(store: BaseStore):
    graph = StateGraph(State)
    graph.add_node("researcher", researcher)
    graph.add_node("writer", writer)
    graph.add_edge(START, "researcher")
    graph.add_edge("researcher", "writer")
    graph.add_edge("writer", END)
    return graph.compile(store=store)


def test_graph_nodes_write_through_the_store_and_another_peer_sees_it():
    with threaded_pair() as (a, b):
        result = build(CrdtStore(a, agent="graph")).invoke({"topic": "orset", "notes": []})
        assert result["notes"] == ["fact-1", "fact-2"]
        other = CrdtStore(b)
        b.wait_for(lambda memory: other.records.get(("summaries",), "orset") is not None, timeout=20)
        summary = other.get(("summaries",), "orset")
        assert summary.value == {"summary": "orset is a CRDT; merges per field", "sources": 2}
        assert [i.key for i in other.search(("notes",))] == ["fact-1", "fact-2"]
        history = other.records.history(("summaries",), "orset")
        assert [(e.kind, e.author, e.agent) for e in history] == [("added", a.peer_id, "graph")]


def test_store_is_safe_from_many_threads_while_peers_sync():
    import threading

    with threaded_pair() as (a, b):
        stores = [CrdtStore(a), CrdtStore(b)]
        errors: list[BaseException] = []

        def work(t: int) -> None:
            store = stores[t % 2]
            try:
                for i in range(25):
                    store.put(("threads", f"t{t}"), f"k{i}", {"i": i, "t": t})
                    assert store.get(("threads", f"t{t}"), f"k{i}").value == {"i": i, "t": t}
                    store.search(("threads",), limit=5)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        for peer, store in zip((a, b), stores):
            peer.wait_for(lambda _, s=store: len(s.records.search(("threads",), limit=1000)) == 150, timeout=30)
        assert [i.value for i in stores[0].search(("threads",), limit=1000)] == [
            i.value for i in stores[1].search(("threads",), limit=1000)
        ]
