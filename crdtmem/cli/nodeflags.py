"""Command-line flags for the Node's tunables, built from :class:`NodeConfig` itself.

``crdtmem peer`` and ``crdtmem simulate`` both call :func:`add_node_arguments`, so every
NodeConfig field is a flag of both (``gossip_interval`` is ``--gossip-interval``) with
NodeConfig's default, and a field added to NodeConfig becomes a flag without an edit here.
Durations take the simulator's syntax (``500ms``, ``2s``, ``1.5``); counts are integers; a
field whose default is None is an opt-in bound (a positive integer, unbounded when absent).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from ..protocol.node import NodeConfig

__all__ = ["add_node_arguments", "node_config_from_args", "duration", "integer"]

_HELP = {
    "gossip_interval": "seconds between gossip rounds",
    "fanout": "neighbours each gossip round reaches, each relay round with --no-eager-tree, and a batch's second-hop shortcuts with the tree",
    "anti_entropy_interval": "seconds between full version-vector exchanges with each neighbour",
    "handshake_timeout": "drop a connection whose handshake takes longer",
    "ack_delay": "acks of received batches wait this long, so one ack covers a burst",
    "relay_delay": "at most one relay round per this many seconds (each hop may wait this long)",
    "log_retention": "how long a peer that went away is remembered for sending it batches",
    "max_frame_bytes": "largest frame sent or accepted",
    "max_message_bytes": "largest message reassembled from frames",
    "max_log_batches": "opt-in bound on the batches kept for catch-up; older ones are then never served to late joiners",
    "max_batch_wires_per_message": "batches sent in one message at most",
    "max_parked_batches": "batches of not (yet) trusted authors kept for when they are trusted",
    "max_pending_batches": "received batches kept waiting for their dependencies at most",
    "relay_republish_interval": "publish a batch the relay's broker has not acknowledged again after this long",
    "max_pending_per_author": "waiting batches of one author kept at most; beyond, its oldest is dropped",
    "checkpoint_min_batches": "a peer lacking at least this many of an author's batches that wrote alone gets its signed checkpoint instead (a huge number: batches only)",
    "checkpoint_audit_interval": "seconds between two checks of one author's checkpoint against its batches held here",
    "eager_tree": "relay along one spanning tree rooted at the smallest peer id (lazy links get IHave, except shortcuts at a batch's first two hops) instead of to random neighbours",
}


def duration(text: str) -> float:
    """An argparse type for durations: ``10``, ``10s``, ``500ms``."""
    from ..simulation.latency import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def integer(minimum: int) -> Callable[[str], int]:
    """An argparse type for integers of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}")
        return value

    return parse


_count = integer(0)
_bound = integer(1)


def _defaults() -> dict[str, Any]:
    default = NodeConfig()
    return {f.name: getattr(default, f.name) for f in fields(NodeConfig)}


def add_node_arguments(parser: Any) -> None:
    """Add a flag per NodeConfig field to ``parser`` (a parser or an argument group).

    Call while building a subcommand's parser; read the values back with
    :func:`node_config_from_args`.
    """
    for name, default in _defaults().items():
        if isinstance(default, bool):
            parser.add_argument(
                "--" + name.replace("_", "-"), dest=name, action=argparse.BooleanOptionalAction, default=default,
                help=f"{_HELP.get(name, name.replace('_', ' '))} (default {'on' if default else 'off'})",
            )
            continue
        if default is None:
            kind, shown = _bound, "unbounded"
        elif isinstance(default, float):
            kind, shown = duration, f"{default:g}s"
        else:
            kind, shown = _count, f"{default:,}"
        what = _HELP.get(name, name.replace("_", " "))
        parser.add_argument(
            "--" + name.replace("_", "-"), dest=name, type=kind, default=default, metavar="T" if kind is duration else "N",
            help=f"{what} (default {shown})",
        )


def node_config_from_args(args: argparse.Namespace) -> NodeConfig:
    """The NodeConfig the flags of :func:`add_node_arguments` describe."""
    return NodeConfig(**{name: getattr(args, name) for name in _defaults()})
