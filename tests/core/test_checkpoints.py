"""Author checkpoints: a late joiner takes one signed checkpoint instead of an author's batches.

An author that wrote alone (its batches depend only on its own earlier ones) is served to a
peer lacking its batches as one checkpoint: the join of those batches, signed once. These
tests check that the joiner ends exactly where batches would have left it and keeps working
(later batches, its own writes, serving others, restarts), that the checkpoint a replica
holding the batches recomputes holds exactly what was sent, and that a checkpoint signed by a
bad member cannot remove what its author never observed, nor be passed off as its batches.
"""

from __future__ import annotations

import dataclasses

import pycrdt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crdtmem import codec
from crdtmem.crdt import ORSet
from crdtmem.errors import RefusalReason
from crdtmem.protocol.batch import read_batch
from crdtmem.crdt.document import Document
from crdtmem.protocol.batch import encode_body
from crdtmem.protocol.checkpoint import _signed_part, Contribution, is_checkpoint, open_checkpoint, seal_checkpoint
from crdtmem.protocol.events import CheckpointApplied
from crdtmem.clocks import CausalContext
from crdtmem.protocol.messages import Checkpoints, Sync, decode_message
from crdtmem.protocol.node import NodeConfig
from crdtmem.storage import SqliteStore
from crdtmem.identity import verify
from crdtmem.testing import Cluster, LinkFaults
from crdtmem.values import encode_value

BATCHES = 24


def _write_alone(cluster: Cluster, name: str, batches: int = BATCHES, prefix: str = "") -> None:
    """``name`` writes every built-in kind of object, one flush per step, with no one connected."""
    memory, node = cluster.memory(name), cluster.node(name)
    text = memory.doc("paper").get("text", type=pycrdt.Text)
    for i in range(batches):
        text.insert(len(str(text)), f"{name} {i}. ")
        if i % 4 == 3:
            del text[0:3]
        memory.set("facts").add(f"{name}-{prefix}{i}")
        if i % 5 == 4:
            memory.set("facts").remove(f"{name}-{prefix}{i - 1}")
        memory.counter("edits").increment(1)
        memory.pncounter("balance").decrement(i % 3 + 1)
        memory.gset("seen").add(i % 7)
        memory.register("status").assign(f"step {i}")
        memory.mvregister("owner").assign(i)
        memory.map("notes").put(f"k{i % 6}", i)
        if i % 6 == 5:
            memory.map("notes").remove("k0")
        node.flush(cluster.now)
        cluster.run(0.01)


def _settle(cluster: Cluster) -> None:
    assert cluster.run_until(lambda: cluster.converged() and cluster.synced(), timeout=60)


def _author_then_joiner(seed: int = 1, config: NodeConfig | None = None) -> Cluster:
    cluster = Cluster(seed=seed, config=config)
    cluster.add("author")
    _write_alone(cluster, "author")
    cluster.add("joiner")
    cluster.connect("author", "joiner")
    _settle(cluster)
    return cluster


def test_a_joiner_takes_one_checkpoint_for_an_author_who_wrote_alone() -> None:
    cluster = _author_then_joiner()
    joiner = cluster.stats("joiner")
    assert joiner.checkpoints_applied == 1 and joiner.batches_applied == 0
    assert cluster.stats("author").checkpoints_sent == 1
    assert cluster.memory("joiner").values() == cluster.memory("author").values()
    assert cluster.node("joiner").seen == cluster.node("author").seen
    assert not cluster.refusals("joiner") and not cluster.refusals("author")

    batches = _author_then_joiner(config=NodeConfig(checkpoint_min_batches=None))
    assert batches.stats("joiner").checkpoints_applied == 0 and batches.stats("joiner").batches_applied == BATCHES
    assert batches.memory("joiner").values() == cluster.memory("joiner").values()
    assert cluster.stats("joiner").bytes_received < batches.stats("joiner").bytes_received


def test_writes_not_yet_signed_go_inside_the_checkpoint() -> None:
    """The author has written since its last batch when a joiner's first Sync comes: it signs
    those writes at once and sends one checkpoint covering them, and no batch."""
    cluster = Cluster(seed=13)
    cluster.add("author")
    _write_alone(cluster, "author")
    cluster.add("joiner")
    raw = cluster.open_raw("author", cluster.node("joiner").identity)
    cluster.memory("author").set("facts").add("written, not yet signed")
    assert cluster.memory("author").has_pending_deltas()
    cluster.inject(raw.conn, raw.seal(Sync(CausalContext())))
    frames = raw.received[2:]  # after the hello and the auth
    messages = [decode_message(payload, max_size=1 << 24) for frame in frames if (payload := raw.channel.open_frame(frame))]
    assert [type(m).__name__ for m in messages] == ["Sync", "Checkpoints"]  # its greeting, then the answer
    checkpoint = open_checkpoint(messages[1].wires[0], cluster.keyring, verify, max_size=1 << 24)
    assert checkpoint.seq == BATCHES + 1 == cluster.node("author").seen.max(checkpoint.author)
    assert not cluster.memory("author").has_pending_deltas()


def test_the_checkpoint_is_its_batches_joined() -> None:
    cluster = _author_then_joiner()
    author = cluster.node("author")
    checkpoint = author.own_checkpoint()
    assert checkpoint is not None and checkpoint.seq == BATCHES
    batches = [read_batch(wire, max_size=1 << 24) for wire in author.log_wires()]
    assert Contribution.of(batches).matches(checkpoint, max_size=1 << 24)
    assert not Contribution.of(batches[:-1]).matches(checkpoint, max_size=1 << 24)


def test_the_joiner_goes_on_as_if_it_had_the_batches() -> None:
    cluster = _author_then_joiner()
    cluster.memory("author").set("facts").add("after the checkpoint")
    cluster.memory("joiner").set("facts").remove("author-0")
    text = cluster.memory("joiner").doc("paper").get("text", type=pycrdt.Text)
    del text[len(str(text)) - 4 :]  # the author's last items: within the checkpoint's reach
    text.insert(0, "joiner: ")
    _settle(cluster)
    assert not cluster.refusals("author") and not cluster.refusals("joiner")
    cluster.add("third")  # served the author's checkpoint by the joiner, which holds no batch of it
    cluster.disconnect("author", "joiner")
    cluster.connect("joiner", "third")
    _settle(cluster)
    assert cluster.stats("third").checkpoints_applied == 1
    assert cluster.memory("third").values() == cluster.memory("author").values()


def test_a_restarted_joiner_keeps_the_checkpoint_it_journaled(tmp_path) -> None:
    cluster = _author_then_joiner()
    journal = [e for e in cluster.events("joiner") if isinstance(e, CheckpointApplied)]
    assert len(journal) == 1 and is_checkpoint(journal[0].wire)
    store = SqliteStore(tmp_path / "joiner.db", cluster.node("joiner").identity.peer_id)
    store.append([(e.author, e.seq, e.wire, e.index_entry) for e in journal])
    restored = store.load()
    store.close()
    assert restored.memory.values() == cluster.memory("author").values()
    cluster.restart("joiner", keep_store=True)
    cluster.memory("author").set("facts").add("after the restart")  # names the checkpoint's head
    _settle(cluster)
    assert not cluster.refusals("joiner")
    assert cluster.memory("joiner").values() == cluster.memory("author").values()


@pytest.mark.parametrize("batches_after", [0, 2 * BATCHES])
def test_naming_a_batch_behind_a_checkpoint_fetches_the_authors_batches(batches_after: int) -> None:
    """A reader got the author's first 3 batches before the author went on alone; the joiner
    took the checkpoint (and, maybe, more of the author's batches than it stands for) and then
    meets the reader's batch, which names batch 3 by a hash it never saw."""
    cluster = Cluster(seed=3)
    for name in ("author", "reader"):
        cluster.add(name)
    _write_alone(cluster, "author", batches=3)  # fewer than checkpoint_min_batches: sent as batches
    cluster.connect("author", "reader")
    _settle(cluster)
    cluster.cut("author", "reader")
    cluster.memory("reader").set("facts").remove("author-1")  # depends on the author's batch 3
    cluster.run(0.5)
    _write_alone(cluster, "author", batches=BATCHES, prefix="later ")
    cluster.add("joiner")
    cluster.connect("author", "joiner")
    assert cluster.run_until(lambda: cluster.node("joiner").seen == cluster.node("author").seen, timeout=30)
    assert cluster.stats("joiner").checkpoints_applied == 1 and cluster.stats("reader").checkpoints_applied == 0
    if batches_after:
        _write_alone(cluster, "author", batches=batches_after, prefix="even later ")
        assert cluster.run_until(lambda: cluster.node("joiner").seen == cluster.node("author").seen, timeout=30)
    cluster.connect("reader", "joiner")
    cluster.heal("author", "reader")
    _settle(cluster)
    joiner = cluster.stats("joiner")
    assert joiner.histories_wanted == 1 and not cluster.refusals("joiner")
    assert "author-1" not in cluster.memory("joiner").set("facts").value
    assert cluster.memory("joiner").values() == cluster.memory("author").values()


def test_an_author_that_applied_anothers_batch_keeps_the_checkpoint_it_had() -> None:
    cluster = Cluster(seed=4)
    for name in ("author", "other"):
        cluster.add(name)
    _write_alone(cluster, "author")
    cluster.memory("other").set("facts").add("other's")
    cluster.connect("author", "other")
    _settle(cluster)
    _write_alone(cluster, "author", batches=3)  # these depend on other's batch
    checkpoint = cluster.node("author").own_checkpoint()
    assert checkpoint is not None and checkpoint.seq == BATCHES
    cluster.add("joiner")
    cluster.connect("author", "joiner")
    _settle(cluster)
    assert cluster.stats("joiner").checkpoints_applied == 1 and cluster.stats("joiner").batches_applied == 4
    assert cluster.memory("joiner").values() == cluster.memory("author").values()


# -- one bad member --------------------------------------------------------------------------


def _bad_checkpoint(cluster: Cluster, name: str, change) -> bytes:
    """``name``'s own checkpoint with its objects changed by ``change(entries)``, signed by it."""
    node = cluster.node(name)
    honest = node.own_checkpoint()
    entries = change([(n, s.copy()) for n, s in cluster.memory(name).entries()])
    return seal_checkpoint(node.identity, Contribution.of_state(node.replica_id, honest.seq, honest.head, entries)).wire


def _with_a_fact_never_written(cluster: Cluster, name: str) -> bytes:
    """``name``'s checkpoint with one more fact of its own than its batches hold, signed by it."""

    def add_a_fact(entries):
        for object_name, state in entries:
            if object_name == "facts":
                state.add(cluster.memory(name).replica_id, encode_value("never written"))
        return entries

    return _bad_checkpoint(cluster, name, add_a_fact)


def _two_with_the_authors_batches(seed: int) -> Cluster:
    """An author that wrote alone, and a holder that got its batches."""
    cluster = Cluster(seed=seed)
    for name in ("author", "holder"):
        cluster.add(name)
    cluster.connect("author", "holder")
    _write_alone(cluster, "author")
    _settle(cluster)
    return cluster


def _send_from(cluster: Cluster, sender: str, target: str, wire: bytes):
    raw = cluster.open_raw(target, cluster.node(sender).identity)
    return raw, cluster.inject(raw.conn, raw.seal(Checkpoints((wire,))))


def test_a_lying_checkpoint_is_caught_by_the_first_holder_its_joiner_meets() -> None:
    """The joiner takes the author's (lying) checkpoint, then meets a replica holding the
    author's batches: it passes the checkpoint on, and the holder refuses it."""
    cluster = _two_with_the_authors_batches(seed=8)
    cluster.disconnect("author", "holder")
    cluster.add("joiner")
    _send_from(cluster, "author", "joiner", _with_a_fact_never_written(cluster, "author"))
    assert cluster.stats("joiner").checkpoints_applied == 1
    cluster.connect("joiner", "holder")
    assert cluster.run_until(lambda: bool(cluster.refusals("holder")), timeout=10)
    assert [r.reason for r in cluster.refusals("holder")] == [RefusalReason.EQUIVOCATION]
    assert "never written" not in cluster.memory("holder").set("facts").value


def test_a_holder_refuses_a_checkpoint_that_differs_from_the_batches() -> None:
    cluster = _two_with_the_authors_batches(seed=6)
    honest = cluster.node("author").own_checkpoint()
    _send_from(cluster, "author", "holder", honest.wire)
    assert not cluster.refusals("holder")
    cluster.run(cluster.node("holder").config.checkpoint_audit_interval)
    raw, _ = _send_from(cluster, "author", "holder", _with_a_fact_never_written(cluster, "author"))
    assert [r.reason for r in cluster.refusals("holder")] == [RefusalReason.EQUIVOCATION]
    assert not raw.closed and "never written" not in cluster.memory("holder").set("facts").value


def test_a_checkpoint_cannot_remove_what_its_author_never_saw() -> None:
    """A bad member signs a checkpoint whose context claims an honest member's element."""
    cluster = Cluster(seed=7)
    for name in ("mallory", "victim", "joiner"):
        cluster.add(name)
    _write_alone(cluster, "mallory")
    cluster.memory("victim").set("facts").add("victim's fact")
    cluster.connect("victim", "joiner")
    assert cluster.run_until(lambda: "victim's fact" in cluster.memory("joiner").set("facts").value, timeout=10)
    victim = cluster.memory("victim").replica_id

    def remove_victims_fact(entries):
        for name, state in entries:
            if name == "facts":
                state.ctx.add((victim, cluster.memory("victim").state("facts").ctx.max(victim)))
        return entries

    lie = _bad_checkpoint(cluster, "mallory", remove_victims_fact)
    raw, _ = _send_from(cluster, "mallory", "joiner", lie)
    assert [r.reason for r in cluster.refusals("joiner")] == [RefusalReason.UNOBSERVED_REMOVE]
    assert "victim's fact" in cluster.memory("joiner").set("facts").value
    assert not raw.closed
    assert raw.received and cluster.stats("joiner").histories_wanted == 1  # it asked for the batches instead


@pytest.mark.parametrize("joiner_has_the_text", [True, False])
def test_a_checkpoint_cannot_delete_text_its_author_never_saw(joiner_has_the_text: bool) -> None:
    """A bad member's checkpoint of its one-client document also deletes an honest member's
    text: refused before it is joined, whether the joiner holds that text yet or would meet it
    later (Yjs keeps a deletion of items it lacks and applies it when they come)."""
    cluster = Cluster(seed=8)
    for name in ("mallory", "victim", "joiner"):
        cluster.add(name)
    _write_alone(cluster, "mallory")
    victims = cluster.memory("victim").doc("paper")
    victims.get("text", type=pycrdt.Text).insert(0, "the victim's words")
    cluster.node("victim").flush(cluster.now)
    scratch = pycrdt.Doc()
    scratch.apply_update(victims.get_update())
    del scratch.get("text", type=pycrdt.Text)[0:10]
    their_deletion = scratch.get_update(scratch.get_state())  # no items, a delete set naming the victim's
    mallorys = cluster.memory("mallory").doc("paper").get_update()
    lying = pycrdt.merge_updates(mallorys, their_deletion)  # still mallory's items alone
    node = cluster.node("mallory")
    honest = node.own_checkpoint()
    entries = [(name, Document.from_update(lying) if name == "paper" else state)
               for name, state in cluster.memory("mallory").entries()]
    body = encode_body(sorted(entries))
    signature = node.identity.sign(_signed_part(node.replica_id, honest.seq, honest.head, body))
    lie = codec.pack([1, node.replica_id, honest.seq, honest.head, body, signature])
    if joiner_has_the_text:
        cluster.connect("victim", "joiner")
        victims_memory, joiners = cluster.memory("victim"), cluster.memory("joiner")
        assert cluster.run_until(lambda: joiners.values() == victims_memory.values(), timeout=10)
    _send_from(cluster, "mallory", "joiner", lie)
    assert [r.reason for r in cluster.refusals("joiner")] == [RefusalReason.UNOBSERVED_REMOVE]
    if not joiner_has_the_text:
        cluster.connect("victim", "joiner")
    text = cluster.memory("joiner").doc("paper").get("text", type=pycrdt.Text)
    assert cluster.run_until(lambda: "victim" in str(text), timeout=10)
    assert "the victim's words" in str(text)


@pytest.mark.parametrize("damage", ["signature", "bytes"])
def test_a_forged_or_malformed_checkpoint_closes_the_connection(damage: str) -> None:
    cluster = _author_then_joiner()
    cluster.add("fresh")
    wire = cluster.node("author").own_checkpoint().wire
    wire = wire[:-1] + bytes([wire[-1] ^ 1]) if damage == "signature" else wire[: len(wire) // 2]
    raw, _ = _send_from(cluster, "author", "fresh", wire)
    reasons = [r.reason for r in cluster.refusals("fresh")]
    assert raw.closed and reasons == [RefusalReason.BAD_BATCH_SIGNATURE if damage == "signature" else RefusalReason.MALFORMED_MESSAGE]
    assert cluster.stats("fresh").checkpoints_applied == 0 and not cluster.memory("fresh").names()


def test_a_signature_copied_onto_another_body_does_not_hide_the_checkpoint_it_came_from() -> None:
    """A bad member re-sends the author's checkpoint header and signature around a body of its
    own choosing first: it is refused, and the genuine checkpoint is still taken after it."""
    cluster = _author_then_joiner()
    cluster.add("mallory")
    cluster.add("fresh")
    genuine = cluster.node("author").own_checkpoint()
    kind, author, seq, head, _body, signature = codec.unpack(genuine.wire)
    other_body = codec.unpack(_with_a_fact_never_written(cluster, "author"))[4]
    forged = codec.pack([kind, author, seq, head, other_body, signature])
    raw, _ = _send_from(cluster, "mallory", "fresh", forged)
    assert raw.closed and [r.reason for r in cluster.refusals("fresh")] == [RefusalReason.BAD_BATCH_SIGNATURE]
    _send_from(cluster, "author", "fresh", genuine.wire)
    assert cluster.stats("fresh").checkpoints_applied == 1
    assert cluster.memory("fresh").set("facts").value == cluster.memory("author").set("facts").value


def test_a_checkpoint_writing_as_someone_else_is_refused() -> None:
    cluster = _author_then_joiner()
    cluster.add("fresh")
    author = cluster.memory("author").replica_id

    def write_as_joiner(entries):
        forged = ORSet()
        forged.add(cluster.memory("joiner").replica_id, encode_value("x"))
        return entries + [("forged", forged)]

    lie = _bad_checkpoint(cluster, "author", write_as_joiner)
    raw, _ = _send_from(cluster, "author", "fresh", lie)
    assert [r.reason for r in cluster.refusals("fresh")] == [RefusalReason.FORGED_AUTHOR]
    assert not raw.closed and "forged" not in cluster.memory("fresh").names()
    assert open_checkpoint(cluster.node("author").own_checkpoint().wire, cluster.keyring, verify, max_size=1 << 24).author == author


def test_no_checkpoint_is_sent_below_the_threshold() -> None:
    cluster = _author_then_joiner(config=dataclasses.replace(NodeConfig(), checkpoint_min_batches=BATCHES + 1))
    assert cluster.stats("joiner").checkpoints_applied == 0 and cluster.stats("joiner").batches_applied == BATCHES


# -- property: a checkpoint is its batches ---------------------------------------------------


def _edit_text(text: pycrdt.Text, n: int) -> None:
    size = len(str(text))
    if n % 2 or not size:
        text.insert(min(n, size), f"<{n}>")
    else:
        start = min(n, size - 1)
        del text[start : min(start + 2, size)]


_WRITES = {
    "add": lambda memory, n: memory.set("facts").add(n),
    "remove": lambda memory, n: memory.set("facts").remove(n),
    "increment": lambda memory, n: memory.counter("edits").increment(n),
    "decrement": lambda memory, n: memory.pncounter("balance").decrement(n),
    "grow": lambda memory, n: memory.gset("seen").add(n),
    "assign": lambda memory, n: memory.register("status").assign(n),
    "mv": lambda memory, n: memory.mvregister("owner").assign(n),
    "put": lambda memory, n: memory.map("notes").put(n, "value"),
    "delete": lambda memory, n: memory.map("notes").remove(n),
    "edit": lambda memory, n: _edit_text(memory.doc("paper").get("text", type=pycrdt.Text), n),
}


_OPS = st.tuples(st.sampled_from([*_WRITES, "flush"]), st.integers(1, 40))


def _play(cluster: Cluster, name: str, ops) -> None:
    memory, node = cluster.memory(name), cluster.node(name)
    for op, n in ops:
        if op == "flush":
            node.flush(cluster.now)
        else:
            _WRITES[op](memory, n)
        cluster.run(0.001)
    node.flush(cluster.now)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_OPS, min_size=1, max_size=60))
def test_a_joiner_by_checkpoint_equals_a_joiner_by_batches(ops) -> None:
    joined = {}
    for minimum in (1, None):
        cluster = Cluster(seed=9, config=NodeConfig(checkpoint_min_batches=minimum))
        cluster.add("author")
        _play(cluster, "author", ops)
        cluster.add("joiner")
        cluster.connect("author", "joiner")
        _settle(cluster)
        author = cluster.node("author")
        if minimum is not None and author.log_wires():
            checkpoint = author.own_checkpoint()
            batches = [read_batch(wire, max_size=1 << 24) for wire in author.log_wires()]
            assert checkpoint is not None and Contribution.of(batches).matches(checkpoint, max_size=1 << 24)
            assert cluster.stats("joiner").batches_applied == 0
        joined[minimum] = (cluster.memory("joiner").snapshot(), cluster.node("joiner").seen)
    assert joined[1] == joined[None]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    faults=st.sampled_from([LinkFaults(), LinkFaults(loss=0.05, duplicate=0.05, reorder=0.05)]),
    steps=st.lists(st.sampled_from(["author writes", "joiner writes", "joiner restarts", "joiner loses its store",
                                    "a third joins the joiner"]), max_size=6),
)
def test_joiners_by_checkpoint_converge_through_faults_and_restarts(seed, faults, steps) -> None:
    cluster = Cluster(seed=seed, faults=faults)
    cluster.add("author")
    _write_alone(cluster, "author", batches=6)
    cluster.add("joiner")
    cluster.connect("author", "joiner")
    for i, step in enumerate(steps):
        if step == "author writes":
            _write_alone(cluster, "author", batches=2, prefix=f"{i}.")
        elif step == "joiner writes":
            cluster.memory("joiner").set("facts").remove("author-0")
            cluster.memory("joiner").doc("paper").get("text", type=pycrdt.Text).insert(0, f"<{i}>")
        elif step == "joiner restarts":
            cluster.restart("joiner", keep_store=True)
        elif step == "joiner loses its store":
            cluster.restart("joiner")
        elif "third" not in cluster.names:
            cluster.add("third")
            cluster.connect("joiner", "third")
        cluster.run(0.3)
    cluster.faults = LinkFaults()
    _settle(cluster)
    assert cluster.memory("joiner").values() == cluster.memory("author").values()
    content = {RefusalReason.UNOBSERVED_REMOVE, RefusalReason.EQUIVOCATION, RefusalReason.FORGED_AUTHOR,
               RefusalReason.BAD_DEPENDENCIES, RefusalReason.BAD_BATCH_SIGNATURE}
    assert not [r for name in cluster.names for r in cluster.refusals(name) if r.reason in content]


def test_an_idle_author_passes_its_checkpoint_to_holders_who_serve_it_to_joiners() -> None:
    cluster = _two_with_the_authors_batches(seed=12)
    cluster.run(cluster.config.checkpoint_push_idle + 1)  # the author has been idle that long
    assert cluster.stats("author").checkpoints_sent == 1 and not cluster.refusals("holder")
    cluster.disconnect("author", "holder")
    cluster.add("joiner")
    cluster.connect("holder", "joiner")
    assert cluster.run_until(lambda: cluster.node("joiner").seen == cluster.node("author").seen, timeout=30)
    assert cluster.stats("joiner").checkpoints_applied == 1 and cluster.stats("joiner").batches_applied == 0
    assert cluster.memory("joiner").values() == cluster.memory("author").values()
    _write_alone(cluster, "author", batches=BATCHES)  # doubled: the next idle spell passes it again
    cluster.run(cluster.config.checkpoint_push_idle + 1)
    assert cluster.stats("author").checkpoints_sent == 1  # no neighbour now: nothing sent
