"""``GraphChanges``: tell MCP clients when the shared graph changed, whichever agent changed it.

A client subscribed to ``memory://knowledge-graph`` gets a resource-updated notification after
local tool calls *and* after writes that arrive from other replicas, so an agent can react to
what its teammates learn. Both protocol eras are served: ``resources/subscribe`` (up to
2025-11-25, what the reference server offers) and ``subscriptions/listen`` (2026-07-28).
Bursts of changes coalesce into one notification; there is no replay, so a client re-reads
the resource after each.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import mcp_types as types
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ResourceUpdated

__all__ = ["GraphChanges"]

log = logging.getLogger("crdtmem.mcp")


class GraphChanges:
    """Watches ``memory`` for changes to ``names`` and notifies subscribers of ``uri``.

    Pass :meth:`handlers` to the low-level ``Server`` and :meth:`lifespan` as its lifespan;
    :func:`.server.build_server` does both when given a graph.
    """

    def __init__(self, memory: Any, names: Iterable[str], uri: str) -> None:
        self._memory, self._names, self.uri = memory, frozenset(names), uri
        self._bus = InMemorySubscriptionBus()
        self._listen = ListenHandler(self._bus)
        self._sessions: dict[int, Any] = {}  # legacy resources/subscribe sessions
        self._dirty = anyio.Event()

    def handlers(self) -> dict[str, Any]:
        """The ``Server`` keyword arguments serving subscriptions in both protocol eras."""
        return {"on_subscribe_resource": self._subscribe, "on_unsubscribe_resource": self._unsubscribe,
                "on_subscriptions_listen": self._listen}

    @asynccontextmanager
    async def lifespan(self, server: Any) -> AsyncIterator[dict[str, Any]]:
        """Watch the memory while the server runs."""
        stop_watching = self._memory.on_change(self._on_change)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._notify_loop)
                try:
                    yield {}
                finally:
                    self._listen.close()
                    tg.cancel_scope.cancel()
        finally:
            stop_watching()

    def _on_change(self, name: str, origin: str) -> None:
        if name in self._names:
            self._dirty.set()

    async def _notify_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty = anyio.Event()
            await self._bus.publish(ResourceUpdated(uri=self.uri))
            for key, session in list(self._sessions.items()):
                try:
                    await session.send_resource_updated(self.uri)
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    self._sessions.pop(key, None)
                except Exception:  # noqa: BLE001 - one broken client must not stop the others' notices
                    log.exception("resource-updated notification failed; dropping the subscription")
                    self._sessions.pop(key, None)

    async def _subscribe(self, ctx: Any, params: types.SubscribeRequestParams) -> types.EmptyResult:
        if str(params.uri) == self.uri:
            self._sessions[id(ctx.session)] = ctx.session
        return types.EmptyResult()

    async def _unsubscribe(self, ctx: Any, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        if str(params.uri) == self.uri:
            self._sessions.pop(id(ctx.session), None)
        return types.EmptyResult()
