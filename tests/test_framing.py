"""Signed frames, chunking and the handshake — real Ed25519 signatures, no mocks."""

from __future__ import annotations

import hashlib
import random

import pytest

from crdtmem import codec
from crdtmem.errors import AuthenticationError, DecodeError, LocalProtocolError, RemoteProtocolError
from crdtmem.identity import Identity, Keyring
from crdtmem.protocol import framing, handshake
from crdtmem.protocol.framing import (
    CHUNK_OVERHEAD,
    FRAME_OVERHEAD,
    MIN_CHUNK_DATA,
    PROTOCOL_VERSION,
    REFUSAL_REASONS,
    BadChunkError,
    BadHandshakeSignatureError,
    BadSignatureError,
    FrameChannel,
    FrameTooLargeError,
    HandshakeStateError,
    MalformedFrameError,
    MalformedHandshakeError,
    MessageTooLargeError,
    MissingSignatureError,
    OutOfOrderFrameError,
    OversizedFrameError,
    OversizedMessageError,
    Reassembler,
    ReflectedFrameError,
    ReplayedFrameError,
    SelfConnectionError,
    UnexpectedHandshakeMessageError,
    UntrustedKeyError,
    VersionMismatchError,
    split,
)
from crdtmem.protocol.handshake import (
    Auth,
    Handshake,
    HandshakeState,
    make_auth,
    make_hello,
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


def channels(session: bytes = SESSION, **caps) -> tuple[FrameChannel, FrameChannel]:
    """Alice's and Bob's ends of one authenticated connection."""
    return FrameChannel(ALICE, BOB.public_key, session, **caps), FrameChannel(BOB, ALICE.public_key, session, **caps)


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


def test_wire_format_is_version_seq_payload_signature():
    alice, _ = channels()
    version, seq, payload, signature = codec.unpack(alice.seal(b"x"))
    assert (version, seq, payload, len(signature)) == (PROTOCOL_VERSION, 1, b"x", 64)


def test_oversized_frame_is_refused_before_parsing():
    alice, bob = channels(max_frame_bytes=1024)
    refuses(bob, b"\xc1" * 1025, OversizedFrameError, "oversized-frame")  # garbage, never parsed
    big = FrameChannel(ALICE, BOB.public_key, SESSION, max_frame_bytes=4096).seal(b"x" * 2000)
    refuses(bob, big, OversizedFrameError, "oversized-frame")  # a genuine frame, too big
    assert bob.open(alice.seal(b"fine")) == b"fine"


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"\xc1",  # never valid msgpack
        codec.pack(None),
        codec.pack([]),
        codec.pack(["1", 1, b"x", b"s" * 64]),
        codec.pack([1, 1, b"x", b"s" * 64, b"extra"]),
        codec.pack([1, 0, b"x", b"s" * 64]),
        codec.pack([1, -1, b"x", b"s" * 64]),
        codec.pack([1, True, b"x", b"s" * 64]),
        codec.pack([1, 1, "text", b"s" * 64]),
        codec.pack([1, 1, b"x", 12]),
        codec.pack([1, 1, b"x", b"s" * 64]) + b"trailing",
    ],
)
def test_malformed_frame_is_refused(frame):
    _, bob = channels()
    refuses(bob, frame, MalformedFrameError, "malformed-frame")


def test_frame_of_another_protocol_version_is_refused():
    _, bob = channels()
    refuses(bob, codec.pack([2, 1, b"x", b"s" * 64]), VersionMismatchError, "version-mismatch")
    refuses(bob, codec.pack([2]), VersionMismatchError, "version-mismatch")


def test_tampered_frame_is_refused_as_bad_signature():
    alice, bob = channels()
    frame = alice.seal(b"transfer 10")
    version, seq, _, signature = codec.unpack(frame)
    refuses(bob, codec.pack([version, seq, b"transfer 99", signature]), BadSignatureError, "bad-signature")
    forged = bytearray(signature)
    forged[0] ^= 1
    refuses(bob, codec.pack([version, seq, b"transfer 10", bytes(forged)]), BadSignatureError, "bad-signature")
    refuses(bob, codec.pack([version, seq, b"transfer 10", signature[:63]]), BadSignatureError, "bad-signature")
    assert bob.open(frame) == b"transfer 10"  # the refusals did not advance the channel


def test_frame_signed_by_another_key_is_refused():
    _, bob = channels()
    mallory = FrameChannel(MALLORY, BOB.public_key, SESSION)
    refuses(bob, mallory.seal(b"hi"), BadSignatureError, "bad-signature")


@pytest.mark.parametrize("tail", [[b""], [None], []])
def test_frame_without_signature_is_refused(tail):
    _, bob = channels()
    refuses(bob, codec.pack([1, 1, b"x", *tail]), MissingSignatureError, "missing-signature")


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
    # Same two peers, another session: the session id is not on the wire, so the moved frame
    # cannot be told from a forgery and is refused as a bad signature.
    alice, _ = channels(SESSION)
    _, bob_elsewhere = channels(OTHER_SESSION)
    refuses(bob_elsewhere, alice.seal(b"hi"), BadSignatureError, "bad-signature")


def test_frame_reflected_to_its_sender_is_refused():
    alice, _ = channels()
    frame = alice.seal(b"hi")
    refuses(alice, frame, ReflectedFrameError, "reflected-frame")
    assert isinstance(ReflectedFrameError("x"), BadSignatureError)


def test_frame_signed_for_the_other_direction_is_refused():
    # Bob's key and this session, but signed as travelling Alice -> Bob: the direction is signed.
    alice, _ = channels()
    signed = codec.pack([b"crdtmem-frame", PROTOCOL_VERSION, SESSION, ALICE.peer_id, 1, b"x"])
    wrong_direction = codec.pack([PROTOCOL_VERSION, 1, b"x", BOB.sign(signed)])
    refuses(alice, wrong_direction, BadSignatureError, "bad-signature")
    signed = codec.pack([b"crdtmem-frame", PROTOCOL_VERSION, SESSION, BOB.peer_id, 1, b"x"])
    assert alice.open(codec.pack([PROTOCOL_VERSION, 1, b"x", BOB.sign(signed)])) == b"x"


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
    assert len(codec.pack([2**64 - 1, 2**64 - 1, 2**64 - 1, b""])) <= CHUNK_OVERHEAD
    assert FRAME_OVERHEAD >= len(codec.pack([PROTOCOL_VERSION, 2**64 - 1, b"x" * 70000, bytes(64)])) - 70000


def test_channel_refuses_bad_configuration():
    with pytest.raises(ValueError):
        FrameChannel(ALICE, BOB.public_key, b"short")
    with pytest.raises(ValueError):
        FrameChannel(ALICE, b"short", SESSION)
    with pytest.raises(ValueError):
        FrameChannel(ALICE, BOB.public_key, SESSION, max_frame_bytes=100)


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
    # A validly signed frame whose chunk is wrong is refused too, without using up its seq.
    stray = FrameChannel(ALICE, BOB.public_key, SESSION, max_frame_bytes=512)
    stray.last_sent_seq = 1
    refuses(bob, stray.seal(codec.pack([1, 5, 9, b"x" * 200])), BadChunkError, "bad-chunk", chunked=True)
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
    chunks = split(payload, 1000, message_id=1)
    assert all(len(c) <= 1000 for c in chunks)
    reassembler = Reassembler()
    assert [reassembler.feed(c) for c in chunks][-1] == payload
    assert split(b"", 1000) == [codec.pack([1, 0, 1, b""])]
    with pytest.raises(ValueError):
        split(payload, CHUNK_OVERHEAD + MIN_CHUNK_DATA - 1)


def test_reassembler_refuses_a_message_declaring_too_many_parts():
    reassembler = Reassembler(max_message_bytes=10_000, max_parts=4)
    with pytest.raises(OversizedMessageError) as info:
        reassembler.feed(codec.pack([1, 0, 5, b"x" * 200]))
    assert info.value.reason == "oversized-message"
    assert not reassembler.in_progress


def test_reassembler_refuses_bytes_over_its_budget_and_stays_unchanged():
    reassembler = Reassembler(max_message_bytes=1000)
    assert reassembler.feed(codec.pack([1, 0, 3, b"x" * 600])) is None
    with pytest.raises(OversizedMessageError):
        reassembler.feed(codec.pack([1, 1, 3, b"x" * 401]))
    assert reassembler.buffered_bytes == 600
    assert reassembler.feed(codec.pack([1, 1, 3, b"x" * 400])) is None
    assert reassembler.feed(codec.pack([1, 2, 3, b""])) == b"x" * 1000


def test_default_part_budget_covers_any_honest_sender():
    # However small the sender's frame cap, a max-size message needs at most max_parts chunks.
    reassembler = Reassembler(max_message_bytes=10_000)
    chunks = split(b"x" * 10_000, MIN_CHUNK_DATA + CHUNK_OVERHEAD)
    assert len(chunks) <= reassembler.max_parts
    assert [reassembler.feed(c) for c in chunks][-1] == b"x" * 10_000


@pytest.mark.parametrize(
    "chunks",
    [
        [b"\xc1"],
        [codec.pack([1, 0, 2])],
        [codec.pack([1, 0, 0, b""])],  # zero parts
        [codec.pack([1, 2, 2, b"x"])],  # index outside count
        [codec.pack([2, 0, 1, b"x"])],  # message ids start at 1
        [codec.pack([1, 1, 2, b"x" * 200])],  # starts mid-message
        [codec.pack([1, 0, 3, b"x" * 200]), codec.pack([1, 0, 3, b"x" * 200])],  # repeats a part
        [codec.pack([1, 0, 3, b"x" * 200]), codec.pack([1, 1, 4, b"x" * 200])],  # count changes
        [codec.pack([1, 0, 3, b"x" * 200]), codec.pack([2, 0, 1, b"x"])],  # interleaved message
        [codec.pack([1, 0, 3, b"x"])],  # a tiny non-final chunk
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


def test_full_handshake_authenticates_both_sides_with_one_session_id():
    a = Handshake(ALICE, keyring(BOB), NONCE_A)
    b = Handshake(BOB, keyring(ALICE), NONCE_B)
    run_handshake(a, b)
    assert a.done and b.done
    assert a.state is b.state is HandshakeState.DONE
    assert a.peer_id == BOB.peer_id and b.peer_id == ALICE.peer_id
    assert a.peer_public_key == BOB.public_key and b.peer_public_key == ALICE.public_key
    assert a.session_id == b.session_id == session_id_of(NONCE_A, NONCE_B) == session_id_of(NONCE_B, NONCE_A)
    alice = FrameChannel(ALICE, a.peer_public_key, a.session_id)
    bob = FrameChannel(BOB, b.peer_public_key, b.session_id)
    (frame,) = alice.seal_message(b"hello bob")
    assert bob.open_frame(frame) == b"hello bob"


def test_each_side_sends_hello_then_auth():
    a = Handshake(ALICE, keyring(BOB), NONCE_A)
    b = Handshake(BOB, keyring(ALICE), NONCE_B)
    (hello_a,), (hello_b,) = a.start(), b.start()
    assert handshake.decode_handshake_message(hello_a) == handshake.Hello(PROTOCOL_VERSION, ALICE.public_key, NONCE_A)
    (auth_b,) = b.receive(hello_a)
    assert b.state is HandshakeState.SENT_AUTH
    assert isinstance(handshake.decode_handshake_message(auth_b), Auth)
    (auth_a,) = a.receive(hello_b)
    assert a.receive(auth_b) == [] and a.done
    assert b.receive(auth_a) == [] and b.done


def test_handshake_refuses_a_key_outside_the_keyring():
    a = Handshake(ALICE, keyring(BOB), NONCE_A)
    a.start()
    with pytest.raises(UntrustedKeyError) as info:
        a.receive(make_hello(MALLORY, NONCE_B))
    assert info.value.reason == "untrusted-key" and isinstance(info.value, AuthenticationError)
    assert a.state is HandshakeState.FAILED and a.session_id is None
    with pytest.raises(HandshakeStateError):
        a.receive(make_hello(BOB, NONCE_B))


def test_empty_keyring_refuses_everyone():
    a = Handshake(ALICE, Keyring(), NONCE_A)
    a.start()
    with pytest.raises(UntrustedKeyError):
        a.receive(make_hello(BOB, NONCE_B))


def test_auth_signed_over_the_wrong_nonce_is_refused():
    a = Handshake(ALICE, keyring(BOB), NONCE_A)
    a.start()
    a.receive(make_hello(BOB, NONCE_B))
    stale = make_auth(BOB, my_nonce=NONCE_B, their_nonce=bytes([9]) * 32, their_peer_id=ALICE.peer_id)
    with pytest.raises(BadHandshakeSignatureError) as info:
        a.receive(stale)
    assert info.value.reason == "bad-handshake-signature"
    assert isinstance(info.value, BadSignatureError)
    assert not a.done and a.session_id is None


@pytest.mark.parametrize(
    "auth_kwargs",
    [
        dict(my_nonce=bytes([9]) * 32, their_nonce=NONCE_A, their_peer_id=ALICE.peer_id),  # not its hello's nonce
        dict(my_nonce=NONCE_B, their_nonce=NONCE_A, their_peer_id=MALLORY.peer_id),  # meant for someone else
        dict(my_nonce=NONCE_A, their_nonce=NONCE_B, their_peer_id=ALICE.peer_id),  # roles swapped
    ],
)
def test_auth_bound_to_another_handshake_is_refused(auth_kwargs):
    a = Handshake(ALICE, keyring(BOB), NONCE_A)
    a.start()
    a.receive(make_hello(BOB, NONCE_B))
    with pytest.raises(BadHandshakeSignatureError):
        a.receive(make_auth(BOB, **auth_kwargs))


def test_auth_from_another_key_is_refused():
    a = Handshake(ALICE, keyring(BOB, MALLORY), NONCE_A)
    a.start()
    a.receive(make_hello(BOB, NONCE_B))
    with pytest.raises(BadHandshakeSignatureError):
        a.receive(make_auth(MALLORY, my_nonce=NONCE_B, their_nonce=NONCE_A, their_peer_id=ALICE.peer_id))


def test_verify_auth_accepts_the_matching_signature():
    auth = handshake.decode_handshake_message(
        make_auth(BOB, my_nonce=NONCE_B, their_nonce=NONCE_A, their_peer_id=ALICE.peer_id)
    )
    verify_auth(auth, their_public_key=BOB.public_key, their_nonce=NONCE_B, my_nonce=NONCE_A, my_peer_id=ALICE.peer_id)
    with pytest.raises(MissingSignatureError):
        verify_auth(Auth(b""), their_public_key=BOB.public_key, their_nonce=NONCE_B, my_nonce=NONCE_A, my_peer_id=ALICE.peer_id)


def test_hello_of_another_version_is_refused():
    a = Handshake(ALICE, keyring(BOB), NONCE_A)
    a.start()
    with pytest.raises(VersionMismatchError) as info:
        a.receive(codec.pack(["hello", 2, "some future shape"]))
    assert info.value.reason == "version-mismatch"


def test_auth_before_hello_is_refused():
    a = Handshake(ALICE, keyring(BOB), NONCE_A)
    a.start()
    auth = make_auth(BOB, my_nonce=NONCE_B, their_nonce=NONCE_A, their_peer_id=ALICE.peer_id)
    with pytest.raises(UnexpectedHandshakeMessageError) as info:
        a.receive(auth)
    assert info.value.reason == "unexpected-handshake-message"


def test_second_hello_is_refused():
    a = Handshake(ALICE, keyring(BOB), NONCE_A)
    a.start()
    a.receive(make_hello(BOB, NONCE_B))
    with pytest.raises(UnexpectedHandshakeMessageError):
        a.receive(make_hello(BOB, NONCE_B))


def test_reflected_hello_is_refused_as_self_connection():
    a = Handshake(ALICE, keyring(ALICE, BOB), NONCE_A)
    (hello,) = a.start()
    with pytest.raises(SelfConnectionError) as info:
        a.receive(hello)
    assert info.value.reason == "self-connection"
    b = Handshake(ALICE, keyring(BOB), NONCE_A)
    b.start()
    with pytest.raises(SelfConnectionError):
        b.receive(make_hello(BOB, NONCE_A))  # echoes our nonce


@pytest.mark.parametrize(
    "data, error",
    [
        (b"\xc1", MalformedHandshakeError),
        (codec.pack(["hello"]), MalformedHandshakeError),
        (codec.pack(["hello", 1, b"k" * 31, NONCE_B]), MalformedHandshakeError),
        (codec.pack(["hello", 1, BOB.public_key, b"n" * 8]), MalformedHandshakeError),
        (codec.pack(["hello", 1, BOB.public_key, NONCE_B, b"extra"]), MalformedHandshakeError),
        (codec.pack(["bye"]), MalformedHandshakeError),
        (codec.pack(["auth"]), MissingSignatureError),
        (codec.pack(["auth", b""]), MissingSignatureError),
        (b"\x00" * 2000, OversizedFrameError),
    ],
)
def test_malformed_handshake_message_is_refused(data, error):
    a = Handshake(ALICE, keyring(BOB), NONCE_A)
    a.start()
    with pytest.raises(error) as info:
        a.receive(data)
    assert info.value.reason in REFUSAL_REASONS
    assert a.state is HandshakeState.FAILED


def test_handshake_is_driven_in_order():
    a = Handshake(ALICE, keyring(BOB), NONCE_A)
    with pytest.raises(HandshakeStateError):
        a.receive(make_hello(BOB, NONCE_B))
    a.start()
    with pytest.raises(HandshakeStateError):
        a.start()
    with pytest.raises(ValueError):
        Handshake(ALICE, keyring(BOB), b"short nonce")


# -- reasons ------------------------------------------------------------------------------------


def test_every_refusal_has_a_distinct_reason_and_a_crdtmem_base():
    refusals = [
        getattr(framing, name)
        for name in framing.__all__
        if isinstance(getattr(framing, name), type) and issubclass(getattr(framing, name), Exception)
    ]
    assert len(refusals) >= 18
    for cls in refusals:
        assert isinstance(cls.reason, str) and cls.reason
        assert issubclass(cls, (DecodeError, AuthenticationError, RemoteProtocolError, LocalProtocolError))
    assert len(set(REFUSAL_REASONS)) == len(REFUSAL_REASONS)
