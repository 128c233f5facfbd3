"""Anti-entropy: a sans-I/O Merkle reconciliation session between two replicas.

Like the websockets sans-I/O protocol, a :class:`Reconciler` does no I/O: the initiator calls
:meth:`Reconciler.start`, each side feeds the other's messages to :meth:`Reconciler.receive`
and sends back what it returns, until :attr:`Reconciler.done`. Messages are plain lists (first
element a kind string) for the caller to pack, sign and frame.

The session, in flights (one-way messages)::

    A: ae.begin   salt, widths, root fingerprint, the root's child fingerprints (or leaf list)
    B: ae.step    one bit per fingerprint/listed leaf received + its own expansions below
    A: ae.step    ... one trie level further per flight, the sides alternating ...
    X: ae.repair  the last answers (no expansion left) + X's rows
    Y: ae.reply   Y's rows (what X lacks, "you are stale" marks), Y's root fingerprint,
                  whether X must answer once more
    X: ae.final   only if asked: X's rows for what Y sent, X's root fingerprint
    (B: ae.equal  instead of everything after ae.begin, when the roots already match)

Descent: a differing node is expanded by the side that received its fingerprint: as
``fanout`` child fingerprints, or, where that side holds few leaves, as a leaf list of (salted
id, salted digest) pairs. The other side answers each fingerprint and each listed leaf with one
bit, so each flight descends one level; leaf lists end the descent, and ids tell a side with
certainty that the peer holds no leaf of that id. Fingerprints are salted and truncated; a
collision can only hide a difference, never invent one, and the root fingerprint at the end
tells one side whether the session converged (:attr:`Reconciler.converged`). Pass a fresh
``salt`` to every session and a missed leaf is found by the next one.

Repair: a *row* is one object's partial state (entries for some keys + the object's causal
context), keys named absent, and marks on the peer's previous row ("I lack this entry: judge
it by my context"). The receiver joins the row for exactly those keys and adopts the context.
Adopting a context is only safe if the row carries every live dot the receiver has not seen,
otherwise that dot would count as removed there and its element would be silently lost. So:

* each side sends, besides the leaves the diff found, every leaf changed since the session
  began (writes and gossip go on meanwhile; :meth:`MerkleIndex.changed_since`);
* a side that knows the peer's context (ae.reply knows X's, ae.final knows Y's) also sends
  every key holding a live dot outside it, and flags the row *complete*;
* a row that is not complete is adopted only in its safe part (its own dots, and what its
  keys' merge needs); if that held anything back, the other side vouches for it in ae.final.

Thus a missed difference only ever delays a repair.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pycrdt

from .. import codec
from ..clocks import CausalContext, Dot
from ..crdt import TYPES, Crdt, ORMap, ORSet
from ..crdt.document import Document
from ..crdt.dotkernel import META, DotKernel
from ..errors import DecodeError, LocalProtocolError, RemoteProtocolError
from ..merkle import LeafId, Mark, MerkleIndex, fingerprint, leaf_fingerprint, leaf_tag

__all__ = [
    "Reconciler",
    "Tuning",
    "PROTOCOL_VERSION",
    "KINDS",
    "BEGIN",
    "STEP",
    "REPAIR",
    "REPLY",
    "FINAL",
    "EQUAL",
    "encode_message",
    "decode_message",
]

PROTOCOL_VERSION = 1
BEGIN, STEP, REPAIR, REPLY, FINAL, EQUAL = "ae.begin", "ae.step", "ae.repair", "ae.reply", "ae.final", "ae.equal"
KINDS = (BEGIN, STEP, REPAIR, REPLY, FINAL, EQUAL)
_LENGTHS = {BEGIN: 11, STEP: 7, REPAIR: 4, REPLY: 4, FINAL: 3, EQUAL: 1}
ROOT_WIDTH = 8
MAX_LIST = 1 << 24
MAX_NAME = 4096
_SALT_MAX = 2**64 - 1


@dataclass(frozen=True)
class Tuning:
    """Wire widths and the leaf-list threshold; the initiator's widths bind both sides.

    Attributes:
        fp_width: bytes of a child fingerprint.
        id_width: bytes of a leaf's salted id in a leaf list.
        leaf_width: bytes of a leaf's salted digest in a leaf list.
        leaf_list_max: expand a node as a leaf list when this side holds at most this many
            leaves under it (local choice, not sent).
    """

    fp_width: int = 3
    id_width: int = 2
    leaf_width: int = 2
    leaf_list_max: int = 8

    def __post_init__(self) -> None:
        for name in ("fp_width", "id_width", "leaf_width"):
            if not 1 <= getattr(self, name) <= 16:
                raise ValueError(f"{name} must be 1..16 bytes")
        if self.leaf_list_max < 0:
            raise ValueError("leaf_list_max must be >= 0")


def encode_message(msg: list) -> bytes:
    """The bytes of one message (what :attr:`Reconciler.stats` counts)."""
    return codec.pack(msg)


def decode_message(data: bytes) -> list:
    """Parse one message's bytes; raises DecodeError unless it is a list with a known kind."""
    msg = codec.unpack(data)
    _check_kind(msg)
    return msg


def _check_kind(msg: Any) -> str:
    if not isinstance(msg, list) or not msg or not isinstance(msg[0], str) or msg[0] not in _LENGTHS:
        raise DecodeError("not an anti-entropy message")
    if len(msg) != _LENGTHS[msg[0]]:
        raise DecodeError(f"malformed {msg[0]} message")
    return msg[0]


# -- small wire helpers ---------------------------------------------------------------------------


def _pack_bits(flags: list[bool]) -> bytes:
    out = bytearray((len(flags) + 7) >> 3)
    for i, flag in enumerate(flags):
        if flag:
            out[i >> 3] |= 1 << (i & 7)
    return bytes(out)


def _unpack_bits(data: Any, n: int, what: str) -> list[bool]:
    if not isinstance(data, bytes) or len(data) != (n + 7) >> 3:
        raise DecodeError(f"malformed {what} bitmap")
    if n & 7 and data[-1] >> (n & 7):
        raise DecodeError(f"malformed {what} bitmap (padding bits set)")
    return [bool(data[i >> 3] >> (i & 7) & 1) for i in range(n)]


class _NotCompactable(Exception):
    pass


def _compact(rows: list[list]) -> list:
    """``[replicas, rows]``: every replica id (the only strings in a state body) replaced by a
    negative index into one table per message, so a dot costs a byte or two, not its id.

    A body holding a negative int of its own (none of today's types) goes uncompacted.
    """
    table: dict[str, int] = {}

    def walk(obj: Any) -> Any:
        if isinstance(obj, str):
            index = table.setdefault(obj, len(table))
            return -1 - index
        if isinstance(obj, list):
            return [walk(item) for item in obj]
        if type(obj) is int and obj < 0:
            raise _NotCompactable
        return obj

    try:
        compacted = [[name, tag, walk(body), *rest] for name, tag, body, *rest in rows]
    except _NotCompactable:
        return [None, rows]
    return [list(table), compacted]


def _expand(block: Any) -> list:
    """Inverse of :func:`_compact`, strict (DecodeError on a bad table or index)."""
    if not isinstance(block, list) or len(block) != 2 or not isinstance(block[1], list):
        raise DecodeError("malformed repair block")
    table, rows = block
    if table is None:
        return rows
    if not isinstance(table, list) or not all(isinstance(r, str) for r in table) or len(set(table)) != len(table):
        raise DecodeError("malformed replica table")

    def walk(obj: Any) -> Any:
        if isinstance(obj, list):
            return [walk(item) for item in obj]
        if type(obj) is int and obj < 0:
            if -obj > len(table):
                raise DecodeError("replica index out of range")
            return table[-1 - obj]
        if isinstance(obj, str):
            raise DecodeError("uncompacted string in a compacted body")
        return obj

    out = []
    for row in rows:
        if not isinstance(row, list) or len(row) != 6:
            raise DecodeError("malformed repair row")
        out.append([row[0], row[1], walk(row[2]), *row[3:]])
    return out


def _context(state: Crdt) -> CausalContext:
    """The causal context of a dot-kernel state (empty for the others)."""
    kernel = getattr(state, "kernel", None)
    return kernel.ctx if kernel is not None else CausalContext()


def _unseen(ctx: CausalContext, seen: CausalContext) -> Iterator[Dot]:
    """The dots of ``ctx`` that ``seen`` does not cover."""
    for replica, top in ctx.vv.items():
        for counter in range(seen.vv.get(replica, 0) + 1, top + 1):
            dot = Dot(replica, counter)
            if dot not in seen.cloud:
                yield dot
    for dot in ctx.cloud:
        if dot not in seen:
            yield dot


def _owners_unseen(state: ORSet | ORMap, seen: CausalContext, sending: set[Hashable]) -> set[Hashable]:
    """Keys not in ``sending`` that hold a live dot outside ``seen`` (a peer's context)."""
    owner = state.kernel._index()  # dot → key, kept up to date by the kernel once built
    found = set()
    for dot in _unseen(state.kernel.ctx, seen):
        key = owner.get(dot)
        if key is not None and key not in sending:
            found.add(key)
    return found


def _sent_keys(partial: Crdt) -> list[Hashable]:
    """The keys a partial state carries entries for, in the order marks refer to them."""
    return sorted(k for k in partial.leaf_keys() if k != META)


@dataclass
class _Received:
    """One object of a repair message, decoded."""

    tag: str
    partial: Crdt
    keys: list[Hashable]  # _sent_keys(partial)
    absent: list[bytes]
    marks: list[bool]
    complete: bool  # its sender made it carry every live dot outside a context of ours


Node = tuple[int, int]


class Reconciler:
    """One anti-entropy session with one peer, driven by messages (no I/O, no clock).

    Args:
        memory: this replica.
        index: the :class:`MerkleIndex` over ``memory`` (shared by every session).
        initiator: True on the side that calls :meth:`start`.
        origin: the peer's replica id, reported to change listeners for repairs.
        salt: salts every fingerprint of the session (the initiator's is used); pass a fresh
            random value per session so a truncated-fingerprint collision does not repeat.
        tuning: wire widths and the leaf-list threshold.

    Attributes:
        done: True once the session needs no more messages.
        converged: after the session, on the side that received the peer's final root: True
            if both roots matched (None where unknown). False means writes happened meanwhile,
            a fingerprint collided or context was held back: run another session, new salt.
        stats: ``bytes_sent`` (packed messages), ``bytes_received``, ``messages_sent``,
            ``round_trips`` (flights seen by this side / 2, rounded up), ``leaves_sent``,
            ``leaves_received``, ``repaired_names`` (sorted names whose state changed) and
            ``conflicts`` (names held as another type by the peer; left alone).
    """

    def __init__(
        self,
        memory: Any,
        index: MerkleIndex,
        *,
        initiator: bool,
        origin: str,
        salt: int = 0,
        tuning: Tuning | None = None,
    ) -> None:
        if index.memory is not memory:
            raise LocalProtocolError("the index must be built over the same memory")
        if not 0 <= salt <= _SALT_MAX:
            raise ValueError("salt must fit in 64 bits")
        self.memory = memory
        self.index = index
        self.initiator = initiator
        self.origin = origin
        self.tuning = tuning or Tuning()
        self._salt = salt
        self._widths = (self.tuning.fp_width, self.tuning.id_width, self.tuning.leaf_width)
        self.done = False
        self.converged: bool | None = None
        self._phase = "new"
        self._mark: Mark | None = None  # session start
        self._mark2: Mark | None = None  # when X sent ae.repair
        self._sent_fp: list[Node] = []  # nodes whose child fingerprints my last message held
        self._sent_leaves: list[LeafId] = []  # leaves my last message listed, in order
        self._diff: dict[LeafId, bool] = {}  # my differing leaves → certainly absent at the peer
        self._repair_sent: dict[str, list[Hashable]] = {}  # name → keys of my last repair rows
        self._repair_names: set[str] = set()  # names in the ae.repair message (either side)
        self._flights = 0
        self._repaired: set[str] = set()
        self.stats: dict[str, Any] = {
            "bytes_sent": 0,
            "bytes_received": 0,
            "messages_sent": 0,
            "round_trips": 0,
            "leaves_sent": 0,
            "leaves_received": 0,
            "repaired_names": [],
            "conflicts": [],
        }

    def __repr__(self) -> str:
        role = "initiator" if self.initiator else "responder"
        return f"Reconciler({role}, {self._phase}, {self.stats['bytes_sent']} bytes sent)"

    # -- public API ---------------------------------------------------------------------------

    def start(self) -> list[list]:
        """Begin the session (initiator only); returns the first message to send."""
        if not self.initiator or self._phase != "new":
            raise LocalProtocolError("start() is called once, on the initiator")
        self._mark = self.index.mark()
        fp_w, id_w, leaf_w = self._widths
        item, sent_fp, sent_leaves = self._encode_items([self._expand((0, 0))])
        msg = [BEGIN, PROTOCOL_VERSION, self.index.bits, fp_w, id_w, leaf_w, self._salt, self._root_fp(), *item]
        self._sent_fp, self._sent_leaves = sent_fp, sent_leaves
        self._phase = "descend"
        return self._send([msg])

    def receive(self, msg: Any) -> list[list]:
        """Handle one message from the peer; return the messages to send back (maybe none).

        Raises:
            DecodeError: the message is malformed; nothing changed (the session may go on).
            RemoteProtocolError: the message is well-formed but not allowed now.
        """
        kind = _check_kind(msg)
        if self.done:
            raise RemoteProtocolError(f"{kind} after the session ended")
        expected = {
            "new": (BEGIN,) if not self.initiator else (),
            "descend": (STEP, REPAIR) + ((EQUAL,) if self.initiator else ()),
            "await_reply": (REPLY,),
            "await_final": (FINAL,),
        }[self._phase]
        if kind not in expected:
            raise RemoteProtocolError(f"unexpected {kind} in phase {self._phase}")
        try:
            size = len(codec.pack(msg))
        except (TypeError, ValueError, OverflowError) as exc:
            raise DecodeError(f"message is not plain msgpack data: {exc}") from exc
        replies = getattr(self, "_on_" + kind[3:])(msg)
        self.stats["bytes_received"] += size
        self._flights += 1
        self._update_round_trips()
        return self._send(replies)

    def close(self) -> None:
        """Release the change mark (also done when the session ends or is dropped)."""
        for mark in (self._mark, self._mark2):
            if mark is not None:
                self.index.release(mark)
        self._mark = self._mark2 = None

    # -- plumbing -----------------------------------------------------------------------------

    def _send(self, msgs: list[list]) -> list[list]:
        if msgs:
            self.stats["bytes_sent"] += sum(len(codec.pack(m)) for m in msgs)
            self.stats["messages_sent"] += len(msgs)
            self._flights += 1
            self._update_round_trips()
        return msgs

    def _update_round_trips(self) -> None:
        self.stats["round_trips"] = (self._flights + 1) // 2

    def _finish(self) -> None:
        self.done = True
        self._phase = "done"
        self.stats["repaired_names"] = sorted(self._repaired)
        self.close()

    def _root_fp(self) -> bytes:
        self.index.refresh()
        return fingerprint(self.index.root(), self._salt, ROOT_WIDTH)

    # -- descent: expanding nodes -------------------------------------------------------------

    def _expand(self, node: Node) -> tuple:
        """My expansion of a differing node: child fingerprints, or a leaf list if small."""
        level, prefix = node
        index = self.index
        if level < index.max_level and index.summary(level, prefix)[0] > self.tuning.leaf_list_max:
            fp_w = self._widths[0]
            blob = b"".join(fingerprint(s, self._salt, fp_w) for s in index.children(level, prefix))
            return (node, False, blob, 0, ())
        under = index.leaves_under(level, prefix)
        pairs = self._leaf_pairs(under)
        return (node, True, b"".join(i + d for i, d in pairs), len(pairs), [leaf for leaf, _, _ in under])

    def _leaf_pairs(self, leaves: Iterable[tuple[LeafId, int, int]]) -> list[tuple[bytes, bytes]]:
        """(salted id, salted digest) of each leaf: the id says which leaf, the digest its content."""
        _, id_w, leaf_w = self._widths
        salt = self._salt
        return [(leaf_tag(pos, salt, id_w), leaf_fingerprint(digest, salt, leaf_w)) for _, pos, digest in leaves]

    def _encode_items(self, items: list[tuple]) -> tuple[list, list[Node], list[LeafId]]:
        kinds = _pack_bits([is_list for _, is_list, _, _, _ in items])
        counts = [count for _, is_list, _, count, _ in items if is_list]
        blob = b"".join(payload for _, _, payload, _, _ in items)
        sent_fp = [node for node, is_list, _, _, _ in items if not is_list]
        sent_leaves = [leaf for _, is_list, _, _, leaves in items if is_list for leaf in leaves]
        return [kinds, counts, blob], sent_fp, sent_leaves

    def _decode_items(self, nodes: list[Node], kinds: Any, counts: Any, blob: Any) -> list[tuple]:
        """The peer's expansions of ``nodes``, checked against the widths; raises DecodeError."""
        flags = _unpack_bits(kinds, len(nodes), "item kinds")
        if not isinstance(counts, list) or len(counts) != sum(flags):
            raise DecodeError("malformed leaf-list counts")
        if not isinstance(blob, bytes):
            raise DecodeError("malformed item blob")
        fp_w, id_w, leaf_w = self._widths
        fanout, pair_w = self.index.fanout, id_w + leaf_w
        items, pos, counts_iter = [], 0, iter(counts)
        for node, is_list in zip(nodes, flags, strict=True):
            if is_list:
                count = next(counts_iter)
                if type(count) is not int or not 0 <= count <= MAX_LIST:
                    raise DecodeError("malformed leaf-list count")
                end = pos + count * pair_w
                chunk = blob[pos:end]
                pairs = [(chunk[i : i + id_w], chunk[i + id_w : i + pair_w]) for i in range(0, len(chunk), pair_w)]
                items.append((node, True, pairs))
            else:
                if node[0] >= self.index.max_level:
                    raise DecodeError("child fingerprints for a node at the deepest level")
                end = pos + fanout * fp_w
                chunk = blob[pos:end]
                items.append((node, False, [chunk[i : i + fp_w] for i in range(0, len(chunk), fp_w)]))
            if end > len(blob):
                raise DecodeError("item blob too short")
            pos = end
        if pos != len(blob):
            raise DecodeError("item blob too long")
        return items

    def _resolve(self, items: list[tuple]) -> tuple[list[bool], list[bool], list[bool], list[Node], dict]:
        """Compare the peer's items with my index (read-only).

        Returns the answer bits for its fingerprints, for its listed leaves, "absent here" bits
        for the listed leaves that differ, the nodes I now expand, and my differing leaves.
        """
        fp_w = self._widths[0]
        fanout, salt, index = self.index.fanout, self._salt, self.index
        fp_bits: list[bool] = []
        leaf_bits: list[bool] = []
        absent_bits: list[bool] = []
        expand: list[Node] = []
        found: dict[LeafId, bool] = {}
        for (level, prefix), is_list, entries in items:
            if not is_list:
                mine = index.children(level, prefix)
                for i, (theirs, summary) in enumerate(zip(entries, mine, strict=True)):
                    differs = theirs != fingerprint(summary, salt, fp_w)
                    fp_bits.append(differs)
                    if differs:
                        expand.append((level + 1, (prefix * fanout) + i))
                continue
            leaves = index.leaves_under(level, prefix)
            pairs = self._leaf_pairs(leaves)
            my_pairs, my_ids = set(pairs), {i for i, _ in pairs}
            their_pairs, their_ids = set(entries), {i for i, _ in entries}
            for pair in entries:
                differs = pair not in my_pairs
                leaf_bits.append(differs)
                if differs:
                    absent_bits.append(pair[0] not in my_ids)
            for (leaf, _, _), pair in zip(leaves, pairs, strict=True):
                if pair not in their_pairs:
                    found[leaf] = pair[0] not in their_ids
        return fp_bits, leaf_bits, absent_bits, expand, found

    def _answered(self, fp_bits: Any) -> list[Node]:
        """Decode the peer's answer to my last fingerprints: the nodes it expanded, in order."""
        fanout = self.index.fanout
        fp_flags = _unpack_bits(fp_bits, len(self._sent_fp) * fanout, "fingerprint answer")
        return [
            (level + 1, prefix * fanout + i)
            for n, (level, prefix) in enumerate(self._sent_fp)
            for i in range(fanout)
            if fp_flags[n * fanout + i]
        ]

    def _answered_leaves(self, leaf_bits: Any, absent_bits: Any) -> dict[LeafId, bool]:
        """Decode the peer's answer to my last leaf lists: my differing leaves → absent there."""
        leaf_flags = _unpack_bits(leaf_bits, len(self._sent_leaves), "leaf answer")
        absent_flags = iter(_unpack_bits(absent_bits, sum(leaf_flags), "absent answer"))
        return {leaf: next(absent_flags) for leaf, flag in zip(self._sent_leaves, leaf_flags, strict=True) if flag}

    def _merge_diff(self, found: dict[LeafId, bool]) -> None:
        for leaf, absent in found.items():
            self._diff[leaf] = self._diff.get(leaf, absent) and absent

    def _descend(self, items: list[tuple], found: dict[LeafId, bool]) -> list[list]:
        """Answer the peer's items: the next step, or, when nothing is left to expand, my repair."""
        fp_bits, leaf_bits, absent_bits, expand, mine = self._resolve(items)
        self._merge_diff(found)
        self._merge_diff(mine)
        if expand:
            encoded, self._sent_fp, self._sent_leaves = self._encode_items([self._expand(n) for n in expand])
            return [[STEP, _pack_bits(fp_bits), _pack_bits(leaf_bits), _pack_bits(absent_bits), *encoded]]
        # Nothing left to expand: every fingerprint matched, so only the leaf answers matter.
        self._sent_fp, self._sent_leaves = [], []
        changed = self.index.changed_since(self._mark)
        rows, self._repair_sent, _ = self._repair_rows(self._candidates(changed, {}, use_diff=True), {})
        self._mark2 = self.index.mark()
        self._repair_names = set(self._repair_sent)
        self._phase = "await_reply"
        return [[REPAIR, _pack_bits(leaf_bits), _pack_bits(absent_bits), _compact(rows)]]

    # -- handlers -----------------------------------------------------------------------------

    def _on_begin(self, msg: list) -> list[list]:
        _, version, bits, fp_w, id_w, leaf_w, salt, root_fp, kinds, counts, blob = msg
        if version != PROTOCOL_VERSION:
            raise DecodeError(f"unsupported anti-entropy version {version!r}")
        for width in (fp_w, id_w, leaf_w):
            if type(width) is not int or not 1 <= width <= 16:
                raise DecodeError("malformed fingerprint width")
        if type(salt) is not int or not 0 <= salt <= _SALT_MAX:
            raise DecodeError("malformed salt")
        if not isinstance(root_fp, bytes) or len(root_fp) != ROOT_WIDTH:
            raise DecodeError("malformed root fingerprint")
        if bits != self.index.bits:
            raise RemoteProtocolError(f"peer's Merkle fan-out is 2**{bits!r}, ours 2**{self.index.bits}")
        saved = self._salt, self._widths
        self._salt, self._widths = salt, (fp_w, id_w, leaf_w)
        try:
            items = self._decode_items([(0, 0)], kinds, counts, blob)
        except DecodeError:
            self._salt, self._widths = saved
            raise
        self._mark = self.index.mark()
        if root_fp == self._root_fp():
            self.converged = True
            self._finish()
            return [[EQUAL]]
        self._phase = "descend"
        return self._descend(items, {})

    def _on_equal(self, msg: list) -> list[list]:
        self.converged = True
        self._finish()
        return []

    def _on_step(self, msg: list) -> list[list]:
        _, fp_bits, leaf_bits, absent_bits, kinds, counts, blob = msg
        nodes = self._answered(fp_bits)
        found = self._answered_leaves(leaf_bits, absent_bits)
        items = self._decode_items(nodes, kinds, counts, blob)
        return self._descend(items, found)

    def _on_repair(self, msg: list) -> list[list]:
        """I am Y: join X's partial states, answer with mine (ae.reply)."""
        _, leaf_bits, absent_bits, rows = msg
        # X expanded nothing further: every fingerprint of my last message matched there.
        found = self._answered_leaves(leaf_bits, absent_bits)
        received = self._decode_rows(rows, marks_for=None, complete_allowed=False)
        self._merge_diff(found)
        self._sent_fp, self._sent_leaves = [], []
        self._repair_names = set(received)
        certain: dict[str, set[Hashable]] = {}
        for (name, key), absent in self._diff.items():
            if absent:
                certain.setdefault(name, set()).add(key)
        vouch: set[str] = set()
        for name, got in received.items():
            if not self._conflict(name, got.tag):
                # X lacks my differing leaves it listed no id for: its context decides them.
                if not self._apply(name, got, {*got.keys, *got.absent, *certain.get(name, ())}):
                    vouch.add(name)
        # What X's context was measured against when I check that my rows are complete: its
        # ae.repair context, or nothing where X holds no such object at all.
        basis = {name: _context(got.partial) for name, got in received.items()}
        for (name, key), absent in self._diff.items():
            if key == META and absent and name not in basis:
                basis[name] = CausalContext()
        changed = self.index.changed_since(self._mark)
        plan = self._candidates(changed, received, use_diff=True)
        for name in vouch:  # X must see my context for these to vouch for what it sent
            plan.setdefault(name, {}).setdefault(META, ...)
        rows_out, self._repair_sent, unsure = self._repair_rows(plan, received, basis)
        # X answers with ae.final if I sent an entry it may have removed (it did not send it
        # and may hold an id like it), or if it sent context I could not account for.
        need_final = bool(unsure or vouch)
        reply = [REPLY, _compact(rows_out), self._root_fp(), need_final]
        if need_final:
            self._phase = "await_final"
        else:
            self._finish()
        return [reply]

    def _on_reply(self, msg: list) -> list[list]:
        """I am X: join Y's answer; send ae.final if Y asked for it."""
        _, rows, root_fp, need_final = msg
        if not isinstance(root_fp, bytes) or len(root_fp) != ROOT_WIDTH:
            raise DecodeError("malformed root fingerprint")
        if type(need_final) is not bool:
            raise DecodeError("malformed ae.reply flag")
        received = self._decode_rows(rows, marks_for=self._repair_sent, complete_allowed=True)
        for name, got in received.items():
            if self._conflict(name, got.tag):
                continue
            sent = self._repair_sent.get(name, [])
            marked = {key for key, flag in zip(sent, got.marks, strict=True) if flag}
            self._apply(name, got, {*got.keys, *got.absent, *marked})
        if not need_final:
            self.converged = root_fp == self._root_fp()
            self._finish()
            return []
        # My differing leaves all went out in ae.repair: only Y's rows and my writes since matter.
        changed = self.index.changed_since(self._mark2)
        plan = self._candidates(changed, received, use_diff=False, names=set(received))
        for name, got in received.items():
            if isinstance(got.partial, (ORSet, ORMap)):  # Y may wait for my context to vouch
                plan.setdefault(name, {}).setdefault(META, ...)
            elif isinstance(got.partial, Document) and name in self._repair_names:
                plan.pop(name, None)  # Y sent only what my whole document lacked: nothing to add
        basis = {name: _context(got.partial) for name, got in received.items()}
        rows_out, _, _ = self._repair_rows(plan, received, basis)
        self._finish()
        return [[FINAL, _compact(rows_out), self._root_fp()]]

    def _on_final(self, msg: list) -> list[list]:
        _, rows, root_fp = msg
        if not isinstance(root_fp, bytes) or len(root_fp) != ROOT_WIDTH:
            raise DecodeError("malformed root fingerprint")
        allowed = set(self._repair_sent)
        received = self._decode_rows(rows, marks_for=self._repair_sent, complete_allowed=True)
        if set(received) - allowed:
            raise DecodeError("ae.final names an object it may not")
        for name, got in received.items():
            if self._conflict(name, got.tag):
                continue
            sent = self._repair_sent.get(name, [])
            marked = {key for key, flag in zip(sent, got.marks, strict=True) if flag}
            self._apply(name, got, {*got.keys, *got.absent, *marked})
        self.converged = root_fp == self._root_fp()
        self._finish()
        return []

    # -- repair -------------------------------------------------------------------------------

    def _conflict(self, name: str, tag: str) -> bool:
        mine = self.memory.type_of(name)
        if mine is not None and mine != tag:
            if name not in self.stats["conflicts"]:
                self.stats["conflicts"].append(name)
            return True
        return False

    def _apply(self, name: str, got: _Received, keys: set[Hashable]) -> bool:
        """Join a peer's row for ``keys``; return False if part of its context was held back.

        ``apply_repair`` adopts the row's whole causal context, which is only safe if the row
        carries every live dot this replica has not seen. A complete row (its sender checked
        against a context of ours) is adopted whole. Otherwise every dot of the context that
        is new here and not in the row's entries is suspect: either removed on the sender, or
        live under a key the diff missed (a truncated-fingerprint collision). Then only the
        safe part is adopted (the row's own dots and the dots its keys' merge needs), so a
        missed key is never silently turned into a removal; the sender vouches later.
        """
        self.stats["leaves_received"] += len(got.keys) + len(got.absent)
        partial, whole = got.partial, True
        if isinstance(partial, (ORSet, ORMap)) and not got.complete:
            mine = self.memory.state(name)
            mine_ctx = _context(mine) if mine is not None else CausalContext()
            theirs = partial.kernel
            carried = {dot for dots in theirs.entries.values() for dot in dots}
            if any(dot not in carried for dot in _unseen(theirs.ctx, mine_ctx)):
                whole = False
                safe = CausalContext()
                for dot in carried:
                    safe.add(dot)
                if mine is not None:
                    held = mine.kernel.entries
                    for key in keys:
                        for dot in held.get(key, ()):
                            if dot in theirs.ctx:  # lets the merge drop what the sender removed
                                safe.add(dot)
                partial = type(partial)(DotKernel(theirs.entries, safe))
        if self.memory.apply_repair(name, partial, keys, self.origin):
            self._repaired.add(name)
        return whole

    def _candidates(
        self, changed: set[LeafId], received: dict[str, _Received], *, use_diff: bool, names: set[str] | None = None
    ) -> dict[str, dict]:
        """Per object: every key to consider → what the peer holds (bytes, None, or ... unknown).

        Keys: my differing leaves (``use_diff``; those the peer listed no id like are known
        absent there), ``changed`` (leaves changed here), and whatever the peer's last repair
        carried. Restricted to ``names`` when given.
        """
        plan: dict[str, dict] = {}
        if use_diff:
            for (name, key), absent in self._diff.items():
                plan.setdefault(name, {})[key] = None if absent else ...
        for name, key in changed:
            plan.setdefault(name, {}).setdefault(key, ...)
        for name, got in received.items():
            known = plan.setdefault(name, {})
            for key in got.keys:
                known[key] = codec.encode_leaf(got.partial, key)
            for key in got.absent:
                known[key] = None
            for key, marked in zip(self._repair_sent.get(name, ()), got.marks):
                if marked:  # the peer lacks it (and now so do I)
                    known[key] = None
            if isinstance(got.partial, (ORSet, ORMap)):
                known[META] = codec.encode_leaf(got.partial, META)
        if names is not None:
            plan = {name: keys for name, keys in plan.items() if name in names}
        return plan

    def _repair_rows(
        self,
        plan: dict[str, dict],
        received: dict[str, _Received],
        basis: dict[str, CausalContext] | None = None,
    ) -> tuple[list[list], dict[str, list[Hashable]], set[str]]:
        """Rows ``[name, tag, body, absent keys, marks, complete]`` for every object the peer needs.

        Per key: unknown to me what the peer holds → send it if I hold it, else name it
        absent; the peer holds bytes equal to mine → skip; it holds an entry I lack → mark
        it (the peer joins my context for that key); otherwise send mine. Where ``basis``
        gives a context the peer has seen, the row is made *complete*: every key holding a
        live dot outside that context is sent too, so the peer may adopt my whole context.

        Returns the rows, the keys each row carries entries for (what the peer's marks will
        refer to), and the names of removable objects where I sent an entry the peer may have
        removed (it cannot know until it sees the key).
        """
        memory, rows, sent_map, unsure = self.memory, [], {}, set()
        basis = basis or {}
        for name in sorted(plan):
            state = memory.state(name)
            got = received.get(name)
            if state is None or (got is not None and got.tag != state.TAG):
                continue
            removable = isinstance(state, (ORSet, ORMap))
            # Whether the peer may hold an entry it removed, which only it can judge.
            may_have_removed = removable and not (got is None and name in basis)  # vs: lacks it all
            marks = [False] * (len(got.keys) if got else 0)
            positions = {key: i for i, key in enumerate(got.keys)} if got else {}
            send: set[Hashable] = set()
            absent: list[bytes] = []
            for key, theirs in plan[name].items():
                mine = memory.leaf_bytes(name, key)
                if theirs is ...:  # unknown: send what I hold, name what I lack
                    if mine is not None:
                        send.add(key)
                        if may_have_removed and key != META:
                            unsure.add(name)
                    elif key != META:
                        absent.append(key)
                elif theirs is None and got is None and mine is not None:
                    # The peer lacks it, but may have removed it: without its context here, only
                    # it can tell (ae.final) once it sees the key.
                    send.add(key)
                    if may_have_removed and key != META:
                        unsure.add(name)
                elif mine is None:
                    if theirs is not None and key in positions:
                        marks[positions[key]] = True
                elif mine != theirs:
                    send.add(key)
            complete = not removable or name in basis
            if removable and name in basis:
                send |= _owners_unseen(state, basis[name], send)
            if not (send or absent or any(marks)):
                continue
            partial = self._partial(name, state, send, got)
            tag, body = codec.state_to_plain(partial)
            sent = _sent_keys(partial)
            sent_map[name] = sent
            self.stats["leaves_sent"] += len(sent) + len(absent)
            rows.append([name, tag, body, sorted(absent), _pack_bits(marks), complete])
        return rows, sent_map, unsure

    def _partial(self, name: str, state: Crdt, keys: set[Hashable], got: _Received | None) -> Crdt:
        if isinstance(state, Document) and got is not None and isinstance(got.partial, Document):
            # The peer sent its whole document: answer with just what it lacks.
            their_state = pycrdt.get_state(got.partial.encoded())
            return Document.from_update(pycrdt.get_update(state.encoded(), their_state))
        return self.memory.restricted(name, keys)

    def _decode_rows(
        self, rows: Any, marks_for: dict[str, list] | None, *, complete_allowed: bool
    ) -> dict[str, _Received]:
        """Decode a repair message's rows strictly; nothing is applied here."""
        rows = _expand(rows)
        out: dict[str, _Received] = {}
        last = None
        for row in rows:
            if not isinstance(row, list) or len(row) != 6:
                raise DecodeError("malformed repair row")
            name, tag, body, absent, marks, complete = row
            if type(complete) is not bool:
                raise DecodeError("malformed completeness flag")
            if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
                raise DecodeError("malformed object name")
            if last is not None and name <= last:
                raise DecodeError("repair rows not in strictly increasing name order")
            last = name
            if not isinstance(tag, str) or tag not in TYPES:
                raise DecodeError(f"unknown CRDT type tag {tag!r}")
            partial = codec.state_from_plain([tag, body])
            if not isinstance(absent, list) or not all(isinstance(k, bytes) for k in absent):
                raise DecodeError("malformed absent keys")
            keys = _sent_keys(partial)
            n_marks = len((marks_for or {}).get(name, ())) if marks_for is not None else 0
            flags = _unpack_bits(marks, n_marks, "marks")
            out[name] = _Received(tag, partial, keys, absent, flags, complete and complete_allowed)
        return out
