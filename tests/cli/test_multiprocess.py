"""Three ``crdtmem peer`` processes; one is SIGKILLed during a burst of writes and restarted on
the same ``--db``. All converge, and no write that was reported durable is lost."""

from __future__ import annotations

from ..processes import PeerProcess, keys, run

BURST = 300


def durable_ids(peer: PeerProcess) -> set[int]:
    return {m["durable"] for m in peer.drain() if "durable" in m}


def burst(peer: PeerProcess, start: int, stop: int) -> None:
    for i in range(start, stop):
        if i % 5 == 0:
            peer.send({"op": "counter.increment", "name": f"hits-{peer.name}", "n": 1, "id": i})
        else:
            peer.send({"op": "set.add", "name": "ids", "value": f"{peer.name}-{i}", "id": i})


def test_sigkilled_peer_restarts_on_its_store_and_nothing_durable_is_lost(tmp_path) -> None:
    trust = keys(tmp_path, ["p1", "p2", "p3"])
    p1 = PeerProcess(tmp_path, "p1", trust)
    p2 = PeerProcess(tmp_path, "p2", trust, connect=[p1.url])
    p3 = PeerProcess(tmp_path, "p3", trust, connect=[p1.url, p2.url])
    procs = [p1, p2, p3]
    try:
        for p in procs:
            p.ask({"op": "sync", "peers": 2, "timeout": 20, "id": "connected"}, timeout=25)

        for p in (p1, p2):
            burst(p, 0, BURST)
        burst(p3, 0, BURST // 3 + 1)
        p3.seen.append(p3.expect(lambda m: m.get("durable") == BURST // 3, timeout=30))
        # The rest of the burst, then at once SIGKILL: some writes were reported durable, the
        # rest never ran (writes waiting on stdin together are flushed together, so the peer
        # gets through a burst it was given whole long before a kill after its 100th answer).
        burst(p3, BURST // 3 + 1, BURST)
        p3.proc.kill()
        p3.proc.wait(10)
        before_kill = {m["durable"] for m in p3.read_to_eof() if "durable" in m}
        p3.close()
        assert BURST // 3 in before_kill and len(before_kill) < BURST
        for p in (p1, p2):
            p.expect(lambda m: m.get("durable") == BURST - 1, timeout=30)

        p3 = PeerProcess(tmp_path, "p3", trust, connect=[p1.url, p2.url])  # same key, same --db
        procs = [p1, p2, p3]
        burst(p3, BURST, BURST + 50)  # new writes right away: fresh sequence numbers, never reused
        p3.expect(lambda m: m.get("durable") == BURST + 49, timeout=30)
        after_restart = durable_ids(p3)

        for p in procs:
            p.ask({"op": "sync", "peers": 2, "timeout": 30, "id": "final"}, timeout=35)
        values = [p.ask({"op": "values", "id": "v"})["values"] for p in procs]
        assert values[0] == values[1] == values[2], "peers did not converge"
        ids = set(values[0]["ids"])
        for name in ("p1", "p2"):
            assert {f"{name}-{i}" for i in range(BURST) if i % 5} <= ids
            assert values[0][f"hits-{name}"] == BURST // 5
        for i in before_kill | after_restart:
            if i % 5:
                assert f"p3-{i}" in ids, f"durable write p3-{i} was lost"
        acked_hits = sum(1 for i in before_kill | after_restart if i % 5 == 0)
        assert values[0]["hits-p3"] >= acked_hits
    finally:
        codes = [p.stop() for p in procs]
    assert codes == [0, 0, 0]
    shown = run("inspect", "--db", str(tmp_path / "p3.db"), "--json")
    assert shown.returncode == 0, shown.stderr
