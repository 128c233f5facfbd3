"""``Node``: the whole peer behaviour as a sans-I/O state machine.

The shell tells the node what happened, always passing ``now`` (seconds, any epoch, never
going back), and does what the node asks::

    node = Node(memory, identity, keyring, rng=random.Random(seed))
    node.tick(now)                                # once, at start: arms the timers
    node.open(conn, now, dialer=True)             # a connection opened (dialer: we dialed)
    node.receive(conn, data, now)                 # one transport message arrived
    node.close(conn, now, reason)                 # a connection closed, for any reason
    node.tick(now)                                # at next_deadline()
    # after each call, and after the application wrote to node.memory:
    for action in node.take_actions():            # Send / Close, in order
        ...
    for event in node.take_events():              # journal batches, count refusals, ...
        ...
    deadline = node.next_deadline()               # sleep until then (None: until input)

Local writes need no call of their own: while the memory holds unsigned deltas,
:meth:`Node.next_deadline` is due at once, and the :meth:`Node.tick` it asks for signs and
pushes them (:meth:`Node.flush` does just that, synchronously) — unless a neighbour has not
yet acknowledged our last batch: then the writes wait, coalescing into one batch, until it
does (or ``max_flush_delay`` passes); with no neighbour connected they wait
``max_flush_delay`` too. A deadline at or before the present means "tick now". Randomness
comes from the ``random.Random`` the node is given, so the websocket runtime and the
simulator run this same code, and a simulation seed replays exactly.

What the node does, per DESIGN.md §4:

* handshake: mutual challenge–response, refusing keys outside the keyring;
* push: local writes become one signed batch per flush, sent at once to every neighbour when
  they have acknowledged our earlier batches, and coalesced while one is in flight (a
  neighbour acknowledges its author's batches at once, so a flush waits one round trip at
  most, and never longer than ``max_flush_delay``);
  new batches from others are relayed to ``fanout`` random neighbours that may lack them, at
  once if nothing was relayed in the last ``relay_delay``, else together with whatever else
  arrives until then (one message per neighbour for a burst);
* gossip rounds: every ``gossip_interval`` a digest of the batches seen goes to ``fanout``
  random neighbours; one whose digest differs answers with its full ``Sync``, and the
  answers carry whatever either side lacks (push–pull);
* reconciliation moves batches, never state: each side's ``Sync`` (a version vector per
  author) tells the other which signed batches it lacks, and those original batches are sent
  from the delta log, so every receiver verifies every author's part itself. A ``Sync`` goes
  out on every connect, on every differing gossip digest and every ``anti_entropy_interval``;
* the delta log keeps signed batches for good (up to ``max_log_batches``), so a peer that
  joins or returns late gets every author's signed history;
* causal delivery: a verified batch waits until the batches it names as dependencies are
  applied here. Each author has its own budget of waiting batches (``max_pending_per_author``,
  1,000): past it that author's oldest waiting batch is dropped, so an author naming hashes
  that will never exist displaces only its own batches. ``max_pending_batches`` (10,000)
  bounds all of them together as a last resort. A dropped batch is counted
  (``pending_dropped``) and fetched again by a later ``Sync``;
* untrusted authors: a batch whose author is not in the keyring is parked (bounded by
  ``max_parked_batches``, oldest dropped first) and applied once :meth:`Node.trust` admits the
  author; the peer that relayed it keeps its connection. A batch of a trusted author with a bad
  signature is still refused and closes the connection: a relay cannot forge a signature, so
  a peer that sends one is faulty;
* type clashes: a name written as two types is kept as one object per type, resolved alike on
  every replica (:mod:`crdtmem.memory`), and reported as a :class:`TypeClash` event; it never
  closes a connection;
* bounded numbers: a batch whose timestamps run ahead of this replica's clock by more than
  ``max_clock_skew`` is refused (``clock-skew``); a local write that cannot be encoded is set
  aside and reported by :meth:`Node.check_writable`, never raised out of :meth:`Node.tick`;
* claims need signatures: a ``Sync`` or a batch header is the peer's word and changes nothing
  of ours. Only our own validly signed batch that this store does not hold proves our history
  was lost (a restart without the store); the node then stops signing local writes, which
  would reuse sequence numbers the others ignore (:class:`~crdtmem.errors.LostHistoryError`).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from .. import codec
from ..clocks import CausalContext, Dot
from ..errors import (
    CrdtmemError,
    LostHistoryError,
    RefusalReason,
    RemoteProtocolError,
    UnencodableWriteError,
)
from ..identity import Identity, Keyring, verify
from ..memory import Memory, group_deltas
from ..merkle import MerkleIndex
from .batch import (
    ClockSkewError,
    DeltaBatch,
    UntrustedAuthorError,
    apply_batch,
    check_stamps,
    open_batch,
    peek_batch,
    read_batch,
    seal_batch,
)
from .causal import CausalIndex, EquivocationError
from .deltalog import DeltaLog
from .events import (
    Action,
    BatchApplied,
    Close,
    Event,
    HistoryLost,
    PeerConnected,
    PeerDisconnected,
    Refused,
    Send,
    SendKind,
    TypeClash,
)
from .framing import FrameChannel, ReplayedFrameError
from .handshake import Handshake
from .messages import (
    Batches,
    Message,
    SeenDigest,
    Sync,
    decode_message,
    encode_message,
    seen_digest,
)
from .parking import ParkedBatches
from .recovery import Snapshot
from .stats import NodeStats

__all__ = ["Node", "NodeConfig"]

log = logging.getLogger("crdtmem.node")
ConnId = Hashable


@dataclass(frozen=True)
class NodeConfig:
    """Tunables; the defaults suit a handful of agents on one LAN."""

    gossip_interval: float = 1.0
    fanout: int = 3
    anti_entropy_interval: float = 30.0
    """Seconds between full ``Sync`` exchanges with each neighbour (answered with missing batches)."""
    handshake_timeout: float = 10.0
    ack_delay: float = 0.1
    """Acks of relayed batches wait this long so one ack covers a burst (a batch from its own
    author is acknowledged at once: the author coalesces its writes until then)."""
    flush_window: int = 1
    """Own batches a neighbour may not have acknowledged yet before local writes wait (and
    coalesce into one batch) for its acknowledgement."""
    max_flush_delay: float = 0.05
    """Longest local writes wait for a neighbour's acknowledgement before they are signed and
    sent anyway (a neighbour that never acknowledges delays our writes by this much); also how
    long they coalesce while no neighbour is connected."""
    relay_delay: float = 0.05
    """At most one relay round per this many seconds; batches arriving meanwhile wait for it."""
    log_retention: float = 600.0
    """How long what a peer that went away had seen is remembered (its batches stay logged)."""
    max_frame_bytes: int = 1024 * 1024
    max_message_bytes: int = 64 * 1024 * 1024
    max_log_batches: int = 1_000_000
    """Signed batches kept for catch-up. They are kept for good up to this bound: past it the
    oldest go, and a peer joining later can no longer get (nor verify) them."""
    max_batch_wires_per_message: int = 256
    max_pending_batches: int = 10_000
    """Verified batches kept waiting for their dependencies, all authors together; beyond, new
    ones are dropped (counted) and fetched again later. The last resort behind
    ``max_pending_per_author``."""
    max_pending_per_author: int = 1_000
    """Verified batches of one author kept waiting for their dependencies; beyond, that
    author's oldest waiting batch is dropped (counted, fetched again later), so an author whose
    batches name hashes that never arrive displaces only its own."""
    max_parked_batches: int = 1024
    """Batches of authors not (yet) trusted kept for :meth:`Node.trust`; beyond, the oldest is dropped."""
    max_clock_skew: float = 300.0
    """Seconds a peer's hybrid timestamps may run ahead of this replica's memory clock; later
    ones are refused (``clock-skew``), so no peer can push last-writer-wins time to its limit."""


@dataclass
class _Session:
    conn: ConnId
    dialer: bool
    opened_at: float
    handshake: Handshake
    channel: FrameChannel | None = None
    peer_id: str | None = None
    peer_seen: CausalContext = field(default_factory=CausalContext)
    in_flight: set[Dot] = field(default_factory=set)
    ack_at: float | None = None
    own_sent: int = 0  # the highest of our own batch numbers sent on this connection
    heard: bool = False  # whether the peer's first Sync on this connection arrived
    next_anti_entropy: float = 0.0

    @property
    def ready(self) -> bool:
        return self.channel is not None


class Node:
    """One replica's protocol engine. See the module docstring for how to drive it.

    Args:
        memory: the replica; its ``replica_id`` must be ``identity.peer_id``.
        identity: this peer's signing key. Its own batches are always trusted (a restarted
            replica must accept its writes relayed back), whether or not ``keyring`` lists it.
        keyring: who else may connect and author batches (closed by default). The node reads
            it on every handshake and batch, so keys added or removed later take effect; it
            never changes it.
        rng: the only source of randomness (nonces, gossip targets).
        config: tunables.
        seen: the batches already reflected in ``memory`` (restored from storage).
        log: signed batch wires to keep serving for catch-up (restored from storage).
    """

    def __init__(
        self,
        memory: Memory,
        identity: Identity,
        keyring: Keyring,
        *,
        rng: random.Random,
        config: NodeConfig | None = None,
        seen: CausalContext | None = None,
        log_wires: Iterable[bytes] = (),
    ) -> None:
        if memory.replica_id != identity.peer_id:
            raise ValueError(f"memory replica id {memory.replica_id!r} is not the identity's peer id {identity.peer_id!r}")
        self.memory, self.identity, self.keyring, self.rng = memory, identity, keyring, rng
        self._authors = _WithOwnKey(keyring, identity)
        self.config = config or NodeConfig()
        self.seen = seen.copy() if seen is not None else CausalContext()
        self.index = MerkleIndex(memory)
        self._log = DeltaLog(self.config.max_log_batches)
        self._causal = CausalIndex()
        self._parked = ParkedBatches(self.config.max_parked_batches)
        for wire in log_wires:  # in the order they were applied, so dependencies come first
            batch = read_batch(wire, max_size=self.config.max_message_bytes)
            self._log.add(Dot(batch.author, batch.seq), wire)
            self._causal.record(batch)
        self._pending: dict[bytes, DeltaBatch] = {}  # verified, waiting for dependencies
        self._waiting: dict[bytes, dict[bytes, None]] = {}  # missing dependency -> batches waiting on it
        # author -> its waiting batches, oldest first -> the dependencies each was filed under
        self._pending_by_author: dict[str, dict[bytes, tuple[bytes, ...]]] = {}
        self._relay: list[tuple[Dot, bytes]] = []  # fresh batches waiting for the next relay round
        self._next_relay = 0.0
        self._sessions: dict[ConnId, _Session] = {}
        self._known_seen: dict[str, CausalContext] = {}  # per peer met recently: what it has seen
        self._gone_since: dict[str, float] = {}  # peers with no open session, since when
        self._actions: list[Action] = []
        self._events: list[Event] = []
        self._next_gossip: float | None = None
        self._now = -math.inf  # the latest time the shell has given
        self._held_since: float | None = None  # local writes waiting for an ack, since when
        self._unencodable: list[str] = []  # names of local writes flush could not encode
        self.lost_history: str | None = None
        """Why local writes are no longer signed (None: they are); see :meth:`check_writable`."""
        self.stats = NodeStats()
        """Typed counters of what this node has done (read-only for callers)."""

    # -- inputs -----------------------------------------------------------------------------

    def open(self, conn: ConnId, now: float, *, dialer: bool) -> None:
        """Call when a transport connection opened; the handshake starts at once.

        Args:
            conn: any hashable id, unique among this node's open connections.
            now: the current time.
            dialer: True on the side that connected out (it runs anti-entropy sessions).

        Raises:
            ValueError: ``conn`` is already open.
        """
        if conn in self._sessions:
            raise ValueError(f"connection {conn!r} is already open")
        self._advance(now)
        handshake = Handshake(self.identity, self.keyring, self.rng.randbytes(32), self.rng.randbytes(32))
        session = _Session(conn, dialer, now, handshake)
        self._sessions[conn] = session
        for data in handshake.start():
            self._send(session, data, SendKind.HANDSHAKE)

    def receive(self, conn: ConnId, data: bytes, now: float) -> None:
        """Call with each transport message (one frame) received on ``conn``, in order.

        Bad input never raises: it is refused with a :class:`Refused` event, and (unless it was
        a replayed frame) a :class:`Close` action. Bytes for a connection that is not open
        are ignored.
        """
        self._advance(now)
        session = self._sessions.get(conn)
        if session is None:
            return
        self.stats.bytes_received += len(data)
        try:
            if not session.ready:
                self._handshake_step(session, data, now)
                return
            payload = session.channel.open_frame(data)
            if payload is None:
                return
            self._dispatch(session, decode_message(payload, max_size=self.config.max_message_bytes), now)
        except ReplayedFrameError as exc:
            # A stale copy changes nothing: count it, keep the connection.
            self.stats.count_refusal(exc.reason)
            self._events.append(Refused(conn, exc.reason, str(exc)))
        except CrdtmemError as exc:
            self._refuse(session, exc, now)
        self._report_clashes()

    def close(self, conn: ConnId, now: float, reason: str = "closed by transport") -> None:
        """Call when a transport connection closed, from either side, for any reason.

        Also call it after performing a :class:`Close` action (closing twice is harmless).
        """
        self._advance(now)
        session = self._sessions.pop(conn, None)
        if session is not None:
            self._events.append(PeerDisconnected(conn, session.peer_id, reason))
            if session.peer_id is not None and session.peer_id not in self.peers().values():
                self._gone_since[session.peer_id] = now

    def tick(self, now: float) -> None:
        """Call once at start, then whenever :meth:`next_deadline` is reached.

        Signs and pushes pending local writes, then runs every timer that is due: handshake
        timeouts, delayed acks, relay rounds, anti-entropy sessions, gossip rounds and log
        collection. Calling it early or often is harmless.
        """
        if not self._holding(now):
            self.flush(now)
        for session in list(self._sessions.values()):
            if not session.ready and now >= session.opened_at + self.config.handshake_timeout:
                self._drop(session, RefusalReason.HANDSHAKE_TIMEOUT, "handshake did not finish in time", now)
            elif session.ready:
                if session.ack_at is not None and now >= session.ack_at:
                    session.ack_at = None
                    self._send_message(session, Sync(self.seen, reply=True), SendKind.GOSSIP)
                if session.dialer and now >= session.next_anti_entropy:
                    self._reconcile(session, now)
        if self._relay and now >= self._next_relay:
            self._relay_round(now)
        if self._next_gossip is None:
            self._next_gossip = now + self.config.gossip_interval
        elif now >= self._next_gossip:
            self._next_gossip = now + self.config.gossip_interval
            self._collect_log(now)
            self._gossip_round()

    def flush(self, now: float) -> None:
        """Sign the memory's pending local deltas as one batch and push it to every neighbour.

        :meth:`tick` does this too; call ``flush`` when the writes must be out (and journaled,
        through the :class:`BatchApplied` event) before the caller goes on. After lost history
        is detected, pending deltas stay in the memory, unsigned (see :meth:`check_writable`).
        """
        self._advance(now)
        if self.lost_history is not None:
            return
        self._held_since = None
        deltas = group_deltas(self.memory.take_deltas())
        self._report_clashes()
        if not deltas:
            return
        seq = self.seen.next_dot(self.identity.peer_id).counter
        heads = self._causal.heads()
        try:
            batch = seal_batch(self.identity, seq, deltas, heads)
        except (TypeError, ValueError, OverflowError):
            batch = self._seal_encodable(seq, deltas, heads)
            if batch is None:
                return
        self._causal.record(batch)
        self._log.add(Dot(batch.author, seq), batch.wire)
        self._events.append(BatchApplied(batch.author, seq, batch.wire, local=True))
        self.stats.batches_created += 1
        for session in self._ready_sessions():
            self._push(session, [(Dot(batch.author, seq), batch.wire)], SendKind.GOSSIP)

    def _holding(self, now: float) -> bool:
        """Whether pending local writes wait (to join one batch) for a neighbour's ack."""
        if not self.memory.has_pending_deltas() or not self._writes_wait():
            self._held_since = None
            return False
        if self._held_since is None:
            self._held_since = now
        return now < self._held_since + self.config.max_flush_delay

    def _writes_wait(self) -> bool:
        """Whether no neighbour is connected (no one waits for our writes), or some neighbour
        has not acknowledged ``flush_window`` of our batches sent to it."""
        own, window = self.identity.peer_id, self.config.flush_window
        sessions = self._ready_sessions()
        return not sessions or any(s.own_sent - s.peer_seen.max(own) >= window for s in sessions)

    def _seal_encodable(self, seq: int, deltas: list, heads: Iterable[bytes]) -> DeltaBatch | None:
        """Seal the deltas that encode; set the others aside for :meth:`check_writable` to report."""
        good = []
        for name, delta in deltas:
            try:
                codec.encode_state(delta)
            except (TypeError, ValueError, OverflowError) as exc:
                log.error("local write to %r cannot be encoded, not sent: %s", name, exc)
                self._unencodable.append(f"{name!r} ({type(exc).__name__}: {exc})")
            else:
                good.append((name, delta))
        return seal_batch(self.identity, seq, good, heads) if good else None

    def trust(self, now: float, keyring: Keyring | None = None) -> None:
        """Call after the keyring changed (or to replace it): apply parked batches it now admits.

        Batches whose author was not trusted when they arrived are parked (see
        :class:`~crdtmem.protocol.parking.ParkedBatches`); those of authors trusted now are
        verified, applied once their dependencies are (like any received batch), and relayed.
        One that fails verification is dropped and counted: the peer that relayed it is long gone.

        Args:
            now: the current time.
            keyring: the new keyring; None keeps the node's (changed in place).
        """
        self._advance(now)
        if keyring is not None:
            self.keyring, self._authors = keyring, _WithOwnKey(keyring, self.identity)
        fresh: list[tuple[Dot, bytes]] = []
        for dot, wire in self._parked.release(lambda author: self._authors.public_key(author) is not None):
            if dot in self.seen:
                continue
            try:
                batch = open_batch(wire, self._authors, verify, max_size=self.config.max_message_bytes)
                check_stamps(batch, self._stamp_bound())
                missing = self._causal.missing(batch)
                if missing:
                    self._buffer(batch, missing)
                    continue
                self._apply(batch)
            except CrdtmemError as exc:
                reason = getattr(exc, "reason", RefusalReason.INTERNAL_ERROR)
                log.warning("dropped parked batch %s#%d: %s", dot.replica, dot.counter, exc)
                self.stats.count_refusal(reason)
                continue
            fresh.append((dot, wire))
            fresh += self._release(None, batch.hash)
        self._sync_parked_stats()
        self._report_clashes()
        if fresh:
            self._relay += fresh
            if now >= self._next_relay:
                self._relay_round(now)

    def parked(self) -> int:
        """How many batches wait for their author to be trusted (see :meth:`trust`)."""
        return len(self._parked)

    def check_writable(self) -> None:
        """Call after :meth:`flush` to learn whether the writes went out.

        Raises:
            LostHistoryError: local writes can no longer be signed and sent.
            UnencodableWriteError: some writes since the last call could not be encoded and
                were not sent (reported once; later writes go out as usual).
        """
        if self.lost_history is not None:
            raise LostHistoryError(self.lost_history)
        if self._unencodable:
            names, self._unencodable = self._unencodable, []
            raise UnencodableWriteError("local writes could not be encoded and were not sent: " + ", ".join(names))

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has work to do; ask after every call and every local write.

        Returns:
            A time; one at or before the present means "tick now". While the memory holds
            unsigned local writes that no unacknowledged batch holds back, it is the latest
            ``now`` the node was given (``-inf`` before the first). None: nothing is
            scheduled; only input can create work.
        """
        deadlines = [self._next_gossip] if self._next_gossip is not None else []
        if self.lost_history is None and self.memory.has_pending_deltas():
            if self._held_since is None or not self._writes_wait():
                return self._now
            deadlines.append(self._held_since + self.config.max_flush_delay)
        if self._relay:
            deadlines.append(self._next_relay)
        for session in self._sessions.values():
            if not session.ready:
                deadlines.append(session.opened_at + self.config.handshake_timeout)
            else:
                if session.ack_at is not None:
                    deadlines.append(session.ack_at)
                if session.dialer:
                    deadlines.append(session.next_anti_entropy)
        return min(deadlines) if deadlines else None

    def take_actions(self) -> list[Action]:
        """Call after every input: the sends and closes to perform, in order (then forgotten)."""
        actions, self._actions = self._actions, []
        return actions

    def take_events(self) -> list[Event]:
        """Call after every input: what happened since the last call, in order (then forgotten).

        Journal :class:`BatchApplied` wires before performing the actions of the same call if
        writes must survive a crash once peers have seen them.
        """
        events, self._events = self._events, []
        return events

    # -- queries ----------------------------------------------------------------------------

    def peers(self) -> dict[ConnId, str]:
        """Connections whose handshake finished, with their peer ids; ask at any time."""
        return {s.conn: s.peer_id for s in self._sessions.values() if s.ready}

    def synced(self) -> bool:
        """Whether every connected peer has seen every batch we have, we theirs, and no write waits."""
        return all(self.synced_with().values()) and not self.memory.has_pending_deltas()

    def synced_with(self) -> dict[str, bool]:
        """Per connected peer id: whether it has seen every batch we have, and we every one it has."""
        out: dict[str, bool] = {}
        for s in self._ready_sessions():
            # Until the peer's first Sync on this connection we do not know what it holds.
            ok = s.heard and _covers(s.peer_seen, self.seen) and _covers(self.seen, s.peer_seen)
            out[s.peer_id] = out.get(s.peer_id, True) and ok
        return out

    def lag(self) -> dict[str, int]:
        """Per connected peer: how many batches of our log it is not known to have (for health)."""
        return {s.peer_id: self._log.count_missing(s.peer_seen) for s in self._ready_sessions()}

    # -- handshake --------------------------------------------------------------------------

    def _handshake_step(self, session: _Session, data: bytes, now: float) -> None:
        for reply in session.handshake.receive(data):
            self._send(session, reply, SendKind.HANDSHAKE)
        if not session.handshake.done:
            return
        hs = session.handshake
        if hs.peer_id == self.identity.peer_id:
            raise RemoteProtocolError("connected to ourselves")
        session.peer_id = hs.peer_id
        session.channel = FrameChannel(
            hs.keys, peer_id=hs.peer_id, max_frame_bytes=self.config.max_frame_bytes,
            max_message_bytes=self.config.max_message_bytes,
        )
        session.peer_seen = self._known_seen.setdefault(hs.peer_id, CausalContext()).copy()
        self._gone_since.pop(hs.peer_id, None)
        session.next_anti_entropy = now + self._anti_entropy_delay()
        self._events.append(PeerConnected(session.conn, hs.peer_id))
        self.flush(now)  # writes held while no one was connected: the newcomer's Sync covers them
        self._send_message(session, Sync(self.seen), SendKind.GOSSIP)

    # -- messages ---------------------------------------------------------------------------

    def _dispatch(self, session: _Session, message: Message, now: float) -> None:
        if isinstance(message, Sync):
            self._on_sync(session, message, now)
        elif isinstance(message, Batches):
            self._on_batches(session, message, now)
        elif isinstance(message, SeenDigest):
            if message.digest == seen_digest(self.seen):
                self._learn(session, self.seen)  # the peer has seen exactly what we have
            else:
                self._send_message(session, Sync(self.seen), SendKind.GOSSIP)

    def _on_sync(self, session: _Session, message: Sync, now: float) -> None:
        # A Sync is the peer's unsigned word about what *it* holds: it steers what we send it
        # and nothing else. It never changes our own ``seen`` and never halts us.
        if not session.heard:
            # What the peer held on an earlier connection may be gone (a lost or rolled-back
            # store): its first word on this one replaces what we remembered.
            session.heard = True
            session.peer_seen = CausalContext()
            self._known_seen[session.peer_id] = CausalContext()
        self._learn(session, message.seen)
        if not _covers(message.seen, self.seen):  # they lack something: send the signed batches
            missing = self._log.missing(message.seen)
            if missing:
                self._push(session, missing, SendKind.CATCH_UP)
        if not message.reply and not _covers(self.seen, message.seen):
            self._send_message(session, Sync(self.seen, reply=True), SendKind.GOSSIP)

    def _on_batches(self, session: _Session, message: Batches, now: float) -> None:
        fresh: list[tuple[Dot, bytes]] = []
        own = self.identity.peer_id
        ours = self.seen.max(own)
        ours_lost = 0  # the highest of our own validly signed batches this store does not hold
        fetch = False
        live = len(message.wires) == 1  # a flush's push (catch-up and relays carry bursts)
        from_author = False  # a live push of the sender's own batch: ack it at once
        for wire in message.wires:
            dot = Dot(*peek_batch(wire))
            from_author = live and dot.replica == session.peer_id
            held = dot in self.seen
            if held and self._log.get(dot, wire) == wire:
                session.peer_seen.add(dot)
                self.stats.duplicate_batches += 1
                continue
            # Verified before anything is believed: an unsigned header claims nothing.
            try:
                batch = open_batch(wire, self._authors, verify, max_size=self.config.max_message_bytes)
            except UntrustedAuthorError:
                self._park(dot, wire)  # the relay is not at fault: keep the connection
                continue
            session.peer_seen.add(dot)
            try:
                check_stamps(batch, self._stamp_bound())
            except ClockSkewError as exc:
                self._refuse_batch(session, batch, exc)
                continue
            if dot.replica == own:
                ours_lost = max(ours_lost, dot.counter)
                if held:
                    continue  # we signed another batch under this number: never apply both
            elif held:
                self._equivocation(session, batch)
                continue
            if batch.hash in self._pending:
                self.stats.duplicate_batches += 1
                continue
            missing = self._causal.missing(batch)
            if missing and not any(self._causal.refused(d) for d in missing):
                self._buffer(batch, missing)
                fetch = True
                continue
            try:
                self._apply(batch)
            except RemoteProtocolError as exc:
                self._refuse_batch(session, batch, exc)
                continue
            fresh.append((dot, wire))
            fresh += self._release(session.conn, batch.hash)
        if ours_lost:
            self._check_history(session, ours, ours_lost)
        self._known_seen[session.peer_id] = session.peer_seen.copy()
        if fetch or from_author:
            # fetch: the sender applied what it relays, so it holds the dependencies we lack.
            self._send_message(session, Sync(self.seen, reply=True), SendKind.GOSSIP)
        elif fresh:
            if session.ack_at is None:
                session.ack_at = now + self.config.ack_delay
        if fresh:
            self._relay += fresh
            if now >= self._next_relay:
                self._relay_round(now)

    def _equivocation(self, session: _Session, batch: DeltaBatch) -> None:
        """``batch`` is validly signed, but its author signed another batch under its number."""
        self._refuse_batch(session, batch, EquivocationError(f"{batch.author} signed two different batches #{batch.seq}"))

    def _refuse_batch(self, session: _Session, batch: DeltaBatch, exc: RemoteProtocolError) -> None:
        """Refuse one validly signed batch: count it, report it, keep the connection.

        Its author signed it; the peer that sent it may only be relaying it, so dropping that
        peer would cut honest replicas apart. Batches depending on it are refused with it.
        """
        log.warning("refused batch %s#%d from %s: %s", batch.author, batch.seq, session.peer_id, exc)
        self._causal.refuse(batch)
        self.stats.count_refusal(exc.reason)
        self._events.append(Refused(session.conn, exc.reason, str(exc)))

    def _buffer(self, batch: DeltaBatch, missing: list[bytes]) -> None:
        """Keep a verified batch until its dependencies are applied, within the bounds.

        An author past its budget (``max_pending_per_author``) loses its own oldest waiting
        batch, so it can displace no one else's; the global bound (``max_pending_batches``)
        then drops the new batch as a last resort. A dropped batch is not in ``seen``: a later
        ``Sync`` fetches it again.
        """
        if batch.hash in self._pending:
            return
        own = self._pending_by_author.get(batch.author, {})
        if len(own) >= self.config.max_pending_per_author:
            if not own:  # a budget of zero: nothing of this author waits
                self.stats.pending_dropped += 1
                return
            self._unbuffer(batch.author, next(iter(own)))
            self.stats.pending_dropped += 1
        elif len(self._pending) >= self.config.max_pending_batches:
            self.stats.pending_dropped += 1
            return
        self._pending[batch.hash] = batch
        self._pending_by_author.setdefault(batch.author, {})[batch.hash] = tuple(missing)
        for dep in missing:
            self._waiting.setdefault(dep, {})[batch.hash] = None
        self.stats.batches_buffered += 1

    def _unbuffer(self, author: str, batch_hash: bytes) -> None:
        """Forget a waiting batch: applied, refused or dropped; no dependency lists it any more."""
        del self._pending[batch_hash]
        own = self._pending_by_author[author]
        deps = own.pop(batch_hash)
        if not own:
            del self._pending_by_author[author]
        for dep in deps:
            waiters = self._waiting.get(dep)
            if waiters is not None:
                waiters.pop(batch_hash, None)
                if not waiters:
                    del self._waiting[dep]

    def _release(self, conn: ConnId | None, applied: bytes) -> list[tuple[Dot, bytes]]:
        """Apply the waiting batches that ``applied`` (transitively) made ready; return them.

        A refused one is counted (and reported on ``conn``, the connection that brought
        ``applied``, if any); it never drops a connection: its sender is not at fault."""
        out: list[tuple[Dot, bytes]] = []
        stack = [applied]
        while stack:
            for waiting in self._waiting.pop(stack.pop(), ()):
                batch = self._pending.get(waiting)
                if batch is None or self._causal.missing(batch):
                    continue
                self._unbuffer(batch.author, waiting)
                try:
                    self._apply(batch)
                except CrdtmemError as exc:
                    # Signed by its author, not by this sender: count it, keep the connection.
                    reason = getattr(exc, "reason", RefusalReason.INTERNAL_ERROR)
                    log.warning("refused waiting batch %s#%d: %s", batch.author, batch.seq, exc)
                    self.stats.count_refusal(reason)
                    self._events.append(Refused(conn, reason, str(exc)))
                    continue
                out.append((Dot(batch.author, batch.seq), batch.wire))
                stack.append(batch.hash)
        return out

    def _report_clashes(self) -> None:
        """Raise a :class:`TypeClash` for each name the memory began holding as another type."""
        for name, tags in self.memory.take_clashes():
            log.warning("type clash: %r is written as %s; reads see the %s", name, ", ".join(tags), tags[0])
            self._events.append(TypeClash(name, tags))

    def _park(self, dot: Dot, wire: bytes) -> None:
        if dot not in self._parked:
            log.info("parked batch %s#%d: its author is not in the keyring", dot.replica, dot.counter)
        self._parked.park(dot, wire)
        self._sync_parked_stats()

    def _sync_parked_stats(self) -> None:
        self.stats.batches_parked, self.stats.parked_dropped = self._parked.parked, self._parked.dropped

    def _apply(self, batch: DeltaBatch) -> None:
        try:
            covered = self._causal.check(batch)
        except RemoteProtocolError:
            self._causal.refuse(batch)
            raise
        apply_batch(self.memory, batch)
        self._causal.record(batch, covered)
        dot = Dot(batch.author, batch.seq)
        self.seen.add(dot)
        self._log.add(dot, batch.wire)
        self._events.append(BatchApplied(batch.author, batch.seq, batch.wire, local=False))
        self.stats.batches_applied += 1

    def pending_size(self, author: str | None = None) -> int:
        """How many verified batches wait for their dependencies (for health and tests).

        Args:
            author: count only this author's (None: every author's).
        """
        if author is None:
            return len(self._pending)
        return len(self._pending_by_author.get(author, ()))

    def _reconcile(self, session: _Session, now: float) -> None:
        """A periodic full ``Sync``: the peer answers with the signed batches we lack, and we it."""
        self.stats.anti_entropy_sessions += 1
        self.stats.anti_entropy_finished += 1
        session.next_anti_entropy = now + self._anti_entropy_delay()
        self._send_message(session, Sync(self.seen), SendKind.ANTI_ENTROPY)

    def _anti_entropy_delay(self) -> float:
        return self.config.anti_entropy_interval * (0.75 + 0.5 * self.rng.random())

    # -- sending ----------------------------------------------------------------------------

    def _relay_round(self, now: float) -> None:
        """Push the waiting fresh batches to ``fanout`` random neighbours not known to have them all."""
        batches, self._relay = self._relay, []
        self._next_relay = now + self.config.relay_delay
        lacking = [
            s for s in self._ready_sessions()
            if any(dot not in s.peer_seen and dot not in s.in_flight for dot, _ in batches)
        ]
        for target in self.rng.sample(lacking, min(self.config.fanout, len(lacking))):
            self._push(target, batches, SendKind.GOSSIP)

    def _gossip_round(self) -> None:
        sessions = self._ready_sessions()
        digest = SeenDigest(seen_digest(self.seen))
        for session in self.rng.sample(sessions, min(self.config.fanout, len(sessions))):
            self._send_message(session, digest, SendKind.GOSSIP)

    def _push(self, session: _Session, batches: list[tuple[Dot, bytes]], kind: SendKind) -> None:
        """Send the batches the peer neither has nor has been sent on this connection.

        A connection delivers in order or breaks (the framing refuses gaps), so what was sent
        on it arrives unless it closes, and a new connection starts with nothing in flight.
        """
        in_flight = session.in_flight
        batches = [(dot, wire) for dot, wire in batches if dot not in session.peer_seen and dot not in in_flight]
        step = self.config.max_batch_wires_per_message
        own = self.identity.peer_id
        for start in range(0, len(batches), step):
            chunk = batches[start : start + step]
            self._send_message(session, Batches(tuple(wire for _, wire in chunk)), kind)
            session.in_flight.update(dot for dot, _ in chunk)
            session.own_sent = max([session.own_sent, *(dot.counter for dot, _ in chunk if dot.replica == own)])

    def _send_message(self, session: _Session, message: Message, kind: SendKind) -> None:
        if isinstance(message, Sync):
            session.ack_at = None  # any Sync tells the peer what we have
        for frame in session.channel.seal_message(encode_message(message)):
            self._send(session, frame, kind)

    def _send(self, session: _Session, data: bytes, kind: SendKind) -> None:
        self._actions.append(Send(session.conn, data, kind))
        self.stats.count_send(kind, len(data))

    # -- bookkeeping ------------------------------------------------------------------------

    def _check_history(self, session: _Session, ours: int, theirs: int) -> None:
        """A peer relayed our own validly signed batch ``theirs`` that this store did not hold.

        Only our own signature proves our history: a ``Sync`` or a batch header is the peer's
        word and is never believed here, so no peer can halt us with a claim.
        """
        if self.lost_history is not None:
            return
        self.lost_history = (
            f"peer {session.peer_id} holds batches of {self.identity.peer_id} up to #{theirs}, this replica only "
            f"up to #{ours}: its store was lost or is an old copy. New writes would reuse numbers the peers "
            "ignore; run this replica under a new identity (crdtmem keygen) with an empty store."
        )
        log.error("%s", self.lost_history)
        self.stats.lost_history += 1
        self._events.append(HistoryLost(session.peer_id, ours, theirs))

    def _learn(self, session: _Session, seen: CausalContext) -> None:
        session.peer_seen.join(seen)
        session.in_flight = {dot for dot in session.in_flight if dot not in seen}
        self._known_seen.setdefault(session.peer_id, CausalContext()).join(seen)

    def _collect_log(self, now: float) -> None:
        """Forget what peers gone for longer than ``log_retention`` had seen.

        Signed batches themselves are kept for good (up to ``max_log_batches``): they are the
        only proof of each author's writes and of our own history that a peer joining or
        returning later can verify, so acks never drop them.
        """
        for peer_id, since in list(self._gone_since.items()):
            if now - since >= self.config.log_retention:
                del self._gone_since[peer_id]
                self._known_seen.pop(peer_id, None)

    def log_size(self) -> int:
        """How many signed batches the delta log holds for catch-up."""
        return len(self._log)

    def snapshot(self) -> Snapshot:
        """What a store keeps of this replica now: call :meth:`flush` first, then hand it to
        :meth:`Store.compact <crdtmem.protocol.recovery.Store.compact>`."""
        return Snapshot.of(self.memory, self.seen, self._log.wires())

    def _stamp_bound(self) -> int:
        """The latest hybrid timestamp a peer's write may carry (memory clock + ``max_clock_skew``)."""
        return self.memory.stamp_bound(self.config.max_clock_skew)

    def log_wires(self) -> list[bytes]:
        """The delta log's signed batches: persist them with a snapshot to restore the log."""
        return self._log.wires()

    def _advance(self, now: float) -> None:
        if now > self._now:
            self._now = now

    def _ready_sessions(self) -> list[_Session]:
        return [s for s in self._sessions.values() if s.ready]

    def _refuse(self, session: _Session, exc: CrdtmemError, now: float) -> None:
        reason = getattr(exc, "reason", RefusalReason.INTERNAL_ERROR)
        self._drop(session, reason, str(exc), now)

    def _drop(self, session: _Session, reason: RefusalReason, detail: str, now: float) -> None:
        log.warning("refused %s from %s: %s", reason, session.peer_id or session.conn, detail)
        self.stats.count_refusal(reason)
        self._events.append(Refused(session.conn, reason, detail))
        self._actions.append(Close(session.conn, reason))
        self.close(session.conn, now, reason)

class _WithOwnKey:
    """The keyring as batch verification sees it: the caller's, plus this node's own key."""

    def __init__(self, keyring: Keyring, identity: Identity) -> None:
        self._keyring, self._identity = keyring, identity

    def public_key(self, peer_id: str) -> bytes | None:
        if peer_id == self._identity.peer_id:
            return self._identity.public_key
        return self._keyring.public_key(peer_id)


def _covers(big: CausalContext, small: CausalContext) -> bool:
    return all(big.vv.get(r, 0) >= c for r, c in small.vv.items()) and all(d in big for d in small.iter_cloud())

