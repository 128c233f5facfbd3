"""The Node's relay inputs, driven by hand: what it publishes, when again, and what it refuses."""

from __future__ import annotations

import random

import pytest

from crdtmem import Memory
from crdtmem.errors import RefusalReason
from crdtmem.identity import Identity, Keyring
from crdtmem.protocol.events import Publish, Refused, RelaySend
from crdtmem.protocol.messages import Batches, Sync, decode_message, encode_message
from crdtmem.protocol.node import Node, NodeConfig

LINK = "relay"


def make_node(identity: Identity, keyring: Keyring) -> Node:
    memory = Memory(identity.peer_id, clock=lambda: 1_700_000_000.0)
    node = Node(memory, identity, keyring, rng=random.Random(1), config=NodeConfig(relay_republish_interval=5.0))
    node.attach_relay(LINK, 0.0)
    return node


@pytest.fixture
def pair() -> tuple[Node, Node]:
    a, b = Identity.generate(), Identity.generate()
    keyring = Keyring()
    keyring.add(a)
    keyring.add(b)
    return make_node(a, keyring), make_node(b, keyring)


@pytest.fixture
def wrote_x(pair: tuple[Node, Node]) -> tuple[Node, Node]:
    """Both relays up; ``a`` has written and flushed ``s = {"x"}``."""
    a, b = pair
    a.relay_up(LINK, 0.0)
    b.relay_up(LINK, 0.0)
    a.memory.set("s").add("x")
    a.tick(1.0)
    return a, b


def publishes(node: Node) -> list[Publish]:
    return [action for action in node.take_actions() if isinstance(action, Publish)]


def test_a_local_write_is_published_once_and_again_until_stored(pair: tuple[Node, Node]) -> None:
    a, _ = pair
    a.relay_up(LINK, 0.0)
    a.take_actions()
    a.memory.counter("c").increment()
    a.tick(1.0)
    [first] = publishes(a)
    a.tick(3.0)
    assert publishes(a) == []  # not due again yet
    assert a.next_deadline() <= 6.0
    a.tick(6.5)
    assert publishes(a) == [first]  # unacknowledged: published again, same dedup id
    a.relay_stored(LINK, first.msg_id, 7.0)
    a.tick(20.0)
    assert publishes(a) == [] and a.relay_unconfirmed() == 0


def test_writes_made_while_the_relay_is_down_are_published_when_it_comes_back(pair: tuple[Node, Node]) -> None:
    a, _ = pair
    a.memory.counter("c").increment()
    a.tick(1.0)
    assert publishes(a) == []
    assert not a.synced()  # a write the relay has not stored is not out yet
    a.relay_up(LINK, 2.0)
    actions = a.take_actions()
    assert [type(x) for x in actions] == [Publish, RelaySend]  # the batch, then a reconciliation request


def test_a_delivered_batch_is_applied_and_never_published_back(wrote_x: tuple[Node, Node]) -> None:
    a, b = wrote_x
    [published] = publishes(a)
    b.take_actions()
    b.relay_deliver(LINK, published.wire, 1.1)
    assert b.memory.set("s").value == {"x"}
    b.tick(2.0)
    assert publishes(b) == []


def test_garbage_from_the_relay_is_refused_without_closing_anything(pair: tuple[Node, Node]) -> None:
    _, b = pair
    b.relay_up(LINK, 0.0)
    b.take_actions()
    b.relay_deliver(LINK, b"\x00not a batch", 1.0)
    b.relay_message(LINK, b"\xc1", 1.0, "reply.here")
    events = [e for e in b.take_events() if isinstance(e, Refused)]
    assert [e.reason for e in events] == [RefusalReason.MALFORMED_MESSAGE] * 2
    assert b.take_actions() == [] and b.relays() == {LINK: True}


def test_a_reconciliation_request_is_answered_with_the_missing_batches_and_a_sync(wrote_x: tuple[Node, Node]) -> None:
    a, b = wrote_x
    a.take_actions()
    [request] = [x for x in b.take_actions() if isinstance(x, RelaySend)]
    a.relay_message(LINK, request.data, 1.5, "inbox.b")
    answers = [x for x in a.take_actions() if isinstance(x, RelaySend)]
    assert [x.to for x in answers] == ["inbox.b", "inbox.b"]
    kinds = [type(decode_message(x.data, max_size=1 << 20)) for x in answers]
    assert kinds == [Batches, Sync]
    for answer in answers:
        b.relay_message(LINK, answer.data, 1.6)
    assert b.memory.set("s").value == {"x"}


def test_an_answer_showing_the_other_side_lacks_our_batches_publishes_them(pair: tuple[Node, Node]) -> None:
    a, b = pair
    a.memory.set("s").add("x")
    a.flush(1.0)
    # Restarted from its store: the batch is logged, and nothing says whether the stream has it.
    restarted = Node(Memory(a.identity.peer_id, clock=lambda: 1_700_000_000.0), a.identity, a.keyring,
                     rng=random.Random(2), seen=a.seen, log_wires=a.log_wires())
    restarted.attach_relay(LINK, 2.0)
    restarted.relay_up(LINK, 2.0)
    assert publishes(restarted) == []
    restarted.relay_message(LINK, encode_message(Sync(b.seen, reply=True)), 3.0)  # b's answer: it lacks it
    [published] = publishes(restarted)
    assert published.wire == a.log_wires()[0]
    restarted.relay_message(LINK, encode_message(Sync(b.seen, reply=True)), 3.1)
    assert publishes(restarted) == []  # already on its way: not twice


def test_a_relay_is_attached_once(pair: tuple[Node, Node]) -> None:
    a, _ = pair
    with pytest.raises(ValueError):
        a.attach_relay(LINK, 0.0)


def test_a_broker_that_reorders_duplicates_and_replays_delays_nothing_it_delivers(pair: tuple[Node, Node]) -> None:
    a, b = pair
    a.relay_up(LINK, 0.0)
    b.relay_up(LINK, 0.0)
    wires = []
    for i in range(5):
        a.memory.set("s").add(i)
        a.memory.counter("c").increment()
        a.tick(1.0 + i)
        wires += [p.wire for p in publishes(a)]
    assert len(wires) == 5
    for wire in [*reversed(wires), wires[2], *wires]:  # reversed, a duplicate, then a full replay
        b.relay_deliver(LINK, wire, 10.0)
    assert b.memory.set("s").value == set(range(5)) and b.memory.counter("c").value == 5
    assert b.stats.duplicate_batches >= 5 and not b.stats.refusals


def test_one_unsigned_answer_makes_a_peer_publish_a_bounded_number_of_batches(pair: tuple[Node, Node]) -> None:
    a, b = pair
    for i in range(300):
        a.memory.counter("c").increment()
        a.flush(1.0 + i / 1000)
    restarted = Node(Memory(a.identity.peer_id, clock=lambda: 1_700_000_000.0), a.identity, a.keyring,
                     rng=random.Random(2), seen=a.seen, log_wires=a.log_wires())
    restarted.attach_relay(LINK, 2.0)
    restarted.relay_up(LINK, 2.0)
    restarted.take_actions()
    empty = encode_message(Sync(b.seen, reply=True))  # "I hold nothing": anyone on the broker can say it
    restarted.relay_message(LINK, empty, 3.0)
    assert len(publishes(restarted)) == restarted.config.max_batch_wires_per_message
    restarted.relay_message(LINK, empty, 4.0)
    assert len(publishes(restarted)) == 300 - restarted.config.max_batch_wires_per_message


def sync_requests(node: Node) -> list[RelaySend]:
    return [x for x in node.take_actions() if isinstance(x, RelaySend) and x.to is None]


def test_an_unanswered_reconciliation_request_is_asked_again_soon_then_less_often(pair: tuple[Node, Node]) -> None:
    a, b = pair
    a.relay_up(LINK, 0.0)  # the broker just restarted: no other peer is subscribed to answer yet
    assert len(sync_requests(a)) == 1
    asked_at = []
    for step in range(1, 1201):
        now = step * 0.05
        a.tick(now)
        asked_at += [now] * len(sync_requests(a))
    gaps = [later - earlier for earlier, later in zip([0.0, *asked_at], asked_at)]
    assert gaps[0] <= a.config.gossip_interval + 0.05  # not a whole anti-entropy interval later
    assert 5 <= len(asked_at) <= 10  # backing off: the delay doubles ...
    assert max(gaps) <= a.config.anti_entropy_interval + 0.05  # ... up to the anti-entropy interval
    assert gaps[-1] >= a.config.anti_entropy_interval / 2 - 0.05
    # b comes up and answers the next request: a waits a whole anti-entropy interval again.
    b.relay_up(LINK, 61.0)
    b.take_actions()
    a.relay_up(LINK, 61.0)  # reconnected: asks at once
    [request] = sync_requests(a)
    b.relay_message(LINK, request.data, 61.1, "inbox.a")
    for answer in b.take_actions():
        a.relay_message(LINK, answer.data, 61.2)
    a.take_actions()
    a.tick(61.2 + 0.75 * a.config.anti_entropy_interval - 0.1)
    assert sync_requests(a) == []
    a.tick(61.2 + 1.25 * a.config.anti_entropy_interval)
    assert len(sync_requests(a)) == 1
