"""NodeStats: typed counters, and the flat form reports serialise."""

from __future__ import annotations

import dataclasses

from crdtmem.errors import RefusalReason
from crdtmem.protocol.events import SendKind
from crdtmem.protocol.stats import NodeStats
from crdtmem.testing import Cluster


def test_fresh_counters_flatten_to_nothing() -> None:
    assert NodeStats().as_dict() == {}


def test_sends_and_refusals_flatten_to_their_report_names() -> None:
    stats = NodeStats()
    stats.count_send(SendKind.GOSSIP, 100)
    stats.count_send(SendKind.GOSSIP, 20)
    stats.count_send(SendKind.CATCH_UP, 7)
    stats.count_refusal(RefusalReason.BAD_TAG)
    stats.batches_created = 2
    assert stats.as_dict() == {
        "batches_created": 2,
        "bytes_sent": 127,
        "bytes_sent_catch-up": 7,
        "bytes_sent_gossip": 120,
        "messages_sent_catch-up": 1,
        "messages_sent_gossip": 2,
        "refused_bad-tag": 1,
    }


def test_every_counter_flattens_under_its_own_name() -> None:
    stats = NodeStats()
    counters = [f.name for f in dataclasses.fields(stats) if f.type == "int" and f.name != "anti_entropy_finished"]
    for n, name in enumerate(counters, start=1):
        setattr(stats, name, n)
    stats.anti_entropy_finished = 1
    flat = stats.as_dict()
    assert {name: flat[name] for name in counters} == {name: n for n, name in enumerate(counters, start=1)}
    assert {"checkpoints_applied", "checkpoints_sent", "histories_wanted"} <= set(flat)


def test_repair_counters_appear_once_a_reconciliation_finished_even_at_zero() -> None:
    stats = NodeStats(anti_entropy_sessions=1)
    assert "repair_leaves_sent" not in stats.as_dict()
    stats.anti_entropy_finished = 1
    stats.repair_round_trips = 1
    flat = stats.as_dict()
    assert flat["repair_leaves_sent"] == flat["repair_leaves_received"] == flat["repair_bytes_sent"] == 0
    assert flat["repair_round_trips"] == 1
    assert "anti_entropy_finished" not in flat


def test_a_nodes_bytes_by_kind_add_up_to_its_bytes_sent() -> None:
    cluster = Cluster(seed=4)
    for name in ("a", "b"):
        cluster.add(name)
    cluster.connect("a", "b")
    cluster.memory("a").set("facts").add("x")
    cluster.run(2)
    stats = cluster.stats("a")
    assert stats.batches_created == 1 and cluster.stats("b").batches_applied == 1
    assert sum(stats.bytes_sent_by_kind.values()) == stats.bytes_sent > 0
    assert set(stats.messages_sent_by_kind) >= {SendKind.HANDSHAKE, SendKind.GOSSIP}
    cluster.run(40)  # past the periodic full Sync of the dialing side
    assert sum(cluster.stats(n).anti_entropy_finished for n in ("a", "b")) >= 1
