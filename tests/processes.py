"""Subprocess peers for tests: run ``crdtmem peer`` processes and talk to them over stdin/stdout JSON lines, with bounded waits."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from crdtmem.identity import Identity, Keyring
from crdtmem.protocol.retirement import RETIRED_NAME
from crdtmem.storage.keyfiles import save_identity, save_keyring


def crdtmem_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "crdtmem", *args]


def run(*args: str, timeout: float = 30, **kw: Any) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(crdtmem_cmd(*args), capture_output=True, text=True, timeout=timeout, env=env, **kw)


def stored_values(db: Path) -> dict[str, Any]:
    """The values ``crdtmem inspect`` shows for a stopped peer's store, retirement records aside.

    Each peer retires its incarnation on the way out (one last batch in ``crdtmem.retired``)
    and stops before hearing the others': a store's retirement records are its own view.
    """
    shown = run("inspect", "--db", str(db), "--json")
    assert shown.returncode == 0, shown.stderr
    values = json.loads(shown.stdout)["values"]
    values.pop(RETIRED_NAME, None)
    return values


def without_retirements(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if name != RETIRED_NAME}


def keys(directory: Path, names: list[str]) -> Path:
    """Write a key file per name and one keyring trusting them all; return the keyring path."""
    keyring = Keyring()
    for name in names:
        identity = Identity.generate()
        save_identity(identity, directory / f"{name}.key")
        keyring.add(identity, name)
    path = directory / "trusted.keys"
    save_keyring(keyring, path)
    return path


class PeerProcess:
    """One ``crdtmem peer`` child process."""

    def __init__(self, directory: Path, name: str, trust: Path, *, listen: str = "ws://127.0.0.1:0",
                 connect: list[str] = (), db: bool = True, extra: list[str] = (), prefix: list[str] = (),
                 key: str | None = None) -> None:
        """Start the peer and wait for its ``ready`` line; ``prefix`` goes before the command
        (``ip netns exec NS`` runs it in a namespace: exec keeps ``proc.pid`` the peer's);
        ``key`` names another peer's key file to run under (default: ``name``'s)."""
        args = ["peer", "--key", str(directory / f"{key or name}.key"), "--trust", str(trust), "--listen", listen,
                "--gossip-interval", "0.2", "--reconnect-max", "0.5", *extra]
        for url in connect:
            args += ["--connect", url]
        if db:
            args += ["--db", str(directory / f"{name}.db")]
        self.name = name
        self.stderr_path = directory / f"{name}.{time.monotonic_ns()}.stderr"
        self._stderr = open(self.stderr_path, "w")
        self.proc = subprocess.Popen(
            [*prefix, *crdtmem_cmd("--log-level", "INFO", *args)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._stderr, text=True, bufsize=1, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: queue.Queue[dict | None] = queue.Queue()
        self.seen: list[dict] = []
        threading.Thread(target=self._read, daemon=True).start()
        ready = self.expect(lambda m: m.get("ready"), timeout=20)
        self.url: str = ready["url"]
        self.peer_id: str = ready["peer_id"]
        self.replica_id: str = ready["replica_id"]

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                pass
        self.lines.put(None)

    def send(self, command: dict) -> None:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def expect(self, predicate: Callable[[dict], Any], timeout: float = 10) -> dict:
        """The first (new) output line matching ``predicate``; fails after ``timeout`` seconds."""
        for message in self.seen:
            if predicate(message):
                self.seen.remove(message)
                return message
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{self.name}: no matching output in {timeout}s; stderr:\n{self.stderr()}")
            try:
                message = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if message is None:
                raise EOFError(f"{self.name} exited ({self.proc.poll()}); stderr:\n{self.stderr()}")
            if predicate(message):
                return message
            self.seen.append(message)

    def drain(self) -> list[dict]:
        """Every output line read so far (non-blocking)."""
        while True:
            try:
                message = self.lines.get_nowait()
            except queue.Empty:
                break
            if message is not None:
                self.seen.append(message)
        return list(self.seen)

    def read_to_eof(self, timeout: float = 10) -> list[dict]:
        """After the process died: every output line it wrote, including those not read yet."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if message is None:
                return list(self.seen)
            self.seen.append(message)

    def ask(self, command: dict, timeout: float = 15) -> dict:
        self.send(command)
        return self.expect(lambda m: m.get("id") == command["id"] and len(m) > 1, timeout)

    def stderr(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        return self.stderr_path.read_text()[-4000:]

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except Exception:  # noqa: BLE001
                pass
        self._stderr.close()
