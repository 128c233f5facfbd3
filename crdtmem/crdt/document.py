"""Document: a real ``pycrdt.Doc`` (Yjs) whose updates travel as this library's deltas.

The live state is the Doc itself; a delta is one Yjs update (``Document.from_update``). Each
replica edits with a Yjs client id derived from its replica id, so a receiver can check that an
update only creates items in its signer's name.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Hashable, Iterable

import pycrdt

from .base import WHOLE

__all__ = ["Document", "Footprint", "merge_many", "update_footprint", "yjs_client_id"]


def yjs_client_id(replica: str) -> int:
    """The Yjs client id that ``replica`` edits with (53 bits, safe for JavaScript peers too)."""
    digest = hashlib.blake2b(replica.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & ((1 << 53) - 1)


def _read_varuint(data: bytes, pos: int) -> tuple[int, int]:
    try:
        byte = data[pos]
        if byte < 0x80:  # most lengths and small clocks: one byte
            return byte, pos + 1
        value, shift = byte & 0x7F, 7
        while shift <= 63:
            pos += 1
            byte = data[pos]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value, pos + 1
            shift += 7
    except IndexError:
        pass
    raise ValueError("truncated state vector")


def state_clients(state_vector: bytes) -> dict[int, int]:
    """Decode a Yjs state vector into {client id: clock}."""
    count, pos = _read_varuint(state_vector, 0)
    clients = {}
    for _ in range(count):
        client, pos = _read_varuint(state_vector, pos)
        clock, pos = _read_varuint(state_vector, pos)
        clients[client] = clock
    return clients


def _write_varuint(value: int, out: bytearray) -> None:
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)


def _delete_set(update: bytes) -> dict[int, list[tuple[int, int]]] | None:
    """{client: sorted merged (clock, length) ranges} of a Yjs v1 update with no structs.

    None if the update carries structs (its delete set cannot be found without decoding them).
    """
    groups, pos = _read_varuint(update, 0)
    if groups:
        return None
    count, pos = _read_varuint(update, pos)
    ranges: dict[int, list[tuple[int, int]]] = {}
    for _ in range(count):
        client, pos = _read_varuint(update, pos)
        n, pos = _read_varuint(update, pos)
        for _ in range(n):
            clock, pos = _read_varuint(update, pos)
            length, pos = _read_varuint(update, pos)
            if length:
                ranges.setdefault(client, []).append((clock, length))
    for client, items in ranges.items():
        merged: list[tuple[int, int]] = []
        for clock, length in sorted(items):
            if merged and clock <= merged[-1][0] + merged[-1][1]:
                start, previous = merged[-1]
                merged[-1] = (start, max(previous, clock + length - start))
            else:
                merged.append((clock, length))
        ranges[client] = merged
    return ranges


def _still_pending(rest: bytes, state_vector: bytes) -> bool:
    """True if ``rest`` (an update diffed against a Doc's state) holds anything the Doc lacks:
    a struct, or a deletion of an item the Doc has not received."""
    deletes = _delete_set(rest)
    return deletes is None or _deletes_past(deletes, state_clients(state_vector))


def _integrated(update: bytes, doc: pycrdt.Doc, state: bytes, *, whole: bool = False) -> bool:
    """True if ``doc``, whose state vector is ``state``, holds every item ``update`` inserts or
    deletes (read from its cached footprint; False when that cannot be read).

    With ``whole`` (the update is its author's whole state: see :meth:`Document.whole_state`),
    only its deletions are checked: its items refer to nothing but each other and the root
    types, so yrs integrates them all unless their author forged them (and then keeps the rest
    pending itself), and reading their ends would cost a pass over the whole update.
    """
    try:
        footprint = update_footprint(update)
        known = state_clients(state)
        if whole:
            return doc.get_update(state) == footprint.deletions or not _deletes_past(footprint.deletion_ranges, known)
        if any(clock > known.get(client, 0) for client, clock in footprint.ends.items()):
            return False
        # A Doc writes only the deletions it integrated: when its delete set is the update's
        # (a whole state joined into an empty Doc), no range needs decoding. Only for large
        # updates, as it reads the Doc's whole delete set.
        if len(update) > _LARGE_UPDATE_BYTES and doc.get_update(state) == footprint.delete_update:
            return True
        return not _deletes_past(footprint.deletes, known)
    except ValueError:
        return False


def _deletes_past(deletes: dict[int, list[tuple[int, int]]], known: dict[int, int]) -> bool:
    """Whether a delete set (sorted merged ranges per client) reaches past the ``known`` clocks."""
    return any(ranges[-1][0] + ranges[-1][1] > known.get(client, 0) for client, ranges in deletes.items() if ranges)


def _update_clients(update: bytes) -> set[int] | None:
    """The client of a single-group Yjs v1 update (empty if it only deletes); None if it has more."""
    try:
        groups, pos = _read_varuint(update, 0)
        if groups == 0:
            return set()
        if groups > 1:
            return None
        _structs, pos = _read_varuint(update, pos)
        client, _ = _read_varuint(update, pos)
    except ValueError:
        return None
    return {client}


def _group_start(update: bytes) -> tuple[int, int] | None:
    """(client, first clock) of a Yjs v1 update holding exactly one struct group; else None."""
    try:
        groups, pos = _read_varuint(update, 0)
        if groups != 1:
            return None
        _structs, pos = _read_varuint(update, pos)
        client, pos = _read_varuint(update, pos)
        clock, _ = _read_varuint(update, pos)
    except ValueError:
        return None
    return client, clock


def _encode_delete_set(deletes: dict[int, list[tuple[int, int]]]) -> bytes:
    """A Yjs v1 delete set, clients sorted (as :func:`_delete_set` reads it)."""
    out = bytearray()
    _write_varuint(len(deletes), out)
    for client, items in sorted(deletes.items()):
        _write_varuint(client, out)
        _write_varuint(len(items), out)
        for clock, length in items:
            _write_varuint(clock, out)
            _write_varuint(length, out)
    return bytes(out)


def _encode_state(clients: dict[int, int]) -> bytes:
    out = bytearray()
    _write_varuint(len(clients), out)
    for client, clock in sorted(clients.items()):
        _write_varuint(client, out)
        _write_varuint(clock, out)
    return bytes(out)


_MERGE_FAN_IN = 32
"""Updates merged by one call of :func:`merge_many`."""


def merge_many(updates: list[bytes]) -> bytes:
    """``pycrdt.merge_updates(*updates)``, merged in rounds of at most :data:`_MERGE_FAN_IN`.

    yrs merges k updates in time that grows faster than k: the 1,500 keystrokes a writer typed
    alone in 50 ms take about 9 ms at once and 1.4 ms merged 32 at a time. The bytes are the
    same (a merged update is canonical: its structs in client and clock order, one delete set).
    """
    while len(updates) > _MERGE_FAN_IN:
        updates = [
            pycrdt.merge_updates(*updates[i : i + _MERGE_FAN_IN]) if i + 1 < len(updates) else updates[i]
            for i in range(0, len(updates), _MERGE_FAN_IN)
        ]
    return pycrdt.merge_updates(*updates)


_CLOCK_LIMIT = (1 << 32) - 1
"""yrs counts clocks in 32 bits: a state vector giving a client this clock covers all its items."""

_LARGE_UPDATE_BYTES = 1 << 14
"""A received update larger than this (a state, not an edit) is joined without our observer on
the Doc and checked against the Doc's whole delete set: work of the document's size, worth it
only for an update of a size near it (:meth:`Document._apply_large`)."""

_CACHED_UPDATE_BYTES = 1 << 16
"""Footprints of updates up to this size are cached (the last 64): a received update is read by
its decoding, the causal check, the reach and :meth:`Document.join`; of larger ones (a
checkpoint's whole document), only the last one read, so they pin no more than one update's
bytes."""


class Footprint:
    """What a Yjs v1 update does, each part read by yrs when first asked for and then kept.

    Get one with :func:`update_footprint`; it may be shared with other callers: read it only.
    Every part raises ``ValueError`` if the update cannot be read.
    """

    __slots__ = ("update", "_ends", "_delete_update", "_deletions", "_deletes")

    def __init__(self, update: bytes) -> None:
        self.update = update
        self._ends: dict[int, int] | None = None
        self._delete_update: bytes | None = None
        self._deletions: bytes | None = None
        self._deletes: dict[int, list[tuple[int, int]]] | None = None

    @property
    def ends(self) -> dict[int, int]:
        """{client: clock after its last inserted item}; reading it checks the whole update.

        A struct group that does not start at clock 0 is first prefixed with a GC struct
        covering the clocks before it, so yrs counts the group's end from 0.
        """
        if self._ends is None:
            update = self.update
            groups, pos = _read_varuint(update, 0)
            probe = update
            if groups == 1:
                structs, pos = _read_varuint(update, pos)
                client, pos = _read_varuint(update, pos)
                clock, pos = _read_varuint(update, pos)
                if clock:
                    prefixed = bytearray()
                    for value in (1, structs + 1, client, 0):
                        _write_varuint(value, prefixed)
                    prefixed.append(0)  # a GC struct (info byte 0) of length ``clock``
                    _write_varuint(clock, prefixed)
                    probe = bytes(prefixed) + update[pos:]
            self._ends = state_clients(_yrs(pycrdt.get_state, probe))
        return self._ends

    @property
    def delete_update(self) -> bytes:
        """The update with its structs diffed away: a zero, then its delete set as yrs writes it
        (the bytes a Doc's ``get_update(its state)`` gives when it holds those deletions).

        Diffed by its :attr:`ends`, so it refuses structs past them (a group after a gap, as
        merging with held structs leaves): what tells whether a Doc integrated the update.
        """
        if self._delete_update is None:
            self._delete_update = self._diffed(self.ends)
        return self._delete_update

    @property
    def deletions(self) -> bytes:
        """:attr:`delete_update` read in one pass, without the :attr:`ends`, when the update
        holds one client's structs: diffed by every clock of that client, so it also drops a
        group past a gap, which only :attr:`delete_update` notices. The same delete set: what
        the checkpoint check and joining a whole state read (see ``Document.whole_state``)."""
        if self._delete_update is not None:
            return self._delete_update
        if self._deletions is None:
            group = _group_start(self.update)
            self._deletions = self._diffed({group[0]: _CLOCK_LIMIT}) if group is not None else self.delete_update
        return self._deletions

    def _diffed(self, covered: dict[int, int]) -> bytes:
        rest = _yrs(pycrdt.get_update, self.update, _encode_state(covered))
        if rest[:1] != b"\x00":  # structs survived the diff: a group yrs could not count from 0
            raise ValueError("cannot separate the update's structs from its delete set")
        return rest

    def check(self) -> None:
        """Read the whole update once, raising ``ValueError`` if it cannot be read: a large one
        of one client's structs (a checkpoint's whole state) as its :attr:`deletions`, all its
        readers need; any other as its :attr:`ends`, which every batch's readers need."""
        if len(self.update) > _LARGE_UPDATE_BYTES and _group_start(self.update) is not None:
            self.deletions
        else:
            self.ends

    @property
    def deletes(self) -> dict[int, list[tuple[int, int]]]:
        """{client: sorted merged (clock, length) ranges} of the items the update deletes."""
        if self._deletes is None:
            self._deletes = _delete_set(self.delete_update) or {}
        return self._deletes

    @property
    def deletion_ranges(self) -> dict[int, list[tuple[int, int]]]:
        """The ranges of :attr:`deletes`, decoded from the :attr:`deletions` (one pass)."""
        return self._deletes if self._deletes is not None else _delete_set(self.deletions) or {}

    def deletes_only(self, client: int) -> bool:
        """Whether the update deletes no item of a client other than ``client`` (read from the
        delete set's first entry when it names ``client`` alone, without decoding its ranges)."""
        data = self.deletions
        count, pos = _read_varuint(data, 1)
        if count == 0 or (count == 1 and _read_varuint(data, pos)[0] == client):
            return True
        return all(other == client for other in self.deletion_ranges)


def _yrs(read: Callable[..., bytes], *args: bytes) -> bytes:
    try:
        return read(*args)
    except Exception as exc:  # yrs raises its own errors on malformed updates
        raise ValueError(f"unreadable Yjs update: {exc}") from exc


_cached_footprint = functools.lru_cache(maxsize=64)(Footprint)
_last_large: list[Footprint] = []


def update_footprint(update: bytes) -> Footprint:
    """The :class:`Footprint` of a Yjs v1 update, cached (see :data:`_CACHED_UPDATE_BYTES`)."""
    if len(update) <= _CACHED_UPDATE_BYTES:
        return _cached_footprint(update)
    if _last_large and _last_large[0].update == update:
        return _last_large[0]
    footprint = Footprint(update)
    _last_large[:] = [footprint]
    return footprint


class Document:
    """A Yjs document as a CRDT. Either live (wraps a Doc) or a delta (holds one update)."""

    TAG = "document"
    __slots__ = ("doc", "_update", "_joined", "_source", "_on_local", "_remote", "_remote_changed", "_subscription",
                 "_held", "_whole")

    def __init__(self, doc: pycrdt.Doc | None = None) -> None:
        self.doc = doc if doc is not None else pycrdt.Doc()
        self._update: bytes | None = None
        self._joined: list[bytes] = []  # a delta's updates joined since it was last merged
        self._source: Document | None = None  # a local edit's delta: the live Document it came from
        self._held: bytes | None = None  # received structs the Doc has not integrated yet
        self._whole = False  # a delta that is its author's whole state (see whole_state)
        self._on_local: Callable[[Document], None] | None = None
        self._remote = False
        self._remote_changed = False
        self._subscription = None

    @classmethod
    def for_replica(cls, replica: str) -> Document:
        return cls(pycrdt.Doc(client_id=yjs_client_id(replica)))

    @classmethod
    def from_update(cls, update: bytes) -> Document:
        """A delta carrying one Yjs update (no Doc is built until it is joined into a state)."""
        delta = cls.__new__(cls)
        delta.doc, delta._update, delta._on_local, delta._remote, delta._subscription = None, update, None, False, None
        delta._held, delta._remote_changed, delta._joined, delta._source = None, False, [], None
        delta._whole = False
        return delta

    def whole_state(self) -> None:
        """Mark this delta as its author's whole state: one client's items from its first clock,
        referring to no one else's (a checkpoint's, once checked self-contained). Joining it
        reads its deletions only, not where its items end (see :func:`_integrated`); the
        joiner reads that from its Doc (:meth:`clock`)."""
        self._whole = True

    def clock(self, client: int) -> int:
        """A live Doc's clock for ``client``: past its last item held (0 if none)."""
        return state_clients(self.doc.get_state()).get(client, 0)

    @property
    def update(self) -> bytes | None:
        """A delta's Yjs update (None for a live Doc)."""
        if self._joined:  # merge a delta group's updates once, not one join at a time
            updates = [self._update, *self._joined]
            squashed = self._source._squash(updates) if self._source is not None else None
            self._update, self._joined = squashed or merge_many(updates), []
        return self._update

    def watch(self, on_local: Callable[[Document], None]) -> None:
        """Call ``on_local(delta)`` after every local transaction on the Doc (not remote joins)."""
        self._on_local = on_local
        self._observe()

    def _observe(self) -> None:
        if self._subscription is None:
            self._subscription = self.doc.observe(self._observed)

    def _observed(self, event: pycrdt.TransactionEvent) -> None:
        # yrs reports a transaction only when it changed the Doc.
        if self._remote:
            self._remote_changed = True
        elif self._on_local is not None:
            delta = Document.from_update(event.update)
            delta._source = self
            self._on_local(delta)

    def encoded(self) -> bytes:
        """The Yjs update that rebuilds this state (or the delta's update).

        A live Doc's own encoding depends on the order its edits arrived in (how its blocks
        were split and squashed); re-reading it into a fresh Doc gives the same bytes for the
        same content, which the canonical codec needs.
        """
        if self.doc is None:
            return self.update
        fresh = pycrdt.Doc()
        fresh.apply_update(self.doc.get_update())
        full = fresh.get_update()
        return full if self._held is None else pycrdt.merge_updates(full, self._held)

    def digest_source(self) -> bytes:
        """Canonical bytes for equality and Merkle digests: state vector and delete set."""
        if self.doc is None:
            merged = pycrdt.Doc()
            merged.apply_update(self.update)
            return Document(merged).digest_source()
        # yrs writes state vectors and delete sets in hash-map order, which depends on the order
        # clients were met: re-encode both sorted so equal states give equal bytes.
        state = self.doc.get_state()
        deletes = _delete_set(self.doc.get_update(state)) or {}
        return _encode_state(state_clients(state)) + _encode_delete_set(deletes)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Document) and self.digest_source() == other.digest_source()

    def __repr__(self) -> str:
        return f"Document({len(self.encoded())} update bytes)"

    def join(self, other: Document) -> set[Hashable]:
        if self.doc is None:  # joining two deltas: merge their updates
            self._joined.append(other.encoded())
            return {WHOLE}
        update = other.encoded()
        whole = other._whole and self._held is None
        if self._held is not None:
            update = pycrdt.merge_updates(self._held, update)
        changed = self._apply_large(update) if len(update) > _LARGE_UPDATE_BYTES else self._apply_observed(update)
        # yrs (pycrdt 0.14) can drop structs it parked as pending when updates arrive out of
        # order; keep whatever is still unintegrated and offer it again with the next update.
        state = self.doc.get_state()
        if _integrated(update, self.doc, state, whole=whole):
            self._held = None
        else:
            rest = pycrdt.get_update(update, state)
            self._held = rest if _still_pending(rest, state) else None
        return {WHOLE} if changed else set()

    def _apply_observed(self, update: bytes) -> bool:
        """Apply a remote update; whether it changed the Doc (yrs reports a transaction only then)."""
        self._observe()
        self._remote, self._remote_changed = True, False
        try:
            self.doc.apply_update(update)
        finally:
            self._remote = False
        return self._remote_changed

    def _apply_large(self, update: bytes) -> bool:
        """Apply a remote update of a state's size (a checkpoint's) with no observer of ours on
        the Doc: yrs builds each observer an event as large as the update (a third of the
        apply). Whether it changed the Doc is read from its state vector and delete set."""
        if self._subscription is not None:
            self.doc.unobserve(self._subscription)
            self._subscription = None
        before = self.doc.get_state()
        deleted = self.doc.get_update(before)
        try:
            self.doc.apply_update(update)
        finally:
            if self._on_local is not None:
                self._observe()
        after = self.doc.get_state()
        return after != before or self.doc.get_update(after) != deleted

    def _squash(self, updates: list[bytes]) -> bytes | None:
        """``updates`` (this live Doc's own edits since its last flush, in order) as one update
        re-encoded from the Doc, where a run of typing is one item instead of one per keystroke;
        None if it cannot be (the Doc holds later edits of ours, or they are not ours alone).

        The structs come from the Doc's update since the group's first clock (other clients'
        clocks all counted as seen), the delete set from merging only the updates that delete:
        most keystrokes only insert, and merging them all cost more than the rest.
        """
        client = self.doc.client_id
        inserting = [update for update in updates if update[0]]  # a leading 0: no struct group
        # yrs writes a delete set's ranges with lengths of at least 1: only an update that
        # deletes nothing ends in a zero byte (its empty delete set's count).
        deleting = [update for update in updates if update[-1]]
        if not inserting:
            return None
        first, last = _group_start(inserting[0]), _group_start(inserting[-1])
        try:
            end = update_footprint(inserting[-1]).ends.get(client)
            deletes = update_footprint(merge_many(deleting)).deletes if deleting else {}
        except ValueError:
            return None
        state = self.doc.get_state()
        clocks = state_clients(state)
        if first is None or last is None or {first[0], last[0]} != {client} or end != clocks.get(client):
            return None
        only_deletes = self.doc.get_update(state)  # no structs, then the Doc's whole delete set
        since = self.doc.get_update(_encode_state({**clocks, client: first[1]}))
        if not since.endswith(only_deletes[1:]):
            return None
        squashed = since[: len(since) - len(only_deletes) + 1] + _encode_delete_set(deletes)
        return squashed if _update_clients(squashed) == {client} else None

    def copy(self) -> Document:
        if self.doc is None:
            copied = Document.from_update(self.update)
            copied._source = self._source
            return copied
        clone = pycrdt.Doc()
        clone.apply_update(self.doc.get_update())
        copied = Document(clone)
        copied._held = self._held
        return copied

    def writers(self) -> set[str]:
        """Yjs client ids (as text) of the items a delta creates; a state lists every client."""
        source = self.doc.get_state() if self.doc is not None else pycrdt.get_state(self.update)
        return {str(client) for client in state_clients(source)}

    def only_writes_as(self, replica: str) -> bool:
        """True if this delta creates items under ``replica``'s client id only.

        A local transaction's update holds one struct group, the local client's; an update that
        holds several (a merge of many authors' updates) cannot be attributed and is refused.
        """
        if self.doc is not None:
            return False
        clients = _update_clients(self.update)
        return clients is not None and clients <= {yjs_client_id(replica)}

    def leaf_keys(self) -> Iterable[Hashable]:
        return (WHOLE,)

    def value(self) -> dict[str, object]:
        """A plain view of every root, for display (``crdtmem inspect``)."""
        update = self.encoded()
        shown: dict[str, object] = {}
        probe = pycrdt.Doc()
        probe.apply_update(update)
        for root in probe.keys():
            shown[root] = _root_value(update, root)
        return shown


def _root_value(update: bytes, root: str) -> object:
    # A root's Yjs type is not recorded in a way pycrdt exposes; read it as each type on a
    # scratch copy and keep the reading that finds content.
    for kind in (pycrdt.Text, pycrdt.Map, pycrdt.Array):
        scratch = pycrdt.Doc()
        scratch.apply_update(update)
        value = scratch.get(root, type=kind).to_py()
        if value:
            return value
    return None
