"""``Peer``: the anyio runtime that runs a :class:`~crdtmem.protocol.node.Node` over real transports.

It holds no protocol logic. It calls :meth:`Node.tick` at :meth:`Node.next_deadline` (and at
once after a local write), pumps the node — journals applied batches to the store *before*
anything is sent, then performs the node's actions in order — and runs the store's compaction.
Its connections are :class:`~crdtmem.runtime.links.Links`; its metrics are
:class:`~crdtmem.runtime.health.Health`::

    async with Peer(mem, identity, keyring, listen="ws://127.0.0.1:0",
                    connect=["ws://10.0.0.2:8765"], store="alice.db") as peer:
        mem.counter("tasks").increment()
        await peer.wait_synced(timeout=5)
        print(peer.url, peer.metrics())

Local writes never wait for the network: they apply to the memory at once and are signed and
pushed on the next tick (coalesced into one batch while a neighbour has not acknowledged the
previous one: see ``NodeConfig.flush_window``; the acknowledgement's own turn of the event loop
sends them); a peer that is down only delays when others see them. Run one Peer per Memory,
on the event loop thread that writes to that Memory (the websocket transport needs the
asyncio backend; the memory transport runs on any anyio backend).
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import Any

import anyio

from ..identity import Identity, Keyring, key_id_of, new_incarnation, parse_public_key, peer_id_of
from ..memory import Memory
from ..protocol.events import (
    BatchApplied,
    CheckpointApplied,
    Close,
    Event,
    PeerConnected,
    PeerDisconnected,
    Publish,
    Refused,
    RelaySend,
    Send,
    TypeClash,
)
from ..protocol.advice import refused_by_peer
from ..protocol.membership import MEMBERSHIP_NAME, Member, admission, revocation
from ..protocol.node import Node, NodeConfig
from ..protocol.recovery import JournalEntry, Store, restore
from ..storage.sqlite import SqliteStore
from ..transports import Transport
from .collector import CollectorPaused
from .health import Health
from .links import Links
from .notices import Notices
from .options import PeerOptions

__all__ = ["Peer"]

log = logging.getLogger("crdtmem.peer")

_SYNC_SAMPLE_SECONDS = 0.5  # how often the timer loop notes which peers are in sync (for drift)


class Peer:
    """One replica on the network: a Node, its links, its store and its timers.

    Build it from :class:`~crdtmem.runtime.options.PeerOptions` — or, for the common cases,
    from the ``listen``, ``connect`` and ``store`` shortcuts alone — then enter it with
    ``async with``; it runs until the block exits (it retires its incarnation with a last
    flushed batch, see :meth:`Node.retire <crdtmem.protocol.node.Node.retire>`, closes its
    connections and snapshots the store)::

        Peer(memory, identity, keyring, listen="ws://0.0.0.0:8765", store="me.db")
        Peer(memory, identity, keyring, PeerOptions(listen=..., limits=LinkLimits(max_connections=64)),
             config=NodeConfig(gossip_interval=0.2))

    A shortcut given (not None) replaces the matching field of ``options``.

    Args:
        memory: the replica agents write to, created as ``Memory(identity.peer_id,
            clock=time.time)``. On entry the peer gives it a fresh incarnation of the identity
            (:meth:`Memory.incarnate`): every start writes under its own replica id, so two
            processes sharing a key, or a restart without its store, never reuse a number.
            Write to it (and open its documents) once the peer has started.
        identity: this peer's key.
        keyring: the peers trusted to connect and to author writes (never changed by the
            peer; after changing it, call :meth:`trust`; this peer's own writes are trusted
            without it).
        options: addresses, TLS, backoff, metrics export, link limits and storage (see
            :class:`PeerOptions`); the defaults when omitted.
        config: the node's tunables; ``config.max_frame_bytes`` also caps transport messages.
        listen: shortcut for ``options.listen``: where to accept connections (``ws://HOST:PORT``,
            ``wss://...``, ``memory://NAME``); port 0 picks a free port, see :attr:`url`.
        connect: shortcut for ``options.connect``: addresses to dial and keep dialing.
        relay: shortcut for ``options.relay``: a NATS JetStream relay, ``nats://HOST:PORT[/STREAM]``
            (see :mod:`crdtmem.transports.nats`).
        store: shortcut for ``options.store.path``: a SQLite file to restore from and persist
            to — or an already open :class:`~crdtmem.protocol.recovery.Store` of this identity
            (a :class:`SqliteStore`, a :class:`~crdtmem.storage.MemoryStore`), used as it was
            opened (``options.store.fsync`` does not apply to it).
        rng: randomness for the node and backoff jitter (seed it for reproducible runs).
        transport: use this transport for every address instead of choosing one by URL scheme.
    """

    def __init__(
        self,
        memory: Memory,
        identity: Identity,
        keyring: Keyring,
        options: PeerOptions | None = None,
        *,
        config: NodeConfig | None = None,
        listen: str | None = None,
        connect: Iterable[str] | None = None,
        relay: str | Iterable[str] | None = None,
        store: str | os.PathLike[str] | Store | None = None,
        rng: random.Random | None = None,
        transport: Transport | None = None,
    ) -> None:
        if key_id_of(memory.replica_id) != identity.peer_id:
            raise ValueError(
                f"memory replica id {memory.replica_id!r} is not the identity's peer id {identity.peer_id!r}: "
                "create it as Memory(identity.peer_id, clock=time.time)"
            )
        options = options or PeerOptions()
        if listen is not None:
            options = replace(options, listen=listen)
        if connect is not None:
            options = replace(options, connect=tuple(connect))
        if relay is not None:
            options = replace(options, relay=relay)
        opened = store is not None and not isinstance(store, (str, os.PathLike))
        if store is not None and not opened:
            options = replace(options, store=replace(options.store, path=store))
        self.options = options
        """What this peer was told (the shortcuts folded in)."""
        self.memory, self.identity, self.keyring = memory, identity, keyring
        self._peer_id = identity.peer_id
        self.config = config or NodeConfig()
        self.rng = rng or random.Random()
        self._store_arg = store if opened else options.store.path  # an open store, a path, or None
        self.store: Store | None = None
        self.url: str | None = None
        """The address actually bound (set on entry when ``listen`` is given)."""
        self.metrics_url: str | None = None
        """Where Prometheus scrapes (set on entry when ``options.metrics_port`` is given)."""
        self.node: Node | None = None
        self.started_at: float | None = None
        self._health = Health(memory, identity.peer_id, conflict_window=options.conflict_window)
        self._notices = Notices(log)
        self._links = Links(
            identity.peer_id, options, self.config, health=self._health,
            jitter=random.Random(self.rng.random()), transport=transport,
            notices=self._notices, on_refused_by_peer=self._refused_by_peer,
            on_open=self._link_opened, on_receive=self._link_received, on_close=self._link_closed,
        )
        self._stack: AsyncExitStack | None = None
        self._tg: Any = None
        self._wake = anyio.Event()
        self._woken = False  # whether _wake is set (a plain flag: every local write asks)
        self._sleeping_until = math.inf  # when the timer loop will next tick unless woken
        self._changed: anyio.Event | None = None  # created by a waiter, set (and dropped) by _pump
        self._compact_wanted = anyio.Event()
        self._unsubscribe: Callable[[], None] | None = None
        self._relay: Any = None  # a RelayDriver once entered, if options.relay

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Peer:
        self._stack = stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            self._open_store()
            stack.callback(self._close_store)
            self._unsubscribe = self.memory.on_change(self._on_change)
            self._health.watch()
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            stack.push_async_callback(self._shutdown)  # runs before the task group exits
            self.started_at = time.monotonic()
            if self.options.listen:
                self.url = await self._links.listen(self.options.listen, self._tg)
                log.info("peer %s listening on %s", self.identity.peer_id, self.url)
            for url in self.options.connect:  # first: each dial is under way before the timers' first turn
                self._tg.start_soon(self._links.dial_forever, url)
            self._tg.start_soon(self._timer_loop)
            if self.store is not None:
                self._tg.start_soon(self._compaction_loop)
            if self.options.relay:
                from .relaying import RelayDriver

                self._relay = RelayDriver(self.node, self.options.relay, now=self._now, pump=self._pump,
                                          rng=random.Random(self.rng.random()))
                await self._relay.start(self._tg)
            if self.options.metrics_port is not None:
                await self._start_metrics_server(stack)
            self._tick()
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        assert self._stack is not None
        return await self._stack.__aexit__(*exc_info)

    def _open_store(self) -> None:
        """Take a fresh incarnation, open the store (if any), restore the memory from it, and
        create the node over both."""
        # Unpredictable even when ``rng`` is seeded: processes sharing a key must not collide.
        self.memory.incarnate(new_incarnation(self.identity.peer_id, random.SystemRandom()))
        seen = None
        log_wires: list[bytes] = []
        log_entries: list[bytes] = []
        predecessors: list[str] = []
        if self._store_arg is not None:
            store = self._store_arg
            if isinstance(store, (str, os.PathLike)):
                store = SqliteStore(store, self.identity.peer_id, fsync=self.options.store.fsync)
            elif store.peer_id != self.identity.peer_id:
                raise ValueError(f"store {store} belongs to {store.peer_id}, not {self.identity.peer_id}")
            self.store = store
            try:
                restored = restore(store, clock=self.memory._clock)
                self.memory.merge(restored.memory)
                predecessors = store.start_incarnation(self.memory.replica_id)
            except BaseException:
                store.close()
                self.store = None
                raise
            seen, log_wires, log_entries = restored.seen, restored.log_wires, restored.log_entries
            log.info("restored %d objects, %d batches from %s", len(restored.memory.names()),
                     restored.seen.size(), store)
        self.node = Node(self.memory, self.identity, self.keyring, rng=self.rng, config=self.config,
                         seen=seen, log_wires=log_wires, log_entries=log_entries, predecessors=predecessors)

    def _close_store(self) -> None:
        """Close the store when the peer exits (after the final snapshot)."""
        if self.store is not None:
            self.store.close()

    async def _shutdown(self) -> None:
        """Retire this incarnation (its last batch, flushed), stop listening and dialing, close
        connections, write a final snapshot."""
        with anyio.CancelScope(shield=True):
            try:
                self.node.retire(self._now())
                self._tick()
            except Exception:  # noqa: BLE001
                log.exception("final flush failed")
            await self._links.stop()
            with anyio.move_on_after(2):
                while self._links:
                    await self._changed_wait()
            if self._unsubscribe is not None:
                self._unsubscribe()
            self._health.unwatch()
            if self.store is not None:
                try:
                    self._compact()
                except Exception:  # noqa: BLE001
                    log.exception("final snapshot failed")
            self._tg.cancel_scope.cancel()

    # -- public API -------------------------------------------------------------------------

    async def wait_synced(self, timeout: float = 10.0, *, peers: int = 1) -> None:
        """Wait until every connected peer has all our writes and we all of theirs.

        Args:
            timeout: seconds; raises TimeoutError when they pass.
            peers: also wait until at least this many peers are connected. With the default
                (1) a peer that reaches nobody is not synced; pass 0 when no peer is expected.
        """
        self._tick()  # pending writes go out before the timeout's cancel scope is set up
        with anyio.fail_after(timeout):
            while not (len(self.node.peers()) >= peers and self.node.synced()):
                await self._changed_wait()

    async def wait_connected(self, peers: int = 1, timeout: float = 10.0) -> None:
        """Wait until at least ``peers`` peers have finished their handshake with us."""
        with anyio.fail_after(timeout):
            while len(self.node.peers()) < peers:
                await self._changed_wait()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``predicate()`` is true; it is re-checked after every network event."""
        with anyio.fail_after(timeout):
            while not predicate():
                await self._changed_wait()

    async def changed(self) -> None:
        """Return after the next network or timer event handled (anything that may change state)."""
        await self._changed_wait()

    async def flush(self) -> None:
        """Sign, journal and push every pending local write now.

        When this returns, the writes are committed to the store (if any): a crash after this
        point does not lose them.

        Raises:
            UnencodableWriteError: some writes could not be encoded; they were not sent.
        """
        with CollectorPaused():
            self.node.flush(self._now())
        self._tick()
        self.node.check_writable()

    def trust(self, keyring: Keyring | None = None) -> None:
        """Call after changing the keyring (or to replace it; on the loop thread).

        Writes relayed to this peer by authors it did not trust yet were parked; those of
        authors trusted now are applied and relayed at once (see :meth:`Node.trust`).
        """
        if keyring is not None:
            self.keyring = keyring
        self.node.trust(self._now(), keyring)
        self._pump()

    async def admit(self, key: str, admin: bool = False) -> str:
        """Admit a new member at runtime (this peer must be an admin); returns its peer id.

        The admission is a membership record signed by this peer and replicated like any
        write: every peer, including those that never talk to this one or whose keyring file
        lacks the key, accepts the new key's connections and batches once the record reaches
        it. Returns once the record is committed to the store (if any).

        Args:
            key: the new member's public key line, ``ed25519:<base64> [comment]``
                (``crdtmem keygen`` prints it).
            admin: whether the new member may admit and revoke others too.

        Raises:
            ValueError: ``key`` is not a public key line, or was revoked (revocation is for
                good: admit a new key).
            PermissionError: this peer is not an admin.
        """
        peer_id = peer_id_of(parse_public_key(key))
        self._check_admin("admit")
        if self.node.members.is_revoked(peer_id):
            raise ValueError(f"{peer_id} was revoked, and revocation is for good: admit a new key (crdtmem keygen)")
        self.memory.gset(MEMBERSHIP_NAME).add(admission(key, admin=admin, by=self.peer_id, at=time.time()))
        await self.flush()
        return peer_id

    async def revoke(self, peer_id: str) -> None:
        """Revoke a member's key at runtime (this peer must be an admin).

        The revocation replicates like any write. Everywhere it arrives, the key's connections
        close and its batches past what this peer had applied of it are refused; its earlier
        writes stay, attributed to it. Revoke wins over a concurrent (or later) admission of
        the same key. Returns once the record is committed to the store (if any).

        Raises:
            ValueError: ``peer_id`` is this peer's own.
            PermissionError: this peer is not an admin.
        """
        if peer_id == self.peer_id:
            raise ValueError("a peer cannot revoke its own key; ask another admin")
        self._check_admin("revoke")
        seen = self.node.seen
        cut = {replica: seen.max(replica) for replica in seen.replicas() if key_id_of(replica) == peer_id}
        self.memory.gset(MEMBERSHIP_NAME).add(revocation(peer_id, by=self.peer_id, at=time.time(), cut=cut))
        await self.flush()

    def members(self) -> list[Member]:
        """The current members, by peer id: peer id, public key line, admin flag, who admitted it and when."""
        return self.node.members.members()

    def _check_admin(self, what: str) -> None:
        if not self.node.members.is_admin(self.peer_id):
            raise PermissionError(
                f"{self.peer_id} is not an admin: only keys marked +admin in the keyring, or admitted as "
                f"admins, may {what} members"
            )

    def isolate(self) -> None:
        """Cut this peer off: drop every connection and refuse or stop making new ones.

        Local writes go on; :meth:`rejoin` heals. For demos and fault drills.
        """
        self._links.isolate()

    def rejoin(self) -> None:
        """Undo :meth:`isolate`: accept connections again and redial at once."""
        self._links.rejoin()

    def disconnect(self, reason: str = "dropped by the application") -> None:
        """Drop every current connection (outgoing ones are redialed after a backoff)."""
        self._links.close_all(reason)

    @property
    def peer_id(self) -> str:
        return self._peer_id

    def connected_peers(self) -> list[str]:
        """The ids of the peers with a finished handshake, sorted."""
        return sorted(set(self.node.peers().values()))

    def metrics(self) -> dict[str, Any]:
        """A snapshot of this peer's health, as plain data, computed now (call it on the loop thread).

        Keys: ``peer_id``, ``url``, ``connected_peers``, ``peers``, ``deltas_sent`` /
        ``deltas_received`` (batches made here / applied from others), ``bytes_sent`` /
        ``bytes_received``, ``anti_entropy_sessions``, ``lag``
        (per peer: our batches it is not known to have), ``drift_seconds`` (per peer: time since
        we were last in sync), ``synced`` (false while no peer is connected), ``refusals`` (by
        reason), ``refused_by_peers`` (our connections that peers closed as refusals, by the
        reason they gave), ``conflicts`` (MV-register siblings now, near-simultaneous register
        writes seen, ``type_clashes``: types a name gained beyond its first, see
        :meth:`Memory.conflicts`), ``dial_failures``, ``throttled_seconds`` (reading paused by
        the receive limits), ``replica_id`` (this start's incarnation: the author of its
        writes), ``store`` and the node's raw ``stats``.
        """
        return self._health.snapshot(self.node, now=self._now(), url=self.url, store=self.store)

    # -- the node pump ----------------------------------------------------------------------

    def _now(self) -> float:
        return time.monotonic()

    def _tick(self) -> None:
        node = self.node
        with CollectorPaused():
            node.tick(self._now())
        self._pump()

    def _pump(self) -> None:
        """Handle the node's events (journal first), then perform its actions in order."""
        node = self.node
        events = node.take_events()
        if events:
            self._handle_events(events)
        links = self._links
        outgoing: dict[Any, list[bytes]] = {}  # per connection, its frames in order: one write each
        for action in node.take_actions():
            if isinstance(action, Send):
                outgoing.setdefault(action.conn, []).append(action.data)
            elif isinstance(action, Close):
                if action.conn in outgoing:
                    links.send(action.conn, outgoing.pop(action.conn))
                links.close(action.conn, action.reason, refused=True)
            elif isinstance(action, (Publish, RelaySend)):
                self._relay.perform(action)
        for conn, frames in outgoing.items():
            links.send(conn, frames)
        deadline = node.next_deadline()
        if deadline is not None and deadline < self._sleeping_until and not self._woken:
            self._wake_timer()  # input brought a timer forward (an ack, a relay): re-arm the timer loop
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def _handle_events(self, events: list[Event]) -> None:
        journal: list[JournalEntry] = []
        for event in events:
            if isinstance(event, (BatchApplied, CheckpointApplied)):
                journal.append((event.author, event.seq, event.wire, event.index_entry))
            elif isinstance(event, PeerConnected):
                self._links.handshake_done(event.conn, event.peer_id)
                log.info("%s connected to %s (%s)", self.peer_id, event.peer_id, event.conn)
            elif isinstance(event, PeerDisconnected):
                log.info("%s disconnected from %s: %s", self.peer_id, event.peer_id or event.conn, event.reason)
            elif isinstance(event, TypeClash):
                self._health.record(event)
            elif isinstance(event, Refused):
                self._health.record(event)
                self._notices.warn((event.reason, event.detail), f"{self.peer_id} refused {event.reason} "
                                   f"from {self._links.remote(event.conn)}: {event.detail}")
        if journal and self.store is not None:
            self._journal(journal)

    def _journal(self, batches: list[JournalEntry]) -> None:
        """Commit applied batches to the store (before anything is sent); compact when it is due."""
        self.store.append(batches)
        if self.store.journal_rows >= self.options.store.compact_every:
            self._compact_wanted.set()

    def _link_opened(self, key: str, dialer: bool, now: float) -> None:
        self.node.open(key, now, dialer=dialer)
        self._pump()

    def _link_received(self, key: str, data: bytes, now: float) -> None:
        node = self.node
        with CollectorPaused():
            node.receive(key, data, now)
            if node.writes_held:
                # The message may be the ack these writes wait for: sign and send them in this turn
                # of the event loop rather than the timer loop's next one.
                node.tick(now)
        self._pump()

    def _link_closed(self, key: str, reason: str, now: float) -> None:
        if self.node is not None:
            self.node.close(key, now, reason)
            self._pump()

    def _refused_by_peer(self, address: str, reason: str) -> None:
        """A peer closed our connection as a refusal: count it, and tell the user why and how to fix it."""
        self._health.refused_by_peer(reason)
        self._notices.warn(("refused-by", address, reason), refused_by_peer(address, reason, self.identity))

    async def _changed_wait(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    def _on_change(self, name: str, origin: str) -> None:
        if not self._woken and origin == self.memory.replica_id and not self.node.writes_held:
            # A local write: sign and push it on the next tick, at once. Writes held for an ack
            # need none: the ack's receipt or the held writes' deadline ticks for them.
            self._wake_timer()

    def _wake_timer(self) -> None:
        self._woken = True
        self._wake.set()

    # -- timers -----------------------------------------------------------------------------

    async def _timer_loop(self) -> None:
        last_sample = 0.0
        while True:
            deadline = self.node.next_deadline()
            delay = math.inf if deadline is None else max(0.0, deadline - self._now())
            if delay > 0:
                self._sleeping_until = math.inf if deadline is None else deadline
                with anyio.move_on_after(delay):
                    await self._wake.wait()
            self._sleeping_until = -math.inf  # awake: the tick below sees every deadline
            self._wake, self._woken = anyio.Event(), False
            self._tick()
            now = self._now()
            if now - last_sample >= _SYNC_SAMPLE_SECONDS:
                last_sample = now
                self._health.sample_sync(self.node.synced_with(), now)
            # Let other tasks (readers, writers, the application) run between bursts of writes.
            await anyio.sleep(0)

    async def _compaction_loop(self) -> None:
        while True:
            await self._compact_wanted.wait()
            self._compact_wanted = anyio.Event()
            try:
                self._compact()
            except Exception:  # noqa: BLE001 - keep journaling; the next compaction retries
                log.exception("store compaction failed")
            await anyio.sleep(0.05)  # at most ~20 compactions a second under heavy repair traffic

    def _compact(self) -> None:
        """Snapshot memory + seen + log, consistently: flush and journal pending writes first."""
        if self.store is None:
            return
        if self.node is not None:
            self.node.flush(self._now())
            self._pump()
        self.store.compact(self.node.snapshot())
        self._health.count("compactions")

    async def _start_metrics_server(self, stack: AsyncExitStack) -> None:
        """Serve metrics to Prometheus until the peer exits (it stops first on the way out)."""
        from .prometheus import MetricsServer

        server = MetricsServer(self.metrics, self.options.metrics_host, self.options.metrics_port)
        await stack.enter_async_context(server)
        self.metrics_url = server.url
        log.info("metrics for %s at %s", self.peer_id, self.metrics_url)
