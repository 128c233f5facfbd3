"""The delta log's indexed answers agree with a plain scan of every logged batch."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from crdtmem.clocks import CausalContext, Dot
from crdtmem.protocol.batch import batch_hash
from crdtmem.protocol.deltalog import DeltaLog

authors = st.sampled_from(["a", "b", "c"])
dots = st.builds(Dot, authors, st.integers(1, 12))


@st.composite
def contexts(draw: st.DrawFn) -> CausalContext:
    context = CausalContext()
    for dot in draw(st.lists(dots, max_size=20)):
        context.add(dot)
    return context


def wire(dot: Dot) -> bytes:
    return f"{dot[0]}#{dot[1]}".encode()


def filled(dots_logged: list[Dot], cap: int = 1000) -> DeltaLog:
    log = DeltaLog(cap)
    for dot in dots_logged:
        log.add(dot, wire(dot), batch_hash(wire(dot)))
    return log


@given(st.lists(dots, max_size=30), contexts())
def test_missing_is_every_logged_batch_the_context_lacks(logged, seen):
    log = filled(logged)
    expected = {dot for dot in logged if dot not in seen}
    missing = log.missing(seen)
    assert {dot for dot, _ in missing} == expected
    assert all(w == wire(dot) for dot, w in missing)
    assert log.count_missing(seen) == len(expected)


def test_a_full_log_drops_its_oldest_batch_first():
    log = filled([Dot("b", 5), Dot("a", 1), Dot("a", 2)], cap=2)
    assert Dot("b", 5) not in log and len(log) == 2
    log.add(Dot("b", 1), wire(Dot("b", 1)), batch_hash(wire(Dot("b", 1))))
    assert Dot("a", 1) not in log and Dot("a", 2) in log and Dot("b", 1) in log
    assert log.by_hash(batch_hash(wire(Dot("a", 1)))) is None  # forgotten by hash too
    assert log.by_hash(batch_hash(wire(Dot("a", 2)))) == wire(Dot("a", 2))



def test_without_a_bound_no_batch_is_ever_dropped():
    logged = [Dot(author, seq) for seq in range(1, 2001) for author in ("a", "b")]
    log = DeltaLog()
    for dot in logged:
        log.add(dot, wire(dot), batch_hash(wire(dot)))
    assert len(log) == len(logged) and log.count_missing(CausalContext()) == len(logged)


def test_a_logged_wire_is_found_by_its_bytes_until_the_log_forgets_it():
    log = filled([Dot("a", 1), Dot("a", 2)], cap=2)
    assert log.dot_of(bytes(bytearray(wire(Dot("a", 1))))) == Dot("a", 1)  # an equal copy, as received
    assert log.dot_of(b"a#3") is None
    log.add(Dot("a", 3), wire(Dot("a", 3)), batch_hash(wire(Dot("a", 3))))
    assert log.dot_of(wire(Dot("a", 1))) is None and log.dot_of(wire(Dot("a", 3))) == Dot("a", 3)
