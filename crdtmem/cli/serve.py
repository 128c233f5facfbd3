"""The JSON-lines agent server behind ``crdtmem peer``: one command a line on stdin, answers on stdout.

Writes are answered ``{"durable": id}`` once committed to the store (``applied`` without one);
the queries are ``values``, ``metrics``, ``sync``, ``wait`` and ``watch``. Admins change the
membership with ``admit`` (``{"op": "admit", "key": "ed25519:...", "admin": false, "id": N}``,
answered ``{"durable": N, "peer_id": ...}``) and ``revoke`` (``{"op": "revoke", "peer": ID,
"id": N}``); ``members`` lists the current members.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

from ..agent import apply, json_key, parse_op, to_jsonable
from .jsonlines import StdoutFlusher, print_json, stdin_lines

__all__ = ["serve_stdin"]


async def serve_stdin(peer: Any, memory: Any, durable: bool) -> None:
    """Answer JSON-line commands: writes (answered ``{"durable": id}``), ``values``, ``metrics``,
    ``sync``, ``wait`` (until named values hold, answered ``{"id", "values"}``) and ``watch``
    (then print ``{"changed": name, "value", "at": monotonic seconds}`` for each change).

    Writes waiting on stdin together (the peer fell behind its writer) are applied, then
    flushed as one signed batch: each is answered once that batch is committed, in order. A
    peer that falls behind thus signs, sends and journals fewer, larger batches, and every
    receiver verifies fewer signatures, until it catches up.
    """
    import anyio

    unwatch: list[Any] = []
    lines = stdin_lines()
    writes = _PendingWrites(peer, durable)
    flusher = StdoutFlusher()
    async with anyio.create_task_group() as waits:
        waits.start_soon(flusher.run)
        async for line in lines:  # at EOF: keep serving the network until a signal
            for queued in [line, *_queued(lines, _MAX_COALESCED - 1)]:
                await _serve_line(queued, peer, memory, writes, waits, unwatch, flusher)
            await writes.flush()


_MAX_COALESCED = 1000
"""Most command lines served before their writes are flushed together."""


def _queued(lines: Any, limit: int) -> list[bytes]:
    """Up to ``limit`` lines already waiting on stdin (without waiting for more)."""
    import anyio

    out: list[bytes] = []
    while len(out) < limit:
        try:
            out.append(lines.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            break
    return out


class _PendingWrites:
    """Writes applied to the memory and not yet answered: flushed together, then answered."""

    def __init__(self, peer: Any, durable: bool) -> None:
        self._peer = peer
        self.answer_key = "durable" if durable else "applied"
        """How a committed write is answered: ``{"durable": id}`` with a store, else ``applied``."""
        self._pending: list[tuple[Any, str]] = []  # (command id, object name), in order

    def add(self, ident: Any, name: str) -> None:
        self._pending.append((ident, name))

    async def flush(self) -> None:
        """Sign, journal and push the pending writes (one batch); answer each, in order."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        from ..errors import UnencodableWriteError

        failed: tuple[str, ...] = ()
        try:
            await self._peer.flush()
        except UnencodableWriteError as exc:
            failed, reason = exc.names, f"{type(exc).__name__}: {exc}"
        for ident, name in pending:
            if name in failed:
                print_json({"id": ident, "error": reason})
            else:
                print_json({self.answer_key: ident})


async def _serve_line(line: bytes, peer: Any, memory: Any, writes: _PendingWrites, waits: Any,
                      unwatch: list[Any], flusher: StdoutFlusher) -> None:
    """Answer one command line; a write is applied and left to ``writes`` to flush and answer."""
    line = line.strip()
    if not line:
        return
    ident = None
    try:
        command = json.loads(line)
        if not isinstance(command, dict):
            raise ValueError("a command is a JSON object")
        ident = command.get("id")
        op = command.get("op")
        if op not in _QUERIES:
            operation = parse_op(command)
            apply(memory, operation)
            writes.add(ident, operation.name)
            return
        await writes.flush()  # answers keep the order of the commands
        if op == "values":
            print_json({"id": ident, "values": to_jsonable(memory.values())})
        elif op == "metrics":
            print_json({"id": ident, "metrics": to_jsonable(peer.metrics())})
        elif op == "sync":
            timeout, peers = float(command.get("timeout", 10)), int(command.get("peers", 1))
            waits.start_soon(_answer, ident, peer.wait_synced(timeout=timeout, peers=peers), {"synced": True})
        elif op == "wait":
            waits.start_soon(_answer, ident, _wait_values(peer, memory, command), None)
        elif op == "admit":
            peer_id = await peer.admit(command.get("key"), admin=bool(command.get("admin", False)))
            print_json({writes.answer_key: ident, "peer_id": peer_id})
        elif op == "revoke":
            await peer.revoke(command.get("peer"))
            print_json({writes.answer_key: ident})
        elif op == "members":
            print_json({"id": ident, "members": [dataclasses.asdict(m) for m in peer.members()]})
        elif op == "watch":
            for stop in unwatch:
                stop()
            unwatch[:] = [memory.on_change(_watcher(memory, command.get("prefix", ""), flusher))]
            print_json({"id": ident, "watching": command.get("prefix", "")})
    except Exception as exc:  # noqa: BLE001 - report and go on with the next command
        await writes.flush()  # the writes before it are answered first
        print_json({"id": ident, "error": f"{type(exc).__name__}: {exc}"})


_QUERIES = frozenset({"values", "metrics", "sync", "wait", "admit", "revoke", "members", "watch"})
"""The commands that are not writes (every other ``op`` is parsed as a write)."""


async def _answer(ident: Any, waiting: Any, answer: dict | None) -> None:
    """Await one ``sync`` or ``wait`` while other commands go on; print its answer or error."""
    try:
        result = await waiting
        print_json({"id": ident, **(answer if answer is not None else {"values": result})})
    except TimeoutError:
        print_json({"id": ident, "error": "timeout"})
    except Exception as exc:  # noqa: BLE001
        print_json({"id": ident, "error": f"{type(exc).__name__}: {exc}"})


async def _wait_values(peer: Any, memory: Any, command: dict) -> dict:
    """Wait until each ``equals`` name has that value and each ``contains`` name holds those
    items; return the plain values of all the names waited on."""
    equals, contains = command.get("equals", {}), command.get("contains", {})
    names = sorted({*equals, *contains})

    wanted = {name: {json_key(item) for item in items} for name, items in contains.items()}

    def reached() -> bool:
        for name, expected in equals.items():
            if to_jsonable(memory.value(name)) != expected:
                return False
        for name, items in wanted.items():
            # Compare canonical JSON text: held items may be lists (tuples in a set).
            held = {json_key(item) for item in to_jsonable(memory.value(name)) or []}
            if not items <= held:
                return False
        return True

    await peer.wait_for(reached, timeout=float(command.get("timeout", 10)))
    return {name: to_jsonable(memory.value(name)) for name in names}


def _watcher(memory: Any, prefix: str, flusher: StdoutFlusher) -> Any:
    def changed(name: str, origin: str) -> None:
        if name.startswith(prefix):
            # Stamped now, written out with the other changes of this turn of the event loop.
            print_json({"changed": name, "value": to_jsonable(memory.value(name)), "at": time.monotonic()},
                       flush=False)
            flusher.request()

    return changed
