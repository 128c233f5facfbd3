"""Peer options: validated when built, shared by the CLI, folded with the keyword shortcuts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from crdtmem import Peer
from crdtmem.cli import build_parser
from crdtmem.cli.peer import peer_options
from crdtmem.runtime import LinkLimits, PeerOptions, StoreOptions

from ..inprocess import team


@pytest.mark.parametrize(
    ("build", "complaint"),
    [
        (lambda: LinkLimits(max_connections=0), "max_connections"),
        (lambda: LinkLimits(max_queue_bytes=0), "max_queue_bytes"),
        (lambda: LinkLimits(max_receive_messages_per_s=0), "max_receive_messages_per_s"),
        (lambda: LinkLimits(max_receive_bytes_per_s=-1.0), "max_receive_bytes_per_s"),
        (lambda: StoreOptions(compact_every=0), "compact_every"),
        (lambda: PeerOptions(reconnect_min=0), "reconnect_min"),
        (lambda: PeerOptions(reconnect_min=5.0, reconnect_max=1.0), "reconnect_min"),
        (lambda: PeerOptions(metrics_port=70000), "metrics_port"),
        (lambda: PeerOptions(conflict_window=-1.0), "conflict_window"),
    ],
)
def test_a_bad_value_is_refused_when_the_options_are_built(build, complaint) -> None:
    with pytest.raises(ValueError, match=complaint):
        build()


def test_connect_keeps_any_iterable_as_a_tuple_but_refuses_one_string() -> None:
    assert PeerOptions(connect=["ws://a:1", "ws://b:2"]).connect == ("ws://a:1", "ws://b:2")
    assert PeerOptions(connect=iter(["ws://a:1"])).connect == ("ws://a:1",)
    with pytest.raises(TypeError, match="list of addresses"):
        PeerOptions(connect="ws://a:1")


def test_options_are_frozen_and_derived_with_replace() -> None:
    options = PeerOptions(listen="ws://127.0.0.1:0")
    with pytest.raises(AttributeError):
        options.listen = "ws://0.0.0.0:1"  # type: ignore[misc]
    wider = replace(options, limits=replace(options.limits, max_connections=8))
    assert wider.limits.max_connections == 8 and options.limits.max_connections == 256


def test_the_cli_flags_default_to_the_option_defaults(tmp_path) -> None:
    args = build_parser().parse_args(["peer", "--key", "k", "--trust", "t"])
    assert peer_options(args) == PeerOptions()


def test_the_cli_flags_land_in_their_option_groups() -> None:
    args = build_parser().parse_args([
        "peer", "--key", "k", "--trust", "t", "--listen", "ws://0.0.0.0:9", "--connect", "ws://a:1",
        "--connect", "ws://b:2", "--db", "me.db", "--metrics-port", "0", "--reconnect-max", "3",
        "--max-connections", "7", "--max-receive-messages", "0",
    ])
    assert peer_options(args) == PeerOptions(
        listen="ws://0.0.0.0:9", connect=("ws://a:1", "ws://b:2"), reconnect_max=3.0, metrics_port=0,
        limits=LinkLimits(max_connections=7, max_receive_messages_per_s=None), store=StoreOptions(path="me.db"),
    )


@pytest.mark.anyio
async def test_keyword_shortcuts_replace_the_matching_option_fields(tmp_path) -> None:
    ids, keyring, (memory, _) = team(2)
    base = PeerOptions(listen="ws://127.0.0.1:0", connect=("ws://x:1",),
                       store=StoreOptions(fsync=True, compact_every=5), conflict_window=2.0)
    peer = Peer(memory, ids[0], keyring, base, listen="memory://me", connect=["memory://you"],
                store=tmp_path / "me.db")
    assert peer.options == replace(base, listen="memory://me", connect=("memory://you",),
                                   store=StoreOptions(path=tmp_path / "me.db", fsync=True, compact_every=5))
    assert Peer(memory, ids[0], keyring, base).options == base  # no shortcut: the options as given


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
