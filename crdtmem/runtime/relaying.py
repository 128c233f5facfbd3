"""``RelayDriver``: joins a :class:`~crdtmem.runtime.peer.Peer`'s node to its relay (a broker).

It holds no protocol logic: it turns the relay client's callbacks into the node's relay
inputs (:mod:`crdtmem.protocol.relay`), pumping the node after each (the store journals what
was applied before a stream message is acked), and performs the node's
:class:`~crdtmem.protocol.events.Publish` and :class:`~crdtmem.protocol.events.RelaySend`
actions on the client.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from ..protocol.events import Publish, RelaySend
from ..protocol.node import Node
from ..transports import relay_for

__all__ = ["RelayDriver"]


class RelayDriver:
    """The relay link of one peer; :meth:`start` it in the peer's task group.

    Args:
        node: the peer's node.
        urls: the relay's addresses (``--relay``), servers of one broker.
        now: the peer's clock.
        pump: the peer's pump (events, then actions); called after every node input.
        rng: jitter for connection retries.
    """

    LINK = "relay"

    def __init__(self, node: Node, urls: Sequence[str], *, now: Callable[[], float], pump: Callable[[], None],
                 rng: random.Random) -> None:
        self._node, self._now, self._pump = node, now, pump
        node.attach_relay(self.LINK, now())
        self.client = relay_for(
            tuple(urls), node.identity.peer_id, on_up=self._up, on_down=self._down, on_deliver=self._deliver,
            on_message=self._message, on_stored=self._stored, rng=rng,
        )

    async def start(self, task_group: Any) -> None:
        """Start connecting in ``task_group``; publishing waits until the relay is up."""
        await task_group.start(self.client.run)

    def perform(self, action: Publish | RelaySend) -> None:
        """Carry out one relay action of the node (queued; never blocks)."""
        if isinstance(action, Publish):
            self.client.publish(action.wire, action.msg_id)
        else:
            self.client.send(action.data, action.to)

    def _up(self, max_payload: int) -> None:
        self._node.relay_up(self.LINK, self._now(), max_payload=max_payload)
        self._pump()

    def _down(self) -> None:
        self._node.relay_down(self.LINK, self._now())
        self._pump()

    def _deliver(self, data: bytes) -> None:
        self._node.relay_deliver(self.LINK, data, self._now())
        self._pump()

    def _message(self, data: bytes, reply_to: str | None) -> None:
        self._node.relay_message(self.LINK, data, self._now(), reply_to)
        self._pump()

    def _stored(self, msg_id: str) -> None:
        self._node.relay_stored(self.LINK, msg_id, self._now())
        self._pump()
