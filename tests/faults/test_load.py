"""Load: many ``crdtmem peer`` processes on loopback, each writing continuously.

Every peer ``i`` increments its own counter ``w<i>`` at a steady rate through its stdin (one
write, one signed batch, ``{"durable": id}`` once journaled). Every peer watches the ``w``
counters (the CLI's ``watch`` command prints each change with the process's monotonic clock,
which all processes share); the first change at peer ``j`` showing ``w<i> >= k`` makes write
``k`` of ``i`` visible at ``j``.

Reported: writes made and delivered per second; p50/p99/max write-to-visible latency (from
the moment the write was sent to its peer's stdin); the CPU cores the peers used
while writing, the CPU seconds they spent per write and per delivery (writing and draining)
and, with ``idle_probe``, while connected and idle; each process's RSS at start, halfway
and end (CPU and RSS from ``/proc``). ``benchmarks/bench_load.py`` sweeps rates with it.

Checked: after the writers stop every peer converges to every durable write (zero lost), and
RSS stays bounded (the delta log is collected once every peer has a batch, so memory must not
grow with writes).

The default run is small (5 peers x 5 s). The slow run is the issue's 20 peers x 60 s; set
``CRDTMEM_LOAD_PEERS``, ``CRDTMEM_LOAD_SECONDS``, ``CRDTMEM_LOAD_RATE`` (writes/s per peer) to
change it, and ``CRDTMEM_LOAD_STATS`` to a path for the JSON summary.
"""

from __future__ import annotations

import bisect
import json
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from ..processes import PeerProcess, keys

CPU_PROFILER = Path(__file__).resolve().parents[2] / "benchmarks" / "cpu_profile.py"

MAX_RSS_GROWTH_MB = 60.0
"""The most a peer's RSS may grow from start to end of the run (state is 20 tiny counters)."""


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far."""
    return sum(cpu_times(pid))


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU time the process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan"), float("nan")
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def topology(n: int, rng: random.Random) -> list[list[int]]:
    """Who dials whom: a ring plus one random chord per peer (degree about 4)."""
    out: list[list[int]] = [[] for _ in range(n)]
    if n < 2:
        return out
    for i in range(n):
        out[i].append((i + 1) % n)
        if n > 3:
            j = rng.choice([k for k in range(n) if k not in (i, (i + 1) % n, (i - 1) % n)])
            if i not in out[j]:
                out[i].append(j)
    return out


def stop_all(procs: list[PeerProcess], timeout: float = 30) -> None:
    """SIGTERM every process at once, wait, then SIGKILL whatever is left (never leaks one)."""
    for p in procs:
        if p.proc.poll() is None:
            p.proc.terminate()
    deadline = time.monotonic() + timeout
    for p in procs:
        try:
            p.proc.wait(max(0.1, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001 - too slow to stop: killed by close()
            pass
        p.close()


class Driver:
    """Routes one peer process's output lines; sends paced writes; lets the test wait on them."""

    def __init__(self, index: int, proc: PeerProcess, n: int) -> None:
        self.index, self.proc, self.n = index, proc, n
        self.lock = threading.Lock()
        self.sent: dict[int, float] = {}  # write id -> time sent
        self.durable: dict[int, float] = {}
        self.errors: list[dict] = []
        self.answers: dict[Any, dict] = {}
        self.seen: dict[int, list[tuple[float, int]]] = {i: [] for i in range(n)}  # writer -> (t, value)
        self.last_values: dict[int, int] = {}
        self.read_lag = 0.0  # the longest a change line waited between the peer printing it and us reading it
        self.updated = threading.Condition()
        self.stopped = threading.Event()  # set when the run ends: the write loop stops at once
        self.reader = threading.Thread(target=self._route, daemon=True)
        self.reader.start()

    def send(self, command: dict) -> None:
        with self.lock:
            self.proc.send(command)

    def wait_for(self, predicate, timeout: float) -> bool:
        """Wait until ``predicate()`` holds, re-checked after every line the peer prints."""
        with self.updated:
            return self.updated.wait_for(predicate, max(0.0, timeout))

    def _route(self) -> None:
        lines = self.proc.lines
        while True:
            message = lines.get()
            with self.updated:
                if message is None:
                    self.updated.notify_all()
                    return
                if "changed" in message:
                    writer, value = int(message["changed"][1:]), message["value"]
                    self.last_values[writer] = value
                    self.seen[writer].append((message["at"], value))
                    self.read_lag = max(self.read_lag, time.monotonic() - message["at"])
                elif "durable" in message:
                    self.durable[message["durable"]] = time.monotonic()
                elif "error" in message:
                    self.errors.append(message)
                elif "id" in message:
                    self.answers[message["id"]] = message
                self.updated.notify_all()

    def answered(self, ident: str) -> bool:
        return ident in self.answers or any(m.get("id") == ident for m in self.errors)

    def write_loop(self, seconds: float, rate: float) -> None:
        start = time.monotonic()
        k = 0
        while True:
            due = start + k / rate
            now = time.monotonic()
            if due - start >= seconds:
                return
            if due > now and self.stopped.wait(due - now):  # the workload's pace, cut short by a stop
                return
            k += 1
            self.sent[k] = time.monotonic()
            self.send({"op": "counter.increment", "name": f"w{self.index}", "n": 1, "id": k})


def wait_all(drivers: list[Driver], predicate, deadline: float) -> bool:
    """Wait until ``predicate(driver)`` holds for every driver, or the deadline passes."""
    return all(d.wait_for(lambda d=d: predicate(d), deadline - time.monotonic()) for d in drivers)


def run_load(directory: Path, *, peers: int, seconds: float, rate: float, seed: int = 1,
             idle_probe: Callable[[list[PeerProcess]], float] | None = None, profile: Path | None = None,
             flags: list[str] = ()) -> dict[str, Any]:
    """Run the load scenario; return its figures (see the module docstring).

    Args:
        idle_probe: once every peer is connected, called with their processes before writing:
            the CPU cores they use together while idle (the benchmark measures over a window).
        flags: more ``crdtmem peer`` flags for every peer (``["--eager-tree"]``).
        profile: run peer 0 under ``benchmarks/cpu_profile.py`` (cProfile timed by CPU),
            writing its stats here when it stops.
    """
    rng = random.Random(seed)
    names = [f"p{i}" for i in range(peers)]
    trust = keys(directory, names)
    ports = free_ports(peers)
    urls = [f"ws://127.0.0.1:{port}" for port in ports]
    dials = topology(peers, rng)
    t0 = time.monotonic()

    def start(i: int) -> PeerProcess:
        python_args = [str(CPU_PROFILER), str(profile)] if profile is not None and i == 0 else []
        return PeerProcess(directory, names[i], trust, listen=urls[i], connect=[urls[j] for j in dials[i]],
                           extra=["--anti-entropy-interval", "10", *flags], python_args=python_args)

    procs: list[PeerProcess] = []
    with ThreadPoolExecutor(max_workers=4) as pool:  # a few at a time: imports are CPU-heavy
        futures = [pool.submit(start, i) for i in range(peers)]
        failure: BaseException | None = None
        for future in futures:
            try:
                procs.append(future.result())
            except BaseException as exc:  # noqa: BLE001 - stop the ones that did start, then raise
                failure = failure or exc
    if failure is not None:
        stop_all(procs)
        raise failure
    drivers = [Driver(i, p, peers) for i, p in enumerate(procs)]
    try:
        startup = time.monotonic() - t0
        # everyone connected to its dial targets before the clock starts
        for d in drivers:
            d.send({"op": "sync", "id": "ready", "peers": len(dials[d.index]), "timeout": 60})
            d.send({"op": "watch", "prefix": "w", "id": "watch"})
        if not wait_all(drivers, lambda d: d.answered("ready") and d.answered("watch"), time.monotonic() + 90):
            raise TimeoutError("peers did not connect in 90 s")
        if any(d.errors for d in drivers):
            raise TimeoutError(f"peers did not connect: {[d.errors for d in drivers if d.errors]}")
        rss_start = [rss_mb(p.proc.pid) for p in procs]
        idle_cores = idle_probe(procs) if idle_probe is not None else None
        cpu_start = [cpu_seconds(p.proc.pid) for p in procs]
        sys_start = sum(cpu_times(p.proc.pid)[1] for p in procs)
        writers = [threading.Thread(target=d.write_loop, args=(seconds, rate), daemon=True) for d in drivers]
        w0 = time.monotonic()
        for t in writers:
            t.start()
        # sample memory halfway through the writing: once every peer has half its writes durable
        wait_all(drivers, lambda d: len(d.durable) >= seconds * rate / 2, w0 + seconds + 60)
        rss_mid = [rss_mb(p.proc.pid) for p in procs]
        for t in writers:
            t.join(seconds + 60)
        write_time = time.monotonic() - w0
        cpu_writing = [cpu_seconds(p.proc.pid) - c for p, c in zip(procs, cpu_start)]
        # wait for every durable ack, then for every peer to see every write
        settle_deadline = time.monotonic() + 60 + seconds
        wait_all(drivers, lambda d: len(d.durable) >= len(d.sent), settle_deadline)
        made = {d.index: len(d.durable) for d in drivers}
        wait_all(drivers, lambda d: all((d.last_values.get(i) or 0) >= made[i] for i in made), settle_deadline)
        settle = time.monotonic() - w0 - write_time
        cpu_total = sum(cpu_seconds(p.proc.pid) - c for p, c in zip(procs, cpu_start))
        cpu_system = sum(cpu_times(p.proc.pid)[1] for p in procs) - sys_start
        rss_end = [rss_mb(p.proc.pid) for p in procs]
        final = {d.index: dict(d.last_values) for d in drivers}
        metrics = []
        for d in drivers:
            d.send({"op": "metrics", "id": "final-metrics"})
        wait_all(drivers, lambda d: d.answered("final-metrics"), time.monotonic() + 10)
    finally:
        for d in drivers:
            d.stopped.set()
        stop_all(procs)
    for d in drivers:
        d.reader.join(5)
        metrics.append(d.answers.get("final-metrics"))

    latencies: list[float] = []
    unseen = 0
    for d in drivers:  # d = the observer
        for i, writer in enumerate(drivers):
            if i == d.index:
                continue
            series = d.seen[i]
            times = [t for t, _ in series]
            values = [v for _, v in series]
            for k, sent_at in writer.sent.items():
                if k not in writer.durable:
                    continue
                pos = bisect.bisect_left(values, k)  # values only grow
                if pos == len(values):
                    unseen += 1
                    continue
                latencies.append(times[pos] - sent_at)
    latencies.sort()

    def pct(p: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 4) if latencies else None

    writes_made = sum(made.values())
    lost = sum(max(0, made[i] - (final[j].get(i) or 0)) for j in final for i in made)
    growth = [round(e - s, 1) for s, e in zip(rss_start, rss_end)]
    errors = [e for d in drivers for e in d.errors]
    return {
        "peers": peers,
        "seconds": seconds,
        "rate_per_peer": rate,
        "startup_s": round(startup, 2),
        "write_phase_s": round(write_time, 2),
        "settle_s": round(settle, 2),
        "writes_made": writes_made,
        "writes_per_s": round(writes_made / write_time, 1),
        "deliveries": len(latencies),
        "deliveries_per_s": round(len(latencies) / write_time, 1),
        "writes_lost": lost,
        "writes_lost_means": "durable writes not visible at every peer when the settle window "
                             "(60 s + duration) ended: lost, or a backlog the peers could not drain",
        "deliveries_never_seen": unseen,
        "latency_s": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99), "max": latencies[-1] if latencies else None},
        "latency_clock": "CLOCK_MONOTONIC, shared by every process: sent here, applied there",
        "harness_read_lag_max_s": round(max(d.read_lag for d in drivers), 3),
        "rss_mb": {"start": [round(x, 1) for x in rss_start], "mid": [round(x, 1) for x in rss_mid],
                   "end": [round(x, 1) for x in rss_end], "growth": growth, "max_growth": max(growth)},
        "cpu_cores_used_while_writing": {
            "peers_total": round(sum(cpu_writing) / write_time, 2),
            "per_peer_median": round(sorted(cpu_writing)[len(cpu_writing) // 2] / write_time, 3),
            "machine_cores": os.cpu_count(),
        },
        "cpu_seconds": {
            "writing_and_draining": round(cpu_total, 2),
            "per_write_ms": round(1000 * cpu_total / max(1, writes_made), 3),
            "per_delivery_ms": round(1000 * cpu_total / max(1, len(latencies)), 3),
            "system_share": round(cpu_system / cpu_total, 3) if cpu_total else None,
            "idle_cores_per_peer": None if idle_cores is None else round(idle_cores / peers, 4),
        },
        "traffic_per_write": _traffic_per_write(metrics, writes_made),
        "journal_rows_end": [m["metrics"]["store"]["journal_rows"] if m else None for m in metrics],
        "refusals": [m["metrics"]["refusals"] if m else None for m in metrics],
        "errors": errors[:10],
    }


def _traffic_per_write(metrics: list[dict | None], writes: int) -> dict[str, float]:
    """Messages and bytes all peers sent per write, by kind (gossip, catch-up, anti-entropy...),
    and their stores' commits (``store_commits``, start-up included)."""
    totals: dict[str, int] = {}
    for m in metrics:
        for key, n in (m["metrics"]["stats"] if m else {}).items():
            if key.startswith(("messages_sent_", "bytes_sent_")) or key in ("duplicate_batches", "batches_applied"):
                totals[key] = totals.get(key, 0) + n
        if m and m["metrics"].get("store"):
            totals["store_commits"] = totals.get("store_commits", 0) + m["metrics"]["store"].get("commits", 0)
    return {key: round(n / max(1, writes), 2) for key, n in sorted(totals.items())}


def check(result: dict[str, Any]) -> None:
    assert result["writes_made"] > 0
    assert result["writes_lost"] == 0, result
    assert result["deliveries_never_seen"] == 0
    assert result["rss_mb"]["max_growth"] < MAX_RSS_GROWTH_MB, result["rss_mb"]
    assert not result["errors"], result["errors"]


def test_five_peers_writing_for_five_seconds_lose_nothing(tmp_path: Path) -> None:
    result = run_load(tmp_path, peers=5, seconds=5, rate=10)
    check(result)


@pytest.mark.slow
def test_twenty_peers_writing_for_a_minute_lose_nothing_in_bounded_memory(tmp_path: Path) -> None:
    try:
        result = run_load(
            tmp_path,
            peers=int(os.environ.get("CRDTMEM_LOAD_PEERS", "20")),
            seconds=float(os.environ.get("CRDTMEM_LOAD_SECONDS", "60")),
            rate=float(os.environ.get("CRDTMEM_LOAD_RATE", "10")),
        )
    except BaseException as exc:
        if os.environ.get("CRDTMEM_LOAD_STATS"):
            Path(os.environ["CRDTMEM_LOAD_STATS"]).write_text(json.dumps({"error": repr(exc)[:2000]}))
        raise
    if os.environ.get("CRDTMEM_LOAD_STATS"):
        Path(os.environ["CRDTMEM_LOAD_STATS"]).write_text(json.dumps(result, indent=1))
    print("LOAD " + json.dumps(result))
    check(result)

