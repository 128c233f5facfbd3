"""The automerge-paper editing trace, typed on peer A and replicated to peer B, against pycrdt-websocket.

The trace (Kleppmann et al.; ``--trace``, gzipped JSON: ``txns`` of ``patches``
``[position, delete_count, insert_text]`` and the ``endContent``) is typed one transaction
at a time into a Yjs text on peer A, yielding to the event loop after each, while peer B is
connected over real websockets on loopback. Two systems run in the same invocation,
alternately, ``--reps`` times each:

* **crdtmem**: A and B are :class:`~crdtmem.runtime.peer.Peer` objects; A edits
  ``memory.doc("paper")``, every flush is an Ed25519-signed batch that B verifies and applies;
* **pycrdt-websocket**: a ``WebsocketServer`` room next to A, and A and B as ``pycrdt.Provider``
  clients of it (the y-protocols sync and update messages, nothing signed).

Scenarios (each JSON key is prefixed ``crdtmem_`` or ``pycrdt_``; ratios are ours / theirs):

* ``inproc_*``: A and B in one process; ``xproc_*``: B in a second process (both processes
  read the same system-wide monotonic clock);
* ``edits_per_s``: edits typed / seconds from the first edit until B's text equals ``endContent``;
* ``bytes_per_edit``: bytes B received on its connection during that time, per edit;
* ``visible_p50_ms`` / ``visible_p99_ms``: for every edit that inserts text, from the moment A
  began typing it to the moment B applied an update containing it (B's Yjs clock of A's
  client reached A's clock after that edit: the running count of inserted characters);
* ``late_join_ms`` / ``late_join_bytes``: after the run, a fresh peer C connects to A (to the
  room) and receives the whole document: time until C's text equals A's, bytes C received;
  ``late20k_*`` the same when A has typed only the first 20,000 edits, no one connected
  (crdtmem: A wrote alone, so C is sent A's signed checkpoint, the join of its batches, instead
  of every signed batch, see ``crdtmem.protocol.checkpoint``);
* ``xproc_writer_cpu_us_per_edit`` / ``xproc_reader_cpu_us_per_edit``: CPU time
  (``time.process_time``) of A's and of B's process from the first edit until B holds the
  final text, per edit (A's process also runs pycrdt-websocket's room server);
* ``receive_us_start`` / ``receive_us_end``: the receiver's cost per update without a
  network: crdtmem's ``Node.receive`` of the frame A's node sent for one edit (MAC, decode,
  signature, causal checks, apply), pycrdt's ``Doc.apply_update`` of the same edit's update;
  over the first ``--window`` edits and over the last ``--window`` edits of the trace;
* ``final_text_ok``: every side's text equalled ``endContent`` (the run fails otherwise).

``median`` and ``spread`` (max - min over the reps) are reported per key; ``ratio_*`` keys are
medians of crdtmem over medians of pycrdt-websocket. ``--quick`` types only a prefix of the
trace; report full-trace numbers.

Run: python benchmarks/bench_trace.py [--quick] [--edits N] [--reps 3] [--skip-xproc | --xproc-only | --late-only]
(``BENCH_PROFILE=DIR``: cProfile, CPU-timed, of each system's two-process writer and reader there)
"""

from __future__ import annotations

import argparse
import bisect
import gc
import gzip
import json
import multiprocessing as mp
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import anyio
import pycrdt
from cpu_profile import profiled

DEFAULT_TRACE = "/work/shared/data/automerge-paper.json.gz"
ROOT = "text"
DOC = "paper"
LATE_PREFIX = 20_000
TIMEOUT = 900.0


# -- the trace -------------------------------------------------------------------------------------


def load_trace(path: str, edits: int | None) -> tuple[list[list[list[Any]]], str]:
    """(patches per transaction, final text): the first ``edits`` transactions, or all of them."""
    with gzip.open(path, "rt") as f:
        data = json.load(f)
    txns = [txn["patches"] for txn in data["txns"]]
    if edits is None or edits >= len(txns):
        return txns, data["endContent"]
    txns = txns[:edits]
    return txns, typed_text(txns)


def typed_text(txns: list[list[list[Any]]]) -> str:
    """The text the transactions leave, typed into a scratch Doc."""
    scratch = pycrdt.Doc()
    text = scratch.get(ROOT, type=pycrdt.Text)
    with scratch.transaction():
        for patches in txns:
            _type(text, patches)
    return str(text)


def _type(text: pycrdt.Text, patches: list[list[Any]]) -> None:
    for position, deleted, inserted in patches:
        if deleted:
            del text[position : position + deleted]
        if inserted:
            text.insert(position, inserted)


def insert_clocks(txns: list[list[list[Any]]]) -> list[int]:
    """Per transaction, the writer's Yjs clock after it (characters inserted so far), or -1 for
    a transaction that inserts nothing (its visibility cannot be read from a clock)."""
    clocks, total = [], 0
    for patches in txns:
        inserted = sum(len(p[2]) for p in patches)
        total += inserted
        clocks.append(total if inserted else -1)
    return clocks


async def type_trace(doc: pycrdt.Doc, txns: list[list[list[Any]]], stamps: list[float] | None = None) -> None:
    """Type each transaction on ``doc``, yielding to the event loop after each one."""
    text = doc.get(ROOT, type=pycrdt.Text)
    clock = time.monotonic
    for patches in txns:
        if stamps is not None:
            stamps.append(clock())
        with doc.transaction():
            _type(text, patches)
        await anyio.sleep(0)


class Arrivals:
    """Every update a receiving Doc applies, with the monotonic time it was applied.

    Call :meth:`wait_for` to wait until the Doc holds a given text.
    """

    def __init__(self, doc: pycrdt.Doc) -> None:
        self.doc = doc
        self.times: list[float] = []
        self.updates: list[bytes] = []
        self._changed = anyio.Event()
        self._subscription = doc.observe(self._observed)

    def _observed(self, event: pycrdt.TransactionEvent) -> None:
        self.times.append(time.monotonic())
        self.updates.append(event.update)
        self._changed.set()

    async def wait_for(self, final_clock: int, end_text: str, timeout: float = TIMEOUT) -> float:
        """Wait until the Doc's text is ``end_text``; return when its last update was applied."""
        text = self.doc.get(ROOT, type=pycrdt.Text)
        with anyio.fail_after(timeout):
            while True:
                if self.times and max(_clients(self.doc.get_state()).values(), default=0) >= final_clock:
                    if str(text) == end_text:
                        return self.times[-1]
                self._changed = anyio.Event()
                await self._changed.wait()

    def visible_ms(self, stamps: list[float], clocks: list[int]) -> list[float]:
        """Edit-to-visible latencies (ms) of the edits that insert text."""
        from crdtmem.crdt.document import update_footprint

        reached, times, top = [], [], 0
        for at, update in zip(self.times, self.updates):
            ends = update_footprint(update).ends
            top = max(top, max(ends.values(), default=0))
            reached.append(top)
            times.append(at)
        out = []
        for stamp, target in zip(stamps, clocks):
            if target < 0:
                continue
            i = bisect.bisect_left(reached, target)
            if i < len(times):
                out.append((times[i] - stamp) * 1000)
        return out


def _clients(state: bytes) -> dict[int, int]:
    from crdtmem.crdt.document import state_clients

    return state_clients(state)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else float("nan")


# -- crdtmem -----------------------------------------------------------------------------------------


def _crdtmem_team(secrets: list[bytes]) -> tuple[list[Any], Any]:
    from crdtmem import Identity, Keyring

    identities = [Identity.from_private_bytes(s) for s in secrets]
    keyring = Keyring()
    for identity in identities:
        keyring.add(identity)
    return identities, keyring


class CrdtmemSystem:
    """Peers of crdtmem on loopback websockets."""

    name = "crdtmem"

    def __init__(self, secrets: list[bytes]) -> None:
        self.identities, self.keyring = _crdtmem_team(secrets)

    async def writer(self, stack: AsyncExitStack) -> tuple[pycrdt.Doc, str, Callable[[], int]]:
        """Peer A (listening): its Doc, its URL, and its bytes-sent counter."""
        from crdtmem import Memory, Peer

        me = self.identities[0]
        memory = Memory(me.peer_id, clock=time.time)
        peer = await stack.enter_async_context(Peer(memory, me, self.keyring, listen="ws://127.0.0.1:0"))
        return memory.doc(DOC), peer.url, lambda: peer.node.stats.bytes_sent

    async def reader(self, stack: AsyncExitStack, url: str, index: int) -> tuple[pycrdt.Doc, Callable[[], int]]:
        """A peer dialing ``url``, connected: its Doc (observed before any update) and bytes received."""
        peer, doc = await self._dial(stack, url, index)
        return doc, lambda: peer.node.stats.bytes_received

    async def joiner(self, stack: AsyncExitStack, url: str, index: int) -> tuple[pycrdt.Doc, Callable[[], int]]:
        """A peer dialing ``url``, returned once it holds all the writer has (``wait_synced``,
        as a pycrdt ``Provider`` waits for its sync step before :meth:`PycrdtSystem.joiner`
        returns; no observer of the Doc, which pycrdt's joiner does not have either)."""
        peer, doc = await self._dial(stack, url, index)
        await peer.wait_synced(timeout=TIMEOUT)
        return doc, lambda: peer.node.stats.bytes_received

    async def _dial(self, stack: AsyncExitStack, url: str, index: int) -> tuple[Any, pycrdt.Doc]:
        from crdtmem import Memory, Peer
        from crdtmem.runtime import PeerOptions

        me = self.identities[index]
        memory = Memory(me.peer_id, clock=time.time)
        peer = await stack.enter_async_context(
            Peer(memory, me, self.keyring, PeerOptions(reconnect_min=0.05), connect=[url])
        )
        doc = memory.doc(DOC)  # opened once the peer has its incarnation, before any edit is typed
        await peer.wait_connected(1, timeout=30)
        return peer, doc


# -- pycrdt-websocket --------------------------------------------------------------------------------


class WsChannel:
    """A ``websockets`` connection as a pycrdt ``Channel``, counting the bytes it receives."""

    def __init__(self, ws: Any, path: str) -> None:
        self._ws, self._path = ws, path
        self.received = 0

    @property
    def path(self) -> str:
        return self._path

    def __aiter__(self) -> WsChannel:
        return self

    async def __anext__(self) -> bytes:
        from websockets.exceptions import ConnectionClosed

        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration from None

    async def send(self, message: bytes) -> None:
        await self._ws.send(message)

    async def recv(self) -> bytes:
        data = await self._ws.recv()
        self.received += len(data)
        return data


class PycrdtSystem:
    """A pycrdt-websocket room server and ``Provider`` clients on loopback websockets."""

    name = "pycrdt"

    async def writer(self, stack: AsyncExitStack) -> tuple[pycrdt.Doc, str, Callable[[], int]]:
        from pycrdt.websocket import WebsocketServer
        from websockets.asyncio.server import serve

        server = await stack.enter_async_context(WebsocketServer())

        async def handler(ws: Any) -> None:
            await server.serve(WsChannel(ws, ws.request.path))

        ws_server = await stack.enter_async_context(serve(handler, "127.0.0.1", 0, compression=None, max_size=None))
        url = f"ws://127.0.0.1:{ws_server.sockets[0].getsockname()[1]}/{DOC}"
        doc, channel = await self._client(stack, url)
        return doc, url, lambda: 0

    async def reader(self, stack: AsyncExitStack, url: str, index: int) -> tuple[pycrdt.Doc, Callable[[], int]]:
        doc = pycrdt.Doc()
        doc.get(ROOT, type=pycrdt.Text)
        _, channel = await self._client(stack, url, doc)
        return doc, lambda: channel.received

    joiner = reader  # a Provider returns once synced (its sync step 2 applied)

    async def _client(self, stack: AsyncExitStack, url: str, doc: pycrdt.Doc | None = None) -> tuple[pycrdt.Doc, WsChannel]:
        from websockets.asyncio.client import connect

        doc = doc if doc is not None else pycrdt.Doc()
        ws = await stack.enter_async_context(connect(url, compression=None, proxy=None, max_size=None))
        channel = WsChannel(ws, DOC)
        provider = await stack.enter_async_context(pycrdt.Provider(doc, channel))
        with anyio.fail_after(30):
            await provider.synced.wait()
        return doc, channel


def _system(name: str, secrets: list[bytes]) -> Any:
    return CrdtmemSystem(secrets) if name == "crdtmem" else PycrdtSystem()


# -- scenarios -----------------------------------------------------------------------------------------


async def run_inproc(name: str, secrets: list[bytes], txns: list, end_text: str) -> dict[str, float]:
    """A and B in this process: the trace, then a late joiner C."""
    system = _system(name, secrets)
    clocks = insert_clocks(txns)
    final_clock = max(clocks)
    async with AsyncExitStack() as stack:
        doc_a, url, _ = await system.writer(stack)
        doc_b, received_b = await system.reader(stack, url, 1)
        arrivals = Arrivals(doc_b)
        stamps: list[float] = []
        before = received_b()
        await type_trace(doc_a, txns, stamps)
        done = await arrivals.wait_for(final_clock, end_text)
        elapsed = done - stamps[0]
        received = received_b() - before
        visible = arrivals.visible_ms(stamps, clocks)
        join_ms, join_bytes = await late_join(system, stack, url, end_text)
        ok = str(doc_a.get(ROOT, type=pycrdt.Text)) == end_text == str(doc_b.get(ROOT, type=pycrdt.Text))
    return {
        "inproc_edits_per_s": len(txns) / elapsed,
        "inproc_bytes_per_edit": received / len(txns),
        "inproc_visible_p50_ms": statistics.median(visible),
        "inproc_visible_p99_ms": _percentile(visible, 0.99),
        "late_join_ms": join_ms,
        "late_join_bytes": join_bytes,
        "final_text_ok": ok,
    }


async def late_join(system: Any, stack: AsyncExitStack, url: str, end_text: str) -> tuple[float, int]:
    """A fresh peer C connects to the writer: (ms until it is synced, bytes it received).

    Each system's joiner returns when its library says it is synced; its text must then be
    ``end_text``. (Observing the Doc instead would cost only crdtmem's joiner: yrs builds each
    observer an event as large as the whole state, and a pycrdt ``Provider`` has applied the
    state before the Doc could be observed.)
    """
    start = time.monotonic()
    async with AsyncExitStack() as inner:
        doc_c, received_c = await system.joiner(inner, url, 2)
        if str(doc_c.get(ROOT, type=pycrdt.Text)) != end_text:
            raise RuntimeError(f"{system.name}'s late joiner was synced without the whole text")
        elapsed = (time.monotonic() - start) * 1000
        return elapsed, received_c()


async def run_late_prefix(name: str, secrets: list[bytes], txns: list) -> dict[str, float]:
    """The writer types the first 20,000 edits alone (no one connected), then C joins."""
    prefix = txns[:LATE_PREFIX]
    end_text = typed_text(prefix)
    system = _system(name, secrets)
    async with AsyncExitStack() as stack:
        doc_a, url, _ = await system.writer(stack)
        await type_trace(doc_a, prefix)
        join_ms, join_bytes = await late_join(system, stack, url, end_text)
    return {"late20k_ms": join_ms, "late20k_bytes": join_bytes}


def reader_process(pipe: Any, name: str, secrets: list[bytes], url: str, trace: str, edits: int | None) -> None:
    """Peer B in its own process: reports arrival times and updates once it holds the final text."""

    async def main() -> None:
        txns, end_text = load_trace(trace, edits)
        final_clock = max(insert_clocks(txns))
        # B needs only the final clock and text: its loop must not walk the trace's millions of
        # objects (the collector's passes over them took ~120 ms) once A starts typing.
        del txns
        gc.collect()
        system = _system(name, secrets)
        async with AsyncExitStack() as stack:
            doc_b, received_b = await system.reader(stack, url, 1)
            arrivals = Arrivals(doc_b)
            before = received_b()
            cpu = time.process_time()
            pipe.send("ready")
            await arrivals.wait_for(final_clock, end_text)
            pipe.send({"times": arrivals.times, "updates": arrivals.updates, "received": received_b() - before,
                       "ok": str(doc_b.get(ROOT, type=pycrdt.Text)) == end_text, "cpu": time.process_time() - cpu})
            await anyio.to_thread.run_sync(pipe.recv)  # until the writer is done

    profiled(lambda: anyio.run(main), f"{name}-xproc-reader")


async def run_xproc(name: str, secrets: list[bytes], txns: list, end_text: str, trace: str, edits: int | None) -> dict[str, float]:
    """A here, B in a second process."""
    ctx = mp.get_context("spawn")
    system = _system(name, secrets)
    clocks = insert_clocks(txns)
    async with AsyncExitStack() as stack:
        doc_a, url, _ = await system.writer(stack)
        here, there = ctx.Pipe()
        reader = ctx.Process(target=reader_process, args=(there, name, secrets, url, trace, edits))
        reader.start()
        try:
            with anyio.fail_after(60):
                assert await anyio.to_thread.run_sync(here.recv) == "ready"
            stamps: list[float] = []
            cpu = time.process_time()
            await type_trace(doc_a, txns, stamps)
            with anyio.fail_after(TIMEOUT):
                report = await anyio.to_thread.run_sync(here.recv)
            cpu = time.process_time() - cpu
            here.send("stop")
        finally:
            await anyio.to_thread.run_sync(reader.join, 30)
            if reader.is_alive():
                reader.kill()
        ok = report["ok"] and str(doc_a.get(ROOT, type=pycrdt.Text)) == end_text
    arrivals = Arrivals.__new__(Arrivals)
    arrivals.times, arrivals.updates = report["times"], report["updates"]
    visible = arrivals.visible_ms(stamps, clocks)
    return {
        "xproc_edits_per_s": len(txns) / (report["times"][-1] - stamps[0]),
        "xproc_bytes_per_edit": report["received"] / len(txns),
        "xproc_visible_p50_ms": statistics.median(visible),
        "xproc_visible_p99_ms": _percentile(visible, 0.99),
        "xproc_writer_cpu_us_per_edit": cpu / len(txns) * 1e6,
        "xproc_reader_cpu_us_per_edit": report["cpu"] / len(txns) * 1e6,
        "final_text_ok_xproc": ok,
    }


# -- receiver cost without a network ---------------------------------------------------------------


def receive_cost(name: str, secrets: list[bytes], txns: list, window: int) -> dict[str, float]:
    """Microseconds per received update over the first and the last ``window`` edits."""
    head, middle, tail = txns[:window], txns[window:-window], txns[-window:]
    measure = _crdtmem_receive if name == "crdtmem" else _pycrdt_receive
    return {"receive_us_start": measure(secrets, [], head), "receive_us_end": measure(secrets, head + middle, tail)}


def _pycrdt_receive(secrets: list[bytes], bulk: list, timed: list) -> float:
    source, sink = pycrdt.Doc(), pycrdt.Doc()
    text = source.get(ROOT, type=pycrdt.Text)
    if bulk:
        with source.transaction():
            for patches in bulk:
                _type(text, patches)
        sink.apply_update(source.get_update())
    updates: list[bytes] = []
    source.observe(lambda event: updates.append(event.update))
    for patches in timed:
        with source.transaction():
            _type(text, patches)
    start = time.perf_counter()
    for update in updates:
        sink.apply_update(update)
    return (time.perf_counter() - start) / len(updates) * 1e6


def _crdtmem_receive(secrets: list[bytes], bulk: list, timed: list) -> float:
    """Two sans-I/O nodes, handshaken; A's frames for each edit, then B's receive of them timed."""
    from crdtmem import Memory
    from crdtmem.protocol.events import Send
    from crdtmem.protocol.node import Node

    identities, keyring = _crdtmem_team(secrets)
    nodes = [Node(Memory(i.peer_id), i, keyring, rng=random.Random(n)) for n, i in enumerate(identities[:2])]
    a, b = nodes
    now = 1.0
    a.open("ab", now, dialer=True)
    b.open("ba", now, dialer=False)

    def pump(timed_frames: list[bytes] | None = None) -> None:
        while True:
            moved = False
            for node, peer, conn in ((a, b, "ba"), (b, a, "ab")):
                for action in node.take_actions():
                    if isinstance(action, Send):
                        moved = True
                        if timed_frames is not None and node is a:
                            timed_frames.append(action.data)
                        else:
                            peer.receive(conn, action.data, now)
                node.take_events()
            if not moved:
                return

    pump()
    text = a.memory.doc(DOC).get(ROOT, type=pycrdt.Text)
    doc = a.memory.doc(DOC)
    if bulk:
        with doc.transaction():
            for patches in bulk:
                _type(text, patches)
        a.flush(now)
        pump()
    frames: list[bytes] = []
    for patches in timed:
        with doc.transaction():
            _type(text, patches)
        a.flush(now)
        pump(frames)
    start = time.perf_counter()
    for frame in frames:
        b.receive("ba", frame, now)
    elapsed = time.perf_counter() - start
    assert str(b.memory.doc(DOC).get(ROOT, type=pycrdt.Text)) == str(text), "receiver diverged"
    return elapsed / len(frames) * 1e6


# -- main ----------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", default=DEFAULT_TRACE)
    parser.add_argument("--edits", type=int, default=None, help="type only this many transactions")
    parser.add_argument("--quick", action="store_true", help="a 10,000-edit prefix, one rep")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--window", type=int, default=2000, help="edits timed for the receiver cost")
    parser.add_argument("--skip-xproc", action="store_true")
    parser.add_argument("--xproc-only", action="store_true",
                        help="only the two-process scenario (no in-process run, late joiners or receiver cost)")
    parser.add_argument("--late-only", action="store_true",
                        help="only the in-process run and the late joiners (no receiver cost, no two-process scenario)")
    parser.add_argument("--only", choices=["crdtmem", "pycrdt"], default=None)
    args = parser.parse_args()
    args.skip_xproc = args.skip_xproc or args.late_only
    if args.quick:
        args.edits, args.reps = args.edits or 10_000, 1
    txns, end_text = load_trace(args.trace, args.edits)

    from crdtmem import Identity

    systems = [args.only] if args.only else ["crdtmem", "pycrdt"]
    runs: dict[str, list[dict[str, float]]] = {s: [] for s in systems}
    for rep in range(args.reps):
        for name in systems if rep % 2 == 0 else systems[::-1]:  # alternate who goes first
            secrets = [Identity.generate().private_bytes() for _ in range(3)]
            result: dict[str, Any] = {}
            if not args.xproc_only:
                result.update(anyio.run(run_inproc, name, secrets, txns, end_text))
                result.update(anyio.run(run_late_prefix, name, secrets, txns))
            if not args.skip_xproc:
                result.update(profiled(lambda: anyio.run(run_xproc, name, secrets, txns, end_text, args.trace, args.edits),
                                       f"{name}-xproc-writer"))
            if not (args.xproc_only or args.late_only):
                result.update(receive_cost(name, secrets, txns, min(args.window, len(txns) // 4)))
            runs[name].append(result)
            print(f"# {name} rep {rep + 1}: {json.dumps({k: round(v, 3) for k, v in result.items()})}", file=sys.stderr)

    out: dict[str, Any] = {"edits": len(txns), "reps": args.reps}
    for name, results in runs.items():
        for key in results[0]:
            values = [r[key] for r in results]
            if isinstance(values[0], bool):
                out[f"{name}_{key}"] = all(values)
                continue
            out[f"{name}_{key}"] = round(statistics.median(values), 3)
            out[f"{name}_{key}_spread"] = round(max(values) - min(values), 3)
    if len(systems) == 2:
        for key, value in runs["crdtmem"][0].items():
            if not isinstance(value, bool) and f"pycrdt_{key}" in out and out[f"pycrdt_{key}"]:
                out[f"ratio_{key}"] = round(out[f"crdtmem_{key}"] / out[f"pycrdt_{key}"], 3)
    if any(not v for k, v in out.items() if "final_text_ok" in k):
        print(json.dumps(out, indent=2))
        raise SystemExit("a side's final text differs from endContent")
    out.update({"python": platform.python_version(), "cpus": os.cpu_count(), "loadavg": os.getloadavg()[0]})
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    sys.exit(main())
