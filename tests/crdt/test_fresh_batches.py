"""A batch of fresh writes joins in time proportional to the batch, whatever the state holds."""

from __future__ import annotations

from crdtmem.clocks import CausalContext, Dot
from crdtmem.crdt import ORSet
from crdtmem.memory import group_deltas
from crdtmem.values import encode_value


def _grouped_adds(writer: ORSet, replica: str, elements: range) -> ORSet:
    """The one delta group a writer's flush would sign for these adds."""
    ((_, group),) = group_deltas([("s", writer.add(replica, encode_value(e))) for e in elements])
    return group


def test_cloud_pairs_upto_keeps_the_strays_the_other_context_has_seen_this_far() -> None:
    ctx = CausalContext(None, [Dot("a", 5), Dot("a", 6), Dot("a", 9), Dot("b", 4), Dot("c", 2)])
    seen = CausalContext({"a": 6, "b": 3})
    assert sorted(ctx.cloud_pairs_upto(seen)) == [("a", 5), ("a", 6), ("c", 2)]  # c: seen nothing of it, all kept
    assert sorted(ctx.cloud_pairs_upto(CausalContext())) == sorted(ctx.cloud_pairs())
    assert CausalContext(None, [Dot("a", 7), Dot("a", 8)]).cloud_pairs_upto(seen) == []


def test_a_batch_of_fresh_adds_joins_without_indexing_the_state_by_dot() -> None:
    writer, reader = ORSet(), ORSet()
    reader.join(_grouped_adds(writer, "w", range(0, 2000)))
    changed = reader.join(_grouped_adds(writer, "w", range(2000, 2100)))
    assert reader._owner is None  # no dot → key index of the 2,000 held entries was needed
    assert len(changed) == 101  # the 100 new elements and the context
    assert reader == writer


def test_a_stray_dot_the_state_has_seen_still_removes_its_element() -> None:
    writer, reader = ORSet(), ORSet()
    reader.join(_grouped_adds(writer, "w", range(0, 10)))
    removal = writer.remove(encode_value(4))  # context: the one dot (w, 5), a stray below what the reader saw
    assert removal.ctx.cloud_pairs() == [("w", 5)]
    assert reader.join(removal)
    assert encode_value(4) not in reader and reader == writer


def test_a_run_of_dots_continuing_the_context_joins_into_its_version_vector() -> None:
    run = CausalContext(None, [Dot("a", c) for c in range(4, 11)])
    ctx = CausalContext({"a": 3}, [Dot("a", 11), Dot("a", 14)])
    assert ctx.join(run)
    assert ctx == CausalContext({"a": 11}, [Dot("a", 14)])  # the run, then the stray it reached
    gapped = CausalContext({"a": 3})
    assert gapped.join(CausalContext(None, [Dot("a", 4), Dot("a", 5), Dot("a", 7)]))
    assert gapped == CausalContext({"a": 5}, [Dot("a", 7)])
    assert not gapped.join(CausalContext(None, [Dot("a", 4), Dot("a", 5)]))  # nothing new


def test_an_add_delivered_again_after_its_removal_stays_removed() -> None:
    writer, reader = ORSet(), ORSet()
    add = _grouped_adds(writer, "w", range(0, 5))
    reader.join(add)
    reader.join(writer.remove(encode_value(3)))
    assert not reader.join(add)  # a duplicate: nothing changes, no element comes back
    assert encode_value(3) not in reader and reader == writer
