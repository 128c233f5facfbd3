"""Crash and restart during a partition: do restarted peers (store kept or lost) catch up?

30 peers, random 6-regular, 20 ms. The network splits in two at t=5 s. At t=8 s six peers
crash: three keep their store, three lose it. They restart at t=12 s — still inside the
partition — and the partition heals at t=16 s. Agents write (5/s) until the heal.

A peer whose store survived restarts from it and catches up from its neighbours' delta logs
and anti-entropy. A peer whose store was lost comes back empty with the same key: like every
start, it writes under a fresh incarnation of its identity, so it never reuses a batch number
or a CRDT dot the others already hold, and it gets its old writes back from its neighbours.

    python simulations/crash_restart.py
"""

from _common import run

from crdtmem.simulation import Crash, NodeConfig, Partition, Scenario

crashes = [Crash(p, 8.0, 12.0, "kept") for p in (2, 9, 20)] + [Crash(p, 8.0, 12.0, "lost") for p in (4, 17, 25)]
run(
    "crash_restart",
    Scenario(peers=30, seed=7, partitions=[Partition(5.0, 16.0)], crashes=crashes, writes=5.0, duration=30.0,
             node=NodeConfig(anti_entropy_interval=10.0)),
    title="30 peers: partition 5-16 s; 6 crash at 8 s (3 keep their store, 3 lose it), restart at 12 s",
)
