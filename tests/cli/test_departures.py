"""``crdtmem peer`` processes that come and go leave no entry behind in the others' vectors."""

from __future__ import annotations

from pathlib import Path

from ..processes import PeerProcess, keys


def _pruned(peer: PeerProcess, at_least: int) -> int:
    """How many departed incarnations ``peer`` pruned, once it pruned ``at_least``."""
    for _ in range(150):
        pruned = peer.ask({"op": "metrics", "id": "m"})["metrics"]["stats"].get("incarnations_pruned", 0)
        if pruned >= at_least:
            return pruned
        peer.ask({"op": "sync", "timeout": 0.2, "id": "s"}, timeout=5)
    raise AssertionError(f"{peer.name} pruned {pruned} departed incarnations, not {at_least}")


def _add(peer: PeerProcess, value: str) -> None:
    peer.send({"op": "set.add", "name": "facts", "value": value, "id": value})
    peer.expect(lambda m: m.get("durable") == value, timeout=15)


def test_a_killed_sub_agent_is_retired_by_its_next_start_and_a_stopped_one_by_itself(tmp_path: Path) -> None:
    trust = keys(tmp_path, ["hub", "sub"])
    hub = PeerProcess(tmp_path, "hub", trust)
    sub = None
    try:
        sub = PeerProcess(tmp_path, "sub", trust, connect=[hub.url])
        _add(sub, "first run")
        hub.ask({"op": "wait", "contains": {"facts": ["first run"]}, "timeout": 30, "id": "w1"}, timeout=35)
        sub.kill()  # SIGKILL: no retirement of its own
        sub = PeerProcess(tmp_path, "sub", trust, connect=[hub.url])  # the same store: retires the killed one
        _add(sub, "second run")
        assert _pruned(hub, 1) == 1
        assert sub.stop() == 0  # a clean stop retires this run's incarnation
        _add(hub, "after")  # the hub's next batch covers the departure
        assert _pruned(hub, 2) == 2
        values = hub.ask({"op": "values", "id": "v"})["values"]
        assert sorted(values["facts"]) == ["after", "first run", "second run"]
    finally:
        for peer in (sub, hub):
            if peer is not None:
                peer.close()
