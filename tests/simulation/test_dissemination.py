"""Each batch's spread (signing to the last peer applying it) is measured and reported."""

from __future__ import annotations

from crdtmem.simulation import Crash, NodeConfig, Scenario, Simulation
from crdtmem.simulation.metrics import Dissemination
from crdtmem.simulation.report import build_report

BATCHES = 12


def test_a_batch_counts_once_every_receiver_applied_it() -> None:
    spread = Dissemination()
    spread.signed("a", 1, 10.0)
    spread.applied(1, "a", 1, 10.02)
    assert spread.summary(2)["batches"] == 0  # one receiver of two so far
    spread.applied(2, "a", 1, 10.05)
    spread.signed("b", 1, 11.0)
    summary = spread.summary(2)
    assert summary["batches"] == 1 and summary["incomplete"] == 1
    assert round(summary["median"], 6) == round(summary["max"], 6) == 0.05


def test_a_checkpoint_counts_its_taker_for_each_batch_it_lacked_once() -> None:
    spread = Dissemination()
    for seq in (1, 2, 3, 4):
        spread.signed("a", seq, float(seq))
    spread.applied(1, "a", 1, 1.5)
    spread.applied(1, "a", 3, 3.5)  # out of order: batch 2 comes with the checkpoint
    spread.checkpoint_taken(1, "a", 3, 10.0)
    spread.applied(1, "a", 2, 11.0)  # a batch the checkpoint stood for, indexed later
    spread.applied(1, "a", 1, 12.0)
    assert [spread.receivers("a", seq) for seq in (1, 2, 3, 4)] == [1, 1, 1, 0]
    summary = spread.summary(1)
    assert summary["batches"] == 3 and summary["incomplete"] == 1
    assert summary["max"] == 10.0 - 2.0  # batch 2, counted when the checkpoint came


def test_a_peer_that_lost_its_store_counts_again_for_what_it_applies_anew() -> None:
    spread = Dissemination()
    spread.signed("a", 1, 0.0)
    spread.applied(1, "a", 1, 0.5)
    spread.store_lost(1)
    spread.checkpoint_taken(1, "a", 1, 30.0)
    assert spread.receivers("a", 1) == 2 and spread.summary(1)["max"] == 30.0


def test_the_report_gives_the_spread_of_every_batch_of_a_run() -> None:
    sim = Simulation(Scenario(peers=8, seed=3, topology="ring", latency="20ms", writes=4.0, write_until=3.0, duration=6.0))
    sim.run()
    report = build_report(sim)
    spread = report["dissemination"]
    assert report["converged"] and spread["incomplete"] == 0
    assert spread["batches"] == sim.batches_created > 0
    assert 0.08 <= spread["median"] <= spread["p90"] <= spread["max"]  # a ring of 8: four 20 ms hops at least


def _write_alone(sim: Simulation, index: int, batches: int, prefix: str) -> None:
    for i in range(batches):
        sim.write(index, lambda m, i=i: m.set("facts").add(f"{prefix}{i}"))
        sim.advance(0.05)


def test_a_late_joiner_that_takes_a_checkpoint_counts_for_the_batches_it_stands_for() -> None:
    """Peer 0 writes alone while peer 2 is down with its store lost; back, peer 2 takes one
    checkpoint for all of peer 0's batches and applies none of them."""
    scenario = Scenario(peers=3, seed=5, topology="mesh", writes=0, duration=60.0,
                        crashes=[Crash(2, 0.0, 10.0, "lost")], node=NodeConfig(checkpoint_min_batches=4))
    sim = Simulation(scenario)
    sim.advance(1.0)
    _write_alone(sim, 0, BATCHES, "early ")
    sim.advance(15.0 - sim.now)
    author, joiner = sim.peers[0].node.replica_id, sim.peers[2].node.stats
    assert joiner.checkpoints_applied == 1 and joiner.batches_applied == 0
    report = build_report(sim)
    assert report["converged"] and report["dissemination"]["incomplete"] == 0
    assert report["dissemination"]["batches"] == BATCHES
    assert all(sim.dissemination.receivers(author, seq) == 2 for seq in range(1, BATCHES + 1))
    assert report["dissemination"]["max"] >= 10.0 - 1.0  # the first batch reached peer 2 when it came back


def test_a_batch_a_checkpoint_stood_for_counts_once_when_it_comes_later() -> None:
    """Peer 1 got peer 0's first 3 batches and wrote after them; peer 0 then went on alone.
    Peer 2, back empty, takes peer 0's checkpoint; peer 1's batch names batch 3, which peer 2
    never saw, so it fetches and applies peer 0's batches the checkpoint stood for: each
    counts once for it."""
    scenario = Scenario(peers=3, seed=5, topology="mesh", writes=0, duration=60.0,
                        crashes=[Crash(2, 0.0, 10.0, "lost")], node=NodeConfig(checkpoint_min_batches=4))
    sim = Simulation(scenario)
    sim.advance(1.0)
    _write_alone(sim, 0, 3, "early ")
    sim.link_down((0, 1))
    sim.write(1, lambda m: m.set("facts").remove("early 1"))
    _write_alone(sim, 0, BATCHES, "later ")
    sim.link_down((1, 2))
    sim.advance(13.0 - sim.now)
    author, joiner = sim.peers[0].node.replica_id, sim.peers[2].node.stats
    assert joiner.checkpoints_applied == 1 and joiner.batches_applied == 0
    sim.link_up((0, 1))
    sim.link_up((1, 2))
    sim.advance(10.0)
    assert joiner.histories_wanted == 1
    assert joiner.batches_applied == 3 + 1  # peer 0's first 3, which the checkpoint stood for, and peer 1's
    report = build_report(sim)
    assert report["converged"] and report["dissemination"]["incomplete"] == 0
    assert all(sim.dissemination.receivers(author, seq) == 2 for seq in range(1, 4 + BATCHES))
