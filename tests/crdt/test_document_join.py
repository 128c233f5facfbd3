"""Joining Yjs updates into a live document: what reports a change, and delta groups."""

from __future__ import annotations

import random

import pycrdt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crdtmem.crdt.base import WHOLE
from crdtmem.crdt import document
from crdtmem.crdt.document import Document, merge_many


def _edits() -> list[bytes]:
    doc = pycrdt.Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text = doc.get("text", type=pycrdt.Text)
    text.insert(0, "hello")
    text.insert(5, " world")
    del text[0:2]
    return updates


@pytest.fixture(params=["observed", "large"])
def join_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with updates joined as small (the Doc observed) and as large (states compared)."""
    if request.param == "large":
        monkeypatch.setattr(document, "_LARGE_UPDATE_BYTES", 0)
    return request.param


def test_a_new_update_reports_a_change_and_a_repeated_one_does_not(join_path: str) -> None:
    live = Document()
    insert, more, delete = _edits()
    assert live.join(Document.from_update(insert)) == {WHOLE}
    assert live.join(Document.from_update(insert)) == set()
    assert live.join(Document.from_update(more)) == {WHOLE}
    assert live.join(Document.from_update(delete)) == {WHOLE}  # a delete-only update changes the text
    assert live.join(Document.from_update(delete)) == set()
    assert live.doc.get("text", type=pycrdt.Text).to_py() == "llo world"


def test_a_watched_doc_reports_local_edits_after_remote_joins(join_path: str) -> None:
    live, local = Document(), []
    live.watch(local.append)
    insert, more, _delete = _edits()
    live.join(Document.from_update(insert))
    live.doc.get("text", type=pycrdt.Text).insert(0, ">")
    live.join(Document.from_update(more))
    live.doc.get("text", type=pycrdt.Text).insert(0, ">")
    assert len(local) == 2 and live.doc.get("text", type=pycrdt.Text).to_py() == ">>hello world"


def test_a_delta_group_applies_like_its_updates_one_by_one() -> None:
    updates = _edits()
    group = Document.from_update(updates[0])
    for update in updates[1:]:
        group.join(Document.from_update(update))
    one_by_one, grouped = Document(), Document()
    for update in updates:
        one_by_one.join(Document.from_update(update))
    grouped.join(group)
    assert grouped == one_by_one
    assert grouped.doc.get("text", type=pycrdt.Text).to_py() == "llo world"


def test_a_group_of_local_edits_is_squashed_from_the_live_doc_and_means_the_same() -> None:
    other = pycrdt.Doc()
    other.get("text", type=pycrdt.Text).insert(0, "theirs ")
    live = Document.for_replica("me")
    live.join(Document.from_update(other.get_update()))
    local: list[Document] = []
    live.watch(local.append)
    text = live.doc.get("text", type=pycrdt.Text)
    for i in range(50):
        with live.doc.transaction():
            text.insert(len(text), "x")
    with live.doc.transaction():
        del text[0:3]  # deletes the other client's items too
    group = local[0].copy()
    for delta in local[1:]:
        group.join(delta)
    merged = pycrdt.merge_updates(*(delta.update for delta in local))
    assert len(group.update) < len(merged) / 3
    assert group.only_writes_as("me")
    replica = Document()
    replica.join(Document.from_update(other.get_update()))
    replica.join(group)
    assert replica.doc.get("text", type=pycrdt.Text).to_py() == text.to_py()


def test_a_group_read_after_later_local_edits_is_merged_not_squashed() -> None:
    live = Document.for_replica("me")
    local: list[Document] = []
    live.watch(local.append)
    text = live.doc.get("text", type=pycrdt.Text)
    for char in "abc":
        with live.doc.transaction():
            text.insert(len(text), char)
    group = local[0].copy()
    for delta in local[1:]:
        group.join(delta)
    text.insert(len(text), "later")  # not in the group: squashing now would take it along
    replica = Document()
    replica.join(group)
    assert replica.doc.get("text", type=pycrdt.Text).to_py() == "abc"


def test_updates_joined_out_of_order_are_held_until_what_they_build_on_arrives() -> None:
    insert, more, delete = _edits()
    live = Document()
    live.join(Document.from_update(more))  # builds on ``insert``'s items: yrs cannot integrate it yet
    live.join(Document.from_update(delete))  # deletes items not received yet
    assert live._held is not None
    assert live.doc.get("text", type=pycrdt.Text).to_py() == ""
    live.join(Document.from_update(insert))
    assert live._held is None
    assert live.doc.get("text", type=pycrdt.Text).to_py() == "llo world"


def test_an_update_whose_items_are_all_integrated_leaves_nothing_held() -> None:
    live = Document()
    for update in _edits():
        live.join(Document.from_update(update))
        assert live._held is None
    assert live.doc.get("text", type=pycrdt.Text).to_py() == "llo world"


def _typed(count: int, seed: int) -> list[bytes]:
    """``count`` one-transaction updates of two clients typing and deleting into one text."""
    rng = random.Random(seed)
    docs = [pycrdt.Doc(client_id=1), pycrdt.Doc(client_id=2)]
    updates: list[bytes] = []
    for _ in range(count):
        doc = rng.choice(docs)
        text = doc.get("text", type=pycrdt.Text)
        before = doc.get_state()
        with doc.transaction():
            if len(text) > 3 and rng.random() < 0.3:
                start = rng.randrange(len(text) - 2)
                del text[start : start + rng.randint(1, 2)]
            else:
                text.insert(rng.randint(0, len(text)), rng.choice(["a", "bc", "def"]))
        updates.append(doc.get_update(before))
        (docs[1] if doc is docs[0] else docs[0]).apply_update(updates[-1])  # the other client sees it at once
    return updates


@pytest.mark.parametrize("count", [1, 2, 31, 32, 33, 100, 1025])
def test_many_updates_merge_in_rounds_to_the_same_bytes_as_at_once(count: int) -> None:
    updates = _typed(count, seed=count)
    assert merge_many(updates) == pycrdt.merge_updates(*updates)


def test_a_large_delta_group_of_another_client_is_the_merge_of_its_updates() -> None:
    updates = _typed(200, seed=7)
    group = Document.from_update(updates[0])
    for update in updates[1:]:
        group.join(Document.from_update(update))
    assert group.update == pycrdt.merge_updates(*updates)


_EDIT = st.tuples(st.sampled_from(["insert", "delete", "replace", "map", "array"]), st.integers(0, 1_000),
                  st.text(alphabet="abc", min_size=1, max_size=4))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(before=st.lists(_EDIT, max_size=8), group=st.lists(_EDIT, min_size=1, max_size=30),
       theirs=st.booleans())
def test_a_squashed_group_of_local_edits_means_what_its_updates_mean(before, group, theirs) -> None:
    """Whatever the mix of inserts, deletions (of ours and another's items) and edits of
    other types, a group read as one update (squashed from the Doc, its delete set merged from
    the updates that delete) leaves a replica as the updates one by one would."""
    other = pycrdt.Doc()
    if theirs:
        other.get("text", type=pycrdt.Text).insert(0, "theirs")
    live = Document.for_replica("me")
    live.join(Document.from_update(other.get_update()))
    local: list[Document] = []
    live.watch(local.append)
    for edit in before:
        _apply_edit(live.doc, *edit)
    start = live.doc.get_update()
    local.clear()
    for edit in group:
        _apply_edit(live.doc, *edit)
    if not local:
        return
    grouped = local[0].copy()
    for delta in local[1:]:
        grouped.join(delta)
    replica = Document()
    replica.join(Document.from_update(start))
    replica.join(Document.from_update(grouped.update))
    assert grouped.only_writes_as("me") or all(not delta.update[0] for delta in local)
    assert replica == live
    assert {root: replica.value()[root] for root in replica.value()} == live.value()


def _apply_edit(doc: pycrdt.Doc, kind: str, at: int, chars: str) -> None:
    text = doc.get("text", type=pycrdt.Text)
    with doc.transaction():
        if kind == "insert" or (kind in ("delete", "replace") and not len(text)):
            text.insert(at % (len(text) + 1), chars)
        elif kind == "delete":
            start = at % len(text)
            del text[start : start + min(len(chars), len(text) - start)]
        elif kind == "replace":
            start = at % len(text)
            del text[start : start + 1]
            text.insert(start, chars)
        elif kind == "map":
            doc.get("map", type=pycrdt.Map)[chars] = at
        else:
            array = doc.get("array", type=pycrdt.Array)
            if at % 3 == 0 and len(array):
                del array[at % len(array)]
            else:
                array.append(at)
