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

One concept per module:

* ``wire`` — message kinds and shapes, bitmaps, and strict decoding of repair rows;
* ``descent`` — finding the differing leaves, one trie level per flight (and :class:`Tuning`);
* ``repair`` — rows of partial state plus causal context, and what of a row is safe to adopt;
* ``reconciler`` — the :class:`Reconciler` state machine that ties them together.
"""

from .descent import Tuning
from .reconciler import Reconciler
from .wire import (
    BEGIN,
    EQUAL,
    FINAL,
    KINDS,
    PROTOCOL_VERSION,
    REPAIR,
    REPLY,
    STEP,
    decode_message,
    encode_message,
)

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
