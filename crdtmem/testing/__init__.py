"""Property-based checks for CRDTs: Hypothesis strategies, join-law checks, a replica machine.

Use this module from your own test suite:

* :func:`values` and :func:`stored_values` generate everything crdtmem can store.
* :func:`check_join_laws` checks that a CRDT type is a join-semilattice whose mutators return
  correct deltas and whose encoding is canonical. It drives the type through a small
  :class:`CrdtAdapter`, so it works on your own types too, with or without crdtmem's codec::

      from hypothesis import strategies as st
      from crdtmem.testing import CrdtAdapter, Op, check_join_laws

      class MaxRegister:
          def __init__(self, value=0):
              self.value = value

          def set(self, value):  # mutator: changes the state, returns the delta
              self.value = max(self.value, value)
              return MaxRegister(value)

      def test_max_register_is_a_crdt():
          check_join_laws(CrdtAdapter(
              zero=MaxRegister,
              mutators=st.integers(0, 99).map(lambda n: Op("set", lambda s, r, n: s.set(n), n)),
              join=lambda a, b: MaxRegister(max(a.value, b.value)),
              equal=lambda a, b: a.value == b.value,
          ))

* :class:`Cluster` runs real protocol nodes on a virtual clock over in-memory links that can
  lose, duplicate and reorder frames, be cut and healed; it answers convergence queries, so
  tests need not read node internals::

      cluster = Cluster(seed=1)
      cluster.add("alice")
      cluster.add("bob")
      cluster.connect("alice", "bob")
      cluster.memory("alice").set("facts").add("the sky is blue")
      assert cluster.run_until(cluster.converged, timeout=10)

* :class:`ReplicaMachine` is a Hypothesis state machine of several :class:`~crdtmem.Memory`
  replicas that write, lose, duplicate and reorder deltas, merge and sync; subclass it to add
  rules for your own objects.

The kit is split by concept: :mod:`.strategies`, :mod:`.adapters`, :mod:`.history`,
:mod:`.laws`, :mod:`.stateful` and :mod:`.cluster`; import every name from ``crdtmem.testing`` itself.

Like the rest of the core, this package does no I/O and reads no clock.
"""

from .adapters import (
    BUILTIN_TAGS,
    CrdtAdapter,
    Op,
    builtin_adapter,
    document_ops,
    gcounter_ops,
    gset_ops,
    lwwregister_ops,
    mvregister_ops,
    ormap_ops,
    orset_ops,
    pncounter_ops,
)
from .cluster import Cluster, Conn, LinkFaults, RawSession
from .history import History, Mutation, histories
from .laws import assert_delta_law, assert_encoding_round_trip, assert_join_laws, check_join_laws
from .stateful import ReplicaMachine
from .strategies import stored_values, values

__all__ = [
    "values",
    "stored_values",
    "Op",
    "CrdtAdapter",
    "Mutation",
    "History",
    "histories",
    "assert_join_laws",
    "assert_delta_law",
    "assert_encoding_round_trip",
    "check_join_laws",
    "gcounter_ops",
    "pncounter_ops",
    "gset_ops",
    "orset_ops",
    "lwwregister_ops",
    "mvregister_ops",
    "ormap_ops",
    "document_ops",
    "builtin_adapter",
    "BUILTIN_TAGS",
    "ReplicaMachine",
    "Cluster",
    "Conn",
    "LinkFaults",
    "RawSession",
]
