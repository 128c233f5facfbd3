"""``Peer``: the anyio runtime that runs a :class:`~crdtmem.protocol.node.Node` over real transports.

It holds no protocol logic. It moves bytes between transport connections and the node, calls
:meth:`Node.tick` at :meth:`Node.next_deadline` (and at once after a local write), performs the
node's actions in order, journals applied batches to the store *before* sending anything, and
keeps outgoing connections up with exponential backoff and jitter::

    async with Peer(mem, identity, keyring, listen="ws://127.0.0.1:0",
                    connect=["ws://10.0.0.2:8765"], store="alice.db") as peer:
        mem.counter("tasks").increment()
        await peer.wait_synced(timeout=5)
        print(peer.url, peer.metrics())

Local writes never wait for the network: they apply to the memory at once and are signed and
pushed on the next tick; a peer that is down only delays when others see them. Run one Peer per
Memory, on the event loop thread that writes to that Memory (the websocket transport needs
the asyncio backend; the memory transport runs on any anyio backend).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import random
import ssl as ssl_module
import time
from collections.abc import Callable, Iterable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio

from ..identity import Identity, Keyring
from ..memory import Memory
from ..protocol.events import (
    BatchApplied,
    Close,
    PeerConnected,
    PeerDisconnected,
    Refused,
    RepairApplied,
    Send,
)
from ..protocol.backoff import Backoff
from ..protocol.node import Node, NodeConfig
from ..protocol.recovery import Snapshot, Store, restore
from ..protocol.stats import NodeStats
from .ratelimit import RateLimit
from ..storage.sqlite import SqliteStore
from ..transports import Connection, ConnectionClosed, Listener, Transport, transport_for

__all__ = ["Peer"]

log = logging.getLogger("crdtmem.peer")

_conn_ids = itertools.count(1)


@dataclass
class _Link:
    """One live transport connection and its outgoing queue."""

    key: str
    conn: Connection
    dialer: bool
    url: str | None
    send: Any
    receive: Any
    queued_bytes: int = 0
    ready: bool = False
    peer_id: str | None = None
    closing: str | None = None
    refused: bool = False
    budget: RateLimit | None = None
    scope: Any = None
    opened: float = field(default_factory=time.monotonic)


class Peer:
    """One replica on the network: a Node, its transports, its store and its timers.

    Args:
        memory: the replica agents write to; its ``replica_id`` must be ``identity.peer_id``
            (create it as ``Memory(identity.peer_id, clock=time.time)``).
        identity: this peer's key.
        keyring: the peers trusted to connect and to author writes (never changed; this
            peer's own writes are trusted without it).
        listen: where to accept connections (``ws://HOST:PORT``, ``wss://...``,
            ``memory://NAME``); port 0 picks a free port, see :attr:`url`.
        connect: addresses to dial and keep dialing.
        store: a SQLite file, or any open :class:`~crdtmem.protocol.recovery.Store` (such as a
            :class:`SqliteStore`), to restore from and persist to.
        config: the node's tunables; ``config.max_frame_bytes`` also caps transport messages.
        ssl: server context for a ``wss://`` listener. client_ssl: context for ``wss://`` dials.
        metrics_port: also export metrics for Prometheus on this port (0: any free port,
            see :attr:`metrics_url`).
        rng: randomness for the node and backoff jitter (seed it for reproducible runs).
        reconnect_min, reconnect_max: backoff bounds in seconds for redialing.
        compact_every: compact the store once the journal holds this many batches.
        fsync: make every store commit survive power loss, not only a process crash.
        max_queue_bytes: drop a connection whose unsent frames exceed this (a stalled peer
            catches up after reconnecting instead of growing our memory).
        transport: override the transport (otherwise chosen from each URL's scheme).
        max_connections: accepted connections beyond this many (handshaking or open) are
            closed at once, so a flood of sockets cannot exhaust memory.
        max_receive_messages_per_s, max_receive_bytes_per_s: per connection, what is read on
            average (one second's worth may come at once); beyond it the connection is not read
            until the budget refills, so a flooding peer slows itself, not the others (counted
            as ``throttled_seconds``). None: unlimited.
        conflict_window: register writes by two replicas this close in time (seconds) are
            counted as ``conflicts["concurrent_register_writes"]`` (a heuristic: timestamps
            cannot prove concurrency).
    """

    def __init__(
        self,
        memory: Memory,
        identity: Identity,
        keyring: Keyring,
        *,
        listen: str | None = None,
        connect: Iterable[str] = (),
        store: str | os.PathLike[str] | Store | None = None,
        config: NodeConfig | None = None,
        ssl: ssl_module.SSLContext | None = None,
        client_ssl: ssl_module.SSLContext | None = None,
        metrics_port: int | None = None,
        metrics_host: str = "127.0.0.1",
        rng: random.Random | None = None,
        reconnect_min: float = 0.1,
        reconnect_max: float = 10.0,
        compact_every: int = 10_000,
        fsync: bool = False,
        max_queue_bytes: int = 64 * 1024 * 1024,
        transport: Transport | None = None,
        conflict_window: float = 1.0,
        max_connections: int = 256,
        max_receive_messages_per_s: float | None = 2000.0,
        max_receive_bytes_per_s: float | None = 64 * 1024 * 1024,
    ) -> None:
        if memory.replica_id != identity.peer_id:
            raise ValueError(
                f"memory replica id {memory.replica_id!r} is not the identity's peer id {identity.peer_id!r}: "
                "create it as Memory(identity.peer_id, clock=time.time)"
            )
        self.memory, self.identity, self.keyring = memory, identity, keyring
        self._peer_id = identity.peer_id
        self._max_connections = max_connections
        self._receive_limits = (max_receive_messages_per_s, max_receive_bytes_per_s)
        RateLimit(*self._receive_limits)  # refuse bad limits here, not on the first connection
        self.config = config or NodeConfig()
        self.listen_url = listen
        self.connect_urls = list(connect)
        self._store_arg = store
        self.store: Store | None = None
        self._ssl, self._client_ssl = ssl, client_ssl
        self.metrics_port, self.metrics_host = metrics_port, metrics_host
        self.metrics_url: str | None = None
        self.rng = rng or random.Random()
        self._jitter = random.Random(self.rng.random())
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self.compact_every = compact_every
        self.fsync = fsync
        self.max_queue_bytes = max_queue_bytes
        self._transport_override = transport
        self.conflict_window = conflict_window
        self.url: str | None = None
        """The address actually bound (set on entry when ``listen`` is given)."""
        self.node: Node | None = None
        self._links: dict[str, _Link] = {}
        self._listener: Listener | None = None
        self._stack: AsyncExitStack | None = None
        self._tg: Any = None
        self._wake = anyio.Event()
        self._sleeping_until = math.inf  # when the timer loop will next tick unless woken
        self._changed: anyio.Event | None = None  # created by a waiter, set (and dropped) by _pump
        self._compact_wanted = anyio.Event()
        self._redial = anyio.Event()
        self._isolated = False
        self._running = False
        self._counters: dict[str, float] = {}
        self._refusals: dict[str, int] = {}
        self._repair_log: list[dict[str, Any]] = []
        self._in_sync_since: dict[str, float] = {}
        self._last_in_sync: dict[str, float] = {}
        self._registers: dict[str, tuple[int, str]] = {}
        self._metrics_cache: dict[str, Any] = {}
        self._metrics_server: Any = None
        self._unsubscribe: Callable[[], None] | None = None
        self.started_at: float | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def __aenter__(self) -> Peer:
        self._stack = stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            self._open_store()
            stack.callback(self._close_store)
            self._unsubscribe = self.memory.on_change(self._on_change)
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            stack.push_async_callback(self._shutdown)  # runs before the task group exits
            self._running = True
            self.started_at = time.monotonic()
            self._tg.start_soon(self._timer_loop)
            if self.store is not None:
                self._tg.start_soon(self._compaction_loop)
            if self.listen_url:
                transport = self._transport(self.listen_url)
                self._listener = await transport.listen(self.listen_url, self._accept, self._tg)
                self.url = self._listener.url
                log.info("peer %s listening on %s", self.identity.peer_id, self.url)
            for url in self.connect_urls:
                self._tg.start_soon(self._dial_loop, url)
            if self.metrics_port is not None:
                self._start_metrics_server()
            self._tick()
        except BaseException:
            await stack.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        assert self._stack is not None
        return await self._stack.__aexit__(*exc_info)

    def _open_store(self) -> None:
        seen = None
        log_wires: list[bytes] = []
        if self._store_arg is not None:
            store = self._store_arg
            if isinstance(store, (str, os.PathLike)):
                store = SqliteStore(store, self.identity.peer_id, fsync=self.fsync)
            elif store.peer_id != self.identity.peer_id:
                raise ValueError(f"store {store} belongs to {store.peer_id}, not {self.identity.peer_id}")
            self.store = store
            try:
                restored = restore(store, clock=self.memory._clock)
                self.memory.merge(restored.memory)
            except BaseException:
                store.close()
                self.store = None
                raise
            seen, log_wires = restored.seen, restored.log_wires
            log.info("restored %d objects, %d batches from %s", len(restored.memory.names()),
                     restored.seen.size(), store)
        self.node = Node(self.memory, self.identity, self.keyring, rng=self.rng, config=self.config,
                         seen=seen, log_wires=log_wires)

    def _close_store(self) -> None:
        if self.store is not None:
            self.store.close()

    async def _shutdown(self) -> None:
        """Flush, stop listening and dialing, close connections, write a final snapshot."""
        self._running = False
        with anyio.CancelScope(shield=True):
            try:
                self._tick()
            except Exception:  # noqa: BLE001
                log.exception("final flush failed")
            if self._listener is not None:
                with anyio.move_on_after(5):
                    await self._listener.aclose()
            for link in list(self._links.values()):
                link.closing = link.closing or "peer shutting down"
                link.send.close()
            with anyio.move_on_after(2):
                while self._links:
                    await self._changed_wait()
            if self._unsubscribe is not None:
                self._unsubscribe()
            if self.store is not None:
                try:
                    self._compact()
                except Exception:  # noqa: BLE001
                    log.exception("final snapshot failed")
            if self._metrics_server is not None:
                self._metrics_server.shutdown()
                self._metrics_server.server_close()
            self._tg.cancel_scope.cancel()

    def _transport(self, url: str) -> Transport:
        if self._transport_override is not None:
            return self._transport_override
        return transport_for(url, max_frame_bytes=self.config.max_frame_bytes, ssl=self._ssl, client_ssl=self._client_ssl)

    # -- public API -------------------------------------------------------------------------

    async def wait_synced(self, timeout: float = 10.0, *, peers: int = 0) -> None:
        """Wait until every connected peer has all our writes and we all of theirs.

        Args:
            timeout: seconds; raises TimeoutError when they pass.
            peers: also wait until at least this many peers are connected.
        """
        with anyio.fail_after(timeout):
            self._tick()
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
            LostHistoryError: peers hold writes of this replica's identity that its store does
                not; nothing is signed or sent any more (see :class:`~crdtmem.errors.LostHistoryError`).
        """
        self._tick()
        self.node.check_writable()

    def isolate(self) -> None:
        """Cut this peer off: drop every connection and refuse or stop making new ones.

        Local writes go on; :meth:`rejoin` heals. For demos and fault drills.
        """
        self._isolated = True
        for link in list(self._links.values()):
            self._close_link(link, "isolated", refused=False)

    def rejoin(self) -> None:
        """Undo :meth:`isolate`: accept connections again and redial at once."""
        self._isolated = False
        self._redial.set()
        self._redial = anyio.Event()

    def disconnect(self, reason: str = "dropped by the application") -> None:
        """Drop every current connection (outgoing ones are redialed after a backoff)."""
        for link in list(self._links.values()):
            self._close_link(link, reason, refused=False)

    @property
    def peer_id(self) -> str:
        return self._peer_id

    def connected_peers(self) -> list[str]:
        return sorted(set(self.node.peers().values()))

    # -- the node pump ----------------------------------------------------------------------

    def _now(self) -> float:
        return time.monotonic()

    def _tick(self) -> None:
        node = self.node
        node.tick(self._now())
        self._pump()

    def _pump(self) -> None:
        """Handle the node's events (journal first), then perform its actions in order."""
        node = self.node
        events = node.take_events()
        if events:
            self._handle_events(events)
        for action in node.take_actions():
            if isinstance(action, Send):
                link = self._links.get(action.conn)
                if link is None or link.closing is not None:
                    continue
                link.queued_bytes += len(action.data)
                if link.queued_bytes > self.max_queue_bytes:
                    # The writer may be stuck on a peer that stopped reading: abort, don't drain.
                    self._close_link(link, "send queue overflow: the peer does not keep up", refused=False)
                    if link.scope is not None:
                        link.scope.cancel()
                    continue
                link.send.send_nowait(action.data)
            elif isinstance(action, Close):
                link = self._links.get(action.conn)
                if link is not None:
                    self._close_link(link, action.reason, refused=True)
        deadline = node.next_deadline()
        if deadline is not None and deadline < self._sleeping_until and not self._wake.is_set():
            self._wake.set()  # input brought a timer forward (an ack, a relay): re-arm the timer loop
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def _handle_events(self, events: list) -> None:
        journal: list[tuple[str, int, bytes]] = []
        for event in events:
            if isinstance(event, BatchApplied):
                journal.append((event.author, event.seq, event.wire))
            elif isinstance(event, RepairApplied):
                self._count("repair_events")
                self._repair_log.append({"peer": event.peer_id, "names": list(event.names), "at": time.time()})
                del self._repair_log[:-50]
                self._compact_wanted.set()
            elif isinstance(event, PeerConnected):
                link = self._links.get(event.conn)
                if link is not None:
                    link.ready, link.peer_id = True, event.peer_id
                log.info("%s connected to %s (%s)", self.peer_id, event.peer_id, event.conn)
            elif isinstance(event, PeerDisconnected):
                log.info("%s disconnected from %s: %s", self.peer_id, event.peer_id or event.conn, event.reason)
            elif isinstance(event, Refused):
                self._refusals[event.reason] = self._refusals.get(event.reason, 0) + 1
                link = self._links.get(event.conn)
                remote = link.conn.remote if link is not None else "?"
                log.warning("%s refused %s from %s: %s", self.peer_id, event.reason, remote, event.detail)
        if journal and self.store is not None:
            self.store.append(journal)
            if self.store.journal_rows >= self.compact_every:
                self._compact_wanted.set()

    async def _changed_wait(self) -> None:
        if self._changed is None:
            self._changed = anyio.Event()
        await self._changed.wait()

    def _on_change(self, name: str, origin: str) -> None:
        if origin == self._peer_id:
            if not self._wake.is_set():
                self._wake.set()
            if name in self._registers:
                state = self.memory.state(name)
                self._registers[name] = (state.stamp, state.replica)
            return
        if self.memory.type_of(name) == "lwwregister":
            self._note_register(name, origin)

    def _note_register(self, name: str, origin: str) -> None:
        """Count near-simultaneous register writes by different replicas (a likely conflict)."""
        state = self.memory.state(name)
        before = self._registers.get(name)
        self._registers[name] = (state.stamp, state.replica)
        if before is not None and before[1] != state.replica:
            gap_ms = (state.stamp >> 16) - (before[0] >> 16)
            if gap_ms <= self.conflict_window * 1000:
                self._count("concurrent_register_writes")

    # -- timers -----------------------------------------------------------------------------

    async def _timer_loop(self) -> None:
        last_metrics = 0.0
        while True:
            deadline = self.node.next_deadline()
            delay = math.inf if deadline is None else max(0.0, deadline - self._now())
            if delay > 0:
                self._sleeping_until = math.inf if deadline is None else deadline
                with anyio.move_on_after(delay):
                    await self._wake.wait()
            self._sleeping_until = -math.inf  # awake: the tick below sees every deadline
            self._wake = anyio.Event()
            self._tick()
            now = self._now()
            if now - last_metrics >= 0.5:
                last_metrics = now
                self._sample_sync(now)
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
        self.store.compact(Snapshot.of(self.memory, self.node.seen, self.node.log_wires()))
        self._count("compactions")

    # -- connections ------------------------------------------------------------------------

    async def _accept(self, conn: Connection) -> None:
        if self._isolated or not self._running:
            await conn.close("isolated" if self._isolated else "shutting down")
            return
        if len(self._links) >= self._max_connections:
            log.warning("refused too-many-connections: %d open", len(self._links))
            self._refusals["too-many-connections"] = self._refusals.get("too-many-connections", 0) + 1
            await conn.close("too many connections")
            return
        await self._run_link(conn, dialer=False, url=None)

    async def _dial_loop(self, url: str) -> None:
        transport = self._transport(url)
        backoff = Backoff(self.reconnect_min, self.reconnect_max)
        while self._running:
            while self._isolated:
                await self._redial.wait()
            redial = self._redial
            try:
                with anyio.fail_after(self.config.handshake_timeout):
                    conn = await transport.connect(url)
            except (OSError, TimeoutError) as exc:
                self._count("dial_failures")
                log.debug("%s: dialing %s failed: %s", self.peer_id, url, exc)
            else:
                if await self._run_link(conn, dialer=True, url=url):
                    backoff.reset()
            if not self._running:
                return
            with anyio.move_on_after(backoff.next_delay(self._jitter)):
                await redial.wait()

    async def _run_link(self, conn: Connection, *, dialer: bool, url: str | None) -> bool:
        """Serve one connection until it closes; return whether its handshake had finished."""
        key = f"{'out' if dialer else 'in'}-{next(_conn_ids)} {url or conn.remote}"
        send, receive = anyio.create_memory_object_stream(math.inf)
        link = _Link(key, conn, dialer, url, send, receive, budget=RateLimit(*self._receive_limits))
        self._links[key] = link
        reason = "closed"
        try:
            self.node.open(key, self._now(), dialer=dialer)
            self._pump()
            async with anyio.create_task_group() as tg:
                link.scope = tg.cancel_scope
                tg.start_soon(self._writer, link, tg.cancel_scope)
                try:
                    while True:
                        data = await conn.receive()
                        now = self._now()
                        self.node.receive(key, data, now)
                        self._pump()
                        pause = link.budget.charge(len(data), now)
                        if pause > 0:
                            self._count("throttled_seconds", pause)
                            await anyio.sleep(pause)
                except ConnectionClosed as exc:
                    reason = link.closing or exc.reason
                    if exc.refusal:
                        self._refusals[exc.refusal] = self._refusals.get(exc.refusal, 0) + 1
                        log.warning("%s refused %s from %s: %s", self.peer_id, exc.refusal, conn.remote, exc.reason)
                        reason = exc.refusal
                if link.closing is None:
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                self._links.pop(key, None)
                if self.node is not None:
                    self.node.close(key, self._now(), reason)
                    self._pump()
                await conn.close(link.closing or reason, refused=link.refused)
                send.close()
                receive.close()
        return link.ready

    async def _writer(self, link: _Link, scope: anyio.CancelScope) -> None:
        """Send queued frames in order; after a close request, send what is queued, then close."""
        try:
            async for data in link.receive:
                link.queued_bytes -= len(data)
                await link.conn.send(data)
        except ConnectionClosed:
            pass
        except anyio.ClosedResourceError:
            pass
        await link.conn.close(link.closing or "closed", refused=link.refused)
        scope.cancel()

    def _close_link(self, link: _Link, reason: str, *, refused: bool) -> None:
        if link.closing is None:
            link.closing, link.refused = reason, refused
            link.send.close()  # the writer drains what is queued, then closes the connection

    # -- metrics ----------------------------------------------------------------------------

    def _count(self, key: str, n: float = 1) -> None:
        self._counters[key] = self._counters.get(key, 0) + n

    def _sample_sync(self, now: float) -> None:
        in_sync = self.node.synced_with()
        for peer_id, ok in in_sync.items():
            if ok:
                self._last_in_sync[peer_id] = now
            else:
                self._last_in_sync.setdefault(peer_id, now)
        self._metrics_cache = self.metrics()

    def metrics(self) -> dict[str, Any]:
        """A snapshot of this peer's health, as plain data.

        Keys: ``peer_id``, ``url``, ``connected_peers``, ``peers``, ``deltas_sent`` /
        ``deltas_received`` (batches made here / applied from others), ``bytes_sent`` /
        ``bytes_received``, ``repairs``, ``repair_bytes``, ``lag`` (per peer: our batches it
        is not known to have), ``drift_seconds`` (per peer: time since we were last in sync),
        ``refusals`` (by reason), ``conflicts`` (MV-register siblings now, near-simultaneous
        register writes seen), ``throttled_seconds`` (reading paused by the receive limits),
        ``lost_history`` (None, or why local writes are no longer sent: see :meth:`flush`),
        ``store`` and the node's raw ``stats``.
        """
        node = self.node
        counts = node.stats if node is not None else NodeStats()
        stats = counts.as_dict()
        now = self._now()
        refusals: dict[str, int] = {str(reason): n for reason, n in counts.refusals.items()}
        for reason, n in self._refusals.items():
            if reason not in refusals or reason == "oversized-frame":
                refusals[reason] = max(refusals.get(reason, 0), n)
        in_sync = node.synced_with() if node is not None else {}
        drift = {}
        for peer_id, ok in in_sync.items():
            drift[peer_id] = 0.0 if ok else round(now - self._last_in_sync.get(peer_id, now), 3)
        siblings = 0
        for name in self.memory.names():
            if self.memory.type_of(name) == "mvregister":
                siblings += max(0, len(self.memory.mvregister(name).values) - 1)
        store = None
        if self.store is not None:
            store = {
                "path": str(getattr(self.store, "path", self.store)),
                "journal_rows": self.store.journal_rows,
                "journal_bytes": getattr(self.store, "journal_bytes", 0),
                "commits": getattr(self.store, "commits", 0),
                "compactions": self._counters.get("compactions", 0),
            }
        return {
            "peer_id": self.identity.peer_id,
            "url": self.url,
            "connected_peers": len(set(node.peers().values())) if node else 0,
            "peers": sorted(set(node.peers().values())) if node else [],
            "deltas_sent": counts.batches_created,
            "deltas_received": counts.batches_applied,
            "bytes_sent": counts.bytes_sent,
            "bytes_received": counts.bytes_received,
            "repairs": counts.repairs,
            "repair_bytes": counts.repair_bytes_sent,
            "anti_entropy_sessions": counts.anti_entropy_sessions,
            "lag": node.lag() if node else {},
            "drift_seconds": drift,
            "synced": node.synced() if node else False,
            "refusals": refusals,
            "conflicts": {
                "mv_register_siblings": siblings,
                "concurrent_register_writes": self._counters.get("concurrent_register_writes", 0),
            },
            "dial_failures": self._counters.get("dial_failures", 0),
            "throttled_seconds": round(self._counters.get("throttled_seconds", 0), 3),
            "lost_history": node.lost_history if node else None,
            "store": store,
            "recent_repairs": list(self._repair_log[-5:]),
            "stats": stats,
        }

    def _start_metrics_server(self) -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        from .prometheus import PeerCollector

        registry = CollectorRegistry(auto_describe=False)
        self._metrics_cache = self.metrics()
        registry.register(PeerCollector(lambda: self._metrics_cache))
        result = start_http_server(self.metrics_port, addr=self.metrics_host, registry=registry)
        server = result[0] if isinstance(result, tuple) else result
        self._metrics_server = server
        port = server.server_address[1]
        self.metrics_url = f"http://{self.metrics_host}:{port}/metrics"
        log.info("metrics for %s at %s", self.peer_id, self.metrics_url)
