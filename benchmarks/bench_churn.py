"""Vectors under churn: what short-lived agents cost against the same team living for good.

Run from the repo root::

    python benchmarks/bench_churn.py            # 50 alive x 20 virtual minutes: 1,000+ incarnations (~20 min)
    python benchmarks/bench_churn.py --quick    # 30 alive x 10 minutes: 300+ incarnations, 3 runs each (~6 min)
    python benchmarks/bench_churn.py --alive 170 --minutes 60   # 10,000 incarnations: hours (see below)

Two runs with the same seed, peers and write rate (see :mod:`crdtmem.simulation.churn`):
**churn**, every agent stopping after 45-75 s (90% clean exits, 10% kills) and starting again
as a new incarnation, and the reference, **steady**: the same agents never stopping. Each run
is a child process of its own (so its peak RSS is its own), alternating, ``--repeat`` times.

Measured over the second half of the run (vectors at steady state; the first minutes are
the team warming up) and averaged over live peers: entries of ``seen`` (the version vector
a ``Sync`` carries) and the ``Sync`` bytes, causal-context entries of the memory, and the
causal-context bytes carried per sealed batch.
Prints one JSON object: each run's medians (and the range of wall times), and
``ratio`` = churn / steady for each figure; with pruning working they stay at or below 1
while ``incarnations_started`` is 10-20x the agents alive. The vector figures are
deterministic for a seed; only wall time and RSS vary between runs.

Wall time grows faster than the incarnations: each start from a kept store replays the whole
journal (simulations/README.md, "Why not 10,000"), which is why the default stops at 1,000.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIGURES = ("seen_entries_mean", "seen_entries_max", "sync_bytes_mean", "context_entries_mean",
           "batch_context_bytes_mean")


def one(alive: int, minutes: int, seed: int, churn: bool) -> dict:
    """Run one churn (or steady) simulation here; its figures, wall time and peak RSS."""
    import logging

    from crdtmem.simulation.churn import ChurnSpec, run_churn

    logging.getLogger("crdtmem").setLevel(logging.ERROR)
    result = run_churn(ChurnSpec(alive=alive, minutes=minutes, seed=seed, churn=churn))
    late = result["samples"][len(result["samples"]) // 2:]
    out = {figure: round(statistics.fmean(s[figure] for s in late), 1) for figure in FIGURES}
    final = result["final"]
    out.update({
        "incarnations_started": result["incarnations_started"],
        "incarnations_wrote": result["incarnations_wrote"],
        "batches_sealed": result["batches_sealed"],
        "converged": final["converged"],
        "peers_lacking_writes": final["peers_lacking_writes"],
        "quiet_seen_entries_max": final["vectors"]["seen_entries_max"],
        "wall_s": result["wall_s"],
        "cpu_s": result["cpu_s"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    })
    return out


def child(kind: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--one", kind, "--alive", str(args.alive), "--minutes", str(args.minutes),
               "--seed", str(args.seed)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="30 alive x 10 minutes instead of 50 x 20")
    parser.add_argument("--alive", type=int, default=None)
    parser.add_argument("--minutes", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=None, help="alternating runs of each (default 3 quick, 1 full)")
    parser.add_argument("--one", choices=("churn", "steady"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.alive = args.alive or (30 if args.quick else 50)
    args.minutes = args.minutes or (10 if args.quick else 20)
    if args.one:
        print(json.dumps(one(args.alive, args.minutes, args.seed, args.one == "churn")))
        return
    repeat = args.repeat or (3 if args.quick else 1)
    runs: dict[str, list[dict]] = {"churn": [], "steady": []}
    for _ in range(repeat):
        for kind in runs:
            runs[kind].append(child(kind, args))
    summary = {kind: _medians(results) for kind, results in runs.items()}
    print(json.dumps({
        "alive": args.alive, "minutes": args.minutes, "seed": args.seed, "repeat": repeat,
        **summary,
        "ratio": {figure: _ratio(summary["churn"][figure], summary["steady"][figure])
                  for figure in (*FIGURES, "wall_s", "peak_rss_mb")},
        "note": "simulated virtual time; wall and RSS measured on a shared 2-core machine",
    }, indent=1))


def _medians(results: list[dict]) -> dict:
    out = {key: statistics.median(r[key] for r in results) for key in results[0] if key not in ("converged",)}
    out["converged"] = all(r["converged"] for r in results)
    out["wall_s_range"] = [min(r["wall_s"] for r in results), max(r["wall_s"] for r in results)]
    return out


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 2) if b else None


if __name__ == "__main__":
    main()
