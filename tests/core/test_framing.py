"""Authenticated frames, chunking and the handshake — real Ed25519, X25519 and BLAKE2b, no mocks."""

from __future__ import annotations

import hashlib
import random

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from crdtmem import codec, limits
from crdtmem.errors import (
    AuthenticationError,
    DecodeError,
    LocalProtocolError,
    RefusalReason,
    RemoteProtocolError,
    TypeConflictError,
)
from crdtmem.identity import Identity, Keyring
from crdtmem.protocol import batch, causal, compact, framing, handshake, membership, node, retirement
from crdtmem.protocol.framing import (
    CHUNK_OVERHEAD,
    FRAME_OVERHEAD,
    MIN_CHUNK_DATA,
    PROTOCOL_VERSION,
    BadChunkError,
    BadHandshakeSignatureError,
    BadKeyExchangeError,
    BadTagError,
    FrameChannel,
    FrameTooLargeError,
    HandshakeStateError,
    MalformedFrameError,
    MalformedHandshakeError,
    MessageTooLargeError,
    MissingSignatureError,
    MissingTagError,
    OutOfOrderFrameError,
    OversizedFrameError,
    OversizedMessageError,
    Reassembler,
    ReflectedFrameError,
    ReplayedFrameError,
    SelfConnectionError,
    SessionKeys,
    UnexpectedHandshakeMessageError,
    UntrustedKeyError,
    VersionMismatchError,
    split,
)
from crdtmem.protocol.handshake import (
    Auth,
    Handshake,
    HandshakeState,
    Hello,
    make_auth,
    session_id_of,
    verify_auth,
)

ALICE = Identity.from_private_bytes(hashlib.sha256(b"alice").digest())
BOB = Identity.from_private_bytes(hashlib.sha256(b"bob").digest())
MALLORY = Identity.from_private_bytes(hashlib.sha256(b"mallory").digest())
SESSION = hashlib.blake2b(b"session", digest_size=32).digest()
OTHER_SESSION = hashlib.blake2b(b"other session", digest_size=32).digest()
NONCE_A = bytes([1]) * 32
NONCE_B = bytes([2]) * 32
SECRET_A = bytes([3]) * 32
SECRET_B = bytes([4]) * 32


def direction_key(session: bytes, direction: bytes) -> bytes:
    return hashlib.blake2b(session + direction, digest_size=32).digest()


def channels(session: bytes = SESSION, **caps) -> tuple[FrameChannel, FrameChannel]:
    """Alice's and Bob's ends of one authenticated connection."""
    to_bob, to_alice = direction_key(session, b"to bob"), direction_key(session, b"to alice")
    return (
        FrameChannel(SessionKeys(send=to_bob, receive=to_alice), peer_id=BOB.peer_id, **caps),
        FrameChannel(SessionKeys(send=to_alice, receive=to_bob), peer_id=ALICE.peer_id, **caps),
    )


def exchange_key(secret: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()


def hello(identity: Identity, nonce: bytes, secret: bytes = SECRET_B) -> Hello:
    return Hello(PROTOCOL_VERSION, identity.public_key, nonce, exchange_key(secret))


def started(identity: Identity, ring: Keyring) -> tuple[Handshake, Hello]:
    """Alice-side handshake (nonce A, secret A) after start(), and the hello it sent."""
    a = Handshake(identity, ring, NONCE_A, SECRET_A)
    (data,) = a.start()
    return a, handshake.decode_handshake_message(data)


def state(channel: FrameChannel) -> tuple:
    r = channel.reassembler
    return (channel.last_sent_seq, channel.last_received_seq, r.last_message_id, r.buffered_bytes, r.in_progress)


def refuses(channel: FrameChannel, frame: bytes, error: type[Exception], reason: str, *, chunked: bool = False):
    """Assert ``frame`` is refused with ``error`` and ``reason`` and the channel did not move."""
    before = state(channel)
    with pytest.raises(error) as info:
        (channel.open_frame if chunked else channel.open)(frame)
    assert info.value.reason == reason
    assert state(channel) == before
    return info.value


def keyring(*identities: Identity) -> Keyring:
    ring = Keyring()
    for identity in identities:
        ring.add(identity)
    return ring


# -- single frames ------------------------------------------------------------------------------


def test_frames_open_in_order_and_carry_their_payload():
    alice, bob = channels()
    frames = [alice.seal(b"one"), alice.seal(b""), alice.seal(b"three")]
    assert [bob.open(f) for f in frames] == [b"one", b"", b"three"]
    assert alice.last_sent_seq == 3 and bob.last_received_seq == 3
    assert alice.open(bob.seal(b"back")) == b"back"  # each direction counts on its own


def test_wire_format_is_version_seq_payload_tag():
    alice, _ = channels()
    version, seq, payload, tag = codec.unpack(alice.seal(b"x"))
    assert (version, seq, payload, len(tag)) == (PROTOCOL_VERSION, 1, b"x", 16)


def test_oversized_frame_is_refused_before_parsing():
    alice, bob = channels(max_frame_bytes=1024)
    refuses(bob, b"\xc1" * 1025, OversizedFrameError, "oversized-frame")  # garbage, never parsed
    big = channels(max_frame_bytes=4096)[0].seal(b"x" * 2000)
    refuses(bob, big, OversizedFrameError, "oversized-frame")  # a genuine frame, too big
    assert bob.open(alice.seal(b"fine")) == b"fine"


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xc1",  # never valid msgpack
        codec.pack(None),
        codec.pack([]),
        codec.pack(["1", 1, b"x", b"s" * 16]),
        codec.pack([PROTOCOL_VERSION, 1, b"x", b"s" * 16, b"extra"]),
        codec.pack([PROTOCOL_VERSION, 0, b"x", b"s" * 16]),
        codec.pack([PROTOCOL_VERSION, -1, b"x", b"s" * 16]),
        codec.pack([PROTOCOL_VERSION, True, b"x", b"s" * 16]),
        codec.pack([PROTOCOL_VERSION, 1, "text", b"s" * 16]),
        codec.pack([PROTOCOL_VERSION, 1, b"x", 12]),
        codec.pack([PROTOCOL_VERSION, 1, b"x", b"s" * 16]) + b"trailing",
    ],
)
def test_malformed_frame_is_refused(frame):
    _, bob = channels()
    refuses(bob, frame, MalformedFrameError, "malformed-frame")


def test_frame_of_another_protocol_version_is_refused():
    _, bob = channels()
    refuses(bob, codec.pack([PROTOCOL_VERSION + 1, 1, b"x", b"s" * 16]), VersionMismatchError, "version-mismatch")
    refuses(bob, codec.pack([PROTOCOL_VERSION - 1]), VersionMismatchError, "version-mismatch")


def test_tampered_frame_is_refused_as_bad_tag():
    alice, bob = channels()
    frame = alice.seal(b"transfer 10")
    version, seq, _, tag = codec.unpack(frame)
    refuses(bob, codec.pack([version, seq, b"transfer 99", tag]), BadTagError, "bad-tag")
    forged = bytearray(tag)
    forged[0] ^= 1
    refuses(bob, codec.pack([version, seq, b"transfer 10", bytes(forged)]), BadTagError, "bad-tag")
    refuses(bob, codec.pack([version, seq, b"transfer 10", tag[:15]]), BadTagError, "bad-tag")
    assert bob.open(frame) == b"transfer 10"  # the refusals did not advance the channel


def test_tag_covers_the_sequence_number():
    alice, bob = channels()
    version, _, payload, tag = codec.unpack(alice.seal(b"x"))
    bob.last_received_seq = 1
    refuses(bob, codec.pack([version, 2, payload, tag]), BadTagError, "bad-tag")


def test_frame_tagged_with_another_key_is_refused():
    _, bob = channels()
    mallory = FrameChannel(SessionKeys(send=bytes(32), receive=bytes([1]) * 32))
    refuses(bob, mallory.seal(b"hi"), BadTagError, "bad-tag")


@pytest.mark.parametrize("tail", [[b""], [None], []])
def test_frame_without_tag_is_refused(tail):
    _, bob = channels()
    refuses(bob, codec.pack([PROTOCOL_VERSION, 1, b"x", *tail]), MissingTagError, "missing-tag")


def test_replayed_frame_is_refused_and_the_next_one_still_opens():
    alice, bob = channels()
    first, second = alice.seal(b"1"), alice.seal(b"2")
    assert bob.open(first) == b"1"
    error = refuses(bob, first, ReplayedFrameError, "replayed-frame")
    assert isinstance(error, RemoteProtocolError)
    assert bob.open(second) == b"2"
    refuses(bob, first, ReplayedFrameError, "replayed-frame")  # lower than the last one, too


def test_frame_after_a_gap_is_refused_as_out_of_order():
    alice, bob = channels()
    first, second, third = alice.seal(b"1"), alice.seal(b"2"), alice.seal(b"3")
    refuses(bob, second, OutOfOrderFrameError, "out-of-order")
    assert bob.open(first) == b"1"
    refuses(bob, third, OutOfOrderFrameError, "out-of-order")
    assert bob.open(second) == b"2"
    assert bob.open(third) == b"3"


def test_frame_moved_to_another_connection_is_refused():
    # Same two peers, another session: other keys, so the moved frame cannot be told from a
    # forgery and is refused as a bad tag.
    alice, _ = channels(SESSION)
    _, bob_elsewhere = channels(OTHER_SESSION)
    refuses(bob_elsewhere, alice.seal(b"hi"), BadTagError, "bad-tag")


def test_frame_reflected_to_its_sender_is_refused():
    alice, _ = channels()
    frame = alice.seal(b"hi")
    refuses(alice, frame, ReflectedFrameError, "reflected-frame")
    assert isinstance(ReflectedFrameError("x"), BadTagError)


def test_seal_refuses_a_payload_that_does_not_fit_one_frame():
    alice, _ = channels(max_frame_bytes=1024)
    with pytest.raises(FrameTooLargeError) as info:
        alice.seal(b"x" * 1024)
    assert info.value.reason == "oversized-frame" and isinstance(info.value, LocalProtocolError)
    assert alice.last_sent_seq == 0


def test_frame_overhead_bound_holds_for_the_largest_sequence_numbers():
    alice, bob = channels(max_frame_bytes=1024)
    alice.last_sent_seq = bob.last_received_seq = 2**64 - 2
    frame = alice.seal(b"x" * alice.chunk_limit)
    assert len(frame) <= 1024
    assert bob.open(frame) == b"x" * alice.chunk_limit
    assert all(len(chunk) - CHUNK_OVERHEAD <= alice.chunk_limit for chunk in split(b"x" * 5000, alice.chunk_limit))
    assert FRAME_OVERHEAD >= len(codec.pack([PROTOCOL_VERSION, 2**64 - 1, b"x" * 70000, bytes(16)])) - 70000


def test_channel_refuses_bad_configuration():
    with pytest.raises(ValueError):
        SessionKeys(send=b"short", receive=bytes(32))
    with pytest.raises(ValueError):
        SessionKeys(send=bytes(32), receive=bytes(32))  # one key both ways would let frames reflect
    with pytest.raises(TypeError):
        FrameChannel(bytes(32))
    with pytest.raises(ValueError):
        channels(max_frame_bytes=100)
    assert "<secret>" in repr(SessionKeys(send=bytes(32), receive=bytes([1]) * 32))


# -- chunked messages ---------------------------------------------------------------------------


def test_five_mebibyte_message_travels_in_frames_under_a_64_kib_cap():
    cap = 64 * 1024
    alice, bob = channels(max_frame_bytes=cap)
    payload = random.Random(7).randbytes(5 * 1024 * 1024)
    frames = alice.seal_message(payload)
    assert len(frames) > 80
    assert all(len(f) <= cap for f in frames)
    results = [bob.open_frame(f) for f in frames]
    assert results[:-1] == [None] * (len(frames) - 1)
    assert results[-1] == payload
    assert bob.reassembler.buffered_bytes == 0 and not bob.reassembler.in_progress


def test_small_and_empty_messages_take_one_frame_each():
    alice, bob = channels()
    for payload in (b"", b"a", b"b" * 1000):
        (frame,) = alice.seal_message(payload)
        assert bob.open_frame(frame) == payload
    assert bob.reassembler.last_message_id == 3


@pytest.mark.parametrize("extra", [-1, 0, 1, 2])
def test_a_message_takes_one_frame_exactly_while_one_chunk_holds_it(extra):
    alice, bob = channels(max_frame_bytes=512)
    payload = b"m" * (alice.chunk_limit - framing.CHUNK_OVERHEAD + extra)
    frames = alice.seal_message(payload)
    assert [codec.unpack(f)[2] for f in frames] == split(payload, alice.chunk_limit)
    assert len(frames) == (1 if extra <= 0 else 2)
    assert [m for f in frames if (m := bob.open_frame(f)) is not None] == [payload]


def test_chunked_messages_follow_each_other():
    alice, bob = channels(max_frame_bytes=512)
    payloads = [b"a" * 2000, b"", b"c" * 413, b"d" * 5000]
    received = [m for p in payloads for f in alice.seal_message(p) if (m := bob.open_frame(f)) is not None]
    assert received == payloads


def test_refused_chunk_leaves_the_channel_unchanged():
    alice, bob = channels(max_frame_bytes=512)
    frames = alice.seal_message(b"z" * 2000)
    assert bob.open_frame(frames[0]) is None
    refuses(bob, frames[2], OutOfOrderFrameError, "out-of-order", chunked=True)
    refuses(bob, frames[0], ReplayedFrameError, "replayed-frame", chunked=True)
    # A validly tagged frame whose chunk is wrong is refused too, without using up its seq.
    stray = channels(max_frame_bytes=512)[0]
    stray.last_sent_seq = 1
    refuses(bob, stray.seal(b"\x07" + b"x" * 300), BadChunkError, "bad-chunk", chunked=True)
    assert [bob.open_frame(f) for f in frames[1:]][-1] == b"z" * 2000


def test_sender_refuses_a_message_over_the_cap():
    alice, _ = channels(max_message_bytes=1000)
    with pytest.raises(MessageTooLargeError) as info:
        alice.seal_message(b"x" * 1001)
    assert info.value.reason == "oversized-message"
    assert alice.last_sent_seq == 0


def test_receiver_refuses_a_message_over_its_budget():
    alice, _ = channels(max_frame_bytes=512)
    _, bob = channels(max_frame_bytes=512, max_message_bytes=1500)
    frames = alice.seal_message(b"x" * 3000)
    assert bob.reassembler.max_parts >= 2
    received = []
    with pytest.raises(OversizedMessageError) as info:
        for frame in frames:
            received.append(bob.open_frame(frame))
    assert info.value.reason == "oversized-message"
    assert bob.reassembler.buffered_bytes <= 1500


def test_split_and_reassemble_round_trip():
    payload = bytes(range(256)) * 40
    chunks = split(payload, 1000)
    assert all(len(c) <= 1000 for c in chunks)
    assert [c[0] for c in chunks] == [1] * (len(chunks) - 1) + [0]  # more follow, then the last
    reassembler = Reassembler()
    assert [reassembler.feed(c) for c in chunks][-1] == payload
    assert split(b"", 1000) == [b"\x00"]
    assert split(b"abc", 1000) == [b"\x00abc"]  # one byte of overhead for a message in one frame
    with pytest.raises(ValueError):
        split(payload, CHUNK_OVERHEAD + MIN_CHUNK_DATA - 1)


def test_reassembler_refuses_a_message_with_too_many_parts():
    reassembler = Reassembler(max_message_bytes=10_000, max_parts=4)
    for _ in range(4):
        assert reassembler.feed(b"\x01" + b"x" * MIN_CHUNK_DATA) is None
    with pytest.raises(OversizedMessageError) as info:
        reassembler.feed(b"\x00")  # a fifth part, even the last
    assert info.value.reason == "oversized-message"
    assert reassembler.buffered_bytes == 4 * MIN_CHUNK_DATA  # unchanged by the refused part


def test_reassembler_refuses_bytes_over_its_budget_and_stays_unchanged():
    reassembler = Reassembler(max_message_bytes=1000)
    assert reassembler.feed(b"\x01" + b"x" * 600) is None
    with pytest.raises(OversizedMessageError):
        reassembler.feed(b"\x01" + b"x" * 401)
    assert reassembler.buffered_bytes == 600
    assert reassembler.feed(b"\x01" + b"x" * 400) is None
    assert reassembler.feed(b"\x00") == b"x" * 1000


def test_default_part_budget_covers_any_honest_sender():
    # However small the sender's frame cap, a max-size message needs at most max_parts chunks.
    reassembler = Reassembler(max_message_bytes=10_000)
    chunks = split(b"x" * 10_000, MIN_CHUNK_DATA + CHUNK_OVERHEAD)
    assert len(chunks) <= reassembler.max_parts
    assert [reassembler.feed(c) for c in chunks][-1] == b"x" * 10_000


@pytest.mark.parametrize(
    "chunks",
    [
        [b""],  # no flag
        [b"\xc1"],  # an unknown flag
        [b"\x02" + b"x" * 300],
        [b"\x01" + b"x" * 300, b"\xff"],  # an unknown flag mid-message
        [b"\x01x"],  # a tiny non-final chunk
        [b"\x01" + b"x" * 300, b"\x01" + b"x" * (MIN_CHUNK_DATA - 1)],
    ],
)
def test_reassembler_refuses_chunks_that_do_not_continue_the_message(chunks):
    reassembler = Reassembler()
    for chunk in chunks[:-1]:
        reassembler.feed(chunk)
    before = (reassembler.last_message_id, reassembler.buffered_bytes, reassembler.in_progress)
    with pytest.raises(BadChunkError) as info:
        reassembler.feed(chunks[-1])
    assert info.value.reason == "bad-chunk"
    assert (reassembler.last_message_id, reassembler.buffered_bytes, reassembler.in_progress) == before


# -- handshake ----------------------------------------------------------------------------------


def run_handshake(a: Handshake, b: Handshake) -> None:
    """Deliver messages between two handshakes until both stop sending."""
    to_b, to_a = a.start(), b.start()
    while to_a or to_b:
        next_to_a = [reply for data in to_b for reply in b.receive(data)]
        next_to_b = [reply for data in to_a for reply in a.receive(data)]
        to_a, to_b = next_to_a, next_to_b


def test_full_handshake_authenticates_both_sides_with_one_session_id_and_matching_keys():
    a = Handshake(ALICE, keyring(BOB), NONCE_A, SECRET_A)
    b = Handshake(BOB, keyring(ALICE), NONCE_B, SECRET_B)
    run_handshake(a, b)
    assert a.done and b.done
    assert a.state is b.state is HandshakeState.DONE
    assert a.peer_id == BOB.peer_id and b.peer_id == ALICE.peer_id
    assert a.peer_public_key == BOB.public_key and b.peer_public_key == ALICE.public_key
    assert a.session_id == b.session_id == session_id_of(NONCE_A, NONCE_B) == session_id_of(NONCE_B, NONCE_A)
    assert a.keys.send == b.keys.receive and a.keys.receive == b.keys.send and a.keys.send != a.keys.receive
    alice = FrameChannel(a.keys, peer_id=a.peer_id)
    bob = FrameChannel(b.keys, peer_id=b.peer_id)
    (frame,) = alice.seal_message(b"hello bob")
    assert bob.open_frame(frame) == b"hello bob"
    assert alice.open_frame(bob.seal_message(b"hello alice")[0]) == b"hello alice"


def test_every_connection_gets_fresh_keys():
    a = Handshake(ALICE, keyring(BOB), NONCE_A, SECRET_A)
    b = Handshake(BOB, keyring(ALICE), NONCE_B, SECRET_B)
    run_handshake(a, b)
    a2 = Handshake(ALICE, keyring(BOB), bytes([5]) * 32, bytes([6]) * 32)
    b2 = Handshake(BOB, keyring(ALICE), bytes([7]) * 32, bytes([8]) * 32)
    run_handshake(a2, b2)
    assert {a.keys.send, a.keys.receive}.isdisjoint({a2.keys.send, a2.keys.receive})


def test_each_side_sends_hello_then_auth():
    a = Handshake(ALICE, keyring(BOB), NONCE_A, SECRET_A)
    b = Handshake(BOB, keyring(ALICE), NONCE_B, SECRET_B)
    (hello_a,), (hello_b,) = a.start(), b.start()
    assert handshake.decode_handshake_message(hello_a) == hello(ALICE, NONCE_A, SECRET_A)
    (auth_b,) = b.receive(hello_a)
    assert b.state is HandshakeState.SENT_AUTH
    assert isinstance(handshake.decode_handshake_message(auth_b), Auth)
    (auth_a,) = a.receive(hello_b)
    assert a.receive(auth_b) == [] and a.done
    assert b.receive(auth_a) == [] and b.done


def test_handshake_refuses_a_key_outside_the_keyring():
    a, _ = started(ALICE, keyring(BOB))
    with pytest.raises(UntrustedKeyError) as info:
        a.receive(hello(MALLORY, NONCE_B).encode())
    assert info.value.reason == "untrusted-key" and isinstance(info.value, AuthenticationError)
    assert a.state is HandshakeState.FAILED and a.session_id is None and a.keys is None
    with pytest.raises(HandshakeStateError):
        a.receive(hello(BOB, NONCE_B).encode())


def test_empty_keyring_refuses_everyone():
    a, _ = started(ALICE, Keyring())
    with pytest.raises(UntrustedKeyError):
        a.receive(hello(BOB, NONCE_B).encode())


def test_auth_signed_over_the_wrong_nonce_is_refused():
    a, alice_hello = started(ALICE, keyring(BOB))
    a.receive(hello(BOB, NONCE_B).encode())
    stale_alice = Hello(PROTOCOL_VERSION, ALICE.public_key, bytes([9]) * 32, alice_hello.exchange_key)
    with pytest.raises(BadHandshakeSignatureError) as info:
        a.receive(make_auth(BOB, hello(BOB, NONCE_B), stale_alice))
    assert info.value.reason == "bad-handshake-signature"
    assert isinstance(info.value, AuthenticationError)
    assert not a.done and a.session_id is None


@pytest.mark.parametrize(
    "swap",
    [
        "bob's nonce",  # not its hello's nonce
        "audience",  # meant for someone else
        "roles",  # alice's view of the handshake, signed by bob
        "alice's exchange key",  # a man in the middle swapped alice's exchange key
        "bob's exchange key",  # ... or bob's
    ],
)
def test_auth_bound_to_another_handshake_is_refused(swap):
    a, alice_hello = started(ALICE, keyring(BOB))
    bob_hello = hello(BOB, NONCE_B)
    a.receive(bob_hello.encode())
    mine, theirs = bob_hello, alice_hello
    if swap == "bob's nonce":
        mine = hello(BOB, bytes([9]) * 32)
    elif swap == "audience":
        theirs = Hello(PROTOCOL_VERSION, MALLORY.public_key, NONCE_A, alice_hello.exchange_key)
    elif swap == "roles":
        mine = Hello(PROTOCOL_VERSION, BOB.public_key, alice_hello.nonce, alice_hello.exchange_key)
        theirs = Hello(PROTOCOL_VERSION, ALICE.public_key, NONCE_B, bob_hello.exchange_key)
    elif swap == "alice's exchange key":
        theirs = Hello(PROTOCOL_VERSION, ALICE.public_key, NONCE_A, exchange_key(bytes([7]) * 32))
    else:
        mine = hello(BOB, NONCE_B, bytes([7]) * 32)
    with pytest.raises(BadHandshakeSignatureError):
        a.receive(make_auth(BOB, mine, theirs))


def test_auth_from_another_key_is_refused():
    a, alice_hello = started(ALICE, keyring(BOB, MALLORY))
    a.receive(hello(BOB, NONCE_B).encode())
    with pytest.raises(BadHandshakeSignatureError):
        a.receive(make_auth(MALLORY, hello(MALLORY, NONCE_B), alice_hello))


def test_low_order_exchange_key_is_refused():
    # A peer (trusted, with a valid signature) offers the all-zero X25519 point: the shared
    # secret would be zero, known to anyone, so no frame key is derived from it.
    a, alice_hello = started(ALICE, keyring(BOB))
    weak = Hello(PROTOCOL_VERSION, BOB.public_key, NONCE_B, bytes(32))
    a.receive(weak.encode())
    with pytest.raises(BadKeyExchangeError) as info:
        a.receive(make_auth(BOB, weak, alice_hello))
    assert info.value.reason == "bad-key-exchange" and isinstance(info.value.reason, RefusalReason)
    assert a.state is HandshakeState.FAILED and a.keys is None


def test_sealing_keys_come_from_the_peers_hello_and_are_the_keys_the_handshake_ends_with():
    a, alice_hello = started(ALICE, keyring(BOB))
    with pytest.raises(HandshakeStateError):
        a.sealing_keys()  # no hello from the peer yet
    b = Handshake(BOB, keyring(ALICE), NONCE_B, SECRET_B)
    (bob_hello,) = b.start()
    (auth_a,) = a.receive(bob_hello)
    early = a.sealing_keys()
    assert a.keys is None and not a.done  # nothing opens with them before the peer's auth verifies
    (auth_b,) = b.receive(alice_hello.encode())
    a.receive(auth_b)
    b.receive(auth_a)
    assert a.keys == early and b.keys.receive == early.send


def test_sealing_keys_refuse_a_low_order_exchange_key():
    a, _ = started(ALICE, keyring(BOB))
    a.receive(Hello(PROTOCOL_VERSION, BOB.public_key, NONCE_B, bytes(32)).encode())
    with pytest.raises(BadKeyExchangeError):
        a.sealing_keys()
    assert a.state is HandshakeState.FAILED and a.keys is None


def test_verify_auth_accepts_the_matching_signature():
    alice_hello, bob_hello = hello(ALICE, NONCE_A, SECRET_A), hello(BOB, NONCE_B)
    auth = handshake.decode_handshake_message(make_auth(BOB, bob_hello, alice_hello))
    verify_auth(auth, alice_hello, bob_hello)
    with pytest.raises(MissingSignatureError):
        verify_auth(Auth(b""), alice_hello, bob_hello)


def test_hello_of_another_version_is_refused():
    a, _ = started(ALICE, keyring(BOB))
    with pytest.raises(VersionMismatchError) as info:
        a.receive(codec.pack(["hello", PROTOCOL_VERSION + 1, "some future shape"]))
    assert info.value.reason == "version-mismatch"


def test_auth_before_hello_is_refused():
    a, alice_hello = started(ALICE, keyring(BOB))
    with pytest.raises(UnexpectedHandshakeMessageError) as info:
        a.receive(make_auth(BOB, hello(BOB, NONCE_B), alice_hello))
    assert info.value.reason == "unexpected-handshake-message"


def test_second_hello_is_refused():
    a, _ = started(ALICE, keyring(BOB))
    a.receive(hello(BOB, NONCE_B).encode())
    with pytest.raises(UnexpectedHandshakeMessageError):
        a.receive(hello(BOB, NONCE_B).encode())


def test_reflected_hello_is_refused_as_self_connection():
    a = Handshake(ALICE, keyring(ALICE, BOB), NONCE_A, SECRET_A)
    (data,) = a.start()
    with pytest.raises(SelfConnectionError) as info:
        a.receive(data)
    assert info.value.reason == "self-connection"
    b, _ = started(ALICE, keyring(BOB))
    with pytest.raises(SelfConnectionError):
        b.receive(hello(BOB, NONCE_A).encode())  # echoes our nonce


@pytest.mark.parametrize(
    "data, error",
    [
        (b"\xc1", MalformedHandshakeError),
        (codec.pack(["hello"]), MalformedHandshakeError),
        (codec.pack(["hello", PROTOCOL_VERSION, b"k" * 31, NONCE_B, bytes(32)]), MalformedHandshakeError),
        (codec.pack(["hello", PROTOCOL_VERSION, BOB.public_key, b"n" * 8, bytes(32)]), MalformedHandshakeError),
        (codec.pack(["hello", PROTOCOL_VERSION, BOB.public_key, NONCE_B]), MalformedHandshakeError),
        (codec.pack(["hello", PROTOCOL_VERSION, BOB.public_key, NONCE_B, b"k" * 31]), MalformedHandshakeError),
        (codec.pack(["hello", PROTOCOL_VERSION, BOB.public_key, NONCE_B, bytes(32), b"extra"]), MalformedHandshakeError),
        (codec.pack(["bye"]), MalformedHandshakeError),
        (codec.pack(["auth"]), MissingSignatureError),
        (codec.pack(["auth", b""]), MissingSignatureError),
        (b"\x00" * 2000, OversizedFrameError),
    ],
)
def test_malformed_handshake_message_is_refused(data, error):
    a, _ = started(ALICE, keyring(BOB))
    with pytest.raises(error) as info:
        a.receive(data)
    assert isinstance(info.value.reason, RefusalReason)
    assert a.state is HandshakeState.FAILED


def test_handshake_is_driven_in_order():
    a = Handshake(ALICE, keyring(BOB), NONCE_A, SECRET_A)
    with pytest.raises(HandshakeStateError):
        a.receive(hello(BOB, NONCE_B).encode())
    a.start()
    with pytest.raises(HandshakeStateError):
        a.start()
    with pytest.raises(ValueError):
        Handshake(ALICE, keyring(BOB), b"short nonce", SECRET_A)
    with pytest.raises(ValueError):
        Handshake(ALICE, keyring(BOB), NONCE_A, b"short secret")


# -- reasons ------------------------------------------------------------------------------------


def _peer_refusals() -> list[type[RemoteProtocolError]]:
    """Every refusal class the protocol raises for a peer's input."""
    return [
        cls
        for module in (framing, batch, compact, causal, node, limits, membership, retirement)
        for cls in vars(module).values()
        if isinstance(cls, type) and issubclass(cls, RemoteProtocolError) and cls.__module__ == module.__name__
    ] + [TypeConflictError]  # no longer raised (type clashes resolve); its reason stays in reports


def test_every_peer_refusal_declares_its_own_distinct_reason():
    refusals = _peer_refusals()
    assert len(refusals) >= 21
    for cls in refusals:
        assert isinstance(vars(cls).get("reason"), RefusalReason), cls
    reasons = [cls.reason for cls in refusals]
    assert len(set(reasons)) == len(reasons)


def test_every_refusal_reason_is_raised_by_a_class_or_decided_by_the_node_or_admission():
    declared = {cls.reason for cls in _peer_refusals()} | {RemoteProtocolError.reason, DecodeError.reason}
    by_node = {RefusalReason.HANDSHAKE_TIMEOUT, RefusalReason.INTERNAL_ERROR, RefusalReason.REVOKED_KEY}
    by_admission = {RefusalReason.TOO_MANY_CONNECTIONS, RefusalReason.TOO_MANY_UNAUTHENTICATED,
                    RefusalReason.HELLO_TIMEOUT}
    assert set(RefusalReason) - declared == by_node | by_admission


def test_every_fault_of_the_peer_is_a_remote_protocol_error():
    assert issubclass(DecodeError, RemoteProtocolError) and issubclass(DecodeError, ValueError)
    assert issubclass(AuthenticationError, RemoteProtocolError)
    assert not issubclass(LocalProtocolError, RemoteProtocolError)


def test_misuse_errors_are_local_and_oversized_sends_close_with_a_reason():
    for cls in (FrameTooLargeError, MessageTooLargeError, HandshakeStateError):
        assert issubclass(cls, LocalProtocolError) and not issubclass(cls, RemoteProtocolError)
    assert FrameTooLargeError.reason is RefusalReason.OVERSIZED_FRAME
    assert MessageTooLargeError.reason is RefusalReason.OVERSIZED_MESSAGE
