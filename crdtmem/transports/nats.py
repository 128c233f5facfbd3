"""``NatsRelay``: a relay over NATS JetStream (``nats://HOST:PORT[/STREAM][?OPTIONS]``), with nats-py.

A thin shell: it moves bytes between one NATS connection and the node's relay inputs
(:mod:`crdtmem.protocol.relay`), and decides nothing about them. Subjects, for stream
``S`` (default ``CRDTMEM``):

* ``crdtmem.S.batches``: the JetStream stream ``S`` holds it; one signed batch wire per
  message, published with ``Nats-Msg-Id`` = the batch hash (the broker drops repeats within
  its duplicate window). Each peer reads it through the durable consumer of its key,
  ``crdtmem-<peer id>``, acking a message once the node has handled it (and the store has
  journaled what it applied), so a restarted peer resumes where it was; a new one starts at
  the stream's oldest message.

  Two live processes may run under one key (each writes under its own incarnation). A push
  consumer has one subscriber, so only the first takes the key's durable consumer; a process
  that finds it bound (or loses the race to create it) reads the whole stream through an
  ephemeral *ordered* consumer instead, which nats-py recreates from the last message it
  delivered once its heartbeats stop for two seconds (as when the broker restarted and forgot it), and which
  the broker deletes once that process is gone. Every process thus receives every batch; only
  the durable's holder resumes where it was after a restart, and a process that takes over
  the durable after the holder left resumes where the holder was: what it lacks from before
  that point comes from the reconciliation every :meth:`~crdtmem.protocol.relay.RelayInputs.relay_up`
  asks for.
* ``crdtmem.S.sync``: reconciliation requests (plain NATS, queue group ``crdtmem``: one peer
  answers each; the connection is ``no_echo``, so the server never hands a peer its own
  request), answered on the requester's own inbox.

A broker that cannot be reached, or is lost while the stream and consumer are being set up
(a restart), is retried with backoff; one that answers and refuses (no JetStream) is a
:class:`RelayError`.

Options (URL query, all optional): ``max_age`` (seconds, default 86400) and ``max_bytes``
(default 1 GiB) bound the stream; ``duplicate_window`` (seconds, default 120);
``ack_wait`` (seconds before an unacked delivery is redelivered, default 5); ``replicas``
(stream copies in a JetStream cluster, default 1). They apply when this peer creates the
stream; an existing stream is used as it is. Several URLs name servers of one cluster.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio

from ..protocol.backoff import Backoff

__all__ = ["RelayConfig", "RelayError", "NatsRelay", "parse_relay_urls"]

log = logging.getLogger("crdtmem.nats")

_QUEUE = "crdtmem"
_ORDERED_HEARTBEAT = 1.0
"""Seconds between the broker's heartbeats on an ordered consumer; two missed ones (as after a
broker restart, which forgets ephemeral consumers) make nats-py recreate it where it was."""
_FLOAT_OPTIONS = ("max_age", "duplicate_window", "ack_wait")
_INT_OPTIONS = ("max_bytes", "replicas")


class RelayError(RuntimeError):
    """The broker was reached but cannot serve as a relay (no JetStream, a refused stream)."""


@dataclass(frozen=True)
class RelayConfig:
    """Where the relay is and how its stream is shaped (see the module docstring)."""

    servers: tuple[str, ...]
    stream: str = "CRDTMEM"
    max_age: float = 86400.0
    max_bytes: int = 1024**3
    duplicate_window: float = 120.0
    ack_wait: float = 5.0
    replicas: int = 1

    @property
    def subject(self) -> str:
        return f"crdtmem.{self.stream}.batches"

    @property
    def sync_subject(self) -> str:
        return f"crdtmem.{self.stream}.sync"


def parse_relay_urls(urls: Sequence[str]) -> RelayConfig:
    """The :class:`RelayConfig` that ``--relay`` URLs describe (one relay; several servers).

    Raises:
        ValueError: a URL is not ``nats://HOST:PORT[/STREAM][?OPTIONS]``, or they disagree
            on the stream or its options.
    """
    if not urls:
        raise ValueError("no relay URL given")
    configs = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme != "nats" or not parts.hostname:
            raise ValueError(f"relay {url!r} is not an address like nats://HOST:PORT[/STREAM]")
        stream = parts.path.strip("/") or RelayConfig.stream
        if not stream.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"relay {url!r}: the stream name must be letters, digits, '-' or '_'")
        values: dict[str, Any] = {}
        for key, (value, *_) in parse_qs(parts.query, strict_parsing=bool(parts.query)).items():
            if key not in _FLOAT_OPTIONS + _INT_OPTIONS:
                raise ValueError(f"relay {url!r}: unknown option {key!r}")
            values[key] = (float if key in _FLOAT_OPTIONS else int)(value)
            if values[key] <= 0:
                raise ValueError(f"relay {url!r}: {key} must be positive")
        server = f"nats://{parts.netloc}"
        configs.append(RelayConfig((server,), stream, **values))
    first = configs[0]
    for other in configs[1:]:
        if (other.stream, other.max_age, other.max_bytes) != (first.stream, first.max_age, first.max_bytes):
            raise ValueError("relay URLs name servers of one relay: give them the same stream and options")
    return RelayConfig(tuple(c.servers[0] for c in configs), first.stream, first.max_age, first.max_bytes,
                       first.duplicate_window, first.ack_wait, first.replicas)


class NatsRelay:
    """One NATS connection carrying a peer's relay link; call :meth:`run` in a task group.

    Args:
        config: servers and stream.
        name: this peer's id (names its durable consumer).
        on_up: called (with the broker's max payload) once connected and subscribed, and again
            after every reconnection.
        on_down: called when the connection drops.
        on_deliver: called with each stream message's data; the message is acked after it returns.
        on_message: called with a reconciliation message's data and its reply address (or None).
        on_stored: called with a published batch's msg id once the broker stored it.
        rng: jitter for the first connection's retries.
    """

    def __init__(
        self,
        config: RelayConfig,
        name: str,
        *,
        on_up: Callable[[int], None],
        on_down: Callable[[], None],
        on_deliver: Callable[[bytes], None],
        on_message: Callable[[bytes, str | None], None],
        on_stored: Callable[[str], None],
        rng: random.Random,
    ) -> None:
        self.config = config
        self.durable = "crdtmem-" + name.strip("=")
        self.consumer: str | None = None
        """The durable consumer this process reads the stream through; None: an ephemeral one."""
        self._on_up, self._on_down, self._on_deliver = on_up, on_down, on_deliver
        self._on_message, self._on_stored = on_message, on_stored
        self._rng = rng
        self._nc: Any = None
        self._js: Any = None
        self._inbox = ""
        self._outbox_send, self._outbox = anyio.create_memory_object_stream[tuple[str, bytes, str | None]](
            max_buffer_size=float("inf"))

    def publish(self, wire: bytes, msg_id: str) -> None:
        """Queue one batch for the stream (in order); :attr:`on_stored` reports its durable ack."""
        self._outbox_send.send_nowait(("publish", wire, msg_id))

    def send(self, data: bytes, to: str | None) -> None:
        """Queue one reconciliation message: a request (``to`` None) or an answer to ``to``."""
        self._outbox_send.send_nowait(("send", data, to))

    async def run(self, task_status: Any = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect (retrying until it works), set up the stream and subscriptions, then publish
        what is queued until cancelled. Started with ``task_group.start``: returns once running."""
        import nats

        backoff = Backoff(0.1, 5.0)
        task_status.started()
        while True:
            try:
                self._nc = await nats.connect(
                    servers=list(self.config.servers), name=self.durable, no_echo=True,
                    allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                    disconnected_cb=self._disconnected, reconnected_cb=self._reconnected,
                    error_cb=self._error, connect_timeout=2,
                )
                break
            except Exception as exc:  # noqa: BLE001 - nats-py raises several kinds; retry them all
                delay = backoff.next_delay(self._rng)
                log.warning("relay %s unreachable (%s); retrying in %.1fs", ",".join(self.config.servers), exc, delay)
                await anyio.sleep(delay)
        try:
            self._js = self._nc.jetstream()
            await self._set_up_stream(backoff)
            self._inbox = self._nc.new_inbox()
            await self._nc.subscribe(self._inbox, cb=self._answered)
            await self._nc.subscribe(self.config.sync_subject, queue=_QUEUE, cb=self._requested)
            self._on_up(self._nc.max_payload)
            await self._pump_outbox()
        finally:
            with anyio.move_on_after(2, shield=True):  # a broker that is down must not hold up the exit
                try:
                    await self._nc.close()
                except Exception as exc:  # noqa: BLE001 - nor fail it: flushing to a dead socket raises
                    log.info("relay connection closed uncleanly: %s: %s", type(exc).__name__, exc)

    async def _set_up_stream(self, backoff: Backoff) -> None:
        """Set up the stream and its consumer, again while the connection is lost meanwhile (a
        broker restarting mid-setup); a broker that refuses is a :class:`RelayError`."""
        import nats

        backoff.reset()
        while True:
            try:
                await self._setup()
                return
            except Exception as exc:  # noqa: BLE001 - nats-py's errors name no remedy; ours does
                lost = not self._nc.is_connected or isinstance(exc, (nats.errors.TimeoutError,
                                                                     nats.errors.ConnectionClosedError))
                if not lost:
                    raise RelayError(
                        f"relay {','.join(self.config.servers)}: cannot set up stream {self.config.stream}: "
                        f"{type(exc).__name__}: {exc} (is JetStream enabled? start the server with nats-server -js)"
                    ) from exc
                delay = backoff.next_delay(self._rng)
                log.warning("relay %s: connection lost while setting up stream %s (%s); retrying in %.1fs",
                            ",".join(self.config.servers), self.config.stream, type(exc).__name__, delay)
                await anyio.sleep(delay)

    async def _setup(self) -> None:
        """Create the stream (if missing) and the consumer; safe to call again after a failure."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
        from nats.js.errors import BadRequestError, NotFoundError

        cfg = self.config
        try:
            await self._js.stream_info(cfg.stream)
        except NotFoundError:
            try:
                await self._js.add_stream(StreamConfig(
                    name=cfg.stream, subjects=[cfg.subject], storage=StorageType.FILE, max_age=cfg.max_age,
                    max_bytes=cfg.max_bytes, duplicate_window=min(cfg.duplicate_window, cfg.max_age),
                    num_replicas=cfg.replicas,
                ))
            except BadRequestError:  # another peer created it first, perhaps otherwise shaped: use it
                await self._js.stream_info(cfg.stream)
        await self._subscribe_stream()

    async def _subscribe_stream(self) -> None:
        """Read the stream through the key's durable consumer if no other process holds it, else
        through an ephemeral ordered one (see the module docstring)."""
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
        from nats.js.errors import Error as JetStreamError

        cfg = self.config
        self.consumer = self.durable  # before the first delivery, which is acked
        try:
            await self._js.subscribe(
                cfg.subject, durable=self.durable, stream=cfg.stream, cb=self._delivered, manual_ack=True,
                config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=cfg.ack_wait,
                                      deliver_policy=DeliverPolicy.ALL, inactive_threshold=cfg.max_age),
            )
            return
        except JetStreamError as exc:  # another process with our key bound it, or created it first
            self.consumer = None
            log.info("durable consumer %s is in use (%s), most likely by another process with this key: "
                     "reading the stream through an ephemeral ordered consumer", self.durable, exc)
        await self._js.subscribe(cfg.subject, stream=cfg.stream, cb=self._delivered, ordered_consumer=True,
                                 idle_heartbeat=_ORDERED_HEARTBEAT, config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL))

    async def _pump_outbox(self) -> None:
        async with anyio.create_task_group() as tg:
            async for kind, data, extra in self._outbox:
                if kind == "publish":
                    await self._publish(tg, data, extra)
                    continue
                try:
                    if extra is None:
                        await self._nc.publish(self.config.sync_subject, data, reply=self._inbox)
                    else:
                        await self._nc.publish(extra, data)
                except Exception as exc:  # noqa: BLE001 - a lost request is asked again on the node's next timer
                    log.info("relay message not sent: %s", exc)

    async def _publish(self, tg: Any, wire: bytes, msg_id: str) -> None:
        try:
            ack = await self._js.publish_async(self.config.subject, wire, headers={"Nats-Msg-Id": msg_id},
                                               stream=self.config.stream)
        except Exception as exc:  # noqa: BLE001 - not sent: the node publishes it again
            log.info("relay publish of %s failed: %s", msg_id, exc)
            return
        tg.start_soon(self._await_ack, ack, msg_id)

    async def _await_ack(self, ack: Any, msg_id: str) -> None:
        try:
            with anyio.fail_after(self.config.ack_wait):
                await ack
        except Exception as exc:  # noqa: BLE001 - unacknowledged: the node publishes it again
            log.info("relay publish of %s not acknowledged: %s", msg_id, exc)
            return
        self._on_stored(msg_id)

    async def _delivered(self, msg: Any) -> None:
        self._on_deliver(msg.data)
        if self.consumer is not None:  # an ordered consumer takes no acks
            await msg.ack()

    async def _answered(self, msg: Any) -> None:
        if not msg.data and msg.headers and "Status" in msg.headers:
            return  # the server's "no responders" notice: no other peer is subscribed yet
        self._on_message(msg.data, None)

    async def _requested(self, msg: Any) -> None:
        if msg.reply:
            self._on_message(msg.data, msg.reply)

    async def _disconnected(self) -> None:
        self._on_down()

    async def _reconnected(self) -> None:
        self._on_up(self._nc.max_payload)

    async def _error(self, exc: Exception) -> None:
        if not isinstance(exc, (asyncio.CancelledError, OSError)):
            log.info("relay connection: %s", exc)
