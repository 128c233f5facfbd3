"""``Links``: a peer's transport connections — listening, dialing, reading, writing, closing.

A link is one transport connection, named by a key the node knows it by. For each link,
:class:`Links` runs a reader (every message goes to the node at once; the per-connection
:class:`~crdtmem.runtime.ratelimit.RateLimit` then pauses reading a peer that floods) and a
writer draining an in-order queue (a peer that stops reading is dropped once its queue passes
``LinkLimits.max_queue_bytes``). It keeps every dialed address up with
:class:`~crdtmem.protocol.backoff.Backoff`.

Admission gives strangers their own small budget: an accepted connection still handshaking
counts against ``LinkLimits.max_unauthenticated`` (a new one beyond it closes the oldest
handshaking one) and is closed if it has not finished the handshake within
``LinkLimits.hello_timeout``; only a connection that finished it (a keyring peer) counts
against ``LinkLimits.max_connections``. So idle sockets from a stranger hold at most the
stranger budget, never a keyring peer's slot, and a keyring peer finishing its handshake in
one round trip always gets in.

It holds no protocol logic: what to send and when to close is the node's, handed over by the
peer through :meth:`Links.send` and :meth:`Links.close`; what arrives goes back through the
three callbacks the peer gives (``on_open``, ``on_receive``, ``on_close``).
"""

from __future__ import annotations

import itertools
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from ..errors import RefusalReason
from ..protocol.backoff import Backoff
from ..protocol.node import NodeConfig
from ..transports import Connection, ConnectionClosed, Listener, Transport, transport_for
from .health import Health
from .notices import Notices
from .options import PeerOptions
from .ratelimit import RateLimit

__all__ = ["Links"]

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
    budget: RateLimit
    queued_bytes: int = 0
    ready: bool = False
    peer_id: str | None = None
    closing: str | None = None
    refused: bool = False
    scope: Any = None
    opened: float = field(default_factory=time.monotonic)


class Links:
    """Every transport connection of one peer (see the module docstring).

    The peer creates it, then :meth:`listen` and starts :meth:`dial_forever` per address in its
    task group; it forwards the node's sends and closes to :meth:`send` and :meth:`close`, and
    calls :meth:`stop` when shutting down. ``len(links)`` is the number of open connections.

    Args:
        peer_id: this peer's id, for logs.
        options: the TLS contexts, the redial bounds and the :class:`LinkLimits`.
        config: the node's tunables (``max_frame_bytes`` caps transport messages;
            ``handshake_timeout`` bounds a dial).
        health: where dial failures, throttling and refused connections are counted.
        jitter: randomness for redial delays.
        transport: use this transport for every address instead of choosing by scheme.
        notices: where recurring problems (an address that cannot be reached) are logged, rate-limited.
        on_refused_by_peer: ``(address, reason)``, the other side closed a connection as a
            refusal of ours: the peer explains it to the user.
        on_open: ``(key, dialer, now)``, a connection opened: the peer opens a node session.
        on_receive: ``(key, data, now)``, one message arrived.
        on_close: ``(key, reason, now)``, the connection is gone.
    """

    def __init__(
        self,
        peer_id: str,
        options: PeerOptions,
        config: NodeConfig,
        *,
        health: Health,
        jitter: random.Random,
        transport: Transport | None,
        notices: Notices,
        on_refused_by_peer: Callable[[str, str], None],
        on_open: Callable[[str, bool, float], None],
        on_receive: Callable[[str, bytes, float], None],
        on_close: Callable[[str, str, float], None],
    ) -> None:
        self._peer_id = peer_id
        self._options, self._limits, self._config = options, options.limits, config
        self._health, self._jitter, self._notices = health, jitter, notices
        self._on_refused_by_peer = on_refused_by_peer
        self._transport_override = transport
        self._on_open, self._on_receive, self._on_close = on_open, on_receive, on_close
        self._links: dict[str, _Link] = {}
        self._listener: Listener | None = None
        self._redial = anyio.Event()
        self._isolated = False
        self._running = True

    def __len__(self) -> int:
        return len(self._links)

    # -- called by the peer -----------------------------------------------------------------

    async def listen(self, url: str, task_group: Any) -> str:
        """Accept connections at ``url`` from now on, served in ``task_group``; return the bound URL."""
        self._listener = await self._transport(url).listen(url, self._accept, task_group)
        return self._listener.url

    async def dial_forever(self, url: str) -> None:
        """Keep a connection to ``url`` up until :meth:`stop`; run it as a task."""
        transport = self._transport(url)
        backoff = Backoff(self._options.reconnect_min, self._options.reconnect_max)
        while self._running:
            while self._isolated:
                await self._redial.wait()
            redial = self._redial
            try:
                with anyio.fail_after(self._config.handshake_timeout):
                    conn = await transport.connect(url)
            except (OSError, TimeoutError) as exc:
                self._health.count("dial_failures")
                self._notices.warn(("dial", url), f"{self._peer_id}: cannot reach {url}: "
                                   f"{exc or type(exc).__name__}; retrying with backoff")
            else:
                if await self._serve(conn, dialer=True, url=url):
                    backoff.reset()
            if not self._running:
                return
            with anyio.move_on_after(backoff.next_delay(self._jitter)):
                await redial.wait()

    def send(self, key: str, frames: list[bytes]) -> None:
        """Queue frames for the connection ``key`` (the node's ``Send`` s to it), in order;
        never blocks. Pass together the frames one step of the node has for one connection:
        they are written at once in one system call when nothing else waits to be sent.

        A connection whose queue passes ``max_queue_bytes`` is dropped instead: its writer may
        be stuck on a peer that stopped reading.
        """
        link = self._links.get(key)
        if link is None or link.closing is not None:
            return
        # Nothing queued or being sent: written at once, no hop to the writer task.
        sent = 0 if link.queued_bytes else link.conn.send_now_many(frames)
        for data in frames[sent:]:
            link.queued_bytes += len(data)
            if link.queued_bytes > self._limits.max_queue_bytes:
                self._close(link, "send queue overflow: the peer does not keep up", refused=False)
                if link.scope is not None:
                    link.scope.cancel()
                return
            link.send.send_nowait(data)

    def close(self, key: str, reason: str, *, refused: bool) -> None:
        """Close ``key`` once what is queued is sent; ``refused`` marks a close for misbehaviour."""
        link = self._links.get(key)
        if link is not None:
            self._close(link, reason, refused=refused)

    def close_all(self, reason: str) -> None:
        """Close every connection (not as a refusal); dialed addresses are redialed after a backoff."""
        for link in list(self._links.values()):
            self._close(link, reason, refused=False)

    def handshake_done(self, key: str, peer_id: str) -> None:
        """The node finished the handshake on ``key`` (its ``PeerConnected`` event).

        The link moves from the strangers' budget to ``max_connections``; an accepted link
        finding that full is closed (refusal ``too-many-connections``).
        """
        link = self._links.get(key)
        if link is None:
            return
        if not link.dialer and self._authenticated() >= self._limits.max_connections:
            self._refuse(link, RefusalReason.TOO_MANY_CONNECTIONS, f"{self._authenticated()} peers connected")
            return
        link.ready, link.peer_id = True, peer_id

    def remote(self, key: str) -> str:
        """The other end's address of ``key``, for logs (``?`` once closed)."""
        link = self._links.get(key)
        return link.conn.remote if link is not None else "?"

    def isolate(self) -> None:
        """Drop every connection and refuse or stop making new ones until :meth:`rejoin`."""
        self._isolated = True
        self.close_all("isolated")

    def rejoin(self) -> None:
        """Undo :meth:`isolate`: accept connections again and redial at once."""
        self._isolated = False
        self._redial.set()
        self._redial = anyio.Event()

    async def stop(self) -> None:
        """Stop accepting and redialing, stop listening, and close every connection."""
        self._running = False
        if self._listener is not None:
            with anyio.move_on_after(5):
                await self._listener.aclose()
        self.close_all("peer shutting down")

    # -- serving one connection -------------------------------------------------------------

    def _transport(self, url: str) -> Transport:
        if self._transport_override is not None:
            return self._transport_override
        return transport_for(url, max_frame_bytes=self._config.max_frame_bytes, ssl=self._options.ssl,
                             client_ssl=self._options.client_ssl)

    async def _accept(self, conn: Connection) -> None:
        if self._isolated or not self._running:
            await conn.close("isolated" if self._isolated else "shutting down")
            return
        if self._authenticated() >= self._limits.max_connections:
            log.warning("%s refused %s from %s: %d peers connected", self._peer_id,
                        RefusalReason.TOO_MANY_CONNECTIONS, conn.remote, self._authenticated())
            self._health.refused(RefusalReason.TOO_MANY_CONNECTIONS)
            await conn.close("too many connections")
            return
        handshaking = self._handshaking()
        if len(handshaking) >= self._limits.max_unauthenticated:
            # Make room by closing the oldest: a keyring peer finishes in one round trip, so
            # idle sockets cannot keep it out, however many a stranger opens.
            oldest = min(handshaking, key=lambda link: link.opened)
            self._refuse(oldest, RefusalReason.TOO_MANY_UNAUTHENTICATED,
                         f"{len(handshaking)} connections handshaking; closing the oldest")
            if oldest.scope is not None:
                oldest.scope.cancel()
        await self._serve(conn, dialer=False, url=None)

    def _authenticated(self) -> int:
        """Open links that finished the handshake (they count against ``max_connections``)."""
        return sum(1 for link in self._links.values() if link.ready and link.closing is None)

    def _handshaking(self) -> list[_Link]:
        """Accepted links still handshaking (they count against ``max_unauthenticated``)."""
        return [link for link in self._links.values() if not link.ready and not link.dialer and link.closing is None]

    async def _hello_deadline(self, link: _Link) -> None:
        """Close an accepted link that has not finished the handshake within ``hello_timeout``."""
        await anyio.sleep(self._limits.hello_timeout)
        if not link.ready and link.closing is None:
            self._refuse(link, RefusalReason.HELLO_TIMEOUT,
                         f"no handshake within {self._limits.hello_timeout:g}s")

    def _refuse(self, link: _Link, reason: RefusalReason, detail: str) -> None:
        log.warning("%s refused %s from %s: %s", self._peer_id, reason, link.conn.remote, detail)
        self._health.refused(reason)
        self._close(link, str(reason), refused=True)

    async def _serve(self, conn: Connection, *, dialer: bool, url: str | None) -> bool:
        """Serve one connection until it closes; return whether its handshake had finished."""
        key = f"{'out' if dialer else 'in'}-{next(_conn_ids)} {url or conn.remote}"
        send, receive = anyio.create_memory_object_stream(math.inf)
        budget = RateLimit(self._limits.max_receive_messages_per_s, self._limits.max_receive_bytes_per_s)
        link = _Link(key, conn, dialer, url, send, receive, budget)
        self._links[key] = link
        reason = "closed"
        try:
            self._on_open(key, dialer, time.monotonic())
            async with anyio.create_task_group() as tg:
                link.scope = tg.cancel_scope
                tg.start_soon(self._writer, link, tg.cancel_scope)
                if not dialer:
                    tg.start_soon(self._hello_deadline, link)
                try:
                    while True:
                        data = await conn.receive()
                        now = time.monotonic()
                        self._on_receive(key, data, now)
                        pause = budget.charge(len(data), now)
                        if pause > 0:
                            self._health.count("throttled_seconds", pause)
                            await anyio.sleep(pause)
                except ConnectionClosed as exc:
                    reason = link.closing or exc.reason
                    if exc.refused_by_peer and link.closing is None:
                        self._on_refused_by_peer(url or conn.remote, exc.refused_by_peer)
                    if exc.refusal:
                        self._health.refused(exc.refusal)
                        log.warning("%s refused %s from %s: %s", self._peer_id, exc.refusal, conn.remote, exc.reason)
                        reason = exc.refusal
                if link.closing is None:
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                self._links.pop(key, None)
                self._on_close(key, reason, time.monotonic())
                await conn.close(link.closing or reason, refused=link.refused)
                send.close()
                receive.close()
        return link.ready

    async def _writer(self, link: _Link, scope: anyio.CancelScope) -> None:
        """Send queued frames in order; after a close request, send what is queued, then close."""
        try:
            async for data in link.receive:
                await link.conn.send(data)
                link.queued_bytes -= len(data)  # counted until sent: Links.send writes directly only after
        except ConnectionClosed:
            pass
        except anyio.ClosedResourceError:
            pass
        await link.conn.close(link.closing or "closed", refused=link.refused)
        scope.cancel()

    def _close(self, link: _Link, reason: str, *, refused: bool) -> None:
        if link.closing is None:
            link.closing, link.refused = reason, refused
            link.send.close()  # the writer drains what is queued, then closes the connection
