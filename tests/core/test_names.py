"""One validator for object names: what a batch carries, repair and snapshots carry too."""

from __future__ import annotations

import pytest

from crdtmem import Memory, codec
from crdtmem.crdt import GCounter
from crdtmem.identity import Identity
from crdtmem.limits import MAX_NAME, BadNameError, OutOfRangeError
from crdtmem.protocol.batch import seal_batch
from crdtmem.protocol.events import Refused
from crdtmem.protocol.messages import Batches
from crdtmem.testing import Cluster

MALLORY = Identity.from_private_bytes(bytes(range(32)))
TOO_LONG = "n" * (MAX_NAME + 1)
LONGEST = "n" * MAX_NAME


def test_a_name_beyond_the_bound_is_refused_in_a_batch() -> None:
    cluster = Cluster(seed=3)
    cluster.add("honest")
    cluster.keyring.add(MALLORY)
    mallory = cluster.open_raw("honest", MALLORY)
    before = cluster.memory("honest").snapshot()
    wire = seal_batch(MALLORY, 1, [("ok", GCounter({MALLORY.peer_id: 1})), (TOO_LONG, GCounter({MALLORY.peer_id: 1}))]).wire
    events = cluster.inject(mallory.conn, mallory.seal(Batches((wire,))))
    assert [e.reason for e in events if isinstance(e, Refused)] == ["bad-name"]
    assert cluster.memory("honest").snapshot() == before  # validated whole: the good delta is not applied either


def test_a_name_beyond_the_bound_is_refused_by_a_local_write() -> None:
    memory = Memory("me")
    with pytest.raises(OutOfRangeError):
        memory.counter(TOO_LONG)
    with pytest.raises(ValueError):  # OutOfRangeError is a ValueError, as the empty-name refusal was
        memory.set("")
    assert memory.names() == [] and not memory.has_pending_deltas()


def test_a_name_beyond_the_bound_is_refused_in_a_snapshot() -> None:
    body = codec.pack([codec.FORMAT_VERSION, "memory", [[TOO_LONG, *codec.state_to_plain(GCounter({"a": 1}))]]])
    with pytest.raises(BadNameError):
        Memory.from_snapshot("me", body)


def test_the_longest_name_reaches_a_returning_peer() -> None:
    cluster = Cluster(seed=4)
    cluster.add("a")
    cluster.add("b")
    cluster.connect("a", "b")
    cluster.run(1)
    cluster.disconnect("a", "b")
    cluster.memory("a").counter(LONGEST).increment(3)
    cluster.run(1)
    cluster.memory("a").counter("later").increment(1)
    snapshot = cluster.memory("a").snapshot()
    assert Memory.from_snapshot("copy", snapshot).values() == cluster.memory("a").values()
    cluster.run(1)
    cluster.connect("a", "b")
    assert cluster.run_until(cluster.converged, timeout=30)
    assert cluster.memory("b").counter(LONGEST).value == 3
