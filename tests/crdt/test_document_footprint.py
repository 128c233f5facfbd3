"""update_footprint: what a Yjs update inserts (per client, up to which clock) and deletes."""

from __future__ import annotations

import pycrdt
import pytest

from crdtmem.crdt.document import state_clients, update_footprint


def _edit(doc: pycrdt.Doc, change) -> bytes:
    before = doc.get_state()
    with doc.transaction():
        change()
    return doc.get_update(before)


def test_footprint_counts_a_later_struct_group_from_zero_and_reads_its_delete_set() -> None:
    a = pycrdt.Doc(client_id=111)
    text = a.get("text", type=pycrdt.Text)
    first = _edit(a, lambda: text.insert(0, "hello world"))
    assert update_footprint(first) == ({111: 11}, {})
    b = pycrdt.Doc(client_id=222)
    b.apply_update(a.get_update())
    theirs = b.get("text", type=pycrdt.Text)
    update = _edit(b, lambda: (theirs.insert(5, "XX\N{GRINNING FACE}"), theirs.__delitem__(slice(0, 3))))
    assert update_footprint(update) == ({222: 4}, {111: [(0, 3)]})  # the emoji is 2 UTF-16 units

    def later() -> None:
        theirs.insert(0, "ZZ")
        b.get("m", type=pycrdt.Map)["k"] = {"a": [1, 2.5, None, True, "x"]}
        b.get("arr", type=pycrdt.Array).extend([pycrdt.Text("in"), 1, 2])

    update = _edit(b, later)  # its struct group starts at clock 4
    ends, _ = update_footprint(update)
    assert ends == {222: state_clients(b.get_state())[222]} and ends[222] > 4


def test_footprint_refuses_what_it_cannot_read() -> None:
    with pytest.raises(ValueError):
        update_footprint(b"\x01\x05")
