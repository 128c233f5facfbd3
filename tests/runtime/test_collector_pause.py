"""The peer pauses CPython's cyclic garbage collector while the node handles one input."""

from __future__ import annotations

import gc

import pytest

from crdtmem import Peer
from crdtmem.runtime.collector import CollectorPaused
from crdtmem.transports.memory import MemoryHub, MemoryTransport

from ..inprocess import team

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def collector_enabled():
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_the_collector_runs_again_after_the_pause_even_when_the_call_fails(collector_enabled) -> None:
    with CollectorPaused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(ValueError), CollectorPaused():
        raise ValueError("the node raised")
    assert gc.isenabled()


def test_a_collector_the_application_disabled_stays_disabled(collector_enabled) -> None:
    gc.disable()
    with CollectorPaused():
        with CollectorPaused():
            pass
        assert not gc.isenabled()
    assert not gc.isenabled()


async def test_batches_are_applied_with_the_collector_paused_and_it_runs_between(collector_enabled) -> None:
    transport = MemoryTransport(hub=MemoryHub())
    ids, keyring, (ma, mb) = team(2)
    applied_while_enabled: list[bool] = []
    mb.on_change(lambda name, origin: applied_while_enabled.append(gc.isenabled()) if origin != mb.replica_id else None)
    async with Peer(ma, ids[0], keyring, listen="memory://a", transport=transport) as a, \
            Peer(mb, ids[1], keyring, connect=["memory://a"], transport=transport) as b:
        await a.wait_synced(timeout=10)
        for i in range(50):
            ma.set("tasks").add(i)
        await a.flush()
        await b.wait_for(lambda: len(mb.set("tasks")) == 50, timeout=10)
        assert gc.isenabled()  # between the node's calls, the collector runs
    assert applied_while_enabled and not any(applied_while_enabled)
