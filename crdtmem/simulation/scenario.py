"""What a simulation run is: peers, network, faults and workload, as one plain dataclass.

A :class:`Scenario` holds only data (numbers and short spec strings), so it round-trips
through the CLI and the JSON report, and the same scenario with the same ``seed`` replays
exactly. Faults are scheduled in virtual seconds:

* :class:`Partition` — from ``at`` until ``heal_at`` the peers are split into ``groups``
  contiguous, balanced blocks of indices (peer 0..n/2-1 and n/2..n-1 for two groups); links
  between blocks are cut. Several partitions may follow each other; they must not overlap.
* :class:`Crash` — peer ``peer`` stops at ``at``, killed or (``clean=True``) exiting cleanly:
  it retires its incarnation in a last batch it sends before closing its connections. At
  ``restart_at`` (if any) it comes back with its store (``store="kept"``) or without it
  (``store="lost"``), either way as a new incarnation of its key.
* :class:`LinkFault` — one link is down from ``at`` until ``up_at`` (a flapping link is a
  list of these).
* :class:`BrokerOutage` — the broker (``broker``, see :mod:`crdtmem.simulation.broker`) is
  unreachable from ``at`` until ``up_at``: a partition of every relay peer from the hub.

Every peer runs the Node with ``scenario.node``, a :class:`~crdtmem.protocol.node.NodeConfig`,
so any tunable the runtime has can be simulated::

    Scenario(peers=50, node=NodeConfig(fanout=2, anti_entropy_interval=10.0))

In the report (:meth:`Scenario.to_dict`) the node's fields are flat scenario keys:
``gossip_interval``, ``fanout``, ``anti_entropy_interval`` and ``max_log_batches`` always,
the others where they differ from NodeConfig's defaults.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..protocol.node import NodeConfig
from .latency import Latency, parse_duration
from .topology import Topology
from .workload import parse_mix

__all__ = ["Scenario", "Partition", "Crash", "LinkFault", "BrokerOutage", "parse_crash", "parse_times", "parse_link_fault"]


@dataclass(frozen=True)
class Partition:
    at: float
    heal_at: float | None
    groups: int = 2


@dataclass(frozen=True)
class Crash:
    peer: int
    at: float
    restart_at: float | None = None
    store: str = "kept"
    """``kept``: restart from the durable store; ``lost``: restart empty. Either way a new incarnation of its key."""
    clean: bool = False
    """False: killed (SIGKILL), its connections reset; the key's next start retires the incarnation.
    True: a clean exit: the peer retires its incarnation (``Node.retire``), sends that last
    batch to its links like any flush and closes them after it."""


@dataclass(frozen=True)
class LinkFault:
    a: int
    b: int
    at: float
    up_at: float | None


@dataclass(frozen=True)
class BrokerOutage:
    at: float
    up_at: float | None


@dataclass
class Scenario:
    """Every knob of one run. Defaults: 10 peers, random 6-regular links, 20 ms, no faults."""

    peers: int = 10
    seed: int = 0
    topology: str = "regular:6"
    latency: str = "20ms"
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    transport: str = "stream"
    """``stream`` (websocket over TCP: ordered, lost packets are retransmitted, a connection
    that keeps losing breaks) or ``datagram`` (each frame on its own: lost, duplicated and
    reordered frames reach the Node as such)."""
    partitions: list[Partition] = field(default_factory=list)
    crashes: list[Crash] = field(default_factory=list)
    link_faults: list[LinkFault] = field(default_factory=list)
    skew: float = 0.0
    """Each peer's clock is off by a uniform draw in [-skew, +skew] seconds."""
    writes: float = 10.0
    """Writes per virtual second, network-wide (a Poisson process)."""
    write_from: float = 0.0
    write_until: float | None = None
    """Default: the last heal (or restart), so the network settles afterwards; without faults, half the duration."""
    workload: str = "counter=1,facts=1,register=1,map=1"
    writers: int = 0
    """How many peers write (chosen by the seed); 0: every peer."""
    keys: int = 8
    """Distinct registers / map keys / counters the workload picks from (fewer: more conflicts)."""
    flush_delay: float = 0.0
    """Writes within this window after a peer's first unflushed write share one signed batch."""
    duration: float = 30.0
    sample_interval: float = 0.25
    stop_when_converged: bool = False
    """End the run at the first sample after every scheduled fault and write where all live
    replicas hold the same Merkle root (plus ``settle`` seconds)."""
    settle: float = 0.0
    node: NodeConfig = field(default_factory=NodeConfig)
    """The Node's tunables, the same for every peer."""
    redial: float = 0.5
    """First reconnect delay after a link drops; doubles per failed attempt (full jitter)."""
    redial_max: float = 5.0
    connect_rtts: float = 1.0
    """Round trips a dial takes before both sides' Node.open (TCP + websocket upgrade)."""
    compaction_interval: float = 0.0
    """Seconds between compactions of each peer's store (0: only at a crash). Every applied
    batch is journaled either way, as the runtime does; this decides how much a restart
    replays, not what it keeps. (Reports before the protocol's author checkpoints called it
    ``checkpoint_interval``; :meth:`from_dict` reads either.)"""
    boot_spread: float = 0.0
    """Peers boot (and first dial) at uniform times in [0, boot_spread]."""
    broker: str = ""
    """A relay broker every peer (or the first ``broker_peers``) publishes to and reads, e.g.
    ``publish=20us,deliver=1us,retention=60m`` (see :mod:`crdtmem.simulation.broker`); empty:
    none. With topology ``none`` it is the only way between peers."""
    broker_peers: int = 0
    """How many peers (the lowest indices) use the broker; 0: all of them."""
    broker_outages: list[BrokerOutage] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""
        if type(self.peers) is not int or self.peers < 1:
            raise ValueError("peers must be a positive integer")
        Topology.parse(self.topology)
        Latency.parse(self.latency)
        for name in ("loss", "duplicate", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
        if self.loss >= 1.0:
            raise ValueError("loss must be below 1 (nothing would ever arrive)")
        if self.transport not in ("stream", "datagram"):
            raise ValueError("transport must be 'stream' or 'datagram'")
        parse_mix(self.workload)
        for name in ("skew", "writes", "write_from", "duration", "settle", "flush_delay", "redial", "redial_max",
                     "connect_rtts", "compaction_interval", "boot_spread"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if not isinstance(self.node, NodeConfig):
            raise ValueError(f"node must be a NodeConfig, got {type(self.node).__name__}")
        for name, default in _node_defaults().items():
            value = getattr(self.node, name)
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                wanted = (int, float) if isinstance(default, float) else int
                if isinstance(value, bool) or not isinstance(value, wanted) or not (value >= 0 and math.isfinite(value)):
                    raise ValueError(f"{name} must be a non-negative {type(default).__name__}, got {value!r}")
        node = self.node
        if not self.sample_interval > 0:
            raise ValueError("sample_interval must be positive")
        for name in ("gossip_interval", "anti_entropy_interval"):
            if not getattr(node, name) > 0:
                raise ValueError(f"{name} must be positive")
        bound = node.max_log_batches
        if bound is not None and (type(bound) is not int or bound < 1):
            raise ValueError(f"max_log_batches must be None or a positive int, got {bound!r}")
        if node.fanout < 1 or self.keys < 1:
            raise ValueError("fanout and keys must be at least 1")
        ordered = sorted(self.partitions, key=lambda p: p.at)
        for i, part in enumerate(ordered):
            if part.groups < 2:
                raise ValueError("a partition needs at least 2 groups")
            if part.heal_at is not None and part.heal_at < part.at:
                raise ValueError(f"partition at {part.at} heals before it starts ({part.heal_at})")
            later = ordered[i + 1 :]
            if later and (part.heal_at is None or part.heal_at > later[0].at):
                raise ValueError("partitions overlap: heal one before the next starts")
        for crash in self.crashes:
            if not 0 <= crash.peer < self.peers:
                raise ValueError(f"crash names peer {crash.peer}, but peers are 0..{self.peers - 1}")
            if crash.store not in ("kept", "lost"):
                raise ValueError("a crash's store is 'kept' or 'lost'")
            if type(crash.clean) is not bool:
                raise ValueError(f"a crash's clean is True or False, got {crash.clean!r}")
            if crash.restart_at is not None and crash.restart_at < crash.at:
                raise ValueError(f"peer {crash.peer} restarts ({crash.restart_at}) before it crashes ({crash.at})")
        for fault in self.link_faults:
            if not (0 <= fault.a < self.peers and 0 <= fault.b < self.peers) or fault.a == fault.b:
                raise ValueError(f"link fault {fault.a}-{fault.b} does not name two peers")
        if self.broker:
            from .broker import BrokerSpec

            BrokerSpec.parse(self.broker)
        elif self.broker_outages or self.broker_peers:
            raise ValueError("broker_outages and broker_peers need a broker")
        if type(self.broker_peers) is not int or not 0 <= self.broker_peers <= self.peers:
            raise ValueError(f"broker_peers must be 0..peers, got {self.broker_peers!r}")
        for outage in self.broker_outages:
            if outage.up_at is not None and outage.up_at < outage.at:
                raise ValueError(f"broker outage at {outage.at} ends before it starts ({outage.up_at})")

    # -- derived ----------------------------------------------------------------------------

    def heal_times(self) -> list[float]:
        times = [p.heal_at for p in self.partitions if p.heal_at is not None]
        times += [c.restart_at for c in self.crashes if c.restart_at is not None]
        times += [f.up_at for f in self.link_faults if f.up_at is not None]
        times += [o.up_at for o in self.broker_outages if o.up_at is not None]
        return sorted(times)

    def last_heal(self) -> float | None:
        """When the last partition heals (None without partitions)."""
        heals = [p.heal_at for p in self.partitions if p.heal_at is not None]
        return max(heals) if heals else None

    def last_disruption(self) -> float:
        """The last scheduled heal, restart or link repair: convergence is timed from here."""
        times = self.heal_times()
        return times[-1] if times else 0.0

    def effective_write_until(self) -> float:
        if self.write_until is not None:
            return self.write_until
        times = self.heal_times()
        if times:
            return times[-1]
        return self.duration / 2

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report: every field, faults as lists of dicts, the node's
        tunables flat in the node's place (see the module docstring)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name in _BROKER_FIELDS and not self.broker:
                continue  # reports of runs without a broker keep their keys
            if f.name == "node":
                out.update(_node_to_dict(self.node))
            elif f.name in _FAULT_LISTS:
                out[f.name] = [_fault_to_dict(fault) for fault in getattr(self, f.name)]
            else:
                out[f.name] = getattr(self, f.name)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        """The scenario of :meth:`to_dict` (a report's ``"scenario"``); a nested ``"node"`` dict
        works too, and so do the names older reports used (``_RENAMED``).

        Raises:
            ValueError: a field it does not know, or a field given under its old and new names
                with different values.
        """
        data = _renamed(data)
        node_fields = {f.name for f in fields(NodeConfig)}
        known = {f.name for f in fields(cls)} | node_fields
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown scenario fields: {sorted(unknown)}")
        node = dict(data.pop("node", None) or {})
        node.update({name: data.pop(name) for name in node_fields & set(data)})
        data["node"] = NodeConfig(**node)
        data["partitions"] = [Partition(**p) for p in data.get("partitions", [])]
        data["crashes"] = [Crash(**c) for c in data.get("crashes", [])]
        data["link_faults"] = [LinkFault(**f) for f in data.get("link_faults", [])]
        data["broker_outages"] = [BrokerOutage(**o) for o in data.get("broker_outages", [])]
        return cls(**data)


_RENAMED = {"checkpoint_interval": "compaction_interval"}
"""Scenario fields renamed since reports were first written: old name → new name."""


def _renamed(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with every old field name of ``_RENAMED`` replaced by its new one (a copy)."""
    out = dict(data)
    for old, new in _RENAMED.items():
        if old not in out:
            continue
        value = out.pop(old)
        if new in out and out[new] != value:
            raise ValueError(f"scenario gives both {old!r} (the old name of {new!r}) = {value!r} and {new!r} = {out[new]!r}")
        out[new] = value
    return out


_FAULT_LISTS = ("partitions", "crashes", "link_faults", "broker_outages")
_BROKER_FIELDS = ("broker", "broker_peers", "broker_outages")
_NODE_KEYS_ALWAYS = ("gossip_interval", "fanout", "anti_entropy_interval", "max_log_batches")
"""NodeConfig fields every report lists (the scenario fields they used to be)."""


def _fault_to_dict(fault: Any) -> dict[str, Any]:
    """A fault's fields; a crash's ``clean`` only when set (reports of runs without clean exits keep their keys)."""
    out = asdict(fault)
    if out.get("clean") is False:
        del out["clean"]
    return out


def _node_defaults() -> dict[str, Any]:
    """NodeConfig's fields and their defaults, in its order."""
    default = NodeConfig()
    return {f.name: getattr(default, f.name) for f in fields(NodeConfig)}


def _node_to_dict(node: NodeConfig) -> dict[str, Any]:
    """The node's fields as flat report keys, in NodeConfig's order: those of
    ``_NODE_KEYS_ALWAYS``, and any other that differs from its default."""
    return {
        name: getattr(node, name)
        for name, default in _node_defaults().items()
        if name in _NODE_KEYS_ALWAYS or getattr(node, name) != default
    }


# -- CLI syntax ---------------------------------------------------------------------------------


def parse_times(text: str | None) -> list[float]:
    """``"10,40s"`` → ``[10.0, 40.0]``; None or empty → ``[]``."""
    if not text:
        return []
    return [parse_duration(part) for part in str(text).split(",") if part.strip()]


_CRASH = re.compile(
    r"^\s*(?P<who>[0-9.]+%?)\s*@\s*(?P<at>[^-:]+?)\s*(?:-\s*(?P<restart>[^:]+?))?\s*(?::\s*(?P<store>kept|lost))?\s*$"
)


def parse_crash(text: str, peers: int, rng: Any, *, clean: bool = False) -> list[Crash]:
    """Read ``PEER@AT[-RESTART][:kept|lost]`` or ``PCT%@AT[-RESTART][:kept|lost]``.

    ``3@12-18`` crashes peer 3 at t=12 s and restarts it at 18 s with its store;
    ``10%@12-18:lost`` crashes a seeded random 10% of the peers, which come back empty;
    ``3@12`` never restarts. With ``clean`` the peers exit cleanly instead (``--exit``).

    Raises:
        ValueError: with the expected syntax.
    """
    what = "exit" if clean else "crash"
    match = _CRASH.match(text)
    if not match:
        raise ValueError(f"bad {what} {text!r}: use PEER@AT[-RESTART][:kept|lost], e.g. 3@12s-18s or 10%@12-18:lost")
    at = parse_duration(match.group("at"))
    restart = parse_duration(match.group("restart")) if match.group("restart") else None
    store = match.group("store") or "kept"
    who = match.group("who")
    if who.endswith("%"):
        share = float(who[:-1]) / 100
        if not 0 < share <= 1:
            raise ValueError(f"bad {what} {text!r}: the share must be in (0, 100]%")
        count = max(1, round(share * peers))
        chosen = sorted(rng.sample(range(peers), count))
    else:
        chosen = [int(who)]
    return [Crash(peer, at, restart, store, clean) for peer in chosen]


_LINK = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*@\s*([^-]+?)\s*(?:-\s*(.+?))?\s*$")


def parse_link_fault(text: str) -> LinkFault:
    """Read ``A-B@DOWN[-UP]``: the link between peers A and B is down from DOWN until UP."""
    match = _LINK.match(text)
    if not match:
        raise ValueError(f"bad link fault {text!r}: use A-B@DOWN[-UP], e.g. 0-1@5s-7s")
    up = parse_duration(match.group(4)) if match.group(4) else None
    return LinkFault(int(match.group(1)), int(match.group(2)), parse_duration(match.group(3)), up)
