"""Real network partitions between real ``crdtmem peer`` processes.

Five peers, each a separate process in its own Linux network namespace, joined pairwise by veth
links (see :mod:`tests.faults.netns`). Links are cut with ``ip link set ... down`` to make a
majority/minority split (3 vs 2) and a split with a bridge peer that still sees both sides;
every peer writes throughout; after the links come back every peer holds the same values, every
write a peer acknowledged as durable is among them, and each store reopens with those values
after a clean shutdown (``crdtmem inspect``).

Needs root and iproute2; skipped with the reason otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..processes import keys, stored_values, without_retirements
from .netns import Mesh, NetnsPeer, netns_unavailable

N = 5
WRITES = 4  # per peer per phase: small, these tests are about faults, not volume

_why_not = netns_unavailable()
pytestmark = pytest.mark.skipif(_why_not is not None, reason=_why_not or "")


class Cluster:
    """Five netns peers plus the bookkeeping of what each acknowledged as durable."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.mesh = Mesh(N)
        self.peers: list[NetnsPeer] = []
        self.acked: dict[str, set[str]] = {}  # peer name -> values it reported durable
        self._next_id = 0
        try:
            trust = keys(tmp_path, [f"p{i}" for i in range(N)])
            for i in range(N):  # peer i dials every lower peer over their own link
                dial = [self.mesh.url(j, via=i) for j in range(i)]
                self.peers.append(NetnsPeer(self.mesh, i, tmp_path, f"p{i}", trust, connect=dial,
                                            extra=["--anti-entropy-interval", "2"]))
                self.acked[f"p{i}"] = set()
            for p in self.peers:
                p.ask({"op": "sync", "peers": N - 1, "timeout": 20, "id": "connected"}, timeout=25)
        except BaseException:
            self.close()
            raise

    def write(self, phase: str, who: list[int] | None = None) -> set[str]:
        """``WRITES`` set additions (plus a counter bump) on each peer in ``who``; wait for
        every one to be acknowledged durable; return the values written."""
        sent: dict[int, dict[int, str]] = {}
        for i in (range(N) if who is None else who):
            p = self.peers[i]
            sent[i] = {}
            for k in range(WRITES):
                self._next_id += 1
                value = f"{p.name}-{phase}-{k}"
                p.send({"op": "set.add", "name": "facts", "value": value, "id": self._next_id})
                sent[i][self._next_id] = value
            self._next_id += 1
            p.send({"op": "counter.increment", "name": f"writes-{p.name}", "n": WRITES, "id": self._next_id})
            sent[i][self._next_id] = None
        for i, ids in sent.items():
            p = self.peers[i]
            for ident, value in ids.items():
                p.expect(lambda m, ident=ident: m.get("durable") == ident, timeout=15)
                if value is not None:
                    self.acked[p.name].add(value)
        return {v for ids in sent.values() for v in ids.values() if v is not None}

    def values(self, i: int) -> dict[str, Any]:
        self._next_id += 1
        return self.peers[i].ask({"op": "values", "id": self._next_id})["values"]

    def facts(self, i: int) -> set[str]:
        return set(self.values(i).get("facts", []))

    def wait_until(self, i: int, facts: set[str], timeout: float = 20) -> set[str]:
        """Wait until peer ``i`` holds ``facts`` (the peer answers once they are in); its facts then."""
        self._next_id += 1
        answer = self.peers[i].ask(
            {"op": "wait", "contains": {"facts": sorted(facts)}, "timeout": timeout, "id": self._next_id},
            timeout=timeout + 5,
        )
        if "error" in answer:
            raise AssertionError(f"p{i} never held {sorted(facts - self.facts(i))} in {timeout}s: {answer['error']}")
        return set(answer["values"]["facts"] or [])

    def all_acked(self) -> set[str]:
        return set().union(*self.acked.values())

    def converge(self, timeout: float = 30) -> dict[str, Any]:
        """After healing: every peer in sync with all others, all holding the same values."""
        for p in self.peers:
            self._next_id += 1
            p.ask({"op": "sync", "peers": N - 1, "timeout": timeout, "id": self._next_id}, timeout=timeout + 5)
        values = [self.values(i) for i in range(N)]
        for i, v in enumerate(values[1:], 1):
            assert v == values[0], f"p{i} differs from p0 after healing:\n{v}\n{values[0]}"
        missing = self.all_acked() - set(values[0].get("facts", []))
        figures = {"partitions": self.mesh.partitions, "link_cuts": self.mesh.cuts,
                   "writes_acked": len(self.all_acked()), "writes_lost": len(missing)}
        print(f"\npartitions: {json.dumps(figures)}")  # collected by simulations/faults_report.py
        assert not missing, f"writes acknowledged durable were lost: {sorted(missing)}"
        for i in range(N):
            assert values[0][f"writes-p{i}"] >= WRITES
        return values[0]

    def stop_and_inspect(self, expected: dict[str, Any]) -> None:
        """Stop every peer cleanly; each store opens and holds exactly the converged values."""
        codes = [p.stop() for p in self.peers]
        assert codes == [0] * N, f"exit codes {codes}"
        for p in self.peers:
            stored = stored_values(self.tmp_path / f"{p.name}.db")
            assert stored == without_retirements(expected), f"{p.name}'s store differs"

    def close(self) -> None:
        for p in self.peers:
            try:
                p.close()  # SIGKILL whatever still runs (a failed test); a no-op after stop()
            except Exception:  # noqa: BLE001 - cleanup must reach the namespaces
                pass
        self.mesh.destroy()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    made = Cluster(tmp_path)  # cleans up after itself if it fails half-way
    try:
        yield made
    finally:
        made.close()  # always: kill leftover processes, delete the namespaces and their links


def test_majority_and_minority_keep_writing_apart_and_converge_when_the_split_heals(cluster: Cluster) -> None:
    before = cluster.write("before")
    for i in range(N):
        cluster.wait_until(i, before)

    majority, minority = [0, 1, 2], [3, 4]
    cut = cluster.mesh.partition(majority, minority)
    assert len(cut) == 6
    maj = cluster.write("split", majority)
    mino = cluster.write("split", minority)
    # each side converges within itself, and sees nothing of the other side while cut off
    for i in majority:
        assert cluster.wait_until(i, maj) & mino == set(), f"p{i} heard the minority"
    for i in minority:
        assert cluster.wait_until(i, mino) & maj == set(), f"p{i} heard the majority"
    after_repairs = cluster.write("late-split")  # both sides keep going; anti-entropy rounds pass
    for i in majority:
        assert cluster.facts(i) & mino == set()

    cluster.mesh.heal_all(cut)
    healed = cluster.write("healed")
    final = cluster.converge()
    assert before | maj | mino | after_repairs | healed <= set(final["facts"])
    cluster.stop_and_inspect(final)


def test_a_bridge_peer_carries_writes_between_sides_that_cannot_see_each_other(cluster: Cluster) -> None:
    left, bridge, right = [0, 1], 2, [3, 4]
    cut = cluster.mesh.partition(left, right)  # the bridge keeps its links to both sides
    assert len(cut) == 4
    assert all(cluster.mesh.link_up(bridge, j) for j in left + right)
    assert not any(cluster.mesh.link_up(i, j) for i in left for j in right)
    written = cluster.write("bridged")
    for i in range(N):  # through the bridge alone, every write reaches every peer
        cluster.wait_until(i, written)

    # now the bridge loses the right side too: left+bridge and right are apart
    more_cut = cluster.mesh.partition(left + [bridge], right)
    assert len(more_cut) == 2
    apart = cluster.write("apart")
    right_only = {v for v in apart if v.startswith(("p3-", "p4-"))}
    for i in left + [bridge]:
        assert cluster.wait_until(i, apart - right_only) & right_only == set()

    cluster.mesh.heal_all(cut + more_cut)
    final = cluster.converge()
    assert written | apart <= set(final["facts"])
    cluster.stop_and_inspect(final)


def test_links_flapping_at_random_lose_no_acknowledged_write(cluster: Cluster) -> None:
    import random

    rng = random.Random(6)
    for round_no in range(4):
        side = sorted(rng.sample(range(N), rng.choice([1, 2])))
        cut = cluster.mesh.partition(side, [i for i in range(N) if i not in side])
        cluster.write(f"flap{round_no}")
        cluster.mesh.heal_all(cut)
    final = cluster.converge()
    assert cluster.mesh.cuts >= 4
    cluster.stop_and_inspect(final)
