"""The relay path of the real Node, through the simulator's modelled broker (seeded, virtual time)."""

from __future__ import annotations

import pytest

from crdtmem.errors import RefusalReason
from crdtmem.identity import Identity
from crdtmem.protocol.batch import seal_batch
from crdtmem.simulation import BrokerOutage, Crash, Scenario, Simulation, simulate
from crdtmem.simulation.broker import BrokerSpec


def relay_only(**kwargs) -> Scenario:
    return Scenario(**{"peers": 12, "topology": "none", "broker": "publish=20us,deliver=1us", "writes": 10.0,
                       "duration": 20.0, **kwargs})


def test_peers_with_no_links_converge_through_the_broker() -> None:
    report = simulate(relay_only(seed=1))
    assert report["converged"] and report["topology"]["links"] == 0
    assert report["broker"]["stored"] == report["writes"]["made"]  # one stream message per write


def test_a_broker_outage_delays_writes_and_loses_none() -> None:
    report = simulate(relay_only(seed=2, broker_outages=[BrokerOutage(at=5.0, up_at=10.0)]))
    assert report["converged"]
    assert report["convergence_time_after_heal"] < 1.0
    assert [e["event"] for e in report["timeline"]] == ["broker-down", "broker-up"]


def test_a_peer_away_longer_than_retention_reconciles_over_the_broker() -> None:
    scenario = relay_only(seed=3, broker="publish=20us,retention=2s", crashes=[Crash(peer=4, at=3.0, restart_at=12.0)],
                          write_until=10.0)
    sim = Simulation(scenario)
    sim.run()
    assert sim.check().converged
    assert sim.broker.stats["expired"] > 0
    # What the stream no longer held came in a peer's answer, not from the stream.
    peer = sim.peers[4].node
    assert peer.stats.relay_delivered < peer.stats.batches_applied


def test_relay_peers_bridge_the_mesh_and_the_broker() -> None:
    # Peers 0..2 use the broker; the others only their ring links.
    report = simulate(Scenario(peers=10, topology="ring", broker="publish=20us", broker_peers=3, writes=10.0,
                               duration=20.0, seed=4))
    assert report["converged"]
    assert report["broker"]["duplicates_dropped"] > 0  # bridges published the same mesh batch; stored once


def test_garbage_on_the_stream_is_refused_and_changes_nothing() -> None:
    sim = Simulation(relay_only(seed=5, writes=0.0))
    sim.advance(1.0)
    stranger = Identity.generate()
    forged = seal_batch(stranger, 1, [], ()).wire.replace(stranger.peer_id.encode(), sim.peers[0].peer_id.encode())
    roots = sim.roots()
    for wire in (b"\x00garbage", forged):
        sim.broker.inject(wire)
    sim.advance(1.0)
    assert sim.roots() == roots
    for peer in sim.peers:
        refusals = peer.node.stats.refusals
        assert refusals[RefusalReason.MALFORMED_MESSAGE] == 1
        assert refusals[RefusalReason.BAD_BATCH_SIGNATURE] == 1
    sim.write(3, lambda m: m.counter("after").increment())  # the relay still carries honest writes
    sim.advance(1.0)
    assert sim.check().converged and sim.peers[0].memory.counter("after").value == 1


def test_a_busy_broker_queues_publishes() -> None:
    report = simulate(relay_only(seed=6, peers=50, broker="publish=50ms", writes=40.0, duration=10.0))
    assert report["converged"]
    assert report["broker"]["max_backlog_ms"] > 50


@pytest.mark.parametrize("spec", ["publish", "retention=0", "speed=1ms"])
def test_a_bad_broker_spec_is_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        BrokerSpec.parse(spec)
    with pytest.raises(ValueError):
        Scenario(broker=spec)


def test_a_scenario_with_a_broker_replays_from_its_report() -> None:
    scenario = relay_only(seed=7, broker_outages=[BrokerOutage(at=2.0, up_at=3.0)], broker_peers=5)
    assert Scenario.from_dict(scenario.to_dict()) == scenario
