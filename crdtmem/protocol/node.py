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
does (or a few measured round trips pass, ``NodeConfig.ack_wait_rtts``, and never more than
``max_flush_delay``; or, if ``full_batch_writes`` is set, they make a full batch, which goes at
once while fewer than ``max_unacked_batches`` are unacknowledged; when it comes while a few
writes of a burst are held, they wait a little for more, ``burst_batch_writes``); with no
neighbour connected they wait ``max_flush_delay``. A deadline
at or before the present means "tick now". Randomness comes from the ``random.Random`` the
node is given, so the websocket runtime and the simulator run this same code, and a
simulation seed replays exactly.

What the node does, per DESIGN.md §4:

* handshake: mutual challenge–response, refusing keys outside the keyring;
* push: local writes become one signed batch per flush, sent at once to every neighbour when
  they have acknowledged our earlier batches, and coalesced while one is in flight (a
  neighbour acknowledges its author's batches at once, so a flush waits one round trip at
  most, and never longer than ``max_flush_delay``);
  new batches from others are relayed to the *eager* neighbours that may lack them, at
  once if nothing was relayed in the last ``relay_delay``, else together with whatever else
  arrives until then (one message per neighbour for a burst);
* a relay tree (with ``eager_tree``, :mod:`.relaytree`): neighbours tell each other
  their distance to the smallest peer id (``TreeRoot``), and each peer's eager links are its
  parent on a shortest path to that root and the neighbours that chose it as theirs: one
  breadth-first spanning tree, so each batch reaches a peer about once. Fresh batches go
  over the eager links; the lazy ones get ``IHave``, the fresh batches' numbers, and a peer
  still lacking one ``graft_timeout`` later asks the announcer with a ``Sync`` (Plumtree's
  lazy repair). A tree path between two peers runs through their common ancestor, longer
  than the mesh's shortest path, so a batch's first two hops take shortcuts over lazy links
  where the tree may detour: own batches go to every such neighbour, and a batch that came
  straight from its author to ``fanout`` of them (``_shortcuts``). Without ``eager_tree``,
  fresh batches go to ``fanout`` random neighbours that may lack them, own ones to every
  neighbour;
* gossip rounds: every ``gossip_interval`` a digest of the batches seen goes to ``fanout``
  random neighbours; one whose digest differs answers with its full ``Sync``, and the
  answers carry whatever either side lacks (push–pull);
* reconciliation moves signed batches, never a peer's state: each side's ``Sync`` (a version
  vector per author) tells the other which signed batches it lacks, and those original batches
  are sent from the delta log (or their author's checkpoint, below), so every receiver verifies
  every author's part itself (the first
  ``Sync`` of a connection from the whole log, later ones from what was logged since the
  last answer: all before it was sent on that connection or is held). A ``Sync`` goes
  out on every connect (both sides at once; neither answers the other's), on every differing
  gossip digest and every ``anti_entropy_interval``. Received batches are acked after
  ``ack_delay``: with an 8-byte digest of the seen set when the peer is believed to hold
  exactly what we hold, else with a ``Sync``;
* the delta log keeps signed batches for good (unless ``max_log_batches`` is set), so a
  peer that joins or returns late gets every author's signed history;
* checkpoints (:mod:`.checkpoint`): an author whose batches so far depend only on its own
  (it wrote alone) answers a peer lacking ``checkpoint_min_batches`` of them with one signed
  checkpoint, their join, instead. A joiner takes it like the batch it ends with (no batch
  of another's may be removed by it), serves it on to peers lacking those batches, and fetches
  the batches themselves (``WantHistory``) when a later batch names one it stands for or when
  it cannot take it. An author idle for ``checkpoint_push_idle`` passes its checkpoint to its
  neighbours when its batches doubled since it last did. A replica that holds the batches and
  receives their checkpoint checks it (at most once per ``checkpoint_audit_interval`` per
  author), keeps it to send to joiners, or refuses it if it differs (``equivocation``);
* relays (a broker's stream, :mod:`.relay`): own batches and those applied from sessions are
  published to each attached relay until its broker stores them; batches it delivers take the
  same verification path as a session's, and bad ones are refused without closing anything;
* causal delivery: a verified batch waits until the batches it names as dependencies are
  applied here. Each author has its own budget of waiting batches (``max_pending_per_author``,
  1,000): past it that author's oldest waiting batch is dropped, so an author naming hashes
  that will never exist displaces only its own batches. ``max_pending_batches`` (10,000)
  bounds all of them together as a last resort. A dropped batch is counted
  (``pending_dropped``) and fetched again by a later ``Sync``;
* equivocation: a second batch signed under a number whose first version is applied here is
  refused (``equivocation``, counted, the connection kept) and never applied, but it vouches
  for the batches that depend on it, so honest authors who applied it are not blocked. A
  ``Want`` fetches such a dependency by hash (a ``Sync`` names batches by number and cannot);
* untrusted authors: a batch whose author is not a member is parked (bounded by
  ``max_parked_batches``, oldest dropped first) and applied once :meth:`Node.trust` or an
  admin's admission record (:mod:`.membership`) admits the author; the peer that relayed it
  keeps its connection. A batch of a trusted author with a bad signature is still refused and
  closes the connection: a relay cannot forge a signature, so a peer that sends one is faulty;
* membership: records in the shared memory admit and revoke keys at runtime; a batch is
  checked against them before it is applied (``not-an-admin``, ``revoked-author``), a revoked
  key's connections close (``revoked-key``), and a revoked key's batch past the revocation's
  cut is held, then applied only if a member's batch depends on it;
* type clashes: a name written as two types is kept as one object per type, resolved alike on
  every replica (:mod:`crdtmem.memory`), and reported as a :class:`TypeClash` event; it never
  closes a connection;
* bounded numbers: a batch whose timestamps run ahead of this replica's clock by more than
  ``max_clock_skew`` is refused (``clock-skew``); a local write that cannot be encoded is set
  aside and reported by :meth:`Node.check_writable`, never raised out of :meth:`Node.tick`;
* claims need signatures: a ``Sync`` or a batch header is the peer's word and changes nothing
  of ours;
* incarnations: the node writes under a fresh incarnation of its identity at every start
  (:func:`~crdtmem.identity.new_incarnation`), so two processes sharing a key, or a restart
  that lost its store, never reuse a dot or a sequence number, and no write of any of them is
  ever ignored. Batches of the key's other incarnations are applied like anyone's; one under
  this start's own incarnation that it did not sign is refused (``equivocation``);
* departed incarnations (:mod:`.retirement`): :meth:`Node.retire` seals the last batch with a
  retirement record, and a start retires its store's ``predecessors`` that did not; each
  replica prunes a retired incarnation from its seen set, the memory's causal contexts, its
  knowledge of peers and new covered vectors once it holds all its batches and a witness, and
  treats its batches as duplicates from then on (``bad-retirement``, ``retired-author``).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from .. import codec
from ..clocks import CausalContext, Dot
from ..errors import (
    CrdtmemError,
    RefusalReason,
    RemoteProtocolError,
    UnencodableWriteError,
)
from ..identity import Identity, Keyring, key_id_of, new_incarnation, verify
from ..memory import Memory
from ..merkle import MerkleIndex
from .batch import (
    ClockSkewError,
    DeltaBatch,
    UntrustedAuthorError,
    apply_batch,
    check_stamps,
    open_batch,
    peek_batch,
    seal_batch,
)
from .causal import CausalIndex, EquivocationError, reach_of
from .checkpoint import Checkpoint
from .compact import BatchCompressor, BatchExpander
from .deltalog import DeltaLog
from .events import (
    Action,
    BatchApplied,
    Close,
    Event,
    PeerConnected,
    PeerDisconnected,
    Refused,
    Send,
    SendKind,
    TypeClash,
)
from .framing import FrameChannel, ReplayedFrameError, SessionKeys
from .handshake import Handshake, HandshakeState
from .messages import (
    MAX_WANTED,
    Batches,
    CompactBatches,
    Checkpoints,
    Message,
    SeenDigest,
    Sync,
    Want,
    WantHistory,
    IHave,
    TreeRoot,
    decode_message,
    encode_message,
    seen_digest,
)
from .membership import Membership, RevokedAuthorError
from .checkpointing import Checkpointing
from .departures import Departures
from .retirement import Retirements, retirement_records
from .parking import ParkedBatches
from .recovery import Snapshot
from .reindex import index_entry
from .relay import RelayInputs, RelayLink
from .relaytree import RelayTree
from .stats import NodeStats

__all__ = ["Node", "NodeConfig"]

log = logging.getLogger("crdtmem.node")
ConnId = Hashable

_MAX_EVIDENCE = 1024
"""Equivocating batches kept to answer a :class:`Want` (the oldest goes first)."""

_MIN_ACK_WAIT = 0.001
"""Seconds local writes may always wait for an acknowledgement, however short the round trip."""


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
    ack_wait_rtts: float | None = 4.0
    """While neighbours are connected, local writes wait for an acknowledgement at most this
    many acknowledgement round trips (the lower envelope of those measured on this node's
    links, at least 1 ms; never more than ``max_flush_delay``): an ack later than that is
    held up by a busy or descheduled peer, and the writes go without it. None: wait up to
    ``max_flush_delay`` always."""
    full_batch_writes: int | None = None
    """Held local writes that make a full batch: once this many wait for an acknowledgement,
    they are signed and sent without it while fewer than ``max_unacked_batches`` of our batches
    are unacknowledged, so a receiver slower than the writer is never left idle while the
    writer seals one large batch, and the last batch of a burst stays short. None (the
    default): writes wait for the acknowledgement, at most ``ack_wait_rtts`` round trips and
    ``max_flush_delay``; ``benchmarks/bench_websocket.py`` measured 1,024 and 4,096 no faster
    than that (its receiver now applies a write faster than its writer makes one)."""
    burst_batch_writes: int | None = 8
    """How many writes a batch waits to hold while local writes come in a burst: when an
    acknowledgement releases held writes, and at least two but fewer than this many wait,
    they wait a little longer for more to join them (the time the rest take at the rate the
    held ones came, at most as long again as they have waited, within the ``ack_wait_rtts``
    bound) and go as soon as this many have joined. A batch then carries its ~100 bytes of
    signature and framing for more edits when the acknowledgement comes back within a few
    of them (peers in one process); a writer that outpaces its round trips already fills its
    batches past this. None: held writes go with the acknowledgement."""
    compact_batches: bool = True
    """Send batches over sessions in the compact form (:mod:`.compact`: the author by a
    connection-local alias, the number as a step, a dependency on the author's last batch on
    the connection by reference), about 45 bytes less per batch for some 3 µs of CPU on
    each side; except a batch of local writes that found every link idle, which goes whole
    at once (its latency is all that matters). False: send every batch whole; every peer
    reads both forms."""
    max_unacked_batches: int = 4
    """Own batches a neighbour may leave unacknowledged before even full batches wait: what one
    slow neighbour has in flight stays within this many batches of ``full_batch_writes``."""
    relay_delay: float = 0.05
    """At most one relay round per this many seconds; batches arriving meanwhile wait for it
    (one message per neighbour for a burst). Every hop a batch takes may wait this long: with
    ``eager_tree``, 20 ms (about one link's latency) is what keeps the tree's batches as fast
    as random relays at 100 simulated peers (``simulations/gossip_duplicates.py``), at the
    price of more, smaller messages under load."""
    log_retention: float = 600.0
    """How long what a peer that went away had seen is remembered (its batches stay logged)."""
    max_frame_bytes: int = 1024 * 1024
    max_message_bytes: int = 64 * 1024 * 1024
    max_log_batches: int | None = None
    """Signed batches kept in RAM for catch-up; None (the default): every one, for good.
    Opt-in bound: past it the oldest are no longer served, so a peer that lacks one of them
    (a late joiner, a peer that lost its store) never gets it from this node, and its batches
    that depend on it wait at that peer until its wait budget drops them."""
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
    relay_republish_interval: float = 5.0
    """Seconds after which a batch published to a relay and not yet acknowledged as stored by
    its broker is published again (the broker's duplicate window drops repeats)."""
    eager_tree: bool = False
    """Relay along one breadth-first spanning tree rooted at the smallest peer id
    (:mod:`.relaytree`), announcing fresh batches over the other links (``IHave``); a batch's
    first two hops also take lazy links where the tree may detour (``Node._shortcuts``). With
    ``relay_delay`` 20 ms: about 0.44 / 0.18 duplicate per useful delivery at 100 / 1,000
    simulated peers instead of two, converging as fast or faster
    (``simulations/gossip_duplicates.py``). Off (the default): relay to ``fanout`` random
    neighbours, own writes to every neighbour, which converges sooner under heavy packet loss
    and after a crash-and-restart heal (``simulations/tree_faults.py``) and, on a small sparse
    mesh under load, costs fewer messages and less CPU per delivery (``bench_receive.py``)."""
    graft_timeout: float = 0.1
    """With ``eager_tree``: how long a batch announced over a lazy link (``IHave``) may take to
    arrive over the tree before this peer asks the announcer for it."""
    tree_hold_down: float = 1.0
    """With ``eager_tree``: how long a peer that lost every loop-free way to the relay tree's root
    ignores that root before taking it back (see :mod:`.relaytree`)."""
    checkpoint_min_batches: int | None = 4
    """A peer lacking at least this many of an author's batches that a checkpoint here stands
    for (:mod:`.checkpoint`) is sent the checkpoint instead of them: one signature and one
    state-sized delta. None: batches only, and no checkpoint is taken either."""
    checkpoint_push_idle: float | None = 5.0
    """Seconds without a local write after which an author whose batches stand alone passes
    its checkpoint to its neighbours, who check it against the batches and send it on to
    joiners, when its batches at least doubled since it last did (so the checkpoints cost a
    few states in all, whatever the history). None: only sent to peers that lack the batches."""
    checkpoint_audit_interval: float = 30.0
    """Seconds between two checks of one author's checkpoints against its batches held here
    (each check joins all of them again: bounded, so a bad author cannot make us repeat it)."""
    max_clock_skew: float = 300.0
    """Seconds a peer's hybrid timestamps may run ahead of this replica's memory clock; later
    ones are refused (``clock-skew``), so no peer can push last-writer-wins time to its limit."""


@dataclass
class _Session:
    conn: ConnId
    dialer: bool
    opened_at: float
    handshake: Handshake
    channel: FrameChannel | None = None  # the dialer's is made with its auth, the acceptor's once done
    peer_id: str | None = None  # set once the handshake finished: the peer is authenticated
    peer_seen: CausalContext = field(default_factory=CausalContext)
    in_flight: set[Dot] = field(default_factory=set)
    ack_at: float | None = None
    own_sent: int = 0  # the highest of our own batch numbers sent on this connection
    own_sent_at: float | None = None  # when an own batch not yet acknowledged was sent (an RTT sample)
    heard: bool = False  # whether the peer's first Sync on this connection arrived
    answered_at: int | None = None  # the delta log's position when the last Sync on it was answered
    next_anti_entropy: float = 0.0
    announced: set[Dot] = field(default_factory=set)  # dots the peer has and we lacked when it said so
    checkpoints_sent: set[Dot] = field(default_factory=set)  # the checkpoints sent on it, by the dot they end with
    histories_asked: set[str] = field(default_factory=set)  # authors whose logged batches we asked it for
    histories_sent: set[str] = field(default_factory=set)  # authors whose logged batches it asked for and got
    ask_at: float | None = None  # when to ask for those still missing
    compressor: BatchCompressor = field(default_factory=BatchCompressor)  # batches sent on it, compact
    expander: BatchExpander = field(default_factory=BatchExpander)  # compact batches received on it

    @property
    def ready(self) -> bool:
        return self.peer_id is not None


class Node(RelayInputs, Departures, Checkpointing):
    """One replica's protocol engine. See the module docstring for how to drive it; relays
    (a broker's stream instead of sessions) are driven as :mod:`crdtmem.protocol.relay` says.

    Args:
        memory: the replica. Its ``replica_id`` is ``identity.peer_id`` (the node then writes
            under a fresh incarnation drawn from ``rng``, see :meth:`Memory.incarnate`) or an
            incarnation of it the caller chose for this start.
        identity: this peer's signing key. Its own batches are always trusted (a restarted
            replica must accept its writes relayed back), whether or not ``keyring`` lists it.
        keyring: the founding members: who else may connect and author batches (closed by
            default); its admins (``+admin``) admit and revoke others at runtime with
            membership records (see :attr:`members`). The node reads it on every handshake
            and batch, so keys added or removed later take effect; it never changes it.
        rng: the only source of randomness (nonces, gossip targets, the incarnation).
        config: tunables.
        seen: the batches already reflected in ``memory`` (restored from storage).
        log: signed batch wires to keep serving for catch-up (restored from storage).
        predecessors: the incarnations of this key that ran on the same store before this
            start (the shell remembers them). Those that did not retire (a crash, a kill) are
            retired in this start's first batch, at the highest number the store holds for each
            (:mod:`.retirement`). Never name an incarnation that may still run elsewhere.
        log_entries: the index entries journaled with ``log`` (``Restored.log_entries``,
            :mod:`.reindex`): a batch that has one is re-indexed without decoding its deltas.
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
        predecessors: Iterable[str] = (),
        log_entries: Sequence[bytes] = (),
    ) -> None:
        if key_id_of(memory.replica_id) != identity.peer_id:
            raise ValueError(f"memory replica id {memory.replica_id!r} is not an incarnation of {identity.peer_id!r}")
        if memory.replica_id == identity.peer_id:
            memory.incarnate(new_incarnation(identity.peer_id, rng))
        self.memory, self.identity, self.keyring, self.rng = memory, identity, keyring, rng
        self.replica_id = memory.replica_id
        """This start's incarnation of ``identity``: the author of every batch it signs."""
        self.members = Membership(keyring, identity, memory)
        """Who may connect and author batches: the keyring plus the replicated membership records."""
        self._membership_changed = False
        self._beyond_cut: dict[bytes, DeltaBatch] = {}  # revoked keys' batches past the cut, by hash
        self.config = config or NodeConfig()
        self.seen = seen.copy() if seen is not None else CausalContext()
        self.index = MerkleIndex(memory)
        self._log = DeltaLog(self.config.max_log_batches)
        self._retirements = Retirements(keep=self.replica_id)
        self._causal = CausalIndex(self._retirements)
        self._parked = ParkedBatches(self.config.max_parked_batches)
        self._evidence: dict[bytes, bytes] = {}  # hash -> wire: other versions of numbers we hold
        self._checkpoints: dict[str, Checkpoint] = {}  # others' checkpoints taken here, by author (served on)
        self._replay(log_wires, log_entries)
        # Our memory is exactly what this incarnation sealed (our checkpoint is read from it)
        # until it applies another's batch or checkpoint.
        self._pure = not self.seen.size() and not memory.names()
        self._retire_predecessors(predecessors)
        self._own_checkpoint_cache: Checkpoint | None = None
        # The keys of the checkpoints taken or refused here (bounded):
        self._checkpoints_handled: dict[tuple[str, int, bytes, bytes], None] = {}
        self._history_wanted: set[str] = set()  # authors behind a checkpoint whose batches we fetch
        self._audited_at: dict[str, float] = {}  # author -> when its checkpoint was last checked here
        self._audits_offered: set[tuple[str | None, Dot]] = set()  # (peer id, checkpoint's dot) sent to be checked
        self._sealed_at: float | None = None  # when our last batch was sealed
        self._checkpoint_pushed = 0  # the number our checkpoint last passed to the neighbours stood at
        self._pending: dict[bytes, DeltaBatch] = {}  # verified, waiting for dependencies
        self._waiting: dict[bytes, dict[bytes, None]] = {}  # missing dependency -> batches waiting on it
        # author -> its waiting batches, oldest first -> the dependencies each was filed under
        self._pending_by_author: dict[str, dict[bytes, tuple[bytes, ...]]] = {}
        self._tree = RelayTree(identity.peer_id, hold_down=self.config.tree_hold_down)  # eager links (eager_tree)
        self._relay: list[tuple[Dot, bytes]] = []  # fresh batches waiting for the next relay round
        self._second_hop: dict[Dot, ConnId] = {}  # those of them that came straight from their author: over which link
        self._next_relay = 0.0
        self._sessions: dict[ConnId, _Session] = {}
        self._relays: dict[ConnId, RelayLink] = {}
        self._known_seen: dict[str, CausalContext] = {}  # per peer met recently: what it has seen
        self._gone_since: dict[str, float] = {}  # peers with no open session, since when
        self._actions: list[Action] = []
        self._events: list[Event] = []
        self._next_gossip: float | None = None
        self._now = -math.inf  # the latest time the shell has given
        self._held_since: float | None = None  # local writes waiting for an ack, since when
        self._held_for_ack = False  # whether they wait for a connected neighbour's ack (else for one to connect)
        self._release_at = math.inf  # pending writes at which held ones go without the ack (a full batch)
        self._burst_until: float | None = None  # when held writes an ack released stop waiting for a burst
        self._ack_rtt: float | None = None  # acknowledgement round trip, lower envelope (see _note_ack)
        self._unencodable: list[tuple[str, str]] = []  # (name, why) of local writes flush could not encode
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
        handshake = Handshake(self.identity, self.members, self.rng.randbytes(32), self.rng.randbytes(32))
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
        self._after_membership_change(now)

    def close(self, conn: ConnId, now: float, reason: str = "closed by transport") -> None:
        """Call when a transport connection closed, from either side, for any reason.

        Also call it after performing a :class:`Close` action (closing twice is harmless).
        """
        self._advance(now)
        session = self._sessions.pop(conn, None)
        if session is not None:
            if session.peer_id is not None:  # what it was known to hold, for its next connection
                self._known_seen[session.peer_id] = session.peer_seen.copy()
            if session.ready and self.config.eager_tree:
                self._tree.link_down(conn, now)
                self._send_tree_adverts()
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
        self._push_checkpoint(now)
        for session in list(self._sessions.values()):
            if not session.ready and now >= session.opened_at + self.config.handshake_timeout:
                self._drop(session, RefusalReason.HANDSHAKE_TIMEOUT, "handshake did not finish in time", now)
            elif session.ready:
                if session.ack_at is not None and now >= session.ack_at:
                    self._ack(session)
                if session.dialer and now >= session.next_anti_entropy:
                    self._reconcile(session, now)
                if session.ask_at is not None and now >= session.ask_at:
                    self._ask_announced(session)
        if self._relay and now >= self._next_relay:
            self._relay_round(now)
        self._relay_tick(now)
        expiry = self._tree.next_expiry()
        if expiry is not None and now >= expiry:
            self._tree.expire(now)
            self._send_tree_adverts()
        if self._next_gossip is None:
            self._next_gossip = now + self.config.gossip_interval
        elif now >= self._next_gossip:
            self._next_gossip = now + self.config.gossip_interval
            self._collect_log(now)
            self._gossip_round()

    def flush(self, now: float) -> None:
        """Sign the memory's pending local deltas as one batch and push it to every neighbour.

        :meth:`tick` does this too; call ``flush`` when the writes must be out (and journaled,
        through the :class:`BatchApplied` event) before the caller goes on.
        """
        self._advance(now)
        waited = self._held_since is not None  # else the writes found every link idle: latency first
        self._held_since = self._burst_until = None
        deltas = self.memory.take_deltas()  # one delta group per object
        self._report_clashes()
        if not deltas:
            return
        seq = self.seen.max(self.replica_id) + 1  # taken below, once a batch is sealed under it
        heads = self._causal.heads()
        try:
            batch = seal_batch(self.identity, seq, deltas, heads, author=self.replica_id)
        except (TypeError, ValueError, OverflowError):
            batch = self._seal_encodable(seq, deltas, heads)
            if batch is None:
                return
        self._record_applied(batch, None, retirement_records(batch.deltas), local=True)
        self._sealed_at = now
        self.stats.batches_created += 1
        sessions = self._ready_sessions()
        for session in self._relay_targets(sessions) + self._shortcuts(None, sessions, 1):
            self._push(session, [(Dot(batch.author, seq), batch.wire)], SendKind.GOSSIP, whole=not waited)
        self._announce(sessions, [(Dot(batch.author, seq), batch.wire)])
        self._relay_publish_fresh([(Dot(batch.author, seq), batch.wire)], now)
        if self.members.touches(batch.deltas):
            self._membership_changed = True
            self._after_membership_change(now)

    @property
    def writes_held(self) -> bool:
        """Whether the pending local writes wait, since the last :meth:`tick`, for a connected
        neighbour's acknowledgement (or, once it came, for more of their burst): a write made
        meanwhile joins them and needs no tick of its own (the acknowledgement, a full batch or
        the deadline releases them all). Ask after a local write to skip waking the timer."""
        return self._held_since is not None and self._held_for_ack and self.memory.pending_writes < self._release_at

    def _holding(self, now: float) -> bool:
        """Whether pending local writes wait (to join one batch) for a neighbour's ack, or for
        more of a burst once it came (``burst_batch_writes``)."""
        if not self.memory.has_pending_deltas():
            self._held_since = None
            return False
        if not self._writes_wait():
            return self._joining_burst(now)  # if not, flush goes next (and sees whether they waited)
        if self._held_since is None:
            self._held_since = now
            self._held_for_ack = bool(self._ready_sessions())  # else no one is connected to send to
        full = self.config.full_batch_writes
        self._release_at = math.inf if full is None or self._unacked(self.config.max_unacked_batches) else full
        return now < self._held_since + self._hold_limit()

    def _joining_burst(self, now: float) -> bool:
        """Whether writes held for an acknowledgement that came wait for more of their burst.

        Called once the acknowledgement came: the first call sets how long they may wait (the
        time the missing writes take at the rate the held ones came, at most as long again as
        they waited, never past the ``ack_wait_rtts`` bound), and has them go at
        ``burst_batch_writes`` writes (:attr:`writes_held` turns false then).
        """
        since, burst = self._held_since, self.config.burst_batch_writes
        if self._burst_until is None:
            held = self.memory.pending_writes
            if burst is None or since is None or not self._held_for_ack or not 2 <= held < burst:
                return False
            waited = now - since
            self._burst_until = min(now + waited * min(1.0, (burst - held) / held), since + self._hold_limit())
            self._release_at = burst
        return now < self._burst_until and self.memory.pending_writes < self._release_at

    def _writes_wait(self) -> bool:
        """Whether no neighbour is connected and no relay is up (no one waits for our writes), or
        some neighbour has not acknowledged ``flush_window`` of our batches sent to it
        (``max_unacked_batches`` once the pending writes make a full batch)."""
        if not self._ready_sessions():
            return not any(relay.up for relay in self._relays.values())  # a relay that is up carries them at once
        full = self.config.full_batch_writes
        if full is not None and self.memory.pending_writes >= full:
            return self._unacked(max(self.config.flush_window, self.config.max_unacked_batches))
        return self._unacked(self.config.flush_window)

    def _unacked(self, window: int) -> bool:
        """Whether some connected neighbour has not acknowledged ``window`` of our batches sent to it."""
        own = self.replica_id
        return any(s.own_sent - s.peer_seen.max(own) >= window for s in self._ready_sessions())

    def _hold_limit(self) -> float:
        """How long pending local writes may wait for acknowledgements (see ``ack_wait_rtts``)."""
        limit, rtts = self.config.max_flush_delay, self.config.ack_wait_rtts
        if rtts is None or self._ack_rtt is None or not self._ready_sessions():
            return limit  # no round trip measured yet, or no one connected: coalesce up to the cap
        return min(limit, max(_MIN_ACK_WAIT, rtts * self._ack_rtt))

    def _note_ack(self, session: _Session) -> None:
        """Take an acknowledgement round-trip sample if the peer now holds our last batch sent to it.

        The estimate follows the lower envelope of the samples: a faster one replaces it, a
        slower one raises it by a sixteenth of the difference, so a peer's occasional stall
        does not lengthen how long writes wait for acks.
        """
        sent_at = session.own_sent_at
        if sent_at is None or session.peer_seen.max(self.replica_id) < session.own_sent:
            return
        session.own_sent_at = None
        sample, rtt = self._now - sent_at, self._ack_rtt
        self._ack_rtt = sample if rtt is None or sample < rtt else rtt + (sample - rtt) / 16

    def _seal_encodable(self, seq: int, deltas: list, heads: Iterable[bytes]) -> DeltaBatch | None:
        """Seal the deltas that encode; set the others aside for :meth:`check_writable` to report."""
        good = []
        for name, delta in deltas:
            try:
                codec.encode_state(delta)
            except (TypeError, ValueError, OverflowError) as exc:
                log.error("local write to %r cannot be encoded, not sent: %s", name, exc)
                self._unencodable.append((name, f"{name!r} ({type(exc).__name__}: {exc})"))
            else:
                good.append((name, delta))
        return seal_batch(self.identity, seq, good, heads, author=self.replica_id) if good else None

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
            self.keyring = keyring
            self.members.replace_founding(keyring)
        fresh: list[tuple[Dot, bytes]] = []
        for dot, wire in self._parked.release(lambda author: self.members.public_key(author) is not None):
            if self._holds(dot):
                continue
            try:
                batch = open_batch(wire, self.members, verify, max_size=self.config.max_message_bytes)
                check_stamps(batch, self._stamp_bound())
                missing = self._causal.missing(batch)
                if missing and self._beyond_cut:
                    fresh += self._apply_beyond_cut_for(batch, missing)
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
            self._queue_relay(fresh, now)
        self._after_membership_change(now)

    def _after_membership_change(self, now: float) -> None:
        """After membership records were applied: drop revoked keys' connections, apply the
        parked batches of keys admitted now."""
        if not self._membership_changed:
            return
        self._membership_changed = False
        for session in list(self._sessions.values()):
            if session.peer_id is not None and self.members.is_revoked(session.peer_id):
                self._drop(session, RefusalReason.REVOKED_KEY, f"an admin revoked {session.peer_id}'s key", now)
        self.trust(now)

    def parked(self) -> int:
        """How many batches wait for their author to be trusted (see :meth:`trust`)."""
        return len(self._parked)

    def check_writable(self) -> None:
        """Call after :meth:`flush` to learn whether the writes went out.

        Raises:
            UnencodableWriteError: some writes since the last call could not be encoded and
                were not sent (reported once; later writes go out as usual).
        """
        if self._unencodable:
            failed, self._unencodable = self._unencodable, []
            raise UnencodableWriteError("local writes could not be encoded and were not sent: "
                                        + ", ".join(why for _, why in failed), names=tuple(name for name, _ in failed))

    def next_deadline(self) -> float | None:
        """When :meth:`tick` next has work to do; ask after every call and every local write.

        Returns:
            A time; one at or before the present means "tick now". While the memory holds
            unsigned local writes that no unacknowledged batch holds back, it is the latest
            ``now`` the node was given (``-inf`` before the first). None: nothing is
            scheduled; only input can create work.
        """
        deadlines = [self._next_gossip] if self._next_gossip is not None else []
        if self.memory.has_pending_deltas():
            if self._held_since is None:
                return self._now
            if self._writes_wait():
                deadlines.append(self._held_since + self._hold_limit())
            elif self._burst_until is not None and self.memory.pending_writes < self._release_at:
                deadlines.append(self._burst_until)
            else:
                return self._now
        if self._relay:
            deadlines.append(self._next_relay)
        if (push_at := self._checkpoint_push_at()) is not None:
            deadlines.append(push_at)
        deadlines.extend(self._relay_deadlines())
        if (expiry := self._tree.next_expiry()) is not None:
            deadlines.append(expiry)
        for session in self._sessions.values():
            if not session.ready:
                deadlines.append(session.opened_at + self.config.handshake_timeout)
            else:
                if session.ack_at is not None:
                    deadlines.append(session.ack_at)
                if session.dialer:
                    deadlines.append(session.next_anti_entropy)
                if session.ask_at is not None:
                    deadlines.append(session.ask_at)
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
        return all(self.synced_with().values()) and not self.memory.has_pending_deltas() and not self.relay_unconfirmed()

    def synced_with(self) -> dict[str, bool]:
        """Per connected peer id: whether it has seen every batch we have, and we every one it has."""
        out: dict[str, bool] = {}
        for s in self._ready_sessions():
            # Until the peer's first Sync on this connection we do not know what it holds.
            ok = s.heard and _covers(s.peer_seen, self.seen) and self._have_all(s.peer_seen)
            out[s.peer_id] = out.get(s.peer_id, True) and ok
        return out

    def eager_peers(self) -> set[str]:
        """The connected peers fresh batches are relayed to (with ``eager_tree``, the relay tree's
        links; without it, every connected peer may be chosen); ask at any time."""
        return {s.peer_id for s in self._relay_targets(self._ready_sessions())}

    def covered_vectors(self) -> tuple[int, int]:
        """How many covered vectors the causal index keeps (one per applied batch) and their
        entries in all (see :meth:`~crdtmem.protocol.causal.CausalIndex.vector_entries`)."""
        return len(self._causal), self._causal.vector_entries()

    def lag(self) -> dict[str, int]:
        """Per connected peer: how many batches of our log it is not known to have (for health)."""
        return {
            s.peer_id: self._log.count_missing(s.peer_seen, self._retirements.holder_of_all(s.peer_seen))
            for s in self._ready_sessions()
        }

    # -- handshake --------------------------------------------------------------------------

    def _handshake_step(self, session: _Session, data: bytes, now: float) -> None:
        hs = session.handshake
        replies = hs.receive(data)
        greeting = session.dialer and session.channel is None and hs.state is HandshakeState.SENT_AUTH
        if greeting:
            # The dialer's first Sync rides with its auth, so the peer answers it as soon as that
            # auth verifies: the catch-up starts one flight sooner. It is sealed under the keys
            # the peer's hello agreed (see Handshake.sealing_keys), derived before the auth goes
            # out (an unusable exchange key is refused first); nothing from the peer is opened
            # before its own auth verifies.
            session.channel = self._channel(hs.sealing_keys(), hs.peer_id)
        for reply in replies:
            self._send(session, reply, SendKind.HANDSHAKE)
        if greeting:
            self._send_message(session, Sync(self.seen), SendKind.GOSSIP)
        if not hs.done:
            return
        if hs.peer_id == self.identity.peer_id:
            raise RemoteProtocolError("connected to ourselves")
        # Writes held while no one was connected are signed before the newcomer counts as a
        # neighbour: it gets them in order with the rest of what it lacks, answering its Sync,
        # rather than first, ahead of the batches they depend on.
        self.flush(now)
        session.peer_id = hs.peer_id
        greeted = session.channel is not None  # our first Sync is out already
        if not greeted:
            session.channel = self._channel(hs.keys, hs.peer_id)
        session.peer_seen = self._known_seen.setdefault(hs.peer_id, CausalContext()).copy()
        self._gone_since.pop(hs.peer_id, None)
        session.next_anti_entropy = now + self._anti_entropy_delay()
        self._events.append(PeerConnected(session.conn, hs.peer_id))
        if not greeted:
            self._send_message(session, Sync(self.seen), SendKind.GOSSIP)
        if self.config.eager_tree:
            self._tree.link_up(session.conn, hs.peer_id)
            self._send_tree_adverts()

    def _channel(self, keys: SessionKeys, peer_id: str) -> FrameChannel:
        return FrameChannel(keys, peer_id=peer_id, max_frame_bytes=self.config.max_frame_bytes,
                            max_message_bytes=self.config.max_message_bytes)

    # -- messages ---------------------------------------------------------------------------

    def _dispatch(self, session: _Session, message: Message, now: float) -> None:
        if isinstance(message, CompactBatches):
            message = session.expander.expand(message)
        if isinstance(message, Sync):
            self._on_sync(session, message, now)
        elif isinstance(message, Batches):
            self._on_batches(session, message, now)
        elif isinstance(message, Want):
            self._on_want(session, message)
        elif isinstance(message, Checkpoints):
            self._on_checkpoints(session, message, now)
        elif isinstance(message, WantHistory):
            self._on_want_history(session, message)
        elif isinstance(message, TreeRoot):
            if self.config.eager_tree:  # without the tree, a neighbour's place in it changes nothing
                self._on_tree_root(session, message, now)
        elif isinstance(message, IHave):
            self._on_ihave(session, message, now)
        elif isinstance(message, SeenDigest):
            if message.digest == seen_digest(self.seen):
                self._learn(session, self.seen)  # the peer has seen exactly what we have
            else:
                self._send_message(session, Sync(self.seen), SendKind.GOSSIP)

    def _on_sync(self, session: _Session, message: Sync, now: float) -> None:
        # A Sync is the peer's unsigned word about what *it* holds: it steers what we send it
        # and nothing else. It never changes our own ``seen`` and never halts us.
        first = not session.heard
        if first:
            # What the peer held on an earlier connection may be gone (a lost or rolled-back
            # store): its first word on this one replaces what we remembered.
            session.heard = True
            session.peer_seen = CausalContext()
            self._known_seen[session.peer_id] = CausalContext()
        self._learn(session, message.seen)
        if first and self._checkpoints:
            self._offer_for_audit(session, message.seen)
        if not _covers(message.seen, self.seen):  # they lack something: send the signed batches
            if session.answered_at is None:
                missing = self._missing_for(self._with_checkpoints(session, message.seen))
            else:
                # Since the last answer on this connection, every batch logged before it is held
                # by the peer or was sent to it (and arrives: the connection delivers in order or
                # breaks), whatever this Sync claims: only what was logged since can be missing.
                # So a Sync costs what is new, not the log, however often a peer sends one.
                missing = [(dot, wire) for dot, wire in self._log.since(session.answered_at) if dot not in message.seen]
            if missing:
                self._push(session, missing, SendKind.CATCH_UP)
        session.answered_at = self._log.position()
        # Our answer tells the peer what we lack. The peer's first Sync is the one it sent on
        # connecting, crossing ours: it answers ours with whatever it holds that we lack.
        if not message.reply and not first and not self._have_all(message.seen):
            self._send_message(session, Sync(self.seen, reply=True), SendKind.GOSSIP)
        if not message.reply:
            self._want(session)

    def _on_batches(self, session: _Session, message: Batches, now: float) -> None:
        fresh, fetch = self._accept(session, message.wires)
        # A flush's live push of the sender's own batch (catch-up and relays carry bursts):
        # acked at once, so the author's next writes need not wait to join one batch.
        from_author = len(message.wires) == 1 and key_id_of(self._author_of(message.wires[0])) == session.peer_id
        if fetch:
            # The sender applied what it relays, so it holds the dependencies we lack.
            self._send_message(session, Sync(self.seen, reply=True), SendKind.GOSSIP)
        elif from_author:
            self._ack(session)
        elif fresh and session.ack_at is None:
            session.ack_at = now + self.config.ack_delay
        if fresh:
            if from_author and self.config.eager_tree:  # its second hop may take shortcuts (``_relay_round``)
                self._second_hop.update((dot, session.conn) for dot, _ in fresh if key_id_of(dot.replica) == session.peer_id)
            self._queue_relay(fresh, now)

    def _on_ihave(self, session: _Session, message: IHave, now: float) -> None:
        for dot in message.dots:
            if not self._holds(dot):
                if len(session.announced) >= MAX_WANTED:
                    continue  # bounded: asking for one asks for all it holds anyway
                session.announced.add(dot)
            session.peer_seen.add(dot)  # not relayed or announced to it again
        if session.announced and session.ask_at is None:
            session.ask_at = now + self.config.graft_timeout

    def _ask_announced(self, session: _Session) -> None:
        """The tree did not bring what the peer announced in time: ask it."""
        session.ask_at = None
        missing = sum(not self._holds(dot) for dot in session.announced)
        session.announced.clear()
        if missing:
            self.stats.announced_fetched += missing
            self._send_message(session, Sync(self.seen, reply=True), SendKind.GOSSIP)

    def _announce(self, sessions: list[_Session], batches: list[tuple[Dot, bytes]]) -> None:
        """Name fresh batches to the lazy links that may lack them (``IHave``)."""
        if not self.config.eager_tree:
            return
        for session in sessions:
            if self._tree.eager(session.conn):
                continue
            dots = [dot for dot, _ in batches if dot not in session.peer_seen and dot not in session.in_flight]
            for start in range(0, len(dots), MAX_WANTED):
                self._send_message(session, IHave(tuple(dots[start : start + MAX_WANTED])), SendKind.GOSSIP)

    def _on_tree_root(self, session: _Session, message: TreeRoot, now: float) -> None:
        """A neighbour says where it stands in the relay tree; a root that is not a member in
        good standing is not taken through it."""
        root = message.root
        member = self.members.public_key(root) is not None and not self.members.is_revoked(root)
        self._tree.heard(session.conn, message, now, member_root=member)
        self._send_tree_adverts()

    def _send_tree_adverts(self) -> None:
        """Tell neighbours where this peer now stands in the relay tree, if that changed."""
        self.stats.tree_parent_changes = self._tree.parent_changes
        for conn, advert in self._tree.take_adverts():
            session = self._sessions.get(conn)
            if session is not None and session.ready:
                self._send_message(session, advert, SendKind.GOSSIP)

    def _relay_targets(self, sessions: list[_Session]) -> list[_Session]:
        """Where fresh batches go: every eager link with ``eager_tree``, else all of ``sessions``."""
        if not self.config.eager_tree:
            return sessions
        return [s for s in sessions if self._tree.eager(s.conn)]

    def _queue_relay(self, fresh: list[tuple[Dot, bytes]], now: float) -> None:
        """Relay newly applied batches in the next relay round (at once if one is due)."""
        self._relay += fresh
        if now >= self._next_relay:
            self._relay_round(now)

    def _accept(self, source: _Session | RelayLink, wires: Iterable[bytes]) -> tuple[list[tuple[Dot, bytes]], bool]:
        """Verify signed batch wires from one source; apply, buffer or park each one.

        Returns the batches applied (with those they released) and whether some wait for
        dependencies. Raises :class:`CrdtmemError` for a wire that cannot be opened; the
        wires before it are handled.
        """
        fresh: list[tuple[Dot, bytes]] = []
        fetch = False
        bound = None  # the clock-skew bound, read once per message (the clock barely moves meanwhile)
        for wire in wires:
            known = self._log.dot_of(wire)  # a logged batch again, byte for byte: nothing to decode
            if known is not None:
                source.peer_seen.add(known)
                self.stats.duplicate_batches += 1
                continue
            if self._checkpoints and self._hidden_by_checkpoint(source, wire):
                continue
            # Verified before anything is believed: an unsigned header claims nothing.
            try:
                batch = open_batch(wire, self.members, verify, max_size=self.config.max_message_bytes)
            except UntrustedAuthorError:
                self._park(Dot(*peek_batch(wire)), wire)  # the relay is not at fault: keep the connection
                continue
            dot = Dot(batch.author, batch.seq)
            stood_for = self._stood_for(dot, batch.hash)
            held = self._holds(dot) and not stood_for
            source.peer_seen.add(dot)
            if stood_for and batch.hash not in self._causal and isinstance(source, _Session):
                self._want_history(source, dot.replica)  # someone names a batch our checkpoint hides
            if held and (dot not in self._log or batch.hash in self._evidence):
                self.stats.duplicate_batches += 1  # held, its wire collected (max_log_batches), or known evidence
                continue
            if bound is None:
                bound = self._stamp_bound()
            try:
                check_stamps(batch, bound)
            except ClockSkewError as exc:
                self._refuse_batch(source, batch, exc)
                continue
            if held or dot.replica == self.replica_id:  # all we signed is held: another signed this
                fresh += self._equivocation(source, batch)
                continue
            if batch.hash in self._pending:
                self.stats.duplicate_batches += 1
                continue
            missing = self._causal.missing(batch)
            if missing and self._beyond_cut:
                fresh += self._apply_beyond_cut_for(batch, missing)
                missing = self._causal.missing(batch)
            if missing and not any(self._causal.refused(d) for d in missing):
                self._buffer(batch, missing)
                fetch = True
                continue
            try:
                self._apply(batch)
            except RemoteProtocolError as exc:
                self._refuse_batch(source, batch, exc)
                continue
            if not stood_for:  # (one a checkpoint stood for is old news to our neighbours)
                fresh.append((dot, wire))
            fresh += self._release(source.conn, batch.hash)
        return fresh, fetch

    def _author_of(self, wire: bytes) -> str:
        """The author of a received batch wire: from the log when it holds it, else from its header."""
        dot = self._log.dot_of(wire)
        return dot.replica if dot is not None else peek_batch(wire)[0]

    def _ack(self, session: _Session) -> None:
        """Tell the peer what we hold now that its batches are applied.

        When we believe it holds exactly what we hold, an 8-byte digest of our seen set says
        so (it answers a differing one with its full ``Sync``); otherwise the full ``Sync``.
        """
        session.ack_at = None
        if _covers(session.peer_seen, self.seen) and self._have_all(session.peer_seen):
            self._send_message(session, SeenDigest(seen_digest(self.seen)), SendKind.GOSSIP)
        else:
            self._send_message(session, Sync(self.seen, reply=True), SendKind.GOSSIP)

    def _equivocation(self, session: _Session | RelayLink, batch: DeltaBatch) -> list[tuple[Dot, bytes]]:
        """``batch`` is validly signed, but its author signed another batch under its number.

        It is refused (counted as ``equivocation``, reported, the connection kept) and never
        applied. Honest replicas that applied this version instead build on it, so it is not
        a refused dependency: it vouches for the batches that depend on it
        (:meth:`CausalIndex.vouch`), is kept (bounded) to answer a :class:`Want` for it, and
        the batches that waited for it are applied. Returns those, to relay.
        """
        if batch.hash in self._causal:  # this version is vouched for already
            self.stats.duplicate_batches += 1
            return []
        if batch.author == self.replica_id:
            # Another process with our key drew this start's incarnation (or the key was stolen).
            detail = f"{batch.author}#{batch.seq} is this process's own incarnation, but it did not sign it"
        else:
            detail = f"{batch.author} signed two different batches #{batch.seq}"
        exc = EquivocationError(detail)
        log.warning("refused batch %s#%d from %s: %s", batch.author, batch.seq, session.peer_id, exc)
        self.stats.count_refusal(exc.reason)
        self._events.append(Refused(session.conn, exc.reason, str(exc)))
        if not self._causal.vouch(batch):
            return []  # its own dependencies are not known here: what depends on it waits
        if len(self._evidence) >= _MAX_EVIDENCE:
            del self._evidence[next(iter(self._evidence))]
        self._evidence[batch.hash] = batch.wire
        return self._release(session.conn, batch.hash)

    def _want(self, session: _Session) -> None:
        """Ask the peer by hash for dependencies that batches here wait for.

        A ``Sync`` fetches batches by number, so it cannot fetch another version of a number
        this replica holds; a :class:`Want` can. Sent with a full ``Sync``, not per batch; past
        :data:`MAX_WANTED` a random sample, so hashes that will never exist cannot crowd out
        the others.
        """
        if len(self._waiting) <= MAX_WANTED:
            wanted = tuple(self._waiting)
        else:
            wanted = tuple(self.rng.sample(list(self._waiting), MAX_WANTED))
        if wanted:
            self._send_message(session, Want(wanted), SendKind.GOSSIP)
        for author in list(self._history_wanted):
            self._want_history(session, author)

    def _on_want(self, session: _Session, message: Want) -> None:
        """Send the peer the batches it names by hash that we hold, applied or vouched for."""
        wires = [w for h in message.hashes if (w := self._log.by_hash(h) or self._evidence.get(h)) is not None]
        step = self.config.max_batch_wires_per_message
        for start in range(0, len(wires), step):
            self._send_message(session, Batches(tuple(wires[start : start + step])), SendKind.CATCH_UP)

    def _refuse_batch(self, session: _Session | RelayLink, batch: DeltaBatch, exc: RemoteProtocolError) -> None:
        """Refuse one validly signed batch: count it, report it, keep the connection.

        Its author signed it; the peer that sent it may only be relaying it, so dropping that
        peer would cut honest replicas apart. Batches depending on it are refused with it.
        """
        log.debug("refused batch %s#%d from %s: %s", batch.author, batch.seq, session.peer_id, exc)
        if not isinstance(exc, RevokedAuthorError):  # held instead, in case a member built on it
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
                    log.debug("refused waiting batch %s#%d: %s", batch.author, batch.seq, exc)
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

    def _apply(self, batch: DeltaBatch, *, vouched: bool = False) -> None:
        try:
            vouched = vouched or self._vouched(batch.hash)
            self.members.check(batch, vouched=vouched)
            self._retirements.check_author(batch, vouched=vouched)
            covered = self._causal.check(batch)
            records = self._retirements.check(batch, covered)
        except RevokedAuthorError:
            self._hold_beyond_cut(batch)
            raise
        except RemoteProtocolError:
            self._causal.refuse(batch)
            raise
        self._join(batch)
        self._record_applied(batch, covered, records, local=False)
        self.stats.batches_applied += 1

    def _join(self, batch: DeltaBatch) -> None:
        """Join a checked batch's deltas into the memory (a checkpoint's too, as the batch it
        ends with); call before recording it."""
        self._taint()
        apply_batch(self.memory, batch)
        if self.members.touches(batch.deltas):
            self._membership_changed = True
        self._strip_pruned(batch.deltas)

    def _record_applied(self, batch: DeltaBatch, covered: dict[str, int] | None,
                        records: list[tuple[str, int]], *, local: bool) -> None:
        """Note a batch just joined into the memory (sealed here, or received and checked, its
        covered vector given): the seen set, the causal index, the log, the event the shell
        journals (with its index entry), and the departed incarnations it lets us prune."""
        dot = Dot(batch.author, batch.seq)
        head = not self._stood_for(dot, batch.hash)
        self.seen.add(dot)
        reach = reach_of(batch)
        covered = self._causal.record(batch, covered, reach, head=head)
        self._log.add(dot, batch.wire, batch.hash)
        self._events.append(BatchApplied(batch.author, batch.seq, batch.wire, local=local,
                                         index_entry=index_entry(reach, records)))
        self._prune(self._retirements.note(batch.author, batch.seq, covered, records, self._holds_all))

    def _vouched(self, batch_hash: bytes) -> bool:
        """Whether a waiting batch of a member (not revoked, not retired before it) depends on ``batch_hash``."""
        waiters = self._waiting.get(batch_hash)
        if not waiters:  # the common case: nothing waits for it
            return False
        return any(w is not None and self._may_vouch(w) for w in map(self._pending.get, waiters))

    def _may_vouch(self, batch: DeltaBatch) -> bool:
        """Whether ``batch`` is within its author's rights: its key is not revoked, nor its
        incarnation retired before it."""
        return not self.members.is_revoked(key_id_of(batch.author)) and batch.seq <= self._retirements.finals.get(
            batch.author, batch.seq)

    def _hold_beyond_cut(self, batch: DeltaBatch) -> None:
        """Keep a revoked key's batch past its cut (bounded), in case a member's batch depends on it."""
        self._beyond_cut[batch.hash] = batch
        while len(self._beyond_cut) > self.config.max_parked_batches:
            del self._beyond_cut[next(iter(self._beyond_cut))]

    def _apply_beyond_cut_for(self, batch: DeltaBatch, missing: list[bytes]) -> list[tuple[Dot, bytes]]:
        """Apply the held beyond-cut batches that a member's ``batch`` depends on (and theirs).

        The member applied them before the revocation reached it; applying them here too keeps
        the replicas equal and the member's own writes accepted. Returns what was applied.
        """
        if not self._may_vouch(batch):
            return []
        applied: list[tuple[Dot, bytes]] = []
        stack = [h for h in missing if h in self._beyond_cut]
        while stack:
            held = self._beyond_cut.get(stack[-1])
            if held is None:
                stack.pop()
                continue
            before = [d for d in self._causal.missing(held) if d in self._beyond_cut and d not in stack]
            if before:
                stack += before
                continue
            stack.pop()
            del self._beyond_cut[held.hash]
            try:
                self._apply(held, vouched=True)
            except RemoteProtocolError as exc:
                self.stats.count_refusal(exc.reason)
                continue
            applied.append((Dot(held.author, held.seq), held.wire))
            applied += self._release(None, held.hash)
        return applied

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
        self._want(session)

    def _anti_entropy_delay(self) -> float:
        return self.config.anti_entropy_interval * (0.75 + 0.5 * self.rng.random())

    # -- sending ----------------------------------------------------------------------------

    def _relay_round(self, now: float) -> None:
        """Push the waiting fresh batches to the neighbours that may lack them, and publish them
        to relays whose stream is not known to hold them.

        With ``eager_tree``, batches go over the tree's links; those that came straight from
        their author (their second hop) also go to ``fanout`` random lazy links where the tree
        may detour (:meth:`_shortcuts`); the lazy links get ``IHave`` for what they were not sent.
        Without it, the batches go to ``fanout`` random neighbours not known to have them all.
        """
        batches, self._relay = self._relay, []
        second_hop, self._second_hop = self._second_hop, {}
        self._next_relay = now + self.config.relay_delay
        sessions = self._ready_sessions()
        if self.config.eager_tree:
            for session in self._relay_targets(sessions):
                self._push(session, batches, SendKind.GOSSIP)
            for source in dict.fromkeys(second_hop.values()):
                from_source = [(dot, wire) for dot, wire in batches if second_hop.get(dot) == source]
                for session in self._some_lacking(self._shortcuts(source, sessions, 2), from_source):
                    self._push(session, from_source, SendKind.GOSSIP)
            self._announce(sessions, batches)
        else:
            for session in self._some_lacking(sessions, batches):
                self._push(session, batches, SendKind.GOSSIP)
        self._relay_publish_fresh(batches, now)  # bridge the mesh into relay streams that lack them

    def _shortcuts(self, source: ConnId | None, sessions: list[_Session], hops: int) -> list[_Session]:
        """The lazy links among ``sessions`` worth a shortcut of ``hops`` links for a batch whose
        author is this peer (``source`` None) or the neighbour on ``source``: the tree may take
        two links more to reach them (the author's and their hops to the root, added up), or
        the tree may not reach them yet (a hop count not yet advertised, as on a fresh link, or
        one to another root). None with ``eager_tree`` off."""
        if not self.config.eager_tree:
            return []
        near = self._tree.hops_of(source)
        shortcuts = []
        for session in sessions:
            if session.conn == source or self._tree.eager(session.conn):
                continue
            far = self._tree.hops_of(session.conn)
            if near is None or far is None or near + far >= hops + 2:
                shortcuts.append(session)
        return shortcuts

    def _some_lacking(self, sessions: list[_Session], batches: list[tuple[Dot, bytes]]) -> list[_Session]:
        """``fanout`` random ones of ``sessions`` not known to have (or be sent) all of ``batches``."""
        lacking = [s for s in sessions if any(dot not in s.peer_seen and dot not in s.in_flight for dot, _ in batches)]
        return self.rng.sample(lacking, min(self.config.fanout, len(lacking)))

    def _gossip_round(self) -> None:
        sessions = self._ready_sessions()
        digest = SeenDigest(seen_digest(self.seen))
        for session in self.rng.sample(sessions, min(self.config.fanout, len(sessions))):
            self._send_message(session, digest, SendKind.GOSSIP)

    def _push(self, session: _Session, batches: list[tuple[Dot, bytes]], kind: SendKind, *, whole: bool = False) -> None:
        """Send the batches the peer neither has nor has been sent on this connection (``whole``:
        not in the compact form, see :meth:`_send_message`).

        A connection delivers in order or breaks (the framing refuses gaps), so what was sent
        on it arrives unless it closes, and a new connection starts with nothing in flight.
        """
        in_flight = session.in_flight
        batches = [(dot, wire) for dot, wire in batches if dot not in session.peer_seen and dot not in in_flight]
        step = self.config.max_batch_wires_per_message
        own = self.replica_id
        for start in range(0, len(batches), step):
            chunk = batches[start : start + step]
            self._send_message(session, Batches(tuple(wire for _, wire in chunk)), kind, whole=whole)
            session.in_flight.update(dot for dot, _ in chunk)
            own_counters = [dot.counter for dot, _ in chunk if dot.replica == own]
            if own_counters:
                session.own_sent = max(session.own_sent, *own_counters)
                if session.own_sent_at is None:
                    session.own_sent_at = self._now

    def _send_message(self, session: _Session, message: Message, kind: SendKind, *, whole: bool = False) -> None:
        """Seal ``message`` into frames for the peer; batches go compact (``compact_batches``)
        unless ``whole``: a flush of writes that found every link idle, whose latency is all
        that matters, sends its batch whole (compacting costs each side more CPU than the link
        needs for the ~45 bytes it saves)."""
        if isinstance(message, Sync):
            session.ack_at = None  # any Sync tells the peer what we have
        elif isinstance(message, Batches) and self.config.compact_batches and not whole:
            message = session.compressor.compact(message.wires)
        for frame in session.channel.seal_message(encode_message(message)):
            self._send(session, frame, kind)

    def _send(self, session: _Session, data: bytes, kind: SendKind) -> None:
        self._actions.append(Send(session.conn, data, kind))
        self.stats.count_send(kind, len(data))

    # -- bookkeeping ------------------------------------------------------------------------

    def _learn(self, session: _Session, seen: CausalContext) -> None:
        if session.peer_seen.join(seen):  # else ``seen`` covers nothing in flight: it never holds peer_seen's dots
            session.in_flight = {dot for dot in session.in_flight if dot not in seen}
        self._note_ack(session)
        known = self._known_seen.setdefault(session.peer_id, CausalContext())
        known.join(seen)
        pruned = self._retirements.pruned
        if pruned:  # what the peer holds of incarnations pruned here is implied, not remembered
            for replica in [r for r in seen.replicas() if r in pruned]:
                session.peer_seen.forget(replica)
                known.forget(replica)

    def _collect_log(self, now: float) -> None:
        """Forget what peers gone for longer than ``log_retention`` had seen.

        Signed batches themselves are kept for good (unless ``max_log_batches`` is set): they are the
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
        return Snapshot.of(self.memory, self.seen)

    def _stamp_bound(self) -> int:
        """The latest hybrid timestamp a peer's write may carry (memory clock + ``max_clock_skew``)."""
        return self.memory.stamp_bound(self.config.max_clock_skew)

    def log_wires(self) -> list[bytes]:
        """The delta log's signed batches, in the order they were applied here."""
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
        # Logged once, by whoever handles the Refused event (the runtime names the address).
        log.debug("refused %s from %s: %s", reason, session.peer_id or session.conn, detail)
        self.stats.count_refusal(reason)
        self._events.append(Refused(session.conn, reason, detail))
        self._actions.append(Close(session.conn, reason))
        self.close(session.conn, now, reason)

def _covers(big: CausalContext, small: CausalContext) -> bool:
    return big.covers(small)

