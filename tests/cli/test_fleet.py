"""A fleet of ``crdtmem peer`` processes over loopback: shared keys, restarts, and trust problems."""

from __future__ import annotations

import json
from pathlib import Path

from crdtmem.identity import Identity, Keyring, key_id_of
from crdtmem.storage.keyfiles import load_identity, save_identity, save_keyring

from ..processes import PeerProcess, keys, run


def _write(peer: PeerProcess, values: list[str]) -> None:
    for value in values:
        peer.send({"op": "set.add", "name": "facts", "value": value, "id": value})
        peer.expect(lambda m, value=value: m.get("durable") == value, timeout=15)


def _holds(peer: PeerProcess, values: list[str]) -> None:
    peer.ask({"op": "wait", "contains": {"facts": values}, "timeout": 30, "id": f"wait-{len(values)}"}, timeout=35)


def _metrics_until(peer: PeerProcess, reached, rounds: int = 100) -> dict:
    """The peer's metrics once ``reached(metrics)`` holds; each round waits up to 0.2 s for a sync."""
    for _ in range(rounds):
        metrics = peer.ask({"op": "metrics", "id": "m"})["metrics"]
        if reached(metrics):
            return metrics
        peer.ask({"op": "sync", "timeout": 0.2, "id": "s"}, timeout=5)
    raise AssertionError(f"{peer.name}: metrics never reached the condition: {metrics}")


def test_two_processes_sharing_one_key_both_write_and_every_write_reaches_every_peer(tmp_path: Path) -> None:
    trust = keys(tmp_path, ["hub", "a", "b"])
    hub = PeerProcess(tmp_path, "hub", trust)
    first = second = b = None
    try:
        first = PeerProcess(tmp_path, "a1", trust, connect=[hub.url], key="a")
        second = PeerProcess(tmp_path, "a2", trust, connect=[hub.url], key="a")
        b = PeerProcess(tmp_path, "b", trust, connect=[hub.url])
        assert first.peer_id == second.peer_id and first.replica_id != second.replica_id
        assert key_id_of(first.replica_id) == key_id_of(second.replica_id) == first.peer_id
        _write(first, ["one-0", "one-1", "one-2"])
        _write(second, ["two-0", "two-1", "two-2"])  # the same numbers #1..#3, of another incarnation
        everything = ["one-0", "one-1", "one-2", "two-0", "two-1", "two-2"]
        for peer in (hub, b, first, second):
            _holds(peer, everything)
        refusals = hub.ask({"op": "metrics", "id": "m"})["metrics"]["refusals"]
        assert not refusals.get("equivocation"), refusals
    finally:
        for peer in (b, second, first, hub):
            if peer is not None:
                peer.stop()


def test_a_restart_without_the_store_keeps_writing_and_nothing_is_lost(tmp_path: Path) -> None:
    trust = keys(tmp_path, ["a", "b"])
    b = PeerProcess(tmp_path, "b", trust)
    a = PeerProcess(tmp_path, "a", trust, connect=[b.url])
    try:
        _write(a, ["before-0", "before-1", "before-2"])
        _holds(b, ["before-0", "before-1", "before-2"])
        a.kill()  # SIGKILL, then the store is gone: a disk swap, a wiped container
        for path in tmp_path.glob("a.db*"):
            path.unlink()
        a = PeerProcess(tmp_path, "a", trust, connect=[b.url])
        _write(a, ["after-0", "after-1"])
        everything = ["before-0", "before-1", "before-2", "after-0", "after-1"]
        _holds(b, everything)
        _holds(a, everything)  # its old writes come back from b
        metrics = a.ask({"op": "metrics", "id": "m"})["metrics"]
        assert not metrics["refusals"] and not b.ask({"op": "metrics", "id": "mb"})["metrics"]["refusals"]
    finally:
        a.stop()
        b.stop()


def test_a_refused_peer_says_why_on_stderr(tmp_path: Path) -> None:
    trust = keys(tmp_path, ["a"])
    stranger = Identity.generate()
    save_identity(stranger, tmp_path / "stranger.key")
    stranger_keys = Keyring()
    stranger_keys.add(load_identity(tmp_path / "a.key"))  # the stranger trusts a; a does not trust it
    save_keyring(stranger_keys, tmp_path / "stranger.keys")
    a = PeerProcess(tmp_path, "a", trust)
    refused = PeerProcess(tmp_path, "stranger", tmp_path / "stranger.keys", connect=[a.url])
    try:
        metrics = _metrics_until(refused, lambda m: m["refused_by_peers"].get("untrusted-key"))
        assert metrics["refused_by_peers"]["untrusted-key"] >= 1 and metrics["synced"] is False
        told = refused.stderr()
        assert "WARNING" in told and f"{a.url}: the peer does not trust our key {stranger.peer_id}" in told
        assert stranger.public_key_text in told
        assert "is not in the keyring" in a.stderr() and stranger.public_key_text in a.stderr()
    finally:
        refused.stop()
        a.stop()


def _keyring(tmp_path: Path, file: str, admins: list[str], members: list[str]) -> Path:
    """A keyring file listing the named peers' keys, the admins marked ``+admin``."""
    keyring = Keyring()
    for name in admins:
        keyring.add(load_identity(tmp_path / f"{name}.key"), name, admin=True)
    for name in members:
        keyring.add(load_identity(tmp_path / f"{name}.key"), name)
    path = tmp_path / file
    save_keyring(keyring, path)
    return path


def _committed(peer: PeerProcess, command: dict) -> dict:
    """Send a membership change; its answer, ``{"durable": id, ...}`` once committed."""
    peer.send(command)
    return peer.expect(lambda m: m.get("durable") == command["id"], timeout=15)


def _key_line(tmp_path: Path, name: str) -> str:
    return f"{load_identity(tmp_path / f'{name}.key').public_key_text} {name}"


def test_an_admitted_key_joins_through_a_non_admin_peer(tmp_path: Path) -> None:
    keys(tmp_path, ["admin", "relay", "late"])
    team = _keyring(tmp_path, "team.keys", ["admin"], ["relay"])  # nobody's file lists "late"
    admin = PeerProcess(tmp_path, "admin", team)
    relay = late = None
    try:
        relay = PeerProcess(tmp_path, "relay", team, connect=[admin.url])
        late = PeerProcess(tmp_path, "late", team, connect=[relay.url])  # never dials the admin
        assert "error" in relay.ask({"op": "admit", "key": _key_line(tmp_path, "late"), "id": "no"})
        assert _committed(admin, {"op": "admit", "key": _key_line(tmp_path, "late"), "id": "in"})["peer_id"] == late.peer_id
        late.send({"op": "set.add", "name": "facts", "value": "from late", "id": "w"})
        late.expect(lambda m: m.get("durable") == "w")
        _holds(admin, ["from late"])
        _write(admin, ["from admin"])
        _holds(late, ["from admin"])
        members = {m["peer_id"]: m for m in relay.ask({"op": "members", "id": "m"})["members"]}
        assert members[late.peer_id]["admitted_by"] == admin.peer_id and members[admin.peer_id]["admin"]
    finally:
        for peer in (late, relay, admin):
            if peer is not None:
                peer.stop()
    shown = run("inspect", "--db", str(tmp_path / "relay.db"), "--trust", str(team), "--json")
    assert shown.returncode == 0, shown.stderr
    listed = {m["peer_id"]: m["admitted_by"] for m in json.loads(shown.stdout)["members"]}
    assert listed == {admin.peer_id: None, relay.peer_id: None, late.peer_id: admin.peer_id}


def test_a_peer_with_a_stale_keyring_keeps_receiving_the_other_peers_writes(tmp_path: Path) -> None:
    keys(tmp_path, ["admin", "b", "stale", "newcomer"])
    team = _keyring(tmp_path, "team.keys", ["admin"], ["b", "stale"])
    admin = PeerProcess(tmp_path, "admin", team)
    b = stale = newcomer = None
    try:
        b = PeerProcess(tmp_path, "b", team, connect=[admin.url])
        stale = PeerProcess(tmp_path, "stale", team, connect=[b.url])  # its file never learns the newcomer
        _committed(admin, {"op": "admit", "key": _key_line(tmp_path, "newcomer"), "id": "in"})
        newcomer = PeerProcess(tmp_path, "newcomer", team, connect=[b.url])
        for i in range(3):
            _write(newcomer, [f"new-{i}"])
            _write(admin, [f"admin-{i}"])
            _write(b, [f"b-{i}"])
        everything = [f"{who}-{i}" for who in ("new", "admin", "b") for i in range(3)]
        _holds(stale, everything)
        metrics = stale.ask({"op": "metrics", "id": "m"})["metrics"]
        assert b.peer_id in metrics["peers"] and not metrics["refusals"], metrics["refusals"]
    finally:
        for peer in (newcomer, stale, b, admin):
            if peer is not None:
                peer.stop()


def test_a_revoked_keys_new_writes_are_refused_everywhere_while_its_old_ones_stay(tmp_path: Path) -> None:
    keys(tmp_path, ["admin", "m", "r"])
    team = _keyring(tmp_path, "team.keys", ["admin"], ["m", "r"])
    admin = PeerProcess(tmp_path, "admin", team)
    m = r = None
    try:
        m = PeerProcess(tmp_path, "m", team, connect=[admin.url])
        r = PeerProcess(tmp_path, "r", team, connect=[admin.url, m.url])
        _write(r, ["old"])
        _holds(admin, ["old"])
        _holds(m, ["old"])
        _committed(admin, {"op": "revoke", "peer": r.peer_id, "id": "out"})
        _metrics_until(r, lambda metrics: metrics["connected_peers"] == 0)  # m learned it too, and hung up
        _write(r, ["new"])
        _write(admin, ["after"])
        _holds(m, ["old", "after"])
        for peer in (admin, m):
            held = peer.ask({"op": "values", "id": "v"})["values"]["facts"]
            assert sorted(held) == ["after", "old"]
            members = [x["peer_id"] for x in peer.ask({"op": "members", "id": "ms"})["members"]]
            assert r.peer_id not in members
        told = r.ask({"op": "metrics", "id": "rm"})["metrics"]["refused_by_peers"]
        assert told.get("revoked-key", 0) + told.get("untrusted-key", 0) >= 1, told
    finally:
        for peer in (r, m, admin):
            if peer is not None:
                peer.stop()


def test_tuples_in_sets_and_fractional_increments_get_clear_answers(tmp_path: Path) -> None:
    trust = keys(tmp_path, ["a"])
    a = PeerProcess(tmp_path, "a", trust)
    try:
        a.send({"op": "set.add", "name": "pairs", "value": ["sky", "blue"], "id": "t"})
        a.expect(lambda m: m.get("durable") == "t")
        held = a.ask({"op": "wait", "contains": {"pairs": [["sky", "blue"]]}, "timeout": 10, "id": "w"})
        assert held["values"] == {"pairs": [["sky", "blue"]]}
        answer = a.ask({"op": "counter.increment", "name": "n", "n": 2.7, "id": "f"})
        assert "must be a positive integer, got 2.7" in answer["error"]
        assert a.ask({"op": "values", "id": "v"})["values"] == {"pairs": [["sky", "blue"]]}
    finally:
        a.stop()
