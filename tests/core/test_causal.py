"""``CausalIndex``: heads, covered version vectors and the per-object reach of each replica."""

from __future__ import annotations

import pytest

from crdtmem.clocks import CausalContext
from crdtmem.crdt import ORSet
from crdtmem.crdt.dotkernel import DotKernel
from crdtmem.identity import Identity
from crdtmem.protocol.batch import seal_batch
from crdtmem.protocol.causal import BadDependenciesError, CausalIndex, UnobservedRemoveError
from crdtmem.values import encode_value

A = Identity.from_private_bytes(bytes([1] * 32))
B = Identity.from_private_bytes(bytes([2] * 32))


def _add(identity: Identity, state: ORSet, element: str) -> ORSet:
    return state.add(identity.peer_id, encode_value(element))


def test_heads_are_the_applied_batches_no_other_depends_on() -> None:
    index = CausalIndex()
    a1 = seal_batch(A, 1, [("s", _add(A, ORSet(), "x"))])
    b1 = seal_batch(B, 1, [("s", _add(B, ORSet(), "y"))])
    index.record(a1)
    index.record(b1)
    assert index.heads() == tuple(sorted([a1.hash, b1.hash]))
    a2 = seal_batch(A, 2, [("s", _add(A, ORSet(), "z"))], deps=index.heads())
    assert index.as_dict(index.check(a2)) == {A.peer_id: 2, B.peer_id: 1}
    index.record(a2)
    assert index.heads() == (a2.hash,)
    assert index.missing(a2) == [] and len(index) == 3


def test_a_removal_may_reach_only_as_far_as_the_covered_batches_created_dots() -> None:
    index = CausalIndex()
    state = ORSet()
    b1 = seal_batch(B, 1, [("s", _add(B, state, "x"))])  # B's dot 1 in "s"
    b2 = seal_batch(B, 2, [("s", _add(B, state, "y"))], deps=(b1.hash,))  # B's dot 2
    for batch in (b1, b2):
        index.record(batch)
    observed_one = seal_batch(A, 1, [("s", ORSet(DotKernel(ctx=CausalContext({B.peer_id: 1}))))], deps=(b1.hash,))
    assert index.as_dict(index.check(observed_one)) == {A.peer_id: 1, B.peer_id: 1}
    overreach = seal_batch(A, 1, [("s", ORSet(DotKernel(ctx=CausalContext({B.peer_id: 2}))))], deps=(b1.hash,))
    with pytest.raises(UnobservedRemoveError):
        index.check(overreach)
    other_object = seal_batch(A, 1, [("t", ORSet(DotKernel(ctx=CausalContext({B.peer_id: 1}))))], deps=(b2.hash,))
    with pytest.raises(UnobservedRemoveError):  # B made no dot in "t"
        index.check(other_object)


def test_dependencies_must_cover_the_authors_previous_batch_and_no_refused_one() -> None:
    index = CausalIndex()
    a1 = seal_batch(A, 1, [("s", _add(A, ORSet(), "x"))])
    index.record(a1)
    with pytest.raises(BadDependenciesError):
        index.check(seal_batch(A, 2, [("s", _add(A, ORSet(), "y"))]))
    bad = seal_batch(B, 1, [("s", _add(B, ORSet(), "z"))])
    index.refuse(bad)
    assert index.refused(bad.hash)
