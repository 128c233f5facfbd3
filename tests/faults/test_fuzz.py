"""Hostile input at scale: every wire decoder refuses bad bytes with a documented error, fast,
and a refusal leaves no trace.

Targets: the frame layer (:meth:`FrameChannel.open_frame`, chunk reassembly included), the
handshake (:meth:`Handshake.receive`), session messages (:func:`decode_message`), delta batches
(:func:`open_batch`), a whole :class:`Node` fed
hostile frames on an authenticated session, and every CRDT decoder (``codec.decode_state`` per
tag, reusing the corpus and mutators of ``tests/core/test_decode_fuzz.py``).

Inputs: random bytes, valid messages with byte-level edits, valid messages with one node of
their msgpack tree replaced / dropped / duplicated, and — to get past the frame tags into the
parsers beneath — mutated payloads re-tagged with the right key.

Checks: only :class:`~crdtmem.errors.CrdtmemError` subclasses escape; no case runs past the
Hypothesis deadline or the SIGALRM watchdog; after a refusal the channel's sequence number and
reassembly buffer, the handshake's session, the reconciling replica's memory and the node's
memory and seen-set are exactly as before.

Scale: the default run tries a few thousand cases in all. Set ``CRDTMEM_FUZZ_EXAMPLES`` to run
that many examples per test (the report script uses it for >= 100,000 cases), and
``CRDTMEM_FUZZ_STATS`` to a path to get a JSON count of cases and refusal reasons per target.
"""

from __future__ import annotations

import collections
import json
import os
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crdtmem import Memory, codec
from crdtmem.clocks import CausalContext, Dot
from crdtmem.crdt import TYPES
from crdtmem.errors import CrdtmemError
from crdtmem.identity import Identity, Keyring
from crdtmem.protocol.batch import _signed_part, open_batch, seal_batch
from crdtmem.protocol.events import Send
from crdtmem.protocol.framing import PROTOCOL_VERSION, FrameChannel, SessionKeys, _tag
from crdtmem.protocol.handshake import Auth, Handshake, HandshakeState, decode_handshake_message
from crdtmem.protocol.compact import BatchCompressor, BatchExpander
from crdtmem.protocol.messages import Batches, CompactBatches, Sync, decode_message, encode_message
from crdtmem.protocol.node import Node, NodeConfig

from ..core.test_decode_fuzz import (
    ALL_VALID,
    DECODERS,
    byte_mutations,
    mutate_bytes,
    mutate_plain,
    watchdog,
)

# -- scale and bookkeeping ---------------------------------------------------------------------------

_OVERRIDE = int(os.environ.get("CRDTMEM_FUZZ_EXAMPLES", "0") or 0)
STATS_PATH = os.environ.get("CRDTMEM_FUZZ_STATS")


def fuzz(default: int) -> settings:
    return settings(
        max_examples=_OVERRIDE or default,
        deadline=timedelta(seconds=3),  # a decoder gone quadratic fails here
        suppress_health_check=list(HealthCheck),
        database=None,
    )


CASES: collections.Counter[str] = collections.Counter()
REFUSALS: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
def reason_of(exc: BaseException) -> str:
    return getattr(exc, "reason", None) or type(exc).__name__


def attempt(target: str, call: Callable[[], Any]) -> tuple[bool, Any]:
    """Run one hostile case: (True, result) if accepted, (False, exc) if refused with a CrdtmemError.

    Anything else — another exception type, a hang — fails the test.
    """
    CASES[target] += 1
    with watchdog(10.0):
        try:
            result = call()
        except CrdtmemError as exc:
            REFUSALS[target][reason_of(exc)] += 1
            return False, exc
    REFUSALS[target]["accepted"] += 1
    return True, result


@pytest.fixture(scope="module", autouse=True)
def _write_stats():
    yield
    if STATS_PATH:
        old: dict[str, Any] = {}
        if os.path.exists(STATS_PATH):
            with open(STATS_PATH) as f:
                old = json.load(f)
        cases = collections.Counter(old.get("cases", {}))
        cases.update(CASES)
        refusals = {k: collections.Counter(v) for k, v in old.get("refusals", {}).items()}
        for target, counter in REFUSALS.items():
            refusals.setdefault(target, collections.Counter()).update(counter)
        with open(STATS_PATH, "w") as f:
            json.dump({"cases": dict(cases), "refusals": {k: dict(v) for k, v in refusals.items()},
                       "total": sum(cases.values())}, f, indent=1, sort_keys=True)


# -- fixed keys and a corpus of valid wire messages ----------------------------------------------------

ALICE = Identity.from_private_bytes(b"\x01" * 32)
BOB = Identity.from_private_bytes(b"\x02" * 32)
STRANGER = Identity.from_private_bytes(b"\x03" * 32)
KEYRING = Keyring()
KEYRING.add(ALICE)
KEYRING.add(BOB)
ALICE_TO_BOB, BOB_TO_ALICE = bytes(range(32)), bytes(range(32, 64))
FRAME_CAP = 512  # small, so real messages span several chunks


def _alice_memory(clock: float = 1000.0) -> Memory:
    m = Memory(ALICE.peer_id, clock=lambda: clock)
    m.counter("c").increment(3)
    m.pncounter("p").decrement(2)
    m.set("s").add("x")
    m.set("s").add(("t", 1))
    m.set("s").remove("x")
    m.gset("g").add(b"bytes")
    m.register("r").assign({"k": [1, 2.5, None]})
    m.mvregister("v").assign("value")
    m.map("m").put("k", "v")
    m.doc("d").get("text", type=__import__("pycrdt").Text).insert(0, "hello")
    return m


def _batches() -> list[bytes]:
    m = _alice_memory()
    deltas = m.take_deltas()
    first = seal_batch(ALICE, 1, deltas[:3])
    second = seal_batch(ALICE, 2, deltas[3:], deps=(first.hash,))
    wires = [first.wire, second.wire, seal_batch(ALICE, 3, [("c", TYPES["gcounter"]())], deps=(second.hash,)).wire]
    return wires


BATCHES = _batches()


def _context() -> CausalContext:
    ctx = CausalContext()
    for dot in (Dot(ALICE.peer_id, 1), Dot(ALICE.peer_id, 2), Dot(BOB.peer_id, 5)):
        ctx.add(dot)
    return ctx






MESSAGES = [
    encode_message(Sync(_context())),
    encode_message(Sync(CausalContext(), reply=True)),
    encode_message(Batches(tuple(BATCHES))),
    encode_message(BatchCompressor().compact(tuple(BATCHES) * 2)),  # the second time by alias
]


def _frames() -> list[bytes]:
    sender = FrameChannel(SessionKeys(send=ALICE_TO_BOB, receive=BOB_TO_ALICE), max_frame_bytes=FRAME_CAP)
    frames: list[bytes] = []
    for message in (MESSAGES[0], MESSAGES[2], MESSAGES[1]):
        frames += sender.seal_message(message)
    return frames


FRAMES = _frames()

# -- mutators ------------------------------------------------------------------------------------------


def mutate_structure(draw: st.DrawFn, data: bytes) -> bytes:
    return codec.pack(mutate_plain(draw, msgpack.unpackb(data, raw=False)))


@st.composite
def hostile(draw: st.DrawFn, valid: list[bytes]) -> bytes:
    """Random bytes, or one of ``valid`` with byte-level or structural edits."""
    how = draw(st.sampled_from(["random", "bytes", "structure"]))
    if how == "random":
        return draw(st.binary(max_size=400))
    data = draw(st.sampled_from(valid))
    return mutate_bytes(draw, data) if how == "bytes" else mutate_structure(draw, data)


# -- frames -----------------------------------------------------------------------------------------


def _receiver() -> FrameChannel:
    return FrameChannel(SessionKeys(send=BOB_TO_ALICE, receive=ALICE_TO_BOB), max_frame_bytes=FRAME_CAP)


def _channel_state(channel: FrameChannel) -> tuple:
    r = channel.reassembler
    return channel.last_received_seq, r.last_message_id, tuple(r._parts), r.buffered_bytes


def _unpacks(data: bytes) -> bool:
    try:
        msgpack.unpackb(data, raw=False)
    except (ValueError, msgpack.UnpackException):
        return False
    return True


def _retag(seq: int, payload: bytes) -> bytes:
    tag = _tag(AESGCM(ALICE_TO_BOB), seq % 2**64, payload)
    return codec.pack([PROTOCOL_VERSION, seq, payload, tag])


@st.composite
def frame_case(draw: st.DrawFn) -> tuple[int, bytes]:
    """(how many valid frames precede, the hostile frame)."""
    k = draw(st.integers(0, len(FRAMES) - 1))
    how = draw(st.sampled_from(["random", "bytes", "structure", "retagged-chunk", "retagged-seq"]))
    if how == "random":
        return k, draw(st.binary(max_size=FRAME_CAP + 8))
    valid = FRAMES[k]
    if how == "bytes":
        return k, mutate_bytes(draw, valid)
    if how == "structure":
        return k, mutate_structure(draw, valid)
    payload = msgpack.unpackb(valid, raw=False)[2]
    if how == "retagged-chunk":  # a trusted sender's malformed or out-of-place chunk (flag byte + data)
        whole = payload[0] == 0 and _unpacks(payload[1:])  # a whole message: its structure can be edited
        if whole and draw(st.booleans()):
            return k, _retag(k + 1, payload[:1] + mutate_structure(draw, payload[1:]))
        return k, _retag(k + 1, mutate_bytes(draw, payload))
    seq = draw(st.sampled_from([0, k, k + 2, k + 100, 2**64 - 1, 2**64]))  # replay, gap, overflow
    try:
        return k, _retag(seq, payload)
    except (OverflowError, ValueError):
        return k, valid[:-1]


@fuzz(600)
@given(case=frame_case())
def test_hostile_frames_are_refused_without_moving_the_channel(case: tuple[int, bytes]) -> None:
    k, frame = case
    channel = _receiver()
    for valid in FRAMES[:k]:
        channel.open_frame(valid)
    before = _channel_state(channel)
    accepted, result = attempt("frame", lambda: channel.open_frame(frame))
    if not accepted:
        assert _channel_state(channel) == before, "a refused frame changed the channel"
    else:
        assert channel.last_received_seq == before[0] + 1


# -- handshake ---------------------------------------------------------------------------------------

_NONCE_A, _NONCE_B = b"\xaa" * 32, b"\xbb" * 32
_SECRET_A, _SECRET_B = b"\xa5" * 32, b"\xb5" * 32


def _handshakes() -> tuple[bytes, bytes]:
    alice = Handshake(ALICE, KEYRING, _NONCE_A, _SECRET_A)
    bob = Handshake(BOB, KEYRING, _NONCE_B, _SECRET_B)
    (hello_a,) = alice.start()
    (hello_b,) = bob.start()
    (auth_a,) = alice.receive(hello_b)
    return hello_a, auth_a


HELLO, AUTH = _handshakes()
STRANGER_HELLO = Handshake(STRANGER, KEYRING, b"\xcc" * 32, b"\xc5" * 32).start()[0]


@fuzz(500)
@given(after_hello=st.booleans(), data=hostile([HELLO, AUTH, STRANGER_HELLO]))
def test_hostile_handshake_messages_are_refused_without_a_session(after_hello: bool, data: bytes) -> None:
    bob = Handshake(BOB, KEYRING, _NONCE_B, _SECRET_B)
    bob.start()
    if after_hello:
        bob.receive(HELLO)
    accepted, _ = attempt("handshake", lambda: bob.receive(data))
    if not accepted:
        assert bob.state is HandshakeState.FAILED and bob.session_id is None
    elif bob.done:  # only the genuine auth (perhaps re-encoded) can finish the handshake
        assert after_hello and decode_handshake_message(data) == decode_handshake_message(AUTH)
        assert isinstance(decode_handshake_message(data), Auth)


# -- session messages -------------------------------------------------------------------------------


@fuzz(500)
@given(data=hostile(MESSAGES))
def test_hostile_session_messages_only_raise_documented_errors(data: bytes) -> None:
    attempt("message", lambda: decode_message(data, max_size=64 * 1024 * 1024))


def _expanded(data: bytes) -> Batches | None:
    message = decode_message(data, max_size=64 * 1024 * 1024)
    return BatchExpander().expand(message) if isinstance(message, CompactBatches) else None


@fuzz(500)
@given(data=hostile(MESSAGES[-1:]))
def test_hostile_compact_batches_only_raise_documented_errors(data: bytes) -> None:
    attempt("compact", lambda: _expanded(data))


# -- delta batches -----------------------------------------------------------------------------------


@st.composite
def batch_case(draw: st.DrawFn) -> bytes:
    how = draw(st.sampled_from(["plain", "resigned-body", "forged-author", "untrusted"]))
    if how == "plain":
        return draw(hostile(BATCHES))
    author, seq, deps, body, _ = msgpack.unpackb(draw(st.sampled_from(BATCHES)), raw=False)
    signer = ALICE
    if how == "resigned-body":  # the author's own key over a malformed body
        body = mutate_bytes(draw, body) if draw(st.booleans()) else mutate_structure(draw, body)
    elif how == "forged-author":  # Bob signs Alice's deltas as his own
        author, signer = BOB.peer_id, BOB
    else:
        author, signer = STRANGER.peer_id, STRANGER
    return codec.pack([author, seq, deps, body, signer.sign(_signed_part(author, seq, deps, body))])


@fuzz(600)
@given(wire=batch_case())
def test_hostile_batches_are_refused_or_write_only_as_their_author(wire: bytes) -> None:
    accepted, batch = attempt("batch", lambda: open_batch(wire, KEYRING, __import__("crdtmem.identity").identity.verify,
                                                          max_size=1 << 20))
    if accepted:
        assert batch.author in (ALICE.peer_id, BOB.peer_id)
        probe = Memory("probe-replica", clock=lambda: 0.0)
        for name, delta in batch.deltas:  # an accepted batch applies to a fresh replica
            attempt("batch-apply", lambda: probe.apply_delta(name, delta, batch.author))


# -- a whole node on an authenticated session ------------------------------------------------------------


def _node_with_mallory() -> tuple[Node, Memory, FrameChannel]:
    """A Node (Bob) with one accepted connection from Alice; returns Alice's frame channel."""
    memory = Memory(BOB.peer_id, clock=lambda: 5000.0)
    node = Node(memory, BOB, KEYRING, rng=random.Random(3), config=NodeConfig(max_frame_bytes=FRAME_CAP))
    memory.counter("c").increment(2)  # written once the node took its incarnation
    memory.set("s").add("bob")
    node.flush(0.0)
    node.open("conn", 0.0, dialer=False)
    hs = Handshake(ALICE, KEYRING, _NONCE_A, _SECRET_A)
    sent = [a.data for a in node.take_actions() if isinstance(a, Send)]
    for data in hs.start():
        node.receive("conn", data, 0.0)
    for reply in hs.receive(sent[0]):
        node.receive("conn", reply, 0.0)
    sent = [a.data for a in node.take_actions() if isinstance(a, Send)]
    hs.receive(sent[0])
    assert hs.done and node.peers() == {"conn": ALICE.peer_id}
    node.take_events()
    return node, memory, FrameChannel(hs.keys, peer_id=hs.peer_id, max_frame_bytes=FRAME_CAP)


@st.composite
def node_case(draw: st.DrawFn) -> tuple[str, bytes]:
    """A hostile payload for a validly signed message: ("message", bytes) or raw ("frame", bytes)."""
    how = draw(st.sampled_from(["message", "batch", "frame"]))
    if how == "frame":
        return "frame", draw(hostile(FRAMES))
    if how == "batch":
        return "message", encode_message(Batches((draw(batch_case()),)))
    return "message", draw(hostile(MESSAGES))


@fuzz(300)
@given(case=node_case())
def test_a_node_refuses_hostile_input_without_state_change(case: tuple[str, bytes]) -> None:
    node, memory, channel = _node_with_mallory()
    before = (memory.snapshot(), node.seen.copy().vv, frozenset(node.seen.cloud))
    layer, data = case
    frames = [data] if layer == "frame" else channel.seal_message(data)

    def feed() -> None:  # Node.receive never raises: it refuses by closing the connection
        for frame in frames:
            node.receive("conn", frame, 1.0)

    attempt("node", feed)
    events = node.take_events()
    refusals = [e for e in events if type(e).__name__ == "Refused"]
    applied = {Dot(e.author, e.seq) for e in events if type(e).__name__ == "BatchApplied" and not e.local}
    for event in refusals:
        REFUSALS["node"][event.reason] += 1
    after = (memory.snapshot(), node.seen.copy().vv, frozenset(node.seen.cloud))
    if applied:
        # a message may carry several independently signed batches: those before the bad one
        # are applied whole and recorded (seen + journal event); nothing else may change
        assert {d for d in applied if d not in before[2] and before[1].get(d.replica, 0) < d.counter} == applied
        assert all(d in node.seen for d in applied)
        return
    if refusals and not node.peers() and after != before:  # dropped: nothing may have changed
        raise AssertionError(f"refused ({refusals[0].reason}) but the replica changed")


def test_a_batch_whose_second_delta_clashes_in_type_is_applied_whole_and_the_link_kept() -> None:
    """A trusted author's batch whose second delta is another type than the node holds."""
    node, memory, channel = _node_with_mallory()
    mallory = Memory(ALICE.peer_id, clock=lambda: 6000.0)
    mallory.gset("fresh").add("x")
    mallory.gset("c").add("y")  # "c" is a counter at the node: a type clash, not a fault
    batch = seal_batch(ALICE, 1, mallory.take_deltas())
    for frame in channel.seal_message(encode_message(Batches((batch.wire,)))):
        node.receive("conn", frame, 1.0)
    assert node.peers(), "a validly signed batch dropped the connection"
    assert [type(e).__name__ for e in node.take_events()].count("TypeClash") == 1
    assert memory.gset("fresh").value == {"x"} and memory.gset("c").value == {"y"}
    assert memory.conflicts() == {"c": ["gcounter", "gset"]}


# -- every CRDT decoder (the corpus and mutators of tests/core/test_decode_fuzz.py) ---------------------------


@st.composite
def state_case(draw: st.DrawFn) -> bytes:
    how = draw(st.sampled_from(["random", "bytes", "structure"]))
    if how == "random":
        return draw(st.binary(max_size=300))
    if how == "bytes":
        return draw(byte_mutations())
    _, data = draw(st.sampled_from([(k, d) for k, d in ALL_VALID if k != "value"]))
    return mutate_structure(draw, data)


@fuzz(300)
@given(data=state_case())
def test_every_crdt_decoder_only_raises_documented_errors(data: bytes) -> None:
    for decoder in DECODERS:
        attempt(decoder.__name__, lambda: decoder(data))


# -- atheris (coverage-guided), when installed: python -m tests.faults.test_fuzz RUNS ------------------


def _atheris_one_input(data: bytes) -> None:
    if not data:
        return
    target, data = data[0] % 5, data[1:]
    if target == 0:
        attempt("atheris-frame", lambda: _receiver().open_frame(data))
    elif target == 1:
        hs = Handshake(BOB, KEYRING, _NONCE_B, _SECRET_B)
        hs.start()
        attempt("atheris-handshake", lambda: hs.receive(data))
    elif target == 2:
        attempt("atheris-message", lambda: decode_message(data, max_size=1 << 20))
    elif target == 3:
        from crdtmem.identity import verify

        attempt("atheris-batch", lambda: open_batch(data, KEYRING, verify, max_size=1 << 20))
    else:
        attempt("atheris-state", lambda: codec.decode_state(data))


def _instrument_crdtmem(atheris: Any) -> None:
    """Coverage-instrument crdtmem's own functions only (instrument_all takes minutes)."""
    import inspect
    import sys

    done: set[int] = set()

    def visit(obj: Any) -> None:
        for value in list(vars(obj).values()):
            func = getattr(value, "__func__", value)
            if inspect.isfunction(func) and func.__module__.startswith("crdtmem") and id(func) not in done:
                done.add(id(func))
                try:
                    atheris.instrument_func(func)
                except Exception:  # noqa: BLE001 - some code objects cannot be patched; skip them
                    pass
            elif inspect.isclass(value) and value.__module__.startswith("crdtmem") and id(value) not in done:
                done.add(id(value))
                visit(value)

    for name, module in list(sys.modules.items()):
        if name.startswith("crdtmem") and module is not None:
            visit(module)


def _main() -> None:  # pragma: no cover - driven by simulations/faults_report.py
    import sys

    import atheris

    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    out = sys.argv[2] if len(sys.argv) > 2 else None

    def report() -> None:
        if out:
            with open(out, "w") as f:
                json.dump({"cases": dict(CASES), "refusals": {k: dict(v) for k, v in REFUSALS.items()},
                           "total": sum(CASES.values())}, f)

    calls = 0

    def one_input(data: bytes) -> None:  # libFuzzer ends with _exit: save the counts as we go
        nonlocal calls
        _atheris_one_input(data)
        calls += 1
        if calls % 1000 == 0 or calls >= runs:
            report()
    corpus_dir = os.environ.get("CRDTMEM_ATHERIS_CORPUS")
    args = [sys.argv[0], f"-runs={runs}", "-max_len=2048", "-timeout=10"]
    if corpus_dir:
        os.makedirs(corpus_dir, exist_ok=True)
        for i, seed in enumerate([*FRAMES, HELLO, AUTH, *MESSAGES, *BATCHES]):
            for t in range(5):
                with open(os.path.join(corpus_dir, f"seed-{i}-{t}"), "wb") as f:
                    f.write(bytes([t]) + seed)
        args.append(corpus_dir)
    _instrument_crdtmem(atheris)
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    _main()
