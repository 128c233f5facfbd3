"""Two ``crdtmem mcp`` servers on loopback, driven by the official MCP client over stdio.

Measures, and prints as one JSON object:

* ``call_<tool>_p50_ms`` / ``_p99_ms``: tool-call latency through stdio, one call at a time,
  from ``client.call_tool`` to its result, for ``read_graph`` (on a graph of ``--entities``
  entities), ``search_nodes``, ``create_entities`` (one new entity a call) and
  ``add_observations`` (one observation a call). A write's answer waits until the write is
  committed to the server's SQLite store (no fsync) and handed to its peer.
* ``visible_p50_ms`` / ``visible_p99_ms``: write-to-readable time across servers: from
  calling ``create_entities`` on server A to the first ``open_nodes`` on server B that
  returns the entity (B is asked again as soon as each answer arrives, so the figure
  includes up to one B call of slack). One probe at a time.
* with ``--reference-js PATH`` (the reference server's ``dist/index.js``, e.g. from
  ``npm pack @modelcontextprotocol/server-memory``): ``reference_call_<tool>_p50_ms`` /
  ``_p99_ms``, the same calls against it (Node.js, one JSONL file).

Run: python benchmarks/bench_mcp.py [--calls 300] [--probes 100] [--entities 200]
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from crdtmem.identity import Identity, Keyring
from crdtmem.storage.keyfiles import save_identity, save_keyring


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server(directory: Path, name: str, trust: Path, *extra: str) -> StdioServerParameters:
    args = ["-m", "crdtmem", "mcp", "--key", str(directory / f"{name}.key"), "--trust", str(trust),
            "--db", str(directory / f"{name}.db"), "--reconnect-max", "0.5", *extra]
    return StdioServerParameters(command=sys.executable, args=args)


def _entity(name: str) -> dict:
    return {"name": name, "entityType": "bench", "observations": [f"observation of {name}"]}


async def _time_calls(client: Client, calls: int, entities: int, prefix: str) -> dict[str, float]:
    """Latency of each measured tool, ``calls`` sequential calls each; returns p50/p99 in ms."""
    for start in range(0, entities, 50):
        batch = [_entity(f"{prefix}seed-{i}") for i in range(start, min(entities, start + 50))]
        await client.call_tool("create_entities", {"entities": batch})
    work = {
        "read_graph": lambda i: {},
        "search_nodes": lambda i: {"query": f"seed-{i % max(1, entities)}"},
        "create_entities": lambda i: {"entities": [_entity(f"{prefix}new-{i}")]},
        "add_observations": lambda i: {"observations": [
            {"entityName": f"{prefix}seed-{i % max(1, entities)}", "contents": [f"fact {i}"]}]},
    }
    out: dict[str, float] = {}
    for tool, arguments in work.items():
        samples = []
        for i in range(calls):
            started = time.perf_counter()
            result = await client.call_tool(tool, arguments(i))
            samples.append((time.perf_counter() - started) * 1000)
            assert not result.is_error, result.content
        out[f"call_{tool}_p50_ms"] = round(_percentile(samples, 0.5), 3)
        out[f"call_{tool}_p99_ms"] = round(_percentile(samples, 0.99), 3)
    return out


async def _time_visibility(a: Client, b: Client, probes: int) -> dict[str, float]:
    samples = []
    for i in range(probes):
        name = f"probe-{i}"
        started = time.perf_counter()
        await a.call_tool("create_entities", {"entities": [_entity(name)]})
        with anyio.fail_after(10):
            while not (await b.call_tool("open_nodes", {"names": [name]})).structured_content["entities"]:
                pass
        samples.append((time.perf_counter() - started) * 1000)
    return {"visible_p50_ms": round(_percentile(samples, 0.5), 3),
            "visible_p99_ms": round(_percentile(samples, 0.99), 3)}


async def mcp_section(args: argparse.Namespace) -> dict:
    """The MCP figures (see the module docstring); ``bench_agent.py`` calls it too."""
    results: dict = {"python": platform.python_version(), "calls": args.calls, "probes": args.probes,
                     "entities": args.entities}
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        keyring = Keyring()
        for name in ("a", "b"):
            identity = Identity.generate()
            save_identity(identity, directory / f"{name}.key")
            keyring.add(identity, name)
        trust = directory / "trusted.keys"
        save_keyring(keyring, trust)
        url = f"ws://127.0.0.1:{_free_port()}"
        async with AsyncExitStack() as stack:
            a = await stack.enter_async_context(Client(_server(directory, "a", trust, "--listen", url)))
            b = await stack.enter_async_context(Client(_server(directory, "b", trust, "--connect", url)))
            results.update(await _time_calls(a, args.calls, args.entities, ""))
            results.update(await _time_visibility(a, b, args.probes))
        if args.reference_js:
            reference = StdioServerParameters(command="node", args=[args.reference_js],
                                              env={"MEMORY_FILE_PATH": str(directory / "reference.jsonl")})
            async with Client(reference) as client:
                timed = await _time_calls(client, args.calls, args.entities, "")
            results.update({f"reference_{key}": value for key, value in timed.items()})
    return results


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The MCP knobs (shared with ``bench_agent.py``)."""
    parser.add_argument("--calls", type=int, default=300, help="sequential calls per measured tool")
    parser.add_argument("--probes", type=int, default=100, help="write-to-readable probes")
    parser.add_argument("--entities", type=int, default=200, help="entities in the graph before timing")
    parser.add_argument("--reference-js", help="also time the reference server: path to its dist/index.js")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    print(json.dumps(anyio.run(mcp_section, parser.parse_args()), indent=2))
