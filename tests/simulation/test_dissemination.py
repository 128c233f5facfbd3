"""Each batch's spread (signing to the last peer applying it) is measured and reported."""

from __future__ import annotations

from crdtmem.simulation import Scenario, Simulation
from crdtmem.simulation.metrics import Dissemination
from crdtmem.simulation.report import build_report


def test_a_batch_counts_once_every_receiver_applied_it() -> None:
    spread = Dissemination()
    spread.applied("a", 1, 10.0, local=True)
    spread.applied("a", 1, 10.02, local=False)
    assert spread.summary(2)["batches"] == 0  # one receiver of two so far
    spread.applied("a", 1, 10.05, local=False)
    spread.applied("b", 1, 11.0, local=True)
    summary = spread.summary(2)
    assert summary["batches"] == 1 and summary["incomplete"] == 1
    assert round(summary["median"], 6) == round(summary["max"], 6) == 0.05


def test_the_report_gives_the_spread_of_every_batch_of_a_run() -> None:
    sim = Simulation(Scenario(peers=8, seed=3, topology="ring", latency="20ms", writes=4.0, write_until=3.0, duration=6.0))
    sim.run()
    report = build_report(sim)
    spread = report["dissemination"]
    assert report["converged"] and spread["incomplete"] == 0
    assert spread["batches"] == sim.batches_created > 0
    assert 0.08 <= spread["median"] <= spread["p90"] <= spread["max"]  # a ring of 8: four 20 ms hops at least
