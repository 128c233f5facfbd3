"""Records: JSON-like documents under a key in a namespace, merged per field, with history.

A namespace is a tuple of strings (as in LangGraph). Each namespace is one OR-Map of the
memory, named ``records:<namespace as JSON>``, whose entries are keyed by tuples:

=============================  ===================================================
entry key                      value
=============================  ===================================================
``(key, "f", field)``          the field's value
``(key, "u")``                 ``{"ttl", "agent", "index"}``, rewritten by every put
``(key, "c")``                 ``{"agent"}``, written when the record is created
``(key, "t")``                 None, rewritten by a read that refreshes the TTL
``(key, "h", replica, n)``     one history event: ``{"event", "old", "new", "agent"}``
=============================  ===================================================

So records replicate through the ordinary signed batches, with no protocol change, and every
fact about a record is derived from replicated data the same way on every replica:

* **Per-field merge.** A put writes only the fields it changes and removes the ones it drops.
  Concurrent puts of different fields both survive. Concurrent writes of one field keep both
  dots (the OR-Map's dot kernel keeps concurrent dots): the value read is the one with the
  highest (hybrid timestamp, replica) and :attr:`Record.conflicts` lists every sibling until a
  later write of that field resolves it.
* **Authorship** is the replica of an entry's dot, which the receiving peer checks against the
  batch signature; :attr:`Record.author` is the author of the latest put: the peer id of its
  key (whichever incarnation of the key wrote it).
* **Times** are the hybrid timestamps of the entries (milliseconds of the writer's clock):
  ``created_at`` of the ``c`` entry (kept on overwrite), ``updated_at`` of the ``u`` entry.
* **History** events are entries of their own, written in the same batch as the change they
  describe (so they are signed by its author); a delete keeps them, collection removes them.
* **TTL.** ``expires_at`` = the later of the ``u`` and ``t`` timestamps + ttl, all
  replicated; the reader's clock decides only whether the record is visible.
  :meth:`Records.collect` removes every entry of expired records (an ordinary observed-remove
  write: a concurrent put survives it), leaving nothing but the map's causal context.

The layout and the reading of entries live in :mod:`.layout`; the class below keeps the
derived, local indexes (record key → entries, assembled records, vectors) and writes.

Usage::

    records = Records(memory, agent="planner")
    records.put(("users", "ann"), "prefs", {"theme": "dark"}, ttl=3600)
    records.get(("users", "ann"), "prefs").value           # {"theme": "dark"}
    records.search(("users",), filter={"theme": {"$eq": "dark"}}, limit=10)
    records.history(("users", "ann"), "prefs")              # [Event(kind="added", ...)]
    records.collect()                                       # drop expired records everywhere

A delete concurrent with a put keeps what the put wrote (add wins), as for every OR-Map.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from typing import Any

from ..identity import key_id_of
from ..values import decode_value, encode_value
from .filters import check_filter, matches
from .layout import (
    CREATED,
    FIELD,
    HISTORY,
    META,
    PREFIX,
    TOUCHED,
    assemble,
    check_namespace,
    entry_dict,
    Event,
    handed_out,
    label_of,
    namespace_name,
    namespace_of,
    Record,
    seconds,
    Sibling,
    thaw,
)
from .vectors import Embed, TextsAt, VectorIndex, rank, texts_at

__all__ = ["Records", "Record", "Sibling", "Event", "PREFIX", "namespace_name", "namespace_of"]


class Records:
    """Records in a :class:`~crdtmem.memory.Memory`: put, get, delete, search, history, collect.

    Not thread-safe: use it from the thread that owns the memory (see
    :func:`crdtmem.open_peer` and the LangGraph store, which serialize calls).

    Args:
        memory: the replica.
        clock: seconds since the epoch, for TTL visibility (default: the memory's clock, which
            also stamps the writes; give the memory a real clock such as ``time.time``).
        agent: the agent label written with each put unless the put names another.
        embed: an embedding function, to enable ``search(query=...)``.
        embed_query: embeds a query (default: ``embed([query])[0]``).
        index: the default paths of a record's value to embed (``"$"``: the whole value).
        texts: reads the texts at a path (default :func:`~.vectors.texts_at`).
    """

    def __init__(
        self,
        memory: Any,
        *,
        clock: Callable[[], float] | None = None,
        agent: str | None = None,
        embed: Embed | None = None,
        embed_query: Callable[[str], Sequence[float]] | None = None,
        index: Sequence[str] = ("$",),
        texts: TextsAt = texts_at,
    ) -> None:
        self.memory = memory
        self._clock = clock or memory._clock
        self.agent = agent
        self._index_paths = list(index)
        self._vectors = VectorIndex(embed, texts) if embed is not None else None
        self._embed_query = embed_query or (lambda query: embed([query])[0] if embed else [])
        self._keys: dict[str, dict[str, set[bytes]]] = {}  # name → record key → entry keys
        self._decoded: dict[str, dict[bytes, tuple]] = {}  # name → entry key → its decoded tuple
        self._stale: set[str] = set()
        self._cache: dict[str, dict[str, Record | None]] = {}  # name → key → assembled record
        self._writing = False
        self._key_bytes: dict[tuple, bytes] = {}
        self._ordered: dict[str, list[Record]] = {}  # name → its records in creation order  # entry key → its encoding (a bounded cache)
        memory.on_change(self._on_change)

    def _on_change(self, name: str, origin: str) -> None:
        if not self._writing and name.startswith(PREFIX):
            self._stale.add(name)

    # -- reading the raw entries ------------------------------------------------------------

    def _index(self, name: str) -> dict[str, set[bytes]]:
        """Record key → entry keys of the namespace map ``name`` (derived, rebuilt when stale)."""
        keys = self._keys.get(name)
        if keys is not None and name not in self._stale:
            return keys
        self._stale.discard(name)
        self._cache.pop(name, None)
        self._ordered.pop(name, None)
        keys = self._keys[name] = {}
        known = self._decoded.get(name, {})
        decoded = self._decoded[name] = {}  # only live entries: removed ones are forgotten
        state = self.memory.state(name)
        if state is not None:
            for encoded in state.kernel.entries:
                parts = known.get(encoded) or self._decode(encoded)
                if parts is not None:
                    decoded[encoded] = parts
                    keys.setdefault(parts[0], set()).add(encoded)
        return keys

    @staticmethod
    def _decode(encoded: bytes) -> tuple | None:
        try:
            parts = decode_value(encoded)
        except Exception:  # noqa: BLE001 - an entry written by something else: ignore it
            return None
        if not (isinstance(parts, tuple) and len(parts) >= 2 and isinstance(parts[0], str)):
            return None
        return parts

    def _entries(self, name: str, key: str) -> dict[tuple, list[tuple[int, str, bytes]]]:
        """Each entry of record ``key``: decoded entry key → its (stamp, replica, payload) dots."""
        state = self.memory.state(name)
        out: dict[tuple, list[tuple[int, str, bytes]]] = {}
        if state is None:
            return out
        entries = state.kernel.entries
        index = self._index(name)
        decoded = self._decoded[name]
        for encoded in index.get(key, ()):
            dots = entries.get(encoded)
            if dots:
                out[decoded[encoded]] = sorted(dots.values(), reverse=True)
        return out

    def _record(self, name: str, namespace: tuple[str, ...], key: str) -> Record | None:
        """The record ``key`` as replicated (expired or not), assembled once per change."""
        self._index(name)  # drops the cache of a namespace changed by another replica
        cache = self._cache.setdefault(name, {})
        if key in cache:
            return cache[key]
        record = cache[key] = assemble(namespace, key, self._entries(name, key))
        return record

    def _visible(self, record: Record | None, now: float) -> bool:
        return record is not None and (record.expires_at is None or now < record.expires_at)

    # -- writing ----------------------------------------------------------------------------

    def _bytes_of(self, parts: tuple) -> bytes:
        encoded = self._key_bytes.get(parts)
        if encoded is None:
            if len(self._key_bytes) >= 1 << 16:
                self._key_bytes.clear()
            encoded = self._key_bytes[parts] = encode_value(parts)
        return encoded

    def _write(self, name: str, puts: list[tuple[tuple, Any]], removes: list[tuple]) -> None:
        handle = self.memory.map(name)
        keys = self._index(name)
        decoded = self._decoded[name]
        self._writing = True
        try:
            for parts in removes:
                handle.remove(parts)
                encoded = self._bytes_of(parts)
                keys.get(parts[0], set()).discard(encoded)
                decoded.pop(encoded, None)
            for parts, value in puts:
                handle.put(parts, value)
                encoded = self._bytes_of(parts)
                decoded[encoded] = parts
                keys.setdefault(parts[0], set()).add(encoded)
        finally:
            self._writing = False
        self._ordered.pop(name, None)
        cache = self._cache.get(name, {})
        for key in {parts[0] for parts, _ in puts} | {parts[0] for parts in removes}:
            cache.pop(key, None)
            if not keys.get(key):
                keys.pop(key, None)

    def _history_key(self, name: str, key: str) -> tuple:
        state = self.memory.state(name)
        replica = self.memory.replica_id
        n = (state.kernel.ctx.vv.get(replica, 0) if state is not None else 0) + 1
        return (key, HISTORY, replica, n)

    def put(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: dict[str, Any],
        *,
        ttl: float | None = None,
        agent: str | None = None,
        index: Sequence[str] | bool | None = None,
    ) -> None:
        """Write the document ``value`` as record ``key`` of ``namespace`` (replacing it).

        Only changed fields are written and dropped fields removed, so a concurrent put of other
        fields on another replica survives. Call :meth:`delete` to remove a record.

        Args:
            ttl: seconds until the record expires (None: never); counted from this write.
            agent: the agent label for this write (default: the one given to :class:`Records`).
            index: paths to embed for semantic search (None: the default ones; False: none).

        Raises:
            ValueError: a bad namespace or key, or a field name that is not a string.
            TypeError: a value crdtmem cannot store.
        """
        check_namespace(namespace)
        if not isinstance(key, str):
            raise ValueError(f"a record key is a str, got {type(key).__name__}")
        if not isinstance(value, dict) or not all(isinstance(f, str) for f in value):
            raise ValueError("a record value is a dict with str keys")
        if ttl is not None and not ttl > 0:
            raise ValueError(f"ttl must be positive seconds or None, got {ttl!r}")
        encoded = {f: encode_value(v, hashable=False) for f, v in value.items()}  # refuse before writing
        name = namespace_name(namespace)
        agent = agent if agent is not None else self.agent
        entries = self._entries(name, key)
        current = assemble(namespace, key, entries)
        visible = self._visible(current, self._clock())
        puts: list[tuple[tuple, Any]] = []
        removes = []
        for parts, dots in entries.items():
            if parts[1] == FIELD and len(parts) == 3:
                field_name = parts[2]
                if field_name not in value:
                    removes.append(parts)
                elif len(dots) > 1 or dots[0][2] != encoded[field_name]:
                    puts.append((parts, value[field_name]))
        for field_name, v in value.items():
            if (key, FIELD, field_name) not in entries:
                puts.append(((key, FIELD, field_name), v))
        if not visible:
            puts.append(((key, CREATED), {"agent": agent}))
        index_paths = list(index) if isinstance(index, (list, tuple)) else (False if index is False else None)
        puts.append(((key, META), {"ttl": ttl, "agent": agent, "index": index_paths}))
        event = {"event": "updated" if visible else "added", "old": current.value if visible else None, "new": value, "agent": agent}
        puts.append((self._history_key(name, key), event))
        self._write(name, puts, removes)

    def delete(self, namespace: tuple[str, ...], key: str) -> bool:
        """Remove record ``key`` (its history stays; see :meth:`collect`); return whether it existed.

        Only what this replica has seen is removed: fields a concurrent put wrote survive.
        """
        name = namespace_name(check_namespace(namespace))
        entries = self._entries(name, key)
        current = assemble(namespace, key, entries)
        if current is None:
            return False
        removes = [parts for parts in entries if parts[1] != HISTORY]
        agent = self.agent
        event = {"event": "deleted", "old": current.value, "new": None, "agent": agent}
        self._write(name, [(self._history_key(name, key), event)], removes)
        if self._vectors is not None:
            self._vectors.forget(namespace, key)
        return True

    def touch(self, namespace: tuple[str, ...], key: str) -> bool:
        """Restart the TTL of a visible record that has one (a read that refreshes); return whether it did."""
        name = namespace_name(check_namespace(namespace))
        current = self._record(name, namespace, key)
        if not self._visible(current, self._clock()) or current.expires_at is None:
            return False
        self._write(name, [((key, TOUCHED), None)], ())
        return True

    # -- reading ----------------------------------------------------------------------------

    def get(self, namespace: tuple[str, ...], key: str, *, refresh_ttl: bool = False) -> Record | None:
        """The record ``key`` of ``namespace``, or None if absent or expired.

        Args:
            refresh_ttl: restart its TTL (a write that replicates) if it has one.
        """
        name = namespace_name(check_namespace(namespace))
        record = self._record(name, namespace, key)
        if not self._visible(record, self._clock()):
            return None
        if refresh_ttl and record.expires_at is not None:
            self.touch(namespace, key)
            record = self._record(name, namespace, key)
        return handed_out(record)

    def namespaces(self) -> list[tuple[str, ...]]:
        """Every namespace holding at least one visible record, sorted."""
        now = self._clock()
        found = []
        for name in self._names():
            namespace = namespace_of(name)
            if namespace is not None and any(self._visible(r, now) for r in self._records(name, namespace)):
                found.append(namespace)
        return sorted(found)

    def _names(self) -> list[str]:
        return [name for name in self.memory.names() if name.startswith(PREFIX)]

    def _records(self, name: str, namespace: tuple[str, ...]) -> list[Record]:
        """Every record of one namespace (expired too), in creation order; cached until it changes."""
        self._index(name)  # drops the caches of a namespace changed by another replica
        ordered = self._ordered.get(name)
        if ordered is None:
            found = (self._record(name, namespace, key) for key in list(self._index(name)))
            ordered = self._ordered[name] = sorted((r for r in found if r is not None), key=lambda r: (r.created, r.key))
        return ordered

    def all(self, prefix: tuple[str, ...] = (), *, expired: bool = False) -> list[Record]:
        """Every record under the namespace ``prefix``, in a stable order.

        The order: namespaces by their oldest record, then records by creation (hybrid
        timestamp, then replica); on one replica that is insertion order.

        Args:
            expired: include records that have expired but are not collected yet.
        """
        return [handed_out(record) for record in self._all(prefix, expired)]

    def _all(self, prefix: tuple[str, ...], expired: bool) -> list[Record]:
        now = self._clock()
        groups = []
        n = len(prefix)
        for name in self._names():
            namespace = namespace_of(name)
            if namespace is None or namespace[:n] != prefix:
                continue
            found = [r for r in self._records(name, namespace) if expired or self._visible(r, now)]
            if found:
                groups.append((found[0].created, namespace, found))
        groups.sort(key=lambda g: (g[0], g[1]))
        return [record for _, _, found in groups for record in found]

    def search(
        self,
        prefix: tuple[str, ...] = (),
        *,
        filter: dict[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
        query: str | None = None,
    ) -> list[Record]:
        """Records under the namespace ``prefix`` matching ``filter``, paged by ``offset``/``limit``.

        Args:
            filter: field conditions (exact values or ``$eq $ne $gt $gte $lt $lte``), see
                :mod:`~crdtmem.agent.filters`.
            query: rank by semantic similarity (needs ``embed``); records get a ``score``.

        Without a query, records come in :meth:`all`'s order.
        """
        check_filter(filter)
        found = [r for r in self._all(prefix, False) if matches(r.value, filter)]
        if not (query and self._vectors is not None):
            return [handed_out(r) for r in found[offset : offset + limit]] if limit >= 0 else []
        vectors = self._vectors.vectors_for([(r.namespace, r.key, r.value, self._paths(r), self._version(r)) for r in found])
        ranked = rank(list(zip(found, vectors)), self._embed_query(query), offset, limit)
        return [replace(r, value=thaw(r.value), score=score) for r, score in ranked]

    def _paths(self, record: Record) -> list[str]:
        name = namespace_name(record.namespace)
        info = entry_dict(self._entries(name, record.key)[(record.key, META)][0][2])
        paths = info.get("index")
        if paths is False:
            return []
        return list(paths) if paths else self._index_paths

    def _version(self, record: Record) -> Hashable:
        return (encode_value(record.value, hashable=False), tuple(self._paths(record)))

    def history(self, namespace: tuple[str, ...], key: str) -> list[Event]:
        """Every event of record ``key`` this replica holds, oldest first (ordered by time, author)."""
        name = namespace_name(check_namespace(namespace))
        events = []
        for parts, dots in self._entries(name, key).items():
            if parts[1] != HISTORY:
                continue
            stamp, author, payload = dots[0]
            data = entry_dict(payload)
            event = Event(namespace, key, data.get("event"), key_id_of(author), seconds(stamp), data.get("old"), data.get("new"),
                          label_of(data.get("agent")))
            events.append(((stamp, author, repr(parts[2:])), event))
        events.sort(key=lambda pair: pair[0])
        return [event for _, event in events]

    # -- expiry -----------------------------------------------------------------------------

    def expired(self, now: float | None = None) -> list[Record]:
        """Records that have expired by ``now`` (default: the clock) and are not collected yet."""
        now = self._clock() if now is None else now
        return [r for r in self.all(expired=True) if r.expires_at is not None and now >= r.expires_at]

    def collect(self, now: float | None = None) -> int:
        """Remove every entry (history too) of the records expired by ``now``; return how many.

        Call it periodically (the LangGraph store's TTL sweeper does). Any replica may collect:
        the removal is an ordinary observed-remove write, so a put concurrent with it survives
        and two replicas collecting the same record agree.
        """
        gone = self.expired(now)
        for record in gone:
            name = namespace_name(record.namespace)
            self._write(name, [], list(self._entries(name, record.key)))
            if self._vectors is not None:
                self._vectors.forget(record.namespace, record.key)
        self._collect_orphans()
        return len(gone)

    def _collect_orphans(self) -> None:
        """Remove what a refresh or field write concurrent with a delete left of a deleted record
        (entries without the record's ``u`` entry; its history is kept, as after any delete)."""
        for name in self._names():
            for key in list(self._index(name)):
                entries = self._entries(name, key)
                if (key, META) not in entries:
                    orphans = [parts for parts in entries if parts[1] != HISTORY]
                    if orphans:
                        self._write(name, [], orphans)
