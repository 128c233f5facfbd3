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
from .jsonlines import print_json, stdin_lines

__all__ = ["serve_stdin"]


async def serve_stdin(peer: Any, memory: Any, durable: bool) -> None:
    """Answer JSON-line commands: writes (answered ``{"durable": id}``), ``values``, ``metrics``,
    ``sync``, ``wait`` (until named values hold, answered ``{"id", "values"}``) and ``watch``
    (then print ``{"changed": name, "value", "at": monotonic seconds}`` for each change)."""
    import anyio

    unwatch: list[Any] = []
    async with anyio.create_task_group() as waits:
        async for line in stdin_lines():  # at EOF: keep serving the network until a signal
            line = line.strip()
            if not line:
                continue
            ident = None
            try:
                command = json.loads(line)
                if not isinstance(command, dict):
                    raise ValueError("a command is a JSON object")
                ident = command.get("id")
                op = command.get("op")
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
                    print_json({"durable" if durable else "applied": ident, "peer_id": peer_id})
                elif op == "revoke":
                    await peer.revoke(command.get("peer"))
                    print_json({"durable" if durable else "applied": ident})
                elif op == "members":
                    print_json({"id": ident, "members": [dataclasses.asdict(m) for m in peer.members()]})
                elif op == "watch":
                    for stop in unwatch:
                        stop()
                    unwatch[:] = [memory.on_change(_watcher(memory, command.get("prefix", "")))]
                    print_json({"id": ident, "watching": command.get("prefix", "")})
                else:
                    apply(memory, parse_op(command))
                    await peer.flush()
                    print_json({"durable" if durable else "applied": ident})
            except Exception as exc:  # noqa: BLE001 - report and go on with the next command
                print_json({"id": ident, "error": f"{type(exc).__name__}: {exc}"})


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


def _watcher(memory: Any, prefix: str) -> Any:
    def changed(name: str, origin: str) -> None:
        if name.startswith(prefix):
            print_json({"changed": name, "value": to_jsonable(memory.value(name)), "at": time.monotonic()})

    return changed
