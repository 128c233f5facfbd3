"""Simple agent workloads: what a simulated agent writes into its replica.

A mix is ``kind=weight`` pairs, e.g. ``counter=1,facts=2,register=1,map=1``. Kinds:

=============  =====================================================================
``counter``    increment one of ``keys`` grow-only counters ``counter/<k>``
``pncounter``  increment or decrement the PN-counter ``budget``
``facts``      add a new fact to the OR-set ``facts`` (70%) or remove one it holds (30%)
``register``   assign one of ``keys`` last-writer-wins registers ``register/<k>``
``mvregister`` assign one of ``keys`` multi-value registers ``mv/<k>`` (conflicts stay visible)
``map``        put (80%) or remove (20%) one of ``keys`` entries of the OR-map ``board``
``log``        add a new line to the grow-only set ``log`` (never removed: a write that must last)
=============  =====================================================================

Every choice is drawn from the simulator's ``random.Random``. Last-writer-wins writes are
recorded (:class:`LwwWrite`) so the report can count writes that a *concurrent* write
overwrote — the conflicts LWW resolves silently.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from ..memory import Memory
from ..values import encode_value

__all__ = ["KINDS", "parse_mix", "Workload", "LwwWrite", "count_lost_writes"]

KINDS = ("counter", "pncounter", "facts", "register", "mvregister", "map", "log")


def parse_mix(spec: str) -> list[tuple[str, float]]:
    """``"counter=1,facts=2"`` → ``[("counter", 1.0), ("facts", 2.0)]``; a bare kind weighs 1.

    Raises:
        ValueError: an unknown kind, a negative weight, or all weights zero.
    """
    mix: list[tuple[str, float]] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        kind, _, weight = part.partition("=")
        kind = kind.strip()
        if kind not in KINDS:
            raise ValueError(f"unknown workload kind {kind!r}: choose from {', '.join(KINDS)}")
        try:
            value = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"bad weight in {part!r}") from None
        if value < 0:
            raise ValueError(f"negative weight in {part!r}")
        mix.append((kind, value))
    if not mix or sum(w for _, w in mix) <= 0:
        raise ValueError(f"workload {spec!r} has no kind with a positive weight")
    return mix


@dataclass(frozen=True)
class LwwWrite:
    """One last-writer-wins write: what the writer had seen of the key, and the stamp it wrote."""

    key: tuple[str, str]
    writer: str
    seen_stamp: int
    stamp: int


class Workload:
    """Draws one write at a time for a given replica."""

    def __init__(self, spec: str, rng: random.Random, *, keys: int = 8) -> None:
        mix = parse_mix(spec)
        self.kinds = [k for k, _ in mix]
        self.weights = [w for _, w in mix]
        self.rng = rng
        self.keys = keys
        self.count = 0
        self.by_kind: dict[str, int] = defaultdict(int)
        self.lww: list[LwwWrite] = []

    def write(self, memory: Memory, who: int) -> str:
        """Make one write on ``memory`` (agent number ``who``); returns its kind."""
        rng = self.rng
        kind = rng.choices(self.kinds, self.weights)[0] if len(self.kinds) > 1 else self.kinds[0]
        self.count += 1
        n = self.count
        key = rng.randrange(self.keys)
        if kind == "counter":
            memory.counter(f"counter/{key}").increment(1)
        elif kind == "pncounter":
            handle = memory.pncounter("budget")
            handle.increment(1 + key) if rng.random() < 0.6 else handle.decrement(1 + key)
        elif kind == "facts":
            facts = memory.set("facts")
            present = sorted(facts.value) if rng.random() < 0.3 else []
            if present:
                facts.remove(present[rng.randrange(len(present))])
            else:
                facts.add(f"fact-{who}-{n}")
        elif kind == "register":
            name = f"register/{key}"
            state = memory.state(name)
            seen = state.stamp if state is not None else 0
            memory.register(name).assign(f"agent-{who}:{n}")
            self.lww.append(LwwWrite((name, ""), memory.replica_id, seen, memory.state(name).stamp))
        elif kind == "mvregister":
            memory.mvregister(f"mv/{key}").assign(f"agent-{who}:{n}")
        elif kind == "log":
            memory.gset("log").add(f"line-{who}-{n}")
        elif kind == "map":
            board = memory.map("board")
            entry = f"key-{key}"
            if rng.random() < 0.2 and entry in board:
                board.remove(entry)
            else:
                state = memory.state("board")
                encoded = encode_value(entry)
                seen = state.latest_stamp(encoded) if state is not None else 0
                board.put(entry, {"by": who, "n": n})
                self.lww.append(LwwWrite(("board", entry), memory.replica_id, seen, memory.state("board").latest_stamp(encoded)))
        self.by_kind[kind] += 1
        return kind


def count_lost_writes(writes: list[LwwWrite]) -> int:
    """How many LWW writes a concurrent write overwrote (silently lost updates).

    Write ``x`` is lost to a concurrent write if some later-stamped write ``y`` to the same
    key was made by a writer that had not seen ``x`` (``y.seen_stamp < x.stamp``). A writer
    that had seen ``x`` and overwrote it meant to: that is not a conflict.
    """
    by_key: dict[tuple[str, str], list[LwwWrite]] = defaultdict(list)
    for w in writes:
        by_key[w.key].append(w)
    lost = 0
    for group in by_key.values():
        group.sort(key=lambda w: (w.stamp, w.writer))
        # Walk from the newest: track the smallest seen_stamp among later-stamped writes.
        min_seen_after = None
        for w in reversed(group):
            if min_seen_after is not None and min_seen_after < w.stamp:
                lost += 1
            if min_seen_after is None or w.seen_stamp < min_seen_after:
                min_seen_after = w.seen_stamp
        # (writes with equal stamps from different writers are ordered by writer, like LWW)
    return lost
