"""Membership as replicated, signed data: who may connect and author batches.

The keyring file is the founding list of members; a line ending in ``+admin`` marks an admin.
Admins admit and revoke members at runtime by writing **membership records** into one
grow-only set of the shared memory, :data:`MEMBERSHIP_NAME`. The records travel in ordinary
author-signed batches, so they replicate, persist and repair like any write, and every peer
— including one that never talked to the admin, or whose keyring file is out of date — learns
them and accepts an admitted key's connections and batches without a restart.

Records (elements of the set; ``by`` is the admin's peer id, ``at`` wall-clock seconds)::

    ("admit", "ed25519:<base64> [comment]", admin, by, at)
    ("revoke", peer_id, by, at, ((incarnation, seq), ...))

A revocation carries its **cut**: the revoked key's batches the admin had applied, per
incarnation. Batches within the cut stay (the revoked key's past writes, attributed as
before); batches beyond it are refused everywhere (``revoked-author``), and the revoked key's
connections close (``revoked-key``). The set only grows, so revoke wins over any admission of
the same key, concurrent or later: re-admitting means a new key. Concurrent revocations keep
the larger cut per incarnation, so every replica draws the same line. One exception keeps
replicas together: a batch beyond the cut that a member's batch depends on (the member
applied it before the revocation reached it) is applied after all, so the member's later
writes are not refused with it.

A membership record whose author is not an admin (by the founding list and the records the
receiver has applied), or that names another admin as its author, is refused
(``not-an-admin``); the receiver checks every batch with :meth:`Membership.check` before
applying it. Pure: the node reads the set from its memory, nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import RefusalReason, RemoteProtocolError
from ..identity import Identity, Keyring, format_public_key, key_id_of, parse_public_key, peer_id_of
from ..memory import Memory
from ..values import decode_value

__all__ = [
    "MEMBERSHIP_NAME",
    "Member",
    "Membership",
    "NotAnAdminError",
    "RevokedAuthorError",
    "admission",
    "revocation",
]

MEMBERSHIP_NAME = "crdtmem.membership"
"""The grow-only set of the shared memory holding the membership records."""


class NotAnAdminError(RemoteProtocolError):
    """A membership record whose author is not an admin, or that is malformed."""

    reason = RefusalReason.NOT_AN_ADMIN


class RevokedAuthorError(RemoteProtocolError):
    """A batch of a revoked key beyond the cut its revocation drew."""

    reason = RefusalReason.REVOKED_AUTHOR


@dataclass(frozen=True)
class Member:
    """One current member: who, with which key, whether admin, and who admitted it when."""

    peer_id: str
    key: str
    """The public key line, ``ed25519:<base64> [comment]``."""
    admin: bool
    admitted_by: str | None
    """The admin's peer id; None for a member of the founding keyring."""
    admitted_at: float | None
    """Wall-clock seconds of the admission; None for a founding member."""


def admission(key_line: str, *, admin: bool, by: str, at: float) -> tuple:
    """The record admitting ``key_line``; raises ValueError if the line is not a public key."""
    parse_public_key(key_line)
    return ("admit", " ".join(key_line.split()), bool(admin), by, float(at))


def revocation(peer_id: str, *, by: str, at: float, cut: dict[str, int]) -> tuple:
    """The record revoking ``peer_id``; ``cut`` maps each of its incarnations to the last seq kept."""
    return ("revoke", peer_id, by, float(at), tuple(sorted(cut.items())))


@dataclass
class _View:
    admitted: dict[str, Member]
    keys: dict[str, bytes]
    revoked: dict[str, dict[str, int]]


class Membership:
    """The members as this replica knows them: the founding keyring plus the applied records.

    It is what the handshake and batch verification consult instead of the bare keyring
    (``raw_key in membership``, :meth:`public_key`), and what checks a batch's membership
    records and revoked authors before it is applied (:meth:`check`).

    Args:
        founding: the keyring file's keys (``+admin`` marks admins); replace it with
            :meth:`replace_founding` when the file changes.
        identity: this peer's key, trusted for its own batches whatever the records say
            (None: no peer of its own, as when ``crdtmem inspect`` lists a store's members).
        memory: the replica whose :data:`MEMBERSHIP_NAME` set holds the records.
    """

    def __init__(self, founding: Keyring, identity: Identity | None, memory: Memory) -> None:
        self.founding, self._identity, self._memory = founding, identity, memory
        self._view = _View({}, {}, {})
        self._seen_records = -1

    def replace_founding(self, keyring: Keyring) -> None:
        """Use ``keyring`` as the founding list from now on (the keyring file changed)."""
        self.founding = keyring

    # -- the keyring interface ------------------------------------------------------------------

    def public_key(self, author: str) -> bytes | None:
        """The key that signs for ``author`` (any incarnation), or None if it was never a member.

        A revoked key still verifies: its batches within the revocation's cut are kept.
        """
        key_id = key_id_of(author)
        if self._identity is not None and key_id == self._identity.peer_id:
            return self._identity.public_key
        return self.founding.public_key(key_id) or self._current().keys.get(key_id)

    def __contains__(self, public_key: object) -> bool:
        """Whether the raw key may connect: a member (founding or admitted), not revoked."""
        if not isinstance(public_key, (bytes, bytearray)) or len(public_key) != 32:
            return False
        peer_id = peer_id_of(bytes(public_key))
        view = self._current()
        if peer_id in view.revoked:
            return False
        return public_key in self.founding or view.keys.get(peer_id) == public_key

    def is_admin(self, peer_id: str) -> bool:
        """Whether ``peer_id`` may admit and revoke members now."""
        view = self._current()
        if peer_id in view.revoked:
            return False
        admitted = view.admitted.get(peer_id)
        return self.founding.is_admin(peer_id) or (admitted is not None and admitted.admin)

    def is_revoked(self, peer_id: str) -> bool:
        """Whether an admin revoked ``peer_id`` (as far as this replica knows)."""
        return peer_id in self._current().revoked

    def members(self) -> list[Member]:
        """The current members, by peer id: the founding keyring and the admitted, minus the revoked."""
        view = self._current()
        found = {
            peer_id: Member(peer_id, _key_line(self.founding.public_key(peer_id), self.founding.comment(peer_id)),
                            self.founding.is_admin(peer_id), None, None)
            for peer_id in self.founding
        }
        for peer_id, member in view.admitted.items():
            if peer_id in found:
                if member.admin and not found[peer_id].admin:
                    found[peer_id] = member
            else:
                found[peer_id] = member
        return [found[p] for p in sorted(found) if p not in view.revoked]

    # -- checks ---------------------------------------------------------------------------------

    def touches(self, deltas: Any) -> bool:
        """Whether a batch's deltas write membership records (the view must be refreshed)."""
        return any(name == MEMBERSHIP_NAME for name, _ in deltas)

    def check(self, batch: Any, *, vouched: bool = False) -> None:
        """Refuse a verified batch a receiver must not apply; call before applying it.

        Args:
            vouched: a member's batch depends on it (that member applied it before the
                revocation reached it), so it is applied past the cut: every replica then
                holds it, and the member's own later writes are not refused with it.

        Raises:
            RevokedAuthorError: its key was revoked and the batch lies beyond the cut.
            NotAnAdminError: it writes membership records and its author is no admin, or a
                record is malformed or names another author.
        """
        key_id = key_id_of(batch.author)
        cut = self._current().revoked.get(key_id)
        if cut is not None and not vouched and batch.seq > cut.get(batch.author, 0):
            raise RevokedAuthorError(f"batch {batch.author}#{batch.seq} comes after {key_id}'s key was revoked")
        for name, delta in batch.deltas:
            if name != MEMBERSHIP_NAME:
                continue
            if not self.is_admin(key_id):
                raise NotAnAdminError(f"{key_id} wrote membership records but is not an admin")
            items = getattr(delta, "items", None)
            if getattr(delta, "TAG", None) != "gset" or not isinstance(items, set):
                raise NotAnAdminError(f"{key_id} wrote {MEMBERSHIP_NAME!r} as a {getattr(delta, 'TAG', '?')}")
            for item in items:
                record = _parse(item)
                if record is None or record[2 if record[0] == "revoke" else 3] != key_id:
                    raise NotAnAdminError(f"{key_id} wrote a malformed membership record or one in another's name")

    # -- the view ------------------------------------------------------------------------------

    def _current(self) -> _View:
        state = self._memory.state(MEMBERSHIP_NAME)
        items = state.items if state is not None and getattr(state, "TAG", None) == "gset" else set()
        if len(items) != self._seen_records:  # the set only grows: its size says whether it changed
            self._view = _build(items)
            self._seen_records = len(items)
        return self._view


def _parse(item: bytes) -> tuple | None:
    """A well-formed record from its set element, else None."""
    try:
        record = decode_value(item)
    except Exception:  # noqa: BLE001 - any malformed element is simply not a record
        return None
    if not isinstance(record, tuple) or not record:
        return None
    if record[0] == "admit" and len(record) == 5:
        _, line, admin, by, at = record
        if isinstance(line, str) and isinstance(admin, bool) and isinstance(by, str) and isinstance(at, float):
            try:
                parse_public_key(line)
            except ValueError:
                return None
            return record
    if record[0] == "revoke" and len(record) == 5:
        _, peer_id, by, at, cut = record
        if (isinstance(peer_id, str) and isinstance(by, str) and isinstance(at, float) and isinstance(cut, tuple)
                and all(isinstance(c, tuple) and len(c) == 2 and isinstance(c[0], str)
                        and key_id_of(c[0]) == peer_id and type(c[1]) is int for c in cut)):
            return record
    return None


def _build(items: set[bytes]) -> _View:
    """The admitted members, their keys and the revocation cuts, from the records (any order)."""
    records = sorted(r for r in map(_parse, items) if r is not None)
    admitted: dict[str, Member] = {}
    keys: dict[str, bytes] = {}
    revoked: dict[str, dict[str, int]] = {}
    for record in records:
        if record[0] == "admit":
            _, line, admin, by, at = record
            raw = parse_public_key(line)
            peer_id = peer_id_of(raw)
            keys[peer_id] = raw
            earlier = admitted.get(peer_id)
            if earlier is None or (admin and not earlier.admin):
                admitted[peer_id] = Member(peer_id, line, admin, by, at)
        else:
            _, peer_id, _, _, cut = record
            merged = revoked.setdefault(peer_id, {})
            for incarnation, seq in cut:
                merged[incarnation] = max(merged.get(incarnation, 0), seq)
    return _View(admitted, keys, revoked)


def _key_line(raw: bytes | None, comment: str | None) -> str:
    return format_public_key(raw, comment) if raw is not None else ""
