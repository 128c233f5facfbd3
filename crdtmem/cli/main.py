"""The ``crdtmem`` command: ``keygen``, ``peer``, ``inspect``, ``demo``, ``simulate``.

Every subcommand has ``--help``; ``--log-level`` goes before or after it. ``crdtmem peer``
serves JSON-line commands on stdin (see :mod:`crdtmem.cli.serve`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys

from .. import __version__
from ..agent import to_jsonable
from . import demo, mcp, peer, simulate
from .jsonlines import print_json

__all__ = ["main", "build_parser"]


def cmd_keygen(args: argparse.Namespace) -> int:
    from ..identity import Identity
    from ..storage.keyfiles import save_identity

    identity = Identity.generate()
    try:
        save_identity(identity, args.path, overwrite=args.force)
    except FileExistsError:
        print(f"error: {args.path} exists; pass --force to replace it (its peer id would be lost)", file=sys.stderr)
        return 1
    # Only the key line goes to stdout, so `crdtmem keygen a.key >> team.keys` builds a keyring.
    print(f"peer id: {identity.peer_id}", file=sys.stderr)
    print("add this line to every peer's keyring (--trust file):", file=sys.stderr)
    comment = args.comment or os.path.basename(args.path)
    print(f"{identity.public_key_text} {comment}")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..identity import Keyring
    from ..protocol.membership import Membership
    from ..storage.keyfiles import load_keyring
    from ..storage.sqlite import SqliteStore, StoreError

    try:
        with SqliteStore(args.db, None, readonly=True) as store:
            restored = store.load()
            info = store.peer_info()
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    memory = restored.memory
    values = memory.values()
    try:
        founding = load_keyring(args.trust) if args.trust else Keyring()
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    members = Membership(founding, None, memory).members()
    if args.json:
        print_json({
            "peer_id": info.get("peer_id"),
            "batches_seen": restored.seen.size(),
            "journal_rows": restored.journal_rows,
            "values": to_jsonable(values),
            "types": {name: memory.type_of(name) for name in memory.names()},
            "members": [dataclasses.asdict(member) for member in members],
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
    roster = Table(title="members" + ("" if args.trust else " admitted at runtime (pass --trust for the founding list)"))
    for column in ("peer id", "key", "admin", "admitted by", "admitted at"):
        roster.add_column(column)
    for m in members:
        roster.add_row(m.peer_id, m.key, "yes" if m.admin else "", m.admitted_by or "keyring",
                       "" if m.admitted_at is None else f"{m.admitted_at:.3f}")
    Console().print(roster)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``crdtmem`` argument parser, every subcommand included."""
    parser = argparse.ArgumentParser(
        prog="crdtmem",
        description="Leaderless shared memory for AI agents: CRDTs gossiped over signed websockets.",
    )
    parser.add_argument("--version", action="version", version=f"crdtmem {__version__}")
    parser.add_argument("--log-level", default="WARNING", help="logging level (DEBUG, INFO, WARNING, ...)")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS, help="logging level (DEBUG, INFO, WARNING, ...)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("keygen", parents=[common], help="write a new Ed25519 key", description=(
        "Write a new private key (mode 0600) and print the public key line to add to every peer's "
        "keyring on stdout (its peer id on stderr): `crdtmem keygen a.key >> team.keys`."))
    p.add_argument("path", help="where to write the private key")
    p.add_argument("--force", action="store_true", help="replace an existing key file")
    p.add_argument("--comment", help="label for the keyring line (default: the file name)")
    p.set_defaults(func=cmd_keygen)

    peer.register(sub, common)
    mcp.register(sub, common)

    p = sub.add_parser("inspect", parents=[common], help="print a store's memory", description=(
        "Print the values and the members held in a peer's SQLite store, without running the peer."))
    p.add_argument("--db", required=True, help="the store file")
    p.add_argument("--trust", help="the keyring file (the founding members), to list them with the admitted ones")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_inspect)

    demo.register(sub, common)
    simulate.register(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """The console entry point: parse ``argv``, set up logging, run the subcommand."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("websockets").setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # The reader went away (``crdtmem demo | head``): stop quietly, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
