"""A connection's set-up: the dialer's first Sync rides with its auth, and authentication holds.

Two nodes are driven by hand, flight by flight (every message either side has queued crosses
at once), so the number of flights a late joiner waits for its first batch is counted exactly.
"""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from crdtmem import Memory
from crdtmem.identity import Identity, Keyring
from crdtmem.protocol.events import Close, Refused, Send
from crdtmem.protocol.framing import PROTOCOL_VERSION, FrameChannel
from crdtmem.protocol.handshake import Auth, Hello, auth_transcript, decode_handshake_message, derive_session_keys, session_id_of
from crdtmem.protocol.messages import Batches, Sync, decode_message, encode_message
from crdtmem.protocol.node import Node

WRITER = Identity.from_private_bytes(bytes([1]) * 32)
JOINER = Identity.from_private_bytes(bytes([2]) * 32)
MALLORY = Identity.from_private_bytes(bytes([3]) * 32)
CONN = "link"


def node(identity: Identity, *trusted: Identity, seed: int) -> Node:
    keyring = Keyring()
    for other in (identity, *trusted):
        keyring.add(other)
    return Node(Memory(identity.peer_id, clock=lambda: 1_000.0), identity, keyring, rng=random.Random(seed))


def writer_with_history() -> Node:
    """The listener: three signed batches of its own, no one connected."""
    writer = node(WRITER, JOINER, seed=1)
    for _ in range(3):
        writer.memory.counter("tasks").increment(1)
        writer.flush(0.0)
    writer.take_actions()
    writer.take_events()
    return writer


def sent(n: Node) -> list[bytes]:
    return [action.data for action in n.take_actions() if isinstance(action, Send)]


def closed(n: Node) -> list[str]:
    return [str(action.reason) for action in n.take_actions() if isinstance(action, Close)]


def refusals(n: Node) -> list[str]:
    return [str(event.reason) for event in n.take_events() if isinstance(event, Refused)]


def flights_until_joined(writer: Node, joiner: Node, tasks: int = 3, waited: list[int] | None = None) -> int:
    """Open a connection (the joiner dials) and count flights until the joiner holds the
    writer's ``tasks`` increments; ``waited`` collects, per handled message, how many batches
    the joiner holds waiting for their dependencies."""
    writer.open(CONN, 0.0, dialer=False)
    joiner.open(CONN, 0.0, dialer=True)
    to_joiner, to_writer = sent(writer), sent(joiner)
    for flight in range(1, 10):
        for data in to_joiner:
            joiner.receive(CONN, data, 0.0)
            if waited is not None:
                waited.append(joiner.pending_size())
        for data in to_writer:
            writer.receive(CONN, data, 0.0)
        if joiner.memory.counter("tasks").value == tasks:
            return flight
        to_joiner, to_writer = sent(writer), sent(joiner)
    raise AssertionError("the joiner never got the writer's batches")


def test_a_late_joiner_has_the_writers_batches_after_three_flights():
    # Hellos cross; the joiner's auth carries its Sync, answered with the batches as soon as
    # that auth verifies; they arrive with the writer's auth. (The Sync sent once the joiner
    # had verified that auth took a fourth flight.)
    writer, joiner = writer_with_history(), node(JOINER, WRITER, seed=2)
    assert flights_until_joined(writer, joiner) == 3
    assert writer.peers() == {CONN: JOINER.peer_id} and joiner.peers() == {CONN: WRITER.peer_id}


def test_writes_held_while_alone_reach_a_joiner_in_order_with_the_rest():
    # Writes made while no one was connected are held (to coalesce); the writer signs them
    # when the joiner's auth verifies, before the joiner counts as a neighbour, so they go in
    # the answer to its Sync after the batches they depend on, not first (where they would wait
    # for those, and be fetched again by a Want).
    writer, joiner = writer_with_history(), node(JOINER, WRITER, seed=2)
    writer.memory.counter("tasks").increment(1)
    writer.tick(0.0)  # held: no neighbour to send to
    assert writer.memory.has_pending_deltas()
    waited: list[int] = []
    assert flights_until_joined(writer, joiner, tasks=4, waited=waited) == 3
    assert max(waited) == 0 and writer.stats.batches_created == 4


def hellos_crossed() -> tuple[Node, Node, bytes, bytes, bytes]:
    """A writer and a joiner whose hellos crossed, the joiner's answer not delivered yet:
    (writer, joiner, the joiner's hello, its auth, its sealed Sync)."""
    writer, joiner = writer_with_history(), node(JOINER, WRITER, seed=2)
    writer.open(CONN, 0.0, dialer=False)
    joiner.open(CONN, 0.0, dialer=True)
    (writer_hello,), (joiner_hello,) = sent(writer), sent(joiner)
    joiner.receive(CONN, writer_hello, 0.0)
    auth, sync_frame = sent(joiner)
    return writer, joiner, joiner_hello, auth, sync_frame


def test_the_dialers_reply_to_a_hello_is_its_auth_then_its_sealed_sync():
    writer, joiner, joiner_hello, auth, sync_frame = hellos_crossed()
    assert isinstance(decode_handshake_message(auth), Auth)
    # The listener's own reply to a hello is its auth alone: it seals nothing for a peer it
    # has not authenticated.
    writer.receive(CONN, joiner_hello, 0.0)
    (writer_auth,) = sent(writer)
    assert isinstance(decode_handshake_message(writer_auth), Auth)
    writer.receive(CONN, auth, 0.0)
    assert writer.peers() == {CONN: JOINER.peer_id}
    greeting = sent(writer)  # the writer's own Sync
    writer.receive(CONN, sync_frame, 0.0)
    answer = sent(writer)
    assert greeting and answer, "the joiner's Sync opens at the writer once its auth verified, and is answered"
    for data in [writer_auth, *greeting, *answer]:
        joiner.receive(CONN, data, 0.0)
    assert joiner.memory.counter("tasks").value == 3 and not refusals(joiner)


def test_a_frame_sent_before_the_dialers_auth_is_refused_and_never_opened():
    writer, _joiner, joiner_hello, _auth, sync_frame = hellos_crossed()
    writer.receive(CONN, joiner_hello, 0.0)
    sent(writer)
    writer.receive(CONN, sync_frame, 0.0)  # the Sync without the auth before it
    assert refusals(writer) == ["malformed-handshake"]
    assert not writer.peers() and not [a for a in writer.take_actions() if isinstance(a, Send)]


def test_an_impostor_listener_never_gets_a_frame_of_its_own_opened():
    # Mallory answers the joiner's dial presenting the writer's public key (public knowledge)
    # with her own exchange key: she can derive the frame keys, so the joiner's Sync opens for
    # her (frames are authenticated, not encrypted: it says what the wire shows), but her auth
    # does not verify, and nothing she sealed is ever opened or applied.
    joiner = node(JOINER, WRITER, seed=2)
    joiner.open(CONN, 0.0, dialer=True)
    (joiner_hello_bytes,) = sent(joiner)
    joiner_hello = decode_handshake_message(joiner_hello_bytes)
    secret = X25519PrivateKey.from_private_bytes(bytes([9]) * 32)
    claimed = Hello(PROTOCOL_VERSION, WRITER.public_key, bytes([8]) * 32, secret.public_key().public_bytes_raw())
    joiner.receive(CONN, claimed.encode(), 0.0)
    _auth, sync_frame = sent(joiner)
    keys = derive_session_keys(secret, joiner_hello.exchange_key, session_id_of(claimed.nonce, joiner_hello.nonce),
                               WRITER.peer_id, JOINER.peer_id)
    her_channel = FrameChannel(keys, peer_id=JOINER.peer_id)
    assert isinstance(decode_message(her_channel.open_frame(sync_frame), max_size=1 << 20), Sync)
    forged_auth = Auth(MALLORY.sign(auth_transcript(claimed, joiner_hello))).encode()
    batch_frames = her_channel.seal_message(encode_message(Batches(())))
    joiner.receive(CONN, forged_auth, 0.0)
    for frame in batch_frames:
        joiner.receive(CONN, frame, 0.0)
    assert refusals(joiner) == ["bad-handshake-signature"]
    assert closed(joiner) == ["bad-handshake-signature"]
    assert not joiner.peers() and joiner.stats.bytes_received == len(claimed.encode()) + len(forged_auth)


def test_a_replayed_auth_and_sync_are_refused_on_a_new_connection():
    writer, _joiner, *recorded = hellos_crossed()  # the joiner's hello, auth and sealed Sync
    writer.open("again", 0.0, dialer=False)  # a fresh nonce on the new connection
    writer.take_actions()
    for data in recorded:
        writer.receive("again", data, 0.0)
    assert refusals(writer) == ["bad-handshake-signature"]
    assert "again" not in writer.peers()
    replies = [a for a in writer.take_actions() if isinstance(a, Send) and a.conn == "again"]
    # Only its auth answered the replayed hello: no Sync, no batch.
    assert [type(decode_handshake_message(a.data)) for a in replies] == [Auth]


def test_a_dialer_refuses_an_untrusted_listener_before_sending_anything_sealed():
    joiner = node(JOINER, seed=2)  # trusts no one else
    stranger = node(MALLORY, JOINER, seed=3)
    stranger.open(CONN, 0.0, dialer=False)
    joiner.open(CONN, 0.0, dialer=True)
    sent(joiner)
    (stranger_hello,) = sent(stranger)
    joiner.receive(CONN, stranger_hello, 0.0)
    actions = joiner.take_actions()
    assert [type(a).__name__ for a in actions] == ["Close"] and actions[0].reason == "untrusted-key"


def test_a_dialer_refuses_a_low_order_exchange_key_before_its_auth():
    joiner = node(JOINER, WRITER, seed=2)
    joiner.open(CONN, 0.0, dialer=True)
    sent(joiner)
    weak = Hello(PROTOCOL_VERSION, WRITER.public_key, bytes([7]) * 32, bytes(32))
    joiner.receive(CONN, weak.encode(), 0.0)
    actions = joiner.take_actions()
    assert [type(a).__name__ for a in actions] == ["Close"] and actions[0].reason == "bad-key-exchange"


@pytest.mark.parametrize("dialer", [True, False])
def test_sealing_keys_are_the_keys_the_handshake_ends_with(dialer):
    writer, joiner = writer_with_history(), node(JOINER, WRITER, seed=2)
    flights_until_joined(writer, joiner)
    session = (joiner if dialer else writer)._sessions[CONN]
    assert session.handshake.sealing_keys() == session.handshake.keys
