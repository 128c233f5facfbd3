"""Anti-entropy sessions: two diverged replicas exchange Reconciler messages and converge."""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Callable

import pycrdt
import pytest

from crdtmem import Memory, codec
from crdtmem.clocks import CausalContext, Dot
from crdtmem.crdt import ORMap, ORSet
from crdtmem.crdt.dotkernel import DotKernel
from crdtmem.errors import DecodeError, LocalProtocolError, RemoteProtocolError
from crdtmem.merkle import MerkleIndex
from crdtmem.protocol.antientropy import (
    Reconciler,
    Tuning,
    decode_message,
    encode_message,
)
from crdtmem.values import encode_value

from ..writes import random_write


class Pair:
    """Two replicas with their indexes, and a way to run one session between them."""

    def __init__(self, a: Memory, b: Memory, bits: int = 3) -> None:
        self.a, self.b = a, b
        self.ia, self.ib = MerkleIndex(a, bits=bits), MerkleIndex(b, bits=bits)

    def reconcilers(self, salt: int = 1, a_starts: bool = True, tuning: Tuning | None = None):
        ra = Reconciler(self.a, self.ia, initiator=a_starts, origin=self.b.replica_id, salt=salt, tuning=tuning)
        rb = Reconciler(self.b, self.ib, initiator=not a_starts, origin=self.a.replica_id, salt=salt, tuning=tuning)
        return ra, rb

    def run(
        self,
        salt: int = 1,
        a_starts: bool = True,
        between: Callable[[int, str], None] | None = None,
        tuning: Tuning | None = None,
    ) -> tuple[Reconciler, Reconciler, list]:
        """Exchange messages until both are done; ``between(flight, sender)`` runs before each delivery."""
        ra, rb = self.reconcilers(salt, a_starts, tuning)
        first, second = (ra, rb) if a_starts else (rb, ra)
        outgoing, receiver, flight, log = first.start(), second, 0, []
        while outgoing:
            if between is not None:
                between(flight, "a" if receiver is rb else "b")
            replies = []
            for msg in outgoing:
                data = encode_message(msg)
                log.append(data)
                replies += receiver.receive(decode_message(data))
            outgoing, receiver, flight = replies, (ra if receiver is rb else rb), flight + 1
        assert ra.done and rb.done
        return ra, rb, log

    def assert_converged(self) -> None:
        self.ia.refresh()
        self.ib.refresh()
        assert self.a.values() == self.b.values()
        assert self.a.snapshot() == self.b.snapshot()
        assert self.ia.root() == self.ib.root()


def diverged(seed: int, base: int = 150, writes: int = 40) -> tuple[Pair, Memory]:
    """Two replicas from one base, each with ``writes`` random writes the other never got.

    Also returns a third memory holding the full join of both (what a perfect sync gives).
    """
    rng = random.Random(seed)
    a = Memory("alice")
    for _ in range(base):
        random_write(a, rng, universe=60)
    b = Memory.from_snapshot("bob", a.snapshot())
    pair = Pair(a, b)
    for _ in range(writes):
        random_write(a, rng, universe=60)
    for _ in range(writes):
        random_write(b, rng, universe=60)
    a.take_deltas()
    b.take_deltas()
    union = Memory.from_snapshot("carol", a.snapshot())
    union.merge(b)
    return pair, union


def flat(memory: Memory) -> dict:
    return memory.values()


# -- convergence ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(25))
def test_diverged_replicas_converge_to_their_join(seed: int) -> None:
    pair, union = diverged(seed, base=seed * 7, writes=5 + seed * 3)
    ra, rb, _ = pair.run(salt=seed, a_starts=seed % 2 == 0)
    pair.assert_converged()
    assert flat(pair.a) == flat(union)
    assert True in (ra.converged, rb.converged)
    assert ra.stats["round_trips"] == rb.stats["round_trips"]


def test_equal_replicas_finish_in_one_round_trip() -> None:
    pair, _ = diverged(3, writes=0)
    ra, rb, log = pair.run()
    assert len(log) == 2 and ra.converged and rb.converged
    assert ra.stats["round_trips"] == 1
    assert ra.stats["repaired_names"] == rb.stats["repaired_names"] == []


@pytest.mark.parametrize("a_starts", [True, False])
def test_an_empty_replica_receives_everything(a_starts: bool) -> None:
    rng = random.Random(9)
    a = Memory("alice")
    for _ in range(300):
        random_write(a, rng, universe=60)
    pair = Pair(a, Memory("bob"))
    pair.run(a_starts=a_starts)
    pair.assert_converged()


def test_a_second_session_after_convergence_is_equal_at_once() -> None:
    pair, _ = diverged(4)
    pair.run(salt=11)
    ra, rb, log = pair.run(salt=12)
    assert len(log) == 2 and ra.converged


# -- removals and concurrent adds ----------------------------------------------------------------


def _shared_set(elements: range) -> Pair:
    a = Memory("alice")
    for x in elements:
        a.set("s").add(x)
        a.map("m").put(x, "v")
    return Pair(a, Memory.from_snapshot("bob", a.snapshot()))


@pytest.mark.parametrize("a_starts", [True, False])
@pytest.mark.parametrize("size", [5, 3000])
def test_removal_on_either_side_is_repaired(a_starts: bool, size: int) -> None:
    pair = _shared_set(range(size))
    pair.a.set("s").remove(1)
    pair.a.map("m").remove(1)
    pair.b.set("s").remove(2)
    pair.b.map("m").remove(2)
    pair.run(a_starts=a_starts)
    pair.assert_converged()
    for memory in (pair.a, pair.b):
        assert 1 not in memory.set("s") and 2 not in memory.set("s")
        assert 1 not in memory.map("m") and 2 not in memory.map("m")
        assert 3 in memory.set("s")


@pytest.mark.parametrize("a_starts", [True, False])
@pytest.mark.parametrize("size", [1, 3, 10, 30, 100, 300, 2000])
def test_removal_is_repaired_when_the_remover_holds_nothing_else_that_differs(a_starts: bool, size: int) -> None:
    # Only the removed entry differs (a removal leaves the remover's context unchanged). The
    # sizes and starters vary which side ends the descent, so each side gets to send first.
    pair = _shared_set(range(size))
    pair.a.set("s").remove(0)
    pair.run(a_starts=a_starts)
    pair.assert_converged()
    assert 0 not in pair.b.set("s")


@pytest.mark.parametrize("a_starts", [True, False])
def test_concurrent_add_survives_remove(a_starts: bool) -> None:
    pair = _shared_set(range(50))
    pair.a.set("s").remove(5)
    pair.b.set("s").add(5)  # a fresh dot alice never saw
    pair.a.map("m").remove(6)
    pair.b.map("m").put(6, "again")
    pair.run(a_starts=a_starts)
    pair.assert_converged()
    assert 5 in pair.a.set("s") and 5 in pair.b.set("s")
    assert pair.a.map("m").get(6) == "again"


def test_concurrent_adds_of_one_element_keep_both_dots() -> None:
    pair = Pair(Memory("alice"), Memory("bob"))
    pair.a.set("s").add("x")
    pair.b.set("s").add("x")
    pair.run()
    pair.assert_converged()
    assert len(pair.a.state("s").kernel.entries[encode_value("x")]) == 2
    pair.a.set("s").remove("x")  # sees both dots: removes the element everywhere
    pair.run(salt=2)
    pair.assert_converged()
    assert "x" not in pair.b.set("s")


# -- writes during a session (the causal-context trap) -------------------------------------------


@pytest.mark.parametrize("writer", ["a", "b"])
@pytest.mark.parametrize("a_starts", [True, False])
def test_write_during_session_is_not_lost(writer: str, a_starts: bool) -> None:
    """A dot written mid-session must not reach the peer's context without its entry.

    Otherwise delivering the write's own delta afterwards would be ignored (the peer has
    "seen" the dot) and the element would be silently lost there.
    """
    for when in range(12):
        pair = _shared_set(range(400))
        pair.a.set("s").add("a-only")
        pair.b.set("s").add("b-only")
        source = pair.a if writer == "a" else pair.b
        target = pair.b if writer == "a" else pair.a
        source.take_deltas()
        late: list = []

        def between(flight: int, _sender: str) -> None:
            if flight == when:
                source.set("s").add("late")
                late.extend(source.take_deltas())

        pair.run(a_starts=a_starts, between=between)
        for name, delta in late:  # gossip catches up after the session
            target.apply_delta(name, delta, source.replica_id)
        if late:
            assert "late" in pair.a.set("s") and "late" in pair.b.set("s"), f"lost at flight {when}"
        pair.assert_converged()


@pytest.mark.parametrize("guards", ["context check only", "neither"])
def test_the_trap_is_real_without_the_guards(guards: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two guards keep a mid-session write: sending leaves changed since the session began, and
    holding back context the peer cannot account for. The second alone still saves the write
    (the peer vouches for it in ae.final); with neither, the element is silently lost."""
    from crdtmem.protocol.antientropy import repair

    pair = _shared_set(range(400))
    pair.a.set("s").add("a-only")
    pair.a.take_deltas()
    monkeypatch.setattr(MerkleIndex, "changed_since", lambda self, mark: set())
    if guards == "neither":
        monkeypatch.setattr(repair, "count_unseen", lambda ctx, seen: 0)
    late: list = []

    def between(flight: int, _sender: str) -> None:
        if flight == 2:
            pair.a.set("s").add("late")
            late.extend(pair.a.take_deltas())

    pair.run(between=between)
    for name, delta in late:
        pair.b.apply_delta(name, delta, "alice")
    assert "late" in pair.a.set("s")
    if guards == "neither":
        assert "late" not in pair.b.set("s")  # bob adopted alice's context without the entry
    else:
        assert "late" in pair.b.set("s")


@pytest.mark.parametrize("seed", range(30))
def test_fingerprint_collisions_never_lose_data(seed: int) -> None:
    """With 1-byte fingerprints the descent misses differences often; a miss may delay a repair
    but must never turn a live element into a removed one, and later sessions converge."""
    rng = random.Random(seed)
    tiny = Tuning(fp_width=1, id_width=1, leaf_width=1, leaf_list_max=rng.randrange(8))
    memories = [Memory(f"r{i}") for i in range(3)]
    bits = rng.choice([1, 2, 3])
    indexes = [MerkleIndex(m, bits=bits) for m in memories]
    reference = Memory("ref")

    def write() -> None:
        i = rng.randrange(3)
        random_write(memories[i], rng, universe=40)
        for name, delta in memories[i].take_deltas():
            reference.apply_delta(name, delta.copy(), f"r{i}")
            for j in range(3):
                if j != i and rng.random() < 0.3:  # lossy gossip
                    memories[j].apply_delta(name, delta.copy(), f"r{i}")

    def no_loss(memory: Memory) -> None:
        for name in reference.names():
            ref_state, state = reference.state(name), memory.state(name)
            if not isinstance(ref_state, (ORSet, ORMap)) or type(state) is not type(ref_state):
                continue
            for key, dots in ref_state.kernel.entries.items():
                for dot in dots:  # live everywhere it is known: no replica may hold it removed
                    assert dot not in state.kernel.ctx or dot in state.kernel.entries.get(key, {})

    def session(i: int, j: int, writes: bool) -> None:
        ri = Reconciler(memories[i], indexes[i], initiator=True, origin=f"r{j}", salt=rng.getrandbits(64), tuning=tiny)
        rj = Reconciler(memories[j], indexes[j], initiator=False, origin=f"r{i}", tuning=tiny)
        outgoing, receiver = ri.start(), rj
        while outgoing:
            if writes and rng.random() < 0.3:
                write()
            replies = []
            for msg in outgoing:
                replies += receiver.receive(codec.unpack(codec.pack(msg)))
                no_loss(receiver.memory)
            outgoing, receiver = replies, (ri if receiver is rj else rj)

    for _ in range(rng.randrange(20, 120)):
        write()
    for _ in range(6):
        session(*rng.sample(range(3), 2), writes=True)
    for _ in range(30):
        for i, j in ((0, 1), (0, 2), (1, 2)):
            session(i, j, writes=False)
        if len({m.snapshot() for m in memories}) == 1:
            break
    assert len({m.snapshot() for m in memories}) == 1

    def shown(memory: Memory) -> dict:  # objects only ever read (created empty) do not count
        return {k: v for k, v in memory.values().items() if v not in (frozenset(), {}, None, 0)}

    assert shown(memories[0]) == shown(reference)


@pytest.mark.parametrize("seed", range(12))
def test_random_writes_and_gossip_during_a_session_all_survive(seed: int) -> None:
    rng = random.Random(seed)
    pair, _ = diverged(seed + 100, base=120, writes=30)
    pending: dict[str, list] = {"a": [], "b": []}

    def between(flight: int, _sender: str) -> None:
        for side, memory in (("a", pair.a), ("b", pair.b)):
            for _ in range(rng.randrange(4)):
                random_write(memory, rng, universe=60)
            pending[side].extend(memory.take_deltas())
        if rng.random() < 0.5 and pending["a"]:  # some gossip arrives mid-session
            name, delta = pending["a"].pop(0)
            pair.b.apply_delta(name, delta, "alice")

    pair.run(salt=seed, a_starts=seed % 2 == 1, between=between)
    for name, delta in pending["a"]:
        pair.b.apply_delta(name, delta, "alice")
    for name, delta in pending["b"]:
        pair.a.apply_delta(name, delta, "bob")
    pair.assert_converged()


# -- strict decoding -----------------------------------------------------------------------------


def _mutations(msg: list) -> list:
    """Malformed variants of a real message."""
    out = [[], ["ae.nope"], msg[:-1], [*msg, 0], "ae.step", None, [1, *msg[1:]]]
    for i in range(1, len(msg)):
        for junk in (None, "x", -1, 2**70, [[]], {"a": 1}, b"\xff" * 3):
            variant = copy.deepcopy(msg)
            variant[i] = junk
            out.append(variant)
        if isinstance(msg[i], bytes):
            variant = copy.deepcopy(msg)
            variant[i] = msg[i] + b"\x00"
            out.append(variant)
            if msg[i]:
                variant = copy.deepcopy(msg)
                variant[i] = msg[i][:-1]
                out.append(variant)
        if isinstance(msg[i], list) and len(msg[i]) == 2 and isinstance(msg[i][1], list):  # repair block
            table, rows = msg[i]
            for row_junk in ([["s"]], [["", "orset", [[], [[], []]], [], b""]], rows + rows, rows[::-1] * 2):
                variant = copy.deepcopy(msg)
                variant[i] = [table, row_junk]
                out.append(variant)
            if rows:
                for field, junk in ((0, 7), (1, "nosuchtype"), (2, [[["k"]], None]), (3, [1]), (4, b"\xff\xff\xff")):
                    variant = copy.deepcopy(msg)
                    variant[i][1][0][field] = junk
                    out.append(variant)
                variant = copy.deepcopy(msg)
                variant[i][0] = ["only-one"] if table else ["x", "x"]
                out.append(variant)
                variant = copy.deepcopy(msg)
                variant[i][1][0][2] = [-99]
                out.append(variant)
        if isinstance(msg[i], list) and msg[i] and all(type(c) is int for c in msg[i]):  # leaf counts
            variant = copy.deepcopy(msg)
            variant[i] = [c + 1 for c in msg[i]]
            out.append(variant)
    return out


def test_malformed_messages_raise_decode_error_and_change_nothing() -> None:
    def fresh() -> Pair:
        pair, _ = diverged(5, base=200, writes=15)
        pair.a.set("s").remove(3) if 3 in pair.a.set("s") else pair.a.set("s").add(3)
        return pair

    reference = fresh()
    _, _, log = reference.run(salt=5)
    messages = [codec.unpack(data) for data in log]
    kinds = {m[0] for m in messages}
    assert {"ae.begin", "ae.step", "ae.repair", "ae.reply"} <= kinds
    checked = 0
    for target in range(len(messages)):
        pair = fresh()
        ra, rb = pair.reconcilers(salt=5)
        ra.start()
        receivers = [rb, ra] * len(messages)
        for msg in messages[:target]:
            receivers.pop(0).receive(codec.unpack(codec.pack(msg)))
        receiver = receivers.pop(0)
        before = (pair.a.snapshot(), pair.b.snapshot())
        for bad in _mutations(messages[target]):
            try:
                receiver.receive(bad)
            except DecodeError:
                checked += 1
            except RemoteProtocolError:
                pass  # well-formed but not allowed now (e.g. another message kind)
            else:
                raise AssertionError(f"accepted malformed {bad!r:.200}")
            assert (pair.a.snapshot(), pair.b.snapshot()) == before
        # The session is intact: the genuine message still completes it.
        for msg in messages[target:]:
            receiver.receive(codec.unpack(codec.pack(msg)))
            receiver = receivers.pop(0)
        pair.assert_converged()
    assert checked > 200


def test_bitmap_padding_bits_must_be_zero() -> None:
    pair, _ = diverged(2, writes=10)
    ra, rb = pair.reconcilers()
    begin = ra.start()[0]
    step = rb.receive(begin)[0]
    assert step[0] == "ae.step"
    bits = step[1]  # answers to ae.begin's child fingerprints: 8 bits, a full byte; pad with one
    padded = [*step]
    padded[1] = bits + b"\x02"
    with pytest.raises(DecodeError):
        ra.receive(padded)
    kinds, n_items = step[4], sum(bin(b).count("1") for b in step[1])
    if n_items % 8:  # bit 7 of the last byte is padding
        bad = [*step]
        bad[4] = kinds[:-1] + bytes([kinds[-1] | 0x80])
        with pytest.raises(DecodeError):
            ra.receive(bad)
    ra.receive(step)  # still fine afterwards


def test_garbage_bytes_do_not_decode() -> None:
    rng = random.Random(1)
    for _ in range(200):
        data = rng.randbytes(rng.randrange(1, 40))
        try:
            msg = decode_message(data)
        except DecodeError:
            continue
        assert msg[0].startswith("ae.")  # a lucky parse is still checked per field by receive


# -- misuse and mismatches -----------------------------------------------------------------------


def test_protocol_misuse_is_reported() -> None:
    pair, _ = diverged(1, writes=3)
    ra, rb = pair.reconcilers()
    with pytest.raises(LocalProtocolError):
        rb.start()
    first = ra.start()
    with pytest.raises(LocalProtocolError):
        ra.start()
    with pytest.raises(RemoteProtocolError):
        ra.receive(first[0])  # the initiator never receives ae.begin
    replies = rb.receive(first[0])
    with pytest.raises(RemoteProtocolError):
        rb.receive(first[0])  # a second ae.begin
    while replies:
        replies = [r for m in replies for r in ra.receive(m)] if not ra.done else []
        replies, ra, rb = replies, rb, ra
    with pytest.raises(RemoteProtocolError):
        (ra if ra.done else rb).receive(["ae.equal"])


def test_fan_out_mismatch_is_refused() -> None:
    a, b = Memory("alice"), Memory("bob")
    a.set("s").add(1)
    ra = Reconciler(a, MerkleIndex(a, bits=3), initiator=True, origin="bob")
    rb = Reconciler(b, MerkleIndex(b, bits=4), initiator=False, origin="alice")
    with pytest.raises(RemoteProtocolError):
        rb.receive(ra.start()[0])


def test_a_name_held_as_two_types_is_repaired_into_both_types_on_both_sides() -> None:
    pair = Pair(Memory("alice"), Memory("bob"))
    pair.a.set("x").add(1)
    pair.b.counter("x").increment()
    pair.a.set("ok").add(1)
    ra, rb, _ = pair.run()
    assert "x" in ra.stats["conflicts"] or "x" in rb.stats["conflicts"]
    for _ in range(3):
        if pair.a.snapshot() == pair.b.snapshot():
            break
        pair.run()
    pair.assert_converged()
    assert pair.b.set("ok").value == frozenset({1})
    for memory in (pair.a, pair.b):
        assert memory.conflicts() == {"x": ["gcounter", "orset"]}
        assert memory.value("x") == 1 and memory.set("x").value == frozenset({1})


def test_documents_converge_with_concurrent_edits() -> None:
    a = Memory("alice")
    a.doc("d").get("text", type=pycrdt.Text).insert(0, "hello world")
    pair = Pair(a, Memory.from_snapshot("bob", a.snapshot()))
    pair.a.doc("d").get("text", type=pycrdt.Text).insert(0, "A: ")
    pair.b.doc("d").get("text", type=pycrdt.Text).insert(11, " and B")
    pair.run()
    pair.assert_converged()
    text = pair.a.doc("d").get("text", type=pycrdt.Text)
    assert "A: " in str(text) and " and B" in str(text)


# -- scale ---------------------------------------------------------------------------------------


def _big_set(replica: str, n: int) -> Memory:
    """A memory holding one OR-Set of ``n`` ~100-byte elements, built in one join."""
    entries = {
        encode_value(f"fact-{i:07d} " + "the agent noted something about the task " * 2): {Dot("seed", i + 1): None}
        for i in range(n)
    }
    memory = Memory(replica)
    memory.apply_delta("s", ORSet(DotKernel(entries, CausalContext({"seed": n}))), "seed")
    return memory


def test_round_trips_stay_within_log16_n_plus_two_at_100k() -> None:
    n = 100_000
    limit = math.ceil(math.log(n, 16)) + 2
    pair = Pair(_big_set("alice", n), _big_set("bob", n))
    rng = random.Random(7)
    for d in (1, 1000):  # the replicas are equal again after each session
        for i in range(d):
            memory = pair.a if i % 2 else pair.b
            if i % 10 == 9:
                memory.set("s").remove(f"fact-{rng.randrange(n):07d} " + "the agent noted something about the task " * 2)
            else:
                memory.set("s").add(f"new-{d}-{i}")
        ra, rb, _ = pair.run(salt=d)
        assert ra.stats["round_trips"] <= limit, (d, ra.stats)
        pair.ia.refresh()
        pair.ib.refresh()
        assert pair.ia.root() == pair.ib.root()
        assert pair.a.state("s") == pair.b.state("s")
