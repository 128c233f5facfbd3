"""``CrdtStore``: a LangGraph ``BaseStore`` whose items are crdtmem records, replicated to every peer.

Install with ``pip install 'crdtmem[langgraph]'``::

    from langgraph.graph import StateGraph
    from crdtmem.integrations.langgraph import CrdtStore

    with crdtmem.open_peer(identity, keyring, listen="ws://0.0.0.0:8765") as peer:
        store = CrdtStore(peer)              # thread-safe: every call runs on the peer's loop
        graph = builder.compile(store=store)

``CrdtStore(memory)`` also works without a peer (one process, or from the peer's own loop).

It behaves like LangGraph's ``InMemoryStore`` (the reads of a batch see the state before its
writes; the last put of a key in a batch wins; the same filters, paging and ranking), with
these deliberate differences:

* **Merging.** A put writes only the fields it changes; concurrent puts on two replicas
  merge per top-level field. Concurrent writes of one field resolve to the later (hybrid
  timestamp, replica) value on every replica; ``CrdtStore.records.get(...).conflicts`` shows
  the siblings.
* ``created_at`` is kept when an item is overwritten (InMemoryStore resets it); times come
  from the writer's hybrid clock (millisecond resolution), and a refreshing read moves
  ``expires_at`` only, never ``updated_at``.
* An item's fields come back sorted by name (the same on every replica); ``Item.value`` is
  a fresh copy on every read (InMemoryStore hands out its stored dict).
* Values must be storable by crdtmem (JSON-like: str, int, float, bool, None, bytes, lists,
  tuples, dicts with str field names); anything else raises ``TypeError`` at put.
* ``list_namespaces`` lists only namespaces that hold items (InMemoryStore also lists
  namespaces whose items were deleted, or that were only read).
* Search without a query orders namespaces by their oldest item, then items by creation
  (within one namespace, that is InMemoryStore's insertion order).
* ``$gt``/``$gte``/``$lt``/``$lte`` on a missing or non-numeric field are false
  (InMemoryStore raises).
* TTL is supported (``supports_ttl``), in minutes as in LangGraph: an item expires ``ttl``
  minutes after its last write (or refreshing read); expired items are never returned
  (``omit_expired`` is always on) and :meth:`CrdtStore.sweep_ttl` removes them everywhere.
* Vectors for semantic search are local to each replica, computed lazily at the first search
  that needs them (not at put); which fields an item indexes replicates with the item.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

try:
    from langgraph.store.base import BaseStore
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("CrdtStore needs LangGraph: pip install 'crdtmem[langgraph]'") from exc
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    ensure_embeddings,
    get_text_at_path,
    tokenize_path,
)

from ..agent.records import Record, Records

try:  # newer LangGraph validates labels of ops passed straight to batch
    from langgraph.store.base import validate_op_namespace as _validate_op
except ImportError:  # pragma: no cover - older LangGraph
    def _validate_op(op: Op) -> None:
        return None

__all__ = ["CrdtStore"]


def _when(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _texts(value: Any, path: str) -> list[str]:
    return get_text_at_path(value, path if path == "$" else tokenize_path(path))


def _matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = condition.path
    if len(namespace) < len(path):
        return False
    pairs = zip(namespace, path) if condition.match_type == "prefix" else zip(reversed(namespace), reversed(path))
    if condition.match_type not in ("prefix", "suffix"):
        raise ValueError(f"Unsupported match type: {condition.match_type}")
    return all(p == "*" or n == p for n, p in pairs)


class CrdtStore(BaseStore):
    """A LangGraph store on a crdtmem memory (see the module docstring for its semantics).

    Args:
        target: a :class:`~crdtmem.memory.Memory`, or a running peer from
            :func:`crdtmem.open_peer` (then every call runs on the peer's loop thread, so the
            store may be used from any thread while the peer syncs).
        index: LangGraph's ``IndexConfig`` (``embed``, ``fields``; ``dims`` is not needed).
        ttl: LangGraph's ``TTLConfig`` (``default_ttl`` and ``sweep_interval_minutes`` in
            minutes, ``refresh_on_read``).
        agent: the agent label written with every put.
        clock: seconds since the epoch, for TTL visibility (default ``time.time``).
    """

    supports_ttl = True

    def __init__(
        self,
        target: Any,
        *,
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        agent: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if hasattr(target, "call") and hasattr(target, "memory"):
            self._call: Callable[..., Any] = target.call
            memory = target.memory
        else:
            lock = threading.RLock()

            def locked(fn: Callable[..., Any], *args: Any) -> Any:
                with lock:
                    return fn(*args)

            self._call = locked
            memory = target
        self.memory = memory
        self.index_config = dict(index) if index else None
        self.ttl_config = ttl
        embed = embed_query = None
        fields: list[str] = ["$"]
        if self.index_config:
            embeddings = ensure_embeddings(self.index_config.get("embed"))
            embed, embed_query = embeddings.embed_documents, embeddings.embed_query
            fields = list(self.index_config.get("fields") or ["$"])
        self.records = self._call(
            lambda: Records(memory, clock=clock, agent=agent, embed=embed, embed_query=embed_query,
                            index=fields, texts=_texts)
        )
        self._sweeper: threading.Thread | None = None
        self._stop_sweeping = threading.Event()

    # -- the batch --------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops``: reads see the state before the batch, then the puts apply (last per key wins)."""
        ops = list(ops)
        for op in ops:
            _validate_op(op)
        return self._call(self._run, ops)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """As :meth:`batch` (the work is in-memory; with a peer it runs on the peer's loop)."""
        return self.batch(ops)

    def _run(self, ops: list[Op]) -> list[Result]:
        results: list[Result] = []
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        refresh: list[tuple[tuple[str, ...], str]] = []
        for op in ops:
            if isinstance(op, GetOp):
                record = self.records.get(op.namespace, op.key)
                if record is not None and op.refresh_ttl and record.expires_at is not None:
                    refresh.append((op.namespace, op.key))
                results.append(None if record is None else self._item(record))
            elif isinstance(op, SearchOp):
                found = self.records.search(
                    op.namespace_prefix, filter=op.filter, limit=op.limit, offset=op.offset, query=op.query
                )
                if op.refresh_ttl:
                    refresh.extend((r.namespace, r.key) for r in found if r.expires_at is not None)
                results.append([self._search_item(r) for r in found])
            elif isinstance(op, ListNamespacesOp):
                results.append(self._namespaces(op))
            elif isinstance(op, PutOp):
                puts[(op.namespace, op.key)] = op
                results.append(None)
            else:
                raise ValueError(f"Unknown operation type: {type(op)}")
        for namespace, key in refresh:
            if (namespace, key) not in puts:
                self.records.touch(namespace, key)
        for (namespace, key), op in puts.items():
            if op.value is None:
                self.records.delete(namespace, key)
            else:
                ttl = None if op.ttl is None else op.ttl * 60
                self.records.put(namespace, key, dict(op.value), ttl=ttl, index=op.index)
        return results

    def _item(self, record: Record) -> Item:
        return Item(**_item_fields(record))

    def _search_item(self, record: Record) -> SearchItem:
        return SearchItem(**_item_fields(record), score=record.score)

    def _namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        namespaces = self.records.namespaces()
        if op.match_conditions:
            namespaces = [ns for ns in namespaces if all(_matches(c, ns) for c in op.match_conditions)]
        if op.max_depth is not None:
            namespaces = sorted({ns[: op.max_depth] for ns in namespaces})
        return namespaces[op.offset : op.offset + op.limit]

    # -- TTL --------------------------------------------------------------------------------

    def sweep_ttl(self) -> int:
        """Remove every expired item (and its history) on every replica; return how many."""
        return self._call(self.records.collect)

    def start_ttl_sweeper(self, sweep_interval_minutes: float | None = None) -> threading.Thread:
        """Sweep on a daemon thread every ``sweep_interval_minutes`` (default: the TTL config's, or 5)."""
        minutes = sweep_interval_minutes or (self.ttl_config or {}).get("sweep_interval_minutes") or 5
        if self._sweeper is not None and self._sweeper.is_alive():
            return self._sweeper
        self._stop_sweeping.clear()

        def loop() -> None:
            while not self._stop_sweeping.wait(minutes * 60):
                self.sweep_ttl()

        self._sweeper = threading.Thread(target=loop, name="crdtmem-ttl-sweeper", daemon=True)
        self._sweeper.start()
        return self._sweeper

    def stop_ttl_sweeper(self, timeout: float | None = None) -> bool:
        """Stop the sweeper thread; return whether it stopped within ``timeout``."""
        self._stop_sweeping.set()
        if self._sweeper is None:
            return True
        self._sweeper.join(timeout)
        return not self._sweeper.is_alive()


def _item_fields(record: Record) -> dict:
    """What an :class:`Item` and a :class:`SearchItem` share, read from a record."""
    return {
        "namespace": record.namespace,
        "key": record.key,
        "value": record.value,
        "created_at": _when(record.created_at),
        "updated_at": _when(record.updated_at),
    }
