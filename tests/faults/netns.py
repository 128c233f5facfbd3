"""Linux network namespaces for fault tests: one namespace per peer, point-to-point veth links
between them, links cut and restored with ``ip link set ... down/up``.

Everything lives inside namespaces this module creates (unique names: pid + random suffix) and
uses only ``10.66.x.y/24`` addresses on those veth links, so no traffic ever leaves them.
:meth:`Mesh.destroy` removes every namespace (and with it every veth end); call it from a
fixture finalizer.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from itertools import combinations
from pathlib import Path

from ..processes import PeerProcess

__all__ = ["netns_unavailable", "Mesh", "NetnsPeer", "PORT"]

PORT = 7000
"""Every peer listens on this port inside its own namespace."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=check)


def netns_unavailable() -> str | None:
    """Why network-namespace tests cannot run here, or None when they can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (run the suite as root)"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    probe = f"cmprobe{os.getpid()}{secrets.token_hex(2)}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` fails here: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


class Mesh:
    """``n`` namespaces, one veth link between every pair (``i``, ``j``) listed in ``links``
    (default: all pairs). On the link ``k`` between ``i`` and ``j`` peer ``i`` is
    ``10.66.k.(i+1)`` and peer ``j`` is ``10.66.k.(j+1)``; in namespace ``i`` the interface is
    named ``to<j>``."""

    def __init__(self, n: int, links: list[tuple[int, int]] | None = None) -> None:
        self.n = n
        tag = f"{os.getpid()}{secrets.token_hex(3)}"
        self.names = [f"cm{tag}-{i}" for i in range(n)]
        self.links = sorted(tuple(sorted(pair)) for pair in (links or combinations(range(n), 2)))
        self._index = {pair: k for k, pair in enumerate(self.links)}
        self.cuts = 0
        self.partitions = 0
        self.down: set[tuple[int, int]] = set()
        self._created: list[str] = []
        try:
            for name in self.names:
                _ip("netns", "add", name)
                self._created.append(name)
                _ip("-n", name, "link", "set", "lo", "up")
            for i, j in self.links:
                _ip("-n", self.names[i], "link", "add", f"to{j}", "type", "veth", "peer", "name", f"to{i}",
                    "netns", self.names[j])
                for a, b in ((i, j), (j, i)):
                    _ip("-n", self.names[a], "addr", "add", f"{self.address(a, b)}/24", "dev", f"to{b}")
                    _ip("-n", self.names[a], "link", "set", f"to{b}", "up")
        except BaseException:
            self.destroy()
            raise

    def address(self, i: int, j: int) -> str:
        """Peer ``i``'s address on its link to ``j``."""
        k = self._index[tuple(sorted((i, j)))]
        return f"10.66.{k}.{i + 1}"

    def url(self, i: int, via: int) -> str:
        """The URL peer ``via`` dials to reach peer ``i`` over their link."""
        return f"ws://{self.address(i, via)}:{PORT}"

    def exec_prefix(self, i: int) -> list[str]:
        return ["ip", "netns", "exec", self.names[i]]

    def _set(self, i: int, j: int, state: str) -> None:
        _ip("-n", self.names[i], "link", "set", f"to{j}", state)
        _ip("-n", self.names[j], "link", "set", f"to{i}", state)

    def cut(self, i: int, j: int) -> None:
        self._set(i, j, "down")
        self.down.add(tuple(sorted((i, j))))
        self.cuts += 1

    def heal(self, i: int, j: int) -> None:
        self._set(i, j, "up")
        self.down.discard(tuple(sorted((i, j))))

    def partition(self, *sides: list[int]) -> list[tuple[int, int]]:
        """Cut every link (still up) between different sides; return the links cut (pass them to
        :meth:`heal_all`). Peers in no side keep their links."""
        side_of = {p: s for s, members in enumerate(sides) for p in members}
        cut = [(i, j) for i, j in self.links
               if i in side_of and j in side_of and side_of[i] != side_of[j] and (i, j) not in self.down]
        self.partitions += 1
        for i, j in cut:
            self.cut(i, j)
        return cut

    def heal_all(self, links: list[tuple[int, int]]) -> None:
        for i, j in links:
            self.heal(i, j)

    def link_up(self, i: int, j: int) -> bool:
        shown = _ip("-n", self.names[i], "-o", "link", "show", f"to{j}")
        return "state UP" in shown.stdout or ",UP" in shown.stdout.split(">")[0]

    def destroy(self) -> None:
        """Delete every namespace this mesh made (the veth ends inside go with them). Idempotent."""
        while self._created:
            _ip("netns", "del", self._created.pop(), check=False)

    def __enter__(self) -> Mesh:
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()


class NetnsPeer(PeerProcess):
    """A :class:`~tests.processes.PeerProcess` run with ``ip netns exec`` inside one namespace of a
    :class:`Mesh`, listening on ``ws://0.0.0.0:PORT`` there and dialing ``connect``."""

    def __init__(self, mesh: Mesh, index: int, directory: Path, name: str, trust: Path, *,
                 connect: list[str] = (), extra: list[str] = ()) -> None:
        self.mesh, self.index = mesh, index
        super().__init__(directory, name, trust, listen=f"ws://0.0.0.0:{PORT}", connect=connect, extra=extra,
                         prefix=mesh.exec_prefix(index))
        self.url = f"ws://0.0.0.0:{PORT} in {mesh.names[index]}"  # dial it with mesh.url(index, via=j)
