"""The sans-I/O sync protocol, one concept per module.

* ``handshake`` — mutual challenge–response that opens a connection;
* ``framing`` — signed, sequenced, size-capped frames, chunking, and every wire refusal;
* ``batch`` — delta batches signed by their author and relayed unchanged;
* ``messages`` — what an open session carries (``Sync``, ``SeenDigest``, ``Batches``);
* ``events`` — what a Node asks its shell to do and tells it happened;
* ``recovery`` — the store contract, and the one way back from a snapshot and journal;
* ``stats`` — the typed counters of what a Node has done;
* ``backoff`` — how long a dialer waits before redialing;
* ``relay`` — a broker's stream as a link: what to publish, what it delivers, repairs over it;
* ``node`` — the peer state machine that ties them together.

Refusal reasons (:class:`~crdtmem.errors.RefusalReason`) and the error tree live in
:mod:`crdtmem.errors`.
"""

from .node import Node, NodeConfig
from .stats import NodeStats

__all__ = ["Node", "NodeConfig", "NodeStats"]
