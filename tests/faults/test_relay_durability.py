"""Nothing leaves a peer before it is durable: a relay SIGKILLed mid-stream holds all it passed on.

A peer journals what it receives in one store commit per turn of its event loop, and sends its
answers and relays only after that commit. Seen from outside: ``w1`` and ``w2`` reach each other
only through the relay ``v`` (it dials both). While ``w1`` streams writes (a few at a time, each
group once the previous one is durable: one signed batch each), ``v`` is SIGKILLed at an instant
set by ``w2``'s progress; every write ``w2`` holds then came through ``v``, so ``v``'s store must
hold it too. ``v`` is restarted on its store (it catches up) and killed again, round after round.
"""

from __future__ import annotations

import itertools
import random
import threading
from pathlib import Path

from crdtmem.storage.sqlite import SqliteStore

from ..processes import PeerProcess, keys

ROUNDS = 6
GROUP = 3  # writes per batch of w1's stream


def _stored_ids(db: Path) -> set[str]:
    with SqliteStore(db, None, readonly=True) as store:
        return set(store.load().memory.values().get("ids", ()))


class _Stream:
    """Feeds ``w1`` groups of writes, each once the previous group is durable, until stopped."""

    def __init__(self, w1: PeerProcess) -> None:
        self.w1, self.sent = w1, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for group in itertools.count():
            if self.stop.is_set():
                return
            for _ in range(GROUP):
                self.w1.send({"op": "set.add", "name": "ids", "value": f"x{self.sent}", "id": self.sent})
                self.sent += 1
            last = self.sent - 1
            try:
                self.w1.expect(lambda m, last=last: m.get("durable") == last, timeout=30)
            except EOFError:  # w1 stopped: the test is over
                return


def test_a_killed_relay_holds_every_write_it_passed_on(tmp_path: Path) -> None:
    rng = random.Random(6)
    trust = keys(tmp_path, ["w1", "w2", "v"])
    w1 = PeerProcess(tmp_path, "w1", trust)
    w2 = PeerProcess(tmp_path, "w2", trust)
    procs = [w1, w2]
    stream = None
    try:
        v = PeerProcess(tmp_path, "v", trust, connect=[w1.url, w2.url])
        procs.append(v)
        stream = _Stream(w1)
        for round_no in range(ROUNDS):
            assert v.ask({"op": "sync", "peers": 2, "timeout": 30, "id": f"up-{round_no}"}, timeout=35).get("synced")
            # Kill once w2 shows a write a little ahead of the stream: more keep coming.
            mark = f"x{stream.sent + rng.randrange(5, 60)}"
            w2.ask({"op": "wait", "contains": {"ids": [mark]}, "timeout": 30, "id": f"mark-{round_no}"}, timeout=35)
            v.kill()
            at_w2 = set(w2.ask({"op": "values", "id": f"values-{round_no}"})["values"].get("ids", ()))
            stored = _stored_ids(tmp_path / "v.db")
            assert mark in at_w2
            assert at_w2 <= stored, f"round {round_no}: v sent {sorted(at_w2 - stored)[:5]} before storing them"
            v = PeerProcess(tmp_path, "v", trust, connect=[w1.url, w2.url])
            procs.append(v)
    finally:
        if stream is not None:
            stream.stop.set()
        for proc in procs:
            proc.close()
