"""Where a late joiner's connection set-up goes: a timeline of ``bench_trace``'s ``late20k`` join.

Writer A types the first 20,000 edits of the editing trace alone, then a fresh peer C joins
(the steps of ``bench_trace.late_join``, with ``bench_trace``'s own systems). Every step of C's set-up is stamped with
``time.perf_counter`` from the moment C's ``Memory`` is built (both peers run in this process,
on one event loop, so one clock orders both sides): C's Peer construction and start (store,
incarnation, node), the dial (TCP + websocket upgrade), A accepting, each handshake message
received and the reply it caused on either side, the first ``Sync`` written and answered, C's
first frame after the handshake, ``wait_connected`` returning, and C holding the whole text.
Each handled message is stamped when the runtime hands it to the node ("receives") and when
the node returns ("handled"): between the two is CPU in the protocol, between a "handled" and
the next "receives" the transport, the event loop's wakeups and the task switches.

The same run times pycrdt-websocket's join of the same document (connect, then the
y-protocols sync step 1/2 until the ``Provider`` is synced) for reference.

``--settle S`` lets the writer idle S seconds before C joins, so it holds no unsigned writes
(with 0, as in ``bench_trace``, it signs the last ~50 ms of its typing when C's auth verifies).

Run: python benchmarks/bench_join_setup.py [--reps 7] [--edits 20000] [--settle 0.2]
Prints JSON: per step, the median and spread (max - min) of its time since C's start, in ms;
``ratio_first_batch_to_pycrdt_synced`` (C starts handling its first batch, against the
``Provider`` synced) and ``ratio_whole_to_pycrdt_whole`` (each holding the whole text).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import anyio
import pycrdt
from bench_trace import DEFAULT_TRACE, DOC, LATE_PREFIX, ROOT, Arrivals, CrdtmemSystem, PycrdtSystem, insert_clocks, load_trace, type_trace


class Timeline:
    """Named moments of one join, first occurrence each, in ms since :meth:`start`."""

    def __init__(self) -> None:
        self.t0: float | None = None
        self.marks: dict[str, float] = {}

    def start(self) -> None:
        self.t0, self.marks = time.perf_counter(), {}

    def mark(self, name: str) -> None:
        if self.t0 is not None and name not in self.marks:
            self.marks[name] = (time.perf_counter() - self.t0) * 1000


@contextmanager
def instrumented(timeline: Timeline, sides: dict[str, str]) -> Any:
    """Wrap the runtime's and the node's entry points to stamp ``timeline``; ``sides`` maps a
    peer id to ``A`` or ``C``."""
    from crdtmem.protocol.handshake import HandshakeState
    from crdtmem.protocol.node import Node
    from crdtmem.runtime import links as links_module
    from crdtmem.runtime import peer as peer_module
    from crdtmem.transports import websocket as ws_module

    originals: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = getattr(owner, name)
        originals.append((owner, name, original))
        setattr(owner, name, functools.wraps(original)(make(original)))

    def side_of(peer_id: str) -> str:
        return sides.get(peer_id, "?")

    def node_receive(original: Any) -> Any:
        def receive(self: Node, conn: Any, data: bytes, now: float) -> None:
            side = side_of(self.identity.peer_id)
            session = self._sessions.get(conn)
            if session is None or session.ready:
                step = "a frame"
            else:
                step = "hello" if session.handshake.state is HandshakeState.SENT_HELLO else "auth"
            timeline.mark(f"{side} receives {step}")
            original(self, conn, data, now)
            timeline.mark(f"{side} handled {step}")
        return receive

    def node_dispatch(original: Any) -> Any:
        def dispatch(self: Node, session: Any, message: Any, now: float) -> None:
            what = f"{side_of(self.identity.peer_id)} {type(message).__name__}"
            timeline.mark(f"{what} handling")
            original(self, session, message, now)
            timeline.mark(f"{what} handled")
        return dispatch

    def node_open(original: Any) -> Any:
        def open_(self: Node, conn: Any, now: float, *, dialer: bool) -> None:
            timeline.mark(f"{side_of(self.identity.peer_id)} node.open")
            original(self, conn, now, dialer=dialer)
        return open_

    def node_flush(original: Any) -> Any:
        def flush(self: Node, now: float) -> None:
            side = side_of(self.identity.peer_id)
            pending = self.memory.has_pending_deltas()
            if pending:
                timeline.mark(f"{side} signs held writes")
            original(self, now)
            if pending:
                timeline.mark(f"{side} signed held writes")
        return flush

    def links_send(original: Any) -> Any:
        def send(self: Any, key: str, frames: list[bytes]) -> None:
            side = side_of(self._peer_id)
            count = getattr(self, "_bench_writes", 0) + 1
            self._bench_writes = count
            if count <= 3:
                timeline.mark(f"{side} write{count} ({len(frames)} frames)")
            original(self, key, frames)
        return send

    def links_accept(original: Any) -> Any:
        async def accept(self: Any, conn: Any) -> None:
            timeline.mark(f"{side_of(self._peer_id)} accepts")
            await original(self, conn)
        return accept

    def ws_connect(original: Any) -> Any:
        async def connect(self: Any, url: str) -> Any:
            timeline.mark("C dial starts")
            conn = await original(self, url)
            timeline.mark("C websocket open")
            return conn
        return connect

    def peer_open_store(original: Any) -> Any:
        def open_store(self: Any) -> None:
            if side_of(self.identity.peer_id) == "C":
                timeline.mark("C incarnation + store + node start")
                original(self)
                timeline.mark("C incarnation + store + node done")
            else:
                original(self)
        return open_store

    def peer_init(original: Any) -> Any:
        def init(self: Any, memory: Any, identity: Any, *args: Any, **kwargs: Any) -> None:
            original(self, memory, identity, *args, **kwargs)
            if side_of(identity.peer_id) == "C":
                timeline.mark("C Peer built")
        return init

    def peer_aenter(original: Any) -> Any:
        async def aenter(self: Any) -> Any:
            if side_of(self.identity.peer_id) != "C":
                return await original(self)
            timeline.mark("C Peer.__aenter__ starts")
            result = await original(self)
            timeline.mark("C Peer.__aenter__ returns")
            return result
        return aenter

    def peer_wait_connected(original: Any) -> Any:
        async def wait_connected(self: Any, *args: Any, **kwargs: Any) -> None:
            await original(self, *args, **kwargs)
            timeline.mark("C wait_connected returns")
        return wait_connected

    wrap(Node, "receive", node_receive)
    wrap(Node, "open", node_open)
    wrap(Node, "_dispatch", node_dispatch)
    wrap(Node, "flush", node_flush)
    wrap(links_module.Links, "send", links_send)
    wrap(links_module.Links, "_accept", links_accept)
    wrap(ws_module.WebSocketTransport, "connect", ws_connect)
    wrap(peer_module.Peer, "_open_store", peer_open_store)
    wrap(peer_module.Peer, "__init__", peer_init)
    wrap(peer_module.Peer, "__aenter__", peer_aenter)
    wrap(peer_module.Peer, "wait_connected", peer_wait_connected)
    try:
        yield
    finally:
        for owner, name, original in reversed(originals):
            setattr(owner, name, original)


async def typed_alone(system: Any, stack: AsyncExitStack, prefix: list, settle: float) -> tuple[str, str]:
    """Start ``system``'s writer, type ``prefix`` on it alone, idle ``settle`` seconds: (its URL, its text)."""
    doc_a, url, _ = await system.writer(stack)
    await type_trace(doc_a, prefix)
    await anyio.sleep(settle)
    return url, str(doc_a.get(ROOT, type=pycrdt.Text))


async def until_text(doc: pycrdt.Doc, clock: int, end_text: str) -> None:
    """Return once ``doc`` holds ``end_text`` (the writer's Yjs clock ``clock``)."""
    arrivals = Arrivals(doc)
    if str(doc.get(ROOT, type=pycrdt.Text)) != end_text:
        await arrivals.wait_for(clock, end_text)


async def crdtmem_join(secrets: list[bytes], prefix: list, timeline: Timeline, settle: float) -> dict[str, float]:
    """A types ``prefix`` alone, waits ``settle`` seconds, then C joins under the instruments: its timeline."""
    system = CrdtmemSystem(secrets)
    sides = {system.identities[0].peer_id: "A", system.identities[2].peer_id: "C"}
    clock = max(insert_clocks(prefix))
    async with AsyncExitStack() as stack:
        url, end_text = await typed_alone(system, stack, prefix, settle)
        with instrumented(timeline, sides):
            timeline.start()
            async with AsyncExitStack() as inner:
                doc_c, _ = await system.reader(inner, url, 2)
                await until_text(doc_c, clock, end_text)
                timeline.mark("C holds the whole text")
            timeline.t0 = None
    return timeline.marks


async def pycrdt_join(prefix: list, settle: float) -> dict[str, float]:
    """The same join on pycrdt-websocket: connect and sync step 1/2, then the text."""
    system = PycrdtSystem()
    opened: list[float] = []
    provider_enter = pycrdt.Provider.__aenter__

    async def enter(self: Any) -> Any:
        opened.append(time.perf_counter())  # the websocket is open: the Provider starts syncing
        return await provider_enter(self)

    clock = max(insert_clocks(prefix))
    async with AsyncExitStack() as stack:
        url, end_text = await typed_alone(system, stack, prefix, settle)
        start = time.perf_counter()
        pycrdt.Provider.__aenter__ = enter
        try:
            async with AsyncExitStack() as inner:
                doc_c, _ = await system.reader(inner, url, 2)
                synced = (time.perf_counter() - start) * 1000
                await until_text(doc_c, clock, end_text)
                whole = (time.perf_counter() - start) * 1000
        finally:
            pycrdt.Provider.__aenter__ = provider_enter
    return {"pycrdt websocket open": (opened[-1] - start) * 1000, "pycrdt provider synced": synced,
            "pycrdt holds the whole text": whole}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", default=DEFAULT_TRACE)
    parser.add_argument("--edits", type=int, default=LATE_PREFIX, help="edits A types before C joins")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--settle", type=float, default=0.0,
                        help="seconds the writer idles before C joins (0, as bench_trace: the writer may still hold writes)")
    args = parser.parse_args()
    prefix, _ = load_trace(args.trace, args.edits)

    from crdtmem import Identity

    runs: list[dict[str, float]] = []
    for rep in range(args.reps):
        secrets = [Identity.generate().private_bytes() for _ in range(3)]
        order = ["crdtmem", "pycrdt"] if rep % 2 == 0 else ["pycrdt", "crdtmem"]
        marks: dict[str, float] = {}
        for name in order:  # alternate who goes first
            if name == "crdtmem":
                marks.update(anyio.run(crdtmem_join, secrets, prefix, Timeline(), args.settle))
            else:
                marks.update(anyio.run(pycrdt_join, prefix, args.settle))
        runs.append(marks)
        print(f"# rep {rep + 1}: {json.dumps({k: round(v, 3) for k, v in marks.items()})}", file=sys.stderr)

    names = sorted({name for marks in runs for name in marks},
                   key=lambda n: statistics.median(m[n] for m in runs if n in m))
    out: dict[str, Any] = {"edits": args.edits, "reps": args.reps, "settle": args.settle, "ms_since_C_starts": {}}  # [median, spread]
    for name in names:
        values = [m[name] for m in runs if name in m]
        out["ms_since_C_starts"][name] = [round(statistics.median(values), 3), round(max(values) - min(values), 3)]
    steps = out["ms_since_C_starts"]
    first_batch = steps.get("C Batches handling")
    if first_batch and "pycrdt provider synced" in steps:
        out["ratio_first_batch_to_pycrdt_synced"] = round(first_batch[0] / steps["pycrdt provider synced"][0], 3)
        out["ratio_whole_to_pycrdt_whole"] = round(
            steps["C holds the whole text"][0] / steps["pycrdt holds the whole text"][0], 3)
    out.update({"python": platform.python_version(), "cpus": os.cpu_count(), "loadavg": os.getloadavg()[0]})
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
