"""Churn: agents that live about a minute each, and what their vectors cost while they come and go.

``alive`` peers run at all times. Each one stops after a lifetime drawn from ``lifetime`` —
a clean exit (:class:`~.scenario.Crash` with ``clean=True``: it retires its incarnation), or
with probability ``crash_share`` a SIGKILL — and starts again at once from its store, which,
like every start, makes it a new incarnation of its key: the shape of a team whose short-lived
sub-agents come and go. Writes arrive at ``writes_per_life`` per lifetime per peer.

Call :func:`run_churn`: it samples, every virtual minute, the vectors of the live peers
(:func:`~.vectors.vector_sizes`) and the causal contexts of the batches sealed that minute
(:func:`~.vectors.batch_context_cost`), then stops the churn, runs until every live replica
holds the same state, and checks with a :class:`~.ledger.SealedWrites` ledger that none
lacks a sealed write. ``churn=False`` runs the same peers and writes with no one ever
stopping: the reference the benchmark divides by.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import mean
from typing import Any

from ..protocol.batch import peek_batch
from ..protocol.node import NodeConfig
from .engine import Simulation
from .ledger import SealedWrites
from .scenario import Crash, Scenario
from .simpeer import SimPeer
from .vectors import ContextCost, batch_context_cost, vector_sizes

__all__ = ["ChurnSpec", "churn_scenario", "run_churn"]

_QUIESCENCE_STEP = 10.0


@dataclass(frozen=True)
class ChurnSpec:
    """One churn run's parameters (a seed and sizes; everything else derives from them)."""

    alive: int = 50
    minutes: int = 20
    seed: int = 1
    churn: bool = True
    """False: the reference, the same peers and writes with no one ever stopping."""
    crash_share: float = 0.1
    """Share of the stops that are SIGKILLs; the others are clean exits."""
    lifetime: tuple[float, float] = (45.0, 75.0)
    """An incarnation lives a uniform draw from this range, in virtual seconds."""
    writes_per_life: float = 3.0
    workload: str = "counter=1,facts=1,map=1,log=1"
    node: NodeConfig = field(default_factory=lambda: NodeConfig(gossip_interval=5.0, anti_entropy_interval=60.0))
    quiescence_limit: float = 600.0
    """Virtual seconds after the churn allowed for every replica to converge."""


def churn_scenario(spec: ChurnSpec) -> Scenario:
    """The scenario of ``spec``: its stops and restarts, writes until the last minute."""
    rng = random.Random(spec.seed)
    duration = 60.0 * spec.minutes
    low, high = spec.lifetime
    crashes = []
    if spec.churn:
        for peer in range(spec.alive):
            t = rng.uniform(low, high)
            while t < duration:
                crashes.append(Crash(peer, t, t + 0.01, "kept", clean=rng.random() >= spec.crash_share))
                t += 0.01 + rng.uniform(low, high)
    writes = spec.alive * spec.writes_per_life / ((low + high) / 2)
    return Scenario(peers=spec.alive, seed=spec.seed, crashes=crashes, writes=writes, write_until=duration,
                    workload=spec.workload, duration=duration + spec.quiescence_limit,
                    sample_interval=_QUIESCENCE_STEP, node=spec.node)


class _Collector:
    """What the sealing hook collects: the ledger and authors of the run, the costs since the last sample."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.ledger = SealedWrites(max_size=max_size)
        self.authors: set[str] = set()
        self.costs: list[ContextCost] = []

    def sealed(self, peer: SimPeer, wire: bytes) -> None:
        self.ledger.record(wire)
        self.authors.add(peek_batch(wire)[0])
        self.costs.append(batch_context_cost(wire, max_size=self.max_size))


def run_churn(spec: ChurnSpec, *, progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run ``spec``; return its per-minute samples and final check as plain data (JSON-ready).

    Args:
        progress: called with each minute's sample as it is taken.
    """
    began, cpu_began = time.perf_counter(), time.process_time()
    scenario = churn_scenario(spec)
    collected = _Collector(spec.node.max_message_bytes)
    sim = Simulation(scenario, on_sealed=collected.sealed)
    stops = sorted(c.at for c in scenario.crashes)
    samples = []
    for minute in range(1, spec.minutes + 1):
        sim.run_until(60.0 * minute)
        sample = _sample(sim, collected, minute, started=spec.alive + _count_until(stops, 60.0 * minute))
        sample["wall_s"] = round(time.perf_counter() - began, 1)
        sample["cpu_s"] = round(time.process_time() - cpu_began, 1)
        collected.costs = []
        samples.append(sample)
        if progress is not None:
            progress(sample)
    final = _quiesce(sim, collected, spec)
    return {
        "alive": spec.alive, "minutes": spec.minutes, "seed": spec.seed, "churn": spec.churn,
        "crash_share": spec.crash_share, "lifetime_s": list(spec.lifetime),
        "incarnations_started": spec.alive + len(stops),
        "clean_exits": sum(c.clean for c in scenario.crashes),
        "crashes": sum(not c.clean for c in scenario.crashes),
        "incarnations_wrote": len(collected.authors),
        "writes": sim.writes_done, "batches_sealed": collected.ledger.batches,
        "samples": samples, "final": final,
        "wall_s": round(time.perf_counter() - began, 1), "cpu_s": round(time.process_time() - cpu_began, 1),
    }


def _count_until(times: list[float], t: float) -> int:
    return sum(1 for x in times if x <= t)


def _sample(sim: Simulation, collected: _Collector, minute: float, *, started: int) -> dict[str, Any]:
    sizes = [vector_sizes(p) for p in sim.live_peers()]
    costs = collected.costs
    return {
        "minute": minute,
        "alive": len(sizes),
        "ever_started": started,
        "ever_wrote": len(collected.authors),
        "seen_entries_mean": round(mean(s.seen_entries for s in sizes), 1),
        "seen_entries_max": max(s.seen_entries for s in sizes),
        "sync_bytes_mean": round(mean(s.sync_bytes for s in sizes)),
        "sync_bytes_max": max(s.sync_bytes for s in sizes),
        "context_entries_mean": round(mean(s.context_entries for s in sizes), 1),
        "retired_mean": round(mean(s.retired for s in sizes), 1),
        "covered_entries_per_batch": round(mean(s.covered_per_batch for s in sizes), 2),
        "batches_sealed": len(costs),
        "batch_context_entries_mean": round(mean(c.entries for c in costs), 2) if costs else 0.0,
        "batch_context_bytes_mean": round(mean(c.bytes for c in costs), 1) if costs else 0.0,
        "batch_context_bytes_max": max((c.bytes for c in costs), default=0),
    }


def _quiesce(sim: Simulation, collected: _Collector, spec: ChurnSpec) -> dict[str, Any]:
    """Run on (no more stops or writes) until every live replica converged and holds every sealed
    write, or the limit passes; the vectors then, and what was lacking."""
    churn_end = 60.0 * spec.minutes
    end = churn_end + spec.quiescence_limit
    check = sim.check()
    lacking: dict[int, list[str]] = {}
    while True:
        if check.converged:
            lacking = {p.index: m for p in sim.live_peers() if (m := collected.ledger.missing(p.memory))}
            if not lacking:
                break
        if sim.now >= end:
            break
        sim.run_until(min(end, sim.now + _QUIESCENCE_STEP))
        check = sim.check()
    collected.costs = []
    return {
        "converged": check.converged,
        "quiet_after_s": round(sim.now - churn_end, 1),
        "writes_checked": collected.ledger.writes(),
        "peers_lacking_writes": len(lacking),
        "lacking_example": next(iter(lacking.values()), [])[:5],
        "vectors": _sample(sim, collected, round(sim.now / 60.0, 2), started=spec.alive + len(sim.scenario.crashes)),
    }
