"""The built-in CRDT types, by wire tag."""

from .base import WHOLE, Crdt
from .document import Document
from .gcounter import GCounter
from .gset import GSet
from .lwwregister import LWWRegister
from .mvregister import MVRegister
from .ormap import ORMap
from .orset import ORSet
from .pncounter import PNCounter

__all__ = [
    "Crdt",
    "WHOLE",
    "TYPES",
    "GCounter",
    "PNCounter",
    "GSet",
    "ORSet",
    "LWWRegister",
    "MVRegister",
    "ORMap",
    "Document",
    "only_writes_as",
]

TYPES: dict[str, type] = {
    cls.TAG: cls for cls in (GCounter, PNCounter, GSet, ORSet, LWWRegister, MVRegister, ORMap, Document)
}


def only_writes_as(delta: Crdt, replica: str) -> bool:
    """True if ``delta`` writes no slot, dot or timestamp that belongs to a replica other than ``replica``."""
    check = getattr(delta, "only_writes_as", None)
    if check is not None:
        return check(replica)
    return delta.writers() <= {replica}
