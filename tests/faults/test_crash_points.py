"""Crash points: ``crdtmem peer`` processes SIGKILLed at random instants, restarted on their store.

Two hubs (never killed) and two victims (which dial both hubs) run as separate processes on
loopback. Each round one victim, dead since the previous round, misses writes made by everyone
else; it is restarted on the same ``--db`` and SIGKILLed again at an instant drawn from a seeded
RNG — either while catching up on what it missed (anti-entropy and catch-up after reconnecting),
or in the middle of a burst of its own writes (after a random number of them were acknowledged,
or after a random delay). After every kill the dead victim's store opens cleanly and holds every
write that victim ever reported durable; at the end all peers converge, hold every acknowledged
write of every peer, and every store opens with ``crdtmem inspect``.

Each round also kills its victim first if it was still up from an earlier round, while the
others' writes stream in. The default run makes 10 rounds (12 to 20 kills); ``-m slow`` makes
60 rounds (60 to 100+ kills).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from crdtmem.storage.sqlite import SqliteStore

from ..processes import PeerProcess, keys, stored_values, without_retirements

HUBS, VICTIMS = ["h1", "h2"], ["v1", "v2"]
AE = ["--anti-entropy-interval", "0.5"]


@dataclass
class Figures:
    kills: int = 0
    kills_in_burst: int = 0
    kills_in_catch_up: int = 0
    kills_while_others_write: int = 0
    kills_with_catch_up_unfinished: int = 0  # the store lacked some of what others had acked
    restarts: int = 0
    writes_sent: int = 0
    writes_acked: int = 0
    writes_lost: int = 0

    def summary(self) -> dict:
        return dict(self.__dict__)


class CrashRun:
    def __init__(self, tmp_path: Path, seed: int) -> None:
        self.tmp_path = tmp_path
        self.rng = random.Random(seed)
        self.trust = keys(tmp_path, HUBS + VICTIMS)
        self.procs: dict[str, PeerProcess | None] = {}
        self.next_id: dict[str, int] = {name: 0 for name in HUBS + VICTIMS}
        self.acked: dict[str, set[str]] = {name: set() for name in HUBS + VICTIMS}
        self.acked_hits: dict[str, int] = {name: 0 for name in HUBS + VICTIMS}
        self.fig = Figures()

    # -- processes ------------------------------------------------------------------------

    def start_hubs(self) -> None:
        h1 = self.procs["h1"] = PeerProcess(self.tmp_path, "h1", self.trust, extra=AE)
        self.procs["h2"] = PeerProcess(self.tmp_path, "h2", self.trust, connect=[h1.url], extra=AE)

    def start(self, name: str) -> PeerProcess:
        assert self.procs.get(name) is None, f"{name} is running: two processes must never share a store"
        hubs = [self.procs[h].url for h in HUBS]
        proc = self.procs[name] = PeerProcess(self.tmp_path, name, self.trust, connect=hubs, extra=AE)
        self.fig.restarts += 1
        return proc

    def kill(self, name: str) -> None:
        """SIGKILL ``name`` now; harvest every acknowledgement it printed before dying."""
        proc = self.procs[name]
        proc.proc.kill()
        proc.proc.wait(10)
        for message in proc.read_to_eof():
            self._note_ack(name, message)
        proc.close()
        self.procs[name] = None
        self.fig.kills += 1

    # -- writes -----------------------------------------------------------------------------

    def send_writes(self, name: str, count: int) -> list[int]:
        """Queue ``count`` writes on ``name`` (every fifth a counter bump); return their ids."""
        proc, ids = self.procs[name], []
        for _ in range(count):
            self.next_id[name] += 1
            i = self.next_id[name]
            if i % 5 == 0:
                proc.send({"op": "counter.increment", "name": f"hits-{name}", "n": 1, "id": i})
            else:
                proc.send({"op": "set.add", "name": "ids", "value": f"{name}-{i}", "id": i})
            ids.append(i)
        self.fig.writes_sent += count
        return ids

    def _note_ack(self, name: str, message: dict) -> None:
        i = message.get("durable")
        if i is None or message.get("_counted"):
            return
        message["_counted"] = True
        self.fig.writes_acked += 1
        if i % 5 == 0:
            self.acked_hits[name] += 1
        else:
            self.acked[name].add(f"{name}-{i}")

    def wait_acked(self, name: str, ident: int, timeout: float = 30) -> None:
        """Wait until ``name`` reports write ``ident`` durable; count every ack read so far."""
        proc = self.procs[name]
        self._note_ack(name, proc.expect(lambda m: m.get("durable") == ident, timeout=timeout))
        for message in proc.drain():
            self._note_ack(name, message)

    def wait_caught_up(self, name: str, count: int) -> None:
        """Wait until ``name`` holds ``count`` random writes the others acknowledged (0: not at all).

        This picks a crash instant by progress, not by the clock: the peer has caught up that far.
        """
        others = sorted(set().union(*(ids for peer, ids in self.acked.items() if peer != name)))
        items = self.rng.sample(others, min(count, len(others)))
        if items:
            self.procs[name].ask({"op": "wait", "contains": {"ids": items}, "timeout": 30, "id": "caught-up"}, timeout=35)

    def write_and_wait(self, name: str, count: int) -> None:
        ids = self.send_writes(name, count)
        self.wait_acked(name, ids[-1])

    # -- checks -----------------------------------------------------------------------------

    def store_values(self, name: str) -> dict:
        """Open the (dead) peer's store read-only, as ``crdtmem inspect`` does; it must load."""
        with SqliteStore(self.tmp_path / f"{name}.db", None, readonly=True) as store:
            return store.load().memory.values()

    def check_dead_store(self, name: str) -> bool:
        """The killed peer's store holds every write it acknowledged; return whether it also held
        everything the others had acknowledged (False: killed before catch-up finished)."""
        values = self.store_values(name)
        held = set(values.get("ids", ()))
        lost = self.acked[name] - held
        assert not lost, f"{name} lost writes it had reported durable: {sorted(lost)[:10]}"
        assert values.get(f"hits-{name}", 0) >= self.acked_hits[name]
        others = set().union(*(self.acked[o] for o in self.acked if o != name))
        return others <= held


def run_crash_points(tmp_path: Path, kills: int, seed: int) -> Figures:
    run_ = CrashRun(tmp_path, seed)
    rng = run_.rng
    try:
        run_.start_hubs()
        for v in VICTIMS:
            run_.start(v)
        for v in VICTIMS:
            run_.write_and_wait(v, 5)
            run_.kill(v)  # every round starts with its victim dead
        for round_no in range(kills):
            victim = rng.choice(VICTIMS)
            other = next(v for v in VICTIMS if v != victim)
            # while the victim is down, the others write: it has something to catch up on
            if run_.procs[other] is None:
                run_.start(other)
            pending = {name: run_.send_writes(name, rng.randint(10, 60)) for name in HUBS + [other]}
            if run_.procs[victim] is not None:
                # it was up since an earlier round: kill it while the others' writes stream in
                run_.kill(victim)
                run_.fig.kills_while_others_write += 1
                run_.check_dead_store(victim)
            for name, ids in pending.items():
                run_.wait_acked(name, ids[-1])
            proc = run_.start(victim)
            if rng.random() < 0.5:
                # crash during catch-up: once it holds a random few of the others' writes (or at once)
                run_.wait_caught_up(victim, rng.randint(0, 3))
                run_.kill(victim)
                run_.fig.kills_in_catch_up += 1
            else:
                # crash during a write burst, while also receiving the others' concurrent writes
                burst = rng.randint(20, 120)
                ids = run_.send_writes(victim, burst)
                hub_name = HUBS[round_no % 2]
                hub_ids = run_.send_writes(hub_name, rng.randint(5, 30))
                if rng.random() < 0.5:
                    run_.wait_acked(victim, ids[rng.randrange(burst)])
                else:
                    run_.wait_acked(hub_name, rng.choice(hub_ids))  # an instant set by the hub's progress
                run_.kill(victim)
                run_.fig.kills_in_burst += 1
                hub = run_.procs[hub_name]
                for message in hub.drain():
                    run_._note_ack(hub.name, message)
            if not run_.check_dead_store(victim):
                run_.fig.kills_with_catch_up_unfinished += 1

        # the end: everyone up, in sync, holding every acknowledged write
        for v in VICTIMS:
            if run_.procs[v] is None:
                run_.start(v)
        for h in HUBS:  # hub writes sent during bursts: wait for their acks
            run_.write_and_wait(h, 1)
        final = []
        for name in HUBS + VICTIMS:
            run_.procs[name].ask({"op": "sync", "peers": 2 if name in VICTIMS else 3, "timeout": 60,
                                  "id": "final"}, timeout=65)
        for name in HUBS + VICTIMS:
            final.append(run_.procs[name].ask({"op": "values", "id": "values"})["values"])
        assert all(v == final[0] for v in final), "peers did not converge"
        held = set(final[0]["ids"])
        all_acked = set().union(*run_.acked.values())
        run_.fig.writes_lost = len(all_acked - held)
        assert not all_acked - held, f"acknowledged writes lost: {sorted(all_acked - held)[:10]}"
        for name, hits in run_.acked_hits.items():
            assert final[0].get(f"hits-{name}", 0) >= hits
        codes = {name: run_.procs[name].stop() for name in HUBS + VICTIMS}
        assert set(codes.values()) == {0}, codes
        for name in HUBS + VICTIMS:
            assert stored_values(tmp_path / f"{name}.db") == without_retirements(final[0]), f"{name}'s store differs"
    finally:
        for proc in run_.procs.values():
            if proc is not None:
                proc.close()
    return run_.fig


def _report(fig: Figures, seconds: float) -> None:
    print(f"\ncrash points: {json.dumps({**fig.summary(), 'seconds': round(seconds, 1)})}")


def test_peers_killed_at_random_instants_lose_no_durable_write(tmp_path: Path) -> None:
    started = time.monotonic()
    fig = run_crash_points(tmp_path, kills=10, seed=6)
    _report(fig, time.monotonic() - started)
    assert fig.kills >= 10 and fig.writes_lost == 0


@pytest.mark.slow
def test_sixty_random_crash_points_lose_no_durable_write(tmp_path: Path) -> None:
    started = time.monotonic()
    fig = run_crash_points(tmp_path, kills=60, seed=2026)
    _report(fig, time.monotonic() - started)
    assert fig.kills >= 60 and fig.writes_lost == 0
    assert fig.kills_in_burst >= 10 and fig.kills_in_catch_up >= 10
