"""``NatsRelay`` against a real ``nats-server``: a broker lost while the relay sets up its stream."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import anyio
import pytest

from crdtmem.transports.nats import NatsRelay, parse_relay_urls

from ..natsserver import NatsServer

pytest.importorskip("nats")
pytestmark = pytest.mark.anyio


class BrokerLostDuringSetup(NatsRelay):
    """A relay whose broker is SIGKILLed as it starts setting up, and restarted meanwhile."""

    def __init__(self, server: NatsServer, **kwargs: object) -> None:
        super().__init__(parse_relay_urls([server.url]), "peer", **kwargs)
        self.server = server
        self.setups = 0
        self.restarted = threading.Event()

    async def _setup(self) -> None:
        self.setups += 1
        if self.setups == 1:
            self.server.kill()
            threading.Thread(target=self._restart, daemon=True).start()
        await super()._setup()

    def _restart(self) -> None:
        self.server.start()
        self.restarted.set()


async def test_a_broker_lost_while_the_relay_sets_up_is_waited_for_not_fatal(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats").start()
    up, stored = anyio.Event(), anyio.Event()
    relay = BrokerLostDuringSetup(
        server, on_up=lambda _max_payload: up.set(), on_down=lambda: None, on_deliver=lambda _data: None,
        on_message=lambda _data, _to: None, on_stored=lambda _msg_id: stored.set(), rng=random.Random(1),
    )
    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tg:
                await tg.start(relay.run)
                await up.wait()
                relay.publish(b"a batch", "msg-1")
                await stored.wait()  # the stream it set up after the restart stores what it publishes
                tg.cancel_scope.cancel()
        assert relay.setups >= 2 and relay.restarted.is_set()
    finally:
        server.stop()
