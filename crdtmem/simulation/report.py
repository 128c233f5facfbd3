"""Measures of a finished run: the final check, the JSON report and the human summary.

The JSON report is deterministic: the same scenario and seed give the same bytes, except the
fields under ``"wall"`` (wall-clock seconds and rates), which are grouped there on purpose.
Floats are rounded to microseconds (times) or 6 significant digits (shares).

Divergence is exact, not sampled, at every size: the share of live peer pairs whose Merkle
roots differ is ``1 - sum(C(k_r, 2)) / C(live, 2)`` over the peers ``k_r`` holding each
distinct root ``r``, which costs one root per peer per sample.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING, Any

from .metrics import gossip_bound_rounds
from .verdict import FinalCheck, final_check
from .workload import count_lost_writes

if TYPE_CHECKING:
    from .engine import Simulation

__all__ = ["FinalCheck", "final_check", "build_report", "dumps", "summary_lines", "REPORT_FORMAT"]

REPORT_FORMAT = 1
_MAX_LISTED = 5


def _round(x: float | None, digits: int = 6) -> float | None:
    if x is None:
        return None
    return round(x, digits)


def _share(x: float) -> float:
    return float(f"{x:.6g}")


def _lag(sim: Simulation) -> dict[str, Any]:
    """Per-peer lag at the end: batches each peer lacks that some live peer has seen, and the
    Node's own view (batches of its log its neighbours are not known to have)."""
    live = sim.live_peers()
    if not live:
        return {}
    union = None
    for peer in live:
        if union is None:
            union = peer.node.seen.copy()
        else:
            union.join(peer.node.seen)
    total = union.size() if union is not None else 0
    retired: dict[str, int] = {}  # departed incarnations some peer pruned from its seen set
    for peer in live:
        for incarnation, final in peer.node.retired().items():
            retired[incarnation] = max(final, retired.get(incarnation, 0))
    total += sum(max(0, final - union.max(incarnation)) for incarnation, final in retired.items())
    missing = [(total - peer.node.batches_seen(), peer.index) for peer in live]
    node_lag = [(sum(peer.node.lag().values()), peer.index) for peer in live]
    missing.sort(key=lambda x: (-x[0], x[1]))
    node_lag.sort(key=lambda x: (-x[0], x[1]))
    return {
        "batches_total": total,
        "missing_batches": {
            "max": missing[0][0],
            "mean": _round(sum(m for m, _ in missing) / len(missing)),
            "peers_behind": sum(1 for m, _ in missing if m > 0),
            "worst": [{"peer": i, "missing": m} for m, i in missing[:_MAX_LISTED] if m > 0],
        },
        "unacknowledged": {
            "max": node_lag[0][0],
            "mean": _round(sum(m for m, _ in node_lag) / len(node_lag)),
            "worst": [{"peer": i, "batches": m} for m, i in node_lag[:_MAX_LISTED] if m > 0],
        },
    }


def _conflicts(sim: Simulation, reference: int | None) -> dict[str, Any]:
    mv_visible = 0
    if reference is not None:
        memory = sim.peers[reference].memory
        for name in memory.names():
            if memory.type_of(name) == "mvregister" and len(memory.state(name).payloads()) > 1:
                mv_visible += 1
    return {
        "lww_writes": len(sim.workload.lww),
        "lww_lost_to_concurrent_write": count_lost_writes(sim.workload.lww),
        "mvregisters_with_concurrent_values": mv_visible,
    }


def convergence(sim: Simulation, converged: bool) -> dict[str, Any]:
    """When the replicas became (and stayed) identical after the last disruption.

    ``convergence_time_after_heal`` is exact: the time of the last change to any live replica
    (every change is observed through :meth:`Memory.on_change`) minus the last heal, restart
    or link repair — or the last write, if writes continued past it. It is None when the run
    did not converge. The sampled time (first sample from which divergence stays 0) is given
    for comparison; it is late by at most one sample interval.
    """
    s = sim.scenario
    reference = s.last_disruption()
    if sim.last_write is not None and sim.last_write > reference:
        reference = sim.last_write
    exact = None
    if converged:
        exact = max(0.0, sim.last_change - reference)
    sampled = None
    if converged and sim.samples:
        zero_from = None
        for sample in sim.samples:
            if sample.t < reference:
                continue
            if sample.divergence == 0.0:
                if zero_from is None:
                    zero_from = sample.t
            else:
                zero_from = None
        if zero_from is not None:
            sampled = zero_from - reference
    bound = gossip_bound_rounds(s.peers)
    rounds = exact / s.node.gossip_interval if exact is not None else None
    return {
        "measured_from": _round(reference),
        "convergence_time_after_heal": _round(exact),
        "convergence_time_sampled": _round(sampled),
        "rounds_to_converge": _round(rounds, 3),
        "gossip_bound_rounds": _round(bound, 3),
        "within_2x_gossip_bound": (rounds <= 2 * bound) if rounds is not None else None,
    }


def build_report(sim: Simulation, check: FinalCheck | None = None) -> dict[str, Any]:
    """The run's JSON report (see the module docstring)."""
    check = check or final_check(sim.peers)
    s = sim.scenario
    node_stats: Counter[str] = Counter(sim.retired_stats)
    for peer in sim.live_peers():
        node_stats.update(peer.node.stats.as_dict())
    conv = convergence(sim, check.converged)
    deliveries = sim.net["delivered"]
    wall = dict(sim.wall)
    run_wall = wall.get("run", 0.0)
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "seed": s.seed,
        "peers": s.peers,
        "converged": check.converged,
        "convergence_time_after_heal": conv["convergence_time_after_heal"],
        "messages": sum(sim.messages.values()),
        "bytes": sum(sim.bytes.values()),
        "messages_by_kind": dict(sorted(sim.messages.items())),
        "bytes_by_kind": dict(sorted(sim.bytes.items())),
        "convergence": conv,
        "final": check.to_dict(),
        "virtual_time": _round(sim.now),
        "stopped_early": sim.stopped_early,
        "topology": {"spec": str(sim.topology), "links": len(sim.edges)},
        "writes": {
            "made": sim.writes_done,
            "skipped_peer_down": sim.writes_skipped,
            "by_kind": dict(sorted(sim.workload.by_kind.items())),
            "writers": len(sim.writers),
        },
        "network": dict(sorted(sim.net.items())),
        "broker": dict(sorted(sim.broker.stats.items())) if sim.broker is not None else None,
        "node_stats": dict(sorted(node_stats.items())),
        "lag": _lag(sim),
        "conflicts": _conflicts(sim, check.reference_peer),
        "timeline": sim.timeline,
        "divergence": {
            "t": [_round(x.t) for x in sim.samples],
            "share": [_share(x.divergence) for x in sim.samples],
            "distinct_roots": [x.roots for x in sim.samples],
            "live": [x.live for x in sim.samples],
            "links_up": [x.links for x in sim.samples],
            "messages": [x.messages for x in sim.samples],
            "bytes": [x.bytes for x in sim.samples],
            "missing_batches_max": [x.missing_max for x in sim.samples],
            "missing_batches_mean": [_share(x.missing_mean) for x in sim.samples],
        },
        "scenario": s.to_dict(),
        "wall": {
            "seconds": _round(run_wall + wall.get("setup", 0.0), 3),
            "cpu_s": _round(wall.get("cpu", 0.0), 3),
            "setup_s": _round(wall.get("setup", 0.0), 3),
            "run_s": _round(run_wall, 3),
            "in_node_s": _round(wall.get("node", 0.0), 3),
            "sampling_s": _round(wall.get("sampling", 0.0), 3),
            "deliveries_per_s": _round(deliveries / run_wall, 1) if run_wall > 0 else None,
        },
    }
    return report


def dumps(report: dict[str, Any]) -> str:
    """The report as JSON text (stable key order, 1-space indent, newline-terminated)."""
    return json.dumps(report, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def summary_lines(report: dict[str, Any]) -> list[str]:
    """A few human lines: did it converge, how fast, at what cost."""
    conv = report["convergence"]
    final = report["final"]
    lines = []
    verdict = "CONVERGED" if report["converged"] else "NOT CONVERGED"
    lines.append(
        f"{verdict}: {final['live']} live of {report['peers']} peers, {final['distinct_roots']} distinct root(s), "
        f"seed {report['seed']}, {report['virtual_time']:g}s virtual"
    )
    if report["converged"] and conv["convergence_time_after_heal"] is not None:
        lines.append(
            f"converged {conv['convergence_time_after_heal']:.3f}s after t={conv['measured_from']:g}s "
            f"({conv['rounds_to_converge']:g} gossip rounds; bound log2 N + ln N = {conv['gossip_bound_rounds']:g})"
        )
    if not report["converged"]:
        peers = ", ".join(f"{p['peer']} ({p['peer_id']})" for p in final["differing_peers"])
        lines.append(f"{final['differing_peers_total']} peer(s) differ from peer {final['reference_peer']}: {peers}")
        if final["differing_keys"]:
            lines.append("first differing keys: " + ", ".join(final["differing_keys"][:10]))
    kinds = ", ".join(
        f"{kind} {report['messages_by_kind'][kind]:,} msgs / {_human_bytes(report['bytes_by_kind'][kind])}"
        for kind in report["messages_by_kind"]
    )
    lines.append(f"sent {report['messages']:,} messages, {_human_bytes(report['bytes'])}: {kinds}")
    net = report["network"]
    lines.append(
        f"network: {net.get('delivered', 0):,} delivered, {net.get('lost', 0):,} lost, "
        f"{net.get('retransmissions', 0):,} retransmitted, {net.get('connections', 0):,} connections, "
        f"{net.get('disconnections', 0):,} drops"
    )
    lag = report.get("lag") or {}
    if lag:
        lines.append(
            f"lag: {lag['missing_batches']['peers_behind']} peer(s) missing batches (max {lag['missing_batches']['max']}); "
            f"conflicts: {report['conflicts']['lww_lost_to_concurrent_write']} LWW writes lost to concurrent ones, "
            f"{report['conflicts']['mvregisters_with_concurrent_values']} MV-registers showing concurrent values"
        )
    wall = report["wall"]
    rate = f"{wall['deliveries_per_s']:,.0f} deliveries/s" if wall["deliveries_per_s"] else "-"
    lines.append(
        f"wall: {wall['seconds']:.1f}s ({wall['in_node_s']:.1f}s inside Node calls; {wall['cpu_s']:.1f}s CPU), {rate}"
    )
    return lines


def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover
