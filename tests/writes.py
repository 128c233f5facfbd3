"""Random writes shared by the Merkle and anti-entropy tests."""

from __future__ import annotations

import random

import pycrdt

from crdtmem import Memory

NAMES = ["s", "t", "m", "c", "p", "g", "r", "v", "d"]


def random_write(memory: Memory, rng: random.Random, universe: int) -> None:
    """One random write to an object of any type (documents included), of ``universe`` values."""
    name = rng.choice(NAMES)
    x = rng.randrange(universe)
    if name in ("s", "t"):
        handle = memory.set(name)
        handle.remove(x) if rng.random() < 0.35 else handle.add(x)
    elif name == "m":
        handle = memory.map(name)
        handle.remove(x) if rng.random() < 0.3 else handle.put(x, rng.randrange(5))
    elif name == "c":
        memory.counter(name).increment(rng.randrange(1, 4))
    elif name == "p":
        memory.pncounter(name).decrement(1) if rng.random() < 0.5 else memory.pncounter(name).increment(2)
    elif name == "g":
        memory.gset(name).add(x)
    elif name == "r":
        memory.register(name).assign(x)
    elif name == "v":
        memory.mvregister(name).assign(x)
    else:
        text = memory.doc(name).get("text", type=pycrdt.Text)
        text.insert(rng.randrange(len(text) + 1), f"{x} ")
