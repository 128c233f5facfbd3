"""Partition and heal at 10, 100 and 1,000 peers: how long until every replica agrees again?

Two halves are cut apart at t=5 s and keep writing (5 writes/s network-wide, both sides)
until the heal at t=15 s. Random 6-regular links, 20 ms latency, websocket-like transport.
Writes stop at the heal, so the time to converge is measured from there.

    python simulations/partition_heal.py            # writes partition_heal_{10,100,1000}.json/.png
"""

from _common import run

from crdtmem.simulation import NodeConfig, Partition, Scenario

for peers in (10, 100, 1000):
    run(
        f"partition_heal_{peers}",
        Scenario(
            peers=peers,
            seed=1,
            partitions=[Partition(at=5.0, heal_at=15.0, groups=2)],
            writes=5.0 if peers <= 100 else 1.0,
            duration=25.0 if peers <= 100 else 22.0,
            sample_interval=0.25 if peers <= 100 else 0.5,
            node=NodeConfig(anti_entropy_interval=30.0 if peers <= 100 else 300.0),
        ),
        title=f"{peers} peers: partition at 5 s, heal at 15 s",
    )
