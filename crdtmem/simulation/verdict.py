"""The final check of a run: do all live replicas hold identical values and Merkle roots?"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .metrics import live_roots
from .simpeer import SimPeer

__all__ = ["FinalCheck", "final_check"]

_MAX_LISTED = 5


@dataclass
class FinalCheck:
    """Whether every live replica holds identical values and Merkle roots, and if not, where not."""

    converged: bool
    live: int
    distinct_roots: int
    identical_roots: bool
    identical_values: bool
    reference_peer: int | None = None
    differing_peers: list[dict[str, Any]] = field(default_factory=list)
    """Up to 5 peers (index, peer id, root) that differ from the reference, first by index."""
    differing_peers_total: int = 0
    differing_keys: list[str] = field(default_factory=list)
    """Objects (``name``) or leaves (``name[key]``) where the first differing peer differs."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "converged": self.converged,
            "live": self.live,
            "distinct_roots": self.distinct_roots,
            "identical_roots": self.identical_roots,
            "identical_values": self.identical_values,
            "reference_peer": self.reference_peer,
            "differing_peers_total": self.differing_peers_total,
            "differing_peers": self.differing_peers,
            "differing_keys": self.differing_keys,
        }


def final_check(peers: Sequence[SimPeer]) -> FinalCheck:
    """Compare every live replica with a reference: the most common root, lowest peer index.

    Values are compared for every live peer (not only the roots), so a Merkle bug that gave
    equal roots to different states would still show.
    """
    roots = live_roots(peers)
    if not roots:
        return FinalCheck(True, 0, 0, True, True)
    counts = Counter(roots.values())
    best = max(counts.values())
    reference = min(i for i, r in roots.items() if counts[r] == best)
    ref_root = roots[reference]
    ref_values = peers[reference].memory.values()
    differing: list[int] = []
    root_differs = value_differs = False
    for index in sorted(roots):
        same_root = roots[index] == ref_root
        same_values = index == reference or peers[index].memory.values() == ref_values
        root_differs |= not same_root
        value_differs |= not same_values
        if not (same_root and same_values):
            differing.append(index)
    check = FinalCheck(
        converged=not differing,
        live=len(roots),
        distinct_roots=len(counts),
        identical_roots=not root_differs,
        identical_values=not value_differs,
        reference_peer=reference,
        differing_peers_total=len(differing),
    )
    for index in differing[:_MAX_LISTED]:
        peer = peers[index]
        check.differing_peers.append({"peer": index, "peer_id": peer.peer_id, "root_differs": roots[index] != ref_root})
    if differing:
        check.differing_keys = _differing_keys(peers, reference, differing[0])
    return check


def _differing_keys(peers: Sequence[SimPeer], a: int, b: int) -> list[str]:
    va, vb = peers[a].memory.values(), peers[b].memory.values()
    names = sorted(name for name in va.keys() | vb.keys() if va.get(name) != vb.get(name))
    keys = list(names)
    try:
        leaves = peers[a].node.index.diff(peers[b].node.index)
    except Exception:
        leaves = set()
    for name, key in sorted(leaves, key=repr):
        label = f"{name}[{key!r}]" if key not in (b"", None) else name
        if label not in keys:
            keys.append(label)
    return keys[:20]
