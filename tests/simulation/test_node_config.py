"""A scenario composes the Node's config: every tunable can be simulated, reported and replayed."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest

from crdtmem.cli.main import build_parser
from crdtmem.cli.nodeflags import node_config_from_args
from crdtmem.cli.simulate import build_parser as simulate_parser
from crdtmem.cli.simulate import scenario_from_args
from crdtmem.protocol.node import NodeConfig
from crdtmem.simulation import Scenario, Simulation

OLD_KEYS = [
    "peers", "seed", "topology", "latency", "loss", "duplicate", "reorder", "transport", "partitions", "crashes",
    "link_faults", "skew", "writes", "write_from", "write_until", "workload", "writers", "keys", "flush_delay",
    "duration", "sample_interval", "stop_when_converged", "settle", "gossip_interval", "fanout",
    "anti_entropy_interval", "max_log_batches", "redial", "redial_max", "connect_rtts", "compaction_interval",
    "boot_spread",
]


def test_the_report_keeps_the_flat_scenario_keys_in_their_order() -> None:
    assert list(Scenario().to_dict()) == OLD_KEYS
    assert Scenario(node=NodeConfig(fanout=2)).to_dict()["fanout"] == 2


def test_a_tunable_off_its_default_is_reported_after_the_node_fields_and_replays() -> None:
    scenario = Scenario(node=NodeConfig(ack_delay=0.3, log_retention=60.0))
    data = scenario.to_dict()
    keys = list(data)
    assert keys[keys.index("anti_entropy_interval") + 1 : keys.index("max_log_batches")] == ["ack_delay", "log_retention"]
    again = Scenario.from_dict(json.loads(json.dumps(data)))
    assert again == scenario


def test_a_report_scenario_with_a_nested_node_dict_replays() -> None:
    assert Scenario.from_dict({"peers": 3, "node": {"relay_delay": 0.2}}).node == NodeConfig(relay_delay=0.2)


def test_unknown_and_invalid_tunables_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown scenario fields"):
        Scenario.from_dict({"gossip_period": 1.0})
    with pytest.raises(ValueError, match="ack_delay"):
        Scenario(node=NodeConfig(ack_delay=-1.0))
    with pytest.raises(ValueError, match="fanout"):
        Scenario(node=NodeConfig(fanout=0))


def test_the_simulated_nodes_run_the_scenarios_config() -> None:
    config = NodeConfig(gossip_interval=0.5, ack_delay=0.02, handshake_timeout=2.0)
    sim = Simulation(Scenario(peers=3, writes=0, duration=2.0, node=config))
    sim.advance(1.0)
    assert all(peer.node.config is config for peer in sim.peers)


def test_every_node_tunable_is_a_simulate_flag() -> None:
    args = simulate_parser().parse_args(["--ack-delay", "200ms", "--max-batch-wires-per-message", "16", "--fanout", "2"])
    node = scenario_from_args(args).node
    assert node == NodeConfig(ack_delay=0.2, max_batch_wires_per_message=16, fanout=2)


def test_every_node_tunable_is_a_peer_flag_with_nodeconfigs_default() -> None:
    base = ["peer", "--key", "k", "--trust", "t"]
    assert node_config_from_args(build_parser().parse_args(base)) == NodeConfig()
    for f in fields(NodeConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = int if f.default is None else type(f.default)  # None: an opt-in bound, a count
        if kind is bool:  # a switch: --name / --no-name
            flipped = flag if not f.default else "--no-" + flag[2:]
            parsed = node_config_from_args(build_parser().parse_args([*base, flipped]))
            assert getattr(parsed, f.name) is (not f.default)
            continue
        value = "7" if kind is int else "1.5"
        parsed = node_config_from_args(build_parser().parse_args([*base, flag, value]))
        assert getattr(parsed, f.name) == kind(value)


def test_the_log_bound_is_opt_in_and_positive() -> None:
    assert NodeConfig().max_log_batches is None  # every signed batch is kept by default
    assert Scenario(node=NodeConfig(max_log_batches=5)).node.max_log_batches == 5
    for bad in (0, 2.5, "10"):
        with pytest.raises(ValueError, match="max_log_batches"):
            Scenario(node=NodeConfig(max_log_batches=bad))
    with pytest.raises(SystemExit):
        build_parser().parse_args(["peer", "--key", "k", "--trust", "t", "--max-log-batches", "0"])
