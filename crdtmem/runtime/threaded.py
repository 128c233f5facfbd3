"""A sync facade: a :class:`~crdtmem.runtime.peer.Peer` on a background thread, for code
without an event loop (LangGraph nodes, CrewAI tools, scripts)::

    with crdtmem.open_peer(listen="ws://127.0.0.1:0", connect=[url], keyring=keyring,
                           identity=identity) as peer:
        peer.apply(SetAdd("facts", "water is wet"))      # or peer.call(lambda m: ..., )
        peer.wait_synced(timeout=5)
        print(peer.read(lambda memory: memory.values()))

The peer's event loop runs on a thread of its own (an anyio blocking portal). A memory is
not thread-safe and the peer reacts to each write on its loop thread, so every read and write
from other threads goes through :meth:`ThreadedPeer.call`, which runs it on that thread and
returns its result (and is a plain call when already on it).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from typing import Any, TypeVar

from anyio.from_thread import start_blocking_portal

from ..identity import Identity, Keyring
from ..memory import Memory
from .options import PeerOptions
from .peer import Peer

__all__ = ["ThreadedPeer", "open_peer"]

T = TypeVar("T")


class ThreadedPeer:
    """A running peer driven from any thread; made by :func:`open_peer`.

    Attributes:
        memory: the replica (touch it only inside :meth:`call` / :meth:`read` / :meth:`write`).
        peer: the underlying async :class:`Peer` (its methods belong to the loop thread).
    """

    def __init__(self, peer: Peer, portal: Any, stack: ExitStack) -> None:
        self.peer = peer
        self.memory: Memory = peer.memory
        self._portal = portal
        self._stack = stack
        self._loop_thread: int | None = portal.call(threading.get_ident)

    # -- running code on the loop thread ----------------------------------------------------

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the peer's loop thread and return its result (or raise its error).

        Call every read and write of :attr:`memory` through this (or :meth:`read`/:meth:`write`)
        when you are not on the loop thread; it is safe from any number of threads.
        """
        if threading.get_ident() == self._loop_thread:
            return fn(*args)
        return self._portal.call(_sync, fn, *args)

    def read(self, fn: Callable[[Memory], T]) -> T:
        """Return ``fn(memory)``, run on the loop thread (a consistent view)."""
        return self.call(fn, self.memory)

    def write(self, fn: Callable[[Memory], T]) -> T:
        """Run ``fn(memory)`` on the loop thread; the writes it makes are pushed at once."""
        return self.call(fn, self.memory)

    def apply(self, op: Any) -> None:
        """Apply one typed operation (:mod:`crdtmem.agent.ops`) to the memory."""
        from ..agent import apply

        self.call(apply, self.memory, op)

    # -- waiting (blocks the calling thread, not the loop) ----------------------------------

    def flush(self) -> None:
        """Sign, journal and push every pending write now (see :meth:`Peer.flush`)."""
        self._portal.call(self.peer.flush)

    def wait_synced(self, timeout: float = 10.0, *, peers: int = 1) -> None:
        """Block until ``peers`` peers (at least one by default; 0: none expected) are connected, and
        every connected peer holds our writes and we theirs (TimeoutError after ``timeout``)."""
        self._portal.call(lambda: self.peer.wait_synced(timeout, peers=peers))

    def wait_connected(self, peers: int = 1, timeout: float = 10.0) -> None:
        """Block until ``peers`` peers have finished their handshake with us."""
        self._portal.call(self.peer.wait_connected, peers, timeout)

    def wait_for(self, predicate: Callable[[Memory], bool], timeout: float = 10.0) -> None:
        """Block until ``predicate(memory)`` holds (checked on the loop thread after each event)."""
        self._portal.call(self.peer.wait_for, lambda: predicate(self.memory), timeout)

    # -- facts --------------------------------------------------------------------------------

    @property
    def url(self) -> str | None:
        """The address the peer listens on (set when ``listen`` was given)."""
        return self.peer.url

    @property
    def peer_id(self) -> str:
        return self.peer.peer_id

    def metrics(self) -> dict[str, Any]:
        """The peer's health snapshot (see :meth:`Peer.metrics`)."""
        return self.call(self.peer.metrics)

    def close(self) -> None:
        """Stop the peer (flushing and snapshotting as :class:`Peer` does) and its thread."""
        self._stack.close()

    def __enter__(self) -> ThreadedPeer:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


async def _sync(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)


def open_peer(
    identity: Identity | None = None,
    keyring: Keyring | None = None,
    options: PeerOptions | None = None,
    *,
    memory: Memory | None = None,
    listen: str | None = None,
    connect: Iterable[str] | None = None,
    store: str | os.PathLike[str] | None = None,
    **peer_kwargs: Any,
) -> ThreadedPeer:
    """Start a peer on a background thread; use the result as a context manager (or ``close()`` it).

    Args:
        identity: this peer's key (default: a fresh one, for tests and demos).
        keyring: who is trusted (default: only this identity).
        options: as for :class:`Peer` (addresses, backoff, limits, storage).
        memory: the replica (default: ``Memory(identity.peer_id, clock=time.time)``).
        listen, connect, store, peer_kwargs: as for :class:`Peer` (``config=``, ``rng=``).
    """
    identity = identity or Identity.generate()
    keyring = keyring if keyring is not None else Keyring()
    memory = memory if memory is not None else Memory(identity.peer_id, clock=time.time)
    stack = ExitStack()
    try:
        portal = stack.enter_context(start_blocking_portal(backend="asyncio"))
        # Built on the loop thread: the peer's events belong to that loop.
        peer = portal.call(_sync, lambda: Peer(memory, identity, keyring, options, listen=listen, connect=connect,
                                               store=store, **peer_kwargs))
        stack.enter_context(portal.wrap_async_context_manager(peer))
        return ThreadedPeer(peer, portal, stack)
    except BaseException:
        stack.close()
        raise
