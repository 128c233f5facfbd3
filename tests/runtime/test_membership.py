"""Membership at runtime: admins admit and revoke keys with signed records that replicate like writes."""

from __future__ import annotations

import time
from contextlib import AsyncExitStack

import pytest

from crdtmem import Memory, Peer
from crdtmem.identity import Identity, Keyring
from crdtmem.protocol.membership import MEMBERSHIP_NAME, admission
from crdtmem.protocol.node import NodeConfig
from crdtmem.runtime import PeerOptions

pytestmark = pytest.mark.anyio

FAST = NodeConfig(gossip_interval=0.2)
QUICK_REDIAL = PeerOptions(reconnect_min=0.02, reconnect_max=0.1)


def founding(admins: list[Identity], members: list[Identity]) -> Keyring:
    keyring = Keyring()
    for identity in admins:
        keyring.add(identity, admin=True)
    for identity in members:
        keyring.add(identity)
    return keyring


async def start(stack: AsyncExitStack, identity: Identity, keyring: Keyring, connect: list[str] = ()) -> Peer:
    memory = Memory(identity.peer_id, clock=time.time)
    return await stack.enter_async_context(
        Peer(memory, identity, keyring, QUICK_REDIAL, listen="ws://127.0.0.1:0", connect=connect, config=FAST))


def facts(peer: Peer) -> set:
    return set(peer.memory.value("facts") or ())


async def test_an_admitted_key_joins_through_peers_that_never_met_the_admin() -> None:
    admin, relay, far, newcomer = (Identity.generate() for _ in range(4))
    keyring = founding([admin], [relay, far])  # the keyring file: nobody lists the newcomer
    async with AsyncExitStack() as stack:
        a = await start(stack, admin, keyring)
        r = await start(stack, relay, keyring, [a.url])
        f = await start(stack, far, keyring, [r.url])  # f never talks to the admin
        await f.wait_synced(timeout=10)
        assert await a.admit(newcomer.public_key_text + " newcomer") == newcomer.peer_id
        await f.wait_for(lambda: newcomer.peer_id in [m.peer_id for m in f.members()], timeout=10)
        n = await start(stack, newcomer, founding([admin], [relay, far]), [f.url])
        await n.wait_connected(1, timeout=10)
        n.memory.set("facts").add("from the newcomer")
        await a.wait_for(lambda: "from the newcomer" in facts(a), timeout=10)
        member = next(m for m in a.members() if m.peer_id == newcomer.peer_id)
        assert (member.admin, member.admitted_by, member.key) == (False, admin.peer_id,
                                                                  newcomer.public_key_text + " newcomer")
        assert not any(a.metrics()["refusals"].values()) and not any(f.metrics()["refusals"].values())


async def test_only_an_admin_admits_and_a_forged_record_is_refused_everywhere() -> None:
    admin, member, outsider = (Identity.generate() for _ in range(3))
    keyring = founding([admin], [member])
    async with AsyncExitStack() as stack:
        a = await start(stack, admin, keyring)
        m = await start(stack, member, keyring, [a.url])
        await m.wait_synced(timeout=10)
        with pytest.raises(PermissionError, match="not an admin"):
            await m.admit(outsider.public_key_text)
        # written straight into the memory, bypassing admit(): the admin refuses the batch
        m.memory.gset(MEMBERSHIP_NAME).add(admission(outsider.public_key_text, admin=True, by=member.peer_id,
                                                     at=time.time()))
        await m.flush()
        await a.wait_for(lambda: a.metrics()["refusals"].get("not-an-admin", 0) >= 1, timeout=10)
        assert outsider.peer_id not in [x.peer_id for x in a.members()]
        assert a.memory.value(MEMBERSHIP_NAME) is None
        assert m.connected_peers() == [admin.peer_id], "a validly signed batch never drops a link"


async def test_a_revoked_key_is_cut_off_its_new_writes_refused_its_old_ones_kept() -> None:
    admin, member, revoked = (Identity.generate() for _ in range(3))
    keyring = founding([admin], [member, revoked])
    async with AsyncExitStack() as stack:
        a = await start(stack, admin, keyring)
        m = await start(stack, member, keyring, [a.url])
        r = await start(stack, revoked, keyring, [a.url, m.url])
        r.memory.set("facts").add("old")
        await r.wait_synced(timeout=10, peers=2)
        await a.revoke(revoked.peer_id)
        await m.wait_for(lambda: m.node.members.is_revoked(revoked.peer_id), timeout=10)
        await r.wait_for(lambda: not r.connected_peers(), timeout=10)
        r.memory.set("facts").add("new")
        await r.flush()
        await r.wait_for(lambda: r.metrics()["refused_by_peers"].get("revoked-key", 0)
                         + r.metrics()["refused_by_peers"].get("untrusted-key", 0) >= 2, timeout=10)
        for peer in (a, m):
            assert facts(peer) == {"old"}, "the revoked key's past writes stay; its new one reached no one"
            assert revoked.peer_id not in [x.peer_id for x in peer.members()]
            assert peer.node.seen.max(r.node.replica_id) == 1, "still attributed to its author"


async def test_revoke_wins_over_a_concurrent_admit() -> None:
    first, second, newcomer = (Identity.generate() for _ in range(3))
    keyring = founding([first, second], [])
    async with AsyncExitStack() as stack:
        a = await start(stack, first, keyring)
        b = await start(stack, second, keyring, [a.url])
        await b.wait_synced(timeout=10)
        a.isolate()
        await b.wait_for(lambda: not b.connected_peers(), timeout=10)
        await a.admit(newcomer.public_key_text)
        await b.revoke(newcomer.peer_id)
        a.rejoin()
        await b.wait_synced(timeout=10)
        await a.wait_synced(timeout=10)
        for peer in (a, b):
            assert newcomer.peer_id not in [x.peer_id for x in peer.members()]
            assert newcomer.public_key not in peer.node.members
        with pytest.raises(ValueError, match="revoked"):
            await a.admit(newcomer.public_key_text)
