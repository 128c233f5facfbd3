"""Churn: agents that live about a minute each, and the vectors they leave behind.

``--alive`` peers run at all times; each stops after 45-75 s — 90% exit cleanly (retiring
their incarnation), 10% are killed — and starts again at once from its store, as a new
incarnation of its key: a team whose short-lived sub-agents come and go. Every virtual minute
it samples the live peers' vectors (see :mod:`crdtmem.simulation.churn`), then runs to
quiescence and checks convergence and that no sealed write is lacking anywhere.

    python simulations/churn.py                                    # 50 alive x 20 min: 1,000+ incarnations
    python simulations/churn.py --alive 100 --minutes 10 --name churn_100x10
    python simulations/churn.py --alive 100 --minutes 100 --writes-per-life 1 --eager-tree --name churn_10k

The last is the 10,000-incarnation run (see simulations/README.md for its figures and time):
one write per life and the relay tree keep it within reach.
"""

from __future__ import annotations

import argparse
import json
import resource
from pathlib import Path

from _common import HERE, write_json

from crdtmem.simulation import NodeConfig
from crdtmem.simulation.churn import ChurnSpec, run_churn
from crdtmem.simulation.plot import _pyplot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--alive", type=int, default=50)
    parser.add_argument("--minutes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--crash-share", type=float, default=0.1, help="share of stops that are kills (default 0.1)")
    parser.add_argument("--writes-per-life", type=float, default=3.0, help="writes per incarnation (default 3)")
    parser.add_argument("--eager-tree", action="store_true", help="relay over the relay tree (NodeConfig.eager_tree)")
    parser.add_argument("--name", default="churn", help="write NAME.json and NAME.png here (default churn)")
    parser.add_argument("--before", type=Path, default=HERE / "churn_before_pruning.json",
                        help="a run of the same size without pruning, drawn for comparison (default: the one kept here)")
    args = parser.parse_args()
    node = NodeConfig(gossip_interval=5.0, anti_entropy_interval=60.0, eager_tree=args.eager_tree)
    spec = ChurnSpec(alive=args.alive, minutes=args.minutes, seed=args.seed, crash_share=args.crash_share,
                     writes_per_life=args.writes_per_life, node=node)
    result = run_churn(spec, progress=lambda sample: print(sample, flush=True))
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result.update(writes_per_life=args.writes_per_life, eager_tree=args.eager_tree)
    print({"final": result["final"], "wall_s": result["wall_s"]}, flush=True)
    write_json(args.name, result)
    before = json.loads(args.before.read_text()) if args.before.exists() else None
    if before is not None and (before["alive"], before["seed"]) != (args.alive, args.seed):
        before = None  # another size or seed: not comparable
    plot(result, f"{args.name}.png", before)


def plot(result: dict, filename: str, before: dict | None = None) -> None:
    """Top: counts against incarnations alive and ever started (log y); bottom: bytes. ``before``:
    the same run without pruning, drawn in grey."""
    samples = result["samples"]
    minutes = [s["minute"] for s in samples]
    plt = _pyplot()
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    series = [
        ("ever_started", "-", "incarnations ever started"),
        ("ever_wrote", ":", "incarnations that ever sealed a batch (a retirement counts)"),
        ("seen_entries_max", "--", "version-vector entries (seen, max per peer)"),
        ("context_entries_mean", "-.", "causal-context entries of the memory (mean per peer)"),
        ("alive", "-", "incarnations alive"),
    ]
    for key, style, label in series:
        ax.plot(minutes, [max(s[key], 0.5) for s in samples], style, label=label)
    if before is not None:
        then = [s["minute"] for s in before["samples"]]
        ax.plot(then, [s["seen_entries_max"] for s in before["samples"]], color="grey", ls="--",
                label="version-vector entries before pruning")
        ax.plot(then, [s["context_entries_mean"] for s in before["samples"]], color="grey", ls="-.",
                label="causal-context entries before pruning")
    ax.set_yscale("log")
    ax.set_ylabel("count (log)")
    ax.legend(fontsize=8)
    ax.set_title(f"{result['alive']} agents alive, each living ~1 minute: "
                 f"{result['incarnations_started']:,} incarnations in {result['minutes']} min")
    ax2.plot(minutes, [s["sync_bytes_mean"] for s in samples], label="Sync message (mean per peer)")
    ax2.plot(minutes, [s["batch_context_bytes_mean"] for s in samples], "--",
             label="causal contexts carried per batch sealed that minute (mean)")
    if before is not None:
        ax2.plot(then, [s["sync_bytes_mean"] for s in before["samples"]], color="grey",
                 label="Sync message before pruning")
    ax2.set_yscale("log")
    ax2.set_ylabel("bytes (log)")
    ax2.set_xlabel("virtual minutes")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / filename, dpi=110)


if __name__ == "__main__":
    main()
