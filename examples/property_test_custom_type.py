"""Property-testing your own CRDT type with ``crdtmem.testing``.

``check_join_laws`` runs a Hypothesis search over random histories (replicas writing,
deltas lost, duplicated and reordered, states merged) and checks that join is commutative,
associative and idempotent, that every mutator's delta is correct, and that equal states
encode to equal bytes. Here a correct type passes, and a subtly wrong one is caught.

Run: python examples/property_test_custom_type.py   (or collect it with pytest)
"""

from __future__ import annotations

import json

from hypothesis import Phase, settings
from hypothesis import strategies as st

from crdtmem.testing import CrdtAdapter, Op, check_join_laws


class MaxMap:
    """A map of keys to the largest number ever written there (a correct CRDT)."""

    def __init__(self, entries: dict[str, int] | None = None) -> None:
        self.entries = dict(entries or {})

    def raise_to(self, key: str, value: int) -> MaxMap:
        """Mutator: changes the state, returns the delta."""
        if value > self.entries.get(key, value - 1):
            self.entries[key] = value
        return MaxMap({key: self.entries[key]})

    def join(self, other: MaxMap) -> MaxMap:
        for key, value in other.entries.items():
            self.entries[key] = max(value, self.entries.get(key, value))
        return self

    def copy(self) -> MaxMap:
        return type(self)(self.entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MaxMap) and self.entries == other.entries

    def __repr__(self) -> str:
        return f"MaxMap({self.entries})"


class LastWriteMap(MaxMap):
    """Wrong: 'the incoming value wins' — not commutative, so replicas would diverge."""

    def join(self, other: MaxMap) -> MaxMap:
        self.entries.update(other.entries)
        return self


def adapter(cls: type[MaxMap]) -> CrdtAdapter[MaxMap]:
    ops = st.builds(lambda k, v: Op("raise_to", lambda s, r, k, v: s.raise_to(k, v), k, v),
                    st.sampled_from("xyz"), st.integers(0, 50))
    return CrdtAdapter(
        zero=cls,
        mutators=ops,
        encode=lambda s: json.dumps(s.entries, sort_keys=True).encode(),
        decode=lambda b: cls(json.loads(b)),
        name=cls.__name__,
    )


def test_max_map_is_a_crdt() -> None:
    check_join_laws(adapter(MaxMap), settings=settings(max_examples=50, deadline=None))


def test_last_write_map_is_caught() -> None:
    try:
        # Without shrinking, to keep the example fast; in your suite keep Hypothesis' default
        # phases and it reports the smallest history that breaks the law.
        check_join_laws(adapter(LastWriteMap), settings=settings(
            max_examples=200, deadline=None, database=None, phases=[Phase.generate]))
    except AssertionError as exc:
        print("LastWriteMap rejected, as it should be:", str(exc).splitlines()[0])
    else:
        raise SystemExit("LastWriteMap passed the laws: the check is broken")


if __name__ == "__main__":
    test_max_map_is_a_crdt()
    print("MaxMap: every CRDT law holds")
    test_last_write_map_is_caught()
