"""Churn in the simulator: clean exits retire their incarnation, kills are retired by the next
start, and under steady churn vectors track the agents alive while nothing is lost."""

from __future__ import annotations

import json
import random
from pathlib import Path

from crdtmem.cli.simulate import main as simulate_main
from crdtmem.simulation import Crash, Simulation
from crdtmem.simulation.churn import ChurnSpec, run_churn
from crdtmem.simulation.ledger import SealedWrites
from crdtmem.simulation.scenario import parse_crash
from crdtmem.simulation.vectors import vector_sizes

from .test_restart import small

SLACK = 3
"""Entries beyond the incarnations alive a vector may hold at a sample: incarnations that left
moments ago and whose last batch has not reached every peer yet."""


def test_a_clean_exit_sends_its_last_batch_and_every_peer_prunes_the_incarnation() -> None:
    sim = Simulation(small(peers=5, latency="5ms..60ms"))  # a close sent with a shorter latency still comes after the data
    sim.advance(1.5)
    leaving = sim.peers[0].node.replica_id
    sim.write(0, lambda m: m.gset("log").add("written just before leaving"))
    sim.crash(0, clean=True)  # at once: the write's batch and the retirement leave together
    assert sim.timeline[-1] == {"t": 1.5, "event": "crash", "peer": 0, "store": "kept", "clean": True}
    sim.advance(1.0)
    sim.write(1, lambda m: m.counter("c").increment())  # the witness: a batch that saw the last one
    sim.advance(1.0)
    for peer in sim.live_peers():
        assert "written just before leaving" in peer.memory.gset("log")
        assert leaving in peer.node.retired()
        assert leaving not in peer.node.seen.replicas()
    assert sim.check().converged


def test_a_killed_incarnation_is_retired_by_its_keys_next_start() -> None:
    sim = Simulation(small(peers=5))
    sim.advance(1.5)
    killed = sim.peers[1].node.replica_id
    sim.write(1, lambda m: m.counter("c").increment(2))
    sim.advance(0.5)
    sim.crash(1)
    sim.advance(1.0)
    assert all(killed in p.node.seen.replicas() for p in sim.live_peers())  # nobody knows it is gone
    sim.restart(1)
    sim.advance(3.0)
    for peer in sim.live_peers():
        assert killed in peer.node.retired() and killed not in peer.node.seen.replicas()
        assert peer.memory.counter("c").value == 2
    assert sim.check().converged


def test_steady_churn_keeps_vectors_near_the_agents_alive_and_loses_nothing() -> None:
    spec = ChurnSpec(alive=8, minutes=3, seed=3, crash_share=0.25, lifetime=(15.0, 25.0), writes_per_life=3.0)
    result = run_churn(spec)
    assert result["clean_exits"] > 0 and result["crashes"] > 0
    assert result["incarnations_wrote"] > 5 * spec.alive  # far more incarnations wrote than are alive
    for sample in result["samples"]:
        assert sample["alive"] == spec.alive
        assert sample["seen_entries_max"] <= spec.alive + SLACK, sample
        assert sample["covered_entries_per_batch"] <= spec.alive + SLACK, sample  # one vector per batch, pruned too
    final = result["final"]
    assert final["converged"] and final["peers_lacking_writes"] == 0, final
    assert final["writes_checked"] > 0
    assert final["vectors"]["seen_entries_max"] <= spec.alive, final  # quiet: only the incarnations alive
    assert final["vectors"]["retired_mean"] >= result["incarnations_wrote"] - spec.alive


def test_the_ledger_names_a_sealed_write_a_replica_lacks() -> None:
    sim = Simulation(small(topology="none"))  # no links: nothing propagates
    ledger = SealedWrites(max_size=sim.config.max_message_bytes)
    sim.on_sealed = lambda peer, wire: ledger.record(wire)
    sim.advance(0.5)
    sim.write(0, lambda m: (m.gset("log").add("x"), m.counter("c").increment(3)))
    sim.advance(0.5)
    assert ledger.writes() == 4
    assert ledger.missing(sim.peers[0].memory) == []
    lacking = ledger.missing(sim.peers[1].memory)
    assert len(lacking) == 2 and lacking[0].startswith("c: 3 increments of ") and lacking[1] == "log: 1 elements"


def test_vector_sizes_count_what_a_sync_carries() -> None:
    sim = Simulation(small(peers=5, writes=2.0, duration=10.0))
    sim.run()
    sizes = vector_sizes(sim.peers[0])
    assert sizes.seen_entries == len(sim.peers[0].node.seen.replicas()) == len(sim.peers)
    assert sizes.sync_bytes > 25 * sizes.seen_entries  # each entry names a 25-character incarnation
    vectors, entries = sim.peers[0].node.covered_vectors()
    assert vectors == len(sim.peers[0].node.log_wires()) and sizes.covered_per_batch == entries / vectors > 1


def test_exit_specs_parse_and_replay(tmp_path: Path) -> None:
    assert parse_crash("3@12-18", 10, random.Random(0), clean=True) == [Crash(3, 12.0, 18.0, "kept", True)]
    report = tmp_path / "run.json"
    args = ["--peers", "4", "--duration", "6", "--exit", "1@2-3", "--crash", "2@2-3", "-q", "--json", str(report)]
    assert simulate_main(args) == 0
    crashes = json.loads(report.read_text())["scenario"]["crashes"]
    assert crashes == [{"peer": 2, "at": 2.0, "restart_at": 3.0, "store": "kept"},
                       {"peer": 1, "at": 2.0, "restart_at": 3.0, "store": "kept", "clean": True}]
    again = tmp_path / "again.json"
    assert simulate_main(["--from-report", str(report), "-q", "--json", str(again)]) == 0
    assert json.loads(again.read_text())["scenario"]["crashes"] == crashes
