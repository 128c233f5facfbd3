"""update_footprint: what a Yjs update inserts (per client, up to which clock) and deletes."""

from __future__ import annotations

import pycrdt
import pytest

from crdtmem.crdt.document import Document, Footprint, _encode_state, state_clients, update_footprint


def _edit(doc: pycrdt.Doc, change) -> bytes:
    before = doc.get_state()
    with doc.transaction():
        change()
    return doc.get_update(before)


def test_footprint_counts_a_later_struct_group_from_zero_and_reads_its_delete_set() -> None:
    a = pycrdt.Doc(client_id=111)
    text = a.get("text", type=pycrdt.Text)
    first = _edit(a, lambda: text.insert(0, "hello world"))
    assert (update_footprint(first).ends, update_footprint(first).deletes) == ({111: 11}, {})
    b = pycrdt.Doc(client_id=222)
    b.apply_update(a.get_update())
    theirs = b.get("text", type=pycrdt.Text)
    update = _edit(b, lambda: (theirs.insert(5, "XX\N{GRINNING FACE}"), theirs.__delitem__(slice(0, 3))))
    footprint = update_footprint(update)
    assert (footprint.ends, footprint.deletes) == ({222: 4}, {111: [(0, 3)]})  # the emoji is 2 UTF-16 units
    assert footprint.deletes_only(111) and not footprint.deletes_only(222)

    def later() -> None:
        theirs.insert(0, "ZZ")
        b.get("m", type=pycrdt.Map)["k"] = {"a": [1, 2.5, None, True, "x"]}
        b.get("arr", type=pycrdt.Array).extend([pycrdt.Text("in"), 1, 2])

    update = _edit(b, later)  # its struct group starts at clock 4
    ends = update_footprint(update).ends
    assert ends == {222: state_clients(b.get_state())[222]} and ends[222] > 4


def test_footprint_refuses_what_it_cannot_read() -> None:
    for part in ("ends", "delete_update", "deletes"):
        with pytest.raises(ValueError):
            getattr(update_footprint(b"\x01\x05"), part)


def _typed_alone(client: int, edits: int) -> pycrdt.Doc:
    doc = pycrdt.Doc(client_id=client)
    text = doc.get("text", type=pycrdt.Text)
    for i in range(edits):
        text.insert(len(text) // 2, f"word {i} ")
        if i % 3 == 0:
            del text[i % 7 : i % 7 + 2]
    return doc


def test_a_large_update_joined_into_an_empty_doc_is_integrated_without_decoding_its_ranges() -> None:
    whole = _typed_alone(7, 12_000).get_update()
    assert len(whole) > 1 << 16  # past the per-update cache: the large-update path
    footprint = update_footprint(whole)
    assert update_footprint(bytes(whole)) is footprint  # the last large update read is kept
    state = Document(pycrdt.Doc())
    state.join(Document.from_update(whole))
    assert footprint._deletes is None  # the Doc's delete set matched the update's bytes
    assert footprint.deletes_only(7) and footprint._deletes is None
    assert state == Document.from_update(whole)


def test_a_large_update_whose_deletions_wait_for_items_is_held_until_they_come() -> None:
    writer = _typed_alone(7, 12_000)
    early = writer.get_update()
    text = writer.get("text", type=pycrdt.Text)
    base = writer.get_state()
    text.insert(0, "later items")
    inserts = writer.get_update(base)
    base = writer.get_state()
    del text[0:5]  # deletes items the receiver will not have yet
    deletes = writer.get_update(base)
    whole = pycrdt.merge_updates(early, deletes)  # large, and a deletion it cannot apply yet
    state = Document(pycrdt.Doc())
    state.join(Document.from_update(whole))
    assert state._held is not None and not update_footprint(whole).deletes_only(8)
    state.join(Document.from_update(inserts))
    assert state._held is None and str(state.doc.get("text", type=pycrdt.Text)) == str(text)


def test_one_clients_deletions_are_read_in_one_pass_without_its_ends(monkeypatch) -> None:
    writer = _typed_alone(7, 12_000)
    whole = writer.get_update()
    text = writer.get("text", type=pycrdt.Text)
    later = _edit(writer, lambda: (text.insert(3, "new"), text.__delitem__(slice(10, 14))))  # not from clock 0
    expected = [Footprint(update).delete_update for update in (whole, later)]

    def no_ends(update: bytes) -> bytes:
        raise AssertionError("the update's ends were read")

    monkeypatch.setattr(pycrdt, "get_state", no_ends)
    assert [Footprint(update).deletions for update in (whole, later)] == expected
    Footprint(whole).check()  # a large one: validity from the same pass
    with pytest.raises(ValueError):
        Footprint(whole[: len(whole) // 2]).check()  # cut short


def test_a_whole_state_is_joined_reading_its_deletions_not_its_ends(monkeypatch) -> None:
    writer = _typed_alone(7, 12_000)
    whole = writer.get_update()
    delta = Document.from_update(whole)
    assert update_footprint(whole).deletes_only(7)  # what the checkpoint check reads before the join
    delta.whole_state()
    monkeypatch.setattr(pycrdt, "get_state", lambda update: pytest.fail("the update's ends were read"))
    state = Document(pycrdt.Doc())
    state.join(delta)
    assert state._held is None and state.clock(7) == state_clients(writer.get_state())[7]
    assert str(state.doc.get("text", type=pycrdt.Text)) == str(writer.get("text", type=pycrdt.Text))
