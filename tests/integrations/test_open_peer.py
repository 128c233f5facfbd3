"""The sync facade: two real peers over websockets on 127.0.0.1, driven from plain threads."""

from __future__ import annotations

import threading

import pytest

import crdtmem
from crdtmem.agent import SetAdd

from ..inprocess import threaded_pair


@pytest.fixture
def pair():
    with threaded_pair() as (a, b):
        b.wait_connected(1, timeout=20)
        yield a, b


def test_writes_from_plain_threads_reach_the_other_peer(pair):
    a, b = pair
    errors: list[BaseException] = []

    def writer(peer, who: str) -> None:
        try:
            for i in range(20):
                peer.apply(SetAdd("facts", f"{who}-{i}"))
                peer.write(lambda memory: memory.counter("n").increment())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(peer, f"{peer.peer_id[:4]}-{t}")) for peer in (a, b) for t in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and not any(t.is_alive() for t in threads)
    a.wait_synced(timeout=20, peers=1)
    b.wait_for(lambda memory: memory.counter("n").value == 80, timeout=20)
    a.wait_for(lambda memory: memory.counter("n").value == 80, timeout=20)
    assert a.read(lambda m: m.values()) == b.read(lambda m: m.values())
    assert len(a.read(lambda m: m.set("facts").value)) == 80


def test_call_returns_results_and_raises_errors(pair):
    a, _ = pair
    assert a.call(lambda x, y: x + y, 2, 3) == 5
    a.write(lambda memory: memory.register("r").assign("x"))
    with pytest.raises(crdtmem.TypeMismatchError):
        a.write(lambda memory: memory.counter("r").increment())
    assert a.metrics()["peer_id"] == a.peer_id


def test_wait_for_times_out(pair):
    a, _ = pair
    with pytest.raises(TimeoutError):
        a.wait_for(lambda memory: memory.counter("never").value > 0, timeout=0.2)
