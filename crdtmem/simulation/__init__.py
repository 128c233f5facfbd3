"""Deterministic partition simulator: the real sans-I/O :class:`~crdtmem.protocol.node.Node`
on a seeded, virtual-time network (see DESIGN.md §1).

Quick use::

    from crdtmem.simulation import Scenario, Partition, simulate
    report = simulate(Scenario(peers=100, partitions=[Partition(at=5, heal_at=15)], duration=40))
    print(report["converged"], report["convergence_time_after_heal"])

or from a shell: ``crdtmem simulate --peers 100 --partition-at 5 --heal-at 15``.

Names load on first use, so ``crdtmem --help`` (which imports :mod:`.cli`) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "Simulation",
    "Scenario",
    "NodeConfig",
    "Partition",
    "Crash",
    "LinkFault",
    "BrokerOutage",
    "Latency",
    "Topology",
    "FinalCheck",
    "simulate",
    "final_check",
    "build_report",
    "dumps",
    "summary_lines",
    "plot_report",
    "parse_duration",
]

_LAZY = {
    "Simulation": "engine",
    "Scenario": "scenario",
    "NodeConfig": "scenario",
    "Partition": "scenario",
    "Crash": "scenario",
    "LinkFault": "scenario",
    "BrokerOutage": "scenario",
    "Latency": "latency",
    "parse_duration": "latency",
    "Topology": "topology",
    "FinalCheck": "verdict",
    "final_check": "verdict",
    "build_report": "report",
    "dumps": "report",
    "summary_lines": "report",
    "plot_report": "plot",
}


def simulate(scenario: Any, **kwargs: Any) -> dict[str, Any]:
    """Run ``scenario`` to its end and return the JSON-ready report."""
    from .engine import Simulation
    from .report import build_report

    sim = Simulation(scenario, **kwargs)
    sim.run()
    return build_report(sim)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
