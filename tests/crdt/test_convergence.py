"""Replicas that write at random and sync over a lossy, reordering network converge.

Runs crdtmem.testing.ReplicaMachine (3 replicas) and a subclass with 4 replicas and an extra
rule, the way a user would extend it.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule

from crdtmem.testing import ReplicaMachine

MACHINE_SETTINGS = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class ThreeReplicas(ReplicaMachine):
    """The machine as shipped: alice, bob and carol."""


class FourReplicasWithNotes(ReplicaMachine):
    """A user's subclass: one more replica and a rule for the user's own object."""

    replica_ids = ("agent-a", "agent-b", "agent-c", "agent-d")

    @rule(r=st.integers(0, 3), note=st.sampled_from(["plan", "done", "todo"]))
    def add_note(self, r: int, note: str) -> None:
        self.replicas[r].set("notes").add(note)
        self.ship(r)


ThreeReplicas.TestCase.settings = MACHINE_SETTINGS
FourReplicasWithNotes.TestCase.settings = settings(MACHINE_SETTINGS, max_examples=25)

TestThreeReplicasConverge = ThreeReplicas.TestCase
TestFourReplicasWithAUserRuleConverge = FourReplicasWithNotes.TestCase


def test_full_sync_after_lost_and_reordered_deltas_converges() -> None:
    """A fixed scenario of the machine: every kind of write, half the deltas lost, then sync."""
    machine = ThreeReplicas()
    try:
        machine.set_add(0, "a")
        machine.set_remove(1, "a")
        machine.counter_increment(2, 3)
        machine.pncounter_change(1, 2, up=False)
        machine.register_assign(0, [1, 2])
        machine.mvregister_assign(1, "x")
        machine.mvregister_assign(2, "y")
        machine.map_put(0, "a", {"k": 1})
        machine.map_remove(1, "a")
        machine.doc_insert(2, 0, "hello")
        machine.doc_insert(0, 0, "hi")
        machine.gset_add(1, b"a")
        for pick in range(len(machine.in_flight) // 2):
            machine.drop(pick * 7)
        machine.deliver(5, keep=True)
        machine.deliver(5, keep=False)
        machine.full_sync()
        values = machine.replicas[0].values()
        assert values["counter"] == 3
        assert values["pncounter"] == -2
        assert values["mvregister"] == {"x", "y"}
        assert values["doc"]["text"] in ("hellohi", "hihello")
    finally:
        machine.teardown()
