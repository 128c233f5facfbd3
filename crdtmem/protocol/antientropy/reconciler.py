"""The anti-entropy state machine: one :class:`Reconciler` per session with one peer.

It checks that each message is allowed in the session's phase, runs the descent
(:mod:`.descent`) until nothing is left to expand, then exchanges repair rows (:mod:`.repair`).
Adopting a row's context must never lose a live dot, so:

* each side sends, besides the leaves the diff found, every leaf changed since the session
  began (writes and gossip go on meanwhile; :meth:`MerkleIndex.changed_since`);
* a side that knows the peer's context (ae.reply knows X's, ae.final knows Y's) also sends
  every key holding a live dot outside it, and flags the row *complete*;
* a row that is not complete is adopted only in its safe part (its own dots, and what its
  keys' merge needs); if that held anything back, the other side vouches for it in ae.final.

Thus a missed difference only ever delays a repair.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from ... import codec
from ...clocks import CausalContext
from ...crdt import ORMap, ORSet, latest_stamp
from ...crdt.document import Document
from ...crdt.dotkernel import META
from ...errors import DecodeError, LocalProtocolError, RemoteProtocolError
from ...merkle import LeafId, Mark, MerkleIndex
from ..batch import ClockSkewError
from .descent import Descent, Tuning
from .repair import adoptable, candidates, context, repair_rows
from .wire import (
    BEGIN,
    EQUAL,
    FINAL,
    PROTOCOL_VERSION,
    REPAIR,
    REPLY,
    ROOT_WIDTH,
    SALT_MAX,
    STEP,
    Received,
    check_kind,
    compact,
    decode_rows,
    pack_bits,
)

__all__ = ["Reconciler"]


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
        stamp_bound: returns the latest hybrid timestamp a row may carry (the node passes
            its memory's clock plus the allowed skew); None: no bound beyond the codec's.

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
        stamp_bound: Callable[[], int] | None = None,
    ) -> None:
        if index.memory is not memory:
            raise LocalProtocolError("the index must be built over the same memory")
        if not 0 <= salt <= SALT_MAX:
            raise ValueError("salt must fit in 64 bits")
        self.memory = memory
        self.index = index
        self.initiator = initiator
        self.origin = origin
        self.tuning = tuning or Tuning()
        self._stamp_bound = stamp_bound
        widths = (self.tuning.fp_width, self.tuning.id_width, self.tuning.leaf_width)
        self._descent = Descent(index, salt, widths, self.tuning.leaf_list_max)
        self.done = False
        self.converged: bool | None = None
        self._phase = "new"
        self._mark: Mark | None = None  # session start
        self._mark2: Mark | None = None  # when X sent ae.repair
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
        descent = self._descent
        fp_w, id_w, leaf_w = descent.widths
        item = descent.expand([(0, 0)])
        root_fp = descent.root_fingerprint()
        msg = [BEGIN, PROTOCOL_VERSION, self.index.bits, fp_w, id_w, leaf_w, descent.salt, root_fp, *item]
        self._phase = "descend"
        return self._send([msg])

    def receive(self, msg: Any) -> list[list]:
        """Handle one message from the peer; return the messages to send back (maybe none).

        Raises:
            DecodeError: the message is malformed; nothing changed (the session may go on).
            RemoteProtocolError: the message is well-formed but not allowed now.
        """
        kind = check_kind(msg)
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

    def _merge_diff(self, found: dict[LeafId, bool]) -> None:
        for leaf, absent in found.items():
            self._diff[leaf] = self._diff.get(leaf, absent) and absent

    def _descend(self, items: list[tuple], found: dict[LeafId, bool]) -> list[list]:
        """Answer the peer's items: the next step, or, when nothing is left to expand, my repair."""
        descent = self._descent
        fp_bits, leaf_bits, absent_bits, expand, mine = descent.resolve(items)
        self._merge_diff(found)
        self._merge_diff(mine)
        if expand:
            encoded = descent.expand(expand)
            return [[STEP, pack_bits(fp_bits), pack_bits(leaf_bits), pack_bits(absent_bits), *encoded]]
        # Nothing left to expand: every fingerprint matched, so only the leaf answers matter.
        descent.forget()
        changed = self.index.changed_since(self._mark)
        plan = candidates(changed, {}, self._repair_sent, diff=self._diff)
        rows, self._repair_sent, _ = self._repair_rows(plan, {})
        self._mark2 = self.index.mark()
        self._repair_names = set(self._repair_sent)
        self._phase = "await_reply"
        return [[REPAIR, pack_bits(leaf_bits), pack_bits(absent_bits), compact(rows)]]

    # -- handlers -----------------------------------------------------------------------------

    def _on_begin(self, msg: list) -> list[list]:
        _, version, bits, fp_w, id_w, leaf_w, salt, root_fp, kinds, counts, blob = msg
        if version != PROTOCOL_VERSION:
            raise DecodeError(f"unsupported anti-entropy version {version!r}")
        for width in (fp_w, id_w, leaf_w):
            if type(width) is not int or not 1 <= width <= 16:
                raise DecodeError("malformed fingerprint width")
        if type(salt) is not int or not 0 <= salt <= SALT_MAX:
            raise DecodeError("malformed salt")
        if not isinstance(root_fp, bytes) or len(root_fp) != ROOT_WIDTH:
            raise DecodeError("malformed root fingerprint")
        if bits != self.index.bits:
            raise RemoteProtocolError(f"peer's Merkle fan-out is 2**{bits!r}, ours 2**{self.index.bits}")
        descent = Descent(self.index, salt, (fp_w, id_w, leaf_w), self.tuning.leaf_list_max)
        items = descent.decode([(0, 0)], kinds, counts, blob)
        self._descent = descent
        self._mark = self.index.mark()
        if root_fp == descent.root_fingerprint():
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
        descent = self._descent
        nodes = descent.answered(fp_bits)
        found = descent.answered_leaves(leaf_bits, absent_bits)
        items = descent.decode(nodes, kinds, counts, blob)
        return self._descend(items, found)

    def _on_repair(self, msg: list) -> list[list]:
        """I am Y: join X's partial states, answer with mine (ae.reply)."""
        _, leaf_bits, absent_bits, rows = msg
        # X expanded nothing further: every fingerprint of my last message matched there.
        found = self._descent.answered_leaves(leaf_bits, absent_bits)
        received = decode_rows(rows, marks_for=None, complete_allowed=False)
        self._check_stamps(received)
        self._merge_diff(found)
        self._descent.forget()
        self._repair_names = set(received)
        certain: dict[str, set[Hashable]] = {}
        for (name, key), absent in self._diff.items():
            if absent:
                certain.setdefault(name, set()).add(key)
        vouch: set[str] = set()
        for name, got in received.items():
            # X lacks my differing leaves it listed no id for: its context decides them.
            if not self._apply(name, got, {*got.keys, *got.absent, *certain.get(name, ())}):
                vouch.add(name)
        # What X's context was measured against when I check that my rows are complete: its
        # ae.repair context, or nothing where X holds no such object at all.
        basis = {name: context(got.partial) for name, got in received.items()}
        for (name, key), absent in self._diff.items():
            if key == META and absent and name not in basis:
                basis[name] = CausalContext()
        changed = self.index.changed_since(self._mark)
        plan = candidates(changed, received, self._repair_sent, diff=self._diff)
        for name in vouch:  # X must see my context for these to vouch for what it sent
            plan.setdefault(name, {}).setdefault(META, ...)
        rows_out, self._repair_sent, unsure = self._repair_rows(plan, received, basis)
        # X answers with ae.final if I sent an entry it may have removed (it did not send it
        # and may hold an id like it), or if it sent context I could not account for.
        need_final = bool(unsure or vouch)
        reply = [REPLY, compact(rows_out), self._descent.root_fingerprint(), need_final]
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
        received = decode_rows(rows, marks_for=self._repair_sent, complete_allowed=True)
        self._check_stamps(received)
        self._apply_marked(received)
        if not need_final:
            self.converged = root_fp == self._descent.root_fingerprint()
            self._finish()
            return []
        # My differing leaves all went out in ae.repair: only Y's rows and my writes since matter.
        changed = self.index.changed_since(self._mark2)
        plan = candidates(changed, received, self._repair_sent, names=set(received))
        for name, got in received.items():
            if isinstance(got.partial, (ORSet, ORMap)):  # Y may wait for my context to vouch
                plan.setdefault(name, {}).setdefault(META, ...)
            elif isinstance(got.partial, Document) and name in self._repair_names:
                plan.pop(name, None)  # Y sent only what my whole document lacked: nothing to add
        basis = {name: context(got.partial) for name, got in received.items()}
        rows_out, _, _ = self._repair_rows(plan, received, basis)
        self._finish()
        return [[FINAL, compact(rows_out), self._descent.root_fingerprint()]]

    def _on_final(self, msg: list) -> list[list]:
        _, rows, root_fp = msg
        if not isinstance(root_fp, bytes) or len(root_fp) != ROOT_WIDTH:
            raise DecodeError("malformed root fingerprint")
        allowed = set(self._repair_sent)
        received = decode_rows(rows, marks_for=self._repair_sent, complete_allowed=True)
        self._check_stamps(received)
        if set(received) - allowed:
            raise DecodeError("ae.final names an object it may not")
        self._apply_marked(received)
        self.converged = root_fp == self._descent.root_fingerprint()
        self._finish()
        return []

    # -- repair -------------------------------------------------------------------------------

    def _check_stamps(self, received: dict[str, Received]) -> None:
        """Refuse the whole message if a row carries a timestamp beyond the bound (before any row is joined)."""
        if self._stamp_bound is None:
            return
        bound = self._stamp_bound()
        for name, got in received.items():
            if latest_stamp(got.partial) > bound:
                raise ClockSkewError(f"repair row {name!r} carries a timestamp beyond this replica's clock plus the allowed skew")

    def _note_clash(self, name: str, tag: str) -> None:
        """Count a row of another type than the name holds here; it is applied all the same."""
        mine = self.memory.type_of(name)
        if mine is not None and mine != tag and name not in self.stats["conflicts"]:
            self.stats["conflicts"].append(name)

    def _apply(self, name: str, got: Received, keys: set[Hashable]) -> bool:
        """Join a peer's row for ``keys``; return False if part of its context was held back.

        A row of another type than ``name`` holds here joins that type's object (a type
        clash, see :mod:`crdtmem.memory`).
        """
        self.stats["leaves_received"] += len(got.keys) + len(got.absent)
        self._note_clash(name, got.tag)
        key = self.memory.key_for(name, got.tag)
        partial, whole = adoptable(self.memory, key, got, keys)
        if self.memory.apply_repair(key, partial, keys, self.origin):
            self._repaired.add(name)
        return whole

    def _apply_marked(self, received: dict[str, Received]) -> None:
        """Join the peer's answer to my rows: its entries, its absent keys and what it marked."""
        for name, got in received.items():
            sent = self._repair_sent.get(name, [])
            marked = {key for key, flag in zip(sent, got.marks, strict=True) if flag}
            self._apply(name, got, {*got.keys, *got.absent, *marked})

    def _repair_rows(
        self, plan: dict[str, dict], received: dict[str, Received], basis: dict[str, CausalContext] | None = None
    ) -> tuple[list[list], dict[str, list[Hashable]], set[str]]:
        rows, sent, unsure, leaves = repair_rows(self.memory, plan, received, basis)
        self.stats["leaves_sent"] += leaves
        return rows, sent, unsure
