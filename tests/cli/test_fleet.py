"""A fleet of ``crdtmem peer`` processes over loopback: shared keys, restarts, and trust problems."""

from __future__ import annotations

from pathlib import Path

from crdtmem.identity import Identity, Keyring, key_id_of
from crdtmem.storage.keyfiles import load_identity, save_identity, save_keyring

from ..processes import PeerProcess, keys


def _write(peer: PeerProcess, values: list[str]) -> None:
    for value in values:
        peer.send({"op": "set.add", "name": "facts", "value": value, "id": value})
        peer.expect(lambda m, value=value: m.get("durable") == value, timeout=15)


def _holds(peer: PeerProcess, values: list[str]) -> None:
    peer.ask({"op": "wait", "contains": {"facts": values}, "timeout": 30, "id": f"wait-{len(values)}"}, timeout=35)


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
        metrics = refused.ask({"op": "metrics", "id": "m"})["metrics"]
        for _ in range(100):  # each round waits (0.2 s at most) for a connection that never comes
            if metrics["refused_by_peers"].get("untrusted-key"):
                break
            refused.ask({"op": "sync", "timeout": 0.2, "id": "s"}, timeout=5)
            metrics = refused.ask({"op": "metrics", "id": "m"})["metrics"]
        assert metrics["refused_by_peers"]["untrusted-key"] >= 1 and metrics["synced"] is False
        told = refused.stderr()
        assert "WARNING" in told and f"{a.url}: the peer does not trust our key {stranger.peer_id}" in told
        assert stranger.public_key_text in told
        assert "is not in the keyring" in a.stderr() and stranger.public_key_text in a.stderr()
    finally:
        refused.stop()
        a.stop()
