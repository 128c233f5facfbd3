"""What each type does under concurrency, and how Memory reports misuse."""

from __future__ import annotations

import itertools

import pycrdt
import pytest

from crdtmem import DecodeError, Memory, RollbackError, TypeMismatchError, codec
from crdtmem.clocks import HybridClock
from crdtmem.crdt import Document, GCounter

from ..inprocess import exchange


def send(source: Memory, *targets: Memory) -> None:
    """Ship ``source``'s pending deltas to ``targets`` through the codec, as the wire would."""
    for name, delta in source.take_deltas():
        data = codec.encode_state(delta)
        for target in targets:
            target.apply_delta(name, codec.decode_state(data), source.replica_id)


@pytest.fixture
def pair() -> tuple[Memory, Memory]:
    return Memory("alice"), Memory("bob")


# -- OR-Set ---------------------------------------------------------------------------------------


def test_concurrent_add_survives_remove(pair: tuple[Memory, Memory]) -> None:
    alice, bob = pair
    alice.set("tags").add("urgent")
    exchange(alice, bob)
    bob.set("tags").remove("urgent")  # bob removes the add he saw...
    alice.set("tags").add("urgent")  # ...while alice adds it again, unseen by bob
    exchange(alice, bob)
    assert "urgent" in alice.set("tags")
    assert "urgent" in bob.set("tags")


def test_remove_of_an_observed_add_removes_everywhere(pair: tuple[Memory, Memory]) -> None:
    alice, bob = pair
    alice.set("tags").add("a")
    bob.set("tags").add("a")
    exchange(alice, bob)
    bob.set("tags").remove("a")  # bob has seen both adds
    exchange(alice, bob)
    assert alice.set("tags").value == bob.set("tags").value == frozenset()


def test_removed_elements_leave_no_tombstones(pair: tuple[Memory, Memory]) -> None:
    alice, bob = pair
    for i in range(50):
        alice.set("s").add(i)
        alice.set("s").remove(i)
    exchange(alice, bob)
    assert bob.state("s").kernel.entries == {}
    assert bob.state("s").kernel.ctx.vv == {"alice": 50}


# -- registers ------------------------------------------------------------------------------------


def test_lww_equal_timestamps_tie_break_by_replica_id(pair: tuple[Memory, Memory]) -> None:
    alice, bob = pair  # both clocks read 0.0: the hybrid timestamps come out equal
    alice.register("r").assign("from alice")
    bob.register("r").assign("from bob")
    assert alice.state("r").stamp == bob.state("r").stamp
    exchange(alice, bob)
    assert alice.register("r").value == bob.register("r").value == "from bob"  # "bob" > "alice"


def test_lww_later_timestamp_wins_over_greater_replica_id() -> None:
    alice = Memory("alice", clock=lambda: 2000.0)
    bob = Memory("bob", clock=lambda: 1000.0)
    bob.register("r").assign("older")
    alice.register("r").assign("newer")
    exchange(alice, bob)
    assert alice.register("r").value == bob.register("r").value == "newer"


def test_lww_write_that_saw_another_wins_even_with_a_slow_clock() -> None:
    fast = Memory("zed", clock=lambda: 5000.0)
    slow = Memory("amy", clock=lambda: 1.0)
    fast.register("r").assign("first")
    send(fast, slow)
    slow.register("r").assign("second")  # causally after, though its clock is far behind
    send(slow, fast)
    assert fast.register("r").value == slow.register("r").value == "second"


def test_mv_register_keeps_concurrent_values(pair: tuple[Memory, Memory]) -> None:
    alice, bob = pair
    alice.mvregister("plan").assign("ship friday")
    bob.mvregister("plan").assign("ship monday")
    exchange(alice, bob)
    assert alice.mvregister("plan").values == bob.mvregister("plan").values == {"ship friday", "ship monday"}


def test_mv_register_assign_that_saw_both_replaces_them(pair: tuple[Memory, Memory]) -> None:
    alice, bob = pair
    alice.mvregister("plan").assign("friday")
    bob.mvregister("plan").assign("monday")
    exchange(alice, bob)
    alice.mvregister("plan").assign("tuesday")
    exchange(alice, bob)
    assert alice.mvregister("plan").values == bob.mvregister("plan").values == {"tuesday"}


# -- OR-Map ---------------------------------------------------------------------------------------


def test_map_put_concurrent_with_remove_survives(pair: tuple[Memory, Memory]) -> None:
    alice, bob = pair
    alice.map("m").put("k", 1)
    exchange(alice, bob)
    bob.map("m").remove("k")
    alice.map("m").put("k", 2)
    exchange(alice, bob)
    assert alice.map("m").value == bob.map("m").value == {"k": 2}


def test_map_concurrent_puts_resolve_by_timestamp() -> None:
    early = Memory("zed", clock=lambda: 100.0)
    late = Memory("amy", clock=lambda: 200.0)
    early.map("m").put("k", "early")
    late.map("m").put("k", "late")
    exchange(early, late)
    assert early.map("m").get("k") == late.map("m").get("k") == "late"


def test_map_concurrent_puts_with_equal_timestamps_resolve_by_replica_id(pair: tuple[Memory, Memory]) -> None:
    alice, bob = pair
    alice.map("m").put("k", "a")
    bob.map("m").put("k", "b")
    exchange(alice, bob)
    assert alice.map("m").get("k") == bob.map("m").get("k") == "b"


def test_map_remove_of_an_observed_put_removes_the_key(pair: tuple[Memory, Memory]) -> None:
    alice, bob = pair
    alice.map("m").put("k", 1)
    exchange(alice, bob)
    bob.map("m").remove("k")
    exchange(alice, bob)
    assert "k" not in alice.map("m") and "k" not in bob.map("m")


# -- documents ------------------------------------------------------------------------------------


def test_document_deltas_delivered_out_of_order_converge(pair: tuple[Memory, Memory]) -> None:
    alice, bob = pair
    text = alice.doc("notes").get("text", type=pycrdt.Text)
    deltas = []
    for index, chunk in ((0, "bc"), (2, "a"), (0, "bc"), (5, "a")):
        text.insert(index, chunk)
        deltas += alice.take_deltas()  # one update each (a drain joins the writes it holds)
    for i in (0, 2, 3, 1):  # two updates wait on a missing one, then it arrives
        bob.apply_delta(*deltas[i], origin="alice")
    assert bob.values() == alice.values() == {"notes": {"text": "bcbcaa"}}
    assert bob.snapshot() == alice.snapshot()


def test_document_snapshot_and_digest_do_not_depend_on_arrival_order() -> None:
    writers = [Memory(f"writer-{i}") for i in range(3)]
    deltas = []
    for i, writer in enumerate(writers):
        writer.doc("d").get("text", type=pycrdt.Text).insert(0, f"<{i}>")
        deltas += writer.take_deltas()
    snapshots, digests = set(), set()
    for order in itertools.permutations(deltas):
        reader = Memory("reader")
        for name, delta in order:
            reader.apply_delta(name, delta, "x")
        snapshots.add(reader.snapshot())
        digests.add(codec.encode_leaf(reader.state("d"), b""))
    assert len(snapshots) == 1
    assert len(digests) == 1


# -- rollback ---------------------------------------------------------------------------------------


def test_rollback_then_sync_reverts_values_on_other_replicas(pair: tuple[Memory, Memory]) -> None:
    alice, bob = pair
    alice.set("s").add("x")
    alice.set("s").add("y")
    alice.map("m").put("k", 1)
    alice.register("r").assign("v1")
    alice.pncounter("p").increment(5)
    exchange(alice, bob)
    checkpoint = alice.checkpoint()
    saved = alice.values()

    alice.set("s").remove("x")
    alice.set("s").add("z")
    alice.map("m").put("k", 2)
    alice.map("m").put("j", 3)
    alice.register("r").assign("v2")
    alice.pncounter("p").decrement(3)
    exchange(alice, bob)
    assert bob.values() != saved

    alice.rollback(checkpoint)
    exchange(alice, bob)
    assert alice.values() == bob.values() == saved


def test_rollback_of_a_name_created_after_the_checkpoint_empties_it(pair: tuple[Memory, Memory]) -> None:
    alice, bob = pair
    checkpoint = alice.checkpoint()
    alice.pncounter("p").increment(2)
    alice.set("s").add(1)
    alice.rollback(checkpoint)
    alice.rollback(checkpoint)  # already at the checkpoint: nothing to do, nothing raised
    exchange(alice, bob)
    assert bob.values() == {"p": 0, "s": frozenset()}


def test_gcounter_rollback_raises_and_writes_nothing(pair: tuple[Memory, Memory]) -> None:
    alice, _ = pair
    alice.counter("c").increment()
    alice.set("s").add(1)
    alice.take_deltas()
    checkpoint = alice.checkpoint()
    alice.counter("c").increment(2)
    alice.set("s").add(2)
    alice.take_deltas()
    before = alice.values()
    with pytest.raises(RollbackError, match="'c' is a grow-only counter"):
        alice.rollback(checkpoint)
    assert alice.take_deltas() == []
    assert alice.values() == before  # the set was not reverted either


# -- misuse -----------------------------------------------------------------------------------------


def test_type_mismatch_error_names_both_types() -> None:
    memory = Memory("alice")
    memory.set("thing").add(1)
    with pytest.raises(TypeMismatchError, match=r"'thing' is a set, not a counter"):
        memory.counter("thing")
    with pytest.raises(TypeError):  # TypeMismatchError is a TypeError too
        memory.map("thing")


def test_remote_delta_of_another_type_is_kept_apart_and_the_lowest_tag_is_read(pair: tuple[Memory, Memory]) -> None:
    alice, bob = pair
    alice.set("thing").add(1)
    bob.counter("thing").increment()
    ((name, delta),) = bob.take_deltas()
    assert alice.apply_delta(name, delta, "bob")
    assert alice.value("thing") == 1 and alice.type_of("thing") == "gcounter"
    assert alice.set("thing").value == {1}
    assert alice.take_clashes() == [("thing", ("gcounter", "orset"))]


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (lambda m: m.set("s").add(object()), "cannot store a object"),
        (lambda m: m.set("s").add({1, 2}), "cannot store a set"),
        (lambda m: m.set("s").add([1, 2]), "cannot store a list"),
        (lambda m: m.set("s").add((1, [2])), "cannot store a list"),
        (lambda m: m.gset("g").add({"k": 1}), "cannot store a dict"),
        (lambda m: m.register("r").assign(object()), "cannot store a object"),
        (lambda m: m.register("r").assign({1, 2}), "cannot store a set"),
        (lambda m: m.map("m").put([1], "v"), "cannot store a list"),
        (lambda m: m.map("m").put("k", frozenset()), "cannot store a frozenset"),
        (lambda m: m.mvregister("v").assign([1]), "cannot store a list"),
        (lambda m: m.set("s").add(2**64), "does not fit in 64 bits"),
    ],
)
def test_unsupported_values_raise_type_error_naming_the_type(write, message: str) -> None:
    memory = Memory("alice")
    with pytest.raises(TypeError, match=message) as raised:
        write(memory)
    if "cannot store" in message:
        assert "use str, int, float, bool, None, bytes" in str(raised.value)
    assert memory.take_deltas() == []


def test_register_and_map_values_may_be_lists_and_dicts(pair: tuple[Memory, Memory]) -> None:
    alice, bob = pair
    alice.register("r").assign({"steps": [1, 2, {"x": None}]})
    alice.map("m").put(("a", 1), [b"raw", 1.5])
    exchange(alice, bob)
    assert bob.register("r").value == {"steps": [1, 2, {"x": None}]}
    assert bob.map("m").get(("a", 1)) == [b"raw", 1.5]


@pytest.mark.parametrize(
    ("amount", "error", "message"),
    [(0, ValueError, "positive"), (-1, ValueError, "positive"), (1.5, TypeError, "int"),
     ("1", TypeError, "int"), (True, TypeError, "int"), (None, TypeError, "int")],
)
@pytest.mark.parametrize("kind", ["counter", "pncounter"])
def test_counter_increment_rejects_zero_negative_and_non_int(kind: str, amount, error, message) -> None:
    memory = Memory("alice")
    handle = getattr(memory, kind)("c")
    with pytest.raises(error, match=message):
        handle.increment(amount)
    if kind == "pncounter":
        with pytest.raises(error, match=message):
            handle.decrement(amount)
    assert memory.take_deltas() == []
    assert handle.value == 0


def test_memory_rejects_bad_replica_ids_and_names() -> None:
    with pytest.raises(ValueError):
        Memory("")
    with pytest.raises(ValueError):
        Memory("x" * (codec.MAX_REPLICA_ID + 1))
    with pytest.raises(ValueError):
        Memory("alice").set("")


# -- clocks -----------------------------------------------------------------------------------------


def test_hybrid_clock_is_monotonic_even_when_physical_time_goes_back() -> None:
    clock = HybridClock()
    stamps = [clock.tick(now) for now in (10.0, 10.0, 9.0, 11.0, 5.0)]
    assert stamps == sorted(set(stamps))
    assert HybridClock.wall_ms(stamps[0]) == 10_000


def test_hybrid_clock_tick_after_orders_past_a_seen_stamp() -> None:
    far_future = HybridClock().tick(1e9)
    clock = HybridClock()
    stamp = clock.tick(1.0, after=far_future)
    assert stamp > far_future
    assert clock.tick(1.0) > stamp


def test_hybrid_clock_observe_moves_it_past_remote_stamps() -> None:
    clock = HybridClock()
    clock.observe(5_000 << HybridClock.LOGICAL_BITS)
    assert clock.tick(1.0) > 5_000 << HybridClock.LOGICAL_BITS


# -- change listeners -------------------------------------------------------------------------------


def test_on_change_reports_local_and_remote_changes_with_their_origin(pair: tuple[Memory, Memory]) -> None:
    alice, bob = pair
    heard: list[tuple[str, str]] = []
    unsubscribe = bob.on_change(lambda name, origin: heard.append((name, origin)))
    bob.counter("c").increment()
    assert heard == [("c", "bob")]
    alice.set("s").add(1)
    ((name, delta),) = alice.take_deltas()
    bob.apply_delta(name, delta, "alice")
    assert heard == [("c", "bob"), ("s", "alice")]
    bob.apply_delta(name, delta, "alice")  # a duplicate changes nothing and says nothing
    assert len(heard) == 2
    bob.doc("d").get("text", type=pycrdt.Text).insert(0, "hi")
    assert heard[-1] == ("d", "bob")
    unsubscribe()
    bob.counter("c").increment()
    assert len(heard) == 3


def test_on_change_reports_merges_with_the_source_replica(pair: tuple[Memory, Memory]) -> None:
    alice, bob = pair
    alice.register("r").assign(1)
    heard: list[tuple[str, str]] = []
    bob.on_change(lambda name, origin: heard.append((name, origin)))
    bob.merge(alice)
    assert heard == [("r", "alice")]


# -- snapshots --------------------------------------------------------------------------------------


def _populated(replica_id: str) -> Memory:
    memory = Memory(replica_id, clock=lambda: 1234.5)
    memory.counter("c").increment(3)
    memory.pncounter("p").decrement(2)
    memory.set("s").add(("a", 1))
    memory.set("s").add(b"x")
    memory.set("s").remove(b"x")
    memory.gset("g").add(None)
    memory.register("r").assign({"nested": [1.5, True]})
    memory.mvregister("v").assign("x")
    memory.map("m").put("k", [1, 2])
    memory.doc("d").get("text", type=pycrdt.Text).insert(0, "hello")
    return memory


def test_snapshot_round_trip_keeps_values_and_bytes() -> None:
    original = _populated("alice")
    data = original.snapshot()
    restored = Memory.from_snapshot("alice", data)
    assert restored.values() == original.values()
    assert restored.snapshot() == data
    assert restored.names() == original.names()


def test_snapshot_bytes_are_replica_independent() -> None:
    alice = _populated("alice")
    bob = Memory("bob")
    bob.merge(alice)
    assert bob.snapshot() == alice.snapshot()


def test_restored_replica_keeps_writing_without_reusing_dots() -> None:
    alice = _populated("alice")
    bob = Memory("bob")
    bob.merge(alice)
    restored = Memory.from_snapshot("alice", alice.snapshot())
    restored.set("s").add("after restore")
    restored.set("s").remove(("a", 1))
    send(restored, bob)
    assert bob.set("s").value == {"after restore"}


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        b"\x93\x01",
        codec.pack([codec.FORMAT_VERSION, "memory"]),
        codec.pack([codec.FORMAT_VERSION, "memory", "not a list"]),
        codec.pack([codec.FORMAT_VERSION + 1, "memory", []]),
        codec.pack([codec.FORMAT_VERSION, "memory", [["x", "orset"]]]),
        codec.pack([codec.FORMAT_VERSION, "memory", [["x", "no-such-type", []]]]),
        codec.pack([codec.FORMAT_VERSION, "memory", [["x", "gcounter", []], ["x", "gcounter", []]]]),
        codec.pack([codec.FORMAT_VERSION, "memory", [["", "gcounter", []]]]),
        codec.pack([codec.FORMAT_VERSION, "memory", [["x", "gcounter", [["alice", -1]]]]]),
        codec.pack([codec.FORMAT_VERSION, "memory", [["x", "document", b"\xff\xff\xff"]]]),
        codec.encode_state(GCounter({"alice": 1})),  # a state, not a snapshot
        "not bytes",
    ],
)
def test_from_snapshot_rejects_garbage_with_decode_error(data) -> None:
    with pytest.raises(DecodeError):
        Memory.from_snapshot("alice", data)


def test_document_rejects_updates_that_are_not_yjs() -> None:
    with pytest.raises(DecodeError, match="Yjs"):
        codec.decode_state(codec.encode_state(Document.from_update(b"\x05\x01")))
