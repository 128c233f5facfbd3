"""Many ``crdtmem peer`` processes writing at a steady rate: latency, drain, losses and CPU per write.

Each run is ``tests/faults/test_load.py``'s scenario (its ``run_load``): ``--peers`` real
``crdtmem peer`` processes with SQLite stores on loopback websockets (each dials its ring
successor and one random chord: degree about 4), every peer incrementing its own counter
``--rate`` times a second through its stdin for ``--seconds``, every peer watching every
counter. Runs go rate by rate (``--rates 5,10,20``), ``--reps`` times each; with
``--reference CHECKOUT`` every run of this code is followed by one of the other checkout's
code (its peers import ``crdtmem`` from there), so background load hits both alike. The
peers run with ``crdtmem peer``'s default timers (the test's faster gossip and anti-entropy
are undone); ``--peer-flags`` adds or overrides flags (``--peer-flags=--eager-tree``).
Printed as one JSON object:

* ``runs``: per code (``this``, ``reference``) and rate, the medians over the reps, with the
  spread (min, max) of each: ``p50_s`` / ``p99_s`` / ``max_s`` write-to-visible (from the
  moment a write is sent to its peer's stdin to the moment another peer prints the change;
  every process reads the same monotonic clock), ``drain_s`` (after the last write was sent,
  until every peer shows every durable write), ``lost`` (durable writes some peer never
  showed), ``cpu_ms_per_write`` / ``cpu_ms_per_delivery`` (user + system CPU of all peer
  processes from the first write until drained, from ``/proc``, per write made and per
  write shown at another peer), ``duplicates_per_delivery`` (batches received again per
  batch shown), ``messages_per_write`` / ``bytes_per_write`` (sent by all peers, every
  kind), ``cpu_us_per_message`` (the CPU per write over the messages per write: under
  load the peers coalesce more, so fewer messages carry a write and CPU per write falls with
  the load; per message it moves far less), ``store_commits_per_write`` (all peers' store
  commits, start-up included),
  ``idle_cores_per_peer`` (each peer's CPU while connected
  and idle, over ``--idle`` seconds before writing), ``cores_used`` (all peers, writing);
* ``highest_rate_p99_under_1s``: per code, the highest rate whose median p99 is under a
  second with nothing lost and the backlog drained within 5 s;
* ``ratios``: this / reference for ``cpu_ms_per_write``, ``cpu_us_per_message``,
  ``store_commits_per_write``, ``idle_cores_per_peer`` and ``p99_s`` at each rate (below 1:
  this code is cheaper or quicker);
* ``load_average``: the machine's 1-minute load average before and after (other jobs
  share a 2-core machine: read the CPU-time figures, which such noise moves least).

``--profile DIR`` runs peer 0 of the first rep at each rate under cProfile timed by its CPU
clock (``cpu_profile.py``) and prints its top functions by own CPU time per write it showed
(the ``.prof`` files stay in DIR; the profiled peer runs slower, so profile in separate runs).
With ``--sample`` the peer is sampled instead (``cpu_profile.py``'s ``.json`` mode, nearly no
slowdown): its functions' shares of its CPU, on their own and with what they call, over the
whole run (start-up included: read the shares of the functions that run per message).
``harness_cpu_ms_per_write`` is this script's own CPU (it parses every peer's output) per write.

Run: python benchmarks/bench_load.py [--peers 20] [--seconds 30] [--rates 5,10,20] [--reps 3]
     [--reference /path/to/other/checkout] [--profile /tmp/prof]
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.faults.test_load import cpu_seconds, run_load  # noqa: E402
from tests.processes import PeerProcess  # noqa: E402

def _idle_cores(procs: list[PeerProcess], seconds: float) -> float:
    """The CPU cores ``procs`` use together over the next ``seconds``, while nothing drives them."""
    before = [cpu_seconds(p.proc.pid) for p in procs]
    time.sleep(seconds)
    return sum(cpu_seconds(p.proc.pid) - b for p, b in zip(procs, before)) / seconds


_CLI_TIMERS = ["--gossip-interval", "1", "--anti-entropy-interval", "30"]
"""``crdtmem peer``'s own defaults, over the faster timers ``run_load`` gives its test peers."""

_DRAINED_AT_ONCE_S = 5.0
"""A run "drains at once" when every peer shows every write within this long after the last one."""


def _figures(result: dict[str, Any]) -> dict[str, float | None]:
    latency, cpu, traffic = result["latency_s"], result["cpu_seconds"], result["traffic_per_write"]
    writes, deliveries = max(1, result["writes_made"]), max(1, result["deliveries"])
    return {
        "p50_s": latency["p50"], "p99_s": latency["p99"], "max_s": latency["max"],
        "drain_s": result["settle_s"], "lost": result["writes_lost"] + result["deliveries_never_seen"],
        "cpu_ms_per_write": cpu["per_write_ms"], "cpu_ms_per_delivery": cpu["per_delivery_ms"],
        "idle_cores_per_peer": cpu["idle_cores_per_peer"],
        "cores_used": result["cpu_cores_used_while_writing"]["peers_total"],
        "writes_per_s": result["writes_per_s"],
        "harness_cpu_ms_per_write": result["harness_cpu_ms_per_write"],
        "duplicates_per_delivery": round(traffic.get("duplicate_batches", 0) * writes / deliveries, 3),
        "messages_per_write": round(sum(v for k, v in traffic.items() if k.startswith("messages_sent_")), 2),
        "bytes_per_write": round(sum(v for k, v in traffic.items() if k.startswith("bytes_sent_"))),
        "store_commits_per_write": traffic.get("store_commits"),
        "cpu_us_per_message": _per(1000 * cpu["per_write_ms"], sum(v for k, v in traffic.items()
                                                                 if k.startswith("messages_sent_"))),
    }


def _per(total: float | None, count: float) -> float | None:
    return round(total / count, 1) if total is not None and count else None


def _summary(samples: list[dict[str, float | None]]) -> dict[str, Any]:
    out: dict[str, Any] = {"reps": len(samples)}
    for key in samples[0]:
        values = [s[key] for s in samples if s[key] is not None]
        if values:
            out[key] = round(statistics.median(values), 4)
            out[key + "_spread"] = [round(min(values), 4), round(max(values), 4)]
    return out


def _holds(summary: dict[str, Any]) -> bool:
    return (summary.get("p99_s", float("inf")) < 1.0 and summary.get("lost", 1) == 0
            and summary.get("drain_s", float("inf")) <= _DRAINED_AT_ONCE_S)


def _top_functions(profile: Path, deliveries: int, limit: int = 15) -> list[dict[str, Any]]:
    """The profiled peer's functions with the most own CPU time, in µs per write it showed."""
    stats = pstats.Stats(str(profile))
    rows = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:limit]
    return [
        {"function": f"{Path(file).name}:{line}({name})", "own_us_per_delivery": round(1e6 * own / deliveries, 1),
         "cumulative_us_per_delivery": round(1e6 * cumulative / deliveries, 1), "calls_per_delivery":
         round(calls / deliveries, 2)}
        for (file, line, name), (_, calls, own, cumulative, _) in rows
    ]


def _sampled_shares(profile: Path, limit: int = 30) -> dict[str, Any]:
    """The sampled peer's functions with the most samples: shares of all its samples."""
    counts = json.loads(profile.read_text())
    total = max(1, sum(counts["own"].values()))
    top = {kind: dict(sorted(by.items(), key=lambda item: -item[1])[:limit]) for kind, by in counts.items()}
    return {"samples": total, **{f"{kind}_share": {name: round(n / total, 3) for name, n in by.items()}
                                 for kind, by in top.items()}}


def _one_run(code: Path, args: argparse.Namespace, rate: float, profile: Path | None, *,
             retry: bool = True) -> dict[str, Any]:
    """One load run with the peers importing ``crdtmem`` from ``code``."""
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        # The peers run `python -m crdtmem` from here, so `code` (on PYTHONPATH) is what they import.
        os.chdir(tmp)
        os.environ["PYTHONPATH"] = str(code)
        harness_cpu = time.process_time()
        try:
            result = run_load(Path(tmp), peers=args.peers, seconds=args.seconds, rate=rate, seed=args.seed,
                              idle_probe=lambda procs: _idle_cores(procs, args.idle) if args.idle > 0 else None,
                              profile=profile, flags=[*_CLI_TIMERS, *args.peer_flags.split()])
        except EOFError as exc:
            if "address already in use" not in str(exc) or not retry:
                raise
            # run_load picks free ports before its peers bind them: another job took one meanwhile.
            print(json.dumps({"retry": "a port was taken before a peer could listen on it"}), file=sys.stderr)
            return _one_run(code, args, rate, profile, retry=False)
        finally:
            os.chdir(cwd)
    harness_ms = 1000 * (time.process_time() - harness_cpu) / max(1, result["writes_made"])
    return {**result, "harness_cpu_ms_per_write": round(harness_ms, 3)}


def main(args: argparse.Namespace) -> dict[str, Any]:
    codes = {"this": REPO}
    if args.reference:
        codes["reference"] = Path(args.reference).resolve()
    rates = [float(r) for r in args.rates.split(",")]
    samples: dict[str, dict[float, list]] = {name: {rate: [] for rate in rates} for name in codes}
    profiles: dict[str, Any] = {}
    load_before = os.getloadavg()[0]
    for rate in rates:
        for rep in range(args.reps):
            for name, code in codes.items():
                profile = None
                if args.profile and rep == 0:
                    Path(args.profile).mkdir(parents=True, exist_ok=True)
                    profile = Path(args.profile, f"{name}-{rate:g}.{'json' if args.sample else 'prof'}").resolve()
                result = _one_run(code, args, rate, profile)
                samples[name][rate].append(_figures(result))
                print(json.dumps({"code": name, "rate": rate, "rep": rep, **_figures(result)}), file=sys.stderr)
                if profile is not None and profile.exists() and args.sample:
                    profiles[f"{name} at {rate:g}/s"] = _sampled_shares(profile)
                elif profile is not None and profile.exists():
                    deliveries_at_peer0 = result["writes_made"] * (args.peers - 1) // args.peers
                    profiles[f"{name} at {rate:g}/s"] = _top_functions(profile, max(1, deliveries_at_peer0))
    runs = {name: {f"{rate:g}": _summary(samples[name][rate]) for rate in rates} for name in codes}
    out: dict[str, Any] = {
        "peers": args.peers, "seconds": args.seconds, "rates": rates,
        "peer_flags": [*_CLI_TIMERS, *args.peer_flags.split()],
        "runs": runs,
        "highest_rate_p99_under_1s": {
            name: max((float(r) for r, s in by_rate.items() if _holds(s)), default=None)
            for name, by_rate in runs.items()
        },
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "machine_cores": os.cpu_count(),
    }
    if args.reference:
        out["ratios"] = {
            key: {r: _ratio(runs["this"][r].get(key), runs["reference"][r].get(key)) for r in runs["this"]}
            for key in ("cpu_ms_per_write", "cpu_us_per_message", "store_commits_per_write", "idle_cores_per_peer",
                        "p99_s")
        }
    if profiles:
        out["profile_top_own_time"] = profiles
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peers", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0, help="writing time per run")
    parser.add_argument("--rates", default="5,10,20", help="writes/s per peer, comma-separated")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured before writing")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--peer-flags", default="", help="more crdtmem peer flags for every peer, space-separated")
    parser.add_argument("--reference", help="another checkout of crdtmem to run alternately (e.g. main's)")
    parser.add_argument("--profile", help="directory for cProfile stats of peer 0 (first rep of each rate)")
    parser.add_argument("--sample", action="store_true", help="with --profile: sample peer 0 instead of cProfile")
    print(json.dumps(main(parser.parse_args()), indent=1))
