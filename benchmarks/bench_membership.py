"""Cost of a membership change: virtual time until every peer accepts a newly admitted key.

Run from the repo root::

    python benchmarks/bench_membership.py                   # 100 and 1,000 simulated peers
    python benchmarks/bench_membership.py --peers 100 --seeds 5

Setup: the simulator (the real ``Node`` on a seeded virtual network: random 6-regular links,
20 ms) runs ``--peers`` peers; peer 0 is the only admin (``+admin`` in the founding keyring).
After the mesh settles, peer 0 admits a new key; the run goes on until every peer's membership
holds it. As the reference, measured in the same run just before, peer 0 writes one ordinary
set element and the run goes on until every peer holds it: an admission is an ordinary
signed batch, so the two should spread alike.

One JSON line per (peers, seed), then one summary line per peer count:

* ``admit_s``: virtual seconds from the admission until the last peer accepts the key;
  ``admit_p50_s``: until half of them do.
* ``write_s`` / ``write_p50_s``: the same for the reference write; ``ratio`` = admit_s / write_s.
* ``wall_s``: wall-clock seconds of the whole run (the only machine-dependent figure).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from crdtmem.identity import Identity
from crdtmem.protocol.membership import MEMBERSHIP_NAME, admission
from crdtmem.simulation import NodeConfig, Scenario, Simulation

STEP = 0.01  # virtual seconds between checks


def _spread(sim: Simulation, reached, limit: float = 60.0) -> tuple[float, float]:
    """Virtual seconds until half of the peers, then all of them, satisfy ``reached(peer)``."""
    start, half = sim.now, None
    while sim.now - start < limit:
        count = sum(1 for peer in sim.peers if reached(peer))
        if half is None and count * 2 >= len(sim.peers):
            half = sim.now - start
        if count == len(sim.peers):
            return half, sim.now - start
        sim.advance(STEP)
    raise RuntimeError(f"not every peer got there within {limit} virtual seconds")


def run_once(peers: int, seed: int) -> dict:
    began = time.perf_counter()
    sim = Simulation(Scenario(peers=peers, seed=seed, writes=0.001, write_until=0.0, duration=3600,
                              node=NodeConfig(anti_entropy_interval=30.0)))
    admin = sim.peers[0]
    sim.keyring.add(admin.identity, admin=True)
    sim.advance(3.0)  # the mesh connects
    sim.write(0, lambda memory: memory.set("probe").add("reference"))
    write_p50, write_all = _spread(sim, lambda peer: "reference" in (peer.memory.value("probe") or ()))
    newcomer = Identity.from_private_bytes(bytes([seed % 256]) * 32)
    record = admission(newcomer.public_key_text, admin=False, by=admin.peer_id, at=sim.now)
    sim.write(0, lambda memory: memory.gset(MEMBERSHIP_NAME).add(record))
    admit_p50, admit_all = _spread(sim, lambda peer: newcomer.public_key in peer.node.members)
    return {"peers": peers, "seed": seed, "admit_s": round(admit_all, 3), "admit_p50_s": round(admit_p50, 3),
            "write_s": round(write_all, 3), "write_p50_s": round(write_p50, 3),
            "ratio": round(admit_all / write_all, 3), "wall_s": round(time.perf_counter() - began, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--peers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    for peers in args.peers:
        rows = [run_once(peers, seed) for seed in range(1, args.seeds + 1)]
        for row in rows:
            print(json.dumps(row), flush=True)
        summary = {key: statistics.median(r[key] for r in rows) for key in ("admit_s", "admit_p50_s", "write_s", "ratio")}
        print(json.dumps({"peers": peers, "runs": len(rows), "median": summary,
                          "admit_s_range": [min(r["admit_s"] for r in rows), max(r["admit_s"] for r in rows)]}),
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
