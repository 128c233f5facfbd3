"""A journaled batch's index entry: what re-indexing it at a restart takes from its deltas.

A start rebuilds the node's causal index (covered vectors, heads, how far each author reached
per object: :mod:`.causal`) and its departed incarnations (:mod:`.retirement`) from every
batch the store journaled. Decoding every batch's deltas again for that would make each start
cost the whole history's decoding, and short-lived agents start often. So when a batch is
applied the node hands the shell, with the wire to journal
(:class:`~crdtmem.protocol.events.BatchApplied`), the two facts re-indexing takes from the
deltas — the batch's :class:`~.causal.BatchReach` and the retirement records it carries —
packed in a few bytes; a restart reads them and decodes only the batch's header::

    entry = index_entry(reach, records)           # the node, when it applies a batch
    reach, records = read_index_entry(entry)      # the node, when it restarts

A store keeps the entry next to the wire, as its own (a peer reads back only its own store),
so a malformed one means a corrupt store. A batch journaled without one (an older store) is
decoded whole, as before.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import msgpack

from .. import codec
from ..errors import DecodeError
from .causal import BatchReach

__all__ = ["IndexEntry", "index_entry", "read_index_entry"]


class IndexEntry(NamedTuple):
    reach: BatchReach
    retirements: list[tuple[str, int]]


def index_entry(reach: BatchReach, retirements: Iterable[tuple[str, int]]) -> bytes:
    """Pack what re-indexing a batch takes from its deltas. Call when the batch is applied."""
    return codec.pack([reach.dots, reach.yjs, list(retirements)])


def read_index_entry(data: bytes) -> IndexEntry:
    """Unpack :func:`index_entry`'s bytes (one per journaled batch at every start: kept lean).

    Raises:
        DecodeError: they are not an index entry.
    """
    try:
        dots, yjs, records = msgpack.unpackb(data, use_list=False, raw=False)
        for part in (dots, yjs, records):
            for name, number in part:
                if type(name) is not str or type(number) is not int:
                    raise TypeError("an entry is not a (name, number) pair")
    except Exception as exc:  # noqa: BLE001 - msgpack raises many types; each means the same
        raise DecodeError(f"malformed batch index entry: {type(exc).__name__}") from None
    return IndexEntry(BatchReach(dots, yjs), list(records))
