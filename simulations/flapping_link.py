"""A flapping link: two clusters joined by a single bridge that goes down and up every 2 s.

40 peers in two clusters of 20 (random 6-regular inside), one bridge link between them. From
t=4 s to t=24 s the bridge is down for 1 s out of every 2 s; agents write throughout (4/s)
until t=24 s. Each time the bridge comes back the runtime redials (with backoff), the peers
handshake again and anti-entropy runs: the plot shows the divergence saw-tooth and the report
counts the reconnections.

    python simulations/flapping_link.py
"""

from _common import run

from crdtmem.simulation import LinkFault, NodeConfig, Scenario, Simulation

PEERS = 40
scenario = Scenario(peers=PEERS, seed=5, topology="clusters:2:1", writes=4.0, write_until=24.0, duration=40.0,
                    node=NodeConfig(anti_entropy_interval=10.0))
# The topology depends only on the seed: find the bridge, then schedule its flaps.
bridge = next((a, b) for a, b in Simulation(scenario).links() if (a < PEERS // 2) != (b < PEERS // 2))
scenario.link_faults = [LinkFault(bridge[0], bridge[1], float(t), t + 1.0) for t in range(4, 24, 2)]
scenario.validate()
run("flapping_link", scenario, title=f"clusters of 20 + 20 joined by one bridge ({bridge[0]}-{bridge[1]}) flapping every 2 s")
