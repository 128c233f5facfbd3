"""``crdtmem peer --relay``: real peer processes relaying through a real ``nats-server`` with
JetStream on loopback, with no websocket links between them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from crdtmem.identity import Identity
from crdtmem.protocol.batch import seal_batch
from crdtmem.transports.nats import parse_relay_urls

from ..natsserver import NatsServer
from ..processes import PeerProcess, keys, run

pytest.importorskip("nats")


def relay_peer(directory: Path, name: str, trust: Path, relay: str | list[str], *extra: str,
               key: str | None = None) -> PeerProcess:
    """A peer that listens on loopback but dials no one: the relay is its only way out."""
    flags = [arg for url in ([relay] if isinstance(relay, str) else relay) for arg in ("--relay", url)]
    return PeerProcess(directory, name, trust, extra=[*flags, "--relay-republish-interval", "0.5", *extra], key=key)


def write_ids(peer: PeerProcess, start: int, stop: int) -> None:
    """One write at a time, each answered before the next: each is its own signed batch (these
    tests count batches; writes queued on stdin together would share one)."""
    for i in range(start, stop):
        peer.send({"op": "set.add", "name": "ids", "value": f"{peer.name}-{i}", "id": i})
        peer.seen.append(peer.expect(lambda m, i=i: m.get("durable") == i))


def wait_ids(peer: PeerProcess, ids: set[str], timeout: float = 30) -> None:
    answer = peer.ask({"op": "wait", "contains": {"ids": sorted(ids)}, "timeout": timeout, "id": "ids"},
                      timeout=timeout + 5)
    assert "error" not in answer, f"{peer.name}: {answer}"


def stats(peer: PeerProcess) -> dict:
    return peer.ask({"op": "metrics", "id": "m"})["metrics"]


def wait_delivered(peer: PeerProcess, count: int, timeout: float = 20) -> None:
    """Ask until the stream delivered ``peer`` at least ``count`` messages (fails after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while (delivered := stats(peer)["stats"]["relay_delivered"]) < count:
        assert time.monotonic() < deadline, f"{peer.name}: the stream delivered {delivered} of {count}"


def ids_of(peers: list[PeerProcess], count: int) -> set[str]:
    return {f"{p.name}-{i}" for p in peers for i in range(count)}


def stop_all(procs: list[PeerProcess]) -> None:
    for p in procs:
        p.stop()


def test_three_relay_peers_with_no_links_converge(tmp_path: Path) -> None:
    trust = keys(tmp_path, ["p1", "p2", "p3"])
    with NatsServer(tmp_path / "nats") as nats:
        # p3 names two servers of the "cluster", one of them down: it uses the one that answers.
        down = NatsServer(tmp_path / "down").url
        procs = [relay_peer(tmp_path, "p1", trust, nats.url), relay_peer(tmp_path, "p2", trust, nats.url),
                 relay_peer(tmp_path, "p3", trust, [down, nats.url])]
        try:
            for p in procs:
                write_ids(p, 0, 20)
            for p in procs:
                wait_ids(p, ids_of(procs, 20))
            for p in procs:
                metrics = stats(p)
                assert metrics["connected_peers"] == 0
                assert metrics["stats"]["relay_delivered"] >= 40  # the others' batches came from the stream
        finally:
            stop_all(procs)


def test_two_processes_sharing_a_key_each_receive_every_batch(tmp_path: Path) -> None:
    trust = keys(tmp_path, ["shared", "other"])
    with NatsServer(tmp_path / "nats") as nats:
        # One of the two takes the key's durable consumer; the other cannot bind it and must still
        # get every batch, its twin's included (they run under distinct incarnations), also after
        # the broker restarted and forgot the ephemeral consumer.
        procs = [relay_peer(tmp_path, "first", trust, nats.url, key="shared"),
                 relay_peer(tmp_path, "second", trust, nats.url, key="shared"),
                 relay_peer(tmp_path, "other", trust, nats.url)]
        try:
            assert procs[0].peer_id == procs[1].peer_id and procs[0].replica_id != procs[1].replica_id
            for p in procs:
                write_ids(p, 0, 20)
            for p in procs:
                wait_ids(p, ids_of(procs, 20))
            delivered = [stats(p)["stats"]["relay_delivered"] for p in procs]
            assert min(delivered) >= 40  # the others' batches came from the stream
            nats.kill()
            nats.start()
            for p in procs:
                write_ids(p, 20, 40)
            for p in procs:
                wait_ids(p, ids_of(procs, 40))
            for p, before in zip(procs, delivered):  # reconciliation may have been quicker: the stream still delivers
                wait_delivered(p, before + 40)
        finally:
            stop_all(procs)


def test_a_peer_with_a_relay_and_a_websocket_link_bridges_them(tmp_path: Path) -> None:
    trust = keys(tmp_path, ["relayed", "bridge", "meshed"])
    with NatsServer(tmp_path / "nats") as nats:
        # No periodic reconciliation within the test: the meshed peer's writes reach the relayed
        # one only if the bridge publishes them to the stream.
        relayed = relay_peer(tmp_path, "relayed", trust, nats.url, "--anti-entropy-interval", "600")
        bridge = relay_peer(tmp_path, "bridge", trust, nats.url, "--anti-entropy-interval", "600")
        meshed = PeerProcess(tmp_path, "meshed", trust, connect=[bridge.url])  # no relay
        procs = [relayed, bridge, meshed]
        try:
            for p in procs:
                write_ids(p, 0, 10)
            for p in procs:
                wait_ids(p, ids_of(procs, 10), timeout=20)
        finally:
            stop_all(procs)


def test_a_late_peer_catches_up_from_the_stream(tmp_path: Path) -> None:
    trust = keys(tmp_path, ["p1", "p2", "late"])
    with NatsServer(tmp_path / "nats") as nats:
        procs = [relay_peer(tmp_path, name, trust, nats.url) for name in ("p1", "p2")]
        try:
            for p in procs:
                write_ids(p, 0, 15)
                p.ask({"op": "sync", "timeout": 20, "id": "published"}, timeout=25)  # the broker stored them
            late = relay_peer(tmp_path, "late", trust, nats.url)
            procs.append(late)
            wait_ids(late, ids_of(procs[:2], 15))
            assert stats(late)["stats"]["relay_delivered"] >= 30
        finally:
            stop_all(procs)


def test_nats_server_killed_mid_burst_loses_no_durable_write(tmp_path: Path) -> None:
    trust = keys(tmp_path, ["p1", "p2", "p3"])
    with NatsServer(tmp_path / "nats") as nats:
        procs = [relay_peer(tmp_path, name, trust, nats.url) for name in ("p1", "p2", "p3")]
        try:
            for p in procs:
                write_ids(p, 0, 100)
            procs[0].seen.append(procs[0].expect(lambda m: m.get("durable") == 30, timeout=30))
            nats.kill()  # SIGKILL by pid, mid-burst: some publishes were stored, some in flight, some never sent
            for p in procs:
                p.seen.append(p.expect(lambda m: m.get("durable") == 99, timeout=30))
            nats.start()  # same port, same store directory: the stream and the durable consumers survive
            durable = {f"{p.name}-{m['durable']}" for p in procs for m in p.drain() if "durable" in m}
            assert len(durable) == 300
            for p in procs:
                wait_ids(p, durable, timeout=40)
        finally:
            stop_all(procs)


def test_a_peer_away_longer_than_retention_catches_up_by_reconciliation(tmp_path: Path) -> None:
    trust = keys(tmp_path, ["p1", "p2", "away"])
    with NatsServer(tmp_path / "nats") as nats:
        relay = nats.url + "/SMALL?max_bytes=4096"  # room for a dozen batches: the rest is dropped
        procs = [relay_peer(tmp_path, name, trust, relay) for name in ("p1", "p2", "away")]
        try:
            away = procs[2]
            write_ids(away, 0, 5)
            wait_ids(procs[0], ids_of([away], 5))
            away.stop()
            for p in procs[:2]:
                write_ids(p, 0, 60)
                p.ask({"op": "sync", "timeout": 20, "id": "published"}, timeout=25)
            wanted = ids_of(procs[:2], 60)
            away = procs[2] = relay_peer(tmp_path, "away", trust, relay)  # same key and --db: its durable consumer
            wait_ids(away, wanted)
            metrics = stats(away)["stats"]
            # The stream still held only the newest batches: the rest came from a peer's answer.
            assert metrics["relay_delivered"] < len(wanted)
        finally:
            stop_all(procs)


def test_a_hostile_publisher_changes_nothing_and_is_refused(tmp_path: Path) -> None:
    trust = keys(tmp_path, ["p1", "p2"])
    with NatsServer(tmp_path / "nats") as nats:
        procs = [relay_peer(tmp_path, name, trust, nats.url) for name in ("p1", "p2")]
        try:
            write_ids(procs[0], 0, 3)
            wait_ids(procs[1], ids_of(procs[:1], 3))
            before = [p.ask({"op": "values", "id": "v"})["values"] for p in procs]
            stranger = Identity.generate()
            victim = procs[0].peer_id
            forged = seal_batch(stranger, 1, [], ()).wire.replace(stranger.peer_id.encode(), victim.encode())
            asyncio.run(_publish(nats.url, [b"\x00garbage", b"\x93\x01\x02", forged]))
            # Honest writes after the garbage still flow; each peer waits for the other's, which the
            # stream delivers after the garbage, so the refusals are counted by then.
            write_ids(procs[0], 3, 6)
            write_ids(procs[1], 0, 3)
            honest = {f"p1-{i}" for i in range(6)} | {f"p2-{i}" for i in range(3)}
            for p in procs:
                wait_ids(p, honest)
            for p, old in zip(procs, before):
                refused = stats(p)["refusals"]
                assert refused.get("malformed-message", 0) >= 2, refused
                assert refused.get("bad-batch-signature", 0) >= 1, refused
                values = p.ask({"op": "values", "id": "v"})["values"]
                assert set(values["ids"]) == set(old["ids"]) | honest
        finally:
            stop_all(procs)


async def _publish(url: str, payloads: list[bytes]) -> None:
    """Publish raw payloads to the stream as a valid NATS client holding no crdtmem key."""
    import nats

    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        for payload in payloads:
            await js.publish("crdtmem.CRDTMEM.batches", payload)
    finally:
        await nc.close()


def test_a_relay_peer_stops_cleanly_while_its_broker_is_down(tmp_path: Path) -> None:
    trust = keys(tmp_path, ["p1"])
    nats = NatsServer(tmp_path / "nats").start()
    peer = relay_peer(tmp_path, "p1", trust, nats.url)
    try:
        write_ids(peer, 0, 3)
        peer.expect(lambda m: m.get("durable") == 2, timeout=20)
        nats.kill()
        write_ids(peer, 3, 6)  # written while the broker is gone: kept in the store, published later
        peer.expect(lambda m: m.get("durable") == 5, timeout=20)
        assert peer.stop(timeout=20) == 0
    finally:
        peer.close()


def test_a_broker_without_jetstream_is_one_error_line(tmp_path: Path) -> None:
    trust = keys(tmp_path, ["p1"])
    with NatsServer(tmp_path / "nats", jetstream=False) as nats:
        result = run("peer", "--key", str(tmp_path / "p1.key"), "--trust", str(trust), "--relay", nats.url,
                     "--no-stdin")
    assert result.returncode == 2
    assert result.stderr.startswith("error: relay") and "nats-server -js" in result.stderr


def test_a_bad_relay_address_is_one_error_line(tmp_path: Path) -> None:
    trust = keys(tmp_path, ["p1"])
    result = run("peer", "--key", str(tmp_path / "p1.key"), "--trust", str(trust), "--relay", "http://broker:4222")
    assert result.returncode == 2
    assert result.stderr.startswith("error: --relay") and "nats://HOST:PORT" in result.stderr


@pytest.mark.parametrize("urls", [
    ["nats://h:4222/bad.name"], ["nats://h:4222?max_age=-1"], ["nats://h:4222?speed=3"],
    ["nats://a:4222/ONE", "nats://b:4222/TWO"], ["tcp://h:4222"],
])
def test_relay_urls_that_cannot_work_are_refused(urls: list[str]) -> None:
    with pytest.raises(ValueError):
        parse_relay_urls(urls)


def test_relay_urls_name_the_servers_of_one_stream() -> None:
    config = parse_relay_urls(["nats://a:4222/TEAM?max_age=60&max_bytes=1000", "nats://b:4223/TEAM?max_age=60&max_bytes=1000"])
    assert config.servers == ("nats://a:4222", "nats://b:4223")
    assert (config.stream, config.max_age, config.max_bytes, config.subject) == ("TEAM", 60.0, 1000, "crdtmem.TEAM.batches")
