"""30% message loss: do replicas still converge, and what does it cost?

30 peers, random 6-regular, 20 ms latency, writes for 20 s, then 20 s of quiet, loss all along.

* ``loss_30_stream``: websocket over TCP, the deployment model. A lost packet is retransmitted
  (RTO 200 ms, doubling), holding back what follows; six losses in a row break the connection.
* ``loss_30_datagram``: every frame stands alone, so each loss reaches the Node. The authenticated,
  sequenced framing refuses the gap and drops the connection, which is redialed and
  re-handshaken. This shows what the protocol needs from its transport: order and reliability.

    python simulations/loss_30.py
"""

from _common import run

from crdtmem.simulation import NodeConfig, Scenario

for transport in ("stream", "datagram"):
    run(
        f"loss_30_{transport}",
        Scenario(peers=30, seed=3, loss=0.3, transport=transport, writes=5.0, write_until=20.0, duration=40.0,
                 node=NodeConfig(anti_entropy_interval=10.0)),
        title=f"30 peers, 30% loss ({transport} transport), writes until 20 s",
    )
