"""``crdtmem simulate``: run a partition simulation from the command line.

:mod:`crdtmem.cli.main` adds the subcommand with :func:`register`; :func:`main` runs it
alone (scripts and tests). Examples::

    crdtmem simulate --peers 100 --partition-at 5 --heal-at 15 --plot run.png --json run.json
    crdtmem simulate --peers 30 --loss 0.3 --duration 60
    crdtmem simulate --peers 20 --crash 3@5-12 --crash 4@6-14:lost --exit 5@7-9
    crdtmem simulate --from-report run.json          # replay a run exactly

Exit status: 0, or 1 with ``--fail-if-diverged`` when the replicas did not converge, 2 on
bad arguments.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import random
import sys
from pathlib import Path
from typing import Any

from .nodeflags import add_node_arguments, duration, integer, node_config_from_args

__all__ = ["register", "main", "build_parser", "scenario_from_args", "run"]

_positive_int = integer(1)

_DESCRIPTION = (
    "Run the real crdtmem Node on a simulated network under virtual time: partitions, loss, "
    "crashes, clock skew. Same flags and seed, same report."
)


def _probability(text: str) -> float:
    value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability in [0, 1] (or 0-100%)")
    return value


class _DeprecatedAlias(argparse.Action):
    """A flag's old name, hidden from ``--help``: stores its value like the new flag
    ``new_flag`` and says on stderr that the old name is deprecated."""

    def __init__(self, option_strings: list[str], dest: str, *, new_flag: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new_flag = new_flag

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"{parser.prog}: {option_string} is deprecated, use {self.new_flag}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add every ``simulate`` flag to ``parser``."""
    net = parser.add_argument_group("peers and network")
    net.add_argument("--peers", type=_positive_int, default=10, help="number of peers (default 10)")
    net.add_argument("--seed", type=int, default=0, help="the one seed every random choice derives from (default 0)")
    net.add_argument(
        "--topology", default="regular:6",
        help="mesh | ring | star | regular:K | clusters:C[:BRIDGES[:K]] (default regular:6)",
    )
    net.add_argument(
        "--latency", default="20ms",
        help="one-way latency: 20ms | 10ms..50ms | normal:20ms,5ms | exp:5ms+20ms | lognormal:20ms,0.5 (default 20ms)",
    )
    net.add_argument("--loss", type=_probability, default=0.0, help="probability a packet is lost (e.g. 0.3 or 30%%)")
    net.add_argument("--duplicate", type=_probability, default=0.0, help="probability a packet is duplicated")
    net.add_argument("--reorder", type=_probability, default=0.0, help="probability a packet is delayed past later ones")
    net.add_argument(
        "--transport", choices=("stream", "datagram"), default="stream",
        help="stream: websocket over TCP (ordered, retransmits); datagram: every loss/dup/reorder reaches the Node",
    )
    net.add_argument("--skew", type=duration, default=0.0, help="max clock skew per peer, e.g. 500ms (uniform +-)")

    faults = parser.add_argument_group("faults (times in virtual seconds: 10, 10s, 500ms)")
    faults.add_argument("--partition-at", default=None, help="partition start time(s), comma-separated")
    faults.add_argument("--heal-at", default=None, help="heal time(s), one per --partition-at (omit: never heals)")
    faults.add_argument("--groups", type=int, default=2, help="partition into this many contiguous groups (default 2)")
    faults.add_argument(
        "--crash", action="append", default=[], metavar="PEER@AT[-RESTART][:kept|lost]",
        help="crash a peer (or PCT%% of peers) at AT, restart at RESTART with its store kept or lost; repeatable",
    )
    faults.add_argument(
        "--exit", action="append", default=[], metavar="PEER@AT[-RESTART][:kept|lost]",
        help="like --crash, but the peer exits cleanly: it retires its incarnation in a last batch "
        "it sends before closing its links; repeatable",
    )
    faults.add_argument(
        "--link-down", action="append", default=[], metavar="A-B@DOWN[-UP]",
        help="take the link between peers A and B down (a flapping link: repeat it); repeatable",
    )
    faults.add_argument(
        "--broker", default="", metavar="SPEC",
        help="peers also relay through a modelled broker, e.g. 'publish=20us,deliver=1us,retention=60m' "
             "(with --topology none: only through it)",
    )
    faults.add_argument("--broker-peers", type=int, default=0, help="only the first N peers use the broker (default: all)")
    faults.add_argument("--broker-down", action="append", default=[], metavar="DOWN[-UP]",
                        help="the broker is unreachable from DOWN until UP; repeatable")

    work = parser.add_argument_group("workload")
    work.add_argument("--writes", type=float, default=10.0, help="writes per virtual second, network-wide (default 10)")
    work.add_argument("--write-from", type=duration, default=0.0, help="first write time (default 0)")
    work.add_argument("--write-until", type=duration, default=None, help="writes stop here (default: the last heal)")
    work.add_argument(
        "--workload", default="counter=1,facts=1,register=1,map=1",
        help="kind=weight mix of counter, pncounter, facts, register, mvregister, map, log",
    )
    work.add_argument("--writers", type=int, default=0, help="only this many (seeded) peers write (default: all)")
    work.add_argument("--keys", type=_positive_int, default=8, help="registers/map keys/counters to pick from (default 8)")
    work.add_argument("--flush-delay", type=duration, default=0.0, help="coalesce a peer's writes into one batch for this long")

    run_group = parser.add_argument_group("run")
    run_group.add_argument("--duration", type=duration, default=30.0, help="virtual seconds to run (default 30)")
    run_group.add_argument("--sample", type=duration, default=0.25, help="divergence sample interval (default 250ms)")
    run_group.add_argument(
        "--stop-when-converged", action="store_true",
        help="stop at the first sample after every fault and write where all replicas agree",
    )
    run_group.add_argument("--redial", type=duration, default=0.5, help="first reconnect delay, doubling (default 500ms)")
    run_group.add_argument("--redial-max", type=duration, default=5.0, help="reconnect delay cap (default 5s)")
    run_group.add_argument(
        "--compaction-interval", type=duration, default=0.0,
        help="compact each peer's store this often; a restart replays the journal since (default 0: only at a crash)",
    )
    run_group.add_argument(  # its name before the protocol had author checkpoints
        "--checkpoint-interval", type=duration, dest="compaction_interval", action=_DeprecatedAlias,
        default=argparse.SUPPRESS, help=argparse.SUPPRESS, new_flag="--compaction-interval",
    )
    run_group.add_argument(
        "--from-report", type=Path, default=None,
        help="rerun the scenario recorded in a JSON report (other scenario flags are ignored)",
    )

    add_node_arguments(parser.add_argument_group("node (the Node's tunables, the same for every peer)"))

    out = parser.add_argument_group("output")
    out.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the JSON report here ('-': stdout)")
    out.add_argument("--plot", type=Path, default=None, metavar="FILE.png", help="draw divergence over time (matplotlib)")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    out.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    out.add_argument("--node-logs", action="store_true", help="show the Nodes' warnings (refusals) as they happen")
    out.add_argument("--fail-if-diverged", action="store_true", help="exit 1 if the replicas did not converge")


def build_parser(prog: str = "crdtmem simulate") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=_DESCRIPTION)
    add_arguments(parser)
    return parser


def register(subparsers: Any, common: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Add ``simulate`` to a ``parser.add_subparsers()`` object; its handler is ``args.func(args)``."""
    parser = subparsers.add_parser(
        "simulate", parents=[common] if common else [], help="run a deterministic partition simulation",
        description=_DESCRIPTION,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def scenario_from_args(args: argparse.Namespace):
    """The :class:`Scenario` the flags describe. Raises ValueError on inconsistent flags."""
    import json

    from ..simulation.scenario import (
        BrokerOutage,
        Partition,
        Scenario,
        parse_crash,
        parse_link_fault,
        parse_times,
    )

    if args.from_report is not None:
        data = json.loads(args.from_report.read_text())
        return Scenario.from_dict(data.get("scenario", data))
    starts, heals = parse_times(args.partition_at), parse_times(args.heal_at)
    if len(heals) > len(starts):
        raise ValueError("more --heal-at times than --partition-at times")
    partitions = [Partition(at, heals[i] if i < len(heals) else None, args.groups) for i, at in enumerate(starts)]
    crash_rng = random.Random(f"crash-choice/{args.seed}")
    crashes = [c for spec in args.crash for c in parse_crash(spec, args.peers, crash_rng)]
    crashes += [c for spec in args.exit for c in parse_crash(spec, args.peers, crash_rng, clean=True)]
    link_faults = [parse_link_fault(spec) for spec in args.link_down]
    outages = []
    for spec in args.broker_down:
        down, _, up = spec.partition("-")
        outages.append(BrokerOutage(parse_times(down)[0], parse_times(up)[0] if up else None))
    return Scenario(
        peers=args.peers,
        seed=args.seed,
        topology=args.topology,
        latency=args.latency,
        loss=args.loss,
        duplicate=args.duplicate,
        reorder=args.reorder,
        transport=args.transport,
        partitions=partitions,
        crashes=crashes,
        link_faults=link_faults,
        broker=args.broker,
        broker_peers=args.broker_peers,
        broker_outages=outages,
        skew=args.skew,
        writes=args.writes,
        write_from=args.write_from,
        write_until=args.write_until,
        workload=args.workload,
        writers=args.writers,
        keys=args.keys,
        flush_delay=args.flush_delay,
        duration=args.duration,
        sample_interval=args.sample,
        stop_when_converged=args.stop_when_converged,
        node=node_config_from_args(args),
        redial=args.redial,
        redial_max=args.redial_max,
        compaction_interval=args.compaction_interval,
    )


def run(args: argparse.Namespace) -> int:
    """Handle parsed ``simulate`` arguments; returns the exit status."""
    quiet_logs = not args.node_logs
    logger = logging.getLogger("crdtmem")
    saved_level = logger.level
    if quiet_logs:
        # Refusals are counted in the report (node_stats.refused_*); thousands of warning
        # lines from a lossy run would bury the summary.
        logger.setLevel(logging.ERROR)
    try:
        return _run(args)
    finally:
        logger.setLevel(saved_level)  # callers in the same process (tests, notebooks) keep theirs


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..simulation.engine import Simulation
    from ..simulation.report import build_report, dumps, summary_lines

    err = Console(stderr=True)
    if args.plot is not None and importlib.util.find_spec("matplotlib") is None:
        err.print("crdtmem simulate: --plot needs matplotlib: pip install 'crdtmem[sim]'", style="red", markup=False)
        return 2
    try:
        scenario = scenario_from_args(args)
    except (ValueError, OSError, KeyError) as exc:
        err.print(f"[red]crdtmem simulate: {exc}[/red]")
        return 2
    show_progress = not (args.quiet or args.no_progress)
    if show_progress:
        sim = _run_with_progress(scenario, err)
    else:
        sim = Simulation(scenario)
        sim.run()
    report = build_report(sim)
    text = dumps(report)
    if args.json is not None:
        if str(args.json) == "-":
            sys.stdout.write(text)
        else:
            args.json.write_text(text)
    if args.plot is not None:
        from ..simulation.plot import plot_report

        plot_report(report, args.plot)
    if not args.quiet:
        out = Console(stderr=str(args.json) == "-")
        style = "green" if report["converged"] else "bold red"
        for i, line in enumerate(summary_lines(report)):
            out.print(line, style=style if i == 0 else None, highlight=False, soft_wrap=True)
        if args.json is not None and str(args.json) != "-":
            out.print(f"report: {args.json}", highlight=False)
        if args.plot is not None:
            out.print(f"plot: {args.plot}", highlight=False)
    if args.fail_if_diverged and not report["converged"]:
        return 1
    return 0


def _run_with_progress(scenario: Any, console: Any):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..simulation.engine import Simulation

    progress = Progress(
        TextColumn("[bold]simulating[/bold] {task.fields[peers]} peers"),
        BarColumn(),
        TextColumn("t={task.completed:.1f}/{task.total:g}s"),
        TextColumn("divergence {task.fields[div]:>5.1%}"),
        TextColumn("live {task.fields[live]}"),
        TextColumn("{task.fields[msgs]:,} msgs"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task("run", total=scenario.duration, peers=scenario.peers, div=0.0, live=0, msgs=0)

        def update(sim: Simulation) -> None:
            last = sim.samples[-1]
            progress.update(task, completed=sim.now, div=last.divergence, live=last.live, msgs=last.messages)

        progress.update(task, description="setting up")
        sim = Simulation(scenario, progress=update)
        sim.run()
        if sim.stopped_early:
            progress.update(task, total=sim.now)
        progress.update(task, completed=sim.now)
    return sim


def main(argv: list[str] | None = None) -> int:
    """``crdtmem simulate [flags]`` on its own (for scripts and tests)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    return run(args)
