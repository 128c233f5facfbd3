"""The CRDT laws: join is a semilattice, deltas are correct, the encoding is canonical.

:func:`check_join_laws` runs the whole search for one type; the ``assert_*`` functions check
one law on given states, for your own ``@given`` tests. Each raises ``AssertionError`` naming
the broken law and the states that break it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from hypothesis import HealthCheck, given
from hypothesis import settings as Settings
from hypothesis import strategies as st

from .adapters import CrdtAdapter
from .history import Mutation, histories

__all__ = ["assert_join_laws", "assert_delta_law", "assert_encoding_round_trip", "check_join_laws"]

S = TypeVar("S")


def _law(holds: bool, adapter: CrdtAdapter[Any], law: str, **shown: Any) -> None:
    if not holds:
        where = f" for {adapter.name}" if adapter.name else ""
        details = "\n".join(f"  {k} = {v!r}" for k, v in shown.items())
        raise AssertionError(f"{law} does not hold{where}:\n{details}")


def assert_join_laws(adapter: CrdtAdapter[S], a: S, b: S, c: S) -> None:
    """Assert that join is commutative, associative and idempotent on ``a``, ``b``, ``c``.

    Also that ``zero`` is the identity, and, if the adapter has ``encode``, that the equal
    states these laws produce encode to equal bytes. Call it from your own ``@given`` test
    with states of one system (see :func:`histories`), or let :func:`check_join_laws` do it.
    """
    eq, j = adapter.equal, adapter.joined
    ab, ba = j(a, b), j(b, a)
    _law(eq(ab, ba), adapter, "commutativity (a ⊔ b == b ⊔ a)", a=a, b=b, a_b=ab, b_a=ba)
    ab_c, a_bc = j(ab, c), j(a, j(b, c))
    _law(eq(ab_c, a_bc), adapter, "associativity ((a ⊔ b) ⊔ c == a ⊔ (b ⊔ c))", a=a, b=b, c=c, left=ab_c, right=a_bc)
    aa = j(a, a)
    _law(eq(aa, a), adapter, "idempotence (a ⊔ a == a)", a=a, a_a=aa)
    za = adapter.join(adapter.zero(), a)
    _law(eq(za, a), adapter, "identity (zero ⊔ a == a)", a=a, zero_a=za)
    _law(eq(j(ab, a), ab), adapter, "upper bound ((a ⊔ b) ⊔ a == a ⊔ b)", a=a, b=b, a_b=ab)
    if adapter.encode is not None:
        enc = adapter.encode
        for law, x, y in (
            ("canonical encoding of a ⊔ b and b ⊔ a", ab, ba),
            ("canonical encoding of (a ⊔ b) ⊔ c and a ⊔ (b ⊔ c)", ab_c, a_bc),
            ("canonical encoding of a ⊔ a and a", aa, a),
            ("canonical encoding of zero ⊔ a and a", za, a),
        ):
            ex, ey = enc(x), enc(y)
            _law(ex == ey, adapter, law, left=x, right=y, left_bytes=ex, right_bytes=ey)


def assert_delta_law(adapter: CrdtAdapter[S], mutation: Mutation[S]) -> None:
    """Assert that joining a mutator's delta into the state it was made from gives the new state.

    That is ``before ⊔ delta == after``, and delivering the delta again changes nothing.
    """
    eq, j = adapter.equal, adapter.joined
    rebuilt = j(mutation.before, mutation.delta)
    _law(
        eq(rebuilt, mutation.after),
        adapter,
        f"delta law (before ⊔ {mutation.op!r}'s delta == after)",
        replica=mutation.replica,
        before=mutation.before,
        delta=mutation.delta,
        after=mutation.after,
        before_delta=rebuilt,
    )
    again = j(mutation.after, mutation.delta)
    _law(eq(again, mutation.after), adapter, "redelivery (after ⊔ delta == after)", delta=mutation.delta, after=mutation.after)
    if adapter.encode is not None:
        _law(adapter.encode(rebuilt) == adapter.encode(mutation.after), adapter, "canonical encoding of before ⊔ delta and after", rebuilt=rebuilt, after=mutation.after)


def assert_encoding_round_trip(adapter: CrdtAdapter[S], state: S) -> None:
    """Assert ``decode(encode(s)) == s`` and that re-encoding gives the same bytes."""
    if adapter.encode is None or adapter.decode is None:
        return
    data = adapter.encode(state)
    back = adapter.decode(data)
    _law(adapter.equal(back, state), adapter, "round trip (decode(encode(s)) == s)", state=state, decoded=back)
    again = adapter.encode(back)
    _law(again == data, adapter, "stable encoding (encode(decode(b)) == b)", state=state, first=data, second=again)


_LAW_SETTINGS = Settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check_join_laws(
    adapter: CrdtAdapter[Any],
    *,
    replicas: Sequence[str] = ("alice", "bob", "carol"),
    max_steps: int = 12,
    triples: int = 3,
    settings: Settings | None = None,
) -> None:
    """Check every CRDT law on random histories of the type described by ``adapter``.

    Call it from a plain test function (not from inside another ``@given``); it runs its own
    Hypothesis search and raises ``AssertionError`` naming the broken law and the (shrunk)
    states. Per generated history it checks the delta law for every mutation, the join laws
    on ``triples`` random triples of states, and encoding round trips on every state.

    Args:
        adapter: the type under test.
        replicas: replica ids used in the histories.
        max_steps: most steps per history.
        triples: how many (a, b, c) triples to check per history.
        settings: Hypothesis settings; default 60 examples, no deadline.
    """

    @given(data=st.data())
    def crdt_laws(data: st.DataObject) -> None:
        history = data.draw(histories(adapter, replicas=replicas, max_steps=max_steps), label="history")
        for mutation in history.mutations:
            assert_delta_law(adapter, mutation)
        pool = [adapter.zero(), *history.states]
        pick = st.integers(0, len(pool) - 1)
        for n in range(triples):
            i, k, m = (data.draw(pick, label=f"triple {n} {part}") for part in "abc")
            assert_join_laws(adapter, pool[i], pool[k], pool[m])
        for state in pool:
            assert_encoding_round_trip(adapter, state)

    (settings or _LAW_SETTINGS)(crdt_laws)()

