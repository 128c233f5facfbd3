"""An in-test fake network for Nodes: seeded loss, duplication and reordering, virtual time."""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field

from crdtmem import Memory
from crdtmem.identity import Identity, Keyring
from crdtmem.protocol.events import Close, Send
from crdtmem.protocol.node import Node, NodeConfig


@dataclass
class FakeNet:
    seed: int = 0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    latency: float = 0.01
    config: NodeConfig = field(default_factory=NodeConfig)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.now = 0.0
        self.nodes: dict[str, Node] = {}
        self.keyring = Keyring()
        self.links: dict[tuple[str, str], tuple[str, str]] = {}  # conn → (owner, peer conn)
        self._queue: list = []
        self._ticket = itertools.count()
        self.delivered = 0

    def add(self, name: str, identity: Identity | None = None) -> Node:
        identity = identity or Identity.from_private_bytes(random.Random(f"{self.seed}-{name}").randbytes(32))
        self.keyring.add(identity)
        memory = Memory(identity.peer_id, clock=lambda: self.now)
        node = Node(memory, identity, self.keyring, rng=random.Random(f"{self.seed}/{name}"), config=self.config)
        self.nodes[name] = node
        return node

    def connect(self, a: str, b: str) -> None:
        ab, ba = (a, b), (b, a)
        self.links[ab] = (a, ba)
        self.links[ba] = (b, ab)
        self.nodes[a].open(ab, self.now, dialer=True)
        self.nodes[b].open(ba, self.now, dialer=False)
        self._pump()

    def cut(self, a: str, b: str) -> None:
        for conn in ((a, b), (b, a)):
            if conn in self.links:
                owner, _ = self.links.pop(conn)
                self.nodes[owner].close(conn, self.now, "link cut")

    def _pump(self) -> None:
        for name, node in self.nodes.items():
            for action in node.take_actions():
                if isinstance(action, Close):
                    self.cut(*action.conn)
                    continue
                link = self.links.get(action.conn)
                if link is None or self.rng.random() < self.loss:
                    continue
                copies = 2 if self.rng.random() < self.duplicate else 1
                for _ in range(copies):
                    delay = self.latency * (1 + (self.rng.random() * 20 if self.rng.random() < self.reorder else 0))
                    heapq.heappush(self._queue, (self.now + delay, next(self._ticket), link[1], action.data))

    def run(self, seconds: float, step: float = 0.05) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += step
            for node in self.nodes.values():
                node.tick(self.now)
            self._pump()
            while self._queue and self._queue[0][0] <= self.now:
                _, _, conn, data = heapq.heappop(self._queue)
                if conn in self.links:
                    self.nodes[conn[0]].receive(conn, data, self.now)
                    self.delivered += 1
                self._pump()

    def memories(self) -> list[Memory]:
        return [node.memory for node in self.nodes.values()]

    def converged(self) -> bool:
        values = [m.values() for m in self.memories()]
        snaps = [m.snapshot() for m in self.memories()]
        return all(v == values[0] for v in values) and len(set(snaps)) == 1
