"""Incarnations of an identity, memories taking one, and the keyring's admin marks."""

from __future__ import annotations

import random

import pycrdt
import pytest

from crdtmem import Memory
from crdtmem.crdt.document import yjs_client_id
from crdtmem.identity import Identity, Keyring, key_id_of, new_incarnation


def test_every_start_draws_a_distinct_incarnation_its_key_signs_for() -> None:
    peer_id = Identity.generate().peer_id
    rng = random.Random(4)
    incarnations = {new_incarnation(peer_id, rng) for _ in range(1000)}
    assert len(incarnations) == 1000
    assert {key_id_of(i) for i in incarnations} == {peer_id}
    assert key_id_of(peer_id) == peer_id, "a bare peer id is its own key's"


def test_a_memory_taking_an_incarnation_keeps_its_objects_and_rebinds_its_documents() -> None:
    peer_id = Identity.generate().peer_id
    source = Memory("elsewhere")
    text = source.doc("notes").get("text", type=pycrdt.Text)
    text += "kept"
    restored = Memory(peer_id)
    restored.merge(source)  # as a peer restores its store into a fresh memory
    restored.incarnate(f"{peer_id}.aaaaaaaa")
    doc = restored.doc("notes")
    assert str(doc.get("text", type=pycrdt.Text)) == "kept"
    assert doc.client_id == yjs_client_id(f"{peer_id}.aaaaaaaa")
    doc.get("text", type=pycrdt.Text).insert(4, "!")
    (name, delta), = restored.take_deltas()
    assert name == "notes" and delta.only_writes_as(f"{peer_id}.aaaaaaaa")


def test_a_memory_refuses_a_new_incarnation_over_writes_made_under_the_old_one() -> None:
    memory = Memory("me")
    memory.counter("c").increment()
    with pytest.raises(ValueError, match="start the peer before writing"):
        memory.incarnate("me.aaaaaaaa")
    opened = Memory("me")
    opened.doc("notes")
    with pytest.raises(ValueError, match="document was opened"):
        opened.incarnate("me.aaaaaaaa")


def test_admin_marks_survive_a_keyring_file_round_trip() -> None:
    alice, bob = Identity.generate(), Identity.generate()
    text = f"{alice.public_key_text} alice +admin\n{bob.public_key_text} bob\n"
    keyring = Keyring.loads(text)
    assert keyring.is_admin(alice.peer_id) and not keyring.is_admin(bob.peer_id)
    assert keyring.comment(alice.peer_id) == "alice"
    again = Keyring.loads(keyring.dumps())
    assert again.is_admin(alice.peer_id) and again.comment(alice.peer_id) == "alice"
    assert not again.is_admin(bob.peer_id)
