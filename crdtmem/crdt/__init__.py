"""The CRDT types, one module each, and the registry that makes a type storable.

:data:`TYPES` maps every registered tag to its class; the eight built-in types register in
:mod:`crdtmem.builtin_types` (importing ``crdtmem`` does it), your own with
:func:`register_type`.
"""

from .base import WHOLE, Crdt
from .document import Document
from .gcounter import GCounter
from .gset import GSet
from .lwwregister import LWWRegister
from .mvregister import MVRegister
from .ormap import ORMap
from .orset import ORSet
from .pncounter import PNCounter
from .registry import TYPES, RollbackPolicy, TypeSpec, lookup, register_type, unregister_type

__all__ = [
    "Crdt",
    "WHOLE",
    "TYPES",
    "TypeSpec",
    "RollbackPolicy",
    "register_type",
    "unregister_type",
    "lookup",
    "GCounter",
    "PNCounter",
    "GSet",
    "ORSet",
    "LWWRegister",
    "MVRegister",
    "ORMap",
    "Document",
    "only_writes_as",
    "latest_stamp",
]


def only_writes_as(delta: Crdt, replica: str) -> bool:
    """True if ``delta`` writes no slot, dot or timestamp that belongs to a replica other than ``replica``."""
    check = getattr(delta, "only_writes_as", None)
    if check is not None:
        return check(replica)
    return delta.writers() <= {replica}


def latest_stamp(delta: Crdt) -> int:
    """The greatest hybrid timestamp ``delta`` writes (0: none); a type says so with ``max_stamp()``.

    The sync layer refuses a peer's delta whose timestamp is beyond its own clock plus the
    allowed skew, so a timestamp at the wire's limit can never stall the next honest write.
    """
    stamp = getattr(delta, "max_stamp", None)
    return stamp() if stamp is not None else 0
