"""Joining Yjs updates into a live document: what reports a change, and delta groups."""

from __future__ import annotations

import pycrdt

from crdtmem.crdt.base import WHOLE
from crdtmem.crdt.document import Document


def _edits() -> list[bytes]:
    doc = pycrdt.Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text = doc.get("text", type=pycrdt.Text)
    text.insert(0, "hello")
    text.insert(5, " world")
    del text[0:2]
    return updates


def test_a_new_update_reports_a_change_and_a_repeated_one_does_not() -> None:
    live = Document()
    insert, more, delete = _edits()
    assert live.join(Document.from_update(insert)) == {WHOLE}
    assert live.join(Document.from_update(insert)) == set()
    assert live.join(Document.from_update(more)) == {WHOLE}
    assert live.join(Document.from_update(delete)) == {WHOLE}  # a delete-only update changes the text
    assert live.join(Document.from_update(delete)) == set()
    assert live.doc.get("text", type=pycrdt.Text).to_py() == "llo world"


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
