"""The ``crdtmem`` command: ``keygen``, ``peer``, ``inspect``, ``demo`` (and ``simulate``).

Every subcommand has ``--help``. ``crdtmem peer`` also reads write commands from standard
input, one JSON object a line, and answers each on standard output::

    {"op": "counter.increment", "name": "tasks", "n": 1, "id": 7}   ->  {"durable": 7}

``durable`` is printed once the write is committed to ``--db`` (``applied`` without a store).
Other ops: ``pncounter.increment|decrement``, ``set.add|remove``, ``gset.add``,
``register.assign``, ``mvregister.assign``, ``map.put|remove``, ``text.append``, and the
queries ``values``, ``metrics``, ``sync`` (waits until in sync with every connected peer).
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["main", "build_parser", "to_jsonable", "apply_command", "SUBCOMMAND_MODULES"]

SUBCOMMAND_MODULES = ["crdtmem.simulation.cli"]
"""Modules that add subcommands: each may define ``register(subparsers)``, which adds its
parsers and sets ``func`` (called with the parsed args, returns the exit code) via
``set_defaults``. Imported lazily; a module that does not exist yet is skipped.
(``crdtmem simulate`` lives in ``crdtmem/simulation/cli.py``.)"""


# -- helpers --------------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """A CRDT value as plain JSON data: sets become sorted lists, bytes become base64."""
    if isinstance(value, (frozenset, set)):
        items = [to_jsonable(v) for v in value]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(value, dict):
        return {k if isinstance(k, str) else json.dumps(to_jsonable(k), sort_keys=True): to_jsonable(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def _freeze(value: Any) -> Any:
    """JSON lists become tuples so they can be set elements or map keys."""
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def apply_command(memory: Any, command: dict[str, Any]) -> None:
    """Apply one write command (see the module docstring) to ``memory``.

    Raises:
        ValueError: unknown op or missing field.
    """
    op, name = command.get("op"), command.get("name")
    if not isinstance(op, str) or not isinstance(name, str) or not name:
        raise ValueError("a command needs a string 'op' and a non-empty 'name'")
    kind, _, verb = op.partition(".")
    value = _freeze(command.get("value"))
    if kind == "counter" and verb == "increment":
        memory.counter(name).increment(int(command.get("n", 1)))
    elif kind == "pncounter" and verb in ("increment", "decrement"):
        getattr(memory.pncounter(name), verb)(int(command.get("n", 1)))
    elif kind == "set" and verb in ("add", "remove"):
        getattr(memory.set(name), verb)(value)
    elif kind == "gset" and verb == "add":
        memory.gset(name).add(value)
    elif kind in ("register", "mvregister") and verb == "assign":
        getattr(memory, kind)(name).assign(command.get("value"))
    elif kind == "map" and verb == "put":
        memory.map(name).put(_freeze(command["key"]), command.get("value"))
    elif kind == "map" and verb == "remove":
        memory.map(name).remove(_freeze(command["key"]))
    elif kind == "text" and verb == "append":
        import pycrdt

        doc = memory.doc(name)
        text = doc.get(command.get("root", "text"), type=pycrdt.Text)
        text += str(command.get("text", ""))
    else:
        raise ValueError(f"unknown op {op!r}")


# -- keygen ---------------------------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    from .identity import Identity

    identity = Identity.generate()
    try:
        identity.save(args.path, overwrite=args.force)
    except FileExistsError:
        print(f"error: {args.path} exists; pass --force to replace it (its peer id would be lost)", file=sys.stderr)
        return 1
    print(f"peer id: {identity.peer_id}")
    print("add this line to every peer's keyring (--trust file):")
    comment = args.comment or os.path.basename(args.path)
    print(f"{identity.public_key_text} {comment}")
    return 0


# -- peer -----------------------------------------------------------------------------------------


def cmd_peer(args: argparse.Namespace) -> int:
    import anyio

    from .identity import Identity, Keyring
    from .storage.sqlite import StoreError

    try:
        identity = Identity.load(args.key)
        keyring = Keyring.load(args.trust)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return anyio.run(_run_peer, args, identity, keyring)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


async def _run_peer(args: argparse.Namespace, identity: Any, keyring: Any) -> int:
    import signal

    import anyio

    from .memory import Memory
    from .peer import Peer
    from .protocol.node import NodeConfig

    config = NodeConfig(
        gossip_interval=args.gossip_interval,
        anti_entropy_interval=args.anti_entropy_interval,
    )
    ssl_server = ssl_client = None
    if args.tls_cert:
        import ssl

        ssl_server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_server.load_cert_chain(args.tls_cert, args.tls_key)
    if args.tls_ca:
        import ssl

        ssl_client = ssl.create_default_context(cafile=args.tls_ca)
    memory = Memory(identity.peer_id, clock=time.time)
    peer = Peer(
        memory, identity, keyring, listen=args.listen, connect=args.connect or [], store=args.db,
        config=config, metrics_port=args.metrics_port, ssl=ssl_server, client_ssl=ssl_client,
        reconnect_max=args.reconnect_max, max_connections=args.max_connections,
        max_receive_messages_per_s=args.max_receive_messages or None,
    )
    async with peer:
        _print_json({"ready": True, "peer_id": identity.peer_id, "url": peer.url, "metrics": peer.metrics_url})
        async with anyio.create_task_group() as tg:

            async def on_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        logging.getLogger("crdtmem.cli").info("signal %s: shutting down", signum)
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(on_signals)
            if not args.no_stdin:
                tg.start_soon(_serve_stdin, peer, memory, args.db is not None)
    _print_json({"stopped": True, "peer_id": identity.peer_id})
    return 0


def _stdin_lines() -> Any:
    """An anyio receive stream of stdin lines, fed by a daemon thread (so a blocked read never
    holds up shutdown); it ends at EOF."""
    import math
    import threading

    import anyio
    import anyio.from_thread
    import anyio.lowlevel

    send, receive = anyio.create_memory_object_stream(math.inf)
    token = anyio.lowlevel.current_token()

    def reader() -> None:
        # os.read, not sys.stdin: a daemon thread blocked inside a buffered reader's lock
        # aborts the interpreter at exit.
        pending = b""
        try:
            fd = sys.stdin.fileno()
            while chunk := os.read(fd, 65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    anyio.from_thread.run_sync(send.send_nowait, line, token=token)
            if pending:
                anyio.from_thread.run_sync(send.send_nowait, pending, token=token)
        except Exception:  # noqa: BLE001 - the loop is gone or stdin broke: stop reading
            pass
        try:
            anyio.from_thread.run_sync(send.close, token=token)
        except Exception:  # noqa: BLE001
            pass

    threading.Thread(target=reader, name="crdtmem-stdin", daemon=True).start()
    return receive


async def _serve_stdin(peer: Any, memory: Any, durable: bool) -> None:
    """Answer JSON-line commands: writes (answered ``{"durable": id}``), ``values``, ``metrics``,
    ``sync``, ``wait`` (until named values hold, answered ``{"id", "values"}``) and ``watch``
    (then print ``{"changed": name, "value", "at": monotonic seconds}`` for each change)."""
    import anyio

    unwatch: list[Any] = []
    async with anyio.create_task_group() as waits:
        async for line in _stdin_lines():  # at EOF: keep serving the network until a signal
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
                    _print_json({"id": ident, "values": to_jsonable(memory.values())})
                elif op == "metrics":
                    _print_json({"id": ident, "metrics": to_jsonable(peer.metrics())})
                elif op == "sync":
                    timeout, peers = float(command.get("timeout", 10)), int(command.get("peers", 0))
                    waits.start_soon(_answer, ident, peer.wait_synced(timeout=timeout, peers=peers), {"synced": True})
                elif op == "wait":
                    waits.start_soon(_answer, ident, _wait_values(peer, memory, command), None)
                elif op == "watch":
                    for stop in unwatch:
                        stop()
                    unwatch[:] = [memory.on_change(_watcher(memory, command.get("prefix", "")))]
                    _print_json({"id": ident, "watching": command.get("prefix", "")})
                else:
                    apply_command(memory, command)
                    await peer.flush()
                    _print_json({"durable" if durable else "applied": ident})
            except Exception as exc:  # noqa: BLE001 - report and go on with the next command
                _print_json({"id": ident, "error": f"{type(exc).__name__}: {exc}"})


async def _answer(ident: Any, waiting: Any, answer: dict | None) -> None:
    """Await one ``sync`` or ``wait`` while other commands go on; print its answer or error."""
    try:
        result = await waiting
        _print_json({"id": ident, **(answer if answer is not None else {"values": result})})
    except TimeoutError:
        _print_json({"id": ident, "error": "timeout"})
    except Exception as exc:  # noqa: BLE001
        _print_json({"id": ident, "error": f"{type(exc).__name__}: {exc}"})


async def _wait_values(peer: Any, memory: Any, command: dict) -> dict:
    """Wait until each ``equals`` name has that value and each ``contains`` name holds those
    items; return the plain values of all the names waited on."""
    equals, contains = command.get("equals", {}), command.get("contains", {})
    names = sorted({*equals, *contains})

    def reached() -> bool:
        for name, expected in equals.items():
            if to_jsonable(memory.value(name)) != expected:
                return False
        for name, items in contains.items():
            held = to_jsonable(memory.value(name)) or []
            if not set(items) <= set(held):
                return False
        return True

    await peer.wait_for(reached, timeout=float(command.get("timeout", 10)))
    return {name: to_jsonable(memory.value(name)) for name in names}


def _watcher(memory: Any, prefix: str) -> Any:
    def changed(name: str, origin: str) -> None:
        if name.startswith(prefix):
            _print_json({"changed": name, "value": to_jsonable(memory.value(name)), "at": time.monotonic()})

    return changed


# -- inspect --------------------------------------------------------------------------------------


def cmd_inspect(args: argparse.Namespace) -> int:
    from .storage.sqlite import SqliteStore, StoreError

    try:
        with SqliteStore(args.db, None, readonly=True) as store:
            restored = store.load()
            info = store.peer_info()
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    memory = restored.memory
    values = memory.values()
    if args.json:
        _print_json({
            "peer_id": info.get("peer_id"),
            "batches_seen": restored.seen.size(),
            "journal_rows": restored.journal_rows,
            "values": to_jsonable(values),
            "types": {name: memory.type_of(name) for name in memory.names()},
        })
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.db} — peer {info.get('peer_id')}, {restored.seen.size()} batches seen")
    table.add_column("name", style="bold")
    table.add_column("type")
    table.add_column("value")
    for name in memory.names():
        table.add_row(name, memory.type_of(name) or "?", json.dumps(to_jsonable(values[name]), sort_keys=True))
    Console().print(table)
    return 0


# -- demo -----------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(seed=args.seed, quiet=args.quiet)


# -- parser ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crdtmem",
        description="Leaderless shared memory for AI agents: CRDTs gossiped over signed websockets.",
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level (DEBUG, INFO, WARNING, ...)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("keygen", help="write a new Ed25519 key", description=(
        "Write a new private key (mode 0600) and print its peer id and the public key line to add "
        "to every peer's keyring."))
    p.add_argument("path", help="where to write the private key")
    p.add_argument("--force", action="store_true", help="replace an existing key file")
    p.add_argument("--comment", help="label for the keyring line (default: the file name)")
    p.set_defaults(func=cmd_keygen)

    p = sub.add_parser("peer", help="run a peer until SIGINT/SIGTERM", description=(
        "Run a peer: listen, dial, gossip, persist. Reads JSON commands on stdin, one a line: writes "
        "such as {\"op\": \"set.add\", \"name\": \"facts\", \"value\": \"x\", \"id\": 1}, answered "
        "{\"durable\": 1} once committed to --db; {\"op\": \"values\"}; {\"op\": \"metrics\"}; "
        "{\"op\": \"sync\", \"peers\": N}; {\"op\": \"wait\", \"contains\": {NAME: [ITEMS]}, \"equals\": "
        "{NAME: VALUE}} (answered once they hold); {\"op\": \"watch\", \"prefix\": P} (then one "
        "{\"changed\": NAME, ...} line per change). Stops cleanly on SIGINT/SIGTERM, flushing the store."))
    p.add_argument("--key", required=True, help="private key file (from crdtmem keygen)")
    p.add_argument("--trust", required=True, help="keyring file: one trusted public key line per peer")
    p.add_argument("--listen", help="address to accept peers on, e.g. ws://0.0.0.0:8765 (port 0: any)")
    p.add_argument("--connect", action="append", metavar="URL", help="a peer to dial (repeatable)")
    p.add_argument("--db", help="SQLite store to restore from and persist to")
    p.add_argument("--metrics-port", type=int, help="export Prometheus metrics on this port")
    p.add_argument("--tls-cert", help="certificate chain (PEM) for a wss:// listener")
    p.add_argument("--tls-key", help="private key (PEM) for --tls-cert")
    p.add_argument("--tls-ca", help="CA bundle (PEM) to verify wss:// peers we dial")
    p.add_argument("--gossip-interval", type=float, default=1.0, help="seconds between gossip rounds")
    p.add_argument("--anti-entropy-interval", type=float, default=30.0, help="seconds between Merkle repairs")
    p.add_argument("--reconnect-max", type=float, default=10.0, help="longest redial backoff, seconds")
    p.add_argument("--max-connections", type=int, default=256, help="refuse accepted connections beyond this many")
    p.add_argument("--max-receive-messages", type=float, default=2000.0,
                   help="per connection, messages read per second on average (0: unlimited)")
    p.add_argument("--no-stdin", action="store_true", help="do not read commands from standard input")
    p.set_defaults(func=cmd_peer)

    p = sub.add_parser("inspect", help="print a store's memory", description=(
        "Print the values held in a peer's SQLite store, without running the peer."))
    p.add_argument("--db", required=True, help="the store file")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("demo", help="three agents over websockets: partition, heal, repair", description=(
        "Three agents as peers over real websockets on loopback write concurrently to counters, a "
        "fact set, a register and shared notes; one is cut off, both sides keep writing, the link "
        "heals, Merkle repair runs, and each peer's converged memory is printed. Exits 0 only if "
        "all peers converged."))
    p.add_argument("--seed", type=int, default=None, help="seed the agents' choices")
    p.add_argument("--quiet", action="store_true", help="print only the verdict")
    p.set_defaults(func=cmd_demo)

    # -- subcommands from other modules (crdtmem simulate: crdtmem/simulation/cli.py) ------------
    for module_name in SUBCOMMAND_MODULES:
        register = _optional_register(module_name)
        if register is not None:
            register(sub)
    return parser


def _optional_register(module_name: str) -> Callable[[Any], None] | None:
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None  # not written yet
        raise
    return getattr(module, "register", None)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.getLogger().level))
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
