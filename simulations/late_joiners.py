"""One writer, many readers: readers that lose their store come back to one checkpoint.

20 peers, random 4-regular links, 20 ms. One peer writes (20 writes/s, each flush a signed
batch) from t=0 to t=20 s, a status board: registers and map keys overwritten, counters
bumped (8 of each); the other 19 only read. At t=4 s five readers crash and lose their store;
they come back empty at t=30 s: the writer sealed a few hundred batches and has been idle for ten seconds. The writer
applied no one else's batch, so its batches stand alone: a peer lacking them is sent its
signed checkpoint (their join, ``crdtmem/protocol/checkpoint.py``), by the writer or by any
reader that took it, instead of every batch. The same run with checkpoints off
(``checkpoint_min_batches`` past any count) is the reference. Reported per returning reader
(medians): bytes received, signed batches applied (each verified) and received again
(duplicates: a neighbour holding the batches sends them as the writer's checkpoint arrives),
and the time until it holds the writer's last batch; per run, the batches every peer came to
hold and their spread (signing to the last peer holding it; a checkpoint taken counts for the
batches it stands for).

    python simulations/late_joiners.py
"""

import argparse
import statistics

from _common import HERE, write_json

from crdtmem.simulation import Crash, NodeConfig, Scenario, Simulation
from crdtmem.simulation.plot import plot_report
from crdtmem.simulation.report import build_report, dumps, summary_lines

READERS_LOST = (3, 7, 11, 14, 18)  # the seed makes peer 10 the writer
BACK_AT = 30.0


def scenario(checkpoints: bool) -> Scenario:
    node = NodeConfig(anti_entropy_interval=10.0, checkpoint_min_batches=4 if checkpoints else 1 << 30)
    crashes = [Crash(p, 4.0, BACK_AT, "lost") for p in READERS_LOST]
    return Scenario(peers=20, seed=11, topology="regular:4", writers=1, writes=20.0, write_until=20.0,
                    workload="register=2,map=1,counter=1", crashes=crashes, duration=40.0, node=node)


def returning_readers(checkpoints: bool) -> dict:
    sim = Simulation(scenario(checkpoints))
    (writer,) = sim.writers
    caught_up: dict[int, float] = {}
    sim.advance(BACK_AT)
    last = sim.peers[writer].node.seen
    while sim.now < scenario(checkpoints).duration and len(caught_up) < len(READERS_LOST):
        sim.advance(0.005)
        for index in READERS_LOST:
            if index not in caught_up and sim.peers[index].node.seen.covers(last):
                caught_up[index] = sim.now - BACK_AT
    sim.run()
    name = "late_joiners" if checkpoints else "late_joiners_batches_only"
    report = build_report(sim)
    (HERE / f"{name}.json").write_text(dumps(report))
    plot_report(report, HERE / f"{name}.png",
                title=f"20 peers, one writer; 5 readers lose their store at 4 s, back at 30 s ({'checkpoints' if checkpoints else 'batches only'})")
    print(f"== {name}")
    for line in summary_lines(report):
        print("  " + line)
    readers = [sim.peers[i].node.stats for i in READERS_LOST]
    return {
        "converged": report["converged"],
        "batches_complete": report["dissemination"]["batches"],
        "batches_incomplete": report["dissemination"]["incomplete"],
        "spread_median_s": report["dissemination"]["median"],
        "writer_batches": last.max(sim.peers[writer].node.replica_id),
        "reader_bytes_received_median": statistics.median(s.bytes_received for s in readers),
        "reader_batches_applied_median": statistics.median(s.batches_applied for s in readers),
        "reader_duplicate_batches_median": statistics.median(s.duplicate_batches for s in readers),
        "reader_checkpoints_taken_median": statistics.median(s.checkpoints_applied for s in readers),
        "reader_catch_up_s_median": statistics.median(caught_up.values()) if len(caught_up) == len(READERS_LOST) else None,
    }


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()  # (--help, and no stray flag)
    summary = {"checkpoints": returning_readers(True), "batches_only": returning_readers(False)}
    on, off = summary["checkpoints"], summary["batches_only"]
    summary["ratio_reader_bytes"] = round(on["reader_bytes_received_median"] / off["reader_bytes_received_median"], 3)
    write_json("late_joiners_summary", summary)
    print(summary)
