"""A multi-agent task board: four agents, each embedding a Peer, share one memory over websockets.

The planner posts tasks to a shared board (an OR-Map of task id -> record). Three workers
watch the board, claim open tasks, do them and mark them done; they also count finished
tasks, add facts they learn to a shared set and append to shared notes (a pycrdt text).

Two workers sometimes claim the same task at the same moment. Nobody arbitrates: the board's
last-writer-wins entries pick the same winner on every replica, and once a worker is in sync
with the others it knows whether its claim won. Plain Python agents, no LLM needed.

Run: python examples/task_board.py
"""

from __future__ import annotations

import random
import time

import anyio
import pycrdt

from crdtmem import Identity, Keyring, Memory, Peer
from crdtmem.protocol.node import NodeConfig

TASKS = 12
WORKERS = ("ada", "grace", "linus")
CONFIG = NodeConfig(gossip_interval=0.2)


def all_done(memory: Memory) -> bool:
    board = memory.map("board")
    return len(board) == TASKS and all(board.get(key)["status"] == "done" for key in board.keys())


async def planner(memory: Memory, peer: Peer) -> None:
    board = memory.map("board")
    for n in range(TASKS):
        board.put(f"task-{n:02d}", {"title": f"summarise document {n}", "status": "open", "owner": None})
        await anyio.sleep(0.02)  # the planner thinks of tasks one by one
    await peer.wait_for(lambda: all_done(memory), timeout=30)


async def worker(name: str, memory: Memory, peer: Peer, rng: random.Random) -> None:
    board = memory.map("board")
    notes = memory.doc("notes").get("log", type=pycrdt.Text)
    lost = 0
    while not all_done(memory):
        open_tasks = sorted(k for k in board.keys() if board.get(k)["status"] == "open")
        if not open_tasks:
            await peer.changed()  # wait for the next update from the network
            continue
        task = rng.choice(open_tasks[:3])
        record = board.get(task)
        board.put(task, {**record, "status": "claimed", "owner": name})
        await peer.wait_synced(timeout=10)  # every connected agent now saw both claims, if two raced
        if board.get(task)["owner"] != name:
            lost += 1  # another agent's claim won on every replica: pick something else
            continue
        await anyio.sleep(rng.uniform(0.01, 0.04))  # "work"
        board.put(task, {**board.get(task), "status": "done"})
        memory.counter("tasks_done").increment()
        memory.set("facts").add(f"{task} was summarised by {name}")
        notes += f"{name} finished {task}\n"
    memory.register(f"report/{name}").assign({"lost_claims": lost})


async def main() -> int:
    names = ("planner", *WORKERS)
    identities = {name: Identity.generate() for name in names}
    keyring = Keyring()
    for name, identity in identities.items():
        keyring.add(identity, name)
    memories = {name: Memory(identities[name].peer_id, clock=time.time) for name in names}
    with anyio.fail_after(60):
        async with Peer(memories["planner"], identities["planner"], keyring, listen="ws://127.0.0.1:0",
                        config=CONFIG) as hub:
            urls = [hub.url]
            peers = {"planner": hub}
            async with anyio.create_task_group() as tg:
                for name in WORKERS:
                    peer = Peer(memories[name], identities[name], keyring, listen="ws://127.0.0.1:0",
                                connect=list(urls), config=CONFIG)
                    await tg_enter(tg, peer, peers, name)
                    urls.append(peer.url)
                for peer in peers.values():
                    await peer.wait_connected(len(names) - 1, timeout=10)
                async with anyio.create_task_group() as agents:
                    agents.start_soon(planner, memories["planner"], hub)
                    for i, name in enumerate(WORKERS):
                        agents.start_soon(worker, name, memories[name], peers[name], random.Random(i))
                for peer in peers.values():
                    await peer.wait_synced(timeout=10, peers=len(names) - 1)
                # Compared now: on the way out each agent retires its incarnation with one last
                # batch, which the agents that stopped first may not receive.
                views = [memories[name].values() for name in names]
                tg.cancel_scope.cancel()

    board = memories["planner"].map("board").value
    for key in sorted(board):
        print(f"{key}: {board[key]['status']:<6} by {board[key]['owner']}")
    print("tasks done:", memories["planner"].counter("tasks_done").value)
    for name in WORKERS:
        print(f"{name}: lost {memories['planner'].register(f'report/{name}').value['lost_claims']} claim races")
    agree = all(view == views[0] for view in views)
    print("all agents agree:", agree)
    ok = agree and all_done(memories["planner"]) and memories["planner"].counter("tasks_done").value == TASKS
    return 0 if ok else 1


async def tg_enter(tg, peer: Peer, peers: dict, name: str) -> None:
    """Run ``peer`` inside the task group until it is cancelled; return once it is up."""

    async def run(*, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        async with peer:
            task_status.started()
            await anyio.sleep_forever()

    await tg.start(run)
    peers[name] = peer


if __name__ == "__main__":
    raise SystemExit(anyio.run(main))
