"""Three LangGraph agents, three peers, one replicated store (deterministic nodes, no LLM).

Each agent runs its own graph in its own peer (``crdtmem.open_peer``) with its own
``CrdtStore``; the peers sync over websockets on 127.0.0.1. The planner files tasks, the
researcher and the reviewer then update *different fields* of the same task at the same time,
and every replica ends with both updates (a per-field merge), plus a signed history.

Run:  pip install 'crdtmem[langgraph]' && python examples/langgraph_team.py
"""

from __future__ import annotations

from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

import crdtmem
from crdtmem.identity import Identity, Keyring
from crdtmem.integrations.langgraph import CrdtStore
from crdtmem.runtime import PeerOptions

FAST_REDIAL = PeerOptions(reconnect_min=0.05)  # a dialer started before its listener retries soon

TASKS = ("team", "tasks")


class State(TypedDict):
    done: list[str]


def plan(state: State, *, store: BaseStore) -> dict:
    for n, title in enumerate(["survey CRDT stores", "benchmark the store"], 1):
        store.put(TASKS, f"t{n}", {"title": title, "status": "open", "notes": ""})
    return {"done": ["planned"]}


def research(state: State, *, store: BaseStore) -> dict:
    for task in store.search(TASKS, filter={"status": "open"}):
        store.put(TASKS, task.key, {**task.value, "notes": f"read 3 papers on {task.value['title']}"})
    return {"done": ["researched"]}


def review(state: State, *, store: BaseStore) -> dict:
    for task in store.search(TASKS):
        store.put(TASKS, task.key, {**task.value, "status": "approved"})
    return {"done": ["reviewed"]}


def graph_of(node, store: BaseStore):
    builder = StateGraph(State)
    builder.add_node("work", node)
    builder.add_edge(START, "work")
    builder.add_edge("work", END)
    return builder.compile(store=store)


def main() -> None:
    identities = [Identity.generate() for _ in range(3)]
    keyring = Keyring()
    for identity in identities:
        keyring.add(identity)
    with crdtmem.open_peer(identities[0], keyring, listen="ws://127.0.0.1:0") as hub, \
            crdtmem.open_peer(identities[1], keyring, connect=[hub.url], options=FAST_REDIAL) as second, \
            crdtmem.open_peer(identities[2], keyring, connect=[hub.url], options=FAST_REDIAL) as third:
        hub.wait_connected(2, timeout=20)
        peers = {"planner": hub, "researcher": second, "reviewer": third}
        stores = {name: CrdtStore(peer, agent=name) for name, peer in peers.items()}

        graph_of(plan, stores["planner"]).invoke({"done": []})
        for peer in peers.values():
            peer.wait_synced(timeout=20)
        # The researcher and the reviewer work at the same time, on the same tasks: cut them off
        # so neither sees the other's writes until both are done.
        for peer in (second, third):
            peer.call(peer.peer.isolate)
        graph_of(research, stores["researcher"]).invoke({"done": []})
        graph_of(review, stores["reviewer"]).invoke({"done": []})
        for peer in (second, third):
            peer.call(peer.peer.rejoin)
        for name, peer in peers.items():
            records = stores[name].records
            peer.wait_for(lambda _: all(r.value["status"] == "approved" and r.value["notes"]
                                        for r in records.search(TASKS)), timeout=20)

        views = {name: [(i.key, i.value) for i in store.search(TASKS)] for name, store in stores.items()}
        for key, value in views["planner"]:
            print(key, value)
        assert views["planner"] == views["researcher"] == views["reviewer"], views
        assert all(v["status"] == "approved" and v["notes"].startswith("read") for _, v in views["planner"])
        print("\nhistory of t1, as the planner's replica holds it:")
        for event in stores["planner"].records.history(TASKS, "t1"):
            print(f"  {event.kind:8} by {event.agent:10} ({event.author[:12]}…) -> {event.new}")


if __name__ == "__main__":
    main()
