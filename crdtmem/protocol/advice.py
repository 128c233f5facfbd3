"""Refusals that explain themselves: the cause and the fix, in one line for a log.

A peer that refuses a connection closes it with its :class:`~crdtmem.errors.RefusalReason`;
the side that was refused learns nothing else. :func:`refused_by_peer` turns that reason into
what the refused user needs to read: what the other side objected to, and what to do about it
(for an untrusted key, the very line to add to the other side's keyring). The runtime logs it
at WARNING; the simulator and tests can call it too (pure: no I/O, no clock).
"""

from __future__ import annotations

from ..errors import RefusalReason
from ..identity import Identity

__all__ = ["refused_by_peer"]

_FIXES: dict[str, str] = {
    RefusalReason.VERSION_MISMATCH: "it runs another crdtmem protocol version; run the same crdtmem release on both",
    RefusalReason.SELF_CONNECTION: (
        "it holds our own key: we dialed ourselves, or two processes share a key file and dialed each other "
        "(they both still reach every other peer)"
    ),
    RefusalReason.TOO_MANY_CONNECTIONS: "it has as many peers as it accepts; raise its --max-connections or dial another peer",
    RefusalReason.TOO_MANY_UNAUTHENTICATED: "too many connections were handshaking with it; retrying",
    RefusalReason.HELLO_TIMEOUT: "our handshake did not finish in time (an overloaded link or peer); retrying",
    RefusalReason.HANDSHAKE_TIMEOUT: "our handshake did not finish in time (an overloaded link or peer); retrying",
    RefusalReason.REVOKED_KEY: "an admin revoked our key; ask an admin to admit a new key (crdtmem keygen)",
    RefusalReason.BAD_HANDSHAKE_SIGNATURE: "our handshake signature did not verify: check both run the same crdtmem release",
}


def refused_by_peer(address: str, reason: str, identity: Identity) -> str:
    """One log line saying why the peer at ``address`` refused us, and how to fix it.

    Call when a connection is closed by the other side as a refusal (the websocket close code
    1008 with the reason as its text).

    Args:
        address: the peer's address as dialed (or as seen, for an accepted connection).
        reason: the refusal reason the peer gave (a :class:`RefusalReason` value, or any text).
        identity: this peer's key, named in the fix when the peer does not trust it.
    """
    if reason == RefusalReason.UNTRUSTED_KEY:
        return (
            f"{address}: the peer does not trust our key {identity.peer_id}; add this line to its keyring "
            f"or ask an admin to admit it: {identity.public_key_text}"
        )
    fix = _FIXES.get(reason, "see that peer's log for the details")
    return f"{address}: the peer refused our connection ({reason}): {fix}"
