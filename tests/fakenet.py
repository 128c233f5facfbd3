"""An in-test fake network for Nodes: seeded loss, duplication and reordering, virtual time.

Frames travel one by one with a latency; loss, duplication and reordering apply per frame.
The signed framing refuses gaps and replays, so a damaged connection is dropped; like the real
runtime, the fake network then dials again after ``redial`` seconds while the link is wanted.
"""

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
    redial: float = 0.5
    config: NodeConfig = field(default_factory=NodeConfig)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.now = 0.0
        self.nodes: dict[str, Node] = {}
        self.keyring = Keyring()
        self.links: dict[tuple, tuple] = {}  # conn (owner, peer, n) → the peer's conn
        self.wanted: dict[frozenset, float] = {}  # link → earliest time to dial it again
        self._incarnation = itertools.count()
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
        """Want a link between ``a`` and ``b`` and dial it now (``a`` dials)."""
        self.wanted[frozenset((a, b))] = self.now
        self._dial(a, b)
        self._pump()

    def _dial(self, a: str, b: str) -> None:
        n = next(self._incarnation)
        ab, ba = (a, b, n), (b, a, n)
        self.links[ab], self.links[ba] = ba, ab
        self.nodes[a].open(ab, self.now, dialer=True)
        self.nodes[b].open(ba, self.now, dialer=False)

    def cut(self, a: str, b: str) -> None:
        """Stop wanting the link and drop its connections."""
        self.wanted.pop(frozenset((a, b)), None)
        for conn in [c for c in self.links if {c[0], c[1]} == {a, b}]:
            self._drop(conn, "link cut")

    def _drop(self, conn: tuple, reason: str) -> None:
        peer_conn = self.links.pop(conn, None)
        if peer_conn is None:
            return
        self.links.pop(peer_conn, None)
        self.nodes[conn[0]].close(conn, self.now, reason)
        self.nodes[peer_conn[0]].close(peer_conn, self.now, reason)
        link = frozenset(conn[:2])
        if link in self.wanted:
            self.wanted[link] = self.now + self.redial

    def _redial(self) -> None:
        live = {frozenset(c[:2]) for c in self.links}
        for link, when in list(self.wanted.items()):
            if link not in live and when <= self.now:
                self._dial(*sorted(link))

    def _pump(self) -> None:
        for name, node in self.nodes.items():
            for action in node.take_actions():
                if isinstance(action, Close):
                    self._drop(action.conn, action.reason)
                    continue
                peer_conn = self.links.get(action.conn)
                if peer_conn is None or self.rng.random() < self.loss:
                    continue
                copies = 2 if self.rng.random() < self.duplicate else 1
                for _ in range(copies):
                    delay = self.latency * (1 + (self.rng.random() * 20 if self.rng.random() < self.reorder else 0))
                    heapq.heappush(self._queue, (self.now + delay, next(self._ticket), peer_conn, action.data))

    def run(self, seconds: float, step: float = 0.05) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now += step
            self._redial()
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
