"""Trust problems explain themselves: the refused side is told why and how to fix it, counted, logged once."""

from __future__ import annotations

import logging

import pytest

from crdtmem import Peer
from crdtmem.identity import Keyring
from crdtmem.protocol.node import NodeConfig
from crdtmem.runtime import PeerOptions

from ..inprocess import free_port, team

pytestmark = pytest.mark.anyio

FAST = NodeConfig(gossip_interval=0.2)
QUICK_REDIAL = PeerOptions(reconnect_min=0.02, reconnect_max=0.05)


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


async def test_a_peer_that_is_not_trusted_is_told_the_line_to_add(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    ids, _, (ma, mb) = team(2)
    listener_keys = Keyring()  # the listener trusts nobody else: the dialer's key is missing
    dialer_keys = Keyring()
    dialer_keys.add(ids[0])
    async with Peer(ma, ids[0], listener_keys, listen="ws://127.0.0.1:0", config=FAST) as a:
        async with Peer(mb, ids[1], dialer_keys, QUICK_REDIAL, connect=[a.url], config=FAST) as b:
            await b.wait_for(lambda: b.metrics()["refused_by_peers"].get("untrusted-key", 0) >= 3, timeout=10)
            await a.wait_for(lambda: a.metrics()["refusals"].get("untrusted-key", 0) >= 3, timeout=10)
            assert not b.metrics()["synced"] and not a.metrics()["synced"]
    told = _warnings(caplog, "does not trust our key")
    assert len(told) == 1, "the refused dialer logs it once, then at most once a minute"
    assert a.url in told[0] and ids[1].peer_id in told[0] and ids[1].public_key_text in told[0]
    refused = _warnings(caplog, "is not in the keyring")
    assert len(refused) == 1, "the refusing side logs the refusal once, not once per layer nor per redial"
    assert ids[1].public_key_text in refused[0]


async def test_an_unreachable_address_is_logged_once_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    ids, keyring, (ma,) = team(1)
    dead = f"ws://127.0.0.1:{free_port()}"
    async with Peer(ma, ids[0], keyring, QUICK_REDIAL, connect=[dead], config=FAST) as a:
        await a.wait_for(lambda: a.metrics()["dial_failures"] >= 5, timeout=10)
        assert a.metrics()["synced"] is False, "a peer that reaches nobody is not synced"
        with pytest.raises(TimeoutError):
            await a.wait_synced(timeout=0.3)
        await a.wait_synced(timeout=1, peers=0)  # the caller expects nobody
    lines = _warnings(caplog, f"cannot reach {dead}")
    assert len(lines) == 1


async def test_synced_turns_true_once_a_peer_has_everything() -> None:
    ids, keyring, (ma, mb) = team(2)
    async with Peer(ma, ids[0], keyring, listen="ws://127.0.0.1:0", config=FAST) as a:
        ma.set("facts").add("x")
        assert a.metrics()["synced"] is False
        async with Peer(mb, ids[1], keyring, QUICK_REDIAL, connect=[a.url], config=FAST) as b:
            await b.wait_synced(timeout=10)
            assert mb.set("facts").value == {"x"}
            await a.wait_for(lambda: a.metrics()["synced"], timeout=10)
