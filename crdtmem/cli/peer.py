"""``crdtmem peer``: run one peer until SIGINT/SIGTERM, serving JSON-line commands on stdin."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .jsonlines import print_json
from .nodeflags import add_node_arguments, node_config_from_args
from .serve import serve_stdin

__all__ = ["register", "cmd_peer", "add_peer_arguments", "peer_options", "run_with_peer_files"]


def cmd_peer(args: argparse.Namespace) -> int:
    """``crdtmem peer``: serve JSON-line commands on stdin until SIGINT/SIGTERM."""
    return run_with_peer_files(args, _run_peer)


def run_with_peer_files(args: argparse.Namespace, main: Callable[..., Awaitable[int]]) -> int:
    """Check the flags, load the key and keyring, then ``anyio.run(main, args, identity, keyring,
    options, config)`` with the :class:`~crdtmem.runtime.PeerOptions` and ``NodeConfig`` they describe.

    Every problem a user can fix (a bad address, an unreadable key file, a port in use, a
    corrupt store) ends in one ``error:`` line on stderr and exit status 2 or 3, not a traceback.
    """
    import anyio

    from ..storage.keyfiles import load_identity, load_keyring
    from ..storage.sqlite import StoreError
    from ..transports.nats import RelayError

    try:
        problem = _address_problem(args)
        if problem is not None:
            raise ValueError(problem)
        identity = _read(load_identity, args.key, "the key file", f"create one with: crdtmem keygen {args.key}")
        keyring = _read(load_keyring, args.trust, "the keyring",
                        "one `ed25519:...` line per trusted peer, as crdtmem keygen prints them")
        options, config = peer_options(args), node_config_from_args(args)
    except (OSError, ValueError) as exc:  # also a bad flag value, an unreadable TLS file
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return anyio.run(main, args, identity, keyring, options, config)
    except KeyboardInterrupt:
        return 130
    except BaseException as group:
        exc = _sole_cause(group)
        if isinstance(exc, StoreError):
            print(f"error: {exc}", file=sys.stderr)
            return 3
        if isinstance(exc, RelayError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if isinstance(exc, OSError) and args.listen:
            print(f"error: cannot listen on {args.listen}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        raise


def _read(load: Callable[[Any], Any], path: str, what: str, hint: str) -> Any:
    """``load(path)``; a file that cannot be read becomes one OSError line saying how to fix it."""
    try:
        return load(path)
    except OSError as exc:
        raise OSError(f"cannot read {what} {path}: {exc.strerror or exc} ({hint})") from None


def _address_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the ``--listen`` / ``--connect`` addresses, in one line (None: nothing)."""
    for flag, urls in (("--listen", [args.listen] if args.listen else []), ("--connect", args.connect or [])):
        for url in urls:
            scheme, sep, rest = url.partition("://")
            if not sep or scheme.lower() not in ("ws", "wss", "memory") or not rest:
                return f"{flag} {url!r} is not an address like ws://HOST:PORT (or wss://, memory://NAME)"
    if args.relay:
        from ..transports.nats import parse_relay_urls

        try:
            parse_relay_urls(args.relay)
        except ValueError as exc:
            return f"--relay: {exc}"
    return None


def _sole_cause(exc: BaseException) -> BaseException:
    """The one exception inside nested exception groups of one member each, else ``exc``."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def _run_peer(args: argparse.Namespace, identity: Any, keyring: Any, options: Any, config: Any) -> int:
    import signal

    import anyio

    from ..memory import Memory
    from ..runtime import Peer

    memory = Memory(identity.peer_id, clock=time.time)
    peer = Peer(memory, identity, keyring, options, config=config)
    async with peer:
        print_json({"ready": True, "peer_id": identity.peer_id, "replica_id": memory.replica_id, "url": peer.url,
                    "metrics": peer.metrics_url})
        async with anyio.create_task_group() as tg:

            async def on_signals() -> None:
                with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        logging.getLogger("crdtmem.cli").info("signal %s: shutting down", signum)
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(on_signals)
            if not args.no_stdin:
                tg.start_soon(serve_stdin, peer, memory, args.db is not None)
    print_json({"stopped": True, "peer_id": identity.peer_id})
    return 0


def peer_options(args: argparse.Namespace) -> Any:
    """The :class:`~crdtmem.runtime.PeerOptions` that ``crdtmem peer``'s flags describe."""
    from ..runtime import LinkLimits, PeerOptions, StoreOptions

    ssl_server = ssl_client = None
    if args.tls_cert:
        import ssl

        ssl_server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ssl_server.load_cert_chain(args.tls_cert, args.tls_key)
    if args.tls_ca:
        import ssl

        ssl_client = ssl.create_default_context(cafile=args.tls_ca)
    return PeerOptions(
        listen=args.listen,
        connect=tuple(args.connect or ()),
        relay=tuple(args.relay or ()),
        ssl=ssl_server,
        client_ssl=ssl_client,
        reconnect_max=args.reconnect_max,
        metrics_port=args.metrics_port,
        limits=LinkLimits(
            max_connections=args.max_connections,
            max_receive_messages_per_s=args.max_receive_messages or None,
        ),
        store=StoreOptions(path=args.db),
    )


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``crdtmem peer`` to the subcommands."""
    p = sub.add_parser("peer", parents=[common], help="run a peer until SIGINT/SIGTERM", description=(
        "Run a peer: listen, dial, gossip, persist. Reads JSON commands on stdin, one a line: writes "
        "such as {\"op\": \"set.add\", \"name\": \"facts\", \"value\": \"x\", \"id\": 1}, answered "
        "{\"durable\": 1} once committed to --db; {\"op\": \"values\"}; {\"op\": \"metrics\"}; "
        "{\"op\": \"sync\", \"peers\": N} (until N peers, 1 by default, are connected and in sync); "
        "{\"op\": \"wait\", \"contains\": {NAME: [ITEMS]}, \"equals\": "
        "{NAME: VALUE}} (answered once they hold); {\"op\": \"watch\", \"prefix\": P} (then one "
        "{\"changed\": NAME, ...} line per change). Admins (+admin in the keyring) change the membership "
        "at runtime: {\"op\": \"admit\", \"key\": \"ed25519:...\", \"admin\": false, \"id\": N} and "
        "{\"op\": \"revoke\", \"peer\": PEER_ID, \"id\": N}, answered {\"durable\": N} once committed; "
        "{\"op\": \"members\"} lists the members. Every command may carry an \"id\" its answer repeats; "
        "a bad command is answered {\"id\": N, \"error\": ...}. Stops cleanly on SIGINT/SIGTERM, "
        "flushing the store."))
    add_peer_arguments(p)
    p.add_argument("--no-stdin", action="store_true", help="do not read commands from standard input")
    p.set_defaults(func=cmd_peer)


def add_peer_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options that say how to run a peer (key, keyring, addresses, store, tunables)."""
    p.add_argument("--key", required=True, help="private key file (from crdtmem keygen)")
    p.add_argument("--trust", required=True, help="keyring file: one trusted public key line per peer")
    p.add_argument("--listen", help="address to accept peers on, e.g. ws://0.0.0.0:8765 (port 0: any)")
    p.add_argument("--connect", action="append", metavar="URL", help="a peer to dial (repeatable)")
    p.add_argument("--relay", action="append", metavar="URL",
                   help="a NATS JetStream relay, nats://HOST:PORT[/STREAM] (repeatable: servers of one cluster)")
    p.add_argument("--db", help="SQLite store to restore from and persist to")
    p.add_argument("--metrics-port", type=int, help="export Prometheus metrics on this port")
    p.add_argument("--tls-cert", help="certificate chain (PEM) for a wss:// listener")
    p.add_argument("--tls-key", help="private key (PEM) for --tls-cert")
    p.add_argument("--tls-ca", help="CA bundle (PEM) to verify wss:// peers we dial")
    p.add_argument("--reconnect-max", type=float, default=10.0, help="longest redial backoff, seconds")
    p.add_argument("--max-connections", type=int, default=256, help="refuse accepted connections beyond this many")
    p.add_argument("--max-receive-messages", type=float, default=2000.0,
                   help="per connection, messages read per second on average (0: unlimited)")
    add_node_arguments(p.add_argument_group("node (the protocol's tunables)"))
